//! `kmeans_step(x1, …, xd [, weight])`: one Lloyd iteration as an aggregate.

use std::sync::{Arc, LazyLock};

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::{DataType, Field, FieldRef, Float64Type};
use datafusion::common::{Result, ScalarValue, exec_err};
use datafusion::logical_expr::Documentation;
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::format_state_name;
use datafusion::logical_expr::{Accumulator, AggregateUDFImpl, Signature, Volatility};

use crate::args::FloatColumns;
use crate::lists::{f64_list_scalar, list_type};
use crate::ml::Centroids;
use crate::ml::kmeans::{BlockScratch, Coordinate, quantize};

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
    fn documentation(&self) -> Option<&Documentation> {
        static DOC: LazyLock<Documentation> = LazyLock::new(|| {
            crate::docs::documentation(
                "`kmeans_step(x1, …, xd [, weight]) -> list<double>`: assigns every point to its nearest centroid (of the centroids this instance carries) and returns, flattened (see `KMeansStepResult`), the per-cluster coordinate sums, the per-cluster weights, the total squared distance (inertia) and the points farthest from their centroid (to re-seed clusters that end up empty).  With a weighted instance (`KMeansStep::weighted`) the last argument is the row's weight (null or negative counts as 0); otherwise every row weighs 1.  The state is that same vector, so partial results from any split of the data add up to the one-pass result: each Lloyd iteration is one aggregation over the points, and only the `k×d` centroids travel. Null coordinates count as 0 (callers impute before).",
                "kmeans_step(x1, …, xd [, weight])",
                "SELECT kmeans_step(recency_z, frequency_z, monetary_z) FROM prepared_features;",
            )
        });
        Some(&DOC)
    }

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
    /// The counting sort's offsets ([`ClusterSums`]), allocated once.
    offsets: Vec<usize>,
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
            offsets: vec![0; 2 * (k + 1)],
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

/// Adds a block's rows, rounded to the accumulation grain ([`quantize`]), to their clusters'
/// sums and counts: the sums are then exact in any order.
///
/// The block's rows are first sorted by cluster (a counting sort of their indices). Then,
/// [`COLUMNS_PER_GATHER`] columns at a time, the columns' rounded values go into buffers that
/// stay in L1 (vectorised), and each cluster's sums are gathered from them with two running
/// totals per column in registers: no scatter into memory, so consecutive rows of one cluster
/// never wait on each other's stores, and the cost does not grow with k. Each row index read
/// serves all the columns of the group (measured on the `kmeans_pass` bench, single precision:
/// one column at a time with four totals 36.8 ms, two columns 34.4 ms, four 34.1 ms).
struct ClusterSums<'a, C> {
    block: &'a crate::ml::kmeans::Block<'a, C>,
    k: usize,
    sums: &'a mut [f64],
    counts: &'a mut [f64],
    /// Scratch of `2 (k + 1)` offsets for the counting sort, reused across blocks.
    offsets: &'a mut [usize],
}

/// Columns whose cluster sums [`ClusterSums`] gathers together: eight running totals in all,
/// enough to hide the latency of the additions.
const COLUMNS_PER_GATHER: usize = 4;

/// Row indices within a block: `u8`, so indexing a `[f64; BLOCK]` needs no bounds check.
const _: () = assert!(crate::ml::kmeans::BLOCK == 256);

impl<C: Coordinate> pulp::WithSimd for ClusterSums<'_, C> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        let (k, labels) = (self.k, self.block.labels);
        let d = self.sums.len() / k.max(1);
        // Counting sort: the rows of cluster c are order[starts[c]..starts[c + 1]].
        let (starts, next) = self.offsets.split_at_mut(k + 1);
        starts.fill(0);
        for &l in labels {
            starts[l as usize + 1] += 1;
        }
        for c in 0..k {
            starts[c + 1] += starts[c];
            self.counts[c] += (starts[c + 1] - starts[c]) as f64;
        }
        next.copy_from_slice(starts);
        let mut order = [0u8; crate::ml::kmeans::BLOCK];
        for (i, &l) in labels.iter().enumerate() {
            order[next[l as usize]] = i as u8;
            next[l as usize] += 1;
        }
        // Four columns at a time: each row index loaded serves all four.
        let mut rounded = [[0.0f64; crate::ml::kmeans::BLOCK]; COLUMNS_PER_GATHER];
        for j in (0..d).step_by(COLUMNS_PER_GATHER) {
            let width = COLUMNS_PER_GATHER.min(d - j);
            for (p, buffer) in rounded.iter_mut().enumerate().take(width) {
                for (r, v) in buffer.iter_mut().zip(self.block.column(j + p)) {
                    *r = quantize(v.to_f64());
                }
            }
            for c in 0..k {
                let rows = &order[starts[c]..starts[c + 1]];
                let mut totals = [[0.0f64; 2]; COLUMNS_PER_GATHER];
                let mut twos = rows.chunks_exact(2);
                for q in &mut twos {
                    for (t, buffer) in totals.iter_mut().zip(&rounded) {
                        t[0] += buffer[usize::from(q[0])];
                        t[1] += buffer[usize::from(q[1])];
                    }
                }
                for &r in twos.remainder() {
                    for (t, buffer) in totals.iter_mut().zip(&rounded) {
                        t[0] += buffer[usize::from(r)];
                    }
                }
                for (p, t) in totals.iter().enumerate().take(width) {
                    self.sums[c * d + j + p] += t[0] + t[1];
                }
            }
        }
    }
}

/// The sum of a block's squared distances rounded to the grain (its unweighted inertia), and
/// the largest of them: eight running totals, so that both loops vectorise.
struct DistanceStats<'a>(&'a [f64]);

/// What [`DistanceStats`] returns.
struct BlockDistances {
    rounded_sum: f64,
    max: f64,
}

impl pulp::WithSimd for DistanceStats<'_> {
    type Output = BlockDistances;

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) -> BlockDistances {
        let (mut sums, mut maxima) = ([0.0f64; 8], [0.0f64; 8]);
        let mut chunks = self.0.chunks_exact(8);
        for chunk in &mut chunks {
            for ((s, m), d) in sums.iter_mut().zip(maxima.iter_mut()).zip(chunk) {
                *s += quantize(*d);
                *m = if *d > *m { *d } else { *m };
            }
        }
        for (s, d) in sums.iter_mut().zip(chunks.remainder()) {
            *s += quantize(*d);
            maxima[0] = maxima[0].max(*d);
        }
        BlockDistances {
            rounded_sum: sums.iter().sum(),
            max: maxima.iter().copied().fold(0.0, f64::max),
        }
    }
}

impl KMeansStepAccumulator {
    /// Adds a batch whose coordinates are `columns` (stored as `C`) and whose rows weigh
    /// `weights` (1 each when `None`).
    fn add<C: Coordinate>(&mut self, columns: &[&[C]], weights: Option<&[f64]>) -> Result<()> {
        let d = self.centroids.d();
        let Self {
            centroids,
            sums,
            counts,
            inertia,
            farthest,
            scratch,
            offsets,
            ..
        } = self;
        let k = centroids.k();
        let visited = centroids.for_each_block(columns, scratch, |block| {
            match weights {
                None => {
                    pulp::Arch::new().dispatch(ClusterSums {
                        block: &block,
                        k,
                        sums: &mut sums[..],
                        counts: &mut counts[..],
                        offsets: &mut offsets[..],
                    });
                }
                Some(w) => {
                    for j in 0..d {
                        let col = block.column(j);
                        for (i, &l) in block.labels.iter().enumerate() {
                            sums[l as usize * d + j] +=
                                quantize(w[block.start + i] * col[i].to_f64());
                        }
                    }
                    for (i, &l) in block.labels.iter().enumerate() {
                        counts[l as usize] += quantize(w[block.start + i]);
                    }
                }
            }
            let stats = pulp::Arch::new().dispatch(DistanceStats(block.distances));
            match weights {
                None => *inertia += stats.rounded_sum,
                Some(w) => {
                    for (i, &dist) in block.distances.iter().enumerate() {
                        *inertia += quantize(w[block.start + i] * dist);
                    }
                }
            }
            // A farther point is always admitted when a nearer one is: when the block's largest
            // distance is not admitted, none of its rows is.
            if farthest.admits(stats.max) {
                for (i, &dist) in block.distances.iter().enumerate() {
                    let w = weights.map_or(1.0, |w| w[block.start + i]);
                    if w > 0.0 && farthest.admits(dist) {
                        farthest.offer(dist, block.row(i));
                    }
                }
            }
            Ok(())
        });
        visited.map_err(|e| {
            datafusion::common::DataFusionError::Execution(format!("kmeans_step: {e}"))
        })
    }
}

impl Accumulator for KMeansStepAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let d = self.centroids.d();
        let (features, rest) = values.split_at(d.min(values.len()));
        let weights: Option<Vec<f64>> = match rest.first().filter(|_| self.weighted) {
            None => None,
            Some(w) => {
                let w = crate::args::float64("kmeans_step", w)?;
                Some(
                    (0..w.len())
                        .map(|i| {
                            if w.is_valid(i) {
                                w.value(i).max(0.0)
                            } else {
                                0.0
                            }
                        })
                        .collect(),
                )
            }
        };
        match crate::args::float_columns("kmeans_step", features)? {
            FloatColumns::F32(arrays) => {
                let dense = crate::args::nulls_as_zero(&arrays);
                let columns: Vec<&[f32]> = dense.iter().map(|c| c.as_ref()).collect();
                self.add(&columns, weights.as_deref())
            }
            FloatColumns::F64(arrays) => {
                let dense = crate::args::nulls_as_zero(&arrays);
                let columns: Vec<&[f64]> = dense.iter().map(|c| c.as_ref()).collect();
                self.add(&columns, weights.as_deref())
            }
        }
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
#[expect(clippy::unwrap_used, clippy::panic, reason = "tests fail by panicking")]
mod tests {
    use arrow::array::{Float32Array, Float64Array};

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

    #[test]
    fn single_precision_points_give_the_result_of_their_double_values() {
        // 6 features (a whole group of gathered columns and a part), k = 4, 1000 rows with
        // nulls: the f32 path (tiles, gathered sums, farthest points) against the same values
        // widened to f64, weighted and not, and the sums against a plain loop.
        let (d, k, n) = (6, 4, 1000);
        let centroids = Arc::new(
            Centroids::new(k, d, (0..k * d).map(|i| (i % 7) as f64 - 3.0).collect()).unwrap(),
        );
        let single: Vec<Float32Array> = (0..d)
            .map(|j| {
                (0..n)
                    .map(|i| (i % 97 != j).then_some(((i * 31 + j * 7) % 113) as f32 / 17.0 - 3.3))
                    .collect()
            })
            .collect();
        let double: Vec<ArrayRef> = single
            .iter()
            .map(|c| arrow::compute::cast(c, &DataType::Float64).unwrap())
            .collect();
        let single: Vec<ArrayRef> = single
            .into_iter()
            .map(|c| Arc::new(c) as ArrayRef)
            .collect();
        let weights: ArrayRef = Arc::new(Float64Array::from_iter_values(
            (0..n).map(|i| (i % 5) as f64 / 2.0),
        ));
        for weighted in [false, true] {
            let run = |cols: &[ArrayRef]| {
                let mut acc = KMeansStepAccumulator::new(Arc::clone(&centroids), weighted);
                let mut args = cols.to_vec();
                if weighted {
                    args.push(Arc::clone(&weights));
                }
                acc.update_batch(&args).unwrap();
                flat(&mut acc)
            };
            let (a, b) = (run(&single), run(&double));
            assert_eq!(a, b, "weighted: {weighted}");
            let r = KMeansStepResult::from_flat(&a, k, d).unwrap();
            assert!(r.counts.iter().sum::<f64>() > 0.0);
            if !weighted {
                let mut sums = vec![0.0; k * d];
                for i in 0..n {
                    let point: Vec<f64> = double
                        .iter()
                        .map(|c| {
                            let c = c.as_primitive::<Float64Type>();
                            if c.is_valid(i) { c.value(i) } else { 0.0 }
                        })
                        .collect();
                    let (label, _) = centroids.nearest(&point);
                    for (j, x) in point.iter().enumerate() {
                        sums[label * d + j] += quantize(*x);
                    }
                }
                assert_eq!(r.sums, sums);
            }
        }
    }
}
