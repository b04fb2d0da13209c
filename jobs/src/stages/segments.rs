//! Customer segmentation in the nightly job: the configured features of `user_features` are
//! prepared (log, z-score, imputation; [`crate::models::kmeans::prepare`]), fitted with the distributed
//! K-Means driver ([`crate::models::kmeans`]), every customer is assigned to a segment, and each segment
//! is described and labelled ([`crate::models::kmeans::describe`]).

use std::fmt;

use async_trait::async_trait;
use datafusion::logical_expr::ScalarUDF;
use datafusion::prelude::SessionContext;
use persona_udfs::scalar::KMeansAssign;
use serde::Serialize;

use super::continuity::{self, Continuity, PreviousSegments};
use super::dry_run::register_empty;
use super::night::Night;
use super::record::Report;
use super::registry::Stage;
use super::unit::Unit;
use crate::config::{KChoice, SegmentsConfig};
use crate::engine::progress::group_digits;
use crate::engine::work::WorkArea;
use crate::error::Result;
use crate::models::kmeans::describe::{self, assignment_sql};
use crate::models::kmeans::prepare::{self, AllNull, WEIGHT_COLUMN};
use crate::models::kmeans::{FitReport, KMeans};

/// What segmentation did, for the manifest.
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
    /// The fit in detail: initialisation, candidates of `k = "auto"`, inertia per iteration.
    pub fit: FitReport,
    /// Null feature values imputed with the mean, per feature.
    pub imputed: Vec<(String, u64)>,
    /// The features clustered on, patterns (`interest_*`) expanded, in coordinate order.
    pub features: Vec<String>,
    /// Those of them transformed with `ln(1 + x)`.
    pub log_features: Vec<String>,
    /// Configured features left out because they were null for every customer.
    pub dropped_features: Vec<String>,
    /// Customers per segment.
    pub sizes: Vec<u64>,
    /// Segment labels.
    pub labels: Vec<String>,
    /// How tonight's segments continue the previous night's (ids, drift, appeared, vanished).
    pub continuity: Continuity,
    /// Set when the segments' stability (`fit.stability.ari`) is below `min_stability`: the
    /// partition is not a property of the customers but of the sample, and night-to-night
    /// changes of the segments mean little. A flag, not a failure.
    pub unstable: Option<String>,
}

/// The nightly segmentation: K-Means over `user_features`, continuing the last published
/// night's segments.
#[derive(Debug)]
pub struct Segmentation;

#[async_trait(?Send)]
impl Unit for Segmentation {
    fn code(&self) -> &'static str {
        "jobs/src/stages/segments.rs"
    }

    async fn run(&self, _stage: &Stage, night: &mut Night<'_>) -> Result<u64> {
        // Without a readable previous night the segments get fresh ids; that is no reason to
        // fail tonight.
        let previous =
            match continuity::previous_segments(night.ctx, night.roots.output, night.window.last)
                .await
            {
                Ok(previous) => previous,
                Err(e) => {
                    tracing::warn!("previous segments unreadable, fresh segment ids: {e}");
                    None
                }
            };
        let cfg = &night.config.segments;
        let report = run(night.ctx, night.work, cfg, previous.as_ref()).await?;
        let points = report.points;
        night.record.reports.put(report);
        Ok(points)
    }

    async fn plan(&self, _stage: &Stage, night: &mut Night<'_>) -> Result<String> {
        let features = night.ctx.table("user_features").await?;
        let key = features
            .schema()
            .as_arrow()
            .field_with_name("customer_id")?;
        let assignments = describe::assignments_schema(vec![key.clone()]);
        register_empty(night.ctx, "segment_assignments", assignments)?;
        register_empty(night.ctx, "segment_labels", describe::labels_schema())?;
        let s = &night.config.segments;
        let features: Vec<String> = s
            .blocks()
            .iter()
            .map(|b| {
                let mut names = b.features.clone();
                names.extend(b.categorical.iter().map(|c| format!("{c} (one-hot)")));
                match &b.group {
                    Some((group, weight)) => format!("{group} ×{weight}: {}", names.join(", ")),
                    None => names.join(", "),
                }
            })
            .collect();
        Ok(format!(
            "K-Means over user_features: k = {:?}, features [{}] (log: {:?}), init {:?}, max_iter {}, tol {}, seed {}\n",
            s.k,
            features.join("; "),
            s.log_features,
            s.init,
            s.max_iter,
            s.tol,
            s.seed
        ))
    }
}

impl Report for SegmentsReport {
    const KEY: &'static str = "segments";

    fn summary(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "\nSegments ({} customers, k={}, {} iterations, silhouette {:.2}{}):",
            group_digits(self.points),
            self.k,
            self.iterations,
            self.fit.silhouette,
            self.fit
                .stability
                .as_ref()
                .map_or(String::new(), |s| format!(", stability {:.2}", s.ari))
        )?;
        if let Some(why) = &self.unstable {
            writeln!(f, "  FLAGGED: {why}")?;
        }
        for (id, (size, label)) in self.sizes.iter().zip(&self.labels).enumerate() {
            let share = 100.0 * *size as f64 / self.points.max(1) as f64;
            writeln!(
                f,
                "  {id:>2}  {label:<44} {:>8} ({share:4.1}%)",
                group_digits(*size)
            )?;
        }
        Ok(())
    }
}

/// Runs segmentation over the registered `user_features`; registers `segment_assignments` and
/// `segment_labels`. With the `previous` night's segments, starts from its centroids when the
/// features and k are the same, and keeps its segment ids ([`continuity`]).
pub async fn run(
    ctx: &SessionContext,
    work: &WorkArea,
    cfg: &SegmentsConfig,
    previous: Option<&PreviousSegments>,
) -> Result<SegmentsReport> {
    let prepared = prepare::prepare(ctx, "user_features", cfg, AllNull::Drop).await?;
    let features: Vec<String> = prepared.scales.iter().map(|s| s.name.clone()).collect();
    // Continuity needs coordinates that are z-scores, as the published centroid_z are.
    let comparable = cfg.standardize && !prepared.cosine;
    let previous = previous.filter(|_| comparable);
    let k = match cfg.k {
        KChoice::Fixed(k) => Some(k),
        KChoice::Auto => None,
    };
    // The previous night's centroids are mean z-scores; the fit's coordinates are z-scores
    // times the block weights (1 without feature groups).
    let start = previous
        .and_then(|p| continuity::warm_start(p, &features, k))
        .map(|z| prepared.coordinates_from_z(&z));
    let keep = ["customer_id".to_string()];
    let points_sql = prepared.points_sql("user_features", &keep);
    let points = work
        .materialize_reused(ctx, "segment_points", ctx.sql(&points_sql).await?)
        .await?;
    let fitted = KMeans::new(ctx, "segment_points", prepared.columns(), cfg)
        .with_weight(prepared.weight.as_ref().map(|_| WEIGHT_COLUMN.to_string()))
        .in_process(work.in_process())
        .with_cosine(prepared.cosine)
        .with_initial_centroids(start.clone())
        .fit()
        .await?;
    let k = fitted.centroids.k();
    let (ids, mut continuity) = continuity::match_ids(
        previous,
        &features,
        &prepared.z_from_coordinates(&fitted.centroids),
        cfg.max_drift,
    )?;
    continuity.warm_start = start.is_some();
    if !comparable {
        continuity.note =
            Some("ids are not kept: segments are not on standardised Euclidean coordinates".into());
    }
    ctx.register_udf(ScalarUDF::from(KMeansAssign::new(fitted.centroids.clone())));
    let assign = assignment_sql("SELECT * FROM segment_points", &prepared, &keep, &ids);
    work.materialize(ctx, "segment_assignments", ctx.sql(&assign).await?)
        .await?;
    let mut summaries = describe::summarize(
        ctx,
        "user_features JOIN segment_assignments USING (customer_id)",
        &prepared,
        &ids,
    )
    .await?;
    describe::attach_trust(&mut summaries, &ids, &fitted.report);
    if let Some(previous) = previous {
        let labels: Vec<(i32, String)> = previous
            .ids
            .iter()
            .copied()
            .zip(previous.labels.iter().cloned())
            .collect();
        describe::keep_previous_labels(&mut summaries, &prepared, &labels);
    }
    let unstable = fitted
        .report
        .stability
        .as_ref()
        .filter(|s| s.ari < cfg.min_stability)
        .map(|s| {
            let why = format!(
                "the segments are unstable: fits on two halves of {} sampled customers agree \
                 at an adjusted Rand index of {:.2}, below [segments] min_stability {}; \
                 treat changes of the segments as noise (fewer segments, or other features, \
                 may be stabler)",
                s.sample, s.ari, cfg.min_stability
            );
            tracing::warn!("{why}");
            why
        });
    work.write_batch(
        ctx,
        "segment_labels",
        &describe::segments_batch(&summaries, &prepared)?,
    )
    .await?;
    Ok(SegmentsReport {
        k,
        points,
        iterations: fitted.report.iterations,
        converged: fitted.report.converged,
        imputed: prepared
            .scales
            .iter()
            .map(|s| (s.name.clone(), s.imputed))
            .collect(),
        features,
        log_features: prepared
            .scales
            .iter()
            .filter(|s| s.log)
            .map(|s| s.name.clone())
            .collect(),
        dropped_features: prepared.dropped.clone(),
        sizes: summaries.iter().map(|s| s.size).collect(),
        labels: summaries.into_iter().map(|s| s.label).collect(),
        fit: fitted.report,
        continuity,
        unstable,
    })
}
