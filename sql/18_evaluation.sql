-- input: eval_recommendations, eval_holdout           output: evaluation
--
-- Offline quality of each model on the holdout days, one row per model (als, popular, and
-- item_knn and user_knn when they are on):
--   precision_at_k  hits in the top k / k
--   recall_at_k     hits in the top k / the customer's holdout items
--   ndcg_at_k       DCG of the hits (1 / log2(rank + 1)) / the best possible DCG
--   map_at_k        mean over hits of precision at the hit's rank / min(holdout items, k)
--   coverage        distinct items recommended / catalog items that could be recommended
--   published       whether the night publishes this model's recommendations
--                   ([recommendations] model = {{recommendation_model}}; "auto" picks the best
--                   NDCG@k among the models other than popular, ties to the first by name)
-- averaged over the customers that have both training history and holdout items. Per-customer
-- values are summed as decimals (18 digits after the point): exact, so the averages are the
-- same to the last bit however the rows are partitioned.
WITH truth AS (
  SELECT user_idx, COUNT(*) AS relevant FROM eval_holdout GROUP BY user_idx
),
ideal AS (
  SELECT n, SUM(1.0 / log2(n + 1.0)) OVER (ORDER BY n) AS idcg
  FROM (SELECT unnest(range(1, {{k}} + 1)) AS n)
),
hits AS (
  SELECT r.model, r.user_idx, r.rank,
         ROW_NUMBER() OVER (PARTITION BY r.model, r.user_idx ORDER BY r.rank) AS hit_no
  FROM eval_recommendations r
  JOIN eval_holdout h ON r.user_idx = h.user_idx AND r.item_idx = h.item_idx
  WHERE r.rank <= {{k}}
),
per_user AS (
  SELECT m.model, t.user_idx, t.relevant,
         COUNT(h.rank) AS hits,
         CAST(COALESCE(SUM(CAST(1.0 / log2(h.rank + 1.0) AS DECIMAL(38, 18))), 0) AS DOUBLE) AS dcg,
         CAST(COALESCE(SUM(CAST(CAST(h.hit_no AS DOUBLE) / h.rank AS DECIMAL(38, 18))), 0) AS DOUBLE) AS ap_sum
  FROM truth t
  CROSS JOIN (SELECT DISTINCT model FROM eval_recommendations) m
  LEFT JOIN hits h ON h.model = m.model AND h.user_idx = t.user_idx
  GROUP BY m.model, t.user_idx, t.relevant
),
coverage AS (
  SELECT model, COUNT(DISTINCT item_idx) AS items_recommended
  FROM eval_recommendations
  WHERE rank <= {{k}}
  GROUP BY model
)
SELECT scores.*,
       CASE WHEN '{{recommendation_model}}' = 'auto'
         THEN model = FIRST_VALUE(model) OVER (ORDER BY model = 'popular', ndcg_at_k DESC, model)
         ELSE model = '{{recommendation_model}}'
       END AS published
FROM (
  SELECT
    p.model,
    CAST({{k}} AS INT) AS k,
    COUNT(*) AS users,
    CAST(SUM(p.hits) AS DOUBLE) / ({{k}} * COUNT(*)) AS precision_at_k,
    CAST(AVG(CAST(CAST(p.hits AS DOUBLE) / p.relevant AS DECIMAL(38, 18))) AS DOUBLE) AS recall_at_k,
    CAST(AVG(CAST(p.dcg / i.idcg AS DECIMAL(38, 18))) AS DOUBLE) AS ndcg_at_k,
    CAST(AVG(CAST(p.ap_sum / LEAST(p.relevant, {{k}}) AS DECIMAL(38, 18))) AS DOUBLE) AS map_at_k,
    CAST(MAX(c.items_recommended) AS DOUBLE) / {{candidate_items}} AS coverage
  FROM per_user p
  JOIN ideal i ON i.n = LEAST(p.relevant, {{k}})
  JOIN coverage c ON c.model = p.model
  GROUP BY p.model
) scores
ORDER BY model
