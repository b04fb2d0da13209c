//! `kmeans_step(x1, …, xd [, weight])`: one Lloyd iteration as an aggregate.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::{DataType, Field, FieldRef, Float64Type};
use datafusion::common::{Result, ScalarValue, exec_err};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::format_state_name;
use datafusion::logical_expr::{Accumulator, AggregateUDFImpl, Signature, Volatility};

use crate::lists::{f64_list_scalar, list_type};
use crate::ml::Centroids;
use crate::ml::kmeans::{BlockScratch, quantize};

/// `kmeans_step(x1, …, xd [, weight]) -> list<double>`: assigns every point to its nearest
/// centroid (of the centroids this instance carries) and returns, flattened (see
/// [`KMeansStepResult`]), the per-cluster coordinate sums, the per-cluster weights, the total
/// squared distance (inertia) and the points farthest from their centroid (to re-seed clusters
/// that end up empty).
///
/// With a weighted instance ([`KMeansStep::weighted`]) the last argument is the row's weight
/// (null or negative counts as 0); otherwise every row weighs 1.
///
/// The state is that same vector, so partial results from any split of the data add up to the
/// one-pass result: each Lloyd iteration is one aggregation over the points, and only the `k×d`
/// centroids travel. Null coordinates count as 0 (callers impute before).
///
/// ```sql
/// SELECT kmeans_step(recency_z, frequency_z, monetary_z) FROM prepared_features;
/// ```
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct KMeansStep {
    signature: Signature,
    centroids: Arc<Centroids>,
    weighted: bool,
}

impl Default for KMeansStep {
    fn default() -> Self {
        Self::new(Centroids::default())
    }
}

impl KMeansStep {
    /// A step against these centroids, every row weighing 1.
    pub fn new(centroids: Centroids) -> Self {
        Self {
            signature: Signature::variadic_any(Volatility::Immutable),
            centroids: Arc::new(centroids),
            weighted: false,
        }
    }

    /// A step whose last argument is each row's weight.
    pub fn weighted(centroids: Centroids) -> Self {
        Self {
            weighted: true,
            ..Self::new(centroids)
        }
    }

    /// The centroids points are assigned to.
    pub fn centroids(&self) -> &Centroids {
        &self.centroids
    }

    /// Whether the last argument is a weight.
    pub fn is_weighted(&self) -> bool {
        self.weighted
    }
}

/// The decoded result of one `kmeans_step`.
#[derive(Debug, Clone, PartialEq)]
pub struct KMeansStepResult {
    /// Per-cluster weighted coordinate sums, `k × d` row-major.
    pub sums: Vec<f64>,
    /// Per-cluster total weight (the point count when unweighted).
    pub counts: Vec<f64>,
    /// Weighted sum of squared distances to the assigned centroids.
    pub inertia: f64,
    /// Up to `k` points farthest from their centroid, farthest first: (squared distance, point).
    pub farthest: Vec<(f64, Vec<f64>)>,
}

impl KMeansStepResult {
    /// Length of the flat vector for `k` clusters of dimension `d`.
    pub fn flat_len(k: usize, d: usize) -> usize {
        k * d + k + 2 + k * (d + 1)
    }

    /// Splits the flat vector `kmeans_step` returns:
    /// `[sums (k·d), counts (k), inertia, n_far, n_far × (distance, point (d)), padding]`.
    /// `None` when its length does not fit `k`, `d`.
    pub fn from_flat(flat: &[f64], k: usize, d: usize) -> Option<Self> {
        if flat.len() != Self::flat_len(k, d) {
            return None;
        }
        let n_far = (flat[k * d + k + 1] as usize).min(k);
        let far = &flat[k * d + k + 2..];
        Some(Self {
            sums: flat[..k * d].to_vec(),
            counts: flat[k * d..k * d + k].to_vec(),
            inertia: flat[k * d + k],
            farthest: (0..n_far)
                .map(|f| {
                    let e = &far[f * (d + 1)..(f + 1) * (d + 1)];
                    (e[0], e[1..].to_vec())
                })
                .collect(),
        })
    }
}

impl AggregateUDFImpl for KMeansStep {
    fn name(&self) -> &str {
        "kmeans_step"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(list_type(DataType::Float64))
    }
    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(vec![Arc::new(Field::new(
            format_state_name(args.name, "partial"),
            list_type(DataType::Float64),
            true,
        ))])
    }
    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        if self.centroids.is_empty() {
            return exec_err!(
                "kmeans_step has no centroids: it is built by the segments stage, not called from SQL"
            );
        }
        let expected = self.centroids.d() + usize::from(self.weighted);
        if args.exprs.len() != expected {
            return exec_err!(
                "kmeans_step: {} arguments given, expected {expected} ({} features{})",
                args.exprs.len(),
                self.centroids.d(),
                if self.weighted { " and a weight" } else { "" }
            );
        }
        Ok(Box::new(KMeansStepAccumulator::new(
            Arc::clone(&self.centroids),
            self.weighted,
        )))
    }
}

/// Per-partition running totals of one Lloyd step.
#[derive(Debug)]
struct KMeansStepAccumulator {
    centroids: Arc<Centroids>,
    weighted: bool,
    sums: Vec<f64>,
    counts: Vec<f64>,
    inertia: f64,
    farthest: Farthest,
    scratch: BlockScratch,
}

impl KMeansStepAccumulator {
    fn new(centroids: Arc<Centroids>, weighted: bool) -> Self {
        let (k, d) = (centroids.k(), centroids.d());
        Self {
            centroids,
            weighted,
            sums: vec![0.0; k * d],
            counts: vec![0.0; k],
            inertia: 0.0,
            farthest: Farthest::new(k),
            scratch: BlockScratch::default(),
        }
    }

    fn flat(&self) -> Vec<f64> {
        let (k, d) = (self.centroids.k(), self.centroids.d());
        let mut flat = Vec::with_capacity(KMeansStepResult::flat_len(k, d));
        flat.extend(&self.sums);
        flat.extend(&self.counts);
        flat.push(self.inertia);
        flat.push(self.farthest.points.len() as f64);
        for (dist, point) in &self.farthest.points {
            flat.push(*dist);
            flat.extend(point);
        }
        flat.resize(KMeansStepResult::flat_len(k, d), 0.0);
        flat
    }
}

/// Adds a block's rows to their clusters' sums and counts. Rows are on the accumulation grain,
/// so the sums are exact in any order; four interleaved accumulators per cluster keep
/// consecutive rows of the same cluster from waiting on each other's additions.
struct ClusterSums<'a> {
    block: &'a crate::ml::kmeans::Block<'a>,
    k: usize,
    sums: &'a mut [f64],
    counts: &'a mut [f64],
}

impl pulp::WithSimd for ClusterSums<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        let (k, labels) = (self.k, self.block.labels);
        let d = self.sums.len() / k.max(1);
        let mut lanes = vec![0.0f64; 4 * k];
        for j in 0..d {
            lanes.fill(0.0);
            let column = self.block.column(j);
            let mut rows = labels.chunks_exact(4).zip(column.chunks_exact(4));
            for (l, x) in &mut rows {
                lanes[l[0] as usize] += x[0];
                lanes[k + l[1] as usize] += x[1];
                lanes[2 * k + l[2] as usize] += x[2];
                lanes[3 * k + l[3] as usize] += x[3];
            }
            let tail = labels.len() / 4 * 4;
            for (l, x) in labels[tail..].iter().zip(&column[tail..]) {
                lanes[*l as usize] += x;
            }
            for c in 0..k {
                self.sums[c * d + j] +=
                    lanes[c] + lanes[k + c] + lanes[2 * k + c] + lanes[3 * k + c];
            }
        }
        for &l in labels {
            self.counts[l as usize] += 1.0;
        }
    }
}

impl Accumulator for KMeansStepAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let arrays = values
            .iter()
            .map(|a| crate::args::float64("kmeans_step", a))
            .collect::<Result<Vec<_>>>()?;
        let d = self.centroids.d();
        let (features, weights) = arrays.split_at(d.min(arrays.len()));
        let dense = crate::args::nulls_as_zero(features);
        let columns: Vec<&[f64]> = dense.iter().map(|c| c.as_ref()).collect();
        let weights: Option<Vec<f64>> = weights.first().filter(|_| self.weighted).map(|w| {
            (0..w.len())
                .map(|i| {
                    if w.is_valid(i) {
                        w.value(i).max(0.0)
                    } else {
                        0.0
                    }
                })
                .collect()
        });
        let Self {
            centroids,
            sums,
            counts,
            inertia,
            farthest,
            scratch,
            ..
        } = self;
        let k = centroids.k();
        // Rows arrive rounded to the grain, so the unweighted sums below are exact in any order.
        let visited = centroids.for_each_block(&columns, true, scratch, |block| {
            match &weights {
                None => {
                    pulp::Arch::new().dispatch(ClusterSums {
                        block: &block,
                        k,
                        sums: &mut sums[..],
                        counts: &mut counts[..],
                    });
                }
                Some(w) => {
                    for j in 0..d {
                        let col = block.column(j);
                        for (i, &l) in block.labels.iter().enumerate() {
                            sums[l as usize * d + j] += quantize(w[block.start + i] * col[i]);
                        }
                    }
                    for (i, &l) in block.labels.iter().enumerate() {
                        counts[l as usize] += quantize(w[block.start + i]);
                    }
                }
            }
            for (i, &dist) in block.distances.iter().enumerate() {
                let w = weights.as_ref().map_or(1.0, |w| w[block.start + i]);
                *inertia += quantize(w * dist);
                if w > 0.0 && farthest.admits(dist) {
                    farthest.offer(dist, block.row(i));
                }
            }
            Ok(())
        });
        visited.map_err(|e| {
            datafusion::common::DataFusionError::Execution(format!("kmeans_step: {e}"))
        })
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        Ok(f64_list_scalar(self.flat()))
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self)
            + (self.sums.capacity() + self.counts.capacity()) * 8
            + (crate::ml::kmeans::BLOCK * (self.centroids.d() + self.centroids.k() + 2)) * 8
            + self.farthest.points.len() * (self.centroids.d() + 1) * 8
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(vec![self.evaluate()?])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let Some(partials) = states.first() else {
            return exec_err!("kmeans_step: merge without state");
        };
        let (k, d) = (self.centroids.k(), self.centroids.d());
        let partials = partials.as_list::<i32>();
        for row in 0..partials.len() {
            if partials.is_null(row) {
                continue;
            }
            let part = partials.value(row);
            let part = part.as_primitive::<Float64Type>();
            let Some(r) = KMeansStepResult::from_flat(part.values(), k, d) else {
                return exec_err!(
                    "kmeans_step: partial state of {} values, expected {}",
                    part.len(),
                    KMeansStepResult::flat_len(k, d)
                );
            };
            for (t, v) in self.sums.iter_mut().zip(&r.sums) {
                *t += v;
            }
            for (t, v) in self.counts.iter_mut().zip(&r.counts) {
                *t += v;
            }
            self.inertia += r.inertia;
            for (dist, point) in r.farthest {
                if self.farthest.admits(dist) {
                    self.farthest.offer(dist, point);
                }
            }
        }
        Ok(())
    }
}

/// The `capacity` points farthest from their centroid, farthest first. Ties are broken by the
/// coordinates, so the selection does not depend on the order points arrive in.
#[derive(Debug)]
struct Farthest {
    capacity: usize,
    points: Vec<(f64, Vec<f64>)>,
}

impl Farthest {
    fn new(capacity: usize) -> Self {
        Self {
            capacity,
            points: Vec::with_capacity(capacity + 1),
        }
    }

    /// Whether a point at `dist` may enter (cheap pre-check before building the point).
    fn admits(&self, dist: f64) -> bool {
        self.points.len() < self.capacity || self.points.last().is_some_and(|(d, _)| dist >= *d)
    }

    fn offer(&mut self, dist: f64, point: Vec<f64>) {
        let order = |a: &(f64, Vec<f64>), b: &(f64, Vec<f64>)| {
            b.0.total_cmp(&a.0).then_with(|| {
                a.1.iter()
                    .zip(&b.1)
                    .map(|(x, y)| x.total_cmp(y))
                    .find(|o| o.is_ne())
                    .unwrap_or(std::cmp::Ordering::Equal)
            })
        };
        let entry = (dist, point);
        let at = self
            .points
            .partition_point(|p| order(p, &entry) == std::cmp::Ordering::Less);
        if self.points.get(at).is_some_and(|p| p.1 == entry.1) {
            return;
        }
        self.points.insert(at, entry);
        self.points.truncate(self.capacity);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic, reason = "tests fail by panicking")]
mod tests {
    use arrow::array::Float64Array;

    use super::*;

    fn flat(acc: &mut KMeansStepAccumulator) -> Vec<f64> {
        match acc.evaluate().unwrap() {
            ScalarValue::List(l) => l.value(0).as_primitive::<Float64Type>().values().to_vec(),
            other => panic!("unexpected {other:?}"),
        }
    }

    fn split_and_merge(
        centroids: &Arc<Centroids>,
        weighted: bool,
        cols: &[ArrayRef],
        at: usize,
    ) -> Vec<f64> {
        let rows = cols[0].len();
        let mut parts = Vec::new();
        for (start, len) in [(0, at), (at, rows - at)] {
            let mut acc = KMeansStepAccumulator::new(Arc::clone(centroids), weighted);
            let slice: Vec<ArrayRef> = cols.iter().map(|c| c.slice(start, len)).collect();
            acc.update_batch(&slice).unwrap();
            parts.push(acc.state().unwrap().remove(0));
        }
        parts.reverse();
        let mut merged = KMeansStepAccumulator::new(Arc::clone(centroids), weighted);
        merged
            .merge_batch(&[ScalarValue::iter_to_array(parts).unwrap()])
            .unwrap();
        flat(&mut merged)
    }

    #[test]
    fn split_then_merge_equals_one_pass() {
        let centroids = Arc::new(Centroids::new(2, 1, vec![0.0, 10.0]).unwrap());
        let xs: ArrayRef = Arc::new(Float64Array::from(vec![1.0, 2.0, 9.0, 12.0, -1.0]));
        let mut one = KMeansStepAccumulator::new(Arc::clone(&centroids), false);
        one.update_batch(&[Arc::clone(&xs)]).unwrap();
        let whole = flat(&mut one);
        for at in 0..=5 {
            assert_eq!(
                split_and_merge(&centroids, false, &[Arc::clone(&xs)], at),
                whole
            );
        }
        let r = KMeansStepResult::from_flat(&whole, 2, 1).unwrap();
        assert_eq!(r.sums, vec![2.0, 21.0]);
        assert_eq!(r.counts, vec![3.0, 2.0]);
        assert_eq!(r.inertia, 1.0 + 4.0 + 1.0 + 1.0 + 4.0);
        // Farthest first; ties (distance 4 at 2.0 and 12.0) ordered by coordinates.
        assert_eq!(r.farthest, vec![(4.0, vec![2.0]), (4.0, vec![12.0])]);
    }

    #[test]
    fn weights_scale_sums_counts_and_inertia() {
        let centroids = Arc::new(Centroids::new(2, 1, vec![0.0, 10.0]).unwrap());
        let xs: ArrayRef = Arc::new(Float64Array::from(vec![1.0, 2.0, 9.0, 12.0]));
        let ws: ArrayRef = Arc::new(Float64Array::from(vec![
            Some(2.0),
            None,
            Some(1.0),
            Some(0.5),
        ]));
        let mut one = KMeansStepAccumulator::new(Arc::clone(&centroids), true);
        one.update_batch(&[Arc::clone(&xs), Arc::clone(&ws)])
            .unwrap();
        let whole = flat(&mut one);
        let r = KMeansStepResult::from_flat(&whole, 2, 1).unwrap();
        assert_eq!(r.sums, vec![2.0, 9.0 + 6.0]);
        assert_eq!(r.counts, vec![2.0, 1.5]);
        assert_eq!(r.inertia, 2.0 + 1.0 + 2.0);
        // The zero-weight point never becomes a re-seeding candidate.
        assert!(r.farthest.iter().all(|(_, p)| p[0] != 2.0));
        assert_eq!(split_and_merge(&centroids, true, &[xs, ws], 2), whole);
    }
}
