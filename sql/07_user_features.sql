-- input: events, customers                            output: user_features
--
-- One row per known customer with at least one event in the window: recency / frequency /
-- monetary, sessions (a new session after 30 minutes without events), views, carts and
-- purchases by channel, conversion rate, average order value, category focus, platform mix, and
-- the CRM attributes. Ratios are NULL when their denominator is 0. Money is rounded to cents,
-- which also makes it independent of the order in which rows are summed.
--
-- Sessions and active days come from `session_stats`, a Rust aggregate (udfs/) that sorts each
-- customer's times on its own. A LAG window would sort every event of the night by customer
-- and time (most of this stage's time), and two COUNT(DISTINCT)s (days, categories) in one
-- unsorted aggregate keep a hash set per customer (8 GiB and 11 s on the medium data), so
-- categories are counted from category_counts.
WITH timed AS (
  SELECT *, date_part('epoch', ts) AS epoch_s
  FROM events
),
activity AS (
  SELECT
    customer_id,
    (date_part('epoch', TIMESTAMP '{{window_end}}') - MAX(epoch_s)) / 86400.0        AS recency_days,
    session_stats(epoch_s, 1800)                                                      AS spans,
    COUNT(*)                                                                          AS events,
    COUNT(*) FILTER (WHERE event_type = 'view' AND source = 'web_logs')               AS web_views,
    COUNT(*) FILTER (WHERE event_type = 'view' AND source = 'app_events')             AS app_views,
    COUNT(*) FILTER (WHERE event_type = 'add_to_cart' AND source = 'web_logs')        AS web_cart_adds,
    COUNT(*) FILTER (WHERE event_type = 'add_to_cart' AND source = 'app_events')      AS app_cart_adds,
    COUNT(*) FILTER (WHERE event_type = 'purchase' AND platform = 'web')              AS web_purchases,
    COUNT(*) FILTER (WHERE event_type = 'purchase' AND platform <> 'web')             AS app_purchases,
    COUNT(*) FILTER (WHERE event_type = 'search')                                     AS searches,
    ROUND(COALESCE(SUM(price * COALESCE(quantity, 1)) FILTER (WHERE event_type = 'purchase'), 0), 2) AS monetary,
    COUNT(*) FILTER (WHERE platform = 'ios') * 1.0 / COUNT(*)                         AS share_ios,
    COUNT(*) FILTER (WHERE platform = 'android') * 1.0 / COUNT(*)                     AS share_android,
    COUNT(*) FILTER (WHERE platform = 'web') * 1.0 / COUNT(*)                         AS share_web
  FROM timed
  GROUP BY customer_id
),
category_counts AS (
  SELECT customer_id, category, COUNT(*) AS hits
  FROM events
  WHERE category IS NOT NULL
  GROUP BY customer_id, category
),
top_category AS (
  SELECT customer_id, category AS top_category, share AS top_category_share, categories_seen
  FROM (
    SELECT
      customer_id,
      category,
      hits * 1.0 / SUM(hits) OVER (PARTITION BY customer_id) AS share,
      COUNT(*) OVER (PARTITION BY customer_id) AS categories_seen,
      ROW_NUMBER() OVER (PARTITION BY customer_id ORDER BY hits DESC, category) AS place
    FROM category_counts
  )
  WHERE place = 1
)
SELECT
  a.customer_id,
  a.recency_days,
  a.spans['sessions']                                                           AS sessions,
  a.events,
  COALESCE(a.spans['active_days'], 0)                                           AS active_days,
  a.web_views,
  a.app_views,
  a.web_cart_adds,
  a.app_cart_adds,
  a.web_purchases,
  a.app_purchases,
  a.web_purchases + a.app_purchases                                             AS purchases,
  a.searches,
  a.monetary,
  (a.web_purchases + a.app_purchases) * 1.0
    / NULLIF(a.web_views + a.app_views, 0)                                      AS conversion_rate,
  ROUND(a.monetary / NULLIF(a.web_purchases + a.app_purchases, 0), 2)           AS avg_order_value,
  a.share_ios,
  a.share_android,
  a.share_web,
  COALESCE(t.categories_seen, 0)                                                AS categories_seen,
  t.top_category,
  t.top_category_share,
  c.age,
  c.tenure_days,
  c.annual_income,
  c.gender,
  c.country,
  c.loyalty_tier,
  c.marketing_opt_in
FROM activity a
JOIN customers c ON a.customer_id = c.customer_id
LEFT JOIN top_category t ON a.customer_id = t.customer_id
