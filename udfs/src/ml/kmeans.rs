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
            let dist: f64 = self
                .centroid(c)
                .iter()
                .zip(point)
                .map(|(a, b)| (a - b) * (a - b))
                .sum();
            if dist < best.1 {
                best = (c, dist);
            }
        }
        best
    }
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
}
