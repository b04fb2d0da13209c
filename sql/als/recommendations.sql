-- input: als_pairs, als_user_rows, als_users, als_items   output: recommendations
--
-- `persona als`: each user's top-N under the model (als_top_n), without the items the user
-- interacted with unless --keep-seen ({{seen_filter}}), under the original ids.
WITH seen AS (
  SELECT user_idx, array_agg(item_idx) AS items
  FROM als_pairs {{seen_filter}}
  GROUP BY user_idx
),
ranked AS (
  SELECT f.user_idx, unnest(als_top_n(f.factors, s.items)) AS rec
  FROM als_user_rows f
  LEFT JOIN seen s ON f.user_idx = s.user_idx
)
SELECT u.id AS {{user}}, r.rec['rank'] AS rank, i.id AS {{item}}, r.rec['score'] AS score
FROM ranked r
JOIN als_users u ON r.user_idx = u.idx
JOIN als_items i ON r.rec['item_idx'] = i.idx
