-- input: web_logs_flagged, app_events_flagged, identity_map, customers     output: event_drops
--
-- Data-quality counters: raw rows per source, reason and event day (NULL when the row has no
-- usable time), adding up to the rows read. Staging
-- decided the reasons of distinct rows (all their copies share it); extra copies of otherwise
-- kept rows are 'duplicate'; stitching adds 'anonymous' (no customer even after identity
-- stitching) and 'unknown_customer' (not in the CRM export).
WITH web AS (
  SELECT
    CASE
      WHEN w.drop_reason IS NOT NULL THEN w.drop_reason
      WHEN COALESCE(w.customer_id, m.customer_id) IS NULL THEN 'anonymous'
      WHEN c.customer_id IS NULL THEN 'unknown_customer'
    END AS reason,
    CAST(w.ts AS DATE) AS day,
    w.copies
  FROM web_logs_flagged w
  LEFT JOIN identity_map m ON w.customer_id IS NULL AND w.cookie_id = m.cookie_id
  LEFT JOIN customers c ON COALESCE(w.customer_id, m.customer_id) = c.customer_id
),
app AS (
  SELECT
    CASE
      WHEN a.drop_reason IS NOT NULL THEN a.drop_reason
      WHEN c.customer_id IS NULL THEN 'unknown_customer'
    END AS reason,
    CAST(a.ts AS DATE) AS day,
    a.copies
  FROM app_events_flagged a
  LEFT JOIN customers c ON a.customer_id = c.customer_id
),
counted AS (
  SELECT 'web_logs' AS source, COALESCE(reason, 'kept') AS reason, day, 1 AS kept_rows, copies FROM web
  UNION ALL
  SELECT 'app_events' AS source, COALESCE(reason, 'kept') AS reason, day, 1 AS kept_rows, copies FROM app
)
SELECT source, reason, day, SUM(CASE WHEN reason = 'kept' THEN kept_rows ELSE copies END) AS rows
FROM counted
GROUP BY source, reason, day
UNION ALL
SELECT source, 'duplicate' AS reason, day, SUM(copies - 1) AS rows
FROM counted
WHERE reason = 'kept'
GROUP BY source, day
HAVING SUM(copies - 1) > 0
