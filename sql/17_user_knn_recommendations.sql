-- input: interactions, customer_neighbour_rows, item_index (the evaluation's: eval_train, eval_customer_neighbours, eval_holdout)   output: user_knn_recommendations (eval_user_knn)
--
-- The evaluation's recommendations of the customer-to-customer model (over {{knn_interactions}}
-- and {{knn_neighbour_table}}, for the customers {{knn_customers}} selects).
--
-- Top-{{knn_top_n}} items per customer u from what u's similar customers v interacted with,
-- among catalog items, skipping the customer's items that {{knn_exclude}} selects. The
-- score of item i ({{uknn_prediction}}):
--   weighted_sum   Σ_v sim(u, v) x_vi over the neighbours who have i: items that many close
--                  neighbours like score high (the default; best on implicit feedback);
--   mean_centred   r̄_u + Σ_v sim(u, v) (x_vi - r̄_v) / Σ_v |sim(u, v)| over the neighbours
--                  who have i, with r̄ a customer's mean weight over their items: the textbook
--                  user-based formula for ratings (one neighbour's favourite can top it).
-- Contributions are summed as whole numbers of 1e-9 (exact in any order) and ties rank by
-- item, so the result is the same on every engine.
WITH x AS (
  SELECT user_idx, item_idx, CAST(weight AS DOUBLE) AS w, purchased
  FROM {{knn_interactions}}
),
means AS (
  SELECT user_idx, CAST(SUM(CAST(round(w * 1e9) AS BIGINT)) AS DOUBLE) / 1e9 / COUNT(*) AS mean
  FROM x
  GROUP BY user_idx
),
asked AS (
  SELECT DISTINCT x.user_idx FROM x WHERE {{knn_customers}}
),
votes AS (
  SELECT n.user_idx, v.item_idx,
         SUM(CAST(round(CAST(n.similarity AS DOUBLE)
               * (v.w - CASE WHEN '{{uknn_prediction}}' = 'mean_centred' THEN m.mean ELSE 0.0 END)
               * 1e9) AS BIGINT)) AS grains,
         SUM(CAST(round(ABS(CAST(n.similarity AS DOUBLE)) * 1e9) AS BIGINT)) AS similarity_grains
  FROM {{knn_neighbour_table}} n
  JOIN asked a ON n.user_idx = a.user_idx
  JOIN x v ON v.user_idx = n.neighbour_idx
  JOIN means m ON m.user_idx = n.neighbour_idx
  GROUP BY n.user_idx, v.item_idx
),
scored AS (
  SELECT s.user_idx, s.item_idx,
         CASE WHEN '{{uknn_prediction}}' = 'mean_centred'
           THEN m.mean + CAST(s.grains AS DOUBLE) / CAST(s.similarity_grains AS DOUBLE)
           ELSE CAST(s.grains AS DOUBLE) / 1e9
         END AS score
  FROM votes s
  JOIN means m ON m.user_idx = s.user_idx
  WHERE s.similarity_grains > 0
),
excluded AS (
  SELECT x.user_idx, x.item_idx FROM x WHERE {{knn_exclude}}
)
SELECT user_idx, CAST(rank AS INT) AS rank, item_idx, CAST(score AS FLOAT) AS score,
       CAST(NULL AS INT) AS because_item_idx
FROM (
  SELECT s.user_idx, s.item_idx, s.score,
         ROW_NUMBER() OVER (PARTITION BY s.user_idx ORDER BY s.score DESC, s.item_idx) AS rank
  FROM scored s
  JOIN item_index i ON s.item_idx = i.item_idx AND i.in_catalog
  LEFT JOIN excluded e ON e.user_idx = s.user_idx AND e.item_idx = s.item_idx
  WHERE e.item_idx IS NULL
)
WHERE rank <= {{knn_top_n}}
