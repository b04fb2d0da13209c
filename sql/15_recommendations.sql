-- input: als_recommendations, user_index, item_index, popular_items, user_features
-- output: recommendations
--
-- The published recommendations: the model's top-N per customer (source 'als'), and the most
-- popular items for active customers the model has no factors for (source 'popular').
SELECT u.customer_id, r.rank, i.item_id, r.score, 'als' AS source
FROM als_recommendations r
JOIN user_index u ON r.user_idx = u.user_idx
JOIN item_index i ON r.item_idx = i.item_idx
UNION ALL
SELECT f.customer_id, p.place AS rank, p.item_id, CAST(p.popularity AS FLOAT) AS score, 'popular' AS source
FROM user_features f
CROSS JOIN popular_items p
WHERE NOT EXISTS (SELECT 1 FROM als_recommendations r JOIN user_index u ON r.user_idx = u.user_idx
                  WHERE u.customer_id = f.customer_id)
