//! One experiment's analysis: from each arm's aggregates of each metric (what one SQL
//! aggregation returns) to the rows of `experiment_results`: every treatment arm against the
//! control on every metric, raw and CUPED-adjusted, p-values adjusted across the metrics, and
//! the experiment's sample-ratio-mismatch test.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray, Float64Array, RecordBatch, StringArray, UInt64Array};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};

use super::stats::{
    Comparison, Moments, Summary, benjamini_hochberg, cuped_adjusted, cuped_theta, holm, pooled,
    ratio, sample_ratio_mismatch, two_proportions, welch, z_means,
};
use crate::config::ExperimentConfig;

/// The level of every interval (95%) and test.
pub const ALPHA: f64 = 0.05;
/// A sample-ratio-mismatch p-value below this flags the experiment: its arms' sizes are not
/// what the weights say, so its assignment or its data is broken and no result can be trusted.
pub const SRM_ALERT: f64 = 0.001;

/// One arm's aggregates of one metric: `y` the metric after entry, `x` its covariate (the
/// same metric before entry; for the ratio `aov`, `y` is revenue and `x` orders).
#[derive(Debug, Clone, PartialEq)]
pub struct ArmAggregate {
    /// The arm.
    pub arm: String,
    /// The metric.
    pub metric: String,
    /// Customers and moments.
    pub moments: Moments,
}

/// How a metric is compared.
fn test_of(metric: &str) -> &'static str {
    match metric {
        "conversion" => "two_proportion_z",
        "aov" => "delta_method_z",
        _ => "welch_t",
    }
}

/// One row of `experiment_results`: an arm's metric, and for a treatment arm its comparison
/// with the control.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ResultRow {
    /// The experiment's key.
    pub experiment: String,
    /// The metric.
    pub metric: String,
    /// The arm.
    pub arm: String,
    /// Whether the arm is the control (the first).
    pub is_control: bool,
    /// Customers.
    pub customers: u64,
    /// The arm's mean (conversion rate, revenue per customer, …; for aov, revenue / orders).
    pub mean: f64,
    /// Its standard error.
    pub std_error: f64,
    /// The test (`two_proportion_z`, `welch_t`, `delta_method_z`).
    pub test: &'static str,
    /// The comparison with the control (None for the control).
    pub raw: Option<Comparison>,
    /// Holm- or BH-adjusted p-value across the experiment's metrics, for this arm.
    pub p_adjusted: Option<f64>,
    /// CUPED's θ (the same for every arm of the metric); None for aov.
    pub cuped_theta: Option<f64>,
    /// The arm's CUPED-adjusted mean.
    pub cuped_mean: Option<f64>,
    /// The CUPED-adjusted comparison (Welch's t on the adjusted metric).
    pub cuped: Option<Comparison>,
    /// The adjusted CUPED p-value.
    pub cuped_p_adjusted: Option<f64>,
    /// The cap of the winsorised metric (None when not winsorised).
    pub cap: Option<f64>,
    /// The experiment's sample-ratio-mismatch p-value (χ² of customers per arm).
    pub srm_p_value: f64,
    /// Whether that p-value is below [`SRM_ALERT`].
    pub srm_alert: bool,
}

/// Why an experiment cannot be analysed.
#[derive(Debug, Clone, PartialEq)]
pub enum AnalysisError {
    /// An arm has no customers while another has some.
    EmptyArm(String),
}

/// Analyses `experiment` from its aggregates (one per arm and metric). `caps` are the
/// winsorisation caps by metric. An experiment without customers has no rows.
pub fn analyse(
    experiment: &ExperimentConfig,
    aggregates: &[ArmAggregate],
    caps: &BTreeMap<String, f64>,
) -> Result<Vec<ResultRow>, AnalysisError> {
    let customers = |arm: &str| {
        aggregates
            .iter()
            .find(|a| a.arm == arm)
            .map_or(0.0, |a| a.moments.n)
    };
    let counts: Vec<f64> = experiment.arms.iter().map(|a| customers(&a.name)).collect();
    if counts.iter().all(|n| *n == 0.0) {
        return Ok(Vec::new());
    }
    if let Some(arm) = experiment.arms.iter().find(|a| customers(&a.name) == 0.0) {
        return Err(AnalysisError::EmptyArm(arm.name.clone()));
    }
    let weights: Vec<f64> = experiment.arms.iter().map(|a| a.weight).collect();
    let (_, srm_p_value) = sample_ratio_mismatch(&counts, &weights);
    let control = &experiment.arms[0].name;
    let mut rows = Vec::new();
    for metric in &experiment.metrics {
        let of = |arm: &str| {
            aggregates
                .iter()
                .find(|a| a.arm == arm && &a.metric == metric)
                .map(|a| a.moments)
        };
        let arms: Vec<(String, Moments)> = experiment
            .arms
            .iter()
            .filter_map(|a| of(&a.name).map(|m| (a.name.clone(), m)))
            .collect();
        let Some(control_moments) = of(control) else {
            continue;
        };
        let is_ratio = metric == "aov";
        let all = pooled(&arms.iter().map(|(_, m)| *m).collect::<Vec<_>>());
        let theta = (!is_ratio).then(|| cuped_theta(all.cov_xy, all.var_x));
        let summary = |m: &Moments| {
            if is_ratio {
                ratio(m)
            } else {
                Summary {
                    n: m.n,
                    mean: m.mean_y,
                    variance: m.var_y,
                }
            }
        };
        let adjusted = |m: &Moments| theta.map(|t| cuped_adjusted(m, t, all.mean_x));
        let c = summary(&control_moments);
        for (arm, m) in &arms {
            let s = summary(m);
            let is_control = arm == control;
            let raw = (!is_control).then(|| match test_of(metric) {
                "two_proportion_z" => two_proportions(&c, &s, ALPHA),
                "delta_method_z" => z_means(&c, &s, ALPHA),
                _ => welch(&c, &s, ALPHA),
            });
            let cuped = match (adjusted(&control_moments), adjusted(m)) {
                (Some(ca), Some(ta)) if !is_control => Some(welch(&ca, &ta, ALPHA)),
                _ => None,
            };
            rows.push(ResultRow {
                experiment: experiment.key.clone(),
                metric: metric.clone(),
                arm: arm.clone(),
                is_control,
                customers: m.n as u64,
                mean: s.mean,
                std_error: (s.variance / s.n).sqrt(),
                test: test_of(metric),
                raw,
                p_adjusted: None,
                cuped_theta: theta,
                cuped_mean: adjusted(m).map(|a| a.mean),
                cuped,
                cuped_p_adjusted: None,
                cap: caps.get(metric).copied(),
                srm_p_value,
                srm_alert: srm_p_value < SRM_ALERT,
            });
        }
    }
    adjust_across_metrics(&mut rows, &experiment.correction);
    Ok(rows)
}

/// Fills `p_adjusted` and `cuped_p_adjusted`: each treatment arm's p-values adjusted across
/// the metrics by `correction`.
fn adjust_across_metrics(rows: &mut [ResultRow], correction: &str) {
    let adjust = |p: &[f64]| match correction {
        "holm" => holm(p),
        "benjamini_hochberg" => benjamini_hochberg(p),
        _ => p.to_vec(),
    };
    let arms: Vec<String> = rows
        .iter()
        .filter(|r| !r.is_control)
        .map(|r| r.arm.clone())
        .collect();
    for arm in arms {
        for cuped in [false, true] {
            let p_of = |r: &ResultRow| {
                let c = if cuped {
                    r.cuped.as_ref()
                } else {
                    r.raw.as_ref()
                };
                c.map(|c| c.p_value).filter(|p| p.is_finite())
            };
            let at: Vec<usize> = (0..rows.len())
                .filter(|&i| rows[i].arm == arm && p_of(&rows[i]).is_some())
                .collect();
            let p: Vec<f64> = at.iter().filter_map(|&i| p_of(&rows[i])).collect();
            for (i, q) in at.into_iter().zip(adjust(&p)) {
                if cuped {
                    rows[i].cuped_p_adjusted = Some(q);
                } else {
                    rows[i].p_adjusted = Some(q);
                }
            }
        }
    }
}

/// The schema of `experiment_results`.
pub fn schema() -> SchemaRef {
    let f = |name: &str| Field::new(name, DataType::Float64, true);
    Arc::new(Schema::new(vec![
        Field::new("experiment", DataType::Utf8, false),
        Field::new("metric", DataType::Utf8, false),
        Field::new("arm", DataType::Utf8, false),
        Field::new("is_control", DataType::Boolean, false),
        Field::new("customers", DataType::UInt64, false),
        f("mean"),
        f("std_error"),
        Field::new("test", DataType::Utf8, false),
        f("lift"),
        f("lift_low"),
        f("lift_high"),
        f("relative_lift"),
        f("relative_low"),
        f("relative_high"),
        f("p_value"),
        f("p_adjusted"),
        f("cuped_theta"),
        f("cuped_mean"),
        f("cuped_lift"),
        f("cuped_lift_low"),
        f("cuped_lift_high"),
        f("cuped_relative_lift"),
        f("cuped_relative_low"),
        f("cuped_relative_high"),
        f("cuped_p_value"),
        f("cuped_p_adjusted"),
        f("winsorized_at"),
        f("srm_p_value"),
        Field::new("srm_alert", DataType::Boolean, false),
    ]))
}

/// The rows as one batch of [`schema`]; NaN (an undefined figure) is written as NULL.
pub fn to_batch(rows: &[ResultRow]) -> arrow::error::Result<RecordBatch> {
    let text = |f: &dyn Fn(&ResultRow) -> &str| -> ArrayRef {
        Arc::new(StringArray::from_iter_values(rows.iter().map(f)))
    };
    let num = |f: &dyn Fn(&ResultRow) -> Option<f64>| -> ArrayRef {
        Arc::new(Float64Array::from_iter(
            rows.iter().map(|r| f(r).filter(|v| v.is_finite())),
        ))
    };
    let raw = |f: fn(&Comparison) -> f64| num(&move |r| r.raw.as_ref().map(f));
    let cuped = |f: fn(&Comparison) -> f64| num(&move |r| r.cuped.as_ref().map(f));
    let columns: Vec<ArrayRef> = vec![
        text(&|r| &r.experiment),
        text(&|r| &r.metric),
        text(&|r| &r.arm),
        Arc::new(BooleanArray::from_iter(
            rows.iter().map(|r| Some(r.is_control)),
        )),
        Arc::new(UInt64Array::from_iter_values(
            rows.iter().map(|r| r.customers),
        )),
        num(&|r| Some(r.mean)),
        num(&|r| Some(r.std_error)),
        text(&|r| r.test),
        raw(|c| c.lift),
        raw(|c| c.lift_low),
        raw(|c| c.lift_high),
        raw(|c| c.relative_lift),
        raw(|c| c.relative_low),
        raw(|c| c.relative_high),
        raw(|c| c.p_value),
        num(&|r| r.p_adjusted),
        num(&|r| r.cuped_theta),
        num(&|r| r.cuped_mean),
        cuped(|c| c.lift),
        cuped(|c| c.lift_low),
        cuped(|c| c.lift_high),
        cuped(|c| c.relative_lift),
        cuped(|c| c.relative_low),
        cuped(|c| c.relative_high),
        cuped(|c| c.p_value),
        num(&|r| r.cuped_p_adjusted),
        num(&|r| r.cap),
        num(&|r| Some(r.srm_p_value)),
        Arc::new(BooleanArray::from_iter(
            rows.iter().map(|r| Some(r.srm_alert)),
        )),
    ];
    RecordBatch::try_new(schema(), columns)
}

/// The rows of `experiment_results` batches (what [`to_batch`] wrote), for
/// `persona experiment report`.
pub fn from_batches(batches: &[RecordBatch]) -> arrow::error::Result<Vec<ResultRow>> {
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::{Float64Type, UInt64Type};
    let mut rows = Vec::new();
    for batch in batches {
        let column = |name: &str| -> arrow::error::Result<ArrayRef> {
            let i = batch.schema().index_of(name)?;
            Ok(Arc::clone(batch.column(i)))
        };
        let text = |name: &str, r: usize| -> arrow::error::Result<String> {
            let c = arrow::compute::cast(&column(name)?, &DataType::Utf8)?;
            Ok(c.as_string::<i32>().value(r).to_string())
        };
        let num = |name: &str, r: usize| -> arrow::error::Result<Option<f64>> {
            let c = arrow::compute::cast(&column(name)?, &DataType::Float64)?;
            let c = c.as_primitive::<Float64Type>();
            Ok(c.is_valid(r).then(|| c.value(r)))
        };
        let flag = |name: &str, r: usize| -> arrow::error::Result<bool> {
            let c = column(name)?;
            Ok(c.as_boolean().value(r))
        };
        let comparison = |prefix: &str, r: usize| -> arrow::error::Result<Option<Comparison>> {
            let get = |n: &str| num(&format!("{prefix}{n}"), r);
            let nan = |v: Option<f64>| v.unwrap_or(f64::NAN);
            Ok(match get("lift")? {
                None => None,
                Some(lift) => Some(Comparison {
                    lift,
                    lift_low: nan(get("lift_low")?),
                    lift_high: nan(get("lift_high")?),
                    relative_lift: nan(get("relative_lift")?),
                    relative_low: nan(get("relative_low")?),
                    relative_high: nan(get("relative_high")?),
                    statistic: f64::NAN,
                    df: None,
                    p_value: nan(get("p_value")?),
                }),
            })
        };
        let customers = arrow::compute::cast(&column("customers")?, &DataType::UInt64)?;
        let customers = customers.as_primitive::<UInt64Type>();
        for r in 0..batch.num_rows() {
            let test = match text("test", r)?.as_str() {
                "two_proportion_z" => "two_proportion_z",
                "delta_method_z" => "delta_method_z",
                _ => "welch_t",
            };
            rows.push(ResultRow {
                experiment: text("experiment", r)?,
                metric: text("metric", r)?,
                arm: text("arm", r)?,
                is_control: flag("is_control", r)?,
                customers: customers.value(r),
                mean: num("mean", r)?.unwrap_or(f64::NAN),
                std_error: num("std_error", r)?.unwrap_or(f64::NAN),
                test,
                raw: comparison("", r)?,
                p_adjusted: num("p_adjusted", r)?,
                cuped_theta: num("cuped_theta", r)?,
                cuped_mean: num("cuped_mean", r)?,
                cuped: comparison("cuped_", r)?,
                cuped_p_adjusted: num("cuped_p_adjusted", r)?,
                cap: num("winsorized_at", r)?,
                srm_p_value: num("srm_p_value", r)?.unwrap_or(f64::NAN),
                srm_alert: flag("srm_alert", r)?,
            });
        }
    }
    Ok(rows)
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "tests fail by panicking")]
mod tests {
    use super::*;
    use crate::config::PipelineConfig;

    fn experiment() -> ExperimentConfig {
        PipelineConfig::parse(
            "[[experiments]]\nkey = \"t\"\nstart = \"2026-11-01\"\n\
             arms = [{ name = \"control\", weight = 0.5 }, { name = \"email\", weight = 0.5 }]\n\
             metrics = [\"conversion\", \"revenue\", \"aov\"]\n",
        )
        .unwrap()
        .experiments
        .remove(0)
    }

    fn agg(arm: &str, metric: &str, n: f64, mean_y: f64, var_y: f64) -> ArmAggregate {
        ArmAggregate {
            arm: arm.into(),
            metric: metric.into(),
            moments: Moments {
                n,
                mean_y,
                var_y,
                mean_x: 1.0,
                var_x: 1.0,
                cov_xy: 0.5,
            },
        }
    }

    #[test]
    fn every_arm_and_metric_gets_a_row_and_treatments_a_comparison() {
        let aggregates = vec![
            agg("control", "conversion", 1000.0, 0.10, 0.09),
            agg("email", "conversion", 1000.0, 0.13, 0.1131),
            agg("control", "revenue", 1000.0, 5.0, 100.0),
            agg("email", "revenue", 1000.0, 6.0, 110.0),
            agg("control", "aov", 1000.0, 5.0, 100.0),
            agg("email", "aov", 1000.0, 6.0, 110.0),
        ];
        let rows = analyse(&experiment(), &aggregates, &BTreeMap::new()).unwrap();
        assert_eq!(rows.len(), 6);
        let email = |m: &str| {
            rows.iter()
                .find(|r| r.arm == "email" && r.metric == m)
                .unwrap()
        };
        assert_eq!(email("conversion").test, "two_proportion_z");
        assert!((email("conversion").raw.unwrap().lift - 0.03).abs() < 1e-12);
        // Holm over three p-values: the smallest is multiplied by 3.
        let ps: Vec<f64> = ["conversion", "revenue", "aov"]
            .iter()
            .map(|m| email(m).raw.unwrap().p_value)
            .collect();
        let smallest = ps.iter().copied().fold(f64::INFINITY, f64::min);
        let adjusted = rows
            .iter()
            .filter_map(|r| r.p_adjusted)
            .fold(f64::INFINITY, f64::min);
        assert!((adjusted - (3.0 * smallest).min(1.0)).abs() < 1e-12);
        assert!(email("aov").cuped.is_none() && email("revenue").cuped.is_some());
        assert!(rows.iter().all(|r| !r.srm_alert));
        // What the table holds reads back as the same rows (the test statistic is not kept).
        let back = from_batches(&[to_batch(&rows).unwrap()]).unwrap();
        assert_eq!(back.len(), 6);
        let email_back = back
            .iter()
            .find(|r| r.arm == "email" && r.metric == "revenue")
            .unwrap();
        let (a, b) = (email_back.cuped.unwrap(), email("revenue").cuped.unwrap());
        assert_eq!(
            (a.lift, a.p_value, a.relative_high),
            (b.lift, b.p_value, b.relative_high)
        );
        assert_eq!(email_back.p_adjusted, email("revenue").p_adjusted);
    }

    #[test]
    fn an_empty_arm_is_refused_and_a_skewed_split_alerts() {
        let only_control = vec![agg("control", "conversion", 10.0, 0.1, 0.09)];
        assert_eq!(
            analyse(&experiment(), &only_control, &BTreeMap::new()),
            Err(AnalysisError::EmptyArm("email".into()))
        );
        assert!(
            analyse(&experiment(), &[], &BTreeMap::new())
                .unwrap()
                .is_empty()
        );
        let skewed = vec![
            agg("control", "conversion", 5300.0, 0.1, 0.09),
            agg("email", "conversion", 4700.0, 0.1, 0.09),
        ];
        let rows = analyse(&experiment(), &skewed, &BTreeMap::new()).unwrap();
        assert!(
            rows.iter().all(|r| r.srm_alert),
            "{:?}",
            rows[0].srm_p_value
        );
    }
}
