-- input: model_recommendations, interactions, eval_holdout   output: eval_recommendations
--
-- `persona recommend --model {{model}} --holdout`: the model's top-{{k}} for every user of
-- eval_holdout, beside popularity's (each user's {{k}} most interacted-with items of the input,
-- skipping their own), for sql/18_evaluation.sql. eval_holdout keeps only pairs the user did
-- not interact with in the input, so the model's exclusions (--keep-seen) cannot score.
WITH asked AS (
  SELECT DISTINCT user_idx FROM eval_holdout
),
widest AS (
  SELECT MAX(items) AS items FROM (SELECT COUNT(*) AS items FROM interactions GROUP BY user_idx)
),
popular AS (
  SELECT item_idx, total
  FROM (
    SELECT item_idx, SUM(CAST(weight AS DOUBLE)) AS total,
           ROW_NUMBER() OVER (ORDER BY SUM(CAST(weight AS DOUBLE)) DESC, item_idx) AS place
    FROM interactions
    GROUP BY item_idx
  ) p
  CROSS JOIN widest w
  WHERE p.place <= {{k}} + w.items
),
popular_ranked AS (
  SELECT a.user_idx, p.item_idx,
         ROW_NUMBER() OVER (PARTITION BY a.user_idx ORDER BY p.total DESC, p.item_idx) AS rank
  FROM asked a
  CROSS JOIN popular p
  LEFT JOIN interactions x ON x.user_idx = a.user_idx AND x.item_idx = p.item_idx
  WHERE x.item_idx IS NULL
)
SELECT '{{model}}' AS model, r.user_idx, r.rank, r.item_idx
FROM model_recommendations r
JOIN asked a ON r.user_idx = a.user_idx
WHERE r.rank <= {{k}}
UNION ALL
SELECT 'popular' AS model, user_idx, CAST(rank AS INT) AS rank, item_idx
FROM popular_ranked
WHERE rank <= {{k}}
