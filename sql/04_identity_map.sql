-- input: web_logs_flagged                             output: identity_map
--
-- Identity stitching: each browser cookie that was ever logged in is mapped to the customer it
-- was logged in as most often (ties: most recently, then the smallest id). Anonymous page views
-- of that cookie are then credited to that customer.
SELECT cookie_id, customer_id
FROM (
  SELECT
    cookie_id,
    customer_id,
    ROW_NUMBER() OVER (PARTITION BY cookie_id ORDER BY hits DESC, last_seen DESC, customer_id) AS choice
  FROM (
    SELECT cookie_id, customer_id, COUNT(*) AS hits, MAX(ts) AS last_seen
    FROM web_logs_flagged
    WHERE drop_reason IS NULL AND customer_id IS NOT NULL AND cookie_id IS NOT NULL
    GROUP BY cookie_id, customer_id
  )
)
WHERE choice = 1
