-- input: events, user_index, item_index, eval_train   output: eval_holdout
--
-- What the evaluation asks the models to predict: for every customer with training history,
-- the catalog items they interacted with during the holdout days and never before. Items seen
-- in training are excluded from both the truth and the recommendations being scored, as the
-- recommendations of a real night exclude what the customer already knows.
SELECT DISTINCT u.user_idx, i.item_idx
FROM events e
JOIN user_index u ON e.customer_id = u.customer_id
JOIN item_index i ON e.item_id = i.item_id
WHERE e.ts >= TIMESTAMP '{{holdout_start}}'
  AND e.event_type IN {{interaction_events}}
  AND i.in_catalog
  AND u.user_idx IN (SELECT user_idx FROM eval_train)
  AND NOT EXISTS (
    SELECT 1 FROM eval_train t WHERE t.user_idx = u.user_idx AND t.item_idx = i.item_idx
  )
