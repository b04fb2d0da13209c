-- input: web_logs_flagged, app_events_flagged, identity_map, customers, items    output: events
--
-- The unified event stream: kept app events and kept web-log page views (customer stitched
-- through identity_map), with the item's category, brand and list price from the catalog. Web
-- pages map to event types: product -> view, cart_add -> add_to_cart, search -> search,
-- anything else -> page_view. Rows whose customer is still unknown (anonymous, never logged
-- in) are dropped here; customers missing from the CRM export are kept, with in_crm = false
-- (they are profiled too). 06_event_drops counts both, from the rows kept here and their
-- `copies`. An item listed twice in the catalog counts once (the greatest category, brand and
-- price), so no event is doubled.
WITH web AS (
  SELECT
    COALESCE(w.customer_id, m.customer_id) AS customer_id,
    w.ts,
    'web_logs' AS source,
    'web' AS platform,
    CASE w.page_type
      WHEN 'product' THEN 'view'
      WHEN 'cart_add' THEN 'add_to_cart'
      WHEN 'search' THEN 'search'
      ELSE 'page_view'
    END AS event_type,
    w.item_id,
    CAST(NULL AS INT) AS quantity,
    CAST(NULL AS DOUBLE) AS price,
    w.copies
  FROM web_logs_flagged w
  LEFT JOIN identity_map m ON w.customer_id IS NULL AND w.cookie_id = m.cookie_id
  WHERE w.drop_reason IS NULL
),
app AS (
  SELECT customer_id, ts, 'app_events' AS source, platform, event_type, item_id, quantity, price, copies
  FROM app_events_flagged
  WHERE drop_reason IS NULL
),
stitched AS (
  SELECT * FROM web
  UNION ALL
  SELECT * FROM app
)
SELECT
  s.customer_id, s.ts, s.source, s.platform, s.event_type, s.item_id, s.quantity, s.price,
  i.category, i.brand, i.list_price, c.customer_id IS NOT NULL AS in_crm, s.copies
FROM stitched s
LEFT JOIN customers c ON s.customer_id = c.customer_id
LEFT JOIN (
  SELECT item_id, MAX(category) AS category, MAX(brand) AS brand, MAX(price) AS list_price
  FROM items
  GROUP BY item_id
) i ON s.item_id = i.item_id
WHERE s.customer_id IS NOT NULL
