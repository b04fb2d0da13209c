-- input: item_factor_rows, item_index                 output: item_factors
--
-- The fitted ALS model, item side: one latent vector per item that customers interacted with,
-- and whether the item is in the catalog (only catalog items are recommended).
SELECT i.item_id, i.in_catalog, f.factors
FROM item_factor_rows f
JOIN item_index i ON f.item_idx = i.item_idx
