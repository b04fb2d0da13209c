//! Purchase propensity: the probability that a customer buys in the next `horizon_days`.
//!
//! `sql/29_propensity_snapshots.sql` computes every customer's features twice with the same
//! expressions: up to the cutoff (`date − horizon_days`, with the label "bought after the
//! cutoff") and up to tonight. This stage then
//!
//! 1. prepares the features as K-Means does ([`crate::models::kmeans::prepare`]: log transforms,
//!    z-scores, mean imputation, categorical columns one-hot), leaving out features that are
//!    null or constant in every row;
//! 2. fits an L2-regularised logistic regression by Newton's method on the `fit` split of the
//!    training customers, one `logistic_step` aggregation per step ([`fit`]);
//! 3. calibrates it on the `calibrate` split (Platt scaling: a one-feature logistic regression
//!    on the model's logit, fitted the same way);
//! 4. scores the `test` split for `sql/32_propensity_evaluation.sql` and tonight's customers
//!    for `sql/30_propensity.sql`, with each customer's three largest contributions;
//! 5. writes the coefficients for `sql/31_propensity_model.sql`.
//!
//! Every pass is SQL over work tables, so the stage runs unchanged on Ballista, and the
//! order-independent sums of `logistic_step` make the cluster's model the local one, bit for
//! bit.

pub mod fit;

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::prelude::SessionContext;
use persona_udfs::ml::logistic::LogisticModel;
use serde::Serialize;

use crate::config::{ClassWeight, Distance, PropensityConfig, SegmentsConfig};
use crate::engine::work::WorkArea;
use crate::error::{PipelineError, Result};
use crate::models::kmeans::prepare::{self, AllNull, Prepared};
use fit::{Problem, Settings, literal, logit_sql, sigmoid_sql};

/// Customers and buyers in one split of the training snapshot.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct SplitCount {
    /// Customers.
    pub customers: u64,
    /// Of them, those who purchased in the horizon.
    pub positives: u64,
}

/// The Platt scaling applied to the model's logit: `p = σ(slope · z + intercept)`.
#[derive(Debug, Clone, Serialize)]
pub struct Calibration {
    /// The slope (1 without calibration).
    pub slope: f64,
    /// The intercept (0 without calibration).
    pub intercept: f64,
    /// Why the calibration was skipped (the identity was used), if it was.
    pub skipped: Option<String>,
}

/// What the propensity stage did, for the manifest.
#[derive(Debug, Clone, Serialize)]
pub struct PropensityReport {
    /// The label: a purchase in the `horizon_days` after the cutoff.
    pub horizon_days: u32,
    /// Days of events behind each snapshot's features.
    pub feature_days: u32,
    /// Customers per split of the training snapshot (`fit`, `calibrate`, `test`).
    pub splits: BTreeMap<String, SplitCount>,
    /// Customers scored tonight.
    pub scored: u64,
    /// The model's features, in coefficient order (one-hot indicators as `column=value`).
    pub features: Vec<String>,
    /// Configured features left out because they were null for every customer.
    pub dropped_features: Vec<String>,
    /// Features left out because every customer had the same value.
    pub constant_features: Vec<String>,
    /// Null values imputed with the mean, per feature (only those with any).
    pub imputed: Vec<(String, u64)>,
    /// The class weights used.
    pub class_weight: ClassWeight,
    /// The regression's fit.
    pub fit: fit::Fitted,
    /// The calibration.
    pub calibration: Calibration,
    /// The holdout metrics per model (`logistic`, `logistic_uncalibrated`,
    /// `recency_frequency`), from `propensity_evaluation`.
    pub evaluation: BTreeMap<String, BTreeMap<String, Option<f64>>>,
}

/// Columns of `propensity_snapshots` carried next to the coordinates.
const KEEP: [&str; 8] = [
    "snapshot",
    "customer_id",
    "split",
    "label",
    "in_crm",
    "marketing_opt_in",
    "purchases",
    "recency_days",
];

/// Runs the stage over the registered `propensity_snapshots`; registers
/// `propensity_points`, `propensity_holdout`, `propensity_scores` and
/// `propensity_coefficients`.
pub async fn run(
    ctx: &SessionContext,
    work: &WorkArea,
    cfg: &PropensityConfig,
    feature_days: u32,
) -> Result<PropensityReport> {
    let (prepared, constant) = prepare_features(ctx, "propensity_snapshots", cfg).await?;
    let columns = prepared.columns();
    let keep: Vec<String> = KEEP.iter().map(|c| c.to_string()).collect();
    let points = prepared.points_sql("propensity_snapshots", &keep);
    work.materialize_reused(ctx, "propensity_points", ctx.sql(&points).await?)
        .await?;
    let splits = split_counts(ctx).await?;
    let fit_split = splits.get("fit").copied().unwrap_or_default();
    check_labels(fit_split, cfg.horizon_days)?;

    let weight = match cfg.class_weight {
        ClassWeight::None => None,
        ClassWeight::Balanced => {
            let (n, pos) = (fit_split.customers as f64, fit_split.positives as f64);
            Some(format!(
                "CASE WHEN label = 1 THEN {} ELSE {} END",
                literal(n / (2.0 * pos)),
                literal(n / (2.0 * (n - pos)))
            ))
        }
    };
    let base_rate = match cfg.class_weight {
        ClassWeight::None => fit_split.positives as f64 / fit_split.customers as f64,
        ClassWeight::Balanced => 0.5,
    };
    let mut start = LogisticModel::zeros(columns.len());
    start.intercept = (base_rate / (1.0 - base_rate)).ln();
    let settings = Settings {
        l2: cfg.l2,
        max_iter: cfg.max_iter,
        tol: cfg.tol,
    };
    let fitted = fit::fit(
        ctx,
        work.in_process(),
        &Problem {
            from: "propensity_points WHERE split = 'fit'",
            features: &columns,
            label: "label",
            weight: weight.as_deref(),
        },
        settings,
        Some(start),
    )
    .await?;
    let logit = logit_sql(&fitted.model, &columns);
    let calibration = calibrate(ctx, work, &logit, splits.get("calibrate").copied()).await?;
    let raw = sigmoid_sql(&logit);
    let calibrated = sigmoid_sql(&format!(
        "{} * ({logit}) + {}",
        literal(calibration.slope),
        literal(calibration.intercept)
    ));

    let holdout = format!(
        "SELECT customer_id, label, {calibrated} AS probability, {raw} AS raw_probability, \
         CAST(purchases AS DOUBLE) + 1.0 / (2.0 + recency_days) AS baseline_score \
         FROM propensity_points WHERE split = 'test'"
    );
    work.materialize(ctx, "propensity_holdout", ctx.sql(&holdout).await?)
        .await?;
    let reasons: Vec<String> = prepared
        .scales
        .iter()
        .zip(&fitted.model.coefficients)
        .zip(&columns)
        .map(|((s, c), col)| format!("'{}', {} * {col}", s.name.replace('\'', "''"), literal(*c)))
        .collect();
    let scores = format!(
        "SELECT customer_id, in_crm, marketing_opt_in, {calibrated} AS probability, \
         top_contributions(3, {}) AS top_features \
         FROM propensity_points WHERE snapshot = 'score'",
        reasons.join(", ")
    );
    let scored = work
        .materialize(ctx, "propensity_scores", ctx.sql(&scores).await?)
        .await?;
    work.write_batch(
        ctx,
        "propensity_coefficients",
        &coefficients_batch(&prepared, &fitted.model, &calibration)?,
    )
    .await?;

    Ok(PropensityReport {
        horizon_days: cfg.horizon_days,
        feature_days,
        splits,
        scored,
        features: prepared.scales.iter().map(|s| s.name.clone()).collect(),
        dropped_features: prepared.dropped.clone(),
        constant_features: constant,
        imputed: prepared
            .scales
            .iter()
            .filter(|s| s.imputed > 0)
            .map(|s| (s.name.clone(), s.imputed))
            .collect(),
        class_weight: cfg.class_weight,
        fit: fitted,
        calibration,
        evaluation: BTreeMap::new(),
    })
}

/// Prepares the configured features of `source` and leaves out those with the same value in
/// every row (they carry nothing, and would make the Hessian singular without the L2 term);
/// returns the preparation and the names left out.
pub async fn prepare_features(
    ctx: &SessionContext,
    source: &str,
    cfg: &PropensityConfig,
) -> Result<(Prepared, Vec<String>)> {
    let as_segments = SegmentsConfig {
        features: cfg.features.clone(),
        log_features: cfg.log_features.clone(),
        categorical_features: cfg.categorical_features.clone(),
        feature_groups: Default::default(),
        standardize: true,
        distance: Distance::Euclidean,
        weight_column: None,
        ..SegmentsConfig::default()
    };
    let mut prepared = prepare::prepare(ctx, source, &as_segments, AllNull::Drop).await?;
    let (kept, constant): (Vec<_>, Vec<_>) = prepared.scales.drain(..).partition(|s| s.std > 1e-12);
    prepared.scales = kept;
    let constant: Vec<String> = constant.into_iter().map(|s| s.name).collect();
    if !constant.is_empty() {
        tracing::warn!(
            "propensity: features with one value for every customer left out: {}",
            constant.join(", ")
        );
    }
    if prepared.scales.is_empty() {
        return Err(PipelineError::BadInput(format!(
            "propensity: every feature of {source} is null or constant ({}): nothing to learn from",
            prepared
                .dropped
                .iter()
                .chain(&constant)
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    Ok((prepared, constant))
}

/// A training split in which nobody, or everybody, purchased teaches nothing: the night stops
/// with one message rather than publish a model that predicts a constant.
fn check_labels(fit: SplitCount, horizon_days: u32) -> Result<()> {
    let problem = if fit.customers == 0 {
        "there are no training customers"
    } else if fit.positives == 0 {
        "no training customer purchased"
    } else if fit.positives == fit.customers {
        "every training customer purchased"
    } else {
        return Ok(());
    };
    Err(PipelineError::BadInput(format!(
        "propensity: {problem} in the last {horizon_days} days of the window (the label), \
         among {} customers: nothing to learn; check the purchase events, or set \
         [propensity] enabled = false to publish the night without the propensity tables",
        fit.customers
    )))
}

/// Customers and buyers per split of the training snapshot.
async fn split_counts(ctx: &SessionContext) -> Result<BTreeMap<String, SplitCount>> {
    let batches = ctx
        .sql(
            "SELECT split, COUNT(*) AS customers, CAST(COALESCE(SUM(label), 0) AS BIGINT) AS positives \
             FROM propensity_points WHERE snapshot = 'train' GROUP BY split",
        )
        .await?
        .collect()
        .await?;
    let mut out = BTreeMap::new();
    for batch in &batches {
        let split = arrow::compute::cast(batch.column(0), &DataType::Utf8)?;
        let split = split.as_any().downcast_ref::<StringArray>();
        let customers = arrow::compute::cast(batch.column(1), &DataType::Int64)?;
        let positives = arrow::compute::cast(batch.column(2), &DataType::Int64)?;
        let (Some(split), Some(customers), Some(positives)) = (
            split,
            customers.as_any().downcast_ref::<Int64Array>(),
            positives.as_any().downcast_ref::<Int64Array>(),
        ) else {
            return Err(PipelineError::Internal(
                "split counts: unexpected types".into(),
            ));
        };
        for i in 0..batch.num_rows() {
            out.insert(
                split.value(i).to_string(),
                SplitCount {
                    customers: customers.value(i) as u64,
                    positives: positives.value(i) as u64,
                },
            );
        }
    }
    Ok(out)
}

/// Platt scaling on the calibration split: `label ~ σ(a · logit + b)`. Skipped (the identity)
/// when the split lacks buyers or non-buyers.
async fn calibrate(
    ctx: &SessionContext,
    work: &WorkArea,
    logit: &str,
    split: Option<SplitCount>,
) -> Result<Calibration> {
    let identity = |why: &str| Calibration {
        slope: 1.0,
        intercept: 0.0,
        skipped: Some(why.to_string()),
    };
    let split = split.unwrap_or_default();
    if split.positives == 0 || split.positives == split.customers {
        return Ok(identity(
            "the calibration split has no buyers or no non-buyers",
        ));
    }
    let start = LogisticModel {
        coefficients: vec![1.0],
        intercept: 0.0,
    };
    let fitted = fit::fit(
        ctx,
        work.in_process(),
        &Problem {
            from: "propensity_points WHERE split = 'calibrate'",
            features: &[format!("({logit})")],
            label: "label",
            weight: None,
        },
        // Two parameters and thousands of rows: a token penalty keeps the step defined.
        Settings {
            l2: 1e-9,
            max_iter: 25,
            tol: 1e-9,
        },
        Some(start),
    )
    .await?;
    if !fitted.converged {
        return Ok(identity("Platt scaling did not converge"));
    }
    Ok(Calibration {
        slope: fitted.model.coefficients[0],
        intercept: fitted.model.intercept,
        skipped: None,
    })
}

/// The `propensity_coefficients` table: one row per feature, then the intercept and the
/// calibration.
pub(crate) fn coefficients_batch(
    prepared: &Prepared,
    model: &LogisticModel,
    calibration: &Calibration,
) -> Result<RecordBatch> {
    let mut term = Vec::new();
    let mut transform = Vec::new();
    let mut coefficient = Vec::new();
    let mut standardized = Vec::new();
    let mut mean = Vec::new();
    let mut scale = Vec::new();
    let mut imputed = Vec::new();
    let mut raw_intercept = model.intercept;
    for (s, beta) in prepared.scales.iter().zip(&model.coefficients) {
        term.push(s.name.clone());
        transform.push(if s.category.is_some() {
            "indicator"
        } else if s.log {
            "log1p"
        } else {
            "identity"
        });
        coefficient.push(Some(beta / s.scale));
        standardized.push(Some(*beta));
        mean.push(Some(s.shift));
        scale.push(Some(s.scale));
        imputed.push(Some(s.imputed as i64));
        raw_intercept -= beta * s.shift / s.scale;
    }
    for (name, value, z) in [
        ("(intercept)", raw_intercept, Some(model.intercept)),
        ("(calibration slope)", calibration.slope, None),
        ("(calibration intercept)", calibration.intercept, None),
    ] {
        term.push(name.to_string());
        transform.push("");
        coefficient.push(Some(value));
        standardized.push(z);
        mean.push(None);
        scale.push(None);
        imputed.push(None);
    }
    let schema = coefficients_schema();
    let transform: Vec<Option<&str>> = transform
        .into_iter()
        .map(|t| (!t.is_empty()).then_some(t))
        .collect();
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(term)),
        Arc::new(StringArray::from(transform)),
        Arc::new(Float64Array::from(coefficient)),
        Arc::new(Float64Array::from(standardized)),
        Arc::new(Float64Array::from(mean)),
        Arc::new(Float64Array::from(scale)),
        Arc::new(Int64Array::from(imputed)),
    ];
    Ok(RecordBatch::try_new(schema, columns)?)
}

/// The schema of `propensity_coefficients`.
fn coefficients_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("term", DataType::Utf8, false),
        Field::new("transform", DataType::Utf8, true),
        Field::new("coefficient", DataType::Float64, true),
        Field::new("standardized_coefficient", DataType::Float64, true),
        Field::new("mean", DataType::Float64, true),
        Field::new("scale", DataType::Float64, true),
        Field::new("imputed_rows", DataType::Int64, true),
    ]))
}

/// The work tables the stage writes, with their schemas, for `--dry-run` (which plans the
/// next stages against them empty); `snapshots` is the schema of `propensity_snapshots`.
pub fn work_table_schemas(snapshots: &Schema) -> Result<Vec<(&'static str, SchemaRef)>> {
    let field = |name: &str| -> Result<Field> { Ok(snapshots.field_with_name(name)?.clone()) };
    let probability = |name: &str| Field::new(name, DataType::Float64, true);
    Ok(vec![
        (
            "propensity_holdout",
            Arc::new(Schema::new(vec![
                field("customer_id")?,
                field("label")?,
                probability("probability"),
                probability("raw_probability"),
                probability("baseline_score"),
            ])),
        ),
        (
            "propensity_scores",
            Arc::new(Schema::new(vec![
                field("customer_id")?,
                field("in_crm")?,
                field("marketing_opt_in")?,
                probability("probability"),
                Field::new(
                    "top_features",
                    persona_udfs::lists::list_type(DataType::Utf8),
                    true,
                ),
            ])),
        ),
        ("propensity_coefficients", coefficients_schema()),
    ])
}

/// Reads the whole-holdout metrics of `propensity_evaluation` into the report.
pub async fn read_evaluation(ctx: &SessionContext, report: &mut PropensityReport) -> Result<()> {
    let batches = ctx
        .sql("SELECT model, metric, value FROM propensity_evaluation WHERE decile IS NULL")
        .await?
        .collect()
        .await?;
    for batch in &batches {
        let model = arrow::compute::cast(batch.column(0), &DataType::Utf8)?;
        let metric = arrow::compute::cast(batch.column(1), &DataType::Utf8)?;
        let value = arrow::compute::cast(batch.column(2), &DataType::Float64)?;
        let (Some(model), Some(metric), Some(value)) = (
            model.as_any().downcast_ref::<StringArray>(),
            metric.as_any().downcast_ref::<StringArray>(),
            value.as_any().downcast_ref::<Float64Array>(),
        ) else {
            return Err(PipelineError::Internal(
                "propensity_evaluation: unexpected types".into(),
            ));
        };
        for i in 0..batch.num_rows() {
            let v = arrow::array::Array::is_valid(value, i)
                .then(|| prepare::significant(value.value(i)));
            report
                .evaluation
                .entry(model.value(i).to_string())
                .or_default()
                .insert(metric.value(i).to_string(), v);
        }
    }
    Ok(())
}
