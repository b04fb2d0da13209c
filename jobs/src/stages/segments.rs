//! Customer segmentation: standardise the configured features, initialise with k-means++ on a
//! sample, then run Lloyd iterations, each one aggregation pass (`kmeans_step`) over the
//! materialised points, so only the k×d centroids live on the client. Finally every customer is
//! assigned (`kmeans_assign`) and each segment gets a readable label.

use std::sync::Arc;

use arrow::array::Array;
use arrow::array::{ArrayRef, AsArray, Float64Array, Int32Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Float64Type, Schema};
use datafusion::logical_expr::{AggregateUDF, ScalarUDF};
use datafusion::prelude::SessionContext;
use persona_udfs::aggregate::{KMeansStep, KMeansStepResult};
use persona_udfs::lists::{list_type, uniform_list};
use persona_udfs::ml::Centroids;
use persona_udfs::scalar::KMeansAssign;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::config::SegmentsConfig;
use crate::error::{PipelineError, Result};
use crate::work::WorkArea;

/// What the fit did, for the manifest.
#[derive(Debug, Clone, Serialize)]
pub struct SegmentsReport {
    /// Segments fitted.
    pub k: usize,
    /// Customers clustered.
    pub points: u64,
    /// Lloyd iterations run.
    pub iterations: usize,
    /// Whether the centroids moved less than `tol` before `max_iter`.
    pub converged: bool,
    /// Inertia (sum of squared distances, standardised units) after each iteration.
    pub inertia: Vec<f64>,
    /// Null feature values imputed with the mean, per feature.
    pub imputed: Vec<(String, u64)>,
    /// Customers per segment.
    pub sizes: Vec<u64>,
    /// Segment labels.
    pub labels: Vec<String>,
}

/// Standardisation of one feature: `(t(x) − mean) / std`, with `t = ln(1 + max(x, 0))` for log
/// features.
#[derive(Debug, Clone)]
struct FeatureScale {
    name: String,
    log: bool,
    mean: f64,
    std: f64,
}

impl FeatureScale {
    fn transformed(name: &str, log: bool) -> String {
        let x = format!("CAST(\"{name}\" AS DOUBLE)");
        if log {
            format!("ln(1 + greatest({x}, 0))")
        } else {
            x
        }
    }

    fn standardised(&self) -> String {
        format!(
            "COALESCE(({} - {:e}) / {:e}, 0.0)",
            Self::transformed(&self.name, self.log),
            self.mean,
            if self.std > 1e-12 { self.std } else { 1.0 }
        )
    }
}

/// Runs segmentation over the registered `user_features`; registers `segment_assignments` and
/// `segment_labels`.
pub async fn run(
    ctx: &SessionContext,
    work: &WorkArea,
    cfg: &SegmentsConfig,
) -> Result<SegmentsReport> {
    let scales = feature_scales(ctx, cfg).await?;
    let columns: Vec<String> = (0..scales.len()).map(|i| format!("z{i}")).collect();
    let select: Vec<String> = scales
        .iter()
        .zip(&columns)
        .map(|(s, c)| format!("{} AS {c}", s.standardised()))
        .collect();
    let points_df = ctx
        .sql(&format!(
            "SELECT customer_id, {} FROM user_features",
            select.join(", ")
        ))
        .await?;
    let points = work.materialize(ctx, "segment_points", points_df).await?;
    if points == 0 {
        return Err(PipelineError::BadInput(
            "no active customers in the window: nothing to segment".into(),
        ));
    }
    let k = cfg.k.min(points as usize);
    let d = columns.len();
    let mut centroids = initial_centroids(ctx, cfg, &columns, k).await?;
    let mut inertia = Vec::new();
    let mut converged = false;
    let mut iterations = 0;
    while iterations < cfg.max_iter {
        iterations += 1;
        let step = lloyd_step(ctx, &columns, &centroids).await?;
        inertia.push(step.inertia);
        let (next, moved) = update_centroids(&centroids, &step, k, d)?;
        centroids = next;
        tracing::debug!(
            iteration = iterations,
            inertia = step.inertia,
            moved,
            "k-means iteration"
        );
        if moved < cfg.tol {
            converged = true;
            break;
        }
    }
    let sizes = assign(ctx, work, &columns, &centroids).await?;
    let labels = label_segments(&centroids, &scales);
    write_labels(ctx, work, &centroids, &scales, &labels).await?;
    let imputed = imputed_counts(ctx, &scales).await?;
    Ok(SegmentsReport {
        k,
        points,
        iterations,
        converged,
        inertia,
        imputed,
        sizes,
        labels: labels.into_iter().map(|l| l.0).collect(),
    })
}

/// Checks the configured features and computes their means and standard deviations.
async fn feature_scales(ctx: &SessionContext, cfg: &SegmentsConfig) -> Result<Vec<FeatureScale>> {
    let table = ctx.table("user_features").await?;
    let schema = table.schema().as_arrow().clone();
    for name in &cfg.features {
        match schema.field_with_name(name) {
            Ok(f) if f.data_type().is_numeric() => {}
            Ok(f) => {
                return Err(PipelineError::Config(format!(
                    "segments.features: '{name}' is a {} column of user_features, expected a numeric one",
                    f.data_type()
                )));
            }
            Err(_) => {
                let available: Vec<&str> = schema
                    .fields()
                    .iter()
                    .filter(|f| f.data_type().is_numeric())
                    .map(|f| f.name().as_str())
                    .collect();
                return Err(PipelineError::Config(format!(
                    "segments.features: user_features has no column '{name}'; numeric columns are: {}",
                    available.join(", ")
                )));
            }
        }
    }
    let aggregates: Vec<String> = cfg
        .features
        .iter()
        .flat_map(|f| {
            let t = FeatureScale::transformed(f, cfg.log_features.contains(f));
            [format!("avg({t})"), format!("stddev_pop({t})")]
        })
        .collect();
    let batches = ctx
        .sql(&format!(
            "SELECT {} FROM user_features",
            aggregates.join(", ")
        ))
        .await?
        .collect()
        .await?;
    let row = first_row_f64(&batches, aggregates.len())?;
    Ok(cfg
        .features
        .iter()
        .enumerate()
        .map(|(i, f)| FeatureScale {
            name: f.clone(),
            log: cfg.log_features.contains(f),
            mean: significant(row[2 * i].unwrap_or(0.0)),
            std: significant(row[2 * i + 1].unwrap_or(1.0)),
        })
        .collect())
}

/// `x` rounded to 10 significant digits. Means and deviations are sums over partitions whose
/// order varies between runs (last-bit differences); rounding them keeps the standardisation,
/// and so the segments, identical from run to run.
fn significant(x: f64) -> f64 {
    if x == 0.0 || !x.is_finite() {
        return x;
    }
    let scale = 10f64.powi(9 - x.abs().log10().floor() as i32);
    (x * scale).round() / scale
}

/// The first row of a result, every column as an optional f64.
fn first_row_f64(batches: &[RecordBatch], columns: usize) -> Result<Vec<Option<f64>>> {
    let batch = batches
        .iter()
        .find(|b| b.num_rows() > 0)
        .ok_or_else(|| PipelineError::Internal("aggregate returned no row".into()))?;
    (0..columns)
        .map(|c| {
            let col = arrow::compute::cast(batch.column(c), &DataType::Float64)?;
            let col = col.as_primitive::<Float64Type>();
            Ok((!col.is_null(0)).then(|| col.value(0)))
        })
        .collect()
}

/// Greedy k-means++ on a deterministic pseudo-random sample of the points.
async fn initial_centroids(
    ctx: &SessionContext,
    cfg: &SegmentsConfig,
    columns: &[String],
    k: usize,
) -> Result<Centroids> {
    let sql = format!(
        "SELECT {} FROM segment_points ORDER BY md5(concat(customer_id, '{}')) LIMIT {}",
        columns.join(", "),
        cfg.seed,
        cfg.init_sample.max(k)
    );
    let batches = ctx.sql(&sql).await?.collect().await?;
    let d = columns.len();
    let mut sample: Vec<f64> = Vec::new();
    for batch in &batches {
        let cols: Vec<_> = (0..d)
            .map(|c| batch.column(c).as_primitive::<Float64Type>().clone())
            .collect();
        for r in 0..batch.num_rows() {
            sample.extend(cols.iter().map(|c| c.value(r)));
        }
    }
    let n = sample.len() / d;
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let point = |i: usize| &sample[i * d..(i + 1) * d];
    let sq = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum::<f64>();
    let mut chosen = vec![rng.random_range(0..n)];
    let mut dist: Vec<f64> = (0..n).map(|i| sq(point(i), point(chosen[0]))).collect();
    while chosen.len() < k {
        let total: f64 = dist.iter().sum();
        let next = if total <= 0.0 {
            rng.random_range(0..n)
        } else {
            let mut u = rng.random::<f64>() * total;
            dist.iter()
                .position(|&w| {
                    u -= w;
                    u <= 0.0
                })
                .unwrap_or(n - 1)
        };
        chosen.push(next);
        for (i, di) in dist.iter_mut().enumerate() {
            *di = di.min(sq(point(i), point(next)));
        }
    }
    let values = chosen.iter().flat_map(|&i| point(i).to_vec()).collect();
    Centroids::new(k, d, values)
        .ok_or_else(|| PipelineError::Internal("bad initial centroids".into()))
}

/// One Lloyd iteration: a single aggregation over all points.
async fn lloyd_step(
    ctx: &SessionContext,
    columns: &[String],
    centroids: &Centroids,
) -> Result<KMeansStepResult> {
    ctx.register_udaf(AggregateUDF::from(KMeansStep::new(centroids.clone())));
    let sql = format!(
        "SELECT kmeans_step({}) AS step FROM segment_points",
        columns.join(", ")
    );
    let batches = ctx.sql(&sql).await?.collect().await?;
    let flat = batches
        .iter()
        .find(|b| b.num_rows() > 0)
        .map(|b| {
            b.column(0)
                .as_list::<i32>()
                .value(0)
                .as_primitive::<Float64Type>()
                .values()
                .to_vec()
        })
        .ok_or_else(|| PipelineError::Internal("kmeans_step returned no row".into()))?;
    KMeansStepResult::from_flat(&flat, centroids.k(), centroids.d()).ok_or_else(|| {
        PipelineError::Internal("kmeans_step returned a vector of the wrong length".into())
    })
}

/// New centroids (means of their points; an empty cluster keeps its centroid) and the largest
/// centroid movement.
fn update_centroids(
    old: &Centroids,
    step: &KMeansStepResult,
    k: usize,
    d: usize,
) -> Result<(Centroids, f64)> {
    let mut values = old.values().to_vec();
    for c in 0..k {
        if step.counts[c] > 0.0 {
            for j in 0..d {
                values[c * d + j] = step.sums[c * d + j] / step.counts[c];
            }
        }
    }
    let next = Centroids::new(k, d, values)
        .ok_or_else(|| PipelineError::Internal("bad centroids".into()))?;
    let moved = (0..k)
        .map(|c| {
            old.centroid(c)
                .iter()
                .zip(next.centroid(c))
                .map(|(a, b)| (a - b) * (a - b))
                .sum::<f64>()
                .sqrt()
        })
        .fold(0.0, f64::max);
    Ok((next, moved))
}

/// Assigns every customer to its segment (`segment_assignments`); returns the segment sizes.
async fn assign(
    ctx: &SessionContext,
    work: &WorkArea,
    columns: &[String],
    centroids: &Centroids,
) -> Result<Vec<u64>> {
    ctx.register_udf(ScalarUDF::from(KMeansAssign::new(centroids.clone())));
    let sql = format!(
        "SELECT customer_id, a['segment_id'] AS segment_id, a['distance'] AS distance_to_centroid \
         FROM (SELECT customer_id, kmeans_assign({}) AS a FROM segment_points)",
        columns.join(", ")
    );
    work.materialize(ctx, "segment_assignments", ctx.sql(&sql).await?)
        .await?;
    let batches = ctx
        .sql("SELECT segment_id, COUNT(*) AS n FROM segment_assignments GROUP BY segment_id")
        .await?
        .collect()
        .await?;
    let mut sizes = vec![0; centroids.k()];
    for b in &batches {
        let (ids, counts) = (
            b.column(0).as_primitive::<arrow::datatypes::Int32Type>(),
            b.column(1).as_primitive::<arrow::datatypes::Int64Type>(),
        );
        for r in 0..b.num_rows() {
            if let Some(size) = sizes.get_mut(ids.value(r) as usize) {
                *size = counts.value(r) as u64;
            }
        }
    }
    Ok(sizes)
}

/// Words for a feature far above (first) or below (second) the population.
fn trait_words(feature: &str) -> (String, String) {
    let (hi, lo) = match feature {
        "recency_days" => ("lapsed", "recently active"),
        "sessions" => ("frequent", "infrequent"),
        "active_days" => ("regular", "rare visits"),
        "purchases" => ("many orders", "few orders"),
        "monetary" => ("high spend", "low spend"),
        "avg_order_value" => ("big baskets", "small baskets"),
        "conversion_rate" => ("converts well", "browses without buying"),
        "web_views" => ("web browsing", "little web browsing"),
        "app_views" => ("app browsing", "little app use"),
        "share_web" => ("web-first", "mobile"),
        "categories_seen" => ("explores categories", "few categories"),
        "top_category_share" => ("one-category focus", "varied tastes"),
        other => return (format!("high {other}"), format!("low {other}")),
    };
    (hi.to_string(), lo.to_string())
}

/// A label per segment from its most distinctive features (|z| ≥ 0.5, at most three), plus the
/// description "feature +1.2σ, …". Duplicate labels get a number.
fn label_segments(centroids: &Centroids, scales: &[FeatureScale]) -> Vec<(String, String)> {
    let mut labels: Vec<(String, String)> = (0..centroids.k())
        .map(|c| {
            let mut order: Vec<(usize, f64)> =
                centroids.centroid(c).iter().copied().enumerate().collect();
            order.sort_by(|a, b| b.1.abs().total_cmp(&a.1.abs()).then(a.0.cmp(&b.0)));
            let distinct: Vec<&(usize, f64)> = order
                .iter()
                .filter(|(_, z)| z.abs() >= 0.5)
                .take(3)
                .collect();
            let words: Vec<String> = distinct
                .iter()
                .map(|(f, z)| {
                    let (hi, lo) = trait_words(&scales[*f].name);
                    if *z > 0.0 { hi } else { lo }
                })
                .collect();
            let label = if words.is_empty() {
                "typical".to_string()
            } else {
                words.join(" · ")
            };
            let description = order
                .iter()
                .take(5)
                .map(|(f, z)| format!("{} {:+.1}σ", scales[*f].name, z))
                .collect::<Vec<_>>()
                .join(", ");
            (label, description)
        })
        .collect();
    for c in 0..labels.len() {
        let same = (0..c)
            .filter(|&o| {
                labels[o].0 == labels[c].0 || labels[o].0.starts_with(&format!("{} #", labels[c].0))
            })
            .count();
        if same > 0 {
            labels[c].0 = format!("{} #{}", labels[c].0, same + 1);
        }
    }
    labels
}

/// Writes `segment_labels`: id, label, description, feature names and the centroid (z-scores).
async fn write_labels(
    ctx: &SessionContext,
    work: &WorkArea,
    centroids: &Centroids,
    scales: &[FeatureScale],
    labels: &[(String, String)],
) -> Result<()> {
    let k = centroids.k();
    let d = centroids.d();
    let names: Vec<&str> = (0..k)
        .flat_map(|_| scales.iter().map(|s| s.name.as_str()))
        .collect();
    let schema = Arc::new(Schema::new(vec![
        Field::new("segment_id", DataType::Int32, false),
        Field::new("segment_label", DataType::Utf8, false),
        Field::new("distinguishing_features", DataType::Utf8, false),
        Field::new("feature_names", list_type(DataType::Utf8), false),
        Field::new("centroid_z", list_type(DataType::Float64), false),
    ]));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int32Array::from_iter_values(0..k as i32)),
        Arc::new(StringArray::from_iter_values(
            labels.iter().map(|l| l.0.as_str()),
        )),
        Arc::new(StringArray::from_iter_values(
            labels.iter().map(|l| l.1.as_str()),
        )),
        Arc::new(uniform_list(Arc::new(StringArray::from(names)), d, k)),
        Arc::new(uniform_list(
            Arc::new(Float64Array::from(centroids.values().to_vec())),
            d,
            k,
        )),
    ];
    work.write_batch(
        ctx,
        "segment_labels",
        &RecordBatch::try_new(schema, columns)?,
    )
    .await?;
    Ok(())
}

/// Per feature, how many customers had no value (imputed with the mean).
async fn imputed_counts(
    ctx: &SessionContext,
    scales: &[FeatureScale],
) -> Result<Vec<(String, u64)>> {
    let exprs: Vec<String> = scales
        .iter()
        .map(|s| format!("COUNT(*) - COUNT(\"{}\")", s.name))
        .collect();
    let batches = ctx
        .sql(&format!("SELECT {} FROM user_features", exprs.join(", ")))
        .await?
        .collect()
        .await?;
    let row = first_row_f64(&batches, exprs.len())?;
    Ok(scales
        .iter()
        .zip(row)
        .map(|(s, v)| (s.name.clone(), v.unwrap_or(0.0) as u64))
        .collect())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic, reason = "tests fail by panicking")]
mod tests {
    use super::*;

    #[test]
    fn labels_name_the_strongest_traits_and_are_unique() {
        let scales: Vec<FeatureScale> = ["monetary", "share_web"]
            .iter()
            .map(|n| FeatureScale {
                name: n.to_string(),
                log: false,
                mean: 0.0,
                std: 1.0,
            })
            .collect();
        let c = Centroids::new(3, 2, vec![2.0, -1.0, 2.1, -0.9, 0.1, 0.2]).unwrap();
        let labels = label_segments(&c, &scales);
        assert_eq!(labels[0].0, "high spend · mobile");
        assert_eq!(labels[1].0, "high spend · mobile #2");
        assert_eq!(labels[2].0, "typical");
        assert!(labels[0].1.starts_with("monetary +2.0σ"));
    }
}
