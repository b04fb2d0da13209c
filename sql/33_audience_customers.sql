-- input: user_profiles, audience_propensity, recommendations, suppressions   output: audience_customers
--
-- The night's customer view that every [[audiences]] predicate (`where`) and `order_by` is
-- evaluated over: one row per profiled customer with
--   every user_profiles column  segment_id, segment_label, lifecycle, price_band, the features,
--                               interests, loyalty_tier, country, marketing_opt_in, ...;
--   probability, decile         the purchase-propensity model's, when [propensity] enabled
--                               (decile 1 = the tenth most likely to buy); a predicate that
--                               names them when it is off is refused;
--   top_item_id, top_item_source  the customer's first recommendation and the model or
--                               fallback it came from (NULL for customers who get none);
--   suppressed                  whether the customer id is in the `suppressions/` input.
-- Opt-out and suppression are applied after the predicate, whatever it says
-- (jobs/src/stages/audiences.rs): COALESCE(marketing_opt_in, false) AND NOT suppressed.
SELECT
  p.*,
  q.probability,
  q.decile,
  r.item_id AS top_item_id,
  r.source AS top_item_source,
  s.customer_id IS NOT NULL AS suppressed
FROM user_profiles p
LEFT JOIN audience_propensity q ON q.customer_id = p.customer_id
LEFT JOIN (
  SELECT customer_id, item_id, source FROM recommendations WHERE rank = 1
) r ON r.customer_id = p.customer_id
LEFT JOIN (
  SELECT DISTINCT CAST(customer_id AS VARCHAR) AS customer_id
  FROM suppressions
  WHERE customer_id IS NOT NULL
) s ON s.customer_id = p.customer_id
