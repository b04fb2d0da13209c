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

use super::{axpy, dot};

/// A dense `rows × rank` factor matrix, row-major, f32.
#[derive(Debug, Clone, Default)]
pub struct Factors {
    rows: usize,
    rank: usize,
    values: Vec<f32>,
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

impl Hash for Factors {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.rows.hash(state);
        self.rank.hash(state);
        super::hash_f32s(&self.values, state);
    }
}

impl Factors {
    /// Builds a matrix from row-major values; `None` when the sizes do not match.
    pub fn new(rows: usize, rank: usize, values: Vec<f32>) -> Option<Self> {
        (rank > 0 && values.len() == rows * rank).then_some(Self { rows, rank, values })
    }

    /// A `rows × rank` matrix of zeros.
    pub fn zeros(rows: usize, rank: usize) -> Self {
        Self {
            rows,
            rank,
            values: vec![0.0; rows * rank],
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

    /// Row `r`, mutable (empty when out of range).
    pub fn row_mut(&mut self, r: usize) -> &mut [f32] {
        let rank = self.rank;
        self.values
            .get_mut(r * rank..(r + 1) * rank)
            .unwrap_or(&mut [])
    }

    /// Row-major values.
    pub fn values(&self) -> &[f32] {
        &self.values
    }

    /// `YᵀY` (`rank × rank`, row-major), accumulated in f64 for accuracy.
    pub fn gram(&self) -> Vec<f32> {
        let k = self.rank;
        let mut g = vec![0.0f64; k * k];
        for r in 0..self.rows {
            let y = self.row(r);
            for a in 0..k {
                let ya = f64::from(y[a]);
                if ya == 0.0 {
                    continue;
                }
                for b in a..k {
                    g[a * k + b] += ya * f64::from(y[b]);
                }
            }
        }
        for a in 0..k {
            for b in 0..a {
                g[a * k + b] = g[b * k + a];
            }
        }
        g.into_iter().map(|v| v as f32).collect()
    }
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
    /// Conjugate-gradient steps per solve.
    pub cg_steps: usize,
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

    /// Solves one row's normal equations by conjugate gradient, warm-started from `x`.
    /// `items` are indices into `other`; `weights` the raw interaction weights. Indices outside
    /// `other` are ignored.
    pub fn solve(&self, x: &mut [f32], items: &[i32], weights: &[f32]) {
        let k = self.other.rank();
        let observed: Vec<(&[f32], f32)> = items
            .iter()
            .zip(weights)
            .filter_map(|(&i, &w)| {
                let y = self.other.row(usize::try_from(i).ok()?);
                (y.len() == k).then_some((y, w))
            })
            .collect();
        let lambda = if self.weighted_lambda {
            self.lambda() * observed.len().max(1) as f32
        } else {
            self.lambda()
        };
        let alpha = self.alpha();
        let gram = self.gram.values();
        // A·v = YᵀY v + λ v + Σ (c_i − 1)(y_i·v) y_i
        let apply = |v: &[f32], out: &mut [f32]| {
            for a in 0..k {
                out[a] = dot(&gram[a * k..(a + 1) * k], v) + lambda * v[a];
            }
            for &(y, w) in &observed {
                axpy(alpha * w * dot(y, v), y, out);
            }
        };
        // r = b − A x with b = Σ c_i y_i
        let mut r = vec![0.0f32; k];
        apply(x, &mut r);
        for v in &mut r {
            *v = -*v;
        }
        for &(y, w) in &observed {
            axpy(1.0 + alpha * w, y, &mut r);
        }
        let mut p = r.clone();
        let mut ap = vec![0.0f32; k];
        let mut rs_old = dot(&r, &r);
        for _ in 0..self.cg_steps {
            if rs_old < 1e-20 {
                break;
            }
            apply(&p, &mut ap);
            let denom = dot(&p, &ap);
            if denom <= 0.0 || !denom.is_finite() {
                break;
            }
            let step = rs_old / denom;
            axpy(step, &p, x);
            axpy(-step, &ap, &mut r);
            let rs_new = dot(&r, &r);
            let beta = rs_new / rs_old;
            for (pi, ri) in p.iter_mut().zip(&r) {
                *pi = ri + beta * *pi;
            }
            rs_old = rs_new;
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic, reason = "tests fail by panicking")]
mod tests {
    use super::*;

    /// Solves the same system densely by Gaussian elimination, for comparison.
    #[allow(
        clippy::needless_range_loop,
        reason = "matrix indices read clearer here"
    )]
    fn dense_solve(side: &AlsModelSide, items: &[i32], weights: &[f32]) -> Vec<f64> {
        let k = side.other.rank();
        let mut a = vec![vec![0.0f64; k + 1]; k];
        let gram = side.gram.values();
        for i in 0..k {
            for j in 0..k {
                a[i][j] = f64::from(gram[i * k + j]);
            }
            a[i][i] += f64::from(side.lambda());
        }
        for (&it, &w) in items.iter().zip(weights) {
            let y = side.other.row(it as usize);
            let c = 1.0 + f64::from(side.alpha() * w);
            for i in 0..k {
                for j in 0..k {
                    a[i][j] += (c - 1.0) * f64::from(y[i]) * f64::from(y[j]);
                }
                a[i][k] += c * f64::from(y[i]);
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

    #[test]
    fn conjugate_gradient_converges_to_the_exact_solution() {
        let rank = 4;
        let values: Vec<f32> = (0..6 * rank)
            .map(|i| ((i * 37 % 11) as f32 - 5.0) / 10.0)
            .collect();
        let other = Factors::new(6, rank, values).unwrap();
        let gram = Factors::new(rank, rank, other.gram()).unwrap();
        let side = AlsModelSide {
            other: Arc::new(other),
            gram: Arc::new(gram),
            previous: Arc::new(Factors::zeros(1, rank)),
            alpha_bits: 2.0f32.to_bits(),
            lambda_bits: 0.1f32.to_bits(),
            weighted_lambda: false,
            cg_steps: rank,
        };
        let (items, weights) = ([0, 2, 5], [1.0, 3.0, 5.0]);
        let mut x = vec![0.0f32; rank];
        side.solve(&mut x, &items, &weights);
        let exact = dense_solve(&side, &items, &weights);
        for (a, b) in x.iter().zip(&exact) {
            assert!(
                (f64::from(*a) - b).abs() < 1e-3,
                "cg {x:?} vs exact {exact:?}"
            );
        }
    }

    #[test]
    fn gram_is_symmetric_and_correct() {
        let f = Factors::new(2, 2, vec![1.0, 2.0, 3.0, 4.0]).unwrap();
        assert_eq!(f.gram(), vec![10.0, 14.0, 14.0, 20.0]);
    }
}
