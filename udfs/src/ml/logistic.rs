//! L2-regularised logistic regression by Newton's method (IRLS), split so that the data pass
//! can run anywhere: [`NewtonStats`] gathers one pass's gradient and Hessian row by row and
//! merges with other partitions' by addition, and [`newton_step`] takes the step on the
//! driver from the merged sums (a (d+1)×(d+1) system, solved by Cholesky). Only the
//! coefficients and these sums ever leave a partition.
//!
//! The objective, over rows (x, y, w) with y ∈ {0, 1} and weight w ≥ 0:
//! `L(β, b) = Σ w·[log(1 + e^z) − y·z] + (λ/2)·‖β‖²`, with `z = β·x + b`; the intercept `b`
//! is not penalised. Its gradient is `Σ w·(p − y)·[x, 1] + λ·[β, 0]` and its Hessian
//! `Σ w·p·(1 − p)·[x, 1][x, 1]ᵀ + λ·diag(1, …, 1, 0)`, with `p = σ(z)`: positive definite for
//! λ > 0, so the step exists even when the classes are perfectly separable.
//!
//! Every row's terms are rounded to the accumulation grain of [`quantize`] before they are
//! added, as K-Means does: the sums are then exact in any order, so a fit is bit-identical
//! however its rows are split across partitions and executors (while the sums stay below 2²⁹).

use crate::ml::kmeans::quantize;

/// Coefficients of a fitted (or current) model: `β` and the intercept `b`.
#[derive(Debug, Clone, PartialEq)]
pub struct LogisticModel {
    /// One coefficient per feature.
    pub coefficients: Vec<f64>,
    /// The intercept.
    pub intercept: f64,
}

impl LogisticModel {
    /// The all-zero model over `features` features (every probability 0.5).
    pub fn zeros(features: usize) -> Self {
        Self {
            coefficients: vec![0.0; features],
            intercept: 0.0,
        }
    }

    /// `β·x + b`.
    pub fn logit(&self, x: &[f64]) -> f64 {
        self.intercept
            + self
                .coefficients
                .iter()
                .zip(x)
                .map(|(c, v)| c * v)
                .sum::<f64>()
    }

    /// `σ(β·x + b)`, the probability of the positive class.
    pub fn probability(&self, x: &[f64]) -> f64 {
        sigmoid(self.logit(x))
    }
}

/// The logistic function, without overflow for large |z|.
pub fn sigmoid(z: f64) -> f64 {
    if z >= 0.0 {
        1.0 / (1.0 + (-z).exp())
    } else {
        let e = z.exp();
        e / (1.0 + e)
    }
}

/// `log(1 + e^z)`, without overflow for large z.
fn softplus(z: f64) -> f64 {
    if z > 0.0 {
        z + (-z).exp().ln_1p()
    } else {
        z.exp().ln_1p()
    }
}

/// One data pass's sums at a given model: the unpenalised loss, gradient and Hessian.
#[derive(Debug, Clone, PartialEq)]
pub struct NewtonStats {
    /// Features (the sums are over d + 1 columns: the features, then the intercept's 1).
    pub features: usize,
    /// Rows added.
    pub rows: u64,
    /// Σw.
    pub weight: f64,
    /// Σw·[log(1 + e^z) − y·z] (the log loss times the weight).
    pub loss: f64,
    /// Σw·(p − y)·[x, 1], d + 1 values.
    pub gradient: Vec<f64>,
    /// Σw·p·(1 − p)·[x, 1][x, 1]ᵀ, (d + 1)² values, row-major.
    pub hessian: Vec<f64>,
}

impl NewtonStats {
    /// Empty sums over `features` features.
    pub fn new(features: usize) -> Self {
        let n = features + 1;
        Self {
            features,
            rows: 0,
            weight: 0.0,
            loss: 0.0,
            gradient: vec![0.0; n],
            hessian: vec![0.0; n * n],
        }
    }

    /// Adds one row: features `x`, label `y` (0 or 1), weight `w`, at `model`.
    pub fn add(&mut self, model: &LogisticModel, x: &[f64], y: f64, w: f64) {
        let z = model.logit(x);
        let p = sigmoid(z);
        let d = self.features;
        let n = d + 1;
        self.rows += 1;
        self.weight += quantize(w);
        self.loss += quantize(w * (softplus(z) - y * z));
        let residual = w * (p - y);
        let curvature = w * p * (1.0 - p);
        for (g, v) in self.gradient.iter_mut().zip(x) {
            *g += quantize(residual * v);
        }
        self.gradient[d] += quantize(residual);
        // The upper triangle only; [`NewtonStats::symmetric_hessian`] mirrors it.
        for a in 0..n {
            let xa = curvature * column(x, a, d);
            if xa == 0.0 {
                continue;
            }
            let row = &mut self.hessian[a * n + a..(a + 1) * n];
            let (features, intercept) = row.split_at_mut(d - a.min(d));
            for (h, v) in features.iter_mut().zip(&x[a.min(d)..]) {
                *h += quantize(xa * v);
            }
            if let Some(h) = intercept.first_mut() {
                *h += quantize(xa);
            }
        }
    }

    /// The sums as one flat vector: `[rows, weight, loss, gradient (d + 1), Hessian ((d + 1)²)]`,
    /// the partial state of `logistic_step`.
    pub fn to_flat(&self) -> Vec<f64> {
        let mut flat = Vec::with_capacity(Self::flat_len(self.features));
        flat.extend([self.rows as f64, self.weight, self.loss]);
        flat.extend(&self.gradient);
        flat.extend(&self.hessian);
        flat
    }

    /// Length of [`NewtonStats::to_flat`] for `features` features.
    pub fn flat_len(features: usize) -> usize {
        3 + (features + 1) + (features + 1) * (features + 1)
    }

    /// Reads what [`NewtonStats::to_flat`] wrote; `None` when the length does not fit.
    pub fn from_flat(flat: &[f64], features: usize) -> Option<Self> {
        if flat.len() != Self::flat_len(features) {
            return None;
        }
        let n = features + 1;
        Some(Self {
            features,
            rows: flat[0] as u64,
            weight: flat[1],
            loss: flat[2],
            gradient: flat[3..3 + n].to_vec(),
            hessian: flat[3 + n..].to_vec(),
        })
    }

    /// Adds another partition's sums (over the same model and features).
    pub fn merge(&mut self, other: &NewtonStats) {
        self.rows += other.rows;
        self.weight += other.weight;
        self.loss += other.loss;
        for (a, b) in self.gradient.iter_mut().zip(&other.gradient) {
            *a += b;
        }
        for (a, b) in self.hessian.iter_mut().zip(&other.hessian) {
            *a += b;
        }
    }

    /// The full Hessian, its lower triangle filled from the upper.
    fn symmetric_hessian(&self) -> Vec<f64> {
        let n = self.features + 1;
        let mut h = self.hessian.clone();
        for a in 0..n {
            for b in 0..a {
                h[a * n + b] = h[b * n + a];
            }
        }
        h
    }
}

/// Column `a` of the design row `[x, 1]`.
#[inline]
fn column(x: &[f64], a: usize, features: usize) -> f64 {
    if a == features { 1.0 } else { x[a] }
}

/// What one Newton step did.
#[derive(Debug, Clone, PartialEq)]
pub struct NewtonStep {
    /// The model after the step.
    pub model: LogisticModel,
    /// The penalised objective at the model the stats were taken at.
    pub objective: f64,
    /// The largest absolute change of a coefficient or the intercept.
    pub max_change: f64,
}

/// The Newton step from `model`, at which `stats` were gathered, with L2 strength `l2`:
/// solves `(H + λ·D)·Δ = −(g + λ·D·[β, b])` by Cholesky (D = diag(1, …, 1, 0)). `None` when the
/// system cannot be factorised (no rows, or λ = 0 with a singular Hessian).
pub fn newton_step(model: &LogisticModel, stats: &NewtonStats, l2: f64) -> Option<NewtonStep> {
    let d = stats.features;
    let n = d + 1;
    if model.coefficients.len() != d || stats.rows == 0 {
        return None;
    }
    let mut h = stats.symmetric_hessian();
    let mut g = stats.gradient.clone();
    for (a, beta) in model.coefficients.iter().enumerate() {
        h[a * n + a] += l2;
        g[a] += l2 * beta;
    }
    let penalty = 0.5 * l2 * model.coefficients.iter().map(|b| b * b).sum::<f64>();
    let system = nalgebra::DMatrix::from_row_slice(n, n, &h);
    let factor = system.cholesky()?;
    let rhs = nalgebra::DVector::from_iterator(n, g.iter().map(|v| -v));
    let delta = factor.solve(&rhs);
    if delta.iter().any(|v| !v.is_finite()) {
        return None;
    }
    let coefficients = model
        .coefficients
        .iter()
        .zip(delta.iter())
        .map(|(b, s)| b + s)
        .collect();
    Some(NewtonStep {
        model: LogisticModel {
            coefficients,
            intercept: model.intercept + delta[d],
        },
        objective: stats.loss + penalty,
        max_change: delta.iter().fold(0.0f64, |m, v| m.max(v.abs())),
    })
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "tests fail by panicking")]
mod tests {
    use super::*;

    /// Rows of a known model, labels drawn deterministically from its probabilities.
    fn rows(truth: &LogisticModel, n: usize) -> Vec<(Vec<f64>, f64)> {
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 11) as f64 / (1u64 << 53) as f64
        };
        (0..n)
            .map(|_| {
                let x = vec![next() * 4.0 - 2.0, next() * 2.0 - 1.0, next()];
                let y = f64::from(u8::from(next() < truth.probability(&x)));
                (x, y)
            })
            .collect()
    }

    fn fit(data: &[(Vec<f64>, f64)], l2: f64, partitions: usize) -> (LogisticModel, usize) {
        let mut model = LogisticModel::zeros(data[0].0.len());
        for iteration in 1..=50 {
            let mut total = NewtonStats::new(model.coefficients.len());
            for part in data.chunks(data.len().div_ceil(partitions)) {
                let mut stats = NewtonStats::new(model.coefficients.len());
                for (x, y) in part {
                    stats.add(&model, x, *y, 1.0);
                }
                total.merge(&stats);
            }
            let step = newton_step(&model, &total, l2).unwrap();
            model = step.model;
            if step.max_change < 1e-10 {
                return (model, iteration);
            }
        }
        (model, 50)
    }

    #[test]
    fn recovers_a_known_model_in_a_few_newton_steps() {
        let truth = LogisticModel {
            coefficients: vec![1.5, -2.0, 0.5],
            intercept: -0.3,
        };
        let data = rows(&truth, 20_000);
        let (model, iterations) = fit(&data, 1e-6, 1);
        assert!(iterations <= 12, "{iterations} iterations");
        for (got, want) in model.coefficients.iter().zip(&truth.coefficients) {
            assert!((got - want).abs() < 0.15, "{model:?}");
        }
        assert!((model.intercept - truth.intercept).abs() < 0.15);
    }

    #[test]
    fn the_optimum_has_a_zero_penalised_gradient_and_partitions_do_not_matter() {
        let truth = LogisticModel {
            coefficients: vec![0.8, 0.0, -1.2],
            intercept: 0.4,
        };
        let data = rows(&truth, 3_000);
        let (one, _) = fit(&data, 2.0, 1);
        let (seven, _) = fit(&data, 2.0, 7);
        for (a, b) in one.coefficients.iter().zip(&seven.coefficients) {
            assert!((a - b).abs() < 1e-9);
        }
        let mut stats = NewtonStats::new(3);
        for (x, y) in &data {
            stats.add(&one, x, *y, 1.0);
        }
        for (a, beta) in one.coefficients.iter().enumerate() {
            assert!((stats.gradient[a] + 2.0 * beta).abs() < 1e-6, "{stats:?}");
        }
        assert!(
            stats.gradient[3].abs() < 1e-6,
            "the intercept is not penalised"
        );
    }

    #[test]
    fn sums_are_bit_identical_in_any_order_and_survive_the_flat_state() {
        let truth = LogisticModel {
            coefficients: vec![0.7, -1.1, 2.0],
            intercept: 0.1,
        };
        let data = rows(&truth, 5_000);
        let at = LogisticModel {
            coefficients: vec![0.3, -0.2, 0.9],
            intercept: -0.4,
        };
        let sum = |rows: &mut dyn Iterator<Item = &(Vec<f64>, f64)>| {
            let mut s = NewtonStats::new(3);
            for (x, y) in rows {
                s.add(&at, x, *y, 1.5);
            }
            s
        };
        let forward = sum(&mut data.iter());
        let mut backward = sum(&mut data.iter().rev().skip(1).step_by(2));
        backward.merge(&sum(&mut data.iter().skip(1).step_by(2)));
        let parsed = NewtonStats::from_flat(&backward.to_flat(), 3).unwrap();
        assert_eq!(
            parsed, forward,
            "sums must not depend on the order of the rows"
        );
        assert!(NewtonStats::from_flat(&forward.to_flat(), 4).is_none());
    }

    #[test]
    fn separable_classes_converge_with_the_l2_term() {
        let data: Vec<(Vec<f64>, f64)> = (0..200)
            .map(|i| {
                let v = f64::from(i) / 100.0 - 1.0;
                (vec![v], f64::from(u8::from(v > 0.0)))
            })
            .collect();
        let (model, iterations) = fit(&data, 0.1, 2);
        assert!(iterations < 50, "did not converge");
        assert!(model.coefficients[0].is_finite() && model.coefficients[0] > 1.0);
        assert!(model.probability(&[0.9]) > 0.9 && model.probability(&[-0.9]) < 0.1);
    }

    #[test]
    fn no_rows_or_a_wrong_model_give_no_step() {
        assert!(newton_step(&LogisticModel::zeros(2), &NewtonStats::new(2), 1.0).is_none());
        let mut stats = NewtonStats::new(2);
        stats.add(&LogisticModel::zeros(2), &[1.0, 2.0], 1.0, 1.0);
        assert!(newton_step(&LogisticModel::zeros(3), &stats, 1.0).is_none());
    }

    #[test]
    fn sigmoid_and_softplus_do_not_overflow() {
        assert_eq!(sigmoid(1000.0), 1.0);
        assert_eq!(sigmoid(-1000.0), 0.0);
        assert!((softplus(1000.0) - 1000.0).abs() < 1e-9);
        assert!(softplus(-1000.0) >= 0.0);
    }
}
