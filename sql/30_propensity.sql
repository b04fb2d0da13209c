-- input: propensity_scores                                  output: propensity
--
-- One row per customer scored tonight (every CRM customer, and every customer with events in
-- the last lookback_days - horizon_days days): the calibrated probability that they purchase
-- in the next {{horizon_days}} days, its decile among tonight's customers (1 = the tenth most
-- likely to buy; ties by customer id), and the three features that push their score most,
-- up or down, from the average customer's (coefficient x standardised value; `purchases_7d ↑`
-- raises it, `recency_days ↓` lowers it). The fit, calibration and the scores come from the
-- propensity stage (jobs/src/propensity/); its coefficients are in propensity_model.
--
-- Customers who did not agree to marketing are scored too unless [privacy]
-- score_without_opt_in = false: a probability is analysis, not a message.
SELECT
  customer_id,
  in_crm,
  probability,
  CAST(NTILE(10) OVER (ORDER BY probability DESC, customer_id) AS INT) AS decile,
  top_features
FROM propensity_scores
WHERE {{score_without_opt_in}} OR marketing_opt_in = 1
