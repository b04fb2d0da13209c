-- input: als_holdout_input, als_users, als_items       output: (RMSE, not stored)
--
-- `persona als --explicit --holdout`: the held-out ratings of known users and items.
SELECT u.idx AS user_idx, i.idx AS item_idx, {{weight}} AS rating
FROM als_holdout_input x
JOIN als_users u ON x.{{user}} = u.id
JOIN als_items i ON x.{{item}} = i.id
WHERE {{weight}} IS NOT NULL
