//! The purchase-propensity model as stages of the night ([`crate::models::propensity`]):
//! `sql/29_propensity_snapshots.sql` makes the training and scoring rows, `propensity_fit`
//! fits, calibrates and scores, `sql/27` and `sql/28` publish the scores and the model, and
//! `propensity_evaluation` (`sql/29`) measures it on the held-out customers.

use std::fmt;

use async_trait::async_trait;

use super::dry_run::register_empty;
use super::night::{Night, export_table};
use super::record::Report;
use super::registry::Stage;
use super::unit::Unit;
use crate::engine::progress::group_digits;
use crate::error::Result;
use crate::models::propensity::{self, PropensityReport};

/// The model's fit, calibration and scores.
#[derive(Debug)]
pub struct PropensityFit;

#[async_trait(?Send)]
impl Unit for PropensityFit {
    fn code(&self) -> &'static str {
        "jobs/src/stages/propensity.rs"
    }

    async fn run(&self, _stage: &Stage, night: &mut Night<'_>) -> Result<u64> {
        let cfg = &night.config.propensity;
        let days = night.config.window.lookback_days - cfg.horizon_days;
        let report = propensity::run(night.ctx, night.work, cfg, days).await?;
        if let Some(dir) = night.export_split {
            export_table(
                night.ctx,
                "SELECT * FROM propensity_points WHERE snapshot = 'train'",
                &dir.join("propensity.parquet"),
            )
            .await?;
        }
        let scored = report.scored;
        night.record.reports.put(report);
        Ok(scored)
    }

    async fn plan(&self, _stage: &Stage, night: &mut Night<'_>) -> Result<String> {
        let snapshots = night.ctx.table("propensity_snapshots").await?;
        let snapshots = snapshots.schema().as_arrow().clone();
        for (name, schema) in propensity::work_table_schemas(&snapshots)? {
            register_empty(night.ctx, name, schema)?;
        }
        let p = &night.config.propensity;
        Ok(format!(
            "logistic regression over propensity_snapshots (fit split): features {:?} (log: {:?}, one-hot: {:?}), l2 {}, max_iter {}, tol {}, class weights {:?}; Platt scaling on the calibrate split; scores for the test split and tonight\n",
            p.features,
            p.log_features,
            p.categorical_features,
            p.l2,
            p.max_iter,
            p.tol,
            p.class_weight
        ))
    }
}

/// `sql/32_propensity_evaluation.sql` on the held-out customers, then its metrics read back
/// into the report.
#[derive(Debug)]
pub struct PropensityEvaluation;

#[async_trait(?Send)]
impl Unit for PropensityEvaluation {
    fn code(&self) -> &'static str {
        "jobs/src/stages/propensity.rs"
    }

    async fn run(&self, stage: &Stage, night: &mut Night<'_>) -> Result<u64> {
        let rows = night.run_sql(stage, &night.params).await?;
        if let Some(report) = night.record.reports.get_mut::<PropensityReport>() {
            propensity::read_evaluation(night.ctx, report).await?;
        }
        Ok(rows)
    }

    async fn plan(&self, stage: &Stage, night: &mut Night<'_>) -> Result<String> {
        night.plan_sql(stage, &night.params).await
    }
}

impl Report for PropensityReport {
    const KEY: &'static str = "propensity";

    fn summary(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let get = |model: &str, name: &str| {
            self.evaluation
                .get(model)
                .and_then(|metrics| metrics.get(name).copied().flatten())
        };
        let metric = |v: Option<f64>| v.map_or_else(|| "-".to_string(), |v| format!("{v:.4}"));
        writeln!(
            f,
            "\nPropensity (purchase in {} days; {} customers scored, {} features, {} Newton steps):",
            self.horizon_days,
            group_digits(self.scored),
            self.features.len(),
            self.fit.iterations
        )?;
        for model in ["logistic", "recency_frequency"] {
            writeln!(
                f,
                "  {model:<17} AUC {}  PR-AUC {}  top-decile lift {}  Brier {}",
                metric(get(model, "auc")),
                metric(get(model, "average_precision")),
                metric(get(model, "top_decile_lift")),
                metric(get(model, "brier"))
            )?;
        }
        Ok(())
    }
}
