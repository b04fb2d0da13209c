-- input: interactions (the evaluation's: eval_train)        output: item_neighbour_rows (eval_item_neighbours)
--
-- Item-to-item neighbours from co-interaction ("customers who liked this also liked"): the
-- {{knn_neighbours}} most similar items of every item of {{knn_interactions}}, computed from the
-- implicit-feedback matrix without ever forming it densely. Two items are candidates only when some customer
-- interacted with both (a self-join on the customer), so the cost is the sum over customers of
-- their items squared, not items x items.
--
-- Each (customer, item) weight w is first re-weighted, as `implicit`'s recommenders do:
--   cosine  w / ||item||, the item's column of weights scaled to unit length, so the dot
--           product of two items is their cosine similarity (`CosineRecommender`);
--   bm25    w (K1 + 1) / (K1 ((1 - B) + B len / avg_len) + w) * idf, with len the item's total
--           weight, avg_len its mean over items, idf = ln(items) - ln(1 + the customer's
--           items): a customer who touches everything says little about any two items
--           (`BM25Recommender`, K1 = {{bm25_k1}}, B = {{bm25_b}}).
-- The similarity of two items is the dot product of their re-weighted columns; the
-- similarity measure is {{knn_similarity}}. An item is not its own neighbour. The products
-- are summed as whole numbers of 1e-9 (exact, so in any order: the same on every engine and
-- partitioning, and faster than decimals) and ties rank by the neighbour's index.
WITH item_stats AS (
  SELECT item_idx,
         SQRT(SUM(CAST(weight AS DOUBLE) * CAST(weight AS DOUBLE))) AS norm,
         SUM(CAST(weight AS DOUBLE)) AS total
  FROM {{knn_interactions}}
  GROUP BY item_idx
),
user_stats AS (
  SELECT user_idx, COUNT(*) AS items
  FROM {{knn_interactions}}
  GROUP BY user_idx
),
corpus AS (
  SELECT COUNT(*) AS items, AVG(total) AS avg_total FROM item_stats
),
weighted AS (
  SELECT
    x.user_idx,
    x.item_idx,
    CASE '{{knn_similarity}}'
      WHEN 'cosine' THEN CAST(x.weight AS DOUBLE) / s.norm
      ELSE CAST(x.weight AS DOUBLE) * ({{bm25_k1}} + 1.0)
           / ({{bm25_k1}} * ((1.0 - {{bm25_b}}) + {{bm25_b}} * s.total / c.avg_total) + CAST(x.weight AS DOUBLE))
           * (ln(CAST(c.items AS DOUBLE)) - ln(1.0 + CAST(u.items AS DOUBLE)))
    END AS w
  FROM {{knn_interactions}} x
  JOIN item_stats s ON x.item_idx = s.item_idx
  JOIN user_stats u ON x.user_idx = u.user_idx
  CROSS JOIN corpus c
  WHERE x.weight > 0
),
pairs AS (
  SELECT a.item_idx, b.item_idx AS neighbour_idx,
         CAST(SUM(CAST(round(a.w * b.w * 1e9) AS BIGINT)) AS DOUBLE) / 1e9 AS similarity
  FROM weighted a
  JOIN weighted b ON a.user_idx = b.user_idx AND a.item_idx <> b.item_idx
  GROUP BY a.item_idx, b.item_idx
)
SELECT item_idx, neighbour_idx, CAST(similarity AS FLOAT) AS similarity, CAST(rank AS INT) AS rank
FROM (
  SELECT item_idx, neighbour_idx, similarity,
         ROW_NUMBER() OVER (PARTITION BY item_idx ORDER BY similarity DESC, neighbour_idx) AS rank
  FROM pairs
  WHERE similarity > 0
)
WHERE rank <= {{knn_neighbours}}
