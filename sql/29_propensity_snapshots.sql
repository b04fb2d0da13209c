-- input: events, customers                                 output: propensity_snapshots
--
-- The purchase-propensity model's rows: two snapshots of every customer, computed by the same
-- expressions over windows of the same length, feature_days = lookback_days - horizon_days:
--
--   train  features from the events in [window_start, cutoff), cutoff = the night's end minus
--          horizon_days; label = 1 when the customer purchased in [cutoff, window_end), the
--          horizon, else 0. Nothing at or after the cutoff enters a feature, so the label
--          cannot leak into them (tests/slt/29_propensity_snapshots.slt changes the events
--          after the cutoff and checks that no training feature moves).
--   score  features from the events in [window_end - feature_days, window_end): tonight's
--          customers, whose horizon is the future; label NULL.
--
-- Customers: every CRM customer who had signed up by the snapshot's end (for train: by the
-- cutoff; tenure is counted to the snapshot's end), and every customer with events in the
-- snapshot's window (in_crm = false for those missing from the CRM export; their CRM columns
-- are NULL and the model imputes them). A train row's split (fit 60%, calibrate 20%, test 20%)
-- is a hash of its customer id, so it is the same on every engine and every rerun.
--
-- Counts are over the snapshot's window and, suffixed _7d, over its last 7 days; ratios are
-- NULL when their denominator is 0 (imputed with the mean by the model).
WITH snapshot_events AS (
  SELECT
    'train' AS snapshot, customer_id, event_type, source, price, quantity, ts,
    ts >= TIMESTAMP '{{propensity_cutoff}}' - INTERVAL '7 days' AS recent,
    (date_part('epoch', TIMESTAMP '{{propensity_cutoff}}') - date_part('epoch', ts)) / 86400.0 AS age_days
  FROM events
  WHERE ts >= TIMESTAMP '{{window_start}}' AND ts < TIMESTAMP '{{propensity_cutoff}}'
  UNION ALL
  SELECT
    'score' AS snapshot, customer_id, event_type, source, price, quantity, ts,
    ts >= TIMESTAMP '{{window_end}}' - INTERVAL '7 days' AS recent,
    (date_part('epoch', TIMESTAMP '{{window_end}}') - date_part('epoch', ts)) / 86400.0 AS age_days
  FROM events
  WHERE ts >= TIMESTAMP '{{propensity_score_start}}' AND ts < TIMESTAMP '{{window_end}}'
),
activity AS (
  SELECT
    snapshot,
    customer_id,
    MIN(age_days)                                                                AS recency_days,
    MIN(age_days) FILTER (WHERE event_type = 'purchase')                         AS days_since_purchase,
    session_stats(date_part('epoch', ts), 1800)                                  AS spans,
    COUNT(*)                                                                     AS events,
    COUNT(*) FILTER (WHERE event_type = 'view')                                  AS views,
    COUNT(*) FILTER (WHERE event_type = 'add_to_cart')                           AS cart_adds,
    COUNT(*) FILTER (WHERE event_type = 'purchase')                              AS purchases,
    COUNT(*) FILTER (WHERE event_type = 'search')                                AS searches,
    COUNT(*) FILTER (WHERE recent)                                               AS events_7d,
    COUNT(*) FILTER (WHERE recent AND event_type = 'view')                       AS views_7d,
    COUNT(*) FILTER (WHERE recent AND event_type = 'add_to_cart')                AS cart_adds_7d,
    COUNT(*) FILTER (WHERE recent AND event_type = 'purchase')                   AS purchases_7d,
    ROUND(COALESCE(SUM(price * COALESCE(quantity, 1)) FILTER (WHERE event_type = 'purchase'), 0), 2) AS monetary,
    COUNT(*) FILTER (WHERE source = 'app_events') * 1.0 / COUNT(*)               AS share_app
  FROM snapshot_events
  GROUP BY snapshot, customer_id
),
-- Every customer of each snapshot: the CRM's (who had signed up by its end) and those with
-- events in its window, with their activity. `activity` is named once: naming it in a UNION
-- for the customers and again in a join for the features planned the whole aggregation,
-- session_stats included, twice. Its rows and the CRM's rows are rolled up by customer; a
-- customer has at most one activity row, which MAX keeps (the CRM rows add NULLs). (A FULL
-- OUTER JOIN of the two, COALESCE-ing its keys, lost the keys of customers missing from the
-- CRM once joined to `customers` below, in DataFusion 55.)
population AS (
  SELECT
    snapshot,
    customer_id,
    MAX(recency_days) AS recency_days, MAX(days_since_purchase) AS days_since_purchase,
    MAX(sessions) AS sessions, MAX(active_days) AS active_days, MAX(events) AS events,
    MAX(views) AS views, MAX(cart_adds) AS cart_adds, MAX(purchases) AS purchases,
    MAX(searches) AS searches, MAX(monetary) AS monetary, MAX(events_7d) AS events_7d,
    MAX(views_7d) AS views_7d, MAX(cart_adds_7d) AS cart_adds_7d,
    MAX(purchases_7d) AS purchases_7d, MAX(share_app) AS share_app
  FROM (
    SELECT
      snapshot, customer_id, recency_days, days_since_purchase,
      spans['sessions'] AS sessions, spans['active_days'] AS active_days, events, views,
      cart_adds, purchases, searches, monetary, events_7d, views_7d, cart_adds_7d,
      purchases_7d, share_app
    FROM activity
    UNION ALL
    SELECT
      'train' AS snapshot, customer_id, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
      NULL, NULL, NULL, NULL, NULL, NULL
    FROM customers
    WHERE tenure_days IS NULL OR tenure_days >= {{horizon_days}}
    UNION ALL
    SELECT
      'score' AS snapshot, customer_id, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
      NULL, NULL, NULL, NULL, NULL, NULL
    FROM customers
  )
  GROUP BY snapshot, customer_id
),
buyers AS (
  SELECT DISTINCT customer_id
  FROM events
  WHERE event_type = 'purchase' AND ts >= TIMESTAMP '{{propensity_cutoff}}' AND ts < TIMESTAMP '{{window_end}}'
)
SELECT
  a.snapshot,
  a.customer_id,
  CASE
    WHEN a.snapshot <> 'train' THEN NULL
    WHEN unit_hash(7, a.customer_id) < 0.6 THEN 'fit'
    WHEN unit_hash(7, a.customer_id) < 0.8 THEN 'calibrate'
    ELSE 'test'
  END                                                                            AS split,
  CASE WHEN a.snapshot = 'train' THEN CASE WHEN b.customer_id IS NULL THEN 0 ELSE 1 END END AS label,
  c.customer_id IS NOT NULL                                                      AS in_crm,
  COALESCE(a.recency_days, {{propensity_feature_days}})                          AS recency_days,
  COALESCE(a.days_since_purchase, {{propensity_feature_days}})                   AS days_since_purchase,
  COALESCE(a.events, 0)                                                          AS events,
  COALESCE(a.sessions, 0)                                                        AS sessions,
  COALESCE(a.active_days, 0)                                                     AS active_days,
  COALESCE(a.views, 0)                                                           AS views,
  COALESCE(a.cart_adds, 0)                                                       AS cart_adds,
  COALESCE(a.purchases, 0)                                                       AS purchases,
  COALESCE(a.searches, 0)                                                        AS searches,
  COALESCE(a.monetary, 0)                                                        AS monetary,
  COALESCE(a.events_7d, 0)                                                       AS events_7d,
  COALESCE(a.views_7d, 0)                                                        AS views_7d,
  COALESCE(a.cart_adds_7d, 0)                                                    AS cart_adds_7d,
  COALESCE(a.purchases_7d, 0)                                                    AS purchases_7d,
  a.purchases * 1.0 / NULLIF(a.views, 0)                                         AS conversion_rate,
  ROUND(a.monetary / NULLIF(a.purchases, 0), 2)                                  AS avg_order_value,
  a.share_app,
  c.age,
  c.tenure_days - CASE WHEN a.snapshot = 'train' THEN {{horizon_days}} ELSE 0 END AS tenure_days,
  c.annual_income,
  CASE WHEN c.marketing_opt_in THEN 1 ELSE 0 END                                 AS marketing_opt_in,
  c.loyalty_tier,
  c.gender,
  c.country
FROM population a
LEFT JOIN customers c ON a.customer_id = c.customer_id
LEFT JOIN buyers b ON a.customer_id = b.customer_id
