-- input: als_holdout_input, als_users, als_items, als_pairs   output: eval_holdout
--
-- `persona als --holdout`: the held-out (user, item) pairs of known users and items that the
-- user did not interact with in the input, scored by sql/14_evaluation.sql.
SELECT DISTINCT u.idx AS user_idx, i.idx AS item_idx
FROM als_holdout_input h
JOIN als_users u ON h.{{user}} = u.id
JOIN als_items i ON h.{{item}} = i.id
WHERE NOT EXISTS (
  SELECT 1 FROM als_pairs p WHERE p.user_idx = u.idx AND p.item_idx = i.idx
)
