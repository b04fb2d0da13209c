-- input: propensity_coefficients                            output: propensity_model
--
-- The propensity model, one row per term: every feature (a one-hot indicator is
-- `column=value`), then `(intercept)`, `(calibration slope)` and `(calibration intercept)`.
-- The model is p = σ(a·z + b) with z = intercept + Σ standardized_coefficient · (t(x) - mean) / scale,
-- t the feature's transform (`log1p`: ln(1 + max(x, 0)); `indicator`: 1 when the column has
-- the value), a missing value imputed with the mean, and (a, b) the calibration's slope and
-- intercept. `coefficient` is per unit of t(x) (standardized_coefficient / scale); for the
-- intercept it is the intercept on that scale. `importance` ranks the features by the size of
-- their standardised coefficient (1 = moves the score most per standard deviation).
SELECT
  term,
  transform,
  coefficient,
  standardized_coefficient,
  mean,
  scale,
  imputed_rows,
  CASE WHEN mean IS NOT NULL
    THEN CAST(RANK() OVER (ORDER BY CASE WHEN mean IS NOT NULL THEN abs(standardized_coefficient) END DESC NULLS LAST) AS INT)
  END AS importance
FROM propensity_coefficients
