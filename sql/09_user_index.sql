-- input: events                                       output: user_index
--
-- Dense integer ids (0..n) for every customer with at least one item interaction, ordered by
-- customer_id.
SELECT customer_id, CAST(ROW_NUMBER() OVER (ORDER BY customer_id) - 1 AS INT) AS user_idx
FROM (
  SELECT DISTINCT customer_id
  FROM events
  WHERE item_id IS NOT NULL AND event_type IN {{interaction_events}}
)
