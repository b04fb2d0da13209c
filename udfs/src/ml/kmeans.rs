//! K-Means state: centroids, and the nearest-centroid kernel shared by the Lloyd step (UDAF) and
//! the assignment (scalar UDF).

use std::hash::{Hash, Hasher};

use ndarray::linalg::general_mat_mul;
use ndarray::{ArrayView2, ArrayViewMut2, ShapeBuilder};

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
    pub fn nearest_batch(
        &self,
        columns: &[&[f64]],
        labels: &mut Vec<u32>,
        distances: &mut Vec<f64>,
    ) -> Result<()> {
        let mut scratch = BlockScratch::default();
        labels.clear();
        distances.clear();
        self.for_each_block(columns, false, &mut scratch, |block| {
            labels.extend_from_slice(block.labels);
            distances.extend_from_slice(block.distances);
            Ok(())
        })
    }

    /// Runs `visit` on consecutive blocks of up to [`BLOCK`] rows of a column-major batch, each
    /// with its rows copied (column-major, rounded to [`GRAIN`] when `quantized`), their nearest
    /// centroids and squared distances.
    ///
    /// This is the hot loop of every Lloyd pass, written as scikit-learn's is: the scores
    /// `‖c‖² − 2·x·c` of a whole block against all centroids are one matrix product
    /// (`ndarray`'s `general_mat_mul`, i.e. the `matrixmultiply` kernels with their run-time
    /// AVX2/FMA dispatch), and the rest runs under `pulp`'s run-time dispatch so that its loops
    /// are vectorised for the best instruction set of the machine.
    pub fn for_each_block(
        &self,
        columns: &[&[f64]],
        quantized: bool,
        scratch: &mut BlockScratch,
        mut visit: impl FnMut(Block<'_>) -> Result<()>,
    ) -> Result<()> {
        let (k, d) = (self.k, self.d);
        if columns.len() != d {
            return Err(format!(
                "{} columns for centroids of dimension {d}",
                columns.len()
            ));
        }
        let rows = columns.first().map_or(0, |c| c.len());
        let norms: Vec<f64> = (0..k)
            .map(|c| self.centroid(c).iter().map(|v| v * v).sum())
            .collect();
        // Cᵀ, d × k, scaled by −2.
        let mut transposed = vec![0.0; d * k];
        for c in 0..k {
            for j in 0..d {
                transposed[j * k + c] = -2.0 * self.values[c * d + j];
            }
        }
        let centres = ArrayView2::from_shape((d, k), &transposed).map_err(|e| e.to_string())?;
        scratch.resize(k, d);
        for start in (0..rows).step_by(BLOCK) {
            let len = BLOCK.min(rows - start);
            let BlockScratch {
                x,
                scores,
                labels,
                distances,
                ..
            } = scratch;
            pulp::Arch::new().dispatch(CopyBlock {
                columns,
                start,
                len,
                quantized,
                x,
                norms: distances,
            });
            let block =
                ArrayView2::from_shape((len, d).f(), &x[..len * d]).map_err(|e| e.to_string())?;
            let mut out = ArrayViewMut2::from_shape((len, k).f(), &mut scores[..len * k])
                .map_err(|e| e.to_string())?;
            general_mat_mul(1.0, &block, &centres, 0.0, &mut out);
            pulp::Arch::new().dispatch(Nearest {
                scores: &scores[..len * k],
                centre_norms: &norms,
                labels: &mut labels[..len],
                distances: &mut distances[..len],
            });
            visit(Block {
                start,
                len,
                x: &x[..len * d],
                labels: &labels[..len],
                distances: &distances[..len],
            })?;
        }
        Ok(())
    }
}

/// Copies one block of rows out of the batch's columns (column-major, quantised or not) and
/// computes each row's squared norm. A [`pulp::WithSimd`] operation rather than a closure:
/// `with_simd` is inlined into pulp's target-feature context, so these loops are vectorised
/// with the machine's best instruction set.
struct CopyBlock<'a> {
    columns: &'a [&'a [f64]],
    start: usize,
    len: usize,
    quantized: bool,
    x: &'a mut [f64],
    norms: &'a mut [f64],
}

impl pulp::WithSimd for CopyBlock<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        let (start, len) = (self.start, self.len);
        let norms = &mut self.norms[..len];
        norms.fill(0.0);
        for (j, col) in self.columns.iter().enumerate() {
            let target = &mut self.x[j * len..(j + 1) * len];
            let source = &col[start..start + len];
            if self.quantized {
                for (t, v) in target.iter_mut().zip(source) {
                    *t = quantize(*v);
                }
            } else {
                target.copy_from_slice(source);
            }
            for (n, v) in norms.iter_mut().zip(target.iter()) {
                *n += v * v;
            }
        }
    }
}

/// Picks each row's nearest centroid from its scores `−2·x·c` (column-major) and the centroids'
/// squared norms;
/// turns the rows' squared norms (in `distances`) into squared distances.
struct Nearest<'a> {
    scores: &'a [f64],
    centre_norms: &'a [f64],
    labels: &'a mut [u32],
    distances: &'a mut [f64],
}

impl pulp::WithSimd for Nearest<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        // Scores are column-major (one column per centroid), so every loop runs across rows.
        let len = self.labels.len();
        let mut best = [f64::INFINITY; BLOCK];
        let best = &mut best[..len];
        self.labels.fill(0);
        for (c, n) in self.centre_norms.iter().enumerate() {
            let column = &self.scores[c * len..(c + 1) * len];
            for ((b, l), s) in best.iter_mut().zip(self.labels.iter_mut()).zip(column) {
                let score = s + n;
                if score < *b {
                    *b = score;
                    *l = c as u32;
                }
            }
        }
        for (d, b) in self.distances.iter_mut().zip(best.iter()) {
            *d = (*d + b).max(0.0);
        }
    }
}

/// Result of the block kernel: a message when shapes do not fit (a bug in the caller).
pub type Result<T> = std::result::Result<T, String>;

/// Rows per block of [`Centroids::for_each_block`]: a block (256 × d) and its scores stay in
/// cache while the matrix product runs (1024 measured no faster).
pub const BLOCK: usize = 256;

/// Reusable buffers of the block kernel.
#[derive(Debug, Default)]
pub struct BlockScratch {
    x: Vec<f64>,
    scores: Vec<f64>,
    labels: Vec<u32>,
    distances: Vec<f64>,
}

impl BlockScratch {
    fn resize(&mut self, k: usize, d: usize) {
        self.x.resize(BLOCK * d, 0.0);
        self.scores.resize(BLOCK * k, 0.0);
        self.labels.resize(BLOCK, 0);
        self.distances.resize(BLOCK, 0.0);
    }
}

/// One block of rows, assigned.
#[derive(Debug)]
pub struct Block<'a> {
    /// Index of the block's first row in the batch.
    pub start: usize,
    /// Rows in the block.
    pub len: usize,
    /// The rows, column-major (`d` columns of `len`).
    pub x: &'a [f64],
    /// Nearest centroid of each row.
    pub labels: &'a [u32],
    /// Squared distance of each row to it.
    pub distances: &'a [f64],
}

impl Block<'_> {
    /// Coordinate `j` of every row of the block.
    pub fn column(&self, j: usize) -> &[f64] {
        &self.x[j * self.len..(j + 1) * self.len]
    }

    /// Row `i`, gathered.
    pub fn row(&self, i: usize) -> Vec<f64> {
        self.x.chunks_exact(self.len.max(1)).map(|c| c[i]).collect()
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
#[allow(clippy::unwrap_used, clippy::panic, reason = "tests fail by panicking")]
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
