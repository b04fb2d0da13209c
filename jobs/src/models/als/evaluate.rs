//! The nightly offline evaluation: hold out the last days of the window, fit ALS on the days
//! before, and score ALS and a popularity baseline on what customers did in the holdout days
//! (`eval_train`, which is `sql/10` over the days before the holdout, then `sql/13`–`16`). The result is the `evaluation` table and the manifest's `evaluation`.

use std::collections::BTreeMap;

use arrow::array::AsArray;
use arrow::datatypes::{Float64Type, Int64Type};
use datafusion::prelude::SessionContext;
use persona_udfs::ml::Factors;
use serde::Serialize;

use super::AlsReport;
use crate::config::{EvaluationConfig, RecommendationModel, RecommendationsConfig};
use crate::engine::sql::{SqlFile, sql_file};
use crate::engine::work::WorkArea;
use crate::error::{PipelineError, Result};

/// One model's scores.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ModelScores {
    /// `als`, `popular`, `item_knn` or `user_knn`.
    pub model: String,
    /// Customers scored.
    pub users: u64,
    /// Precision@k.
    pub precision_at_k: f64,
    /// Recall@k.
    pub recall_at_k: f64,
    /// NDCG@k.
    pub ndcg_at_k: f64,
    /// MAP@k.
    pub map_at_k: f64,
    /// Share of the candidate catalog items recommended to anyone.
    pub coverage: f64,
    /// Whether the night publishes this model's recommendations.
    pub published: bool,
}

/// What the evaluation did, for the manifest.
#[derive(Debug, Clone, Serialize)]
pub struct EvaluationReport {
    /// First instant of the holdout (UTC).
    pub holdout_start: String,
    /// Days held out.
    pub holdout_days: u32,
    /// Metric cut-off.
    pub k: usize,
    /// (customer, item) pairs trained on.
    pub train_pairs: u64,
    /// (customer, new item) pairs to predict.
    pub holdout_pairs: u64,
    /// Why nothing was scored, when nothing was (no training days or no holdout activity).
    pub skipped: Option<String>,
    /// Scores per model (empty when skipped).
    pub models: Vec<ModelScores>,
    /// The evaluation fit.
    pub fit: Option<AlsReport>,
}

impl EvaluationReport {
    /// A report with no scores yet.
    pub fn empty(eval: &EvaluationConfig) -> Self {
        Self {
            holdout_start: String::new(),
            holdout_days: eval.holdout_days,
            k: eval.k,
            train_pairs: 0,
            holdout_pairs: 0,
            skipped: None,
            models: vec![],
            fit: None,
        }
    }
}

/// The SQL that scores the recommendations against the holdout: the night's `evaluation`
/// stage, and `persona als`'s evaluation.
pub const SCORES_SQL: SqlFile = sql_file!("18_evaluation.sql");

/// Fits on `eval_train`, recommends to the customers of `eval_holdout` with ALS and with
/// popularity (both excluding what the customer saw in training, both over the catalog items
/// seen in training), and materialises `eval_recommendations`. Returns the report so far, the
/// number of candidate items (for the coverage) and the fit's item factors (the published
/// fit's warm start), none when skipped.
pub async fn recommend(
    ctx: &SessionContext,
    work: &WorkArea,
    rec: &RecommendationsConfig,
    eval: &EvaluationConfig,
    holdout_start: String,
) -> Result<(EvaluationReport, u64, Option<Factors>)> {
    let train_pairs = super::count(ctx, "SELECT COUNT(*) FROM eval_train").await?;
    let holdout_pairs = super::count(ctx, "SELECT COUNT(*) FROM eval_holdout").await?;
    let mut report = EvaluationReport {
        holdout_start,
        holdout_days: eval.holdout_days,
        k: eval.k,
        train_pairs,
        holdout_pairs,
        skipped: None,
        models: vec![],
        fit: None,
    };
    if train_pairs == 0 || holdout_pairs == 0 {
        let why = if train_pairs == 0 {
            "no interactions before the holdout days"
        } else {
            "no customer with history interacted with a new catalog item in the holdout days"
        };
        tracing::warn!(reason = why, "evaluation skipped");
        report.skipped = Some(why.to_string());
        return Ok((report, 0, None));
    }
    let users = super::count(ctx, "SELECT COUNT(*) FROM user_index").await? as usize;
    let items = super::count(ctx, "SELECT COUNT(*) FROM item_index").await? as usize;
    let model = super::Als::new(ctx, work, "eval_train", (users, items), rec)
        .with_users_table("eval_user_factor_rows")
        .fit()
        .await?;
    let candidates = super::item_mask(
        ctx,
        "SELECT DISTINCT t.item_idx FROM eval_train t JOIN item_index i ON t.item_idx = i.item_idx WHERE i.in_catalog",
        items,
    )
    .await?;
    let candidate_items = candidates.iter().filter(|c| **c).count() as u64;

    recommend_models(ctx, work, eval.k, &model.users, &model.items, candidates).await?;
    report.fit = Some(model.report);
    Ok((report, candidate_items, Some(model.items)))
}

/// Writes `eval_recommendations` (`model`, `user_idx`, `rank`, `item_idx`): the top `k` of ALS
/// (the customer factors of the work table `users` · `items`) and of popularity for every
/// customer of `eval_holdout` with factors, both excluding the customer's items in
/// `eval_train` and both limited to the `candidates` items.
pub async fn recommend_models(
    ctx: &SessionContext,
    work: &WorkArea,
    k: usize,
    users: &str,
    items: &Factors,
    candidates: Vec<bool>,
) -> Result<()> {
    super::register_top_n(ctx, work, items, candidates.clone(), k).await?;
    recommend_with(ctx, work, "als", users).await?;

    // Popularity as a rank-1 model: every customer's vector is [1], every item's its total
    // weight in training, so the same top-N (and the same exclusions) rank by popularity.
    let popularity = popularity(ctx, items.rows()).await?;
    let ones = format!("SELECT user_idx, [CAST(1.0 AS FLOAT)] AS factors FROM {users}");
    work.materialize(ctx, "eval_unit_rows", ctx.sql(&ones).await?)
        .await?;
    super::register_top_n(ctx, work, &popularity, candidates, k).await?;
    recommend_with(ctx, work, "popular", "eval_unit_rows").await?;

    let union = "SELECT * FROM eval_recommendations_als UNION ALL SELECT * FROM eval_recommendations_popular";
    work.materialize(ctx, "eval_recommendations", ctx.sql(union).await?)
        .await?;
    Ok(())
}

/// Top-k for every customer of `eval_holdout` with the registered `als_top_n`, excluding the
/// customer's training items, as `eval_recommendations_<model>`.
async fn recommend_with(
    ctx: &SessionContext,
    work: &WorkArea,
    model: &str,
    factors: &str,
) -> Result<()> {
    let sql = recommend_sql(model, factors)?;
    work.materialize(
        ctx,
        &format!("eval_recommendations_{model}"),
        ctx.sql(&sql).await?,
    )
    .await?;
    Ok(())
}

/// The top-k query of [`recommend_with`] (`sql/als/eval_top_n.sql`): for every customer of
/// `eval_holdout` with a row in `factors`, the registered `als_top_n`'s items, excluding the
/// customer's training items.
pub fn recommend_sql(model: &str, factors: &str) -> Result<String> {
    crate::engine::sql::template(
        "als/eval_top_n",
        &BTreeMap::from([
            ("model", model.to_string()),
            ("factors", factors.to_string()),
        ]),
    )
}

/// Each item's total training weight, as a one-column factor matrix.
async fn popularity(ctx: &SessionContext, items: usize) -> Result<Factors> {
    let mut values = vec![0.0f32; items];
    let batches = ctx
        .sql("SELECT item_idx, CAST(SUM(weight) AS DOUBLE) FROM eval_train GROUP BY item_idx")
        .await?
        .collect()
        .await?;
    for b in &batches {
        let ids = b.column(0).as_primitive::<arrow::datatypes::Int32Type>();
        let sums = b.column(1).as_primitive::<Float64Type>();
        for r in 0..b.num_rows() {
            if let Some(v) = values.get_mut(ids.value(r) as usize) {
                *v = sums.value(r) as f32;
            }
        }
    }
    Factors::new(items, 1, values).ok_or_else(|| PipelineError::Internal("popularity".into()))
}

/// The `{{parameters}}` of `18_evaluation.sql`.
/// `model` is the configured `[recommendations] model`, which the `published` column reflects.
pub fn params(
    eval: &EvaluationConfig,
    model: RecommendationModel,
    candidate_items: u64,
) -> BTreeMap<&'static str, String> {
    BTreeMap::from([
        ("k", eval.k.to_string()),
        ("recommendation_model", model.name().to_string()),
        ("candidate_items", candidate_items.max(1).to_string()),
    ])
}

/// Reads the materialised `evaluation` table into the report.
pub async fn read_scores(ctx: &SessionContext, report: &mut EvaluationReport) -> Result<()> {
    let batches = ctx
        .sql("SELECT model, users, precision_at_k, recall_at_k, ndcg_at_k, map_at_k, coverage, published FROM evaluation ORDER BY model")
        .await?
        .collect()
        .await?;
    for b in &batches {
        let model = b.column(0).as_string::<i32>();
        let users = b.column(1).as_primitive::<Int64Type>();
        let f = |c: usize, r: usize| b.column(c).as_primitive::<Float64Type>().value(r);
        for r in 0..b.num_rows() {
            report.models.push(ModelScores {
                model: model.value(r).to_string(),
                users: users.value(r) as u64,
                precision_at_k: f(2, r),
                recall_at_k: f(3, r),
                ndcg_at_k: f(4, r),
                map_at_k: f(5, r),
                coverage: f(6, r),
                published: b.column(7).as_boolean().value(r),
            });
        }
    }
    Ok(())
}
