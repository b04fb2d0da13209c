//! K-Means state: centroids, and the nearest-centroid kernel shared by the Lloyd step (UDAF) and
//! the assignment (scalar UDF).

use std::hash::{Hash, Hasher};

/// `k` centroids of dimension `d`, row-major.
#[derive(Debug, Clone, Default)]
pub struct Centroids {
    k: usize,
    d: usize,
    values: Vec<f64>,
}

impl PartialEq for Centroids {
    fn eq(&self, other: &Self) -> bool {
        self.k == other.k
            && self.d == other.d
            && self
                .values
                .iter()
                .zip(&other.values)
                .all(|(a, b)| a.to_bits() == b.to_bits())
    }
}

impl Eq for Centroids {}

impl Hash for Centroids {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.k.hash(state);
        self.d.hash(state);
        super::hash_f64s(&self.values, state);
    }
}

impl Centroids {
    /// Builds centroids from `k * d` row-major values; `None` when the sizes do not match.
    pub fn new(k: usize, d: usize, values: Vec<f64>) -> Option<Self> {
        (k > 0 && d > 0 && values.len() == k * d).then_some(Self { k, d, values })
    }

    /// Number of centroids.
    pub fn k(&self) -> usize {
        self.k
    }

    /// Dimension.
    pub fn d(&self) -> usize {
        self.d
    }

    /// Whether this is the empty placeholder registered for name resolution.
    pub fn is_empty(&self) -> bool {
        self.k == 0
    }

    /// Row-major centroid values.
    pub fn values(&self) -> &[f64] {
        &self.values
    }

    /// Centroid `c`.
    pub fn centroid(&self, c: usize) -> &[f64] {
        &self.values[c * self.d..(c + 1) * self.d]
    }

    /// The nearest centroid of `point` and the squared Euclidean distance to it.
    pub fn nearest(&self, point: &[f64]) -> (usize, f64) {
        let mut best = (0, f64::INFINITY);
        for c in 0..self.k {
            let dist = squared_distance(self.centroid(c), point);
            if dist < best.1 {
                best = (c, dist);
            }
        }
        best
    }

    /// The nearest centroid of every row of a column-major batch (`columns[j][i]` is coordinate
    /// `j` of row `i`): fills `labels` and `distances` (squared Euclidean) with one entry per row.
    pub fn nearest_batch<C: Coordinate>(
        &self,
        columns: &[&[C]],
        labels: &mut Vec<u32>,
        distances: &mut Vec<f64>,
    ) -> Result<()> {
        let mut scratch = BlockScratch::default();
        labels.clear();
        distances.clear();
        self.for_each_block(columns, &mut scratch, |block| {
            labels.extend_from_slice(block.labels);
            distances.extend_from_slice(block.distances);
            Ok(())
        })
    }

    /// Runs `visit` on consecutive blocks of up to [`BLOCK`] rows of a column-major batch, each
    /// with its rows' nearest centroids and squared distances.
    ///
    /// This is the hot loop of every Lloyd pass, measured by the `kmeans` and `kmeans_pass`
    /// benches. For each block:
    /// - [`RowNorms`] computes the rows' squared norms a column at a time;
    /// - [`AssignTiles`] computes the scores `‖c‖² − 2·x·c` straight from the batch's columns, a
    ///   tile of rows at a time (one SIMD register of rows against a chunk of [`CHUNK`]
    ///   centroids), with no copy of the rows and every comparison across rows in registers.
    ///   Meanwhile it asks the CPU to prefetch the block after next ([`PREFETCH_AHEAD`]): the
    ///   hardware prefetcher does not follow 30 interleaved column streams, and without this the
    ///   pass waits on memory instead of computing while it loads.
    ///
    /// Both run under `pulp`'s run-time dispatch, so they use the best instruction set of the
    /// machine (AVX-512, AVX2 + FMA, or scalar). Columns should not alias in the cache (see
    /// [`super::layout`]). They may be stored in single precision ([`Coordinate`]).
    pub fn for_each_block<C: Coordinate>(
        &self,
        columns: &[&[C]],
        scratch: &mut BlockScratch,
        mut visit: impl FnMut(Block<'_, C>) -> Result<()>,
    ) -> Result<()> {
        let d = self.d;
        if columns.len() != d {
            return Err(format!(
                "{} columns for centroids of dimension {d}",
                columns.len()
            ));
        }
        let rows = columns.first().map_or(0, |c| c.len());
        if columns.iter().any(|c| c.len() != rows) {
            return Err("columns of different lengths".to_string());
        }
        let tiles = TileCentres::new(self);
        scratch.labels.resize(BLOCK, 0);
        scratch.distances.resize(BLOCK, 0.0);
        scratch.norms.resize(BLOCK, 0.0);
        for start in (0..rows).step_by(BLOCK) {
            let len = BLOCK.min(rows - start);
            pulp::Arch::new().dispatch(RowNorms {
                columns,
                start,
                norms: &mut scratch.norms[..len],
            });
            pulp::Arch::new().dispatch(AssignTiles {
                columns,
                start,
                centres: &tiles,
                norms: &scratch.norms[..len],
                labels: &mut scratch.labels[..len],
                distances: &mut scratch.distances[..len],
            });
            visit(Block {
                columns,
                start,
                len,
                labels: &scratch.labels[..len],
                distances: &scratch.distances[..len],
            })?;
        }
        Ok(())
    }
}

/// How a stored coordinate is read: `f64`, or `f32` for points stored in single precision,
/// which halves the bytes a pass reads (the bound of a pass over points larger than the
/// caches). Every computation is in `f64` either way; an `f32` widens to `f64` exactly.
pub trait Coordinate: Copy + Send + Sync + 'static {
    /// The value in double precision.
    fn to_f64(self) -> f64;

    /// Up to `S::F64_LANES` consecutive values as one register (missing lanes are 0).
    fn load<S: pulp::Simd>(simd: S, values: &[Self]) -> S::f64s;
}

impl Coordinate for f64 {
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self
    }

    #[inline(always)]
    fn load<S: pulp::Simd>(simd: S, values: &[f64]) -> S::f64s {
        match S::as_simd_f64s(values).0.first() {
            Some(whole) => *whole,
            None => simd.partial_load_f64s(values),
        }
    }
}

/// The widest register of `f64` that [`Coordinate::load`] fills (AVX-512's 8 lanes).
const MAX_LANES: usize = 8;

impl Coordinate for f32 {
    #[inline(always)]
    fn to_f64(self) -> f64 {
        f64::from(self)
    }

    #[inline(always)]
    fn load<S: pulp::Simd>(simd: S, values: &[f32]) -> S::f64s {
        let lanes = S::F64_LANES.min(MAX_LANES);
        let mut wide = [0.0f64; MAX_LANES];
        if values.len() >= lanes {
            // A whole register: a loop of constant length, which compiles to one widening
            // conversion.
            for (w, v) in wide[..lanes].iter_mut().zip(&values[..lanes]) {
                *w = f64::from(*v);
            }
            return f64::load(simd, &wide[..lanes]);
        }
        for (w, v) in wide.iter_mut().zip(values) {
            *w = f64::from(*v);
        }
        simd.partial_load_f64s(&wide[..values.len()])
    }
}

/// Centroids per chunk of the tile kernel: one accumulator register each (plus one for the
/// coordinates) fits the 16 registers of AVX2, and eight independent multiply-adds per
/// coordinate hide the FMA latency.
pub const CHUNK: usize = 8;

/// The centroids laid out for [`AssignTiles`]: `−2·Cᵀ` (d rows of `kp` values, `kp` being `k`
/// rounded up to a whole number of chunks, padded with zeros) and the squared norms (padded
/// with +∞, so a padding centroid never wins).
struct TileCentres {
    kp: usize,
    scaled: Vec<f64>,
    norms: Vec<f64>,
}

impl TileCentres {
    fn new(c: &Centroids) -> Self {
        let kp = c.k.div_ceil(CHUNK) * CHUNK;
        let mut scaled = vec![0.0; c.d * kp];
        let mut norms = vec![f64::INFINITY; kp];
        for k in 0..c.k {
            norms[k] = c.centroid(k).iter().map(|v| v * v).sum();
            for (j, v) in c.centroid(k).iter().enumerate() {
                scaled[j * kp + k] = -2.0 * v;
            }
        }
        Self { kp, scaled, norms }
    }
}

/// Assigns the rows `start..start + labels.len()` of a column-major batch to their nearest
/// centroids. A [`pulp::WithSimd`] operation: `with_simd` is inlined into pulp's
/// target-feature context, so the vector types below are the machine's widest.
///
/// Rows are taken a register at a time (a tile: 8 rows with AVX-512, 4 with AVX2), two tiles
/// at once where there are registers enough (AVX-512's 32). For each chunk of [`CHUNK`]
/// centroids, one pass over the coordinates multiplies each tile's coordinate `j` (a contiguous
/// load from column `j`) by each centroid's `−2·c_j` (a broadcast) into one accumulator per
/// centroid. The best score per row is then kept with vector compares and selects, and added
/// to the row's squared norm ([`RowNorms`]) for its distance.
struct AssignTiles<'a, C> {
    columns: &'a [&'a [C]],
    start: usize,
    centres: &'a TileCentres,
    norms: &'a [f64],
    labels: &'a mut [u32],
    distances: &'a mut [f64],
}

/// The squared norms of the rows `start..start + norms.len()` of a column-major batch, a
/// column at a time (vectorised across rows). Measured faster than accumulating them in
/// [`AssignTiles`]'s registers, which then run one multiply-add fewer per coordinate.
struct RowNorms<'a, C> {
    columns: &'a [&'a [C]],
    start: usize,
    norms: &'a mut [f64],
}

impl<C: Coordinate> pulp::WithSimd for RowNorms<'_, C> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        let len = self.norms.len();
        self.norms.fill(0.0);
        for column in self.columns {
            for (n, x) in self
                .norms
                .iter_mut()
                .zip(&column[self.start..self.start + len])
            {
                let x = x.to_f64();
                *n = x.mul_add(x, *n);
            }
        }
    }
}

/// Software prefetch: asks the CPU to start loading a cache line that will be read soon. Safe
/// (a prefetch never faults); a no-op off x86-64, on CPUs without SSE, or past the slice.
#[derive(Clone, Copy)]
struct Prefetcher {
    #[cfg(target_arch = "x86_64")]
    cpu: Option<pulp::x86::V3>,
}

impl Prefetcher {
    fn new() -> Self {
        Self {
            #[cfg(target_arch = "x86_64")]
            cpu: pulp::x86::V3::try_new(),
        }
    }

    #[inline(always)]
    fn fetch<T>(self, slice: &[T], at: usize) {
        #[cfg(target_arch = "x86_64")]
        if let (Some(cpu), Some(value)) = (self.cpu, slice.get(at)) {
            cpu.sse._mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(
                std::ptr::from_ref(value).cast(),
            );
        }
    }
}

impl<C: Coordinate> pulp::WithSimd for AssignTiles<'_, C> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, simd: S) {
        let len = self.labels.len();
        let step = if S::F64_LANES >= 8 { 2 } else { 1 } * S::F64_LANES;
        let whole = len / step * step;
        let mut out = TileOut::default();
        let hints = Prefetcher::new();
        for first in (0..whole).step_by(step) {
            for column in self.columns {
                for line in (0..step).step_by(64 / std::mem::size_of::<C>()) {
                    hints.fetch(column, self.start + first + PREFETCH_AHEAD + line);
                }
            }
            let (rows, norms) = (self.start + first, &self.norms[first..first + step]);
            if S::F64_LANES >= 8 {
                score_tiles::<S, 2, C>(simd, self.columns, rows, norms, self.centres, &mut out);
            } else {
                score_tiles::<S, 1, C>(simd, self.columns, rows, norms, self.centres, &mut out);
            }
            out.write(first, step, self.labels, self.distances);
        }
        for first in (whole..len).step_by(S::F64_LANES) {
            let n = S::F64_LANES.min(len - first);
            let (rows, norms) = (self.start + first, &self.norms[first..first + n]);
            score_tiles::<S, 1, C>(simd, self.columns, rows, norms, self.centres, &mut out);
            out.write(first, n, self.labels, self.distances);
        }
    }
}

/// The labels and squared distances of the rows of one step of [`score_tiles`].
struct TileOut {
    labels: [u64; 16],
    distances: [f64; 16],
}

impl Default for TileOut {
    fn default() -> Self {
        Self {
            labels: [0; 16],
            distances: [0.0; 16],
        }
    }
}

impl TileOut {
    fn write(&self, first: usize, n: usize, labels: &mut [u32], distances: &mut [f64]) {
        for (l, t) in labels[first..first + n].iter_mut().zip(&self.labels) {
            *l = *t as u32;
        }
        distances[first..first + n].copy_from_slice(&self.distances[..n]);
    }
}

/// Scores the rows `first..first + norms.len()` of a column-major batch (`T` tiles, the last
/// ones possibly partial; `norms` are their squared norms) against every centroid; writes each
/// row's best label and squared distance into `out`.
#[inline(always)]
fn score_tiles<S: pulp::Simd, const T: usize, C: Coordinate>(
    simd: S,
    columns: &[&[C]],
    first: usize,
    norms: &[f64],
    centres: &TileCentres,
    out: &mut TileOut,
) {
    let (lanes, n) = (S::F64_LANES, norms.len());
    let kp = centres.kp;
    let zero = simd.splat_f64s(0.0);
    // The rows of tile t, counted from `first`: `t·lanes ..` up to `n`.
    let span = |t: usize| {
        let from = (t * lanes).min(n);
        from..(from + lanes).min(n)
    };
    let mut best = [simd.splat_f64s(f64::INFINITY); T];
    let mut label = [simd.splat_u64s(0); T];
    for chunk in 0..kp / CHUNK {
        let mut acc = [[zero; CHUNK]; T];
        for (j, column) in columns.iter().enumerate() {
            let centres = &centres.scaled[j * kp + chunk * CHUNK..][..CHUNK];
            for t in 0..T {
                let rows = &column[first..][span(t)];
                let x = C::load(simd, rows);
                for (a, c) in acc[t].iter_mut().zip(centres) {
                    *a = simd.mul_add_f64s(x, simd.splat_f64s(*c), *a);
                }
            }
        }
        let norms = &centres.norms[chunk * CHUNK..][..CHUNK];
        for t in 0..T {
            for (c, (a, n)) in acc[t].iter().zip(norms).enumerate() {
                let score = simd.add_f64s(*a, simd.splat_f64s(*n));
                let better = simd.less_than_f64s(score, best[t]);
                best[t] = simd.select_f64s(better, score, best[t]);
                let id = simd.splat_u64s((chunk * CHUNK + c) as u64);
                label[t] = simd.select_u64s(better, id, label[t]);
            }
        }
    }
    for t in 0..T {
        let at = span(t);
        let norm = simd.partial_load_f64s(&norms[at.clone()]);
        let distance = simd.max_f64s(simd.add_f64s(best[t], norm), zero);
        simd.partial_store_u64s(&mut out.labels[at.clone()], label[t]);
        simd.partial_store_f64s(&mut out.distances[at], distance);
    }
}

/// Result of the block kernel: a message when shapes do not fit (a bug in the caller).
pub type Result<T> = std::result::Result<T, String>;

/// Rows per block of [`Centroids::for_each_block`]: the block's labels and distances, and the
/// part of each column the cluster sums re-read, stay in the L1 cache.
pub const BLOCK: usize = 256;

/// How many rows ahead [`AssignTiles`] prefetches: two blocks (measured on the `kmeans_pass`
/// bench: one block 41.6 ms, two 41.1 ms, four 43.3 ms, half a block 53 ms).
const PREFETCH_AHEAD: usize = 2 * BLOCK;

/// Reusable buffers of the block kernel.
#[derive(Debug, Default)]
pub struct BlockScratch {
    norms: Vec<f64>,
    labels: Vec<u32>,
    distances: Vec<f64>,
}

/// One block of rows, assigned.
#[derive(Debug)]
pub struct Block<'a, C = f64> {
    columns: &'a [&'a [C]],
    /// Index of the block's first row in the batch.
    pub start: usize,
    /// Rows in the block.
    pub len: usize,
    /// Nearest centroid of each row.
    pub labels: &'a [u32],
    /// Squared distance of each row to it.
    pub distances: &'a [f64],
}

impl<C: Coordinate> Block<'_, C> {
    /// Coordinate `j` of every row of the block.
    pub fn column(&self, j: usize) -> &[C] {
        &self.columns[j][self.start..self.start + self.len]
    }

    /// Row `i` of the block, gathered.
    pub fn row(&self, i: usize) -> Vec<f64> {
        self.columns
            .iter()
            .map(|c| c[self.start + i].to_f64())
            .collect()
    }
}

/// Accumulation grain of [`quantize`]: 2⁻²⁴.
pub const GRAIN: f64 = (1u64 << 24) as f64;

/// Adding and subtracting 1.5·2⁵² rounds a float of magnitude below 2⁵¹ to an integer (ties to
/// even) with two additions, which vectorise; `f64::round` is a library call on baseline x86-64.
const ROUNDER: f64 = 6_755_399_441_055_744.0;

/// `x` rounded to a multiple of 2⁻²⁴. Sums of such numbers are exact in f64 while they stay
/// below 2²⁹ in magnitude, so they do not depend on the order of the additions: this is what
/// makes K-Means bit-identical however rows are split across partitions and executors. Values
/// too large for the grain (|x| ≥ 2²⁷) are returned as they are.
#[inline(always)]
pub fn quantize(x: f64) -> f64 {
    let scaled = x * GRAIN;
    if scaled.abs() < 2.2e15 {
        ((scaled + ROUNDER) - ROUNDER) / GRAIN
    } else {
        x
    }
}

/// Squared Euclidean distance of two equally long vectors.
#[inline]
pub fn squared_distance(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "tests fail by panicking")]
mod tests {
    use super::*;

    #[test]
    fn nearest_picks_the_closest_centroid() {
        let c = Centroids::new(2, 2, vec![0.0, 0.0, 10.0, 10.0]).unwrap();
        assert_eq!(c.nearest(&[1.0, 1.0]), (0, 2.0));
        assert_eq!(c.nearest(&[9.0, 10.0]), (1, 1.0));
        assert!(Centroids::new(2, 2, vec![0.0]).is_none());
    }

    #[test]
    fn quantize_rounds_to_the_grain_and_passes_huge_values() {
        assert_eq!(quantize(0.5), 0.5);
        assert_eq!(quantize(1.0 / 3.0), (GRAIN / 3.0).round() / GRAIN);
        assert_eq!(quantize(-1.0 / 3.0), -(GRAIN / 3.0).round() / GRAIN);
        assert_eq!(quantize(1e12 + 0.1), 1e12 + 0.1);
    }

    /// The tile kernel run with one given instruction set.
    fn assign_with<S: pulp::Simd, C: Coordinate>(
        simd: S,
        c: &Centroids,
        columns: &[&[C]],
    ) -> (Vec<u32>, Vec<f64>) {
        let rows = columns[0].len();
        let tiles = TileCentres::new(c);
        let mut norms = vec![0.0; rows];
        let (mut labels, mut distances) = (vec![0; rows], vec![0.0; rows]);
        simd.vectorize(RowNorms {
            columns,
            start: 0,
            norms: &mut norms,
        });
        simd.vectorize(AssignTiles {
            columns,
            start: 0,
            centres: &tiles,
            norms: &norms,
            labels: &mut labels,
            distances: &mut distances,
        });
        (labels, distances)
    }

    #[test]
    fn every_instruction_set_assigns_the_same() {
        // k = 11: a full chunk of centroids and a padded one; 37 rows: whole steps and a tail.
        let (k, d, n) = (11, 5, 37);
        let values: Vec<f64> = (0..k * d)
            .map(|i| ((i * 37 % 29) as f64 - 14.0) / 4.0)
            .collect();
        let c = Centroids::new(k, d, values).unwrap();
        let columns: Vec<Vec<f64>> = (0..d)
            .map(|j| {
                (0..n)
                    .map(|i| (((i * 13 + j * 7) % 31) as f64 - 15.0) / 3.0)
                    .collect()
            })
            .collect();
        let refs: Vec<&[f64]> = columns.iter().map(Vec::as_slice).collect();
        assigns_the_same_everywhere(&c, &refs, "double precision");
        // The same points stored in single precision: the widened values' labels.
        let single: Vec<Vec<f32>> = columns
            .iter()
            .map(|col| col.iter().map(|v| *v as f32).collect())
            .collect();
        let single: Vec<&[f32]> = single.iter().map(Vec::as_slice).collect();
        assigns_the_same_everywhere(&c, &single, "single precision");
    }

    /// The tile kernel with the scalar and AVX2 instruction sets, and dispatched, gives every
    /// row of `columns` the point kernel's nearest centroid of its widened values.
    fn assigns_the_same_everywhere<C: Coordinate>(c: &Centroids, columns: &[&[C]], what: &str) {
        let expected: Vec<(usize, f64)> = (0..columns[0].len())
            .map(|i| {
                c.nearest(
                    &columns
                        .iter()
                        .map(|col| col[i].to_f64())
                        .collect::<Vec<_>>(),
                )
            })
            .collect();
        let mut results = vec![assign_with(pulp::Scalar::new(), c, columns)];
        #[cfg(target_arch = "x86_64")]
        if let Some(v3) = pulp::x86::V3::try_new() {
            results.push(assign_with(v3, c, columns));
        }
        let mut dispatched = (Vec::new(), Vec::new());
        c.nearest_batch(columns, &mut dispatched.0, &mut dispatched.1)
            .unwrap();
        results.push(dispatched);
        for (labels, distances) in &results {
            for (i, (label, best)) in expected.iter().enumerate() {
                assert_eq!(labels[i] as usize, *label, "{what}, row {i}");
                assert!((distances[i] - best).abs() < 1e-9, "{what}, row {i}");
            }
        }
    }

    #[test]
    fn batch_kernel_agrees_with_the_point_kernel() {
        let (k, d, n) = (5, 3, 2_500);
        let values: Vec<f64> = (0..k * d)
            .map(|i| ((i * 7919 % 23) as f64 - 11.0) / 3.0)
            .collect();
        let c = Centroids::new(k, d, values).unwrap();
        let columns: Vec<Vec<f64>> = (0..d)
            .map(|j| {
                (0..n)
                    .map(|i| (((i * 31 + j * 17) % 97) as f64 - 48.0) / 9.0)
                    .collect()
            })
            .collect();
        let refs: Vec<&[f64]> = columns.iter().map(Vec::as_slice).collect();
        let (mut labels, mut dists) = (vec![], vec![]);
        c.nearest_batch(&refs, &mut labels, &mut dists).unwrap();
        for i in 0..n {
            let point: Vec<f64> = columns.iter().map(|col| col[i]).collect();
            let (_, best) = c.nearest(&point);
            // Ties may go either way; the chosen centroid must be a nearest one.
            let chosen = squared_distance(c.centroid(labels[i] as usize), &point);
            assert!((chosen - best).abs() < 1e-9, "row {i}");
            assert!((dists[i] - best).abs() < 1e-9);
        }
    }
}
