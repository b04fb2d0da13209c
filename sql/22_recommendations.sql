-- input: model_recommendations, interactions, user_index, item_index, user_profiles, popular_items
-- output: recommendations
--
-- The published recommendations, {{top_n}} per active customer who agreed to marketing
-- (marketing_opt_in; everyone when [privacy] recommend_without_opt_in = true), never empty:
--   the model's name   the published model's top-N ([recommendations] model: 'als',
--                      'item_knn' or 'user_knn'), for customers with at least
--                      {{min_interactions}} items in the window (the model knows them well
--                      enough); an item-to-item recommendation names in because_item_id the
--                      customer's item that contributed most to it ("because you ...");
--   'segment_popular'  otherwise (cold start): the items most popular among the customer's
--                      segment, skipping what the model would have excluded ({{exclude_rule}});
--   'popular'          the overall most popular items, filling in when the segment itself has
--                      too few items with interactions.
WITH known AS (
  SELECT user_idx FROM interactions GROUP BY user_idx HAVING COUNT(*) >= {{min_interactions}}
),
modelled AS (
  SELECT u.customer_id, r.rank, i.item_id, r.score, r.model, b.item_id AS because_item_id
  FROM model_recommendations r
  JOIN known k ON r.user_idx = k.user_idx
  JOIN user_index u ON r.user_idx = u.user_idx
  JOIN item_index i ON r.item_idx = i.item_idx
  LEFT JOIN item_index b ON r.because_item_idx = b.item_idx
),
cold AS (
  SELECT p.customer_id, p.segment_id
  FROM user_profiles p
  WHERE p.customer_id NOT IN (SELECT customer_id FROM modelled)
),
segment_items AS (
  SELECT segment_id, item_id, popularity
  FROM (
    SELECT p.segment_id, i.item_id, SUM(x.weight) AS popularity,
           ROW_NUMBER() OVER (PARTITION BY p.segment_id ORDER BY SUM(x.weight) DESC, i.item_id) AS place
    FROM interactions x
    JOIN user_index u ON x.user_idx = u.user_idx
    JOIN user_profiles p ON u.customer_id = p.customer_id
    JOIN item_index i ON x.item_idx = i.item_idx
    WHERE i.in_catalog
    GROUP BY p.segment_id, i.item_id
  )
  WHERE place <= {{top_n}} + {{min_interactions}}
),
candidates AS (
  SELECT c.customer_id, s.item_id, 0 AS tier, s.popularity
  FROM cold c JOIN segment_items s ON c.segment_id = s.segment_id
  UNION ALL
  SELECT c.customer_id, p.item_id, 1 AS tier, p.popularity
  FROM cold c CROSS JOIN popular_items p
),
excluded AS (
  SELECT u.customer_id, i.item_id
  FROM interactions x
  JOIN user_index u ON x.user_idx = u.user_idx
  JOIN item_index i ON x.item_idx = i.item_idx
  WHERE {{exclude_rule}}
),
ranked AS (
  SELECT customer_id, item_id, tier, popularity,
         ROW_NUMBER() OVER (PARTITION BY customer_id ORDER BY tier, popularity DESC, item_id) AS place
  FROM (
    SELECT c.*, ROW_NUMBER() OVER (PARTITION BY c.customer_id, c.item_id ORDER BY c.tier) AS copy
    FROM candidates c
    WHERE NOT EXISTS (SELECT 1 FROM excluded e WHERE e.customer_id = c.customer_id AND e.item_id = c.item_id)
  )
  WHERE copy = 1
)
SELECT r.*
FROM (
  SELECT customer_id, rank, item_id, score, model AS source, because_item_id FROM modelled
  UNION ALL
  SELECT customer_id, CAST(place AS INT) AS rank, item_id, CAST(popularity AS FLOAT) AS score,
         CASE tier WHEN 0 THEN 'segment_popular' ELSE 'popular' END AS source,
         CAST(NULL AS VARCHAR) AS because_item_id
  FROM ranked
  WHERE place <= {{top_n}}
) r
JOIN user_profiles p ON r.customer_id = p.customer_id
WHERE COALESCE(p.marketing_opt_in, false) OR {{recommend_without_opt_in}}
