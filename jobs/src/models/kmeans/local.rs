//! The small, in-memory parts of K-Means: greedy k-means++ over a sample or over the k-means‖
//! candidates, a weighted Lloyd refinement of those candidates, and the silhouette score used
//! to choose k. All of them work on at most a few thousand points on the client; the passes over
//! the whole table are in [`super::fit`].

use persona_udfs::ml::kmeans::squared_distance;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// Row-major points of dimension `d`, with a weight each.
#[derive(Debug, Clone, Default)]
pub struct PointSet {
    /// Dimension.
    pub d: usize,
    /// `n × d` row-major coordinates.
    pub values: Vec<f64>,
    /// One weight per point (1 when the fit is unweighted).
    pub weights: Vec<f64>,
}

impl PointSet {
    /// Number of points.
    pub fn len(&self) -> usize {
        self.weights.len()
    }

    /// Whether there are no points.
    pub fn is_empty(&self) -> bool {
        self.weights.is_empty()
    }

    /// Point `i`.
    pub fn point(&self, i: usize) -> &[f64] {
        &self.values[i * self.d..(i + 1) * self.d]
    }

    /// Sorts the points by their coordinates and merges exact duplicates (adding their
    /// weights), so that the result does not depend on the order a query returned them in.
    pub fn canonical(self) -> Self {
        let d = self.d;
        let mut order: Vec<usize> = (0..self.len()).collect();
        let cmp = |a: &usize, b: &usize| {
            self.point(*a)
                .iter()
                .zip(self.point(*b))
                .map(|(x, y)| x.total_cmp(y))
                .find(|o| o.is_ne())
                .unwrap_or(std::cmp::Ordering::Equal)
        };
        order.sort_by(cmp);
        let mut out = PointSet {
            d,
            ..Default::default()
        };
        for i in order {
            let last = out.len().checked_sub(1);
            if let Some(l) = last
                && out.point(l) == self.point(i)
            {
                out.weights[l] += self.weights[i];
                continue;
            }
            out.values.extend_from_slice(self.point(i));
            out.weights.push(self.weights[i]);
        }
        out
    }

    /// The squared distance of each point to its nearest row of `centres` (row-major).
    fn nearest_sq(&self, centres: &[f64]) -> Vec<f64> {
        (0..self.len())
            .map(|i| {
                centres
                    .chunks_exact(self.d)
                    .map(|c| squared_distance(c, self.point(i)))
                    .fold(f64::INFINITY, f64::min)
            })
            .collect()
    }
}

/// Greedy k-means++ (Arthur & Vassilvitskii, with scikit-learn's `2 + ln k` local trials):
/// each new centre is the best of a few candidates drawn with probability ∝ weight · D², the
/// one that lowers the total weighted potential most. Returns `k` row-major centres; the caller
/// guarantees at least `k` distinct points.
pub fn greedy_kmeans_pp(points: &PointSet, k: usize, rng: &mut ChaCha8Rng) -> Vec<f64> {
    let (n, d) = (points.len(), points.d);
    let trials = 2 + (k as f64).ln().floor() as usize;
    let first = draw(&points.weights, rng).unwrap_or(0);
    let mut centres = points.point(first).to_vec();
    let mut closest: Vec<f64> = (0..n)
        .map(|i| squared_distance(points.point(i), points.point(first)))
        .collect();
    while centres.len() < k * d {
        let potential: Vec<f64> = closest
            .iter()
            .zip(&points.weights)
            .map(|(c, w)| c * w)
            .collect();
        let mut best: Option<(f64, usize, Vec<f64>)> = None;
        for _ in 0..trials {
            let Some(candidate) = draw(&potential, rng) else {
                break;
            };
            let dist: Vec<f64> = (0..n)
                .map(|i| closest[i].min(squared_distance(points.point(i), points.point(candidate))))
                .collect();
            let total: f64 = dist.iter().zip(&points.weights).map(|(x, w)| x * w).sum();
            if best.as_ref().is_none_or(|b| total < b.0) {
                best = Some((total, candidate, dist));
            }
        }
        // Every remaining point coincides with a centre: take the first point not yet chosen.
        let (_, chosen, dist) = best.unwrap_or_else(|| {
            let i = (0..n).find(|&i| closest[i] > 0.0).unwrap_or(0);
            let dist = (0..n)
                .map(|j| closest[j].min(squared_distance(points.point(j), points.point(i))))
                .collect();
            (0.0, i, dist)
        });
        centres.extend_from_slice(points.point(chosen));
        closest = dist;
    }
    centres
}

/// An index drawn with probability proportional to `weights`; `None` when they sum to 0.
fn draw(weights: &[f64], rng: &mut ChaCha8Rng) -> Option<usize> {
    let total: f64 = weights.iter().sum();
    if total <= 0.0 || !total.is_finite() {
        return None;
    }
    let mut u = rng.random::<f64>() * total;
    for (i, w) in weights.iter().enumerate() {
        if *w > 0.0 {
            u -= w;
            if u < 0.0 {
                return Some(i);
            }
        }
    }
    weights.iter().rposition(|w| *w > 0.0)
}

/// Weighted Lloyd iterations over a small point set (the k-means‖ candidates, as Spark refines
/// them); an emptied centre keeps its place.
pub fn local_lloyd(points: &PointSet, centres: &mut [f64], iterations: usize) {
    let d = points.d;
    let k = centres.len() / d.max(1);
    for _ in 0..iterations {
        let mut sums = vec![0.0; k * d];
        let mut weights = vec![0.0; k];
        for i in 0..points.len() {
            let c = nearest(centres, d, points.point(i)).0;
            weights[c] += points.weights[i];
            for (s, x) in sums[c * d..(c + 1) * d].iter_mut().zip(points.point(i)) {
                *s += points.weights[i] * x;
            }
        }
        let mut moved = 0.0f64;
        for c in 0..k {
            if weights[c] > 0.0 {
                for j in 0..d {
                    let next = sums[c * d + j] / weights[c];
                    moved = moved.max((next - centres[c * d + j]).abs());
                    centres[c * d + j] = next;
                }
            }
        }
        if moved == 0.0 {
            break;
        }
    }
}

/// The nearest row of `centres` to `point`, and the squared distance.
pub fn nearest(centres: &[f64], d: usize, point: &[f64]) -> (usize, f64) {
    centres
        .chunks_exact(d)
        .enumerate()
        .map(|(c, centre)| (c, squared_distance(centre, point)))
        .fold(
            (0, f64::INFINITY),
            |best, x| if x.1 < best.1 { x } else { best },
        )
}

/// The mean silhouette coefficient of a labelled sample (Rousseeuw 1987): for each point, `a`
/// is its mean distance to the rest of its cluster and `b` the smallest mean distance to another
/// cluster; `s = (b − a) / max(a, b)`, and 0 for a point alone in its cluster. Distances are
/// Euclidean, or `1 − cos` for unit vectors when `cosine`. In [−1, 1], higher is better.
pub fn silhouette(points: &PointSet, labels: &[usize], k: usize, cosine: bool) -> f64 {
    let values = silhouette_values(points, labels, k, cosine);
    if values.is_empty() {
        return 0.0;
    }
    values.iter().sum::<f64>() / values.len() as f64
}

/// The mean silhouette of each cluster's points (0 for a cluster with no point in the sample):
/// which segments are groups and which cut a continuum.
pub fn silhouette_by_cluster(
    points: &PointSet,
    labels: &[usize],
    k: usize,
    cosine: bool,
) -> Vec<f64> {
    let values = silhouette_values(points, labels, k, cosine);
    let mut sums = vec![0.0; k];
    let mut counts = vec![0usize; k];
    for (&l, v) in labels.iter().zip(&values) {
        sums[l] += v;
        counts[l] += 1;
    }
    sums.iter()
        .zip(&counts)
        .map(|(s, &n)| if n > 0 { s / n as f64 } else { 0.0 })
        .collect()
}

/// Each point's silhouette coefficient (see [`silhouette`]); empty when there is nothing to
/// compare (fewer than two points or clusters).
fn silhouette_values(points: &PointSet, labels: &[usize], k: usize, cosine: bool) -> Vec<f64> {
    let n = points.len();
    if n < 2 || k < 2 {
        return Vec::new();
    }
    let mut sizes = vec![0usize; k];
    for &l in labels {
        sizes[l] += 1;
    }
    let dist = |i: usize, j: usize| {
        let sq = squared_distance(points.point(i), points.point(j));
        if cosine { sq / 2.0 } else { sq.sqrt() }
    };
    let mut values = vec![0.0; n];
    let mut per_cluster = vec![0.0; k];
    for (i, value) in values.iter_mut().enumerate() {
        per_cluster.fill(0.0);
        for j in 0..n {
            if i != j {
                per_cluster[labels[j]] += dist(i, j);
            }
        }
        let own = labels[i];
        if sizes[own] <= 1 {
            continue;
        }
        let a = per_cluster[own] / (sizes[own] - 1) as f64;
        let b = (0..k)
            .filter(|&c| c != own && sizes[c] > 0)
            .map(|c| per_cluster[c] / sizes[c] as f64)
            .fold(f64::INFINITY, f64::min);
        if b.is_finite() && a.max(b) > 0.0 {
            *value = (b - a) / a.max(b);
        }
    }
    values
}

/// The adjusted Rand index of two labellings of the same points (Hubert & Arabie 1985): 1 when
/// they make the same partition, about 0 when they agree no more than chance, as scikit-learn's
/// `adjusted_rand_score` computes it.
pub fn adjusted_rand_index(a: &[usize], b: &[usize]) -> f64 {
    debug_assert_eq!(a.len(), b.len());
    let pairs = |n: f64| n * (n - 1.0) / 2.0;
    let mut cells: std::collections::HashMap<(usize, usize), f64> = Default::default();
    let mut rows: std::collections::HashMap<usize, f64> = Default::default();
    let mut columns: std::collections::HashMap<usize, f64> = Default::default();
    for (&x, &y) in a.iter().zip(b) {
        *cells.entry((x, y)).or_default() += 1.0;
        *rows.entry(x).or_default() += 1.0;
        *columns.entry(y).or_default() += 1.0;
    }
    let index: f64 = cells.values().map(|&n| pairs(n)).sum();
    let row_pairs: f64 = rows.values().map(|&n| pairs(n)).sum();
    let column_pairs: f64 = columns.values().map(|&n| pairs(n)).sum();
    let total = pairs(a.len() as f64);
    if total <= 0.0 {
        return 1.0;
    }
    let expected = row_pairs * column_pairs / total;
    let max = (row_pairs + column_pairs) / 2.0;
    if (max - expected).abs() < f64::EPSILON {
        // Both labellings put every point in one cluster, or every point alone: identical.
        return 1.0;
    }
    (index - expected) / (max - expected)
}

/// Labels of every point of `points` under `centres`.
pub fn labels(points: &PointSet, centres: &[f64]) -> Vec<usize> {
    (0..points.len())
        .map(|i| nearest(centres, points.d, points.point(i)).0)
        .collect()
}

/// The weighted potential (inertia) of `points` under `centres`.
pub fn potential(points: &PointSet, centres: &[f64]) -> f64 {
    points
        .nearest_sq(centres)
        .iter()
        .zip(&points.weights)
        .map(|(d, w)| d * w)
        .sum()
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    /// Three tight blobs in 2-D.
    fn blobs() -> PointSet {
        let mut values = Vec::new();
        for (cx, cy) in [(0.0, 0.0), (10.0, 0.0), (0.0, 10.0)] {
            for i in 0..20 {
                values.push(cx + f64::from(i % 5) * 0.1);
                values.push(cy + f64::from(i / 5) * 0.1);
            }
        }
        PointSet {
            d: 2,
            weights: vec![1.0; values.len() / 2],
            values,
        }
    }

    #[test]
    fn kmeans_pp_seeds_one_centre_per_blob() {
        let points = blobs();
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let centres = greedy_kmeans_pp(&points, 3, &mut rng);
        let mut blobs: Vec<usize> = centres
            .chunks(2)
            .map(|c| (c[0] / 5.0).round() as usize + 2 * (c[1] / 5.0).round() as usize)
            .collect();
        blobs.sort();
        assert_eq!(blobs, vec![0, 2, 4]);
    }

    #[test]
    fn silhouette_prefers_the_true_clustering() {
        let points = blobs();
        let truth: Vec<usize> = (0..60).map(|i| i / 20).collect();
        let mixed: Vec<usize> = (0..60).map(|i| i % 3).collect();
        let good = silhouette(&points, &truth, 3, false);
        assert!(good > 0.9, "{good}");
        assert!(silhouette(&points, &mixed, 3, false) < 0.1);
    }

    /// Figures from scikit-learn's `adjusted_rand_score` on the same labellings.
    #[test]
    fn adjusted_rand_index_matches_scikit_learn() {
        let same = [0, 0, 1, 1, 2, 2];
        assert_eq!(adjusted_rand_index(&same, &[5, 5, 3, 3, 4, 4]), 1.0);
        let ari = adjusted_rand_index(&[0, 0, 0, 1, 1, 1], &[0, 0, 1, 1, 2, 2]);
        assert!((ari - 0.242_424_242_424_242_4).abs() < 1e-12, "{ari}");
        let ari = adjusted_rand_index(&[0, 0, 1, 1], &[0, 1, 0, 1]);
        assert!((ari + 0.5).abs() < 1e-12, "{ari}");
        assert_eq!(adjusted_rand_index(&[0, 0, 0], &[1, 1, 1]), 1.0);
    }

    #[test]
    fn silhouette_by_cluster_tells_a_group_from_a_cut() {
        // Two tight blobs, the second cut in two: the intact blob scores high, the halves low.
        let mut points = blobs();
        points.values.truncate(80);
        points.weights.truncate(40);
        let labels: Vec<usize> = (0..40)
            .map(|i| {
                if i < 20 {
                    0
                } else if i % 5 < 2 {
                    1
                } else {
                    2
                }
            })
            .collect();
        let by = silhouette_by_cluster(&points, &labels, 3, false);
        assert!(by[0] > 0.9, "{by:?}");
        assert!(by[1] < 0.5 && by[2] < 0.5, "{by:?}");
        let overall = silhouette(&points, &labels, 3, false);
        assert!((overall - (by[0] * 20.0 + by[1] * 8.0 + by[2] * 12.0) / 40.0).abs() < 1e-12);
    }

    #[test]
    fn canonical_order_merges_duplicates() {
        let p = PointSet {
            d: 1,
            values: vec![3.0, 1.0, 3.0],
            weights: vec![1.0, 2.0, 0.5],
        }
        .canonical();
        assert_eq!(p.values, vec![1.0, 3.0]);
        assert_eq!(p.weights, vec![2.0, 1.5]);
    }

    #[test]
    fn weighted_lloyd_moves_centres_to_weighted_means() {
        let points = PointSet {
            d: 1,
            values: vec![0.0, 1.0, 10.0],
            weights: vec![3.0, 1.0, 1.0],
        };
        let mut centres = vec![0.0, 10.0];
        local_lloyd(&points, &mut centres, 5);
        assert_eq!(centres, vec![0.25, 10.0]);
        assert_eq!(potential(&points, &centres), 3.0 * 0.0625 + 0.5625);
    }
}
