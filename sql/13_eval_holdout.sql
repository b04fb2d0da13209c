-- input: interactions, item_index, eval_train          output: eval_holdout
--
-- What the evaluation asks the models to predict: for every customer with training history,
-- the catalog items they interacted with during the holdout days and never before. Items seen
-- in training are excluded from both the truth and the recommendations being scored, as the
-- recommendations of a real night exclude what the customer already knows. sql/10 marks the
-- pairs with holdout days (`in_holdout`) and those with training days (`train_weight`).
SELECT x.user_idx, x.item_idx
FROM interactions x
JOIN item_index i ON x.item_idx = i.item_idx
WHERE x.in_holdout
  AND x.train_weight IS NULL
  AND i.in_catalog
  AND x.user_idx IN (SELECT user_idx FROM eval_train)
