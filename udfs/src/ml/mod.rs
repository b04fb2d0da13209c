//! Numeric kernels and the model state carried by the model UDFs.
//!
//! Models are plain row-major `Vec`s wrapped in `Arc`, so a function instance that carries one is
//! cheap to clone into every partition's accumulator. They implement `Eq` and `Hash` bitwise,
//! which DataFusion needs to compare function instances inside plans.

pub mod als;
pub mod kmeans;

pub use als::{AlsModelSide, Factors};
pub use kmeans::Centroids;

/// Dot product of two equally long slices.
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// `y += alpha * x`.
#[inline]
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
