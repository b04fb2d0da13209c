-- input: interactions, item_neighbour_rows, item_index (the evaluation's: eval_train, eval_item_neighbours, eval_holdout)   output: item_knn_recommendations (eval_item_knn)
--
-- The evaluation's recommendations of the item-to-item model (over {{knn_interactions}} and
-- {{knn_neighbour_table}}, for the customers {{knn_customers}} selects).
--
-- Top-{{knn_top_n}} items per customer under the item-to-item model: an item's score is the sum,
-- over the customer's items, of the customer's weight for the item times its similarity to
-- the candidate (`implicit`'s ItemItemRecommender), among catalog items, skipping the
-- customer's items that {{knn_exclude}} selects. `because_item_idx` is the customer's item
-- that contributed most to the score: the "because you interacted with ..." of a
-- recommendation, found for the top items only. Contributions are summed as whole numbers of
-- 1e-9 (exact in any order) and ties rank by item, so the result is the same on every engine.
WITH customers AS (
  SELECT x.user_idx, x.item_idx, CAST(x.weight AS DOUBLE) AS weight, x.purchased
  FROM {{knn_interactions}} x
  WHERE {{knn_customers}}
),
scored AS (
  SELECT c.user_idx, n.neighbour_idx AS item_idx,
         SUM(CAST(round(c.weight * CAST(n.similarity AS DOUBLE) * 1e9) AS BIGINT)) AS grains
  FROM customers c
  JOIN {{knn_neighbour_table}} n ON c.item_idx = n.item_idx
  GROUP BY c.user_idx, n.neighbour_idx
),
excluded AS (
  SELECT c.user_idx, c.item_idx FROM customers c WHERE {{knn_exclude}}
),
top AS (
  SELECT user_idx, item_idx, grains, rank
  FROM (
    SELECT s.user_idx, s.item_idx, s.grains,
           ROW_NUMBER() OVER (PARTITION BY s.user_idx ORDER BY s.grains DESC, s.item_idx) AS rank
    FROM scored s
    JOIN item_index i ON s.item_idx = i.item_idx AND i.in_catalog
    LEFT JOIN excluded e ON e.user_idx = s.user_idx AND e.item_idx = s.item_idx
    WHERE e.item_idx IS NULL
  )
  WHERE rank <= {{knn_top_n}}
),
because AS (
  SELECT t.user_idx, t.item_idx, c.item_idx AS because_item_idx,
         ROW_NUMBER() OVER (
           PARTITION BY t.user_idx, t.item_idx
           ORDER BY c.weight * CAST(n.similarity AS DOUBLE) DESC, c.item_idx
         ) AS place
  FROM top t
  JOIN customers c ON c.user_idx = t.user_idx
  JOIN {{knn_neighbour_table}} n ON n.item_idx = c.item_idx AND n.neighbour_idx = t.item_idx
)
SELECT t.user_idx, CAST(t.rank AS INT) AS rank, t.item_idx,
       CAST(CAST(t.grains AS DOUBLE) / 1e9 AS FLOAT) AS score, b.because_item_idx
FROM top t
JOIN because b ON b.user_idx = t.user_idx AND b.item_idx = t.item_idx AND b.place = 1
