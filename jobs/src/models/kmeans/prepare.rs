//! Feature preparation: which columns become clustering coordinates, and how.
//!
//! Each numeric feature is optionally log-transformed (`ln(1 + max(x, 0))`, for heavy-tailed
//! money and counts), standardised to a z-score, and its nulls imputed with the mean (counted in
//! the report). Each categorical feature becomes one indicator per value (one-hot: 1 when the
//! row has that value, else 0; a null is 0 in all of them), standardised like any other. With the cosine distance every point is then scaled to unit length. All of it is
//! SQL over the source table, written once by [`Prepared::points_sql`], so the fit, the
//! assignment and any later re-assignment compute exactly the same coordinates, locally or on
//! a cluster.

use arrow::array::AsArray;
use arrow::datatypes::{DataType, Float64Type};
use datafusion::prelude::SessionContext;
use serde::Serialize;

use persona_udfs::ml::Centroids;

use crate::config::{Distance, SegmentsConfig};
use crate::engine::tables::quote;
use crate::error::{PipelineError, Result};

/// How one feature becomes a coordinate: `(t(x) − shift) / scale`, nulls replaced by `impute`.
#[derive(Debug, Clone, Serialize)]
pub struct FeatureScale {
    /// Feature name: the column, or `column=value` for a categorical column's indicator.
    pub name: String,
    /// The column it is computed from.
    pub column: String,
    /// For a categorical column's indicator, the value it marks (`t(x) = 1` when the column
    /// equals it, else 0).
    pub category: Option<String>,
    /// Whether `t(x) = ln(1 + max(x, 0))` (otherwise `t(x) = x`).
    pub log: bool,
    /// Subtracted after the transform (the mean when standardising, else 0).
    pub shift: f64,
    /// Divided by after shifting (the standard deviation when standardising, else 1).
    pub scale: f64,
    /// The coordinate of a row whose value is null (the mean).
    pub impute: f64,
    /// Mean of `t(x)`, for describing segments in standard deviations.
    pub mean: f64,
    /// Standard deviation of `t(x)`.
    pub std: f64,
    /// Rows whose value was null.
    pub imputed: u64,
    /// The group the feature belongs to: its `[segments] feature_groups` group, or one of
    /// behaviour, channel, taste, crm and other ([`default_group`]), for describing segments
    /// group by group.
    pub group: String,
    /// The coordinate's multiplier after standardising: `weight / sqrt(width)` of its group
    /// with `feature_groups` (block weighting), else 1. A centroid's coordinate is its mean
    /// z-score times this.
    pub weight: f64,
}

/// `t(x)` as SQL: a column's value (its logarithm when `log`), or the indicator of `category`.
fn transform_sql(column: &str, log: bool, category: Option<&str>) -> String {
    if let Some(value) = category {
        return format!(
            "CASE WHEN CAST({} AS VARCHAR) = '{}' THEN 1.0 ELSE 0.0 END",
            quote(column),
            value.replace('\'', "''")
        );
    }
    let x = format!("CAST({} AS DOUBLE)", quote(column));
    if log {
        // Not `greatest(x, 0)`: it skips a null argument and so turns a null into 0, which
        // would cluster a missing value (no order: no order value) as a zero instead of
        // imputing it with the mean, as the report says.
        format!("ln(1 + CASE WHEN {x} < 0 THEN 0.0 ELSE {x} END)")
    } else {
        x
    }
}

/// Values of one categorical column that get an indicator: the most frequent ones. Rarer
/// values (and nulls) are 0 in every indicator, a category of their own.
pub const MAX_CATEGORIES: usize = 20;

impl FeatureScale {
    /// `t(x)` as SQL.
    fn transformed(&self) -> String {
        transform_sql(&self.column, self.log, self.category.as_deref())
    }

    /// The feature's value before standardising, as SQL: the column, or its indicator (a
    /// segment's mean of it is the share of its members with that value).
    pub fn value_sql(&self) -> String {
        transform_sql(&self.column, false, self.category.as_deref())
    }

    /// The coordinate as SQL.
    fn coordinate(&self) -> String {
        format!(
            "COALESCE(({} - {:e}) / {:e}, {:e})",
            self.transformed(),
            self.shift,
            self.scale,
            self.impute
        )
    }

    /// The z-score of the feature as SQL (whether or not the fit standardises), for describing
    /// segments.
    pub fn z_sql(&self) -> String {
        format!(
            "COALESCE(({} - {:e}) / {:e}, 0.0)",
            self.transformed(),
            self.mean,
            if self.std > 1e-12 { self.std } else { 1.0 }
        )
    }
}

/// What to do with a feature that is null in every row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AllNull {
    /// Stop with a clear error (`persona kmeans`, where the user named the features).
    Fail,
    /// Leave it out, with a warning and a note in the report (the nightly job, where an
    /// optional source such as the item catalog may be missing for a night).
    Drop,
}

/// The prepared features of one fit.
#[derive(Debug, Clone, Serialize)]
pub struct Prepared {
    /// One entry per feature, in order.
    pub scales: Vec<FeatureScale>,
    /// Configured features left out because they were null in every row.
    pub dropped: Vec<String>,
    /// The weight column, if any.
    pub weight: Option<String>,
    /// Whether points are scaled to unit length (cosine distance).
    pub cosine: bool,
    /// Rows in the source table.
    pub rows: u64,
}

/// Name of the `i`-th coordinate column in prepared points.
pub fn coordinate_column(i: usize) -> String {
    format!("__z{i}")
}

/// Name of the weight column in prepared points.
pub const WEIGHT_COLUMN: &str = "__w";

impl Prepared {
    /// Centroids in clustering coordinates from centroids in mean z-scores (the published
    /// `centroid_z`): each feature times its block weight.
    pub fn coordinates_from_z(&self, z: &Centroids) -> Centroids {
        self.rescale(z, |v, w| v * w)
    }

    /// Centroids in mean z-scores from centroids in clustering coordinates.
    pub fn z_from_coordinates(&self, coordinates: &Centroids) -> Centroids {
        self.rescale(coordinates, |v, w| v / w)
    }

    fn rescale(&self, c: &Centroids, f: impl Fn(f64, f64) -> f64) -> Centroids {
        let d = c.d();
        let values = c
            .values()
            .iter()
            .enumerate()
            .map(|(i, v)| f(*v, self.scales.get(i % d).map_or(1.0, |s| s.weight)))
            .collect();
        // Same k and d as `c`, so never None.
        Centroids::new(c.k(), d, values).unwrap_or_else(|| c.clone())
    }

    /// The coordinate column names, in feature order.
    pub fn columns(&self) -> Vec<String> {
        (0..self.scales.len()).map(coordinate_column).collect()
    }

    /// SQL selecting, from `source`, the `keep` columns and the coordinates (and the weight,
    /// when there is one).
    ///
    /// Coordinates are computed in double precision and stored in single precision (`FLOAT`):
    /// a Lloyd pass over points larger than the caches reads every byte of them, and half the
    /// bytes took a pass over 2M × 30 points on two cores from 23.3 to 20.2 ms (200k: 2.4 to
    /// 2.2 ms; `scripts/bench-kmeans.sh`). The kernels widen them back to `f64` (exactly) for
    /// every computation; the rounding moves a coordinate by at most 2⁻²⁴ of its magnitude,
    /// far below any feature's noise.
    pub fn points_sql(&self, source: &str, keep: &[String]) -> String {
        let keep: Vec<String> = keep.iter().map(|c| quote(c)).collect();
        let cols = self.columns();
        let mut inner: Vec<String> = keep.clone();
        let stored = |c: &str, expr: String| {
            if self.cosine {
                format!("{expr} AS {c}")
            } else {
                format!("CAST({expr} AS FLOAT) AS {c}")
            }
        };
        inner.extend(
            self.scales
                .iter()
                .zip(&cols)
                .map(|(s, c)| stored(c, s.coordinate())),
        );
        if let Some(w) = &self.weight {
            inner.push(format!("CAST({} AS DOUBLE) AS {WEIGHT_COLUMN}", quote(w)));
        }
        let inner = format!("SELECT {} FROM {source}", inner.join(", "));
        if !self.cosine {
            return inner;
        }
        let norm = cols
            .iter()
            .map(|c| format!("{c} * {c}"))
            .collect::<Vec<_>>()
            .join(" + ");
        let mut outer = keep;
        outer.extend(cols.iter().map(|c| {
            format!("CAST(CASE WHEN __norm > 0 THEN {c} / __norm ELSE 0.0 END AS FLOAT) AS {c}")
        }));
        if self.weight.is_some() {
            outer.push(WEIGHT_COLUMN.to_string());
        }
        format!(
            "SELECT {} FROM (SELECT *, sqrt({norm}) AS __norm FROM ({inner}))",
            outer.join(", ")
        )
    }
}

/// Checks the configured features of `source` and computes their statistics.
pub async fn prepare(
    ctx: &SessionContext,
    source: &str,
    cfg: &SegmentsConfig,
    all_null: AllNull,
) -> Result<Prepared> {
    let table = ctx.table(source).await?;
    let schema = table.schema().as_arrow().clone();
    let numeric: Vec<&str> = schema
        .fields()
        .iter()
        .filter(|f| f.data_type().is_numeric())
        .map(|f| f.name().as_str())
        .collect();
    let check = |name: &str, what: &str| match schema.field_with_name(name) {
        Ok(f) if f.data_type().is_numeric() => Ok(()),
        Ok(f) => Err(PipelineError::Config(format!(
            "{what} '{name}' of {source} is a {} column, expected a numeric one (numeric columns: {})",
            type_name(f.data_type()),
            numeric.join(", ")
        ))),
        Err(_) => Err(PipelineError::Config(format!(
            "{source} has no column '{name}' ({what}); numeric columns are: {}",
            numeric.join(", ")
        ))),
    };
    if let Some(w) = &cfg.weight_column {
        check(w, "weight column")?;
    }
    let is_log = |name: &str| cfg.log_features.iter().any(|p| matches_pattern(p, name));
    // Every coordinate, in order.
    let mut specs: Vec<Spec> = Vec::new();
    for block in cfg.blocks() {
        let group = block.group.clone();
        for name in expand_patterns(&block.features, &numeric) {
            check(&name, "feature")?;
            if specs.iter().any(|s| s.name == name) {
                return Err(duplicate(&name));
            }
            specs.push(Spec {
                log: is_log(&name),
                column: name.clone(),
                category: None,
                group: group.clone(),
                name,
            });
        }
        for column in &block.categorical {
            for value in categories(ctx, source, &schema, column).await? {
                let name = format!("{column}={value}");
                if specs.iter().any(|s| s.name == name) {
                    return Err(duplicate(&name));
                }
                specs.push(Spec {
                    name,
                    column: column.clone(),
                    category: Some(value),
                    log: false,
                    group: group.clone(),
                });
            }
        }
    }
    let mut aggregates = vec!["COUNT(*)".to_string()];
    for spec in &specs {
        let t = transform_sql(&spec.column, spec.log, spec.category.as_deref());
        aggregates.push(format!("avg({t})"));
        aggregates.push(format!("stddev_pop({t})"));
        // The transform keeps nulls and makes none, so this counts the column's values; an
        // indicator is never null (a null category is 0 in every indicator).
        aggregates.push(format!("COUNT({t})"));
    }
    // Aliases give every aggregate a short unique name (DataFusion names them by expression).
    let select: Vec<String> = aggregates
        .iter()
        .enumerate()
        .map(|(i, a)| format!("{a} AS a{i}"))
        .collect();
    let batches = ctx
        .sql(&format!("SELECT {} FROM {source}", select.join(", ")))
        .await?
        .collect()
        .await?;
    let row = first_row_f64(&batches, aggregates.len())?;
    let rows = row[0].unwrap_or(0.0) as u64;
    if rows == 0 {
        return Err(PipelineError::BadInput(format!(
            "{source} has no rows: nothing to cluster"
        )));
    }
    let mut scales = Vec::new();
    let mut dropped = Vec::new();
    for (i, spec) in specs.into_iter().enumerate() {
        let Spec {
            name,
            column,
            category,
            log,
            group,
        } = spec;
        let (mean, std, present) = (row[1 + 3 * i], row[2 + 3 * i], row[3 + 3 * i]);
        let (Some(mean), Some(std)) = (mean, std) else {
            let message = format!(
                "feature '{name}' is null in all {rows} rows of {source}: nothing to cluster on"
            );
            if all_null == AllNull::Fail {
                return Err(PipelineError::BadInput(format!(
                    "{message} (remove it from the features)"
                )));
            }
            tracing::warn!("{message}; clustering without it");
            dropped.push(name);
            continue;
        };
        let (mean, std) = (significant(mean), significant(std));
        let std_or_one = if std > 1e-12 { std } else { 1.0 };
        let (group, weight) = match group {
            Some((g, w)) => (g, w),
            None => (default_group(&column).to_string(), 1.0),
        };
        scales.push(FeatureScale {
            name,
            column,
            category,
            log,
            shift: if cfg.standardize { mean } else { 0.0 },
            scale: if cfg.standardize { std_or_one } else { 1.0 },
            impute: if cfg.standardize { 0.0 } else { mean },
            mean,
            std,
            imputed: rows - present.unwrap_or(0.0) as u64,
            group,
            weight,
        });
    }
    if !cfg.feature_groups.is_empty() {
        weigh_blocks(&mut scales);
    }
    if scales.is_empty() {
        return Err(PipelineError::BadInput(format!(
            "every feature ({}) is null in all {rows} rows of {source}: nothing to cluster on",
            dropped.join(", ")
        )));
    }
    Ok(Prepared {
        scales,
        dropped,
        weight: cfg.weight_column.clone(),
        cosine: cfg.distance == Distance::Cosine,
        rows,
    })
}

/// One coordinate to compute: the feature's name, its column (and category), whether it is
/// log-transformed, and its `feature_groups` group with the group's weight.
struct Spec {
    name: String,
    column: String,
    category: Option<String>,
    log: bool,
    group: Option<(String, f64)>,
}

fn duplicate(name: &str) -> PipelineError {
    PipelineError::Config(format!(
        "feature '{name}' is named twice in [segments] (each feature belongs to one group)"
    ))
}

/// Block weighting: each feature of a group of `n` features (after patterns, one-hot and
/// all-null features) gets `group weight / sqrt(n)`, so that every group adds its weight to the
/// squared distance's expected value whatever its width. `weight` holds the group's weight on
/// entry and the feature's multiplier on return; `scale` and `impute` carry it into the SQL.
fn weigh_blocks(scales: &mut [FeatureScale]) {
    let widths: Vec<usize> = scales
        .iter()
        .map(|s| scales.iter().filter(|o| o.group == s.group).count())
        .collect();
    for (s, width) in scales.iter_mut().zip(widths) {
        s.weight /= (width as f64).sqrt();
        s.scale /= s.weight;
        s.impute *= s.weight;
    }
}

/// The group a feature of `user_features` belongs to when `feature_groups` does not say:
/// behaviour (activity, orders, spend, focus), channel (platforms, times of day), taste
/// (interest shares, price level), crm (the CRM export's attributes), or other.
pub fn default_group(feature: &str) -> &'static str {
    let column = feature.split_once('=').map_or(feature, |(c, _)| c);
    match column {
        "web_views" | "app_views" => "channel",
        "price_index" => "taste",
        "age" | "tenure_days" | "annual_income" | "loyalty_tier" | "gender" | "country"
        | "marketing_opt_in" => "crm",
        c if c.starts_with("share_") => "channel",
        c if c.starts_with("interest_") => "taste",
        "recency_days" | "events" | "sessions" | "active_days" | "purchases" | "monetary"
        | "avg_order_value" | "conversion_rate" | "categories_seen" | "top_category_share" => {
            "behaviour"
        }
        _ => "other",
    }
}

/// The values of the categorical feature `column` that get an indicator: the
/// [`MAX_CATEGORIES`] most frequent non-null ones, in alphabetical order (so that the features,
/// and with them the segment ids, stay the same from night to night while the values do).
async fn categories(
    ctx: &SessionContext,
    source: &str,
    schema: &arrow::datatypes::Schema,
    column: &str,
) -> Result<Vec<String>> {
    let field = schema.field_with_name(column).map_err(|_| {
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        PipelineError::Config(format!(
            "{source} has no column '{column}' (categorical feature); columns are: {}",
            names.join(", ")
        ))
    })?;
    if field.data_type().is_nested() {
        return Err(PipelineError::Config(format!(
            "categorical feature '{column}' of {source} is a {} column, expected a string, \
             boolean or integer one",
            type_name(field.data_type())
        )));
    }
    let sql = format!(
        "SELECT v FROM (SELECT CAST({c} AS VARCHAR) AS v, COUNT(*) AS n FROM {source} \
         WHERE {c} IS NOT NULL GROUP BY 1 ORDER BY n DESC, v LIMIT {MAX_CATEGORIES}) ORDER BY v",
        c = quote(column)
    );
    let batches = ctx.sql(&sql).await?.collect().await?;
    let mut values = Vec::new();
    for batch in &batches {
        let col = arrow::compute::cast(batch.column(0), &DataType::Utf8)?;
        values.extend(col.as_string::<i32>().iter().flatten().map(str::to_string));
    }
    Ok(values)
}

/// The configured features with every pattern (`prefix*`) replaced by the numeric columns it
/// matches, in the table's order: `interest_*` is one column per catalog category, whatever the
/// catalog. A pattern that matches nothing (a night without a catalog) adds no feature.
pub fn expand_patterns(features: &[String], numeric: &[&str]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for f in features {
        let names: Vec<String> = if f.ends_with('*') {
            numeric
                .iter()
                .filter(|n| matches_pattern(f, n))
                .map(|n| n.to_string())
                .collect()
        } else {
            vec![f.clone()]
        };
        for n in names {
            if !out.contains(&n) {
                out.push(n);
            }
        }
    }
    out
}

/// Whether `name` is `pattern`, or starts with it when it ends with `*`.
fn matches_pattern(pattern: &str, name: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => pattern == name,
    }
}

/// A type as a user would name it.
fn type_name(t: &DataType) -> String {
    match t {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "string".into(),
        DataType::Boolean => "boolean".into(),
        other => other.to_string(),
    }
}

/// `x` rounded to 10 significant digits. Means and deviations are sums over partitions whose
/// order varies between runs (last-bit differences); rounding them keeps the standardisation,
/// and so the segments, identical from run to run.
pub fn significant(x: f64) -> f64 {
    if x == 0.0 || !x.is_finite() {
        return x;
    }
    let scale = 10f64.powi(9 - x.abs().log10().floor() as i32);
    (x * scale).round() / scale
}

/// The first row of a result, every column as an optional f64.
pub fn first_row_f64(
    batches: &[arrow::record_batch::RecordBatch],
    columns: usize,
) -> Result<Vec<Option<f64>>> {
    let batch = batches
        .iter()
        .find(|b| b.num_rows() > 0)
        .ok_or_else(|| PipelineError::Internal("aggregate returned no row".into()))?;
    (0..columns)
        .map(|c| {
            let col = arrow::compute::cast(batch.column(c), &DataType::Float64)?;
            let col = col.as_primitive::<Float64Type>();
            Ok((!arrow::array::Array::is_null(col, 0)).then(|| col.value(0)))
        })
        .collect()
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "tests fail by panicking")]
mod tests {
    use super::*;

    #[test]
    fn every_group_weighs_its_weight_however_wide() {
        let scale = |name: &str, group: &str, weight: f64| FeatureScale {
            name: name.into(),
            column: name.into(),
            category: None,
            log: false,
            shift: 0.0,
            scale: 2.0,
            impute: 0.0,
            mean: 0.0,
            std: 2.0,
            imputed: 0,
            group: group.into(),
            weight,
        };
        let mut scales = vec![
            scale("a", "one", 1.0),
            scale("b", "four", 1.0),
            scale("c", "four", 1.0),
            scale("d", "four", 1.0),
            scale("e", "four", 1.0),
        ];
        weigh_blocks(&mut scales);
        let weights: Vec<f64> = scales.iter().map(|s| s.weight).collect();
        assert_eq!(weights, vec![1.0, 0.5, 0.5, 0.5, 0.5]);
        // Sum of squared weights per group: what each adds to the expected squared distance.
        assert_eq!(
            scales[1..].iter().map(|s| s.weight * s.weight).sum::<f64>(),
            1.0
        );
        assert_eq!(scales[1].scale, 4.0);
        let prepared = Prepared {
            scales,
            dropped: vec![],
            weight: None,
            cosine: false,
            rows: 1,
        };
        let z = Centroids::new(1, 5, vec![1.0, 1.0, 2.0, -2.0, 0.0]).unwrap();
        let c = prepared.coordinates_from_z(&z);
        assert_eq!(c.values(), &[1.0, 0.5, 1.0, -1.0, 0.0]);
        assert_eq!(prepared.z_from_coordinates(&c).values(), z.values());
        assert_eq!(default_group("interest_books"), "taste");
        assert_eq!(default_group("loyalty_tier=gold"), "crm");
        assert_eq!(default_group("share_ios"), "channel");
    }

    #[test]
    fn patterns_expand_to_the_numeric_columns_they_match_in_table_order() {
        let numeric = ["sessions", "interest_shoes", "interest_books", "monetary"];
        let features: Vec<String> = ["interest_*", "sessions", "interest_shoes", "garden_*"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(
            expand_patterns(&features, &numeric),
            ["interest_shoes", "interest_books", "sessions"]
        );
        assert!(matches_pattern("monetary", "monetary"));
        assert!(!matches_pattern("monetary", "monetary_2"));
    }
}
