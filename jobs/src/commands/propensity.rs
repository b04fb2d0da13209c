//! `persona propensity`: the nightly propensity model's logistic regression on any Parquet
//! table with a 0/1 label. Reads a file or folder (local or `s3://`), holds out a share of the
//! labelled rows (by a hash of the `--id` column, or of the whole row), fits on the rest and
//! publishes, whole or not at all:
//!
//! - `OUTPUT/scores/`: every input row with `split` (`fit`, `test`, or null for a row without
//!   a label), `probability` and `top_features`;
//! - `OUTPUT/model/`: one row per term (coefficients raw and standardised, mean and scale);
//! - `OUTPUT/report/report.json`: the features' preparation, the fit and the holdout metrics.

use std::time::Instant;

use arrow::array::AsArray;
use arrow::datatypes::{DataType, Float64Type};
use datafusion::prelude::SessionContext;
use persona_udfs::ml::logistic::LogisticModel;
use serde::Serialize;

use super::on_table::TableCommand;
use crate::config::{ClassWeight, PipelineConfig, PropensityConfig};
use crate::engine::publish::Publisher;
use crate::engine::session::Engine;
use crate::engine::storage::Root;
use crate::engine::tables::quote;
use crate::engine::work::WorkArea;
use crate::error::{PipelineError, Result};
use crate::models::kmeans::prepare::{Prepared, first_row_f64};
use crate::models::propensity::fit::{self, Problem, Settings, literal, logit_sql, sigmoid_sql};
use crate::models::propensity::{Calibration, coefficients_batch, prepare_features};

/// What to fit and how.
#[derive(Debug, Clone)]
pub struct PropensityOptions {
    /// A Parquet file or folder, local or `s3://`.
    pub input: String,
    /// Output folder, local or `s3://`.
    pub output: String,
    /// The 0/1 (or boolean) label column; rows where it is null are scored, not fitted.
    pub label: String,
    /// Column identifying a row, hashed to choose the holdout (default: the whole row).
    pub id: Option<String>,
    /// Share of the labelled rows held out to measure the model.
    pub test_share: f64,
    /// Features, transforms and solver settings (`features` must be set).
    pub model: PropensityConfig,
    /// Storage and execution settings.
    pub pipeline: PipelineConfig,
    /// Where the queries run.
    pub engine: Engine,
}

/// Holdout metrics of `persona propensity`.
#[derive(Debug, Clone, Serialize)]
pub struct HoldoutMetrics {
    /// Held-out rows with a label.
    pub rows: u64,
    /// Of them, positive.
    pub positives: u64,
    /// Area under the ROC curve (ties count half).
    pub auc: Option<f64>,
    /// Mean log loss.
    pub log_loss: Option<f64>,
    /// Mean squared error of the probability (Brier score).
    pub brier: Option<f64>,
}

/// The published report.
#[derive(Debug, Clone, Serialize)]
pub struct PropensityCommandReport {
    /// The input read.
    pub input: String,
    /// How each feature was prepared.
    pub features: Prepared,
    /// Features left out because every row had the same value.
    pub constant_features: Vec<String>,
    /// The fit.
    pub fit: fit::Fitted,
    /// The coefficients, in feature order, then the intercept (standardised scale).
    pub coefficients: Vec<(String, f64)>,
    /// The holdout's metrics.
    pub holdout: HoldoutMetrics,
    /// Seconds for the whole command.
    pub seconds: f64,
    /// Where the outputs are.
    pub output: String,
}

/// Runs `persona propensity`.
pub async fn run(opts: &PropensityOptions) -> Result<PropensityCommandReport> {
    let started = Instant::now();
    let command = TableCommand {
        name: "propensity",
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
    opts: &PropensityOptions,
    output: &Root,
    work: &WorkArea,
    started: Instant,
) -> Result<PropensityCommandReport> {
    let all = columns(ctx, "input").await?;
    let label = checked_label(ctx, &all, &opts.label).await?;
    let (prepared, constant) = prepare_features(ctx, "input", &opts.model).await?;
    let coordinates = prepared.columns();
    let hashed = match &opts.id {
        Some(id) if all.contains(id) => quote(id),
        Some(id) => {
            return Err(PipelineError::Config(format!(
                "--id {id}: the input has no such column; columns are: {}",
                all.join(", ")
            )));
        }
        None => all.iter().map(|c| quote(c)).collect::<Vec<_>>().join(", "),
    };
    let with_split = format!(
        "(SELECT *, CASE WHEN {label} IS NULL THEN NULL \
         WHEN unit_hash(7, {hashed}) < {} THEN 'test' ELSE 'fit' END AS __split, \
         CAST({label} AS DOUBLE) AS __label FROM input)",
        literal(opts.test_share)
    );
    let mut keep = all.clone();
    keep.extend(["__split".to_string(), "__label".to_string()]);
    work.materialize_reused(
        ctx,
        "propensity_points",
        ctx.sql(&prepared.points_sql(&with_split, &keep)).await?,
    )
    .await?;
    let (rows, positives) = label_counts(ctx, "__split = 'fit'").await?;
    if positives == 0 || positives == rows {
        return Err(PipelineError::BadInput(format!(
            "{}: column {} is {} in all {rows} training rows: nothing to learn",
            opts.input,
            opts.label,
            if positives == 0 { "0" } else { "1" }
        )));
    }
    let weight = match opts.model.class_weight {
        ClassWeight::None => None,
        ClassWeight::Balanced => {
            let (n, p) = (rows as f64, positives as f64);
            Some(format!(
                "CASE WHEN __label = 1 THEN {} ELSE {} END",
                literal(n / (2.0 * p)),
                literal(n / (2.0 * (n - p)))
            ))
        }
    };
    let mut start = LogisticModel::zeros(coordinates.len());
    let rate = positives as f64 / rows as f64;
    start.intercept = (rate / (1.0 - rate)).ln();
    let fitted = fit::fit(
        ctx,
        work.in_process(),
        &Problem {
            from: "propensity_points WHERE __split = 'fit'",
            features: &coordinates,
            label: "__label",
            weight: weight.as_deref(),
        },
        Settings {
            l2: opts.model.l2,
            max_iter: opts.model.max_iter,
            tol: opts.model.tol,
        },
        Some(start),
    )
    .await?;
    let logit = logit_sql(&fitted.model, &coordinates);
    let probability = sigmoid_sql(&logit);
    let reasons: Vec<String> = prepared
        .scales
        .iter()
        .zip(&fitted.model.coefficients)
        .zip(&coordinates)
        .map(|((s, c), col)| format!("'{}', {} * {col}", s.name.replace('\'', "''"), literal(*c)))
        .collect();
    let originals: Vec<String> = all.iter().map(|c| quote(c)).collect();
    let scores = format!(
        "SELECT {}, __split AS split, {probability} AS probability, \
         top_contributions(3, {}) AS top_features FROM propensity_points",
        originals.join(", "),
        reasons.join(", ")
    );
    work.materialize(ctx, "scores", ctx.sql(&scores).await?)
        .await?;
    let holdout = holdout_metrics(ctx, &label).await?;
    let identity = Calibration {
        slope: 1.0,
        intercept: 0.0,
        skipped: Some("persona propensity does not calibrate".into()),
    };
    work.write_batch(
        ctx,
        "model",
        &coefficients_batch(&prepared, &fitted.model, &identity)?,
    )
    .await?;
    let mut coefficients: Vec<(String, f64)> = prepared
        .scales
        .iter()
        .map(|s| s.name.clone())
        .zip(fitted.model.coefficients.iter().copied())
        .collect();
    coefficients.push(("(intercept)".into(), fitted.model.intercept));
    let mut publisher = Publisher::unpartitioned(output, work, "report", "report.json");
    publisher.stage_table(ctx, "scores").await?;
    publisher.stage_table(ctx, "model").await?;
    let report = PropensityCommandReport {
        input: opts.input.clone(),
        features: prepared,
        constant_features: constant,
        fit: fitted,
        coefficients,
        holdout,
        seconds: started.elapsed().as_secs_f64(),
        output: output.display(),
    };
    let json = serde_json::to_string_pretty(&report)
        .map_err(|e| PipelineError::Internal(format!("report: {e}")))?;
    publisher.stage_manifest(&json, &Default::default()).await?;
    publisher.commit().await?;
    Ok(report)
}

/// The column names of `table`.
async fn columns(ctx: &SessionContext, table: &str) -> Result<Vec<String>> {
    Ok(ctx
        .table(table)
        .await?
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect())
}

/// The label column as SQL, after checking that it exists and holds only 0, 1 or null.
async fn checked_label(ctx: &SessionContext, all: &[String], label: &str) -> Result<String> {
    if !all.iter().any(|c| c == label) {
        return Err(PipelineError::Config(format!(
            "--label {label}: the input has no such column; columns are: {}",
            all.join(", ")
        )));
    }
    let q = quote(label);
    let sql = format!(
        "SELECT COUNT(*) FROM input WHERE {q} IS NOT NULL \
         AND CAST({q} AS DOUBLE) <> 0 AND CAST({q} AS DOUBLE) <> 1"
    );
    let bad = ctx
        .sql(&sql)
        .await
        .map_err(|e| {
            PipelineError::BadInput(format!(
                "--label {label}: expected a 0/1 or boolean column: {}",
                crate::error::first_line(&e.to_string())
            ))
        })?
        .collect()
        .await?;
    let bad = count(&bad);
    if bad > 0 {
        return Err(PipelineError::BadInput(format!(
            "--label {label}: {bad} rows are neither 0, 1 nor null; the label must be a 0/1 or boolean column"
        )));
    }
    Ok(format!("CAST({q} AS DOUBLE)"))
}

fn count(batches: &[arrow::record_batch::RecordBatch]) -> u64 {
    batches
        .iter()
        .find(|b| b.num_rows() > 0)
        .and_then(|b| arrow::compute::cast(b.column(0), &DataType::Float64).ok())
        .map_or(0, |c| c.as_primitive::<Float64Type>().value(0) as u64)
}

/// Labelled rows and positives among the rows matching `filter`.
async fn label_counts(ctx: &SessionContext, filter: &str) -> Result<(u64, u64)> {
    let rows = ctx
        .sql(&format!(
            "SELECT COUNT(__label) FROM propensity_points WHERE {filter}"
        ))
        .await?
        .collect()
        .await?;
    let positives = ctx
        .sql(&format!(
            "SELECT COALESCE(SUM(__label), 0) FROM propensity_points WHERE {filter}"
        ))
        .await?
        .collect()
        .await?;
    Ok((count(&rows), count(&positives)))
}

/// AUC, log loss and Brier score of the held-out rows of `scores` (`label`: the label as
/// SQL over its columns).
async fn holdout_metrics(ctx: &SessionContext, label: &str) -> Result<HoldoutMetrics> {
    let sql = format!(
        "WITH s AS (SELECT probability AS p, {label} AS y FROM scores WHERE split = 'test'), \
         g AS (SELECT p, COUNT(*) AS n, SUM(y) AS pos FROM s GROUP BY p), \
         r AS (SELECT n, pos, COALESCE(SUM(n - pos) OVER (ORDER BY p ROWS BETWEEN \
               UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS below FROM g), \
         a AS (SELECT SUM(pos * (below + 0.5 * (n - pos))) AS concordant FROM r), \
         m AS (SELECT COUNT(*) AS n, COALESCE(SUM(y), 0) AS positives, \
               -AVG(y * ln(greatest(p, 1e-15)) + (1 - y) * ln(greatest(1 - p, 1e-15))) AS log_loss, \
               AVG((p - y) * (p - y)) AS brier FROM s) \
         SELECT m.n, m.positives, a.concordant / NULLIF(m.positives * (m.n - m.positives), 0), \
                m.log_loss, m.brier FROM m CROSS JOIN a"
    );
    let batches = ctx.sql(&sql).await?.collect().await?;
    let row = first_row_f64(&batches, 5)?;
    let finite = |v: Option<f64>| v.filter(|x| x.is_finite());
    Ok(HoldoutMetrics {
        rows: row[0].unwrap_or(0.0) as u64,
        positives: row[1].unwrap_or(0.0) as u64,
        auc: finite(row[2]),
        log_loss: finite(row[3]),
        brier: finite(row[4]),
    })
}
