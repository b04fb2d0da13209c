-- input: interactions                                 output: eval_train
--
-- The evaluation's training matrix: the interactions of the days before the holdout
-- ({{holdout_start}}), weighed as `interactions` weighs them but decayed to the holdout's
-- start. sql/10 sums them in its own pass over `events`; this keeps the pairs that have such
-- days, in the shape of `interactions`.
SELECT user_idx, item_idx, train_weight AS weight, train_purchased AS purchased
FROM interactions
WHERE train_weight IS NOT NULL
