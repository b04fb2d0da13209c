-- input: interactions (the evaluation's: eval_train)        output: customer_neighbour_rows (eval_customer_neighbours)
--
-- Customer-to-customer neighbours ("customers like this one"): the {{uknn_neighbours}} most similar
-- customers of every customer of {{knn_interactions}}, by the Pearson correlation of their
-- interaction weights, with every item a column and no interaction a 0 (what scikit-learn's
-- NearestNeighbors(metric="correlation") computes on the dense matrix):
--   corr(u, v) = (Σ_i x_ui x_vi - s_u s_v / n) / (σ_u σ_v),   σ_u = sqrt(Σ_i x_ui² - s_u² / n)
-- with s_u the customer's total weight and n the number of items. Only the first sum needs
-- both customers, and it is 0 unless they share an item; two customers who share nothing
-- correlate negatively, so the positive neighbours are all among the customers who share an
-- item, and nobody compares every pair.
--
-- Even so, an item's customers paired with each other cost its customers squared (a popular
-- item is bought by thousands). So each item's customers are cut into blocks of {{uknn_block}}
-- (in the order of a hash of customer and item, the same on every run) and pairs are formed
-- within blocks only. A pair that shares several items meets in some block with good odds;
-- its estimated dot product counts each meeting once for every pair the item's blocking
-- skipped. The {{uknn_candidates}} best estimates of each customer are then computed exactly
-- with sparse_dot over the two customers' whole item lists, and the best {{uknn_neighbours}}
-- by exact correlation are kept (docs/benchmarks.md measures the recall of this pruning
-- against the exact top neighbours). Weights are summed as whole numbers of 1e-6 and ties
-- rank by the neighbour's index, so the result is the same on every engine and partitioning.
WITH x AS (
  SELECT user_idx, item_idx, CAST(weight AS DOUBLE) AS w
  FROM {{knn_interactions}}
  WHERE weight > 0
),
corpus AS (
  SELECT CAST(COUNT(DISTINCT item_idx) AS DOUBLE) AS n FROM x
),
sums AS (
  SELECT user_idx,
         CAST(SUM(CAST(round(w * 1e6) AS BIGINT)) AS DOUBLE) / 1e6 AS s,
         CAST(SUM(CAST(round(w * w * 1e6) AS BIGINT)) AS DOUBLE) / 1e6 AS q
  FROM x
  GROUP BY user_idx
),
customers AS (
  SELECT s.user_idx, s.s / SQRT(c.n) AS centre, SQRT(GREATEST(s.q - s.s * s.s / c.n, 0.0)) AS spread
  FROM sums s CROSS JOIN corpus c
),
vectors AS (
  SELECT c.user_idx, c.centre, c.spread, l.items, l.weights
  FROM customers c
  JOIN (
    SELECT user_idx, array_agg(item_idx ORDER BY item_idx) AS items, array_agg(w ORDER BY item_idx) AS weights
    FROM x
    GROUP BY user_idx
  ) l ON c.user_idx = l.user_idx
),
popularity AS (
  SELECT item_idx, COUNT(*) AS buyers FROM x GROUP BY item_idx
),
blocked AS (
  SELECT x.user_idx, x.item_idx, x.w,
         CAST(p.buyers - 1 AS DOUBLE) / CAST(LEAST(p.buyers, {{uknn_block}}) - 1 AS DOUBLE) AS boost,
         CAST(floor(CAST(ROW_NUMBER() OVER (
           PARTITION BY x.item_idx ORDER BY unit_hash(7, x.user_idx, x.item_idx), x.user_idx
         ) - 1 AS DOUBLE) / {{uknn_block}}) AS BIGINT) AS block
  FROM x
  JOIN popularity p ON x.item_idx = p.item_idx
  WHERE p.buyers >= 2
),
estimated AS (
  SELECT a.user_idx, b.user_idx AS neighbour_idx,
         CAST(SUM(CAST(round(a.w * b.w * a.boost * 1e6) AS BIGINT)) AS DOUBLE) / 1e6 AS dot
  FROM blocked a
  JOIN blocked b ON a.item_idx = b.item_idx AND a.block = b.block AND a.user_idx <> b.user_idx
  GROUP BY a.user_idx, b.user_idx
),
-- (The joins below put the small table first: DataFusion builds its hash table from the left
-- input, and the pairs on the right then stream through.)
candidates AS (
  SELECT user_idx, neighbour_idx
  FROM (
    SELECT e.user_idx, e.neighbour_idx,
           ROW_NUMBER() OVER (
             PARTITION BY e.user_idx
             ORDER BY (e.dot - e.centre * v.centre) / (e.spread * v.spread) DESC, e.neighbour_idx
           ) AS place
    FROM customers v
    JOIN (
      SELECT e.user_idx, e.neighbour_idx, e.dot, u.centre, u.spread
      FROM customers u
      JOIN estimated e ON e.user_idx = u.user_idx
      WHERE u.spread > 0
    ) e ON e.neighbour_idx = v.user_idx
    WHERE v.spread > 0
  )
  WHERE place <= {{uknn_candidates}}
),
exact AS (
  SELECT k.user_idx, k.neighbour_idx,
         (sparse_dot(k.items, k.weights, v.items, v.weights) - k.centre * v.centre) / (k.spread * v.spread) AS similarity
  FROM vectors v
  JOIN (
    SELECT k.user_idx, k.neighbour_idx, u.items, u.weights, u.centre, u.spread
    FROM vectors u
    JOIN candidates k ON k.user_idx = u.user_idx
  ) k ON k.neighbour_idx = v.user_idx
)
SELECT user_idx, neighbour_idx, CAST(similarity AS FLOAT) AS similarity, CAST(rank AS INT) AS rank
FROM (
  SELECT user_idx, neighbour_idx, similarity,
         ROW_NUMBER() OVER (PARTITION BY user_idx ORDER BY similarity DESC, neighbour_idx) AS rank
  FROM exact
  WHERE similarity > 0
)
WHERE rank <= {{uknn_neighbours}}
