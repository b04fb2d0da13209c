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
//!   held-out pairs, computed by the same `sql/18_evaluation.sql` as the nightly evaluation.
//!
//! `persona recommend --model item_knn | user_knn` runs the night's neighbourhood models over
//! the same input instead: it publishes their recommendations (with the item that explains
//! each, for the item-to-item model) and their neighbours (`item_neighbours/`,
//! `similar_users/`), and scores them on `--holdout` beside popularity.
//!
//! With `--explicit` the weights are ratings (averaged per pair, any value): the fit minimises
//! the squared error on the rated pairs only, and the report adds the RMSE on the training
//! ratings and on the holdout's.

use std::collections::BTreeMap;
use std::time::Instant;

use datafusion::prelude::SessionContext;
use serde::Serialize;

use super::on_table::TableCommand;
use crate::config::{EvaluationConfig, PipelineConfig, RecommendationModel, RecommendationsConfig};
use crate::engine::progress::{Progress, StageMetrics};
use crate::engine::publish::Publisher;
use crate::engine::session::Engine;
use crate::engine::sql;
use crate::engine::storage::Root;
use crate::engine::tables::{quote, register_parquet};
use crate::engine::work::WorkArea;
use crate::error::{PipelineError, Result};
use crate::models::als::evaluate::{self, EvaluationReport, ModelScores};
use crate::models::als::{AlsModel, AlsReport, count, item_mask};
use crate::stages::night::{Night, Roots};
use crate::stages::recommendations::FittedItems;
use crate::stages::registry::{self, Mode};

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
    /// The model: `als`, `item_knn` or `user_knn` (`persona recommend --model`).
    pub model: &'static str,
    /// The ALS fit (none for the neighbourhood models).
    pub fit: Option<AlsReport>,
    /// The (user, item) pairs of the matrix, and its users and items.
    pub matrix: Matrix,
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

/// The size of the interaction matrix a model was fitted on.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Matrix {
    /// Users with at least one usable row.
    pub users: u64,
    /// Items with at least one usable row.
    pub items: u64,
    /// Distinct (user, item) pairs.
    pub pairs: u64,
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
async fn rmse(ctx: &SessionContext, sql: &str, model: &AlsModel) -> Result<f64> {
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
    let command = TableCommand {
        name: "als",
        input: &opts.input,
        output: &opts.output,
        table: "als_input",
        pipeline: &opts.pipeline,
        engine: &opts.engine,
    };
    command
        .run(async |on| {
            check_columns(&on.ctx, "als_input", &opts.input, opts, true).await?;
            let roots = Roots {
                input: &on.input,
                output: &on.output,
            };
            fit_and_publish(&on.ctx, opts, roots, &on.work, started).await
        })
        .await
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

/// The night's stages that `persona als` runs, in order, over its input mapped onto `events`:
/// the integer ids, the interaction matrix, the fit, the top-N and the factors.
const STAGES: [&str; 7] = [
    "item_index",
    "user_index",
    "interactions",
    "als",
    "als_recommendations",
    "user_factors",
    "item_factors",
];

/// The short night runs whichever stages it is given, of any part.
const EVERY_PART: Mode = Mode::Run {
    evaluation: true,
    propensity: true,
};

/// The time of the input's rows in the short night's `events` (the input has none), and the
/// start of a holdout after them: every pair of the input is a training pair (sql/10).
const TRAIN_TS: &str = "2000-01-01T00:00:00Z";
const HOLDOUT_TS: &str = "2000-01-02T00:00:00Z";

/// The short night of [`STAGES`], with the `{{parameters}}` that make the night's SQL read the
/// input's rows as one event type weighing the input's weight, without decay or cap.
fn short_night<'a>(
    ctx: &'a SessionContext,
    work: &'a WorkArea,
    config: &'a PipelineConfig,
    roots: Roots<'a>,
    stages: &[&str],
    keep_seen: bool,
) -> Result<Night<'a>> {
    let stages = stages
        .iter()
        .map(|name| {
            registry::find(name)
                .ok_or_else(|| PipelineError::Internal(format!("no stage {name} in the night")))
        })
        .collect::<Result<Vec<_>>>()?;
    let date = chrono::NaiveDate::from_ymd_opt(2000, 1, 1).unwrap_or_default();
    let night = Night::new(ctx, work, config, roots, "als", EVERY_PART, date)
        .with_stages(stages)
        .with_params([
            ("interaction_events", "('interaction')".to_string()),
            ("event_weight", "e.weight".to_string()),
            ("interactions_end", HOLDOUT_TS.to_string()),
            ("holdout_start", HOLDOUT_TS.to_string()),
            ("half_life_days", "0.0".to_string()),
            // No cap: the largest weight the FLOAT column holds.
            ("max_weight", format!("{:?}", f64::from(f32::MAX))),
            ("exclude_rule", (!keep_seen).to_string()),
        ]);
    Ok(night)
}

async fn fit_and_publish(
    ctx: &SessionContext,
    opts: &AlsOptions,
    roots: Roots<'_>,
    work: &WorkArea,
    started: Instant,
) -> Result<AlsCommandReport> {
    let (user, item) = (quote(&opts.user), quote(&opts.item));
    let weight = opts.weight.as_ref().map_or("1.0".to_string(), |w| {
        format!("CAST({} AS DOUBLE)", quote(w))
    });
    // A usable row has both ids and a weight: positive for implicit feedback, any rating in
    // explicit mode.
    let usable = if opts.als.explicit {
        format!("{weight} IS NOT NULL")
    } else {
        format!("{weight} > 0")
    };
    let usable_row = format!("{user} IS NOT NULL AND {item} IS NOT NULL AND {usable}");
    // The input as the night's `events`: implicit weights are summed per pair by the
    // interactions SQL; explicit ratings of one pair are averaged here, so that it sums one.
    let events = if opts.als.explicit {
        format!(
            "SELECT {user} AS customer_id, {item} AS item_id, 'interaction' AS event_type, \
             TIMESTAMP '{TRAIN_TS}' AS ts, AVG({weight}) AS weight \
             FROM als_input WHERE {usable_row} GROUP BY {user}, {item}"
        )
    } else {
        format!(
            "SELECT {user} AS customer_id, {item} AS item_id, 'interaction' AS event_type, \
             TIMESTAMP '{TRAIN_TS}' AS ts, {weight} AS weight FROM als_input WHERE {usable_row}"
        )
    };
    create_view(ctx, "events", &events).await?;
    // Every item of the input may be recommended: the catalog is the input's items.
    create_view(ctx, "items", "SELECT DISTINCT item_id FROM events").await?;
    let rows = count(ctx, "SELECT COUNT(*) FROM als_input").await?;
    let kept = count(
        ctx,
        &format!("SELECT COUNT(*) FROM als_input WHERE {usable_row}"),
    )
    .await?;
    if kept == 0 {
        return Err(PipelineError::BadInput(format!(
            "{}: no usable interactions ({rows} rows; every one has a null id or a weight that is null or not positive)",
            opts.input
        )));
    }
    let config = PipelineConfig {
        recommendations: opts.als.clone(),
        ..opts.pipeline.clone()
    };
    if opts.als.model != RecommendationModel::Als {
        return neighbours_and_publish(ctx, opts, roots, work, &config, started, rows - kept).await;
    }
    let mut progress = Progress::new();
    let mut night = short_night(ctx, work, &config, roots, &STAGES, opts.keep_seen)?;
    night.run(&mut progress).await?;
    let fit = night
        .record
        .reports
        .get::<AlsReport>()
        .cloned()
        .ok_or_else(|| PipelineError::Internal("the als stage reported no fit".into()))?;
    let items = night
        .record
        .handoffs
        .take::<FittedItems>()
        .ok_or_else(|| PipelineError::Internal("the als stage left no item factors".into()))?;
    let model = AlsModel {
        users: "user_factor_rows".to_string(),
        items: items.0,
        report: fit,
    };

    let holdout = match &opts.holdout {
        Some(path) => Some(score_holdout(ctx, opts, path, work, &model, &mut progress).await?),
        None => None,
    };
    let rmse = if opts.als.explicit {
        let train = rmse(
            ctx,
            "SELECT user_idx, item_idx, weight AS rating FROM interactions",
            &model,
        )
        .await?;
        let holdout = match opts.holdout {
            Some(_) => {
                let params = BTreeMap::from([
                    ("user", user.clone()),
                    ("item", item.clone()),
                    ("weight", weight.clone()),
                ]);
                let sql = sql::template("als/holdout_ratings", &params)?;
                Some(rmse(ctx, &sql, &model).await?)
            }
            None => None,
        };
        Some(Rmse { train, holdout })
    } else {
        None
    };

    // The night's tables under the input's column names.
    let mut publisher = Publisher::unpartitioned(roots.output, work, "report", "report.json");
    let recommendations = sql::template(
        "als/recommendations",
        &BTreeMap::from([("user", user.clone()), ("item", item.clone())]),
    )?;
    for (table, sql) in [
        (
            "user_factors",
            format!("SELECT customer_id AS {user}, factors FROM user_factors"),
        ),
        (
            "item_factors",
            format!("SELECT item_id AS {item}, factors FROM item_factors"),
        ),
        ("recommendations", recommendations),
    ] {
        publisher.stage_query(table, ctx.sql(&sql).await?).await?;
    }
    let report = AlsCommandReport {
        input: opts.input.clone(),
        dropped_rows: rows - kept,
        model: "als",
        matrix: Matrix {
            users: model.report.users as u64,
            items: model.report.items as u64,
            pairs: model.report.interactions,
        },
        fit: Some(model.report),
        holdout,
        rmse,
        seconds: started.elapsed().as_secs_f64(),
        config: opts.als.clone(),
        output: opts.output.clone(),
    };
    commit(publisher, report).await
}

/// Stages `report.json` beside the staged tables and commits them all at once.
async fn commit(mut publisher: Publisher, report: AlsCommandReport) -> Result<AlsCommandReport> {
    let json = serde_json::to_string_pretty(&report)
        .map_err(|e| PipelineError::Internal(format!("report: {e}")))?;
    publisher.stage_manifest(&json, &Default::default()).await?;
    publisher.commit().await?;
    Ok(report)
}

/// Registers `sql` as the view `name`, replacing an earlier one (a view, not a
/// [`datafusion::dataframe::DataFrame`] provider, so that a Ballista plan carries it).
async fn create_view(ctx: &SessionContext, name: &str, sql: &str) -> Result<()> {
    ctx.sql(&format!("CREATE OR REPLACE VIEW {name} AS {sql}"))
        .await?
        .collect()
        .await?;
    Ok(())
}

/// Scores the model and popularity on the held-out (user, item) pairs of known users and
/// items that the user did not interact with in the input (`sql/als/holdout_pairs.sql`, the
/// night's `eval_holdout` for this input), then the nightly evaluation's SQL.
async fn score_holdout(
    ctx: &SessionContext,
    opts: &AlsOptions,
    path: &str,
    work: &WorkArea,
    model: &AlsModel,
    progress: &mut Progress,
) -> Result<Vec<ModelScores>> {
    let eval = holdout_pairs(ctx, opts, path, work, progress).await?;
    let candidates = item_mask(
        ctx,
        "SELECT DISTINCT item_idx FROM interactions",
        model.items.rows(),
    )
    .await?;
    let candidate_items = candidates.iter().filter(|c| **c).count() as u64;
    evaluate::recommend_models(ctx, work, eval.k, &model.users, &model.items, candidates).await?;
    scores(ctx, work, &eval, RecommendationModel::Als, candidate_items).await
}

/// The `--holdout` rows as the night's `eval_holdout` (the pairs of known users and items
/// that the user did not interact with in the input), and the evaluation's settings.
async fn holdout_pairs(
    ctx: &SessionContext,
    opts: &AlsOptions,
    path: &str,
    work: &WorkArea,
    progress: &mut Progress,
) -> Result<EvaluationConfig> {
    let root = Root::parse(path, &opts.pipeline.storage)?;
    register_parquet(ctx, "als_holdout_input", &root, path).await?;
    check_columns(ctx, "als_holdout_input", path, opts, opts.als.explicit).await?;
    // The training pairs, which the evaluation's top-N leaves out, are the whole input.
    create_view(
        ctx,
        "eval_train",
        "SELECT user_idx, item_idx, weight, purchased FROM interactions",
    )
    .await?;
    let params = BTreeMap::from([("user", quote(&opts.user)), ("item", quote(&opts.item))]);
    let sql = sql::template("als/holdout_pairs", &params)?;
    progress.start("eval_holdout");
    let started = Instant::now();
    let rows = work
        .materialize(ctx, "eval_holdout", ctx.sql(&sql).await?)
        .await?;
    progress.finish(&StageMetrics::new("eval_holdout", rows, started.elapsed()));
    Ok(EvaluationConfig {
        k: opts.als.top_n,
        ..EvaluationConfig::default()
    })
}

/// The nightly evaluation's SQL over `eval_recommendations` and `eval_holdout`.
async fn scores(
    ctx: &SessionContext,
    work: &WorkArea,
    eval: &EvaluationConfig,
    model: RecommendationModel,
    candidate_items: u64,
) -> Result<Vec<ModelScores>> {
    let sql = sql::render(
        &evaluate::SCORES_SQL,
        &evaluate::params(eval, model, candidate_items),
    )?;
    work.materialize(ctx, "evaluation", ctx.sql(&sql).await?)
        .await?;
    let mut report = EvaluationReport::empty(eval);
    evaluate::read_scores(ctx, &mut report).await?;
    Ok(report.models)
}

/// `persona recommend --model item_knn | user_knn`: the night's stages of the neighbourhood
/// model over the input, then its recommendations and its neighbours under the input's column
/// names, and with `--holdout` its scores beside popularity's.
async fn neighbours_and_publish(
    ctx: &SessionContext,
    opts: &AlsOptions,
    roots: Roots<'_>,
    work: &WorkArea,
    config: &PipelineConfig,
    started: Instant,
    dropped_rows: u64,
) -> Result<AlsCommandReport> {
    let (user, item) = (quote(&opts.user), quote(&opts.item));
    let model = opts.als.model;
    let (neighbour_stage, table, neighbours) = if model == RecommendationModel::ItemKnn {
        let other = quote(&format!("neighbour_{}", opts.item));
        (
            "item_neighbour_rows",
            "item_neighbours",
            format!(
                "SELECT a.item_id AS {item}, n.rank, b.item_id AS {other}, n.similarity \
                 FROM item_neighbour_rows n JOIN item_index a ON n.item_idx = a.item_idx \
                 JOIN item_index b ON n.neighbour_idx = b.item_idx"
            ),
        )
    } else {
        let other = quote(&format!("similar_{}", opts.user));
        (
            "customer_neighbour_rows",
            "similar_users",
            format!(
                "SELECT a.customer_id AS {user}, n.rank, b.customer_id AS {other}, n.similarity \
                 FROM customer_neighbour_rows n JOIN user_index a ON n.user_idx = a.user_idx \
                 JOIN user_index b ON n.neighbour_idx = b.user_idx"
            ),
        )
    };
    let recommendations_stage = format!("{}_recommendations", model.name());
    let stages = [
        "item_index",
        "user_index",
        "interactions",
        neighbour_stage,
        recommendations_stage.as_str(),
        "model_recommendations",
    ];
    let mut progress = Progress::new();
    short_night(ctx, work, config, roots, &stages, opts.keep_seen)?
        .run(&mut progress)
        .await?;
    let matrix = Matrix {
        users: count(ctx, "SELECT COUNT(*) FROM user_index").await?,
        items: count(ctx, "SELECT COUNT(*) FROM item_index").await?,
        pairs: count(ctx, "SELECT COUNT(*) FROM interactions").await?,
    };
    let because = quote(&format!("because_{}", opts.item));
    let recommendations = format!(
        "SELECT u.customer_id AS {user}, r.rank, i.item_id AS {item}, r.score, b.item_id AS {because} \
         FROM model_recommendations r JOIN user_index u ON r.user_idx = u.user_idx \
         JOIN item_index i ON r.item_idx = i.item_idx \
         LEFT JOIN item_index b ON r.because_item_idx = b.item_idx"
    );
    let holdout = match &opts.holdout {
        Some(path) => {
            let eval = holdout_pairs(ctx, opts, path, work, &mut progress).await?;
            let params = BTreeMap::from([
                ("model", model.name().to_string()),
                ("k", eval.k.to_string()),
            ]);
            let sql = sql::template("als/neighbour_holdout", &params)?;
            work.materialize(ctx, "eval_recommendations", ctx.sql(&sql).await?)
                .await?;
            Some(scores(ctx, work, &eval, model, matrix.items).await?)
        }
        None => None,
    };
    let mut publisher = Publisher::unpartitioned(roots.output, work, "report", "report.json");
    for (name, sql) in [("recommendations", recommendations), (table, neighbours)] {
        publisher.stage_query(name, ctx.sql(&sql).await?).await?;
    }
    let report = AlsCommandReport {
        input: opts.input.clone(),
        dropped_rows,
        model: model.name(),
        fit: None,
        matrix,
        holdout,
        rmse: None,
        seconds: started.elapsed().as_secs_f64(),
        config: opts.als.clone(),
        output: opts.output.clone(),
    };
    commit(publisher, report).await
}
