//! The statistics of an A/B test, computed from each arm's summary (customers, mean, variance):
//! what an aggregation returns, so the per-customer rows never leave the engine.
//!
//! The formulas are the textbook ones that GrowthBook's frequentist engine and scipy /
//! statsmodels use, and `scripts/check-experiment-stats.py` compares every figure with scipy and
//! statsmodels on the same per-customer table:
//! - means: Welch's t-test (unequal variances, Welch–Satterthwaite degrees of freedom), the
//!   absolute lift's interval from the same t distribution (scipy's `ttest_ind(equal_var=False)`
//!   and its `confidence_interval`);
//! - conversion: the two-proportion z-test with the pooled rate (statsmodels'
//!   `proportions_ztest`), the absolute lift's Wald interval with unpooled variances;
//! - the relative lift `mean_t / mean_c − 1` and its interval by the delta method (normal);
//! - CUPED: each customer's metric less `θ (x − x̄)`, `x` the same metric before assignment and
//!   `θ = cov(x, y) / var(x)` pooled over the arms (Deng et al. 2013);
//! - the sample-ratio-mismatch χ² test (scipy's `chisquare`);
//! - Holm's and Benjamini–Hochberg's adjusted p-values (statsmodels' `multipletests`);
//! - customers per arm for a relative minimum detectable effect on a conversion rate
//!   (statsmodels' `NormalIndPower` on Cohen's h).

use serde::Serialize;
use statrs::distribution::{ChiSquared, ContinuousCDF, Normal, StudentsT};

/// One arm's metric, summarised.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Summary {
    /// Customers.
    pub n: f64,
    /// Mean of the metric (for conversion, the rate).
    pub mean: f64,
    /// Sample variance (n − 1 in the denominator).
    pub variance: f64,
}

/// A treatment arm against the control.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Comparison {
    /// `mean_t − mean_c`.
    pub lift: f64,
    /// Its confidence interval.
    pub lift_low: f64,
    /// Its confidence interval's upper end.
    pub lift_high: f64,
    /// `mean_t / mean_c − 1` (undefined, NaN, when the control's mean is 0).
    pub relative_lift: f64,
    /// Its delta-method confidence interval.
    pub relative_low: f64,
    /// Its upper end.
    pub relative_high: f64,
    /// The test statistic (t or z).
    pub statistic: f64,
    /// Degrees of freedom of the t-test (none for the z-test).
    pub df: Option<f64>,
    /// Two-sided p-value.
    pub p_value: f64,
}

/// The standard normal distribution.
fn normal() -> Normal {
    // Mean 0 and standard deviation 1 are valid parameters.
    Normal::standard()
}

/// The two-sided critical value of the standard normal at level `alpha`.
pub fn z_critical(alpha: f64) -> f64 {
    normal().inverse_cdf(1.0 - alpha / 2.0)
}

/// Welch's t-test of `treatment` against `control`, with the lift's `1 − alpha` interval.
pub fn welch(control: &Summary, treatment: &Summary, alpha: f64) -> Comparison {
    let (vc, vt) = (
        control.variance / control.n,
        treatment.variance / treatment.n,
    );
    let se = (vc + vt).sqrt();
    let lift = treatment.mean - control.mean;
    let df = (vc + vt).powi(2) / (vc * vc / (control.n - 1.0) + vt * vt / (treatment.n - 1.0));
    let (statistic, p_value, critical) = match StudentsT::new(0.0, 1.0, df) {
        Ok(t) if se > 0.0 => {
            let statistic = lift / se;
            (
                statistic,
                2.0 * t.cdf(-statistic.abs()),
                t.inverse_cdf(1.0 - alpha / 2.0),
            )
        }
        _ => (f64::NAN, f64::NAN, f64::NAN),
    };
    let (relative_lift, relative_low, relative_high) =
        relative(control, treatment, z_critical(alpha));
    Comparison {
        lift,
        lift_low: lift - critical * se,
        lift_high: lift + critical * se,
        relative_lift,
        relative_low,
        relative_high,
        statistic,
        df: Some(df),
        p_value,
    }
}

/// The two-proportion z-test of `treatment`'s rate against `control`'s (the means of 0/1
/// metrics; their variances are taken as `p (1 − p)`), pooled for the test and unpooled for the
/// lift's Wald interval.
pub fn two_proportions(control: &Summary, treatment: &Summary, alpha: f64) -> Comparison {
    let (pc, pt) = (control.mean, treatment.mean);
    let pooled = (pc * control.n + pt * treatment.n) / (control.n + treatment.n);
    let se_test = (pooled * (1.0 - pooled) * (1.0 / control.n + 1.0 / treatment.n)).sqrt();
    let lift = pt - pc;
    let (statistic, p_value) = if se_test > 0.0 {
        let z = lift / se_test;
        (z, 2.0 * normal().cdf(-z.abs()))
    } else {
        (f64::NAN, f64::NAN)
    };
    let bernoulli = |s: &Summary| Summary {
        variance: s.mean * (1.0 - s.mean),
        ..*s
    };
    let (c, t) = (bernoulli(control), bernoulli(treatment));
    normal_comparison(&c, &t, alpha, statistic, p_value)
}

/// A comparison whose lift has the normal interval `lift ± z se`, `se` from the arms'
/// variances, with the test's statistic and p-value.
fn normal_comparison(
    control: &Summary,
    treatment: &Summary,
    alpha: f64,
    statistic: f64,
    p_value: f64,
) -> Comparison {
    let se = (control.variance / control.n + treatment.variance / treatment.n).sqrt();
    let lift = treatment.mean - control.mean;
    let z = z_critical(alpha);
    let (relative_lift, relative_low, relative_high) = relative(control, treatment, z);
    Comparison {
        lift,
        lift_low: lift - z * se,
        lift_high: lift + z * se,
        relative_lift,
        relative_low,
        relative_high,
        statistic,
        df: None,
        p_value,
    }
}

/// The z-test of two arms' means whose variances are estimated well (large samples, or the
/// delta method's for a ratio): the lift's normal interval and the relative lift's.
pub fn z_means(control: &Summary, treatment: &Summary, alpha: f64) -> Comparison {
    let se = (control.variance / control.n + treatment.variance / treatment.n).sqrt();
    let (statistic, p_value) = if se > 0.0 {
        let statistic = (treatment.mean - control.mean) / se;
        (statistic, 2.0 * normal().cdf(-statistic.abs()))
    } else {
        (f64::NAN, f64::NAN)
    };
    normal_comparison(control, treatment, alpha, statistic, p_value)
}

/// A ratio metric's summary, `R = mean(num) / mean(den)` over an arm's customers (average
/// order value: revenue over orders), from the moments of its numerator (`y`) and
/// denominator (`x`). The variance is `n` times the delta method's `Var(R)`:
/// `(var_y / m_x² − 2 m_y cov_xy / m_x³ + m_y² var_x / m_x⁴) / n`, so that
/// `variance / n` is the estimate's variance, as for a mean. NaN when no customer ordered.
pub fn ratio(arm: &Moments) -> Summary {
    let (my, mx) = (arm.mean_y, arm.mean_x);
    if mx == 0.0 {
        return Summary {
            n: arm.n,
            mean: f64::NAN,
            variance: f64::NAN,
        };
    }
    let variance = arm.var_y / (mx * mx) - 2.0 * my * arm.cov_xy / mx.powi(3)
        + my * my * arm.var_x / mx.powi(4);
    Summary {
        n: arm.n,
        mean: my / mx,
        variance: variance.max(0.0),
    }
}

/// The moments of several arms taken together (exactly: the between-arm spread of the means
/// is added back), for CUPED's θ and x̄ over the whole experiment.
pub fn pooled(arms: &[Moments]) -> Moments {
    let n: f64 = arms.iter().map(|a| a.n).sum();
    if n < 2.0 {
        return arms.first().copied().unwrap_or(Moments {
            n,
            mean_y: f64::NAN,
            var_y: 0.0,
            mean_x: f64::NAN,
            var_x: 0.0,
            cov_xy: 0.0,
        });
    }
    let mean_y = arms.iter().map(|a| a.n * a.mean_y).sum::<f64>() / n;
    let mean_x = arms.iter().map(|a| a.n * a.mean_x).sum::<f64>() / n;
    // Sums of squares and cross-products about the pooled means, from each arm's own.
    let within = |f: &dyn Fn(&Moments) -> f64| -> f64 {
        arms.iter()
            .map(|a| if a.n > 1.0 { (a.n - 1.0) * f(a) } else { 0.0 })
            .sum()
    };
    let ss_y = within(&|a| a.var_y)
        + arms
            .iter()
            .map(|a| a.n * (a.mean_y - mean_y).powi(2))
            .sum::<f64>();
    let ss_x = within(&|a| a.var_x)
        + arms
            .iter()
            .map(|a| a.n * (a.mean_x - mean_x).powi(2))
            .sum::<f64>();
    let sp_xy = within(&|a| a.cov_xy)
        + arms
            .iter()
            .map(|a| a.n * (a.mean_x - mean_x) * (a.mean_y - mean_y))
            .sum::<f64>();
    Moments {
        n,
        mean_y,
        var_y: ss_y / (n - 1.0),
        mean_x,
        var_x: ss_x / (n - 1.0),
        cov_xy: sp_xy / (n - 1.0),
    }
}

/// The relative lift `m_t / m_c − 1` and its interval by the delta method:
/// `Var ≈ v_t / (n_t m_c²) + m_t² v_c / (n_c m_c⁴)`.
fn relative(control: &Summary, treatment: &Summary, z: f64) -> (f64, f64, f64) {
    let (mc, mt) = (control.mean, treatment.mean);
    if mc == 0.0 {
        return (f64::NAN, f64::NAN, f64::NAN);
    }
    let rel = mt / mc - 1.0;
    let var = treatment.variance / (treatment.n * mc * mc)
        + mt * mt * control.variance / (control.n * mc.powi(4));
    let half = z * var.sqrt();
    (rel, rel - half, rel + half)
}

/// One arm's moments of a metric `y` and its pre-period value `x`, for CUPED.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Moments {
    /// Customers.
    pub n: f64,
    /// Mean of y.
    pub mean_y: f64,
    /// Sample variance of y.
    pub var_y: f64,
    /// Mean of x.
    pub mean_x: f64,
    /// Sample variance of x.
    pub var_x: f64,
    /// Sample covariance of x and y.
    pub cov_xy: f64,
}

/// CUPED's θ, `cov(x, y) / var(x)` over every customer of the experiment (the arms pooled);
/// 0 when x does not vary (no pre-period information: no adjustment).
pub fn cuped_theta(pooled_cov_xy: f64, pooled_var_x: f64) -> f64 {
    if pooled_var_x > 0.0 && pooled_cov_xy.is_finite() {
        pooled_cov_xy / pooled_var_x
    } else {
        0.0
    }
}

/// An arm's summary of the CUPED-adjusted metric `y − θ (x − x̄)`, `x̄` the pre-period mean
/// over every customer of the experiment.
pub fn cuped_adjusted(arm: &Moments, theta: f64, grand_mean_x: f64) -> Summary {
    Summary {
        n: arm.n,
        mean: arm.mean_y - theta * (arm.mean_x - grand_mean_x),
        variance: (arm.var_y + theta * theta * arm.var_x - 2.0 * theta * arm.cov_xy).max(0.0),
    }
}

/// The sample-ratio-mismatch test: Pearson's χ² of the customers per arm against the arms'
/// configured weights. Returns (χ², p-value).
pub fn sample_ratio_mismatch(observed: &[f64], weights: &[f64]) -> (f64, f64) {
    let total: f64 = observed.iter().sum();
    let weight: f64 = weights.iter().sum();
    if observed.len() < 2 || total <= 0.0 || weight <= 0.0 {
        return (0.0, 1.0);
    }
    let chi2: f64 = observed
        .iter()
        .zip(weights)
        .map(|(o, w)| {
            let expected = total * w / weight;
            (o - expected).powi(2) / expected
        })
        .sum();
    let p = ChiSquared::new((observed.len() - 1) as f64).map_or(f64::NAN, |d| 1.0 - d.cdf(chi2));
    (chi2, p)
}

/// Holm's step-down adjustment of `p` (in the given order; family-wise error).
pub fn holm(p: &[f64]) -> Vec<f64> {
    let m = p.len();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|a, b| p[*a].total_cmp(&p[*b]));
    let mut adjusted = vec![0.0; m];
    let mut running = 0.0f64;
    for (rank, &i) in order.iter().enumerate() {
        running = running.max(((m - rank) as f64 * p[i]).min(1.0));
        adjusted[i] = running;
    }
    adjusted
}

/// Benjamini–Hochberg's step-up adjustment of `p` (false discovery rate).
pub fn benjamini_hochberg(p: &[f64]) -> Vec<f64> {
    let m = p.len();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|a, b| p[*a].total_cmp(&p[*b]));
    let mut adjusted = vec![0.0; m];
    let mut running = 1.0f64;
    for (rank, &i) in order.iter().enumerate().rev() {
        running = running.min(p[i] * m as f64 / (rank + 1) as f64).min(1.0);
        adjusted[i] = running;
    }
    adjusted
}

/// Customers needed per arm (two arms of equal size) to detect a relative lift `mde` of a
/// conversion rate `baseline` with a two-sided test at level `alpha` and the given `power`:
/// `2 ((z_{1−α/2} + z_power) / h)²`, `h` Cohen's effect size `2 asin √p₂ − 2 asin √p₁` (the
/// arcsine transform of a rate measured on n customers has variance 1/n, so the difference of
/// two arms' has 2/n).
pub fn customers_per_arm(baseline: f64, mde: f64, alpha: f64, power: f64) -> f64 {
    let target = baseline * (1.0 + mde);
    let h = 2.0 * target.sqrt().asin() - 2.0 * baseline.sqrt().asin();
    2.0 * ((z_critical(alpha) + normal().inverse_cdf(power)) / h).powi(2)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol * b.abs().max(1.0)
    }

    /// The figures scipy and statsmodels give on the same data (1e-9 relative).
    #[test]
    fn welch_matches_scipy() {
        let c = Summary {
            n: 8.0,
            mean: 4.5,
            variance: 6.0,
        };
        let t = Summary {
            n: 7.0,
            mean: 6.0,
            variance: 7.666_666_666_666_667,
        };
        let r = welch(&c, &t, 0.05);
        assert!(close(r.statistic, 1.104_244_012_304_199_4, 1e-9), "{r:?}");
        assert!(close(r.p_value, 0.290_879_553_697_721_34, 1e-9), "{r:?}");
        assert!(close(r.df.unwrap_or(0.0), 12.148_154_390_696_106, 1e-9));
        assert!(close(r.lift_low, -1.455_691_003_257_533_6, 1e-9), "{r:?}");
        assert!(close(r.lift_high, 4.455_691_003_257_534, 1e-9), "{r:?}");
    }

    #[test]
    fn two_proportions_match_statsmodels() {
        let c = Summary {
            n: 1000.0,
            mean: 0.1,
            variance: 0.0,
        };
        let t = Summary {
            n: 1000.0,
            mean: 0.13,
            variance: 0.0,
        };
        let r = two_proportions(&c, &t, 0.05);
        assert!(close(r.statistic, 2.102_740_605_622_114, 1e-9), "{r:?}");
        assert!(close(r.p_value, 0.035_488_450_466_474_71, 1e-9), "{r:?}");
        // Wald: 0.03 ± 1.959964 × sqrt(0.1·0.9/1000 + 0.13·0.87/1000).
        let se = (0.09f64 / 1000.0 + 0.1131 / 1000.0).sqrt();
        assert!(close(r.lift_low, 0.03 - 1.959_963_984_540_054 * se, 1e-9));
        assert!(close(r.relative_lift, 0.3, 1e-9));
    }

    #[test]
    fn srm_and_adjustments_match_scipy_and_statsmodels() {
        let (chi2, p) = sample_ratio_mismatch(&[5100.0, 4900.0], &[0.5, 0.5]);
        assert!(close(chi2, 4.0, 1e-12) && close(p, 0.045_500_263_896_358_57, 1e-9));
        let (chi2, _) = sample_ratio_mismatch(&[3300.0, 3350.0, 3400.0], &[1.0, 1.0, 2.0]);
        assert!(close(chi2, 1_051.492_537_313_432_9, 1e-9));
        let p = [0.01, 0.04, 0.03, 0.2];
        assert_eq!(holm(&p), vec![0.04, 0.09, 0.09, 0.2]);
        let bh = benjamini_hochberg(&p);
        let expected = [
            0.04,
            0.053_333_333_333_333_34,
            0.053_333_333_333_333_34,
            0.2,
        ];
        assert!(
            bh.iter().zip(expected).all(|(a, b)| close(*a, b, 1e-12)),
            "{bh:?}"
        );
    }

    #[test]
    fn sample_size_matches_statsmodels() {
        let n = customers_per_arm(0.05, 0.10, 0.05, 0.8);
        // statsmodels solves for n numerically (and counts the opposite tail's negligible
        // power): the two agree to 3e-6, the same whole number of customers.
        assert!(close(n, 31_217.423_430_777_748, 1e-5), "{n}");
        assert_eq!(n.ceil(), 31_218.0);
    }

    /// Two arms pooled give the moments of all their customers at once.
    #[test]
    fn pooled_moments_are_those_of_every_customer() {
        let moments = |xs: &[f64], ys: &[f64]| {
            let n = xs.len() as f64;
            let (mx, my) = (xs.iter().sum::<f64>() / n, ys.iter().sum::<f64>() / n);
            let s = |a: &[f64], ma: f64, b: &[f64], mb: f64| {
                a.iter()
                    .zip(b)
                    .map(|(a, b)| (a - ma) * (b - mb))
                    .sum::<f64>()
                    / (n - 1.0)
            };
            Moments {
                n,
                mean_y: my,
                var_y: s(ys, my, ys, my),
                mean_x: mx,
                var_x: s(xs, mx, xs, mx),
                cov_xy: s(xs, mx, ys, my),
            }
        };
        let (x1, y1) = ([1.0, 2.0, 4.0], [2.0, 2.5, 7.0]);
        let (x2, y2) = ([0.0, 3.0, 5.0, 6.0], [1.0, 4.0, 4.5, 9.0]);
        let all = moments(
            &[x1.as_slice(), &x2].concat(),
            &[y1.as_slice(), &y2].concat(),
        );
        let p = pooled(&[moments(&x1, &y1), moments(&x2, &y2)]);
        for (a, b) in [
            (p.mean_y, all.mean_y),
            (p.var_y, all.var_y),
            (p.var_x, all.var_x),
            (p.cov_xy, all.cov_xy),
        ] {
            assert!(close(a, b, 1e-12), "{p:?} {all:?}");
        }
    }

    /// Revenue over orders: the delta method's variance, and the z-test on it.
    #[test]
    fn a_ratio_is_summarised_by_the_delta_method() {
        let arm = Moments {
            n: 400.0,
            mean_y: 50.0,
            var_y: 900.0,
            mean_x: 2.0,
            var_x: 1.0,
            cov_xy: 20.0,
        };
        let r = ratio(&arm);
        assert!(close(r.mean, 25.0, 1e-12));
        // 900/4 − 2·50·20/8 + 2500·1/16 = 225 − 250 + 156.25.
        assert!(close(r.variance, 131.25, 1e-12), "{r:?}");
        let c = z_means(&r, &Summary { mean: 27.0, ..r }, 0.05);
        let se = (2.0 * 131.25f64 / 400.0).sqrt();
        assert!(close(c.statistic, 2.0 / se, 1e-12));
        assert!(ratio(&Moments { mean_x: 0.0, ..arm }).mean.is_nan());
    }

    #[test]
    fn cuped_removes_the_pre_period_variance() {
        // y = x + noise: θ ≈ 1 and the adjusted variance is the noise's.
        let arm = Moments {
            n: 100.0,
            mean_y: 5.0,
            var_y: 4.1,
            mean_x: 4.8,
            var_x: 4.0,
            cov_xy: 4.0,
        };
        let theta = cuped_theta(4.0, 4.0);
        let adjusted = cuped_adjusted(&arm, theta, 5.0);
        assert!(close(adjusted.variance, 0.1, 1e-12));
        assert!(close(adjusted.mean, 5.2, 1e-12));
        assert_eq!(cuped_theta(1.0, 0.0), 0.0);
    }
}
