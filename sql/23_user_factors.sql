-- input: user_factor_rows, user_index                 output: user_factors
--
-- The fitted ALS model, customer side: one latent vector per customer with item interactions.
-- A customer's predicted preference for an item is the dot product of the two vectors, which
-- is what als_recommendations ranks by; other jobs can reuse the vectors (lookalikes, ranking).
SELECT u.customer_id, f.factors
FROM user_factor_rows f
JOIN user_index u ON f.user_idx = u.user_idx
