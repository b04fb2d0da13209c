//! Making segments readable: each segment's size, its mean features in original units and in
//! standard deviations from the population, and a label built from its most distinctive traits
//! ("high spend · frequent · mobile").

use std::sync::Arc;

use arrow::array::{
    ArrayRef, AsArray, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray,
};
use arrow::datatypes::{DataType, Field, Float64Type, Int32Type, Int64Type, Schema, SchemaRef};
use datafusion::prelude::SessionContext;

use super::prepare::Prepared;
use crate::engine::tables::quote;
use crate::error::Result;
use persona_udfs::lists::{list_type, uniform_list};

/// One segment, described.
#[derive(Debug, Clone, PartialEq)]
pub struct SegmentSummary {
    /// Segment id (the centroid's index, or the id it keeps from night to night).
    pub id: i32,
    /// Members.
    pub size: u64,
    /// Mean of each feature in its original units.
    pub mean: Vec<f64>,
    /// Mean z-score of each feature (its distance from the population, in standard deviations).
    pub mean_z: Vec<f64>,
    /// Readable label, unique among the segments.
    pub label: String,
    /// The five most distinctive features, e.g. "monetary +1.8σ, sessions +1.2σ, …".
    pub description: String,
    /// The most distinctive feature of each group of features, e.g. "behaviour: purchases
    /// +1.2σ; channel: share_ios +0.9σ; taste: interest_books +2.1σ; crm: age -0.4σ".
    pub by_group: String,
    /// Mean silhouette of the segment's sampled members: near 1 a group apart, near 0 or below
    /// a cut through a continuum.
    pub silhouette: f64,
    /// How reliably fits on two halves of a sample find this segment again (mean best Jaccard
    /// overlap; [`super::stability`]), when measured.
    pub stability: Option<f64>,
}

/// SQL assigning every row of `points` (prepared points with the `keep` columns) to its
/// segment with the registered `kmeans_assign`: the `keep` columns, `segment_id`, and
/// `distance_to_centroid` (Euclidean, or `1 − cos` with the cosine distance).
///
/// `ids[i]` is the id of centroid `i` (see [`identity_ids`]).
pub fn assignment_sql(
    points_sql: &str,
    prepared: &Prepared,
    keep: &[String],
    ids: &[i32],
) -> String {
    let keep: Vec<String> = keep.iter().map(|c| quote(c)).collect();
    let distance = if prepared.cosine {
        "__a['distance'] * __a['distance'] / 2"
    } else {
        "__a['distance']"
    };
    let prefix = if keep.is_empty() {
        String::new()
    } else {
        format!("{}, ", keep.join(", "))
    };
    let segment = if ids == identity_ids(ids.len()) {
        "__a['segment_id']".to_string()
    } else {
        let arms: Vec<String> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| format!("WHEN {i} THEN {id}"))
            .collect();
        format!("CAST(CASE __a['segment_id'] {} END AS INT)", arms.join(" "))
    };
    format!(
        "SELECT {prefix}{segment} AS segment_id, {distance} AS distance_to_centroid \
         FROM (SELECT {prefix}kmeans_assign({}) AS __a FROM ({points_sql}))",
        prepared.columns().join(", ")
    )
}

/// The schema of what [`assignment_sql`] returns, given the `keep` columns' fields: for
/// `--dry-run`, which registers `segment_assignments` empty without fitting anything.
pub fn assignments_schema(keep: Vec<Field>) -> SchemaRef {
    let mut fields = keep;
    // Nullable, as the planner types a field of kmeans_assign's struct.
    fields.push(Field::new("segment_id", DataType::Int32, true));
    fields.push(Field::new("distance_to_centroid", DataType::Float64, true));
    Arc::new(Schema::new(fields))
}

/// Ids equal to the centroids' indices: `0..k`.
pub fn identity_ids(k: usize) -> Vec<i32> {
    (0..k as i32).collect()
}

/// Describes the segments `ids` (in centroid order) of `from`, a relation with the feature
/// columns and `segment_id`.
pub async fn summarize(
    ctx: &SessionContext,
    from: &str,
    prepared: &Prepared,
    ids: &[i32],
) -> Result<Vec<SegmentSummary>> {
    let mut exprs = vec!["segment_id".to_string(), "COUNT(*)".to_string()];
    for s in &prepared.scales {
        exprs.push(format!("ROUND(AVG({}), 6)", s.value_sql()));
    }
    for s in &prepared.scales {
        exprs.push(format!("ROUND(AVG({}), 6)", s.z_sql()));
    }
    let sql = format!(
        "SELECT {} FROM {from} GROUP BY segment_id",
        exprs.join(", ")
    );
    let batches = ctx.sql(&sql).await?.collect().await?;
    let d = prepared.scales.len();
    let mut out: Vec<SegmentSummary> = ids
        .iter()
        .map(|&id| SegmentSummary {
            id,
            size: 0,
            mean: vec![f64::NAN; d],
            mean_z: vec![0.0; d],
            label: String::new(),
            description: String::new(),
            by_group: String::new(),
            silhouette: 0.0,
            stability: None,
        })
        .collect();
    for b in &batches {
        let ids = arrow::compute::cast(b.column(0), &DataType::Int32)?;
        let ids = ids.as_primitive::<Int32Type>();
        let sizes = b.column(1).as_primitive::<Int64Type>();
        for r in 0..b.num_rows() {
            let Some(s) = out.iter_mut().find(|s| s.id == ids.value(r)) else {
                continue;
            };
            s.size = sizes.value(r) as u64;
            for j in 0..d {
                let (m, z) = (
                    b.column(2 + j).as_primitive::<Float64Type>(),
                    b.column(2 + d + j).as_primitive::<Float64Type>(),
                );
                s.mean[j] = if arrow::array::Array::is_valid(m, r) {
                    m.value(r)
                } else {
                    f64::NAN
                };
                s.mean_z[j] = if arrow::array::Array::is_valid(z, r) {
                    z.value(r)
                } else {
                    0.0
                };
            }
        }
    }
    // In id order, so that labels numbered to be unique keep their numbers from night to night.
    out.sort_by_key(|s| s.id);
    label_segments(&mut out, prepared);
    Ok(out)
}

/// Words for a feature far above (first) or below (second) the population.
fn trait_words(feature: &str) -> (String, String) {
    let (hi, lo) = match feature {
        "recency_days" => ("lapsed", "recently active"),
        "sessions" => ("frequent", "infrequent"),
        "active_days" => ("regular", "rare visits"),
        "purchases" => ("many orders", "few orders"),
        "monetary" => ("high spend", "low spend"),
        "avg_order_value" => ("big baskets", "small baskets"),
        "conversion_rate" => ("converts well", "browses without buying"),
        "web_views" => ("web browsing", "little web browsing"),
        "app_views" => ("app browsing", "little app use"),
        "share_web" => ("web-first", "mobile"),
        "share_ios" => ("iPhone users", "few iPhone users"),
        "share_android" => ("Android users", "few Android users"),
        "share_night" => ("night owls", "rarely at night"),
        "share_weekend" => ("weekend shoppers", "weekday shoppers"),
        "price_index" => ("premium taste", "bargain hunters"),
        "categories_seen" => ("explores categories", "few categories"),
        "top_category_share" => ("one-category focus", "varied tastes"),
        "age" => ("older", "younger"),
        "tenure_days" => ("long-standing", "recent sign-ups"),
        "annual_income" => ("high income", "low income"),
        other => {
            return match other.split_once('=') {
                // A categorical column's indicator, e.g. `loyalty_tier=gold`.
                Some((column, value)) => {
                    (format!("{column} {value}"), format!("few {column} {value}"))
                }
                None => (format!("high {other}"), format!("low {other}")),
            };
        }
    };
    (hi.to_string(), lo.to_string())
}

/// A trait enters a label at |z| ≥ this.
const TRAIT_ENTERS: f64 = 0.5;
/// A label kept from the previous night holds while each of its traits is at least this far
/// out on the same side (and a "typical" segment stays typical while no feature reaches
/// `TRAIT_ENTERS + (TRAIT_ENTERS − TRAIT_HOLDS)`): hysteresis, so that a segment whose
/// centroid moves by a hair across 0.5σ does not change its name from one night to the next.
const TRAIT_HOLDS: f64 = 0.25;

/// Gives each segment the label it had the previous night when it continues that night's
/// segment (`previous`: its id and label) and the label still describes it ([`TRAIT_HOLDS`]);
/// labels stay unique (a kept label that tonight's fresh labels already use is not kept).
pub fn keep_previous_labels(
    segments: &mut [SegmentSummary],
    prepared: &Prepared,
    previous: &[(i32, String)],
) {
    for c in 0..segments.len() {
        let Some((_, label)) = previous.iter().find(|(id, _)| *id == segments[c].id) else {
            continue;
        };
        let taken = segments
            .iter()
            .enumerate()
            .any(|(o, s)| o != c && s.label == *label);
        if !taken && segments[c].size > 0 && still_holds(label, &segments[c], prepared) {
            segments[c].label = label.clone();
        }
    }
}

/// Whether every trait of `label` still describes `segment` (same side, |z| ≥ TRAIT_HOLDS).
fn still_holds(label: &str, segment: &SegmentSummary, prepared: &Prepared) -> bool {
    let base = label.split(" #").next().unwrap_or(label);
    if base == "typical" {
        let limit = 2.0 * TRAIT_ENTERS - TRAIT_HOLDS;
        return segment.mean_z.iter().all(|z| z.abs() < limit);
    }
    base.split(" · ").all(|word| {
        prepared
            .scales
            .iter()
            .zip(&segment.mean_z)
            .any(|(scale, z)| {
                let (hi, lo) = trait_words(&scale.name);
                (word == hi && *z >= TRAIT_HOLDS) || (word == lo && *z <= -TRAIT_HOLDS)
            })
    })
}

/// Labels every segment from its most distinctive features (|z| ≥ 0.5, at most three) and
/// describes its five strongest; duplicate labels get a number; empty segments say so.
fn label_segments(segments: &mut [SegmentSummary], prepared: &Prepared) {
    for s in segments.iter_mut() {
        let mut order: Vec<(usize, f64)> = s.mean_z.iter().copied().enumerate().collect();
        order.sort_by(|a, b| b.1.abs().total_cmp(&a.1.abs()).then(a.0.cmp(&b.0)));
        let words: Vec<String> = order
            .iter()
            .filter(|(_, z)| z.abs() >= TRAIT_ENTERS)
            .take(3)
            .map(|(f, z)| {
                let (hi, lo) = trait_words(&prepared.scales[*f].name);
                if *z > 0.0 { hi } else { lo }
            })
            .collect();
        s.label = match (s.size, words.is_empty()) {
            (0, _) => "empty".to_string(),
            (_, true) => "typical".to_string(),
            _ => words.join(" · "),
        };
        s.description = order
            .iter()
            .take(5)
            .map(|(f, z)| format!("{} {:+.1}σ", prepared.scales[*f].name, z))
            .collect::<Vec<_>>()
            .join(", ");
        let mut groups: Vec<&str> = Vec::new();
        for scale in &prepared.scales {
            if !groups.contains(&scale.group.as_str()) {
                groups.push(&scale.group);
            }
        }
        s.by_group = groups
            .iter()
            .filter_map(|g| {
                // `order` runs from the most distinctive feature down.
                let (f, z) = order
                    .iter()
                    .find(|(f, _)| prepared.scales[*f].group == *g)?;
                Some(format!("{g}: {} {:+.1}σ", prepared.scales[*f].name, z))
            })
            .collect::<Vec<_>>()
            .join("; ");
    }
    for c in 0..segments.len() {
        let base = segments[c].label.clone();
        let same = segments[..c]
            .iter()
            .filter(|o| o.label == base || o.label.starts_with(&format!("{base} #")))
            .count();
        if same > 0 {
            segments[c].label = format!("{base} #{}", same + 1);
        }
    }
}

/// Attaches the fit's trust measures (per centroid index) to the segments `ids[i]` names.
pub fn attach_trust(segments: &mut [SegmentSummary], ids: &[i32], fit: &super::FitReport) {
    for (i, id) in ids.iter().enumerate() {
        if let Some(s) = segments.iter_mut().find(|s| s.id == *id) {
            s.silhouette = fit.silhouette_by_cluster.get(i).copied().unwrap_or(0.0);
            s.stability = fit
                .stability
                .as_ref()
                .and_then(|st| st.by_cluster.get(i).copied());
        }
    }
}

/// Six decimals, so that reruns write the same bytes whatever the last bits of a sum.
fn round6(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}

/// The schema of the `segment_labels` work table ([`segments_batch`]).
pub fn labels_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("segment_id", DataType::Int32, false),
        Field::new("size", DataType::Int64, false),
        Field::new("share", DataType::Float64, false),
        Field::new("segment_label", DataType::Utf8, false),
        Field::new("distinguishing_features", DataType::Utf8, false),
        Field::new("features_by_group", DataType::Utf8, false),
        Field::new("silhouette", DataType::Float64, false),
        Field::new("stability", DataType::Float64, true),
        Field::new("feature_names", list_type(DataType::Utf8), false),
        Field::new("centroid", list_type(DataType::Float64), false),
        Field::new("centroid_z", list_type(DataType::Float64), false),
    ]))
}

/// The segments as a table: `segment_id, size, share, segment_label, distinguishing_features,
/// feature_names, centroid` (mean features in original units) and `centroid_z`.
pub fn segments_batch(segments: &[SegmentSummary], prepared: &Prepared) -> Result<RecordBatch> {
    let (k, d) = (segments.len(), prepared.scales.len());
    let total: u64 = segments.iter().map(|s| s.size).sum();
    let names: Vec<&str> = (0..k)
        .flat_map(|_| prepared.scales.iter().map(|s| s.name.as_str()))
        .collect();
    let schema = labels_schema();
    let floats = |f: &dyn Fn(&SegmentSummary) -> &[f64]| -> ArrayRef {
        let values: Vec<f64> = segments.iter().flat_map(|s| f(s).to_vec()).collect();
        Arc::new(uniform_list(Arc::new(Float64Array::from(values)), d, k))
    };
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int32Array::from_iter_values(segments.iter().map(|s| s.id))),
        Arc::new(Int64Array::from_iter_values(
            segments.iter().map(|s| s.size as i64),
        )),
        Arc::new(Float64Array::from_iter_values(
            segments.iter().map(|s| s.size as f64 / total.max(1) as f64),
        )),
        Arc::new(StringArray::from_iter_values(
            segments.iter().map(|s| s.label.as_str()),
        )),
        Arc::new(StringArray::from_iter_values(
            segments.iter().map(|s| s.description.as_str()),
        )),
        Arc::new(StringArray::from_iter_values(
            segments.iter().map(|s| s.by_group.as_str()),
        )),
        Arc::new(Float64Array::from_iter_values(
            segments.iter().map(|s| round6(s.silhouette)),
        )),
        Arc::new(Float64Array::from_iter(
            segments.iter().map(|s| s.stability.map(round6)),
        )),
        Arc::new(uniform_list(Arc::new(StringArray::from(names)), d, k)),
        floats(&|s| &s.mean),
        floats(&|s| &s.mean_z),
    ];
    Ok(RecordBatch::try_new(schema, columns)?)
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "tests fail by panicking")]
mod tests {
    use super::*;
    use crate::models::kmeans::prepare::FeatureScale;

    /// A feature already on the z scale: no shift, no scaling, nothing imputed.
    fn unit_scale(name: &str) -> FeatureScale {
        FeatureScale {
            name: name.to_string(),
            column: name.to_string(),
            category: None,
            log: false,
            shift: 0.0,
            scale: 1.0,
            impute: 0.0,
            mean: 0.0,
            std: 1.0,
            imputed: 0,
            group: crate::models::kmeans::prepare::default_group(name).to_string(),
            weight: 1.0,
        }
    }

    /// `--dry-run` registers `segment_assignments` with [`assignments_schema`]: it must be what
    /// the night's assignment query really returns, with and without renumbered ids.
    #[tokio::test]
    async fn assignments_schema_is_what_the_assignment_sql_returns() {
        use datafusion::catalog::MemTable;
        use datafusion::logical_expr::ScalarUDF;
        use datafusion::prelude::SessionContext;
        use persona_udfs::ml::Centroids;
        use persona_udfs::scalar::KMeansAssign;

        let ctx = SessionContext::new();
        let centroids = Centroids::new(2, 1, vec![0.0, 1.0]).unwrap();
        ctx.register_udf(ScalarUDF::from(KMeansAssign::new(centroids)));
        let key = Field::new("customer_id", DataType::Utf8, true);
        let points = Arc::new(Schema::new(vec![
            key.clone(),
            Field::new("__z0", DataType::Float64, true),
        ]));
        let table = MemTable::try_new(points, vec![vec![]]).unwrap();
        ctx.register_table("points", Arc::new(table)).unwrap();
        let prepared = Prepared {
            scales: vec![unit_scale("monetary")],
            dropped: vec![],
            weight: None,
            cosine: false,
            rows: 0,
        };
        let keep = ["customer_id".to_string()];
        for ids in [vec![0, 1], vec![3, 2]] {
            let sql = assignment_sql("SELECT * FROM points", &prepared, &keep, &ids);
            let df = ctx.sql(&sql).await.unwrap();
            let planned = df.schema().as_arrow().clone();
            assert_eq!(
                planned,
                *assignments_schema(vec![key.clone()]),
                "ids {ids:?}"
            );
        }
    }

    #[test]
    fn labels_name_the_strongest_traits_and_are_unique() {
        let scales = ["monetary", "share_web"]
            .into_iter()
            .map(unit_scale)
            .collect();
        let prepared = Prepared {
            scales,
            dropped: vec![],
            weight: None,
            cosine: false,
            rows: 3,
        };
        let mut segs: Vec<SegmentSummary> = [[2.0, -1.0], [2.1, -0.9], [0.1, 0.2], [0.0, 0.0]]
            .iter()
            .enumerate()
            .map(|(id, z)| SegmentSummary {
                id: id as i32,
                size: if id == 3 { 0 } else { 10 },
                mean: vec![0.0; 2],
                mean_z: z.to_vec(),
                label: String::new(),
                description: String::new(),
                by_group: String::new(),
                silhouette: 0.0,
                stability: None,
            })
            .collect();
        label_segments(&mut segs, &prepared);
        assert_eq!(segs[0].label, "high spend · mobile");
        assert_eq!(segs[1].label, "high spend · mobile #2");
        assert_eq!(segs[2].label, "typical");
        assert_eq!(segs[3].label, "empty");
        assert!(segs[0].description.starts_with("monetary +2.0σ"));
        assert_eq!(
            segs[0].by_group,
            "behaviour: monetary +2.0σ; channel: share_web -1.0σ"
        );
        let batch = segments_batch(&segs, &prepared).unwrap();
        assert_eq!(batch.num_rows(), 4);

        // Hysteresis: yesterday's "typical" stays while no trait reaches 0.75σ; yesterday's
        // "high spend" holds while spend is above 0.25σ, and is dropped once it is not.
        segs[2].mean_z = vec![-0.6, 0.1];
        segs[0].mean_z = vec![0.3, 0.0];
        label_segments(&mut segs, &prepared);
        assert_eq!(segs[2].label, "low spend");
        keep_previous_labels(
            &mut segs,
            &prepared,
            &[(2, "typical".to_string()), (0, "high spend".to_string())],
        );
        assert_eq!(segs[2].label, "typical");
        assert_eq!(segs[0].label, "high spend");
        segs[0].mean_z = vec![0.2, 0.0];
        label_segments(&mut segs, &prepared);
        keep_previous_labels(&mut segs, &prepared, &[(0, "high spend".to_string())]);
        assert_eq!(segs[0].label, "typical");
    }
}
