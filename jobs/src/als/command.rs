//! `persona als`: the recommendation engine on any Parquet table of interactions, for data
//! scientists and benchmarks. Reads a file or folder (local or `s3://`) of (user, item,
//! weight) rows — several rows of one pair are summed — fits implicit ALS and publishes, whole
//! or not at all:
//!
//! - `OUTPUT/user_factors/`, `OUTPUT/item_factors/`: the model (`id`, `factors`);
//! - `OUTPUT/recommendations/`: the top-N items per user (`user`, `rank`, `item`, `score`),
//!   excluding the items the user interacted with unless `--keep-seen`;
//! - `OUTPUT/report/report.json`: the fit (seconds and loss per iteration) and, with
//!   `--holdout`, precision, recall, NDCG and MAP@k of the model and of popularity on the
//!   held-out pairs, computed by the same `sql/14_evaluation.sql` as the nightly evaluation.
//!
//! With `--explicit` the weights are ratings (averaged per pair, any value): the fit minimises
//! the squared error on the rated pairs only, and the report adds the RMSE on the training
//! ratings and on the holdout's.

use std::collections::BTreeMap;
use std::time::Instant;

use datafusion::prelude::SessionContext;
use serde::Serialize;

use super::evaluate::{self, EvaluationReport, ModelScores};
use super::{AlsReport, count, item_mask, register_top_n, write_factors};
use crate::config::{EvaluationConfig, PipelineConfig, RecommendationsConfig};
use crate::error::{PipelineError, Result};
use crate::publish::Publisher;
use crate::session::{self, Engine};
use crate::sql;
use crate::storage::Root;
use crate::tables::{quote, register_parquet};
use crate::work::WorkArea;

/// What to fit and how.
#[derive(Debug, Clone)]
pub struct AlsOptions {
    /// Parquet file or folder of interactions, local or `s3://`.
    pub input: String,
    /// Output folder, local or `s3://`.
    pub output: String,
    /// User id column (any type).
    pub user: String,
    /// Item id column (any type).
    pub item: String,
    /// Numeric weight column; every row weighs 1 without it.
    pub weight: Option<String>,
    /// Held-out interactions (same columns) to score the model on.
    pub holdout: Option<String>,
    /// Recommend items the user already interacted with too.
    pub keep_seen: bool,
    /// The model's settings (rank, iterations, lambda, alpha, solver, top_n, …).
    pub als: RecommendationsConfig,
    /// Storage and execution settings.
    pub pipeline: PipelineConfig,
    /// Where the queries run.
    pub engine: Engine,
}

/// The published report.
#[derive(Debug, Clone, Serialize)]
pub struct AlsCommandReport {
    /// The input read.
    pub input: String,
    /// Input rows dropped: null user or item, or a weight that is null or not positive.
    pub dropped_rows: u64,
    /// The fit.
    pub fit: AlsReport,
    /// Scores on `--holdout`, for the model (`als`) and for popularity (`popular`).
    pub holdout: Option<Vec<ModelScores>>,
    /// With `--explicit`: root-mean-square error of the predicted ratings.
    pub rmse: Option<Rmse>,
    /// Seconds for the whole command.
    pub seconds: f64,
    /// The settings used.
    pub config: RecommendationsConfig,
    /// Where the outputs were published (not in `report.json`, which lives there).
    #[serde(skip)]
    pub output: String,
}

/// Root-mean-square error of `--explicit` predictions (`x_u · y_i` against the rating).
#[derive(Debug, Clone, Serialize)]
pub struct Rmse {
    /// On the training ratings.
    pub train: f64,
    /// On the `--holdout` ratings of known users and items.
    pub holdout: Option<f64>,
}

/// The RMSE of the model on the (`user_idx`, `item_idx`, `rating`) rows of `sql` whose
/// customer has factors, streamed with those factors (the rows are never collected).
async fn rmse(ctx: &SessionContext, sql: &str, model: &super::AlsModel) -> Result<f64> {
    use arrow::array::AsArray;
    use arrow::compute::cast;
    use arrow::datatypes::{DataType, Float64Type, Int32Type};
    use futures::StreamExt;
    let sql = format!(
        "SELECT q.item_idx, q.rating, f.factors FROM ({sql}) q JOIN {} f ON q.user_idx = f.user_idx",
        model.users
    );
    let mut stream = ctx.sql(&sql).await?.execute_stream().await?;
    let (mut sum, mut n) = (0.0f64, 0u64);
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        let items = batch.column(0).as_primitive::<Int32Type>();
        let ratings = cast(batch.column(1), &DataType::Float64)?;
        let ratings = ratings.as_primitive::<Float64Type>();
        let factors = batch.column(2).as_list::<i32>();
        for r in 0..batch.num_rows() {
            let x = factors.value(r);
            let x = x.as_primitive::<arrow::datatypes::Float32Type>().values();
            let y = model.items.row(items.value(r) as usize);
            let predicted: f64 = x.iter().zip(y).map(|(a, b)| f64::from(a * b)).sum();
            sum += (ratings.value(r) - predicted).powi(2);
            n += 1;
        }
    }
    Ok((sum / n.max(1) as f64).sqrt())
}

/// Runs `persona als`.
pub async fn run(opts: &AlsOptions) -> Result<AlsCommandReport> {
    let started = Instant::now();
    let storage = &opts.pipeline.storage;
    let (input, output) = (
        Root::parse(&opts.input, storage)?,
        Root::parse(&opts.output, storage)?,
    );
    let ctx = session::new_context(&opts.engine, &opts.pipeline).await?;
    register_parquet(&ctx, "als_input", &input, &opts.input).await?;
    check_columns(&ctx, "als_input", &opts.input, opts, true).await?;
    let work = WorkArea::for_command(&output, "als", opts.engine == Engine::Local).await?;
    let fit = fit_and_publish(&ctx, opts, &output, &work, started);
    let result = crate::watchdog::as_one_stage("als", &opts.pipeline, &opts.engine, fit).await;
    work.remove().await;
    result
}

/// Fails with one readable message when a named column is missing or the weight is not numeric.
async fn check_columns(
    ctx: &SessionContext,
    table: &str,
    what: &str,
    opts: &AlsOptions,
    weight: bool,
) -> Result<()> {
    let df = ctx.table(table).await?;
    let schema = df.schema();
    let mut wanted = vec![(&opts.user, "--user"), (&opts.item, "--item")];
    if weight && let Some(w) = &opts.weight {
        wanted.push((w, "--weight"));
    }
    for (column, flag) in wanted {
        let Ok((_, field)) = schema.qualified_field_with_unqualified_name(column) else {
            let have: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
            return Err(PipelineError::BadInput(format!(
                "{what}: no column {column:?} ({flag}); the columns are {}",
                have.join(", ")
            )));
        };
        if flag == "--weight" && !field.data_type().is_numeric() {
            return Err(PipelineError::BadInput(format!(
                "{what}: column {column:?} (--weight) must be numeric, found {}",
                field.data_type()
            )));
        }
    }
    Ok(())
}

async fn fit_and_publish(
    ctx: &SessionContext,
    opts: &AlsOptions,
    output: &Root,
    work: &WorkArea,
    started: Instant,
) -> Result<AlsCommandReport> {
    let (user, item) = (quote(&opts.user), quote(&opts.item));
    let weight = opts.weight.as_ref().map_or("1.0".to_string(), |w| {
        format!("CAST({} AS DOUBLE)", quote(w))
    });
    // A usable row has both ids and a weight: positive for implicit feedback, any rating in
    // explicit mode. Explicit ratings of one pair are averaged; implicit weights are summed.
    let usable = if opts.als.explicit {
        format!("{weight} IS NOT NULL")
    } else {
        format!("{weight} > 0")
    };
    let usable_row = format!("{user} IS NOT NULL AND {item} IS NOT NULL AND {usable}");
    let params = |extra: &[(&'static str, &str)]| {
        let mut p = BTreeMap::from([
            ("user", user.clone()),
            ("item", item.clone()),
            ("weight", weight.clone()),
            (
                "combine",
                (if opts.als.explicit { "AVG" } else { "SUM" }).to_string(),
            ),
            ("usable", usable.clone()),
        ]);
        p.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
        p
    };
    let rows = count(ctx, "SELECT COUNT(*) FROM als_input").await?;
    for (table, column) in [("als_users", &user), ("als_items", &item)] {
        let sql = sql::template(
            "als/index",
            &params(&[("column", column), ("usable", &usable_row)]),
        )?;
        work.materialize(ctx, table, ctx.sql(&sql).await?).await?;
    }
    let pairs = sql::template("als/pairs", &params(&[]))?;
    work.materialize(ctx, "als_pairs", ctx.sql(&pairs).await?)
        .await?;
    let kept = count(
        ctx,
        &format!("SELECT COUNT(*) FROM als_input WHERE {usable_row}"),
    )
    .await?;
    let users = count(ctx, "SELECT COUNT(*) FROM als_users").await? as usize;
    let items = count(ctx, "SELECT COUNT(*) FROM als_items").await? as usize;
    if users == 0 {
        return Err(PipelineError::BadInput(format!(
            "{}: no usable interactions ({rows} rows; every one has a null id or a weight that is null or not positive)",
            opts.input
        )));
    }
    let model = super::Als::new(ctx, work, "als_pairs", (users, items), &opts.als)
        .with_users_table("als_user_rows")
        .fit()
        .await?;

    write_factors(ctx, work, "als_item_rows", "item_idx", &model.items).await?;
    register_top_n(ctx, work, &model.items, vec![true; items], opts.als.top_n).await?;
    let seen = if opts.keep_seen { "WHERE false" } else { "" };
    let recs = sql::template("als/recommendations", &params(&[("seen_filter", seen)]))?;
    work.materialize(ctx, "recommendations", ctx.sql(&recs).await?)
        .await?;
    for (table, rows, index, col) in [
        ("user_factors", "als_user_rows", "als_users", &user),
        ("item_factors", "als_item_rows", "als_items", &item),
    ] {
        let side = if table == "user_factors" {
            "user_idx"
        } else {
            "item_idx"
        };
        let sql = sql::template(
            "als/factors",
            &params(&[
                ("column", col),
                ("rows", rows),
                ("index", index),
                ("side", side),
            ]),
        )?;
        work.materialize(ctx, table, ctx.sql(&sql).await?).await?;
    }
    let holdout = match &opts.holdout {
        Some(path) => Some(score_holdout(ctx, opts, path, work, &model).await?),
        None => None,
    };
    let rmse = if opts.als.explicit {
        let train = rmse(
            ctx,
            "SELECT user_idx, item_idx, weight AS rating FROM als_pairs",
            &model,
        )
        .await?;
        let holdout = match opts.holdout {
            Some(_) => Some(
                rmse(
                    ctx,
                    &sql::template("als/holdout_ratings", &params(&[]))?,
                    &model,
                )
                .await?,
            ),
            None => None,
        };
        Some(Rmse { train, holdout })
    } else {
        None
    };

    let mut publisher = Publisher::unpartitioned(output, work, "report", "report.json");
    for table in ["user_factors", "item_factors", "recommendations"] {
        publisher.stage_table(ctx, table).await?;
    }
    let report = AlsCommandReport {
        input: opts.input.clone(),
        dropped_rows: rows - kept,
        fit: model.report,
        holdout,
        rmse,
        seconds: started.elapsed().as_secs_f64(),
        config: opts.als.clone(),
        output: opts.output.clone(),
    };
    let json = serde_json::to_string_pretty(&report)
        .map_err(|e| PipelineError::Internal(format!("report: {e}")))?;
    publisher.stage_manifest(&json, &Default::default()).await?;
    publisher.commit().await?;
    Ok(report)
}

/// Scores the model and popularity on the held-out (user, item) pairs of known users that
/// the user did not interact with in the input, with the nightly evaluation's SQL.
async fn score_holdout(
    ctx: &SessionContext,
    opts: &AlsOptions,
    path: &str,
    work: &WorkArea,
    model: &super::AlsModel,
) -> Result<Vec<ModelScores>> {
    let root = Root::parse(path, &opts.pipeline.storage)?;
    register_parquet(ctx, "als_holdout_input", &root, path).await?;
    check_columns(ctx, "als_holdout_input", path, opts, opts.als.explicit).await?;
    let holdout = sql::template(
        "als/holdout_pairs",
        &BTreeMap::from([("user", quote(&opts.user)), ("item", quote(&opts.item))]),
    )?;
    work.materialize(ctx, "eval_holdout", ctx.sql(&holdout).await?)
        .await?;
    ctx.register_table("eval_train", ctx.table("als_pairs").await?.into_view())?;
    let eval = EvaluationConfig {
        k: opts.als.top_n,
        ..EvaluationConfig::default()
    };
    let candidates = item_mask(
        ctx,
        "SELECT DISTINCT item_idx FROM als_pairs",
        model.items.rows(),
    )
    .await?;
    let candidate_items = candidates.iter().filter(|c| **c).count() as u64;
    evaluate::recommend_models(ctx, work, eval.k, &model.users, &model.items, candidates).await?;
    let sql = sql::render(
        &evaluate::SCORES_SQL,
        &evaluate::params(&eval, candidate_items),
    )?;
    work.materialize(ctx, "evaluation", ctx.sql(&sql).await?)
        .await?;
    let mut report = EvaluationReport::empty(&eval);
    evaluate::read_scores(ctx, &mut report).await?;
    Ok(report.models)
}
