//! Segment ids that keep their meaning from night to night.
//!
//! Tonight's K-Means starts from the last published night's centroids when it clusters the same
//! features into the same number of segments (a warm start), and tonight's centroids are then
//! matched to that night's by the assignment of least total distance (Kuhn–Munkres), so
//! `segment_id` names the same segment night after night. A centroid with no partner, or one
//! further than `max_drift` from it, is a segment that appeared: it gets an id never used by
//! the previous night. The previous night's segments left without a partner vanished. The
//! manifest records all of it, with each segment's drift.
//!
//! Everything is in standardised coordinates: the published `segments.centroid_z` is the mean
//! z-score of each feature over the segment's members, which is what a centroid is.

use chrono::NaiveDate;
use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::datatypes::{DataType, Float64Type, Int32Type};
use datafusion::prelude::SessionContext;
use pathfinding::prelude::{Matrix, kuhn_munkres_min};
use persona_udfs::ml::Centroids;
use serde::Serialize;

use crate::engine::commit::last_published_before;
use crate::engine::storage::Root;
use crate::engine::tables::register_parquet;
use crate::error::{PipelineError, Result};
use crate::models::kmeans::describe::identity_ids;

/// The published segments of the last successful night before tonight.
#[derive(Debug, Clone)]
pub struct PreviousSegments {
    /// Its run date.
    pub date: NaiveDate,
    /// Its segment ids, in the order of `centroids_z`.
    pub ids: Vec<i32>,
    /// The features it clustered on.
    pub features: Vec<String>,
    /// Each segment's centroid in standard deviations.
    pub centroids_z: Vec<Vec<f64>>,
    /// Each segment's label, so that a segment that continues keeps it while its traits hold.
    pub labels: Vec<String>,
}

/// How tonight's segments relate to the previous night's: the manifest's `segments.continuity`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Continuity {
    /// The night matched against (none on a first night, or when the features changed).
    pub previous_date: Option<NaiveDate>,
    /// Whether the fit started from that night's centroids.
    pub warm_start: bool,
    /// Tonight's segments: id, the previous night's id it continues, and how far its centroid
    /// moved (in standard deviations).
    pub segments: Vec<SegmentContinuity>,
    /// Ids of segments new tonight.
    pub appeared: Vec<i32>,
    /// Ids of the previous night's segments that have no successor.
    pub vanished: Vec<i32>,
    /// Why there was no matching, when there was none.
    pub note: Option<String>,
}

/// One segment of tonight.
#[derive(Debug, Clone, Serialize)]
pub struct SegmentContinuity {
    /// Its id tonight.
    pub segment_id: i32,
    /// The id it had the night before (the same, unless it is new).
    pub previous_segment_id: Option<i32>,
    /// Distance between the two centroids, in standard deviations.
    pub drift: Option<f64>,
}

/// Reads the last published `segments` before `date` under `output`, if any.
pub async fn previous_segments(
    ctx: &SessionContext,
    output: &Root,
    date: NaiveDate,
) -> Result<Option<PreviousSegments>> {
    let Some((previous, folder)) = last_published_before(output, date, "segments").await? else {
        return Ok(None);
    };
    let partition = output.child(&folder);
    let name = "previous_night_segments";
    register_parquet(ctx, name, &partition, "").await?;
    let batches = ctx
        .sql(&format!(
            "SELECT segment_id, feature_names, centroid_z, segment_label FROM {name} \
             ORDER BY segment_id"
        ))
        .await?
        .collect()
        .await;
    ctx.deregister_table(name)?;
    let mut out = PreviousSegments {
        date: previous,
        ids: Vec::new(),
        features: Vec::new(),
        centroids_z: Vec::new(),
        labels: Vec::new(),
    };
    for batch in batches? {
        let ids = datafusion::arrow::compute::cast(batch.column(0), &DataType::Int32)?;
        let ids = ids.as_primitive::<Int32Type>();
        let names = batch.column(1).as_list::<i32>();
        let centroids = batch.column(2).as_list::<i32>();
        for r in 0..batch.num_rows() {
            out.ids.push(ids.value(r));
            // Every row of a night's segments names the same features.
            if out.features.is_empty() {
                let row_names = datafusion::arrow::compute::cast(&names.value(r), &DataType::Utf8)?;
                let row_names = row_names.as_string::<i32>();
                out.features = (0..row_names.len())
                    .map(|i| row_names.value(i).to_string())
                    .collect();
            }
            let z = centroids.value(r);
            let z = z.as_primitive::<Float64Type>();
            out.centroids_z.push(z.values().to_vec());
            let labels = datafusion::arrow::compute::cast(batch.column(3), &DataType::Utf8)?;
            out.labels
                .push(labels.as_string::<i32>().value(r).to_string());
        }
    }
    if out.ids.is_empty() {
        return Ok(None);
    }
    Ok(Some(out))
}

/// The previous night's centroids as tonight's start, when tonight clusters the same features
/// into the same number of segments (`k`: `None` for `k = "auto"`, which chooses anew).
pub fn warm_start(
    previous: &PreviousSegments,
    features: &[String],
    k: Option<usize>,
) -> Option<Centroids> {
    if previous.features != features || k != Some(previous.ids.len()) {
        return None;
    }
    let d = features.len();
    if previous.centroids_z.iter().any(|c| c.len() != d) {
        return None;
    }
    Centroids::new(
        previous.ids.len(),
        d,
        previous.centroids_z.iter().flatten().copied().collect(),
    )
}

/// Tonight's id for each of tonight's centroids (by index), and what changed. Without a
/// comparable previous night, ids are the centroids' indices.
pub fn match_ids(
    previous: Option<&PreviousSegments>,
    features: &[String],
    centroids: &Centroids,
    max_drift: f64,
) -> Result<(Vec<i32>, Continuity)> {
    let k = centroids.k();
    let fresh = |note: Option<String>| {
        let ids = identity_ids(k);
        let continuity = Continuity {
            segments: ids
                .iter()
                .map(|&id| SegmentContinuity {
                    segment_id: id,
                    previous_segment_id: None,
                    drift: None,
                })
                .collect(),
            note,
            ..Continuity::default()
        };
        (ids, continuity)
    };
    let Some(previous) = previous else {
        return Ok(fresh(Some("no earlier published segments".into())));
    };
    if previous.features != features {
        return Ok(fresh(Some(format!(
            "the features changed since {} ({} then, {} now): new ids",
            previous.date,
            previous.features.join(", "),
            features.join(", ")
        ))));
    }
    let (old, new) = (previous.ids.len(), k);
    let n = old.max(new);
    // Square cost matrix: rows tonight's centroids, columns the previous ones; padding rows and
    // columns cost a constant above every real pair, so they take what is left over.
    let distance = |i: usize, j: usize| {
        centroids
            .centroid(i)
            .iter()
            .zip(&previous.centroids_z[j])
            .map(|(a, b)| (a - b) * (a - b))
            .sum::<f64>()
            .sqrt()
    };
    let scale = 1e6;
    let mut worst = 0.0f64;
    for i in 0..new {
        for j in 0..old {
            worst = worst.max(distance(i, j));
        }
    }
    let pad = ((worst + 1.0) * scale).round() as i64;
    let mut weights = Matrix::new(n, n, pad);
    for i in 0..new {
        for j in 0..old {
            weights[(i, j)] = (distance(i, j) * scale).round() as i64;
        }
    }
    let (_, partner) = kuhn_munkres_min(&weights);
    let mut next_id = previous.ids.iter().copied().max().unwrap_or(-1) + 1;
    let mut ids = Vec::with_capacity(new);
    let mut continuity = Continuity {
        previous_date: Some(previous.date),
        ..Continuity::default()
    };
    let mut continued = vec![false; old];
    for (i, &j) in partner.iter().enumerate().take(new) {
        let drift = (j < old).then(|| distance(i, j));
        let (id, from) = match drift {
            Some(d) if d <= max_drift => {
                continued[j] = true;
                (previous.ids[j], Some(previous.ids[j]))
            }
            _ => {
                next_id += 1;
                continuity.appeared.push(next_id - 1);
                (next_id - 1, None)
            }
        };
        ids.push(id);
        continuity.segments.push(SegmentContinuity {
            segment_id: id,
            previous_segment_id: from,
            drift,
        });
    }
    continuity.vanished = (0..old)
        .filter(|&j| !continued[j])
        .map(|j| previous.ids[j])
        .collect();
    if ids.len() != new {
        return Err(PipelineError::Internal(
            "segment matching lost a segment".into(),
        ));
    }
    Ok((ids, continuity))
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "tests fail by panicking")]
mod tests {
    use super::*;

    fn previous(ids: &[i32], centroids: &[[f64; 2]]) -> PreviousSegments {
        PreviousSegments {
            date: NaiveDate::from_ymd_opt(2026, 11, 21).unwrap(),
            ids: ids.to_vec(),
            features: vec!["a".into(), "b".into()],
            centroids_z: centroids.iter().map(|c| c.to_vec()).collect(),
            labels: ids.iter().map(|id| format!("segment {id}")).collect(),
        }
    }

    fn tonight(centroids: &[[f64; 2]]) -> Centroids {
        Centroids::new(
            centroids.len(),
            2,
            centroids.iter().flatten().copied().collect(),
        )
        .unwrap()
    }

    fn features() -> Vec<String> {
        vec!["a".into(), "b".into()]
    }

    #[test]
    fn shuffled_centroids_get_their_old_ids_back() {
        let before = previous(&[0, 1, 2], &[[0.0, 0.0], [5.0, 0.0], [0.0, 5.0]]);
        let now = tonight(&[[0.1, 5.0], [0.0, 0.1], [5.1, 0.0]]);
        let (ids, c) = match_ids(Some(&before), &features(), &now, 1.0).unwrap();
        assert_eq!(ids, vec![2, 0, 1]);
        assert!(c.appeared.is_empty() && c.vanished.is_empty());
        assert!((c.segments[0].drift.unwrap() - 0.1).abs() < 1e-9);
    }

    #[test]
    fn a_segment_that_moved_too_far_is_new_and_its_old_id_vanishes() {
        let before = previous(&[0, 3], &[[0.0, 0.0], [5.0, 0.0]]);
        let now = tonight(&[[0.0, 0.2], [-5.0, -5.0]]);
        let (ids, c) = match_ids(Some(&before), &features(), &now, 1.0).unwrap();
        assert_eq!(ids, vec![0, 4]);
        assert_eq!(c.appeared, vec![4]);
        assert_eq!(c.vanished, vec![3]);
    }

    #[test]
    fn more_or_fewer_segments_than_the_night_before() {
        let before = previous(&[0, 1], &[[0.0, 0.0], [5.0, 0.0]]);
        let (ids, c) = match_ids(
            Some(&before),
            &features(),
            &tonight(&[[5.0, 0.1], [0.0, 9.0], [0.1, 0.0]]),
            1.0,
        )
        .unwrap();
        assert_eq!(ids, vec![1, 2, 0]);
        assert_eq!(c.appeared, vec![2]);
        let (ids, c) = match_ids(Some(&before), &features(), &tonight(&[[5.0, 0.1]]), 1.0).unwrap();
        assert_eq!(ids, vec![1]);
        assert_eq!(c.vanished, vec![0]);
    }

    #[test]
    fn other_features_or_no_previous_night_give_fresh_ids() {
        let now = tonight(&[[0.0, 0.0], [1.0, 1.0]]);
        let (ids, c) = match_ids(None, &features(), &now, 1.0).unwrap();
        assert_eq!(ids, vec![0, 1]);
        assert!(c.previous_date.is_none());
        let before = previous(&[7, 8], &[[0.0, 0.0], [1.0, 1.0]]);
        let (ids, c) = match_ids(Some(&before), &["a".into()], &now, 1.0).unwrap();
        assert_eq!(ids, vec![0, 1]);
        assert!(c.note.unwrap().contains("features changed"));
    }

    #[test]
    fn warm_start_needs_the_same_features_and_k() {
        let before = previous(&[0, 1], &[[0.0, 0.0], [5.0, 0.0]]);
        assert!(warm_start(&before, &features(), Some(2)).is_some());
        assert!(warm_start(&before, &features(), Some(3)).is_none());
        assert!(warm_start(&before, &features(), None).is_none());
        assert!(warm_start(&before, &["a".into()], Some(2)).is_none());
    }
}
