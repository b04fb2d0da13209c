//! Distributed K-Means over any registered table of prepared points.
//!
//! Every pass over the points is DataFusion work that runs unchanged on Ballista:
//! - a Lloyd iteration is one aggregation, `kmeans_step`, whose per-partition states (cluster
//!   sums, weights, inertia, farthest points) merge across executors; only the `k × d`
//!   centroids travel back to this driver;
//! - the k-means‖ initialisation samples each point with probability ∝ D² in one filtered
//!   scan per round (`unit_hash` makes the draw reproducible), then runs weighted greedy
//!   k-means++ on the few sampled candidates here ([`local`]);
//! - `k = "auto"` fits each candidate k and scores it by silhouette on a reproducible sample.
//!
//! Empty clusters are re-seeded from the points farthest from their centroid; with the cosine
//! distance, centroids are re-normalised to unit length after every update (spherical k-means).

pub mod describe;
pub mod local;
pub mod pass;
pub mod prepare;
pub mod stability;

use std::time::Instant;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Float64Type};
use datafusion::logical_expr::{AggregateUDF, ScalarUDF};
use datafusion::prelude::SessionContext;
use persona_udfs::aggregate::{KMeansStep, KMeansStepResult};
use persona_udfs::ml::Centroids;
use persona_udfs::scalar::KMeansAssign;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::config::{Init, KChoice, SegmentsConfig};
use crate::error::{PipelineError, Result};
use local::PointSet;
use pass::StepRunner;
use stability::Stability;

/// Lloyd iterations Spark runs on the k-means‖ candidates before the distributed iterations.
const CANDIDATE_ITERATIONS: usize = 30;

/// One candidate k of `k = "auto"`.
#[derive(Debug, Clone, Serialize)]
pub struct KCandidate {
    /// Clusters.
    pub k: usize,
    /// Final inertia (for an elbow plot).
    pub inertia: f64,
    /// Mean silhouette on the sample (higher is better).
    pub silhouette: f64,
    /// Stability of the candidate's partition ([`stability`]'s adjusted Rand index), when
    /// measured: shown beside the silhouette, not used to choose (on the family of generated
    /// shops neither picks the true k reliably; docs/benchmarks.md).
    pub stability: Option<f64>,
}

/// What a fit did, for the manifest and `persona kmeans`'s report.
#[derive(Debug, Clone, Serialize)]
pub struct FitReport {
    /// Clusters fitted.
    pub k: usize,
    /// How k was chosen: "fixed" or "auto (silhouette)".
    pub k_choice: String,
    /// Every candidate k's scores (only with `k = "auto"`).
    pub candidates: Vec<KCandidate>,
    /// Initialisation used.
    pub init: String,
    /// Restarts run for the chosen k.
    pub n_init: usize,
    /// The restart that won (lowest inertia).
    pub best_restart: usize,
    /// Lloyd iterations of the winning restart.
    pub iterations: usize,
    /// Whether the centroids moved less than `tol` before `max_iter`.
    pub converged: bool,
    /// Inertia at each iteration of the winning restart (against that iteration's centroids).
    pub inertia: Vec<f64>,
    /// Inertia of the final centroids (sum of squared distances; `1 − cos` for cosine).
    pub final_inertia: f64,
    /// Seconds per Lloyd iteration of the winning restart.
    pub seconds_per_iteration: Vec<f64>,
    /// Empty clusters re-seeded from far points, over the winning restart.
    pub reseeded: usize,
    /// Points (or total weight) per cluster under the final centroids.
    pub sizes: Vec<f64>,
    /// Mean silhouette of the final partition on a reproducible sample of the points
    /// (`silhouette_sample` of them): from -1 to 1, how much closer the points are to their own
    /// segment than to the next one; near 0, the segments cut a continuum rather than find
    /// groups. How much to trust the segments, without the truth.
    pub silhouette: f64,
    /// The same per cluster (by centroid index): which segments are groups.
    pub silhouette_by_cluster: Vec<f64>,
    /// Whether fits on two halves of a sample of `stability_sample` points find the same
    /// partition ([`stability`]); `None` when `stability_sample` is 0 or too small for k.
    pub stability: Option<Stability>,
}

/// The points a fit's trust is measured on, drawn once per fit.
struct TrustSamples {
    silhouette: PointSet,
    stability: Option<PointSet>,
}

/// How much to trust a partition, without the truth: its silhouette and its stability.
struct Trust {
    silhouette: f64,
    silhouette_by_cluster: Vec<f64>,
    stability: Option<Stability>,
}

/// A fitted model and its report.
#[derive(Debug, Clone)]
pub struct Fitted {
    /// The centroids, in prepared (standardised) coordinates.
    pub centroids: Centroids,
    /// What happened.
    pub report: FitReport,
}

/// A fit over one table of prepared points.
#[derive(Clone)]
pub struct KMeans<'a> {
    ctx: &'a SessionContext,
    table: String,
    columns: Vec<String>,
    weight: Option<String>,
    cosine: bool,
    cfg: &'a SegmentsConfig,
    init_from: Option<Centroids>,
    passes: StepRunner,
}

/// The result of one restart.
struct Run {
    centroids: Centroids,
    trace: Trace,
}

/// What the Lloyd loop of one restart did.
#[derive(Default)]
struct Trace {
    inertia: Vec<f64>,
    seconds: Vec<f64>,
    converged: bool,
    reseeded: usize,
    final_inertia: f64,
    sizes: Vec<f64>,
}

impl<'a> KMeans<'a> {
    /// A fit over `table`'s `columns` (already prepared), with `cfg`'s settings.
    pub fn new(
        ctx: &'a SessionContext,
        table: &str,
        columns: Vec<String>,
        cfg: &'a SegmentsConfig,
    ) -> Self {
        Self {
            ctx,
            table: table.to_string(),
            columns,
            weight: None,
            cosine: false,
            cfg,
            init_from: None,
            passes: StepRunner::default(),
        }
    }

    /// Weighs each point by this column.
    pub fn with_weight(mut self, column: Option<String>) -> Self {
        self.weight = column;
        self
    }

    /// Whether the session runs its queries in this process (not on a Ballista cluster): the
    /// passes then reuse one plan of the points' scan ([`pass`]).
    pub fn in_process(mut self, in_process: bool) -> Self {
        self.passes = StepRunner::new(in_process);
        self
    }

    /// Uses the cosine distance (points are already unit vectors).
    pub fn with_cosine(mut self, cosine: bool) -> Self {
        self.cosine = cosine;
        self
    }

    /// Starts from these centroids instead of initialising (one restart, fixed k).
    pub fn with_initial_centroids(mut self, centroids: Option<Centroids>) -> Self {
        self.init_from = centroids;
        self
    }

    fn d(&self) -> usize {
        self.columns.len()
    }

    /// The coordinate columns, and the weight column when there is one.
    fn args(&self) -> String {
        let mut args = self.columns.clone();
        args.extend(self.weight.clone());
        args.join(", ")
    }

    /// Fits the model.
    pub async fn fit(&self) -> Result<Fitted> {
        if let Some(start) = &self.init_from {
            let run = self.lloyd(start.clone()).await?;
            let trust = self.trust_of(&self.trust_samples().await?, &run.centroids);
            return Ok(self.fitted(run, "given centroids", (1, 0), "fixed", Vec::new(), trust));
        }
        let init = match self.cfg.init {
            Init::KMeansParallel => "k-means||",
            Init::KMeansPlusPlus => "k-means++",
        };
        match self.cfg.k {
            KChoice::Fixed(k) => {
                let (run, best) = self.best_of_restarts(k).await?;
                let trust = self.trust_of(&self.trust_samples().await?, &run.centroids);
                Ok(self.fitted(
                    run,
                    init,
                    (self.cfg.n_init, best),
                    "fixed",
                    Vec::new(),
                    trust,
                ))
            }
            KChoice::Auto => {
                // Drawn once: every candidate is scored on the same points.
                let samples = self.trust_samples().await?;
                let sample = &samples.silhouette;
                let mut candidates = Vec::new();
                let mut best: Option<(f64, Run, usize)> = None;
                for k in self.cfg.k_min..=self.cfg.k_max {
                    let (run, restart) = match self.best_of_restarts(k).await {
                        Ok(r) => r,
                        // More candidates than distinct points: the range ends here.
                        Err(PipelineError::BadInput(_)) if k > self.cfg.k_min => break,
                        Err(e) => return Err(e),
                    };
                    let centres = run.centroids.values();
                    let score =
                        local::silhouette(sample, &local::labels(sample, centres), k, self.cosine);
                    tracing::info!(
                        k,
                        silhouette = score,
                        inertia = run.trace.final_inertia,
                        "k-means candidate"
                    );
                    let stability = self.stability_of(&samples, &run.centroids);
                    candidates.push(KCandidate {
                        k,
                        inertia: run.trace.final_inertia,
                        silhouette: score,
                        stability: stability.map(|s| s.ari),
                    });
                    if best.as_ref().is_none_or(|b| score > b.0) {
                        best = Some((score, run, restart));
                    }
                }
                let (_, run, restart) = best
                    .ok_or_else(|| PipelineError::Internal("k = auto tried no candidate".into()))?;
                let trust = self.trust_of(&samples, &run.centroids);
                Ok(self.fitted(
                    run,
                    init,
                    (self.cfg.n_init, restart),
                    "auto (silhouette)",
                    candidates,
                    trust,
                ))
            }
        }
    }

    /// The reproducible samples a partition's trust is measured on: `silhouette_sample`
    /// points (the sample `k = "auto"` scores its candidates on) and, unless
    /// `stability_sample` is 0, `stability_sample` points.
    async fn trust_samples(&self) -> Result<TrustSamples> {
        let silhouette = self
            .sample(self.cfg.silhouette_sample, self.cfg.seed ^ 0x5111)
            .await?;
        let stability = if self.cfg.stability_sample == 0 {
            None
        } else {
            Some(
                self.sample(self.cfg.stability_sample, self.cfg.seed ^ 0x57AB)
                    .await?,
            )
        };
        Ok(TrustSamples {
            silhouette,
            stability,
        })
    }

    /// How much to trust the partition `centroids` makes: its silhouette (overall and per
    /// cluster) and its stability, on `samples`.
    fn trust_of(&self, samples: &TrustSamples, centroids: &Centroids) -> Trust {
        let sample = &samples.silhouette;
        let (k, centres) = (centroids.k(), centroids.values());
        let labels = local::labels(sample, centres);
        Trust {
            silhouette: local::silhouette(sample, &labels, k, self.cosine),
            silhouette_by_cluster: local::silhouette_by_cluster(sample, &labels, k, self.cosine),
            stability: self.stability_of(samples, centroids),
        }
    }

    /// The stability of the partition `centroids` makes, on the stability sample; `None`
    /// without one, or when it has too few points for k.
    fn stability_of(&self, samples: &TrustSamples, centroids: &Centroids) -> Option<Stability> {
        stability::stability(
            samples.stability.as_ref()?,
            centroids.values(),
            centroids.k(),
            self.cfg.n_init,
            self.cfg.max_iter,
            self.cfg.seed,
        )
    }

    /// The fit's report; `restarts` is (restarts run, the one that won).
    fn fitted(
        &self,
        run: Run,
        init: &str,
        restarts: (usize, usize),
        choice: &str,
        candidates: Vec<KCandidate>,
        trust: Trust,
    ) -> Fitted {
        let (n_init, best_restart) = restarts;
        let t = run.trace;
        Fitted {
            report: FitReport {
                k: run.centroids.k(),
                k_choice: choice.to_string(),
                candidates,
                init: init.to_string(),
                n_init,
                best_restart,
                iterations: t.inertia.len(),
                converged: t.converged,
                inertia: t.inertia,
                final_inertia: t.final_inertia,
                seconds_per_iteration: t.seconds,
                reseeded: t.reseeded,
                sizes: t.sizes,
                silhouette: trust.silhouette,
                silhouette_by_cluster: trust.silhouette_by_cluster,
                stability: trust.stability,
            },
            centroids: run.centroids,
        }
    }

    /// `n_init` restarts with seeds `seed`, `seed + 1`, …; the lowest final inertia wins (the
    /// earliest on a tie).
    async fn best_of_restarts(&self, k: usize) -> Result<(Run, usize)> {
        let mut best: Option<(Run, usize)> = None;
        for restart in 0..self.cfg.n_init {
            let seed = self.cfg.seed.wrapping_add(restart as u64);
            let start = match self.cfg.init {
                Init::KMeansParallel => self.kmeans_parallel(k, seed).await?,
                Init::KMeansPlusPlus => self.kmeans_plus_plus(k, seed).await?,
            };
            let run = self.lloyd(start).await?;
            if best
                .as_ref()
                .is_none_or(|b| run.trace.final_inertia < b.0.trace.final_inertia)
            {
                best = Some((run, restart));
            }
        }
        best.ok_or_else(|| PipelineError::Internal("n_init must be at least 1".into()))
    }

    /// Lloyd iterations from `start` until no centroid moves more than `tol`, or `max_iter`.
    async fn lloyd(&self, start: Centroids) -> Result<Run> {
        let (k, d) = (start.k(), start.d());
        let mut centroids = start;
        let mut trace = Trace::default();
        for iteration in 1..=self.cfg.max_iter {
            let t = Instant::now();
            let step = self.step(&centroids).await?;
            let (next, moved, reseeded) = self.update(&centroids, &step, k, d)?;
            centroids = next;
            trace.inertia.push(step.inertia);
            trace.reseeded += reseeded;
            trace.seconds.push(t.elapsed().as_secs_f64());
            tracing::debug!(
                iteration,
                inertia = step.inertia,
                moved,
                "k-means iteration"
            );
            if moved < self.cfg.tol && reseeded == 0 {
                trace.converged = true;
                break;
            }
        }
        let last = self.step(&centroids).await?;
        trace.final_inertia = last.inertia;
        trace.sizes = last.counts;
        Ok(Run { centroids, trace })
    }

    /// One pass of `kmeans_step` against `centroids`.
    async fn step(&self, centroids: &Centroids) -> Result<KMeansStepResult> {
        let udaf = if self.weight.is_some() {
            KMeansStep::weighted(centroids.clone())
        } else {
            KMeansStep::new(centroids.clone())
        };
        let batches = self
            .passes
            .run(
                self.ctx,
                AggregateUDF::from(udaf),
                &self.table,
                &self.args(),
            )
            .await?;
        let flat = pass::state_vector(&batches).ok_or_else(|| {
            PipelineError::BadInput(format!("{} has no points to cluster", self.table))
        })?;
        KMeansStepResult::from_flat(&flat, centroids.k(), centroids.d()).ok_or_else(|| {
            PipelineError::Internal("kmeans_step returned a vector of the wrong length".into())
        })
    }

    /// New centroids: each cluster's mean (unit length for cosine); an empty cluster takes the
    /// farthest point not already taken. Returns the largest centroid movement and how many
    /// clusters were re-seeded.
    fn update(
        &self,
        old: &Centroids,
        step: &KMeansStepResult,
        k: usize,
        d: usize,
    ) -> Result<(Centroids, f64, usize)> {
        let mut values = old.values().to_vec();
        let mut far = step.farthest.iter().map(|(_, p)| p);
        let mut reseeded = 0;
        for c in 0..k {
            let centre = &mut values[c * d..(c + 1) * d];
            if step.counts[c] > 0.0 {
                for (j, v) in centre.iter_mut().enumerate() {
                    *v = step.sums[c * d + j] / step.counts[c];
                }
            } else if let Some(point) = far.next() {
                centre.copy_from_slice(point);
                reseeded += 1;
            }
            if self.cosine {
                let norm = centre.iter().map(|v| v * v).sum::<f64>().sqrt();
                if norm > 0.0 {
                    centre.iter_mut().for_each(|v| *v /= norm);
                }
            }
        }
        let next = Centroids::new(k, d, values)
            .ok_or_else(|| PipelineError::Internal("bad centroids".into()))?;
        let moved = (0..k)
            .map(|c| {
                persona_udfs::ml::kmeans::squared_distance(old.centroid(c), next.centroid(c)).sqrt()
            })
            .fold(0.0, f64::max);
        Ok((next, moved, reseeded))
    }

    /// Collects points (with weights) from a query whose first `d` columns are coordinates and
    /// whose optional next column is the weight.
    fn collect_points(&self, batches: &[RecordBatch]) -> Result<PointSet> {
        let d = self.d();
        let mut points = PointSet {
            d,
            ..Default::default()
        };
        for batch in batches {
            let cols: Vec<_> = (0..batch.num_columns())
                .map(|c| {
                    // Coordinates are stored in single precision; a weight in double.
                    let column = arrow::compute::cast(batch.column(c), &DataType::Float64)?;
                    Ok(column.as_primitive::<Float64Type>().clone())
                })
                .collect::<Result<_>>()?;
            for r in 0..batch.num_rows() {
                points.values.extend(cols[..d].iter().map(|c| c.value(r)));
                let w = cols.get(d).map_or(1.0, |c| {
                    if c.is_valid(r) {
                        c.value(r).max(0.0)
                    } else {
                        0.0
                    }
                });
                points.weights.push(w);
            }
        }
        Ok(points.canonical())
    }

    /// A reproducible sample of about `size` points.
    async fn sample(&self, size: usize, seed: u64) -> Result<PointSet> {
        let rows = self.count().await?;
        let p = (1.2 * size as f64 / rows.max(1) as f64).min(1.0);
        let sql = format!(
            "SELECT {} FROM {} WHERE unit_hash({seed}, {}) < {p:e}",
            self.args(),
            self.table,
            self.columns.join(", ")
        );
        let mut points = self.collect_points(&self.ctx.sql(&sql).await?.collect().await?)?;
        points.values.truncate(size * self.d());
        points.weights.truncate(size);
        Ok(points)
    }

    async fn count(&self) -> Result<u64> {
        let batches = self
            .ctx
            .sql(&format!("SELECT COUNT(*) FROM {}", self.table))
            .await?
            .collect()
            .await?;
        Ok(prepare::first_row_f64(&batches, 1)?[0].unwrap_or(0.0) as u64)
    }

    /// Greedy k-means++ on a reproducible sample of `init_sample` points.
    async fn kmeans_plus_plus(&self, k: usize, seed: u64) -> Result<Centroids> {
        let sample = self.sample(self.cfg.init_sample.max(k), seed).await?;
        let sample = self.enough_distinct(sample, k, seed).await?;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let centres = local::greedy_kmeans_pp(&sample, k, &mut rng);
        self.centroids(k, centres)
    }

    /// k-means‖ (Bahmani et al. 2012), as Spark runs it: start from one reproducibly random
    /// point; in each of `init_steps` rounds, sample every point with probability
    /// `min(1, 2k · w · D² / φ)` (φ the current weighted cost); weigh each candidate by the
    /// points nearest to it; then weighted greedy k-means++ and Lloyd on the candidates.
    async fn kmeans_parallel(&self, k: usize, seed: u64) -> Result<Centroids> {
        let (d, cols) = (self.d(), self.columns.join(", "));
        let positive = self
            .weight
            .as_ref()
            .map_or(String::new(), |w| format!("WHERE {w} > 0"));
        let first = format!(
            "SELECT {cols} FROM {} {positive} ORDER BY unit_hash({seed}, {cols}), {cols} LIMIT 1",
            self.table
        );
        let mut candidates = self.collect_points(&self.ctx.sql(&first).await?.collect().await?)?;
        if candidates.is_empty() {
            return Err(PipelineError::BadInput(format!(
                "{} has no points with a positive weight",
                self.table
            )));
        }
        let oversampling = 2.0 * k as f64;
        for round in 0..self.cfg.init_steps {
            let current = self.centroids(candidates.len(), candidates.values.clone())?;
            let phi = self.step(&current).await?.inertia;
            if phi <= 0.0 {
                break;
            }
            self.ctx
                .register_udf(ScalarUDF::from(KMeansAssign::new(current)));
            let weight = self
                .weight
                .as_ref()
                .map_or("1.0".to_string(), |w| w.clone());
            let sql = format!(
                "SELECT {cols} FROM {} WHERE unit_hash({}, {cols}) * {phi:e} < {oversampling:e} * {weight} * power(kmeans_assign({cols})['distance'], 2)",
                self.table,
                seed.wrapping_mul(31).wrapping_add(round as u64 + 1),
            );
            let sampled = self.collect_points(&self.ctx.sql(&sql).await?.collect().await?)?;
            candidates.values.extend(sampled.values);
            candidates.weights.extend(sampled.weights);
            candidates = candidates.canonical();
        }
        // Each candidate weighs as much as the points nearest to it.
        let current = self.centroids(candidates.len(), candidates.values.clone())?;
        candidates.weights = self.step(&current).await?.counts;
        let candidates = self.enough_distinct(candidates, k, seed).await?;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut centres = local::greedy_kmeans_pp(&candidates, k, &mut rng);
        local::local_lloyd(&candidates, &mut centres, CANDIDATE_ITERATIONS);
        debug_assert_eq!(centres.len(), k * d);
        self.centroids(k, centres)
    }

    /// `points` when it has at least `k` distinct points with weight; otherwise up to `4k`
    /// distinct points of the whole table, or a clear error when the table has fewer than `k`.
    async fn enough_distinct(&self, points: PointSet, k: usize, seed: u64) -> Result<PointSet> {
        let distinct = points.weights.iter().filter(|w| **w > 0.0).count();
        if distinct >= k {
            return Ok(points);
        }
        let cols = self.columns.join(", ");
        let sql = format!(
            "SELECT {cols} FROM (SELECT DISTINCT {cols} FROM {}) ORDER BY unit_hash({seed}, {cols}), {cols} LIMIT {}",
            self.table,
            4 * k
        );
        let all = self.collect_points(&self.ctx.sql(&sql).await?.collect().await?)?;
        if all.len() < k {
            // The setting asks for more segments than the data can have: a configuration
            // error (the data is fine).
            return Err(PipelineError::Config(format!(
                "k = {k}, but the {} points have only {} distinct values: choose k ≤ {}",
                self.table,
                all.len(),
                all.len()
            )));
        }
        Ok(all)
    }

    fn centroids(&self, k: usize, values: Vec<f64>) -> Result<Centroids> {
        Centroids::new(k, self.d(), values).ok_or_else(|| {
            PipelineError::Internal(format!("{k} centroids of dimension {} expected", self.d()))
        })
    }
}
