//! Which model's recommendations the night publishes (`[recommendations] model`): ALS, the
//! item-to-item model or the customer-to-customer model, named in the configuration or, with
//! `"auto"`, the one tonight's evaluation scored best by NDCG@k (`sql/18_evaluation.sql` marks it
//! `published`; this file only reads that mark, so the rule lives in one place). The chosen
//! model's top-N becomes `model_recommendations`, which `sql/22_recommendations.sql` publishes
//! with the model's name in its `source` column; the manifest's `recommendation_model` section
//! says which and why.

use std::fmt;

use async_trait::async_trait;
use serde::Serialize;

use super::dry_run::register_empty;
use super::night::Night;
use super::record::Report;
use super::registry::Stage;
use super::unit::Unit;
use crate::config::RecommendationModel;
use crate::error::Result;
use crate::models::als::evaluate::EvaluationReport;

/// The table `sql/22_recommendations.sql` reads: the chosen model's top-N.
pub const MODEL_RECOMMENDATIONS: &str = "model_recommendations";

/// What the night published, for the manifest (`recommendation_model`) and the summary.
#[derive(Debug, Clone, Serialize)]
pub struct ModelChoice {
    /// `[recommendations] model` as configured.
    pub configured: &'static str,
    /// The model whose recommendations were published.
    pub published: &'static str,
    /// Why, in words.
    pub why: String,
}

impl Report for ModelChoice {
    const KEY: &'static str = "recommendation_model";

    fn summary(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "\nRecommendations published from {}: {}",
            self.published, self.why
        )
    }
}

/// The model the night publishes and why: the configured one, or with `auto` the evaluation's
/// pick (ALS when nothing was evaluated tonight).
pub fn published_model(night: &Night<'_>) -> (RecommendationModel, String) {
    let configured = night.config.recommendations.model;
    if configured != RecommendationModel::Auto {
        return (configured, "as configured".to_string());
    }
    let scores = night
        .record
        .reports
        .get::<EvaluationReport>()
        .map(|e| e.models.as_slice())
        .unwrap_or_default();
    let Some(best) = scores.iter().find(|s| s.published) else {
        return (
            RecommendationModel::Als,
            "auto, but nothing was evaluated tonight: ALS".to_string(),
        );
    };
    let model = [
        RecommendationModel::Als,
        RecommendationModel::ItemKnn,
        RecommendationModel::UserKnn,
    ]
    .into_iter()
    .find(|m| m.name() == best.model)
    .unwrap_or(RecommendationModel::Als);
    let others: Vec<String> = scores
        .iter()
        .filter(|s| !s.published)
        .map(|s| format!("{} {:.4}", s.model, s.ndcg_at_k))
        .collect();
    let why = format!(
        "auto: best NDCG@{} in tonight's evaluation, {:.4} (others: {})",
        night.config.evaluation.k,
        best.ndcg_at_k,
        others.join(", ")
    );
    (model, why)
}

/// An SQL stage that computes one model's top-N for every customer: it runs only on nights that
/// publish that model, since the evaluation already scored it.
#[derive(Debug)]
pub struct WhenPublished(pub RecommendationModel);

#[async_trait(?Send)]
impl Unit for WhenPublished {
    fn code(&self) -> &'static str {
        "jobs/src/stages/model_choice.rs"
    }

    fn skips(&self, night: &Night<'_>) -> bool {
        published_model(night).0 != self.0
    }

    async fn run(&self, stage: &Stage, night: &mut Night<'_>) -> Result<u64> {
        night.run_sql(stage, &night.params).await
    }

    async fn plan(&self, stage: &Stage, night: &mut Night<'_>) -> Result<String> {
        let plan = night.plan_sql(stage, &night.params).await?;
        let configured = night.config.recommendations.model;
        Ok(if configured == self.0 {
            plan
        } else if configured == RecommendationModel::Auto {
            format!(
                "runs tonight if the evaluation picks {} ([recommendations] model = auto)\n{plan}",
                self.0.name()
            )
        } else {
            format!(
                "off tonight unless [recommendations] model picks {} ({} now)\n{plan}",
                self.0.name(),
                night.config.recommendations.model.name()
            )
        })
    }
}

/// `model_recommendations`: the published model's top-N with its name, and the item each
/// recommendation is explained by where the model has one (the item-to-item model's
/// `because_item_idx`).
#[derive(Debug)]
pub struct ModelRecommendations;

/// The query that copies `model`'s recommendations into `model_recommendations`.
fn query(model: RecommendationModel) -> String {
    let (table, because) = match model {
        RecommendationModel::ItemKnn => ("item_knn_recommendations", "because_item_idx"),
        RecommendationModel::UserKnn => ("user_knn_recommendations", "because_item_idx"),
        RecommendationModel::Als | RecommendationModel::Auto => {
            ("als_recommendations", "CAST(NULL AS INT)")
        }
    };
    format!(
        "SELECT user_idx, rank, item_idx, score, {because} AS because_item_idx, \
         '{}' AS model FROM {table}",
        model.name()
    )
}

#[async_trait(?Send)]
impl Unit for ModelRecommendations {
    fn code(&self) -> &'static str {
        "jobs/src/stages/model_choice.rs"
    }

    async fn run(&self, _stage: &Stage, night: &mut Night<'_>) -> Result<u64> {
        let (model, why) = published_model(night);
        let df = night.ctx.sql(&query(model)).await?;
        let rows = night
            .work
            .materialize(night.ctx, MODEL_RECOMMENDATIONS, df)
            .await?;
        night.record.reports.put(ModelChoice {
            configured: night.config.recommendations.model.name(),
            published: model.name(),
            why,
        });
        Ok(rows)
    }

    async fn plan(&self, _stage: &Stage, night: &mut Night<'_>) -> Result<String> {
        // Nothing is evaluated in a dry run: `auto` is planned with ALS's table (every model's
        // has the same columns) and said to be chosen at run time.
        let (model, why) = match night.config.recommendations.model {
            RecommendationModel::Auto => (
                RecommendationModel::Als,
                "auto: the model with the best NDCG@k in tonight's evaluation; planned with als"
                    .to_string(),
            ),
            _ => published_model(night),
        };
        let df = night.ctx.sql(&query(model)).await?;
        register_empty(
            night.ctx,
            MODEL_RECOMMENDATIONS,
            df.schema().as_arrow().clone().into(),
        )?;
        Ok(format!(
            "the top {} of {} ({why}) as {MODEL_RECOMMENDATIONS}\n",
            night.config.recommendations.top_n,
            model.name()
        ))
    }
}
