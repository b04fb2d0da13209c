-- input: experiment_assignments, events                  output: experiment_customers
--
-- Every assigned customer of every experiment with what the analysis compares, measured over
-- the night's window:
--
--   after entry   the days from first_eligible_date (inclusive) to the night's end: whether
--                 the customer purchased (conversion, 0 or 1), revenue (price x quantity of
--                 the purchases), orders (purchase events) and sessions (a new session after
--                 30 minutes without events);
--   before entry  the same four over the {{experiment_pre_days}} days before first_eligible_date
--                 (pre_*), the covariate of CUPED: nothing a campaign did can move it.
--
-- Both periods are cut by the window (the night reads {{lookback_days}} days): a customer who
-- entered before the window's first day is measured from that day, and one who entered early
-- in the window has a shorter pre-period. The cut is the same in every arm, so comparisons
-- stay fair; the published results count `days_measured`.
--
-- A customer with no events in a period has zeros for it. Each (customer, entry date) is
-- measured once, however many experiments the customer is in.
WITH entries AS (
  SELECT DISTINCT customer_id, first_eligible_date
  FROM experiment_assignments
),
joined AS (
  SELECT
    n.customer_id,
    n.first_eligible_date,
    v.day >= n.first_eligible_date AS post,
    v.epoch_s, v.event_type, v.price, v.quantity
  FROM entries n
  JOIN (
    SELECT
      CAST(customer_id AS VARCHAR) AS customer_id,
      CAST(ts AS DATE) AS day,
      date_part('epoch', ts) AS epoch_s,
      event_type, price, quantity
    FROM events
  ) v ON v.customer_id = n.customer_id
     AND v.day >= n.first_eligible_date - INTERVAL '{{experiment_pre_days}} days'
),
measured AS (
  SELECT
    customer_id,
    first_eligible_date,
    COUNT(*) FILTER (WHERE post AND event_type = 'purchase')                                         AS orders,
    ROUND(COALESCE(SUM(price * COALESCE(quantity, 1)) FILTER (WHERE post AND event_type = 'purchase'), 0), 2)     AS revenue,
    session_stats(epoch_s, 1800) FILTER (WHERE post)                                                 AS spans,
    COUNT(*) FILTER (WHERE NOT post AND event_type = 'purchase')                                     AS pre_orders,
    ROUND(COALESCE(SUM(price * COALESCE(quantity, 1)) FILTER (WHERE NOT post AND event_type = 'purchase'), 0), 2) AS pre_revenue,
    session_stats(epoch_s, 1800) FILTER (WHERE NOT post)                                             AS pre_spans
  FROM joined
  GROUP BY customer_id, first_eligible_date
)
SELECT
  a.experiment,
  a.customer_id,
  a.arm,
  a.first_eligible_date,
  CASE WHEN COALESCE(m.orders, 0) > 0 THEN 1.0 ELSE 0.0 END            AS conversion,
  CAST(COALESCE(m.revenue, 0) AS DOUBLE)                                AS revenue,
  CAST(COALESCE(m.orders, 0) AS DOUBLE)                                 AS orders,
  CAST(COALESCE(m.spans['sessions'], 0) AS DOUBLE)                      AS sessions,
  CASE WHEN COALESCE(m.pre_orders, 0) > 0 THEN 1.0 ELSE 0.0 END        AS pre_conversion,
  CAST(COALESCE(m.pre_revenue, 0) AS DOUBLE)                            AS pre_revenue,
  CAST(COALESCE(m.pre_orders, 0) AS DOUBLE)                             AS pre_orders,
  CAST(COALESCE(m.pre_spans['sessions'], 0) AS DOUBLE)                  AS pre_sessions
FROM experiment_assignments a
LEFT JOIN measured m
  ON m.customer_id = a.customer_id AND m.first_eligible_date = a.first_eligible_date
