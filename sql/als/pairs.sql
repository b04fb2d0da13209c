-- input: als_input, als_users, als_items               output: als_pairs
--
-- `persona als`: one row per (user, item) pair with its weight: implicit weights summed,
-- explicit ratings averaged ({{combine}}).
SELECT u.idx AS user_idx, i.idx AS item_idx, CAST({{combine}}({{weight}}) AS FLOAT) AS weight
FROM als_input x
JOIN als_users u ON x.{{user}} = u.id
JOIN als_items i ON x.{{item}} = i.id
WHERE {{usable}}
GROUP BY u.idx, i.idx
