-- input: propensity_holdout                                 output: propensity_evaluation
--
-- How well tonight's propensity model ranks and how true its probabilities are, on the test
-- customers (a fifth of the training customers, by a hash of their id, never used to fit or
-- calibrate): features up to the cutoff, label = bought in the horizon after it. Three models:
--   logistic               the published, calibrated probability;
--   logistic_uncalibrated  the regression's own probability, before calibration;
--   recency_frequency      a rule to beat: purchases in the window, ties broken by recency
--                          (purchases + 1 / (2 + recency_days)); a ranking, not a probability.
--
-- Long format, one row per (model, metric[, decile]):
--   decile NULL: customers, positives, base_rate, auc (ROC), average_precision (PR-AUC, as
--     scikit-learn's average_precision_score), top_decile_lift, top_decile_capture, and for
--     the probabilities log_loss, brier and ece (expected calibration error over ten bins of
--     width 0.1, weighted by their customers);
--   decile 1..10 (1 = highest scores; ties by customer id), the gains table: customers,
--     positives, conversion, lift (conversion / base_rate), capture (share of all positives)
--     and cumulative_capture; and for the probabilities mean_probability, the decile's
--     average predicted probability (beside its conversion: the calibration plot).
-- A metric that is undefined on this holdout (AUC without a positive) is NULL, never NaN.
WITH scored AS (
  SELECT 'logistic' AS model, customer_id, probability AS score, probability, label FROM propensity_holdout
  UNION ALL
  SELECT 'logistic_uncalibrated', customer_id, raw_probability AS score, raw_probability AS probability, label FROM propensity_holdout
  UNION ALL
  SELECT 'recency_frequency', customer_id, baseline_score AS score, CAST(NULL AS DOUBLE) AS probability, label FROM propensity_holdout
),
totals AS (
  SELECT model, COUNT(*) AS n, SUM(label) AS positives FROM scored GROUP BY model
),
by_score AS (
  SELECT model, score, COUNT(*) AS n, SUM(label) AS pos FROM scored GROUP BY model, score
),
ranked AS (
  SELECT
    model, score, n, pos,
    COALESCE(SUM(n - pos) OVER (PARTITION BY model ORDER BY score
      ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0)                     AS negatives_below,
    SUM(pos) OVER (PARTITION BY model ORDER BY score DESC ROWS UNBOUNDED PRECEDING) AS positives_above,
    SUM(n) OVER (PARTITION BY model ORDER BY score DESC ROWS UNBOUNDED PRECEDING)   AS customers_above
  FROM by_score
),
ranking AS (
  SELECT
    r.model,
    SUM(r.pos * (r.negatives_below + 0.5 * (r.n - r.pos)))
      / NULLIF(MAX(t.positives) * (MAX(t.n) - MAX(t.positives)), 0)             AS auc,
    SUM(r.pos * 1.0 * r.positives_above / r.customers_above)
      / NULLIF(MAX(t.positives), 0)                                             AS average_precision
  FROM ranked r JOIN totals t ON r.model = t.model
  GROUP BY r.model
),
calibration AS (
  SELECT
    model,
    -AVG(label * ln(greatest(probability, 1e-15))
         + (1 - label) * ln(greatest(1 - probability, 1e-15)))                  AS log_loss,
    AVG((probability - label) * (probability - label))                          AS brier
  FROM scored
  WHERE probability IS NOT NULL
  GROUP BY model
),
bins AS (
  SELECT model, abs(SUM(probability) - SUM(label)) AS gap
  FROM scored
  WHERE probability IS NOT NULL
  GROUP BY model, least(floor(probability * 10), 9)
),
ece AS (
  SELECT b.model, SUM(b.gap) / MAX(t.n) AS ece
  FROM bins b JOIN totals t ON b.model = t.model
  GROUP BY b.model
),
deciles AS (
  SELECT model, label, probability, NTILE(10) OVER (PARTITION BY model ORDER BY score DESC, customer_id) AS decile
  FROM scored
),
gains AS (
  SELECT
    d.model,
    CAST(d.decile AS INT) AS decile,
    COUNT(*) * 1.0 AS customers,
    SUM(d.label) * 1.0 AS positives,
    SUM(d.label) * 1.0 / COUNT(*) AS conversion,
    (SUM(d.label) * 1.0 / COUNT(*)) / NULLIF(MAX(t.positives) * 1.0 / MAX(t.n), 0) AS lift,
    SUM(d.label) * 1.0 / NULLIF(MAX(t.positives), 0) AS capture,
    AVG(d.probability) AS mean_probability
  FROM deciles d JOIN totals t ON d.model = t.model
  GROUP BY d.model, d.decile
),
cumulative AS (
  SELECT *, SUM(capture) OVER (PARTITION BY model ORDER BY decile ROWS UNBOUNDED PRECEDING) AS cumulative_capture
  FROM gains
),
whole AS (
  SELECT t.model, 'customers' AS metric, t.n * 1.0 AS value FROM totals t
  UNION ALL SELECT t.model, 'positives', t.positives * 1.0 FROM totals t
  UNION ALL SELECT t.model, 'base_rate', t.positives * 1.0 / NULLIF(t.n, 0) FROM totals t
  UNION ALL SELECT model, 'auc', auc FROM ranking
  UNION ALL SELECT model, 'average_precision', average_precision FROM ranking
  UNION ALL SELECT model, 'log_loss', log_loss FROM calibration
  UNION ALL SELECT model, 'brier', brier FROM calibration
  UNION ALL SELECT model, 'ece', ece FROM ece
  UNION ALL SELECT model, 'top_decile_lift', lift FROM gains WHERE decile = 1
  UNION ALL SELECT model, 'top_decile_capture', capture FROM gains WHERE decile = 1
),
per_decile AS (
  SELECT model, decile, 'customers' AS metric, customers AS value FROM cumulative
  UNION ALL SELECT model, decile, 'positives', positives FROM cumulative
  UNION ALL SELECT model, decile, 'conversion', conversion FROM cumulative
  UNION ALL SELECT model, decile, 'lift', lift FROM cumulative
  UNION ALL SELECT model, decile, 'capture', capture FROM cumulative
  UNION ALL SELECT model, decile, 'cumulative_capture', cumulative_capture FROM cumulative
  UNION ALL SELECT model, decile, 'mean_probability', mean_probability FROM cumulative WHERE mean_probability IS NOT NULL
)
SELECT model, metric, CAST(NULL AS INT) AS decile, CASE WHEN isnan(value) THEN NULL ELSE value END AS value FROM whole
UNION ALL
SELECT model, metric, decile, CASE WHEN isnan(value) THEN NULL ELSE value END AS value FROM per_decile
