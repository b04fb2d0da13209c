//! `persona experiment plan`: how many customers an A/B test needs before it starts.

use std::fmt;

use serde::Serialize;

use crate::error::{PipelineError, Result};
use crate::models::experiments::stats;

/// What to plan for.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanOptions {
    /// The control's conversion rate, e.g. 0.05.
    pub baseline: f64,
    /// The smallest relative lift worth detecting, e.g. 0.10 (5% → 5.5%).
    pub mde: f64,
    /// Probability of detecting that lift when it is there.
    pub power: f64,
    /// Significance level of the two-sided test.
    pub alpha: f64,
    /// Arms, the control included; each needs the customers printed.
    pub arms: usize,
}

/// The plan: customers per arm and in all.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// The control's rate.
    pub baseline: f64,
    /// The treatment's rate that the test is sized to detect.
    pub target: f64,
    /// Relative lift.
    pub mde: f64,
    /// Power.
    pub power: f64,
    /// Level.
    pub alpha: f64,
    /// Arms.
    pub arms: usize,
    /// Customers each arm needs (rounded up).
    pub per_arm: u64,
    /// Customers the experiment needs.
    pub total: u64,
}

/// Sizes a test of a conversion rate; refuses settings that describe no test (exit 4).
pub fn plan(opts: &PlanOptions) -> Result<Plan> {
    let target = opts.baseline * (1.0 + opts.mde);
    let checks = [
        (
            opts.baseline > 0.0 && opts.baseline < 1.0,
            "--baseline must be a rate between 0 and 1 (0.05 for 5%)",
        ),
        (
            opts.mde.is_finite() && opts.mde != 0.0 && target > 0.0 && target < 1.0,
            "--mde must be a relative lift other than 0 that keeps the rate between 0 and 1 \
             (0.10 for +10%)",
        ),
        (
            opts.power > 0.0 && opts.power < 1.0,
            "--power must be between 0 and 1",
        ),
        (
            opts.alpha > 0.0 && opts.alpha < 1.0,
            "--alpha must be between 0 and 1",
        ),
        (opts.arms >= 2, "--arms must be at least 2"),
    ];
    if let Some((_, message)) = checks.iter().find(|(ok, _)| !ok) {
        return Err(PipelineError::Config((*message).to_string()));
    }
    let per_arm = stats::customers_per_arm(opts.baseline, opts.mde, opts.alpha, opts.power).ceil();
    Ok(Plan {
        baseline: opts.baseline,
        target,
        mde: opts.mde,
        power: opts.power,
        alpha: opts.alpha,
        arms: opts.arms,
        per_arm: per_arm as u64,
        total: per_arm as u64 * opts.arms as u64,
    })
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "To detect a conversion rate of {:.2}% against {:.2}% ({:+.1}% relative) with {:.0}% \
             power at a two-sided significance level of {}:",
            100.0 * self.target,
            100.0 * self.baseline,
            100.0 * self.mde,
            100.0 * self.power,
            self.alpha
        )?;
        writeln!(
            f,
            "  {} customers per arm, {} in all ({} arms).",
            crate::engine::progress::group_digits(self.per_arm),
            crate::engine::progress::group_digits(self.total),
            self.arms
        )?;
        if self.arms > 2 {
            writeln!(
                f,
                "  Each treatment is compared with the control at this level; the p-values are \
                 not corrected for the {} comparisons.",
                self.arms - 1
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "tests fail by panicking")]
mod tests {
    use super::*;

    fn opts() -> PlanOptions {
        PlanOptions {
            baseline: 0.05,
            mde: 0.10,
            power: 0.8,
            alpha: 0.05,
            arms: 2,
        }
    }

    #[test]
    fn a_five_percent_rate_needs_about_31_thousand_customers_per_arm() {
        let p = plan(&opts()).unwrap();
        assert_eq!((p.per_arm, p.total), (31_218, 62_436));
        assert!(p.to_string().contains("31,218 customers per arm"), "{p}");
        // A larger effect needs fewer customers; more power, more.
        assert!(plan(&PlanOptions { mde: 0.2, ..opts() }).unwrap().per_arm < p.per_arm);
        assert!(
            plan(&PlanOptions {
                power: 0.9,
                ..opts()
            })
            .unwrap()
            .per_arm
                > p.per_arm
        );
    }

    #[test]
    fn settings_that_describe_no_test_are_refused() {
        for bad in [
            PlanOptions {
                baseline: 5.0,
                ..opts()
            },
            PlanOptions { mde: 0.0, ..opts() },
            PlanOptions {
                mde: 30.0,
                ..opts()
            },
            PlanOptions {
                power: 1.0,
                ..opts()
            },
            PlanOptions {
                alpha: f64::NAN,
                ..opts()
            },
            PlanOptions { arms: 1, ..opts() },
        ] {
            assert!(
                matches!(plan(&bad), Err(PipelineError::Config(_))),
                "{bad:?}"
            );
        }
    }
}
