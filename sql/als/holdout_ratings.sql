-- input: als_holdout_input, user_index, item_index    output: (RMSE, not stored)
--
-- `persona als --explicit --holdout`: the held-out ratings of known users and items.
SELECT u.user_idx, i.item_idx, {{weight}} AS rating
FROM als_holdout_input x
JOIN user_index u ON x.{{user}} = u.customer_id
JOIN item_index i ON x.{{item}} = i.item_id
WHERE {{weight}} IS NOT NULL
