-- input: eval_train, eval_holdout, {{factors}}         output: eval_recommendations_{{model}}
--
-- The evaluation's top-k of one model ({{model}}: als, or popularity as a rank-1 model) for
-- every customer of eval_holdout with a row in {{factors}}, excluding the customer's training
-- items; with the als_top_n registered for that model.
WITH seen AS (
  SELECT user_idx, array_agg(item_idx) AS items FROM eval_train GROUP BY user_idx
),
asked AS (
  SELECT DISTINCT user_idx FROM eval_holdout
),
ranked AS (
  SELECT f.user_idx, unnest(als_top_n(f.factors, s.items)) AS rec
  FROM {{factors}} f
  JOIN asked a ON f.user_idx = a.user_idx
  LEFT JOIN seen s ON f.user_idx = s.user_idx
)
SELECT '{{model}}' AS model, user_idx, rec['rank'] AS rank, rec['item_idx'] AS item_idx
FROM ranked
