//! `persona kmeans`: the segmentation engine on any Parquet table, for analysts and data
//! scientists. Reads a file or folder (local or `s3://`), clusters the chosen numeric columns and
//! publishes, whole or not at all:
//!
//! - `OUTPUT/assignments/`: every input row with `segment_id` and `distance_to_centroid`;
//! - `OUTPUT/centroids/`: one row per segment (size, share, label, centroid in original units
//!   and in standard deviations);
//! - `OUTPUT/report/report.json`: the fit (k and every candidate's scores, inertia per
//!   iteration, seconds per iteration) and the feature preparation.

use std::time::Instant;

use datafusion::logical_expr::ScalarUDF;
use datafusion::prelude::SessionContext;
use persona_udfs::ml::Centroids;
use persona_udfs::scalar::KMeansAssign;
use serde::Serialize;

use super::on_table::TableCommand;
use crate::config::{PipelineConfig, SegmentsConfig};
use crate::engine::publish::Publisher;
use crate::engine::session::Engine;
use crate::engine::storage::Root;
use crate::engine::tables::register_parquet;
use crate::engine::work::WorkArea;
use crate::error::{PipelineError, Result};
use crate::models::kmeans::describe::{self, SegmentSummary, assignment_sql};
use crate::models::kmeans::prepare::{self, AllNull, Prepared, WEIGHT_COLUMN, first_row_f64};
use crate::models::kmeans::{FitReport, KMeans};

/// What to cluster and how.
#[derive(Debug, Clone)]
pub struct KMeansOptions {
    /// A Parquet file or folder, local or `s3://`.
    pub input: String,
    /// Output folder, local or `s3://`.
    pub output: String,
    /// The algorithm's settings (`features` must be set).
    pub kmeans: SegmentsConfig,
    /// Storage and execution settings.
    pub pipeline: PipelineConfig,
    /// Where the queries run.
    pub engine: Engine,
    /// Parquet file with the feature columns: one row per initial centroid, in original units.
    pub init_from: Option<String>,
}

/// The published report.
#[derive(Debug, Clone, Serialize)]
pub struct KMeansCommandReport {
    /// The input read.
    pub input: String,
    /// Rows clustered.
    pub rows: u64,
    /// How each feature was prepared (transform, mean, standard deviation, nulls imputed).
    pub features: Prepared,
    /// The fit.
    pub fit: FitReport,
    /// Seconds for the whole command.
    pub seconds: f64,
    /// The settings used.
    pub config: SegmentsConfig,
}

/// What the command produced, for the terminal.
#[derive(Debug, Clone)]
pub struct KMeansSummary {
    /// The report.
    pub report: KMeansCommandReport,
    /// The segments.
    pub segments: Vec<SegmentSummary>,
    /// Where the outputs are.
    pub output: String,
}

/// Runs `persona kmeans`.
pub async fn run(opts: &KMeansOptions) -> Result<KMeansSummary> {
    let started = Instant::now();
    let command = TableCommand {
        name: "kmeans",
        input: &opts.input,
        output: &opts.output,
        table: "input",
        pipeline: &opts.pipeline,
        engine: &opts.engine,
    };
    command
        .run(async |on| fit_and_publish(&on.ctx, opts, &on.output, &on.work, started).await)
        .await
}

async fn fit_and_publish(
    ctx: &SessionContext,
    opts: &KMeansOptions,
    output: &Root,
    work: &WorkArea,
    started: Instant,
) -> Result<KMeansSummary> {
    let cfg = &opts.kmeans;
    let prepared = prepare::prepare(ctx, "input", cfg, AllNull::Fail).await?;
    let points_sql = prepared.points_sql("input", &[]);
    work.materialize_reused(ctx, "kmeans_points", ctx.sql(&points_sql).await?)
        .await?;
    let start = match &opts.init_from {
        Some(path) => Some(initial_centroids(ctx, opts, path, &prepared).await?),
        None => None,
    };
    let fitted = KMeans::new(ctx, "kmeans_points", prepared.columns(), cfg)
        .with_weight(prepared.weight.as_ref().map(|_| WEIGHT_COLUMN.to_string()))
        .with_cosine(prepared.cosine)
        .in_process(work.in_process())
        .with_initial_centroids(start)
        .fit()
        .await?;
    let k = fitted.centroids.k();
    ctx.register_udf(ScalarUDF::from(KMeansAssign::new(fitted.centroids.clone())));
    let all: Vec<String> = ctx
        .table("input")
        .await?
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let ids = describe::identity_ids(k);
    let assign = assignment_sql(&prepared.points_sql("input", &all), &prepared, &all, &ids);
    work.materialize(ctx, "assignments", ctx.sql(&assign).await?)
        .await?;
    let segments = describe::summarize(ctx, "assignments", &prepared, &ids).await?;
    work.write_batch(
        ctx,
        "centroids",
        &describe::segments_batch(&segments, &prepared)?,
    )
    .await?;
    let mut publisher = Publisher::unpartitioned(output, work, "report", "report.json");
    publisher.stage_table(ctx, "assignments").await?;
    publisher.stage_table(ctx, "centroids").await?;
    let report = KMeansCommandReport {
        input: opts.input.clone(),
        rows: prepared.rows,
        features: prepared,
        fit: fitted.report,
        seconds: started.elapsed().as_secs_f64(),
        config: cfg.clone(),
    };
    let json = serde_json::to_string_pretty(&report)
        .map_err(|e| PipelineError::Internal(format!("report: {e}")))?;
    publisher.stage_manifest(&json, &Default::default()).await?;
    publisher.commit().await?;
    Ok(KMeansSummary {
        report,
        segments,
        output: output.display(),
    })
}

/// The centroids of `--init-from` (feature columns in original units, one row per centroid),
/// prepared like the points.
async fn initial_centroids(
    ctx: &SessionContext,
    opts: &KMeansOptions,
    path: &str,
    prepared: &Prepared,
) -> Result<Centroids> {
    let root = Root::parse(path, &opts.pipeline.storage)?;
    register_parquet(ctx, "kmeans_init", &root, path).await?;
    let mut without_weight = prepared.clone();
    without_weight.weight = None;
    let sql = without_weight.points_sql("kmeans_init", &[]);
    let batches = ctx.sql(&sql).await?.collect().await.map_err(|e| {
        PipelineError::BadInput(format!(
            "--init-from {path}: {}",
            crate::error::first_line(&e.to_string())
        ))
    })?;
    let d = prepared.scales.len();
    let mut values = Vec::new();
    for b in &batches {
        for r in 0..b.num_rows() {
            let row = first_row_f64(&[b.slice(r, 1)], d)?;
            values.extend(row.into_iter().map(|v| v.unwrap_or(0.0)));
        }
    }
    let k = values.len() / d.max(1);
    if let crate::config::KChoice::Fixed(want) = opts.kmeans.k
        && want != k
    {
        return Err(PipelineError::Config(format!(
            "--init-from {path} has {k} centroids but --k is {want}"
        )));
    }
    Centroids::new(k, d, values)
        .ok_or_else(|| PipelineError::BadInput(format!("--init-from {path} has no centroid rows")))
}
