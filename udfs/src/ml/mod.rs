//! Numeric kernels and the model state carried by the model UDFs.
//!
//! Models are plain row-major `Vec`s wrapped in `Arc`, so a function instance that carries one is
//! cheap to clone into every partition's accumulator. They implement `Eq` and `Hash` bitwise,
//! which DataFusion needs to compare function instances inside plans.

pub mod als;
pub mod kmeans;
pub mod layout;
pub mod logistic;

pub use als::{
    AlsModelSide, Factors, GRAM_BLOCK, SolveScratch, Solver, blocked_gram, sum_block_grams,
};
pub use kmeans::Centroids;

/// Lanes of the accumulators in [`dot`]: independent partial sums, so the compiler may keep
/// them in vector registers (floating-point addition is not reassociated otherwise).
const LANES: usize = 16;

/// Dot product of two equally long slices, summed in [`LANES`] independent lanes. Inlined, so
/// that inside a `pulp` dispatch it is compiled for the detected instruction set.
#[inline(always)]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0.0f32; LANES];
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for j in 0..LANES {
            acc[j] += x[j] * y[j];
        }
    }
    // Pairwise, halving the lanes: vector adds, where `acc.iter().sum()` would be a chain of
    // 16 dependent scalar additions (floating-point sums are not reassociated for us).
    let mut width = LANES / 2;
    while width > 0 {
        for j in 0..width {
            acc[j] += acc[j + width];
        }
        width /= 2;
    }
    acc[0] + tail
}

/// `y += alpha * x`.
#[inline(always)]
pub fn axpy(alpha: f32, x: &[f32], y: &mut [f32]) {
    for (yi, xi) in y.iter_mut().zip(x) {
        *yi += alpha * xi;
    }
}

/// Hashes a float slice by its bit patterns.
pub(crate) fn hash_f64s<H: std::hash::Hasher>(values: &[f64], state: &mut H) {
    use std::hash::Hash;
    values.len().hash(state);
    for v in values {
        v.to_bits().hash(state);
    }
}

/// Hashes a float slice by its bit patterns.
pub(crate) fn hash_f32s<H: std::hash::Hasher>(values: &[f32], state: &mut H) {
    use std::hash::Hash;
    values.len().hash(state);
    for v in values {
        v.to_bits().hash(state);
    }
}
