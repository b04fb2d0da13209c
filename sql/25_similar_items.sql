-- input: item_factor_rows, item_index                 output: similar_items
--
-- For every catalog item, the {{top_n}} catalog items closest to it in the ALS model, by
-- cosine similarity of their factor vectors ("customers who liked this also liked").
-- als_similar carries the unit-length item factors and skips the item itself.
WITH ranked AS (
  SELECT f.item_idx, unnest(als_similar(f.factors, make_array(f.item_idx))) AS rec
  FROM item_factor_rows f
  JOIN item_index i ON f.item_idx = i.item_idx
  WHERE i.in_catalog
)
SELECT
  a.item_id,
  r.rec['rank']  AS rank,
  b.item_id      AS similar_item_id,
  r.rec['score'] AS score
FROM ranked r
JOIN item_index a ON r.item_idx = a.item_idx
JOIN item_index b ON r.rec['item_idx'] = b.item_idx
