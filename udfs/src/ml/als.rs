//! Implicit-feedback ALS (Hu, Koren & Volinsky 2008) kernels: factor matrices, the Gram matrix,
//! and the conjugate-gradient solve of one row's normal equations.
//!
//! For a row (a customer, or an item) with observed interactions `i` of weight `w_i`, confidence
//! `c_i = 1 + alpha * w_i` and preference 1, the new factor `x` solves
//! `(YᵀY + Yᵀ(C − I)Y + λI) x = Yᵀ C p`, where `Y` holds the other side's factors. `YᵀY` is
//! computed once per half-iteration ([`Factors::gram`]) and shared by every row; the rest touches
//! only the row's own interactions, so a solve costs `O(n_i · rank)` per CG step, as in the
//! `implicit` library.

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use ndarray::linalg::general_mat_mul;
use ndarray::{ArrayView2, ArrayViewMut2};

use super::{axpy, dot};

/// A dense `rows × rank` factor matrix, row-major, f32.
#[derive(Debug, Clone, Default)]
pub struct Factors {
    rows: usize,
    rank: usize,
    values: Vec<f32>,
    /// Where a copy of exactly these values is stored on storage every process can read, once
    /// the driver has put it there ([`Factors::stored_at`]): a distributed plan then carries
    /// this location instead of the values (see [`crate::codec`]). Not part of the value:
    /// equality and hashing ignore it, and changing a row forgets it.
    stored_at: Option<Arc<str>>,
}

impl PartialEq for Factors {
    fn eq(&self, other: &Self) -> bool {
        self.rows == other.rows
            && self.rank == other.rank
            && self
                .values
                .iter()
                .zip(&other.values)
                .all(|(a, b)| a.to_bits() == b.to_bits())
    }
}

impl Eq for Factors {}

/// Values hashed per matrix: DataFusion hashes a function (and so its model) every time it
/// plans a query that calls it, and hashing megabytes of factors per half-iteration cost more
/// than solving it. Equal matrices still hash equally (the same values are sampled), and
/// equality still compares every value.
const HASHED_VALUES: usize = 64;

impl Hash for Factors {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.rows.hash(state);
        self.rank.hash(state);
        let step = (self.values.len() / HASHED_VALUES).max(1);
        let sample: Vec<f32> = self.values.iter().step_by(step).copied().collect();
        super::hash_f32s(&sample, state);
    }
}

impl Factors {
    /// Builds a matrix from row-major values; `None` when the sizes do not match.
    pub fn new(rows: usize, rank: usize, values: Vec<f32>) -> Option<Self> {
        (rank > 0 && values.len() == rows * rank).then_some(Self {
            rows,
            rank,
            values,
            stored_at: None,
        })
    }

    /// The same matrix, marked as stored at `location` (a path or URL that every process of a
    /// distributed run can read; the caller has written it there).
    pub fn with_stored_at(mut self, location: &str) -> Self {
        self.stored_at = Some(Arc::from(location));
        self
    }

    /// Where a copy of this matrix is stored, when it has been shared.
    pub fn stored_at(&self) -> Option<&str> {
        self.stored_at.as_deref()
    }

    /// A `rows × rank` matrix of zeros.
    pub fn zeros(rows: usize, rank: usize) -> Self {
        Self {
            rows,
            rank,
            values: vec![0.0; rows * rank],
            stored_at: None,
        }
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Factor dimension.
    pub fn rank(&self) -> usize {
        self.rank
    }

    /// Row `r` (empty when out of range).
    pub fn row(&self, r: usize) -> &[f32] {
        self.values
            .get(r * self.rank..(r + 1) * self.rank)
            .unwrap_or(&[])
    }

    /// Row `r`, mutable (empty when out of range). The matrix no longer matches its stored
    /// copy, if it had one.
    pub fn row_mut(&mut self, r: usize) -> &mut [f32] {
        self.stored_at = None;
        let rank = self.rank;
        self.values
            .get_mut(r * rank..(r + 1) * rank)
            .unwrap_or(&mut [])
    }

    /// Row-major values.
    pub fn values(&self) -> &[f32] {
        &self.values
    }

    /// `YᵀY` (`rank × rank`, row-major): one matrix product (`matrixmultiply` through
    /// `ndarray`, with its run-time AVX2/FMA dispatch), exactly symmetric.
    pub fn gram(&self) -> Vec<f32> {
        let k = self.rank;
        let mut g = vec![0.0f32; k * k];
        if let (Ok(y), Ok(mut out)) = (
            ArrayView2::from_shape((self.rows, k), &self.values),
            ArrayViewMut2::from_shape((k, k), &mut g),
        ) {
            general_mat_mul(1.0, &y.t(), &y, 0.0, &mut out);
        }
        for a in 0..k {
            for b in 0..a {
                g[a * k + b] = g[b * k + a];
            }
        }
        g
    }

    /// Rows scaled to unit length (zero rows stay zero): cosine similarity as a dot product.
    pub fn normalized(&self) -> Self {
        let mut out = self.clone();
        for r in 0..self.rows {
            let row = out.row_mut(r);
            let norm = dot(row, row).sqrt();
            if norm > 0.0 {
                row.iter_mut().for_each(|v| *v /= norm);
            }
        }
        out
    }
}

/// Rows per block of a blocked Gram matrix ([`blocked_gram`]): the rows with indices
/// `b·GRAM_BLOCK .. (b+1)·GRAM_BLOCK` form block `b`.
pub const GRAM_BLOCK: i32 = 65_536;

/// `XᵀX` over the rows of `x` that `present` marks, computed so that it does not depend on
/// where the rows live: each [`GRAM_BLOCK`] of indices is one matrix product over its present
/// rows in index order, and the blocks are added in block order ([`sum_block_grams`]). A
/// distributed fit computes the same blocks in the `als_gram` aggregate, one group per block,
/// and adds them the same way, so both give the same bits.
pub fn blocked_gram(x: &Factors, present: &[bool]) -> Vec<f32> {
    let (k, block) = (x.rank(), GRAM_BLOCK as usize);
    let mut blocks = Vec::new();
    for start in (0..x.rows()).step_by(block) {
        let end = (start + block).min(x.rows());
        let mut values = Vec::new();
        let mut rows = 0;
        for r in start..end {
            if present.get(r).copied().unwrap_or(false) {
                values.extend_from_slice(x.row(r));
                rows += 1;
            }
        }
        if let Some(f) = Factors::new(rows, k, values).filter(|_| rows > 0) {
            blocks.push(f.gram());
        }
    }
    sum_block_grams(k, blocks.iter().map(Vec::as_slice))
}

/// Adds per-block Gram matrices (`k × k` each), in the order given, in f64.
pub fn sum_block_grams<'a>(k: usize, blocks: impl Iterator<Item = &'a [f32]>) -> Vec<f32> {
    let mut total = vec![0.0f64; k * k];
    for b in blocks {
        for (t, v) in total.iter_mut().zip(b) {
            *t += f64::from(*v);
        }
    }
    total.into_iter().map(|v| v as f32).collect()
}

/// How each row's normal equations are solved.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Solver {
    /// A few conjugate-gradient steps, warm-started from the previous factors (the `implicit`
    /// library's default): `O(steps · (rank² + n·rank))` per row.
    ConjugateGradient {
        /// Steps per solve.
        steps: usize,
    },
    /// The exact solution by Cholesky factorisation of the `rank × rank` system:
    /// `O(n·rank² + rank³)` per row. For comparison and small ranks.
    #[default]
    Cholesky,
}

/// Everything one half-iteration needs besides a row's own interactions: the other side's
/// factors and their Gram matrix, this side's previous factors (the CG warm start), and the
/// hyper-parameters. Shared by every row's solve through an `Arc`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct AlsModelSide {
    /// The fixed side's factors `Y`, indexed by the other side's integer id.
    pub other: Arc<Factors>,
    /// `YᵀY`, `rank × rank`.
    pub gram: Arc<Factors>,
    /// This side's previous factors, indexed by this side's integer id (warm start).
    pub previous: Arc<Factors>,
    /// Confidence scale: `c = 1 + alpha * w`. Stored as bits for `Eq`/`Hash`.
    pub alpha_bits: u32,
    /// Regularisation λ, as bits.
    pub lambda_bits: u32,
    /// Scale λ by the row's interaction count (ALS-WR, as Spark does).
    pub weighted_lambda: bool,
    /// How each row is solved.
    pub solver: Solver,
    /// Explicit ratings instead of implicit feedback: minimise `Σ_observed (r − x·y)² + λ‖x‖²`
    /// with the weights as ratings `r`; unobserved pairs do not count (no `YᵀY` term).
    pub explicit: bool,
}

/// One observed interaction as the equations see it: the offset of its `y` in the other
/// side's values, its coefficient `a` in `A = … + Σ a y yᵀ`, and `β` in `b = Σ β y`.
/// Implicit: `a = c − 1 = alpha·w`, `β = c`; explicit: `a = 1`, `β = r`.
type Observed = (usize, f32, f32);

/// Columns of `A v` accumulated in registers at once (four AVX-512 registers).
const OUT_BLOCK: usize = 64;

/// Reusable buffers of one row solve (no allocation per row).
#[derive(Debug, Default)]
pub struct SolveScratch {
    observed: Vec<Observed>,
    r: Vec<f32>,
    p: Vec<f32>,
    ap: Vec<f32>,
    b: Vec<f32>,
    a: Vec<f32>,
    t: Vec<f32>,
}

impl AlsModelSide {
    /// Confidence scale alpha.
    pub fn alpha(&self) -> f32 {
        f32::from_bits(self.alpha_bits)
    }

    /// Regularisation lambda.
    pub fn lambda(&self) -> f32 {
        f32::from_bits(self.lambda_bits)
    }

    /// Solves one row's normal equations into `x`, which holds the warm start on entry (the
    /// previous factors; only conjugate gradient uses it). `items` are indices into `other`,
    /// `weights` the raw interaction weights; indices outside `other` are ignored. Returns the
    /// row's share of the loss at the new `x` (as [`Self::row_loss`] computes it, from the
    /// solver's own residual instead of another pass).
    ///
    /// Runs under `pulp`'s run-time dispatch, so the dot products and updates are vectorised
    /// for the machine's widest instruction set (AVX-512 where there is one).
    pub fn solve(
        &self,
        x: &mut [f32],
        items: &[i32],
        weights: &[f32],
        scratch: &mut SolveScratch,
    ) -> f64 {
        pulp::Arch::new().dispatch(SolveRow {
            side: self,
            x,
            items,
            weights,
            scratch,
        })
    }

    /// The row's share of the implicit-ALS loss at `x`:
    /// `xᵀ(YᵀY)x + λ‖x‖² + Σ_observed [c_i (1 − y_i·x)² − (y_i·x)²]`, i.e. the confidence-weighted
    /// squared error over *all* of the other side (unobserved pairs have preference 0 and
    /// confidence 1, which `xᵀ(YᵀY)x` covers) plus this row's regularisation. Summed over every
    /// row, plus the other side's regularisation, it is the loss ALS minimises.
    ///
    /// In explicit mode: `Σ_observed (r_i − y_i·x)² + λ‖x‖²`.
    pub fn row_loss(&self, x: &[f32], items: &[i32], weights: &[f32]) -> f64 {
        let k = x.len();
        if k != self.other.rank() || self.gram.values().len() != k * k {
            return 0.0;
        }
        let mut observed = Vec::new();
        let (lambda, constant) = self.observe(items, weights, &mut observed);
        let (gram, y) = (self.gram.values(), self.other.values());
        let mut loss = constant + f64::from(lambda) * f64::from(dot(x, x));
        if !self.explicit {
            for a in 0..k {
                loss += f64::from(x[a]) * f64::from(dot(&gram[a * k..(a + 1) * k], x));
            }
        }
        // Each observed term is a·s² − 2β·s + γ: c(1 − s)² − s² implicit, (r − s)² explicit.
        for &(offset, a, beta) in &observed {
            let s = f64::from(dot(&y[offset..offset + k], x));
            loss += f64::from(a) * s * s - 2.0 * f64::from(beta) * s;
        }
        loss
    }

    /// The row's observed interactions ([`Observed`]), its λ, and the constant of its loss
    /// (`Σ γ`: `Σ c` implicit, `Σ r²` explicit).
    ///
    /// (Copying the other side's rows into a contiguous buffer first, so that the CG steps
    /// re-read them from cache, was measured: the copy cost what it saved, on medium data too.)
    #[inline(always)]
    fn observe(&self, items: &[i32], weights: &[f32], observed: &mut Vec<Observed>) -> (f32, f64) {
        let (k, rows, alpha) = (self.other.rank(), self.other.rows(), self.alpha());
        let mut constant = 0.0f64;
        observed.clear();
        for (&i, &w) in items.iter().zip(weights) {
            let Some(i) = usize::try_from(i).ok().filter(|&i| i < rows) else {
                continue;
            };
            let offset = i * k;
            if self.explicit {
                constant += f64::from(w) * f64::from(w);
                observed.push((offset, 1.0, w));
            } else {
                constant += 1.0 + f64::from(alpha * w);
                observed.push((offset, alpha * w, 1.0 + alpha * w));
            }
        }
        let lambda = if self.weighted_lambda {
            self.lambda() * observed.len().max(1) as f32
        } else {
            self.lambda()
        };
        (lambda, constant)
    }

    /// `out = A v = (YᵀY + λI + Σ a_i y_i y_iᵀ) v` (no `YᵀY` in explicit mode); `t` is
    /// scratch for the `a_i (y_i·v)`.
    ///
    /// `out` is built [`OUT_BLOCK`] columns at a time in a local accumulator that stays in
    /// registers, from `YᵀY`'s rows scaled by `v` (it is symmetric, so no horizontal sums) and
    /// the `y_i` scaled by `t_i`; updating `out` in memory once per row and per interaction
    /// cost a load and a store for every multiply-add.
    #[inline(always)]
    fn apply(
        &self,
        lambda: f32,
        (observed, y): (&[Observed], &[f32]),
        t: &mut Vec<f32>,
        v: &[f32],
        out: &mut [f32],
    ) {
        let k = v.len();
        // A plain loop, not a closure: closures are not inlined into pulp's target-feature
        // context, so a `dot` inside one would be compiled for the baseline instruction set.
        t.clear();
        for &(offset, a, _) in observed {
            t.push(a * dot(&y[offset..offset + k], v));
        }
        let mut start = 0;
        while start < k {
            let width = (k - start).min(OUT_BLOCK);
            match width {
                64 => self.apply_block::<64>(lambda, (observed, y), t, v, start, out),
                32 => self.apply_block::<32>(lambda, (observed, y), t, v, start, out),
                16 => self.apply_block::<16>(lambda, (observed, y), t, v, start, out),
                8 => self.apply_block::<8>(lambda, (observed, y), t, v, start, out),
                _ => self.apply_block::<1>(lambda, (observed, y), t, v, start, out),
            }
            start += if width >= 8 && width.is_power_of_two() {
                width
            } else {
                1
            };
        }
    }

    /// Columns `start..start + W` of [`Self::apply`].
    #[inline(always)]
    fn apply_block<const W: usize>(
        &self,
        lambda: f32,
        (observed, y): (&[Observed], &[f32]),
        t: &[f32],
        v: &[f32],
        start: usize,
        out: &mut [f32],
    ) {
        let k = v.len();
        let gram = self.gram.values();
        let mut acc = [0.0f32; W];
        for (j, a) in acc.iter_mut().enumerate() {
            *a = lambda * v[start + j];
        }
        if !self.explicit {
            for (a, &va) in v.iter().enumerate() {
                if let Ok(row) = <&[f32; W]>::try_from(&gram[a * k + start..a * k + start + W]) {
                    for j in 0..W {
                        acc[j] += va * row[j];
                    }
                }
            }
        }
        for (&(offset, _, _), &ti) in observed.iter().zip(t) {
            if let Ok(yi) = <&[f32; W]>::try_from(&y[offset + start..offset + start + W]) {
                for j in 0..W {
                    acc[j] += ti * yi[j];
                }
            }
        }
        out[start..start + W].copy_from_slice(&acc);
    }

    #[inline(always)]
    fn conjugate_gradient(
        &self,
        steps: usize,
        x: &mut [f32],
        items: &[i32],
        weights: &[f32],
        s: &mut SolveScratch,
    ) -> f64 {
        let k = x.len();
        let (lambda, constant) = self.observe(items, weights, &mut s.observed);
        let y = self.other.values();
        self.right_hand_side(k, (&s.observed, y), &mut s.b);
        s.r.resize(k, 0.0);
        s.p.resize(k, 0.0);
        s.ap.resize(k, 0.0);
        // r = b − A x
        self.apply(lambda, (&s.observed, y), &mut s.t, x, &mut s.r);
        for (ri, bi) in s.r.iter_mut().zip(&s.b) {
            *ri = bi - *ri;
        }
        s.p.copy_from_slice(&s.r);
        let mut rs_old = dot(&s.r, &s.r);
        for _ in 0..steps {
            if rs_old < 1e-20 {
                break;
            }
            self.apply(lambda, (&s.observed, y), &mut s.t, &s.p, &mut s.ap);
            let denom = dot(&s.p, &s.ap);
            if denom <= 0.0 || !denom.is_finite() {
                break;
            }
            let step = rs_old / denom;
            axpy(step, &s.p, x);
            axpy(-step, &s.ap, &mut s.r);
            let rs_new = dot(&s.r, &s.r);
            let beta = rs_new / rs_old;
            for (pi, ri) in s.p.iter_mut().zip(&s.r) {
                *pi = ri + beta * *pi;
            }
            rs_old = rs_new;
        }
        // loss = xᵀAx − 2bᵀx + Σγ and Ax = b − r, so loss = Σγ − xᵀ(b + r): two dot products
        // with the residual CG already keeps.
        constant - f64::from(dot(x, &s.b)) - f64::from(dot(x, &s.r))
    }

    /// `b = Σ β_i y_i` into `b`.
    #[inline(always)]
    fn right_hand_side(&self, k: usize, (observed, y): (&[Observed], &[f32]), b: &mut Vec<f32>) {
        b.clear();
        b.resize(k, 0.0);
        for &(offset, _, beta) in observed {
            axpy(beta, &y[offset..offset + k], b);
        }
    }

    /// Builds the full system and solves it by Cholesky factorisation (`A = L·Lᵀ`). The system
    /// is symmetric positive definite whenever λ > 0; if rounding makes it not so, the previous
    /// factors are kept.
    #[inline(always)]
    fn cholesky(&self, x: &mut [f32], items: &[i32], weights: &[f32], s: &mut SolveScratch) -> f64 {
        let k = x.len();
        let (lambda, constant) = self.observe(items, weights, &mut s.observed);
        let y = self.other.values();
        self.right_hand_side(k, (&s.observed, y), &mut s.b);
        s.a.clear();
        if self.explicit {
            s.a.resize(k * k, 0.0);
        } else {
            s.a.extend_from_slice(self.gram.values());
        }
        for a in 0..k {
            s.a[a * k + a] += lambda;
        }
        for &(offset, cw, _) in &s.observed {
            let yi = &y[offset..offset + k];
            for a in 0..k {
                axpy(cw * yi[a], yi, &mut s.a[a * k..(a + 1) * k]);
            }
        }
        // A = L Lᵀ, then L z = b and Lᵀ x = z (nalgebra's dense Cholesky).
        let system = nalgebra::DMatrix::from_row_slice(k, k, &s.a);
        let Some(factor) = system.cholesky() else {
            return self.row_loss(x, items, weights);
        };
        let solution = factor.solve(&nalgebra::DVector::from_column_slice(&s.b));
        if solution.iter().any(|v| !v.is_finite()) {
            return self.row_loss(x, items, weights);
        }
        x.copy_from_slice(solution.as_slice());
        // The exact solution has A x = b, so the loss is Σγ − xᵀb (see `conjugate_gradient`).
        constant - f64::from(dot(x, &s.b))
    }
}

/// One row solve as a [`pulp::WithSimd`] operation, so that the inlined kernels are compiled
/// for the instruction set pulp detects at run time.
struct SolveRow<'a> {
    side: &'a AlsModelSide,
    x: &'a mut [f32],
    items: &'a [i32],
    weights: &'a [f32],
    scratch: &'a mut SolveScratch,
}

impl pulp::WithSimd for SolveRow<'_> {
    type Output = f64;

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) -> f64 {
        let Self {
            side,
            x,
            items,
            weights,
            scratch,
        } = self;
        if x.len() != side.other.rank() || side.gram.values().len() != x.len() * x.len() {
            return 0.0;
        }
        match side.solver {
            Solver::ConjugateGradient { steps } => {
                side.conjugate_gradient(steps, x, items, weights, scratch)
            }
            Solver::Cholesky => side.cholesky(x, items, weights, scratch),
        }
    }
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "tests fail by panicking")]
mod tests {
    use super::*;

    /// Solves the same system densely by Gaussian elimination, for comparison.
    #[expect(
        clippy::needless_range_loop,
        reason = "matrix indices read clearer here"
    )]
    fn dense_solve(side: &AlsModelSide, items: &[i32], weights: &[f32]) -> Vec<f64> {
        let k = side.other.rank();
        let mut a = vec![vec![0.0f64; k + 1]; k];
        let gram = side.gram.values();
        for i in 0..k {
            for j in 0..k {
                if !side.explicit {
                    a[i][j] = f64::from(gram[i * k + j]);
                }
            }
            a[i][i] += f64::from(side.lambda());
        }
        for (&it, &w) in items.iter().zip(weights) {
            let y = side.other.row(it as usize);
            // (coefficient of y yᵀ, coefficient of y in b)
            let (coef, rhs) = if side.explicit {
                (1.0, f64::from(w))
            } else {
                let c = 1.0 + f64::from(side.alpha() * w);
                (c - 1.0, c)
            };
            for i in 0..k {
                for j in 0..k {
                    a[i][j] += coef * f64::from(y[i]) * f64::from(y[j]);
                }
                a[i][k] += rhs * f64::from(y[i]);
            }
        }
        for col in 0..k {
            let piv = (col..k)
                .max_by(|&x, &y| a[x][col].abs().total_cmp(&a[y][col].abs()))
                .unwrap();
            a.swap(col, piv);
            for row in 0..k {
                if row != col {
                    let f = a[row][col] / a[col][col];
                    for c in col..=k {
                        a[row][c] -= f * a[col][c];
                    }
                }
            }
        }
        (0..k).map(|i| a[i][k] / a[i][i]).collect()
    }

    fn side(solver: Solver, weighted_lambda: bool) -> AlsModelSide {
        let rank = 4;
        let values: Vec<f32> = (0..6 * rank)
            .map(|i| ((i * 37 % 11) as f32 - 5.0) / 10.0)
            .collect();
        let other = Factors::new(6, rank, values).unwrap();
        let gram = Factors::new(rank, rank, other.gram()).unwrap();
        AlsModelSide {
            other: Arc::new(other),
            gram: Arc::new(gram),
            previous: Arc::new(Factors::zeros(1, rank)),
            alpha_bits: 2.0f32.to_bits(),
            lambda_bits: 0.1f32.to_bits(),
            weighted_lambda,
            solver,
            explicit: false,
        }
    }

    #[test]
    fn both_solvers_match_a_dense_reference_solve() {
        for solver in [Solver::ConjugateGradient { steps: 4 }, Solver::Cholesky] {
            let side = side(solver, false);
            let (items, weights) = ([0, 2, 5], [1.0, 3.0, 5.0]);
            let mut x = vec![0.0f32; 4];
            let _ = side.solve(&mut x, &items, &weights, &mut SolveScratch::default());
            let exact = dense_solve(&side, &items, &weights);
            for (a, b) in x.iter().zip(&exact) {
                assert!(
                    (f64::from(*a) - b).abs() < 1e-3,
                    "{solver:?}: {x:?} vs exact {exact:?}"
                );
            }
        }
    }

    #[test]
    fn warm_started_conjugate_gradient_approaches_the_exact_solution() {
        let exact_side = side(Solver::Cholesky, false);
        let cg = side(Solver::ConjugateGradient { steps: 2 }, false);
        let (items, weights) = ([1, 3, 4], [5.0, 1.0, 1.0]);
        let mut exact = vec![0.0f32; 4];
        exact_side.solve(&mut exact, &items, &weights, &mut SolveScratch::default());
        let mut x = vec![0.0f32; 4];
        let mut errors = vec![];
        for _ in 0..6 {
            cg.solve(&mut x, &items, &weights, &mut SolveScratch::default());
            errors.push(
                x.iter()
                    .zip(&exact)
                    .map(|(a, b)| (a - b).abs())
                    .sum::<f32>(),
            );
        }
        assert!(errors.windows(2).all(|w| w[1] <= w[0]), "{errors:?}");
        assert!(errors[5] < 0.1 * errors[0], "{errors:?}");
    }

    #[test]
    fn the_loss_from_the_residual_equals_the_direct_loss() {
        for solver in [Solver::ConjugateGradient { steps: 4 }, Solver::Cholesky] {
            let side = side(solver, true);
            let (items, weights) = ([0, 2, 5, 1], [1.0, 3.0, 5.0, 2.0]);
            let mut x = vec![0.01f32; 4];
            let loss = side.solve(&mut x, &items, &weights, &mut SolveScratch::default());
            let direct = side.row_loss(&x, &items, &weights);
            assert!(
                (loss - direct).abs() < 1e-4 * direct.abs().max(1.0),
                "{solver:?}: {loss} vs {direct}"
            );
        }
    }

    #[test]
    fn explicit_ratings_solve_exactly_and_report_their_squared_error() {
        for solver in [Solver::ConjugateGradient { steps: 4 }, Solver::Cholesky] {
            let side = AlsModelSide {
                explicit: true,
                ..side(solver, false)
            };
            let (items, ratings) = ([0, 1, 2, 3, 5], [4.0, 1.0, 5.0, 3.0, 2.0]);
            let mut x = vec![0.0f32; 4];
            let loss = side.solve(&mut x, &items, &ratings, &mut SolveScratch::default());
            let exact = dense_solve(&side, &items, &ratings);
            for (a, b) in x.iter().zip(&exact) {
                assert!(
                    (f64::from(*a) - b).abs() < 1e-3,
                    "{solver:?}: {x:?} vs {exact:?}"
                );
            }
            let direct = side.row_loss(&x, &items, &ratings);
            let by_hand: f64 = items
                .iter()
                .zip(&ratings)
                .map(|(&i, &r)| {
                    let s = f64::from(dot(side.other.row(i as usize), &x));
                    (f64::from(r) - s).powi(2)
                })
                .sum::<f64>()
                + f64::from(side.lambda()) * f64::from(dot(&x, &x));
            assert!((direct - by_hand).abs() < 1e-3, "{direct} vs {by_hand}");
            assert!(
                (loss - by_hand).abs() < 1e-3,
                "{solver:?}: {loss} vs {by_hand}"
            );
        }
    }

    #[test]
    fn gram_is_symmetric_and_correct() {
        let f = Factors::new(2, 2, vec![1.0, 2.0, 3.0, 4.0]).unwrap();
        assert_eq!(f.gram(), vec![10.0, 14.0, 14.0, 20.0]);
    }
}
