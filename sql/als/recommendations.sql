-- input: als_recommendations, user_index, item_index  output: recommendations
--
-- `persona als`: the night's top-N (sql/19_als_recommendations.sql) under the input's own
-- user ({{user}}) and item ({{item}}) columns.
SELECT u.customer_id AS {{user}}, r.rank, i.item_id AS {{item}}, r.score
FROM als_recommendations r
JOIN user_index u ON r.user_idx = u.user_idx
JOIN item_index i ON r.item_idx = i.item_idx
