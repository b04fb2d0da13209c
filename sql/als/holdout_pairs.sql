-- input: als_holdout_input, user_index, item_index, interactions    output: eval_holdout
--
-- `persona als --holdout` and `persona recommend --holdout`: the held-out rows as the night's
-- eval_holdout (sql/13) gives them, the pairs that the evaluation scores: users with training
-- pairs and catalog items that the user did not interact with in the input.
SELECT DISTINCT u.user_idx, i.item_idx
FROM als_holdout_input x
JOIN user_index u ON x.{{user}} = u.customer_id
JOIN item_index i ON x.{{item}} = i.item_id
WHERE i.in_catalog
  AND u.user_idx IN (SELECT user_idx FROM interactions)
  AND NOT EXISTS (
    SELECT 1 FROM interactions t WHERE t.user_idx = u.user_idx AND t.item_idx = i.item_idx
  )
