//! `persona run`: the nightly job, stage by stage.
//!
//! 1. validate and register the inputs;
//! 2. the SQL stages up to the features and interactions (`sql/01`–`11`);
//! 3. segments (K-Means) and recommendations (ALS);
//! 4. the output SQL stages (`sql/12`–`18`);
//! 5. the offline evaluation (`sql/19`–`21`, [`crate::als::evaluate`]), unless disabled;
//! 6. publish: stage every table and the manifest, then commit them into place.
//!
//! `persona evaluate` runs steps 1, 2, 5 and 6 only, and publishes only `evaluation`.
//!
//! Every intermediate table lives in the run's work area, which is removed at the end, whether
//! the run succeeded or not.

use std::collections::BTreeMap;
use std::time::Instant;

use arrow::array::AsArray;
use arrow::datatypes::Int64Type;
use chrono::NaiveDate;
use datafusion::prelude::SessionContext;

use crate::als::evaluate::{self, EvaluationReport};
use crate::config::{Exclude, PipelineConfig};
use crate::error::{PipelineError, Result};
use crate::fault;
use crate::gates;
use crate::input::{self, Window};
use crate::lock::RunLock;
use crate::manifest::{DropCount, Manifest};
use crate::progress::Progress;
use crate::publish::Publisher;
use crate::session::{self, Engine};
use crate::signals;
use crate::sql;
use crate::stages::{StageMetrics, recommendations, segments};
use crate::storage::Root;
use crate::work::WorkArea;

/// The tables `persona run` publishes (and `evaluation`, when the evaluation scored).
pub const PUBLISHED: &[&str] = &[
    "user_features",
    "user_profiles",
    "segments",
    "recommendations",
    "user_factors",
    "item_factors",
    "similar_items",
    "data_quality",
];

/// The output SQL stages that run after the models.
const AFTER_MODELS: &[&str] = &[
    "als_recommendations",
    "user_profiles",
    "segments",
    "recommendations",
    "user_factors",
    "item_factors",
    "similar_items",
    "data_quality",
];

/// What to run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Input root (local folder or `s3://bucket/prefix`).
    pub input: String,
    /// Output root (local folder or `s3://bucket/prefix`).
    pub output: String,
    /// The run date: the last day of the window.
    pub date: NaiveDate,
    /// Configuration.
    pub config: PipelineConfig,
    /// Where the queries run.
    pub engine: Engine,
    /// Only the evaluation (`persona evaluate`): no models for the night, and only the
    /// `evaluation` table published.
    pub evaluate_only: bool,
    /// Write the evaluation's train and holdout pairs to this local folder.
    pub export_split: Option<std::path::PathBuf>,
}

/// What a successful run produced.
#[derive(Debug, Clone)]
pub struct RunSummary {
    /// The manifest that was published.
    pub manifest: Manifest,
    /// Where each table's partition is.
    pub locations: BTreeMap<String, String>,
}

/// Runs the whole job.
pub async fn run(opts: &RunOptions, progress: &mut Progress) -> Result<RunSummary> {
    let storage = &opts.config.storage;
    let (input, output) = (
        Root::parse(&opts.input, storage)?,
        Root::parse(&opts.output, storage)?,
    );
    let ctx = session::new_context(&opts.engine, &opts.config).await?;
    if let Some(path) = output.local_path() {
        std::fs::create_dir_all(path).map_err(|e| PipelineError::io(path, e))?;
    }
    let run_id = crate::work::new_run_id();
    let lock = RunLock::acquire(&output, opts.date, &run_id)
        .await
        .map_err(|e| e.in_stage("lock"))?;
    let result = async {
        let work = WorkArea::create(&output, &run_id, opts.engine == Engine::Local).await?;
        let roots = Roots {
            input: &input,
            output: &output,
        };
        let limit = stage_timeout(&opts.config, &opts.engine);
        let watchdog = stage_watchdog(progress.clock(), limit, &opts.engine);
        let result = tokio::select! {
            result = run_in(&ctx, opts, roots, &run_id, &work, progress) => result,
            stop = signals::interrupted() => Err(stop),
            late = watchdog => Err(late),
        };
        work.remove().await;
        result
    }
    .await;
    if result.is_err() {
        progress.abandon();
    }
    lock.release().await;
    result
}

/// The stage time limit of a run: `[execution] stage_timeout_seconds`, or when unset none
/// locally and an hour on Ballista.
pub(crate) fn stage_timeout(
    config: &PipelineConfig,
    engine: &Engine,
) -> Option<std::time::Duration> {
    let seconds = match config.execution.stage_timeout_seconds {
        Some(s) => s,
        None if *engine == Engine::Local => 0,
        None => 3600,
    };
    (seconds > 0).then(|| std::time::Duration::from_secs(seconds))
}

/// Runs a command that is one stage as a whole (`persona als`, `persona kmeans`) under the same
/// watchdog as the stages of `persona run`, so that a fit on a cluster that lost its executors
/// fails with `[TIMEOUT]` instead of waiting forever.
pub(crate) async fn as_one_stage<T>(
    stage: &str,
    config: &PipelineConfig,
    engine: &Engine,
    work: impl std::future::Future<Output = Result<T>>,
) -> Result<T> {
    let clock = crate::progress::StageClock::started(stage);
    tokio::select! {
        result = work => result,
        late = stage_watchdog(clock, stage_timeout(config, engine), engine) => Err(late),
    }
}

/// Resolves to a `[TIMEOUT]` error when a stage has run longer than `limit` (never while the
/// run is publishing, which nothing interrupts). On Ballista 55 a job whose executor died
/// mid-stage can wait forever for tasks nobody runs; this turns that into a failed run that
/// publishes nothing, which a rerun repeats on the executors that remain.
pub(crate) async fn stage_watchdog(
    clock: crate::progress::StageClock,
    limit: Option<std::time::Duration>,
    engine: &Engine,
) -> PipelineError {
    let Some(limit) = limit else {
        return std::future::pending().await;
    };
    loop {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        if signals::committing() {
            continue;
        }
        if let Some((stage, running)) = clock.current().filter(|(_, t)| *t > limit) {
            let hint = match engine {
                Engine::Local => String::new(),
                other => format!(
                    "; on {other} a lost executor leaves its job waiting forever: check that every `persona executor` is running and registered (the scheduler logs 'heartbeat timed out' for a lost one), then rerun"
                ),
            };
            return PipelineError::Timeout(format!(
                "stage {stage} ran {} s, longer than [execution] stage_timeout_seconds = {}{hint}; nothing was published",
                running.as_secs(),
                limit.as_secs()
            ));
        }
    }
}

/// The parsed input and output roots of a run.
#[derive(Clone, Copy)]
struct Roots<'a> {
    input: &'a Root,
    output: &'a Root,
}

async fn run_in(
    ctx: &SessionContext,
    opts: &RunOptions,
    roots: Roots<'_>,
    run_id: &str,
    work: &WorkArea,
    progress: &mut Progress,
) -> Result<RunSummary> {
    let started = Instant::now();
    let started_at = chrono::Utc::now();
    let cfg = &opts.config;
    let window = Window::ending(opts.date, cfg.window.lookback_days);
    let mut stages = Vec::new();

    progress.start("inputs");
    let inputs = input::register_inputs(ctx, roots.input, window)
        .await
        .map_err(|e| e.in_stage("inputs"))?;
    let files = inputs.iter().map(|r| r.files as u64).sum();
    stages.push(finish(
        progress,
        StageMetrics::new("inputs", files, started.elapsed()),
    ));

    let params = sql_params(opts, window);
    let mut gates = Vec::new();
    for name in sql::BEFORE_MODELS {
        let stage = match run_sql_stage(ctx, work, name, &params, progress).await {
            Err(e) if input::is_page_decoding_error(&e.to_string()) => {
                // Name the damaged file, which the query's error does not.
                return Err(
                    match input::find_undecodable_file(roots.input, window).await? {
                        Some(named) => named.in_stage(name),
                        None => e,
                    },
                );
            }
            other => other?,
        };
        stages.push(stage);
        if *name == "event_drops" {
            gates = run_gates(ctx, cfg, opts.date, progress).await?;
        }
    }

    let (mut seg, mut als, mut published) = (None, None, Vec::new());
    if !opts.evaluate_only {
        progress.start("segments (k-means)");
        let t = Instant::now();
        fault::check("segments")?;
        let report = segments::run(ctx, work, &cfg.segments)
            .await
            .map_err(|e| e.in_stage("segments"))?;
        stages.push(finish(
            progress,
            StageMetrics::new("segments (k-means)", report.points, t.elapsed()),
        ));
        seg = Some(report);

        progress.start("recommendations (als)");
        let t = Instant::now();
        fault::check("als")?;
        let report = recommendations::fit(ctx, work, &cfg.recommendations)
            .await
            .map_err(|e| e.in_stage("als"))?;
        stages.push(finish(
            progress,
            StageMetrics::new("recommendations (als)", report.interactions, t.elapsed()),
        ));
        als = Some(report);

        for name in AFTER_MODELS {
            stages.push(run_sql_stage(ctx, work, name, &params, progress).await?);
        }
        published.extend(PUBLISHED.iter().map(|t| t.to_string()));
    }

    let mut evaluation = None;
    if cfg.evaluation.enabled || opts.evaluate_only {
        let report = run_evaluation(ctx, work, cfg, &params, &mut stages, progress).await?;
        if let Some(dir) = &opts.export_split {
            export_split(ctx, dir).await?;
        }
        match &report.skipped {
            None => published.push("evaluation".to_string()),
            Some(why) if opts.evaluate_only => {
                return Err(PipelineError::BadInput(format!(
                    "nothing to evaluate for {}: {why} (holdout: the last {} days of the window)",
                    opts.date, cfg.evaluation.holdout_days
                )));
            }
            Some(_) => {}
        }
        evaluation = Some(report);
    }

    progress.start("publish");
    let t = Instant::now();
    let mut publisher = Publisher::new(roots.output, opts.date, work);
    let mut tables = BTreeMap::new();
    for table in &published {
        let rows = publisher
            .stage_table(ctx, table)
            .await
            .map_err(|e| e.in_stage("publish"))?;
        tables.insert(table.to_string(), rows);
    }
    let manifest = Manifest {
        run_id: run_id.to_string(),
        date: opts.date.to_string(),
        window: (window.first.to_string(), window.last.to_string()),
        input: roots.input.display(),
        output: roots.output.display(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        started_at: started_at.to_rfc3339(),
        finished_at: chrono::Utc::now().to_rfc3339(),
        seconds: started.elapsed().as_secs_f64(),
        inputs,
        stages: {
            let mut all = stages.clone();
            all.push(StageMetrics::new(
                "publish",
                tables.values().sum(),
                t.elapsed(),
            ));
            all
        },
        tables: tables.clone(),
        data_quality: drop_counts(ctx).await?,
        gates,
        segments: seg,
        recommendations: als,
        evaluation,
        config: cfg.clone(),
    };
    let json = serde_json::to_string_pretty(&manifest)
        .map_err(|e| PipelineError::Internal(format!("manifest: {e}")))?;
    publisher.stage_manifest(&json).await?;
    let locations = published
        .iter()
        .map(|t| (t.to_string(), publisher.partition_location(t)))
        .collect();
    fault::check("commit")?;
    signals::commit_started();
    publisher
        .commit()
        .await
        .map_err(|e| e.in_stage("publish"))?;
    finish(
        progress,
        StageMetrics::new("publish", tables.values().sum(), t.elapsed()),
    );
    Ok(RunSummary {
        manifest,
        locations,
    })
}

fn finish(progress: &mut Progress, m: StageMetrics) -> StageMetrics {
    progress.finish(&m);
    m
}

/// The data-quality gates, as a stage: fails the run when one fails.
async fn run_gates(
    ctx: &SessionContext,
    cfg: &PipelineConfig,
    date: NaiveDate,
    progress: &mut Progress,
) -> Result<Vec<gates::GateResult>> {
    progress.start("gates");
    let t = Instant::now();
    let results = gates::evaluate(ctx, &cfg.gates, date)
        .await
        .map_err(|e| e.in_stage("gates"))?;
    gates::enforce(&results).map_err(|e| e.in_stage("gates"))?;
    progress.finish(&StageMetrics::new(
        "gates",
        results.len() as u64,
        t.elapsed(),
    ));
    Ok(results)
}

/// What `persona check` found.
#[derive(Debug, Clone)]
pub struct CheckReport {
    /// Raw rows per source and reason.
    pub data_quality: Vec<DropCount>,
    /// Every gate.
    pub gates: Vec<gates::GateResult>,
}

/// `persona check`: validates the inputs of `opts.date` against the contract, stages them
/// (`sql/01`–`06`) in a scratch area and runs the gates, publishing nothing. A failed gate is
/// an error (exit 7) after the report has been returned to the caller through `report`.
pub async fn check(opts: &RunOptions, report: &mut Option<CheckReport>) -> Result<()> {
    let cfg = &opts.config;
    let input = Root::parse(&opts.input, &cfg.storage)?;
    let scratch_dir = std::env::temp_dir().join(format!("persona-check-{}", std::process::id()));
    let scratch = Root::parse(&scratch_dir.to_string_lossy(), &cfg.storage)?;
    std::fs::create_dir_all(&scratch_dir).map_err(|e| PipelineError::io(&scratch_dir, e))?;
    let ctx = session::new_context(&Engine::Local, cfg).await?;
    let work = WorkArea::create(&scratch, "check", true).await?;
    let result = async {
        let window = Window::ending(opts.date, cfg.window.lookback_days);
        input::register_inputs(&ctx, &input, window)
            .await
            .map_err(|e| e.in_stage("inputs"))?;
        let params = sql_params(opts, window);
        let mut progress = Progress::new();
        for name in sql::BEFORE_MODELS {
            run_sql_stage(&ctx, &work, name, &params, &mut progress).await?;
            if *name == "event_drops" {
                break;
            }
        }
        let gates = gates::evaluate(&ctx, &cfg.gates, opts.date)
            .await
            .map_err(|e| e.in_stage("gates"))?;
        *report = Some(CheckReport {
            data_quality: drop_counts(&ctx).await?,
            gates: gates.clone(),
        });
        gates::enforce(&gates).map_err(|e| e.in_stage("gates"))
    }
    .await;
    work.remove().await;
    let _ = std::fs::remove_dir_all(&scratch_dir);
    result
}

/// The offline evaluation: the split stages, the evaluation fit and recommendations, and the
/// metrics stage.
async fn run_evaluation(
    ctx: &SessionContext,
    work: &WorkArea,
    cfg: &PipelineConfig,
    params: &BTreeMap<&str, String>,
    stages: &mut Vec<StageMetrics>,
    progress: &mut Progress,
) -> Result<EvaluationReport> {
    for name in evaluate::SPLIT_STAGES {
        stages.push(run_sql_stage(ctx, work, name, params, progress).await?);
    }
    progress.start("evaluation (als vs popular)");
    let t = Instant::now();
    let holdout_start = params.get("holdout_start").cloned().unwrap_or_default();
    let (mut report, candidates) = evaluate::recommend(
        ctx,
        work,
        &cfg.recommendations,
        &cfg.evaluation,
        holdout_start,
    )
    .await
    .map_err(|e| e.in_stage("evaluation"))?;
    stages.push(finish(
        progress,
        StageMetrics::new(
            "evaluation (als vs popular)",
            report.train_pairs,
            t.elapsed(),
        ),
    ));
    if report.skipped.is_none() {
        let mut params = params.clone();
        params.extend(evaluate::params(&cfg.evaluation, candidates));
        stages.push(run_sql_stage(ctx, work, "evaluation", &params, progress).await?);
        evaluate::read_scores(ctx, &mut report).await?;
    }
    Ok(report)
}

/// Writes `eval_train` and `eval_holdout` as single Parquet files under `dir`.
async fn export_split(ctx: &SessionContext, dir: &std::path::Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| PipelineError::io(dir, e))?;
    for (table, file) in [
        ("eval_train", "train.parquet"),
        ("eval_holdout", "holdout.parquet"),
    ] {
        // One file, streamed by DataFusion's own Parquet writer (no batches collected here).
        let path = dir.join(file);
        ctx.table(table)
            .await?
            .write_parquet(
                &path.to_string_lossy(),
                datafusion::dataframe::DataFrameWriteOptions::new().with_single_file_output(true),
                None,
            )
            .await?;
    }
    Ok(())
}

/// Runs one SQL stage and materialises its table in the work area.
async fn run_sql_stage(
    ctx: &SessionContext,
    work: &WorkArea,
    name: &str,
    params: &BTreeMap<&str, String>,
    progress: &mut Progress,
) -> Result<StageMetrics> {
    progress.start(name);
    let t = Instant::now();
    let stage = sql::stage(name)?;
    let result = async {
        fault::check(name)?;
        let text = sql::render(stage, params)?;
        let df = ctx.sql(&text).await?;
        work.materialize(ctx, name, df).await
    }
    .await
    .map_err(|e| e.in_stage(&format!("{name} ({})", stage.file)))?;
    Ok(finish(
        progress,
        StageMetrics::new(name, result, t.elapsed()),
    ))
}

/// The `{{parameters}}` of the SQL stages.
pub fn sql_params(opts: &RunOptions, window: Window) -> BTreeMap<&'static str, String> {
    let rec = &opts.config.recommendations;
    let end = window.last + chrono::Duration::days(1);
    let holdout_start =
        end - chrono::Duration::days(i64::from(opts.config.evaluation.holdout_days));
    let exclude = match rec.exclude {
        Exclude::Purchased => "purchased",
        Exclude::Seen => "true",
        Exclude::None => "false",
    };
    BTreeMap::from([
        ("run_date", window.last.to_string()),
        ("first_dt", window.first.to_string()),
        ("last_dt", window.last.to_string()),
        ("window_start", format!("{}T00:00:00Z", window.first)),
        ("window_end", format!("{end}T00:00:00Z")),
        ("weight_view", format!("{:?}", rec.weights.view)),
        ("weight_click", format!("{:?}", rec.weights.click)),
        (
            "weight_add_to_cart",
            format!("{:?}", rec.weights.add_to_cart),
        ),
        ("weight_purchase", format!("{:?}", rec.weights.purchase)),
        ("max_weight", format!("{:?}", rec.max_weight)),
        ("half_life_days", format!("{:?}", rec.half_life_days)),
        ("top_n", rec.top_n.to_string()),
        ("min_interactions", rec.min_interactions.to_string()),
        ("exclude_rule", exclude.to_string()),
        ("holdout_start", format!("{holdout_start}T00:00:00Z")),
        (
            "recommend_without_opt_in",
            opts.config.privacy.recommend_without_opt_in.to_string(),
        ),
    ])
}

/// Reads the data-quality counters staged by `06_event_drops.sql`.
async fn drop_counts(ctx: &SessionContext) -> Result<Vec<DropCount>> {
    let batches = ctx
        .sql(
            "SELECT source, reason, CAST(SUM(rows) AS BIGINT) AS rows FROM event_drops \
             GROUP BY source, reason ORDER BY source, reason",
        )
        .await?
        .collect()
        .await?;
    let mut out = Vec::new();
    for b in &batches {
        let (source, reason) = (
            b.column(0).as_string::<i32>(),
            b.column(1).as_string::<i32>(),
        );
        let rows = b.column(2).as_primitive::<Int64Type>();
        for r in 0..b.num_rows() {
            out.push(DropCount {
                source: source.value(r).into(),
                reason: reason.value(r).into(),
                rows: rows.value(r) as u64,
            });
        }
    }
    Ok(out)
}
