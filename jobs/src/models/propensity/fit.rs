//! The logistic regression's driver: Newton steps on the driver, each over one `logistic_step`
//! aggregation of the training rows ([`persona_udfs::aggregate::LogisticStep`]), so the fit
//! runs unchanged on a Ballista cluster; only the coefficients and the (d + 1)² sums travel.

use datafusion::logical_expr::AggregateUDF;
use datafusion::prelude::SessionContext;
use persona_udfs::aggregate::LogisticStep;
use persona_udfs::ml::logistic::{LogisticModel, NewtonStats, newton_step};
use serde::Serialize;

use crate::error::{PipelineError, Result};
use crate::models::kmeans::pass::{StepRunner, state_vector};

/// What to fit: `args` (feature expressions, then the label, then the weight if any) over the
/// rows of `from` (a table, optionally followed by `WHERE …`).
#[derive(Debug, Clone)]
pub struct Problem<'a> {
    /// The rows: a table name, with a `WHERE` clause when only some of its rows train.
    pub from: &'a str,
    /// One SQL expression per feature.
    pub features: &'a [String],
    /// The label expression (1 positive, 0 negative; null rows are skipped).
    pub label: &'a str,
    /// The weight expression, when rows are weighted.
    pub weight: Option<&'a str>,
}

/// The solver's settings.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// L2 penalty on the coefficients (not the intercept).
    pub l2: f64,
    /// Newton steps at most.
    pub max_iter: usize,
    /// Stop when no coefficient moves more than this.
    pub tol: f64,
}

/// A fitted model and how the fit went.
#[derive(Debug, Clone, Serialize)]
pub struct Fitted {
    /// The coefficients (one per feature) and the intercept.
    #[serde(skip)]
    pub model: LogisticModel,
    /// Newton steps taken.
    pub iterations: usize,
    /// Whether the last step moved no coefficient more than `tol`.
    pub converged: bool,
    /// The penalised objective (weighted log loss + L2 term) before each step.
    pub objective: Vec<f64>,
    /// Rows with a label.
    pub rows: u64,
    /// Seconds the fit took (every pass, and the steps on the driver).
    pub seconds: f64,
}

/// Fits `problem` by Newton's method from `start` (all zeros when `None`).
pub async fn fit(
    ctx: &SessionContext,
    in_process: bool,
    problem: &Problem<'_>,
    settings: Settings,
    start: Option<LogisticModel>,
) -> Result<Fitted> {
    let d = problem.features.len();
    let mut model = start.unwrap_or_else(|| LogisticModel::zeros(d));
    let mut args: Vec<&str> = problem.features.iter().map(String::as_str).collect();
    args.push(problem.label);
    args.extend(problem.weight);
    let args = args.join(", ");
    let started = std::time::Instant::now();
    let runner = StepRunner::new(in_process);
    let mut objective = Vec::new();
    let mut rows = 0;
    for iteration in 1..=settings.max_iter {
        let udaf = AggregateUDF::from(LogisticStep::new(model.clone(), problem.weight.is_some()));
        let batches = runner.run(ctx, udaf, problem.from, &args).await?;
        let flat = state_vector(&batches).unwrap_or_default();
        let stats = NewtonStats::from_flat(&flat, d).ok_or_else(|| {
            PipelineError::Internal("logistic_step returned a vector of the wrong length".into())
        })?;
        rows = stats.rows;
        let step = newton_step(&model, &stats, settings.l2).ok_or_else(|| {
            PipelineError::BadInput(format!(
                "logistic regression over {}: no Newton step ({} rows with a label)",
                problem.from, stats.rows
            ))
        })?;
        objective.push(step.objective);
        model = step.model;
        if step.max_change < settings.tol {
            return Ok(Fitted {
                model,
                iterations: iteration,
                converged: true,
                objective,
                rows,
                seconds: started.elapsed().as_secs_f64(),
            });
        }
    }
    Ok(Fitted {
        model,
        iterations: settings.max_iter,
        converged: false,
        objective,
        rows,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// A float as an SQL literal that parses back to the same `f64`.
pub fn literal(x: f64) -> String {
    format!("{x:e}")
}

/// `intercept + Σ coefficient · feature` as SQL.
pub fn logit_sql(model: &LogisticModel, features: &[String]) -> String {
    let mut terms = vec![literal(model.intercept)];
    terms.extend(
        model
            .coefficients
            .iter()
            .zip(features)
            .map(|(c, f)| format!("{} * {f}", literal(*c))),
    );
    terms.join(" + ")
}

/// `σ(z)` as SQL: 0 or 1 at the extremes, never NaN.
pub fn sigmoid_sql(z: &str) -> String {
    format!("1.0 / (1.0 + exp(-({z})))")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_parse_back_to_the_same_float() {
        for x in [0.1, -1.0 / 3.0, 1e-300, 123_456.789, 0.0] {
            let back: f64 = literal(x).parse().unwrap_or(f64::NAN);
            assert_eq!(back.to_bits(), x.to_bits(), "{x}");
        }
        let model = LogisticModel {
            coefficients: vec![0.5, -2.0],
            intercept: 1.0,
        };
        assert_eq!(
            logit_sql(&model, &["a".into(), "b".into()]),
            "1e0 + 5e-1 * a + -2e0 * b"
        );
    }
}
