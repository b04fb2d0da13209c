//! The nightly offline evaluation as stages of the night ([`crate::models::als::evaluate`]): ALS fitted
//! on the days before the holdout and popularity recommend to the holdout's customers
//! (`eval_fit`), then `sql/18_evaluation.sql` scores both (`evaluation`). The fit's item
//! factors are left for the published ALS fit, which continues them.

use std::collections::BTreeMap;
use std::fmt;

use async_trait::async_trait;
use datafusion::prelude::SessionContext;
use persona_udfs::ml::Factors;

use super::dry_run::{explain, register_empty};
use super::night::{Night, export_table};
use super::record::Report;
use super::registry::{Mode, Stage};
use super::unit::Unit;
use crate::config::{PipelineConfig, RecommendationModel};
use crate::engine::progress::group_digits;
use crate::error::{PipelineError, Result};
use crate::models::als::evaluate::{self, EvaluationReport};

/// The evaluation fit's item factors: the published fit's warm start.
pub struct WarmStart(pub Factors);

/// The `{{parameters}}` the evaluation fit adds for `sql/18_evaluation.sql`.
struct ScoreParams(BTreeMap<&'static str, String>);

/// The evaluation's own ALS fit on `eval_train` and the top-N of ALS and of popularity for
/// `eval_holdout`'s customers.
#[derive(Debug)]
pub struct EvaluationFit;

#[async_trait(?Send)]
impl Unit for EvaluationFit {
    fn code(&self) -> &'static str {
        "jobs/src/stages/evaluation.rs"
    }

    async fn run(&self, _stage: &Stage, night: &mut Night<'_>) -> Result<u64> {
        let holdout_start = night
            .params
            .get("holdout_start")
            .cloned()
            .unwrap_or_default();
        let cfg = night.config;
        let (report, candidates, items) = evaluate::recommend(
            night.ctx,
            night.work,
            &cfg.recommendations,
            &cfg.evaluation,
            holdout_start,
        )
        .await?;
        if let Some(dir) = night.export_split {
            export_split(night.ctx, dir).await?;
        }
        if let (Some(why), Mode::Evaluate) = (&report.skipped, night.mode) {
            return Err(PipelineError::BadInput(format!(
                "nothing to evaluate for {}: {why} (holdout: the last {} days of the window)",
                night.window.last, cfg.evaluation.holdout_days
            )));
        }
        let handoffs = &mut night.record.handoffs;
        handoffs.put(ScoreParams(evaluate::params(
            &cfg.evaluation,
            cfg.recommendations.model,
            candidates,
        )));
        if let Some(items) = items {
            handoffs.put(WarmStart(items));
        }
        let pairs = report.train_pairs;
        night.record.reports.put(report);
        Ok(pairs)
    }

    async fn plan(&self, _stage: &Stage, night: &mut Night<'_>) -> Result<String> {
        night
            .register_empty_model("eval_user_factor_rows", "user_idx")
            .await?;
        let df = night
            .ctx
            .sql(&evaluate::recommend_sql("als", "eval_user_factor_rows")?)
            .await?;
        let plan = explain(&df).await?;
        let schema = df.schema().as_arrow().clone().into();
        register_empty(night.ctx, "eval_recommendations", schema)?;
        Ok(format!(
            "ALS on eval_train (as above), then the top {} of ALS and of popularity for eval_holdout's customers:\n{plan}",
            night.config.evaluation.k
        ))
    }
}

/// `sql/18_evaluation.sql` over the evaluation fit's recommendations, then its scores read
/// back into the report. Skipped when the fit found nothing to score.
#[derive(Debug)]
pub struct EvaluationScores;

#[async_trait(?Send)]
impl Unit for EvaluationScores {
    fn code(&self) -> &'static str {
        "jobs/src/stages/evaluation.rs"
    }

    fn skips(&self, night: &Night<'_>) -> bool {
        nothing_to_score(night)
    }

    async fn run(&self, stage: &Stage, night: &mut Night<'_>) -> Result<u64> {
        let mut params = night.params.clone();
        if let Some(ScoreParams(extra)) = night.record.handoffs.get::<ScoreParams>() {
            params.extend(extra.clone());
        }
        let rows = night.run_sql(stage, &params).await?;
        if let Some(report) = night.record.reports.get_mut::<EvaluationReport>() {
            evaluate::read_scores(night.ctx, report).await?;
        }
        Ok(rows)
    }

    async fn plan(&self, stage: &Stage, night: &mut Night<'_>) -> Result<String> {
        let mut params = night.params.clone();
        params.extend(evaluate::params(
            &night.config.evaluation,
            night.config.recommendations.model,
            1,
        ));
        night.plan_sql(stage, &params).await
    }
}

/// Whether the evaluation fit found nothing to score (or did not run).
fn nothing_to_score(night: &Night<'_>) -> bool {
    night
        .record
        .reports
        .get::<EvaluationReport>()
        .is_none_or(|e| e.skipped.is_some())
}

/// A neighbourhood model in the evaluation: its neighbours from `eval_train` (the item-to-item
/// model's `sql/14_item_neighbour_rows.sql`, the customer-to-customer model's
/// `sql/16_customer_neighbour_rows.sql`), then its top-k for `eval_holdout`'s customers
/// (`sql/15_…`, `sql/17_…`), added to `eval_recommendations` under the model's name so that
/// `evaluation` scores it beside ALS and popularity on the same holdout. Runs when the model is
/// on ([`crate::config::RecommendationsConfig::item_knn_on`], `user_knn_on`).
#[derive(Debug)]
pub struct EvaluationKnn {
    /// The model.
    pub model: RecommendationModel,
    /// The stage (and table) of its recommendations, the one whose rows are added.
    pub recommendations: &'static str,
    /// The file its neighbours are exported to with `persona evaluate --export-split`, for
    /// the benchmarks' recall of the pruned neighbours.
    pub export_as: &'static str,
}

#[async_trait(?Send)]
impl Unit for EvaluationKnn {
    fn code(&self) -> &'static str {
        "jobs/src/stages/evaluation.rs"
    }

    fn off_by_config(&self, config: &PipelineConfig) -> bool {
        !model_on(config, self.model)
    }

    fn skips(&self, night: &Night<'_>) -> bool {
        self.off_by_config(night.config) || nothing_to_score(night)
    }

    async fn run(&self, stage: &Stage, night: &mut Night<'_>) -> Result<u64> {
        let rows = night.run_sql(stage, &night.params).await?;
        if stage.name == self.recommendations {
            add_to_recommendations(night, self.model.name(), self.recommendations).await?;
        } else if let Some(dir) = night.export_split {
            let sql = format!("SELECT * FROM {}", stage.name);
            export_table(night.ctx, &sql, &dir.join(self.export_as)).await?;
        }
        Ok(rows)
    }

    async fn plan(&self, stage: &Stage, night: &mut Night<'_>) -> Result<String> {
        night.plan_sql(stage, &night.params).await
    }
}

/// Whether the night computes `model` (ALS always does).
pub fn model_on(config: &PipelineConfig, model: RecommendationModel) -> bool {
    let rec = &config.recommendations;
    match model {
        RecommendationModel::ItemKnn => rec.item_knn_on(),
        RecommendationModel::UserKnn => rec.user_knn_on(),
        RecommendationModel::Als | RecommendationModel::Auto => true,
    }
}

/// `eval_recommendations` with `table`'s rows as model `model`: materialised under another
/// name, then registered as `eval_recommendations` (a table is not rewritten while it is read).
async fn add_to_recommendations(night: &mut Night<'_>, model: &str, table: &str) -> Result<()> {
    let union = format!(
        "SELECT model, user_idx, rank, item_idx FROM eval_recommendations \
         UNION ALL SELECT '{model}' AS model, user_idx, rank, item_idx FROM {table}"
    );
    let all = format!("eval_recommendations_with_{model}");
    let df = night.ctx.sql(&union).await?;
    night.work.materialize(night.ctx, &all, df).await?;
    let table = night.ctx.table_provider(all.as_str()).await?;
    night.ctx.deregister_table("eval_recommendations")?;
    night.ctx.register_table("eval_recommendations", table)?;
    Ok(())
}

impl Report for EvaluationReport {
    const KEY: &'static str = "evaluation";

    fn summary(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(why) = &self.skipped {
            return writeln!(f, "\nEvaluation skipped: {why}");
        }
        writeln!(
            f,
            "\nEvaluation (trained before {}, scored on the last {} days, k = {}):",
            self.holdout_start, self.holdout_days, self.k
        )?;
        for s in &self.models {
            writeln!(
                f,
                "  {:<8} precision {:.4}  recall {:.4}  ndcg {:.4}  map {:.4}  coverage {:.3}  ({} customers){}",
                s.model,
                s.precision_at_k,
                s.recall_at_k,
                s.ndcg_at_k,
                s.map_at_k,
                s.coverage,
                group_digits(s.users),
                if s.published { "  <- published" } else { "" }
            )?;
        }
        Ok(())
    }
}

/// Writes the evaluation's split, and the whole window's matrix with its ids, as single
/// Parquet files under `dir`, so that a peer can be trained on exactly what the night's own
/// fit saw and scored against the generator's hidden next week.
async fn export_split(ctx: &SessionContext, dir: &std::path::Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| PipelineError::io(dir, e))?;
    // `interactions` without the evaluation's columns (sql/10), which train and holdout give.
    for (table, columns, file) in [
        ("eval_train", "*", "train.parquet"),
        ("eval_holdout", "*", "holdout.parquet"),
        (
            "interactions",
            "user_idx, item_idx, weight, purchased",
            "interactions.parquet",
        ),
        ("user_index", "*", "users.parquet"),
        ("item_index", "*", "items.parquet"),
    ] {
        if !ctx.table_exist(table)? {
            continue;
        }
        let sql = format!("SELECT {columns} FROM {table}");
        export_table(ctx, &sql, &dir.join(file)).await?;
    }
    Ok(())
}
