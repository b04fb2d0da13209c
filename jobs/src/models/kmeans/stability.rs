//! How much to trust a partition without the truth: would the same data, sampled again, give
//! the same segments?
//!
//! A reproducible sample of the points is split in two halves; K-Means is fitted on each half
//! alone (here on the driver: k-means++ and Lloyd, the same restarts as the night's fit), and
//! every sampled point is labelled by both fits. The night's stability is the adjusted Rand
//! index between the two labellings (Lange et al. 2004; von Luxburg 2010): near 1 when the
//! segments are a property of the customers, near 0 when they are an accident of the sample or
//! of the start. Each segment's own stability is Hennig's (2007) clusterwise measure: the mean,
//! over the two half fits, of the best Jaccard overlap between the segment's sampled members and
//! any one cluster of that fit — a segment near 1 is found again, one below 0.5 dissolves.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use super::local::{self, PointSet};

/// The stability of one partition.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Stability {
    /// Adjusted Rand index between the fits on the two halves, over the whole sample.
    pub ari: f64,
    /// Per cluster of the partition (by centroid index): its mean best Jaccard overlap with the
    /// clusters of the two half fits.
    pub by_cluster: Vec<f64>,
    /// Points sampled (both halves).
    pub sample: usize,
}

/// The stability of the partition that `centres` (row-major, `k` of them) make of `points`.
/// Each half is fitted with `restarts` k-means++ starts of `iterations` Lloyd iterations, the
/// lowest potential winning. `None` when a half has fewer than `k` points.
pub fn stability(
    points: &PointSet,
    centres: &[f64],
    k: usize,
    restarts: usize,
    iterations: usize,
    seed: u64,
) -> Option<Stability> {
    let halves = split(points);
    let fits: Vec<Vec<f64>> = halves
        .iter()
        .enumerate()
        .map(|(h, half)| {
            fit(
                half,
                k,
                restarts,
                iterations,
                seed.wrapping_add(1000 * h as u64),
            )
        })
        .collect::<Option<_>>()?;
    let full = local::labels(points, centres);
    let labelled: Vec<Vec<usize>> = fits.iter().map(|c| local::labels(points, c)).collect();
    let by_cluster = (0..k)
        .map(|c| {
            labelled
                .iter()
                .map(|other| best_jaccard(&full, c, other, k))
                .sum::<f64>()
                / labelled.len() as f64
        })
        .collect();
    Some(Stability {
        ari: local::adjusted_rand_index(&labelled[0], &labelled[1]),
        by_cluster,
        sample: points.len(),
    })
}

/// The points in two halves: even and odd positions of the canonical (coordinate) order, so
/// that the split does not depend on the order a query returned the sample in.
fn split(points: &PointSet) -> [PointSet; 2] {
    let mut halves = [PointSet::default(), PointSet::default()];
    for (i, half) in halves.iter_mut().enumerate() {
        half.d = points.d;
        for p in (i..points.len()).step_by(2) {
            half.values.extend_from_slice(points.point(p));
            half.weights.push(points.weights[p]);
        }
    }
    halves
}

/// K-Means on a small point set: the best of `restarts` greedy k-means++ starts, each refined by
/// Lloyd; `None` when there are fewer than `k` distinct points to start from.
fn fit(
    points: &PointSet,
    k: usize,
    restarts: usize,
    iterations: usize,
    seed: u64,
) -> Option<Vec<f64>> {
    if points.weights.iter().filter(|w| **w > 0.0).count() < k {
        return None;
    }
    (0..restarts.max(1))
        .map(|r| {
            let mut rng = ChaCha8Rng::seed_from_u64(seed.wrapping_add(r as u64));
            let mut centres = local::greedy_kmeans_pp(points, k, &mut rng);
            local::local_lloyd(points, &mut centres, iterations);
            (local::potential(points, &centres), centres)
        })
        .min_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, centres)| centres)
}

/// The largest Jaccard overlap between cluster `c` of `labels` and any cluster of `other`.
fn best_jaccard(labels: &[usize], c: usize, other: &[usize], k: usize) -> f64 {
    let mut both = vec![0usize; k];
    let mut sizes = vec![0usize; k];
    let mut own = 0usize;
    for (&l, &o) in labels.iter().zip(other) {
        sizes[o] += 1;
        if l == c {
            own += 1;
            both[o] += 1;
        }
    }
    (0..k)
        .map(|j| {
            let union = own + sizes[j] - both[j];
            if union == 0 {
                0.0
            } else {
                both[j] as f64 / union as f64
            }
        })
        .fold(0.0, f64::max)
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "tests fail by panicking")]
mod tests {
    use super::*;

    /// `n` points around each of `centres` in 2-D, spread by `spread` (a reproducible jitter).
    fn blobs(centres: &[(f64, f64)], n: usize, spread: f64) -> PointSet {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let mut values = Vec::new();
        for &(x, y) in centres {
            for _ in 0..n {
                use rand::Rng;
                values.push(x + spread * (rng.random::<f64>() - 0.5));
                values.push(y + spread * (rng.random::<f64>() - 0.5));
            }
        }
        PointSet {
            d: 2,
            weights: vec![1.0; values.len() / 2],
            values,
        }
        .canonical()
    }

    #[test]
    fn separated_groups_are_stable() {
        let points = blobs(&[(0.0, 0.0), (10.0, 0.0), (0.0, 10.0)], 100, 1.0);
        let centres = [0.0, 0.0, 10.0, 0.0, 0.0, 10.0];
        let s = stability(&points, &centres, 3, 2, 20, 1).unwrap();
        assert!(s.ari > 0.99, "{s:?}");
        assert!(s.by_cluster.iter().all(|j| *j > 0.99), "{s:?}");
        assert_eq!(s.sample, 300);
    }

    #[test]
    fn a_continuum_cut_into_many_pieces_is_less_stable_than_real_groups() {
        // One uniform square cut into 6: the cuts move with the sample.
        let square = blobs(&[(0.0, 0.0)], 600, 10.0);
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let centres = local::greedy_kmeans_pp(&square, 6, &mut rng);
        let cut = stability(&square, &centres, 6, 1, 20, 1).unwrap();
        let groups = blobs(
            &[
                (0.0, 0.0),
                (10.0, 0.0),
                (0.0, 10.0),
                (10.0, 10.0),
                (20.0, 0.0),
                (20.0, 10.0),
            ],
            100,
            1.0,
        );
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mut centres = local::greedy_kmeans_pp(&groups, 6, &mut rng);
        local::local_lloyd(&groups, &mut centres, 20);
        let found = stability(&groups, &centres, 6, 1, 20, 1).unwrap();
        assert!(found.ari > 0.95, "{found:?}");
        assert!(cut.ari < found.ari - 0.1, "cut {cut:?} found {found:?}");
    }

    #[test]
    fn too_few_points_for_k_gives_none() {
        let points = blobs(&[(0.0, 0.0)], 5, 1.0);
        assert!(stability(&points, &[0.0, 0.0, 1.0, 1.0, 2.0, 2.0], 3, 1, 5, 1).is_none());
    }

    #[test]
    fn the_halves_interleave_and_cover_every_point() {
        let points = blobs(&[(0.0, 0.0)], 7, 1.0);
        let [a, b] = split(&points);
        assert_eq!((a.len(), b.len()), (4, 3));
        assert_eq!(a.point(1), points.point(2));
        assert_eq!(b.point(0), points.point(1));
    }
}
