//! The night's A/B tests, second part: what each experiment did (`experiment_results`).
//!
//! `sql/34_experiment_customers.sql` measures every assigned customer after and before entry;
//! this stage aggregates those rows in one pass per experiment and arm (COUNT, AVG, VAR_SAMP,
//! COVAR_SAMP of each metric and its covariate), so only a few numbers per arm reach the
//! driver, where [`analysis::analyse`] turns them into lifts, intervals and p-values.
//! Winsorised experiments first get their caps, exact percentiles over their customers.

use std::collections::BTreeMap;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Float64Type};
use async_trait::async_trait;
use datafusion::prelude::SessionContext;
use serde::Serialize;

use super::dry_run::register_empty;
use super::night::Night;
use super::record::Report;
use super::registry::Stage;
use super::unit::Unit;
use crate::config::{ExperimentConfig, PipelineConfig};
use crate::error::{PipelineError, Result};
use crate::models::experiments::analysis::{self, AnalysisError, ArmAggregate, ResultRow};
use crate::models::experiments::stats::Moments;

/// The per-customer table the stage reads.
pub const CUSTOMERS: &str = "experiment_customers";
/// The table it writes.
pub const TABLE: &str = "experiment_results";

/// Each metric's value after entry (`y`) and its covariate (`x`), as columns of
/// [`CUSTOMERS`]: the same metric before entry, or for the ratio `aov` (revenue / orders) its
/// denominator.
const COLUMNS: [(&str, &str, &str); 5] = [
    ("conversion", "conversion", "pre_conversion"),
    ("revenue", "revenue", "pre_revenue"),
    ("orders", "orders", "pre_orders"),
    ("aov", "revenue", "orders"),
    ("sessions", "sessions", "pre_sessions"),
];
/// The columns winsorisation caps (counts and money; conversion is 0 or 1).
const CAPPED: [&str; 6] = [
    "revenue",
    "orders",
    "sessions",
    "pre_revenue",
    "pre_orders",
    "pre_sessions",
];

/// The stage: registers `experiment_results`.
#[derive(Debug)]
pub struct Results;

/// What the analysis found, for the manifest (in short: the table has every figure) and the
/// run summary.
#[derive(Debug, Clone, Serialize, Default)]
pub struct ResultsReport {
    /// Per experiment and treatment arm: the relative lift and adjusted p-value of each metric,
    /// and the sample-ratio test.
    pub experiments: Vec<ArmFinding>,
    /// Every row of `experiment_results`, for the summary.
    #[serde(skip)]
    rows: Vec<ResultRow>,
}

/// One treatment arm's findings, for the manifest.
#[derive(Debug, Clone, Serialize)]
pub struct ArmFinding {
    /// The experiment.
    pub experiment: String,
    /// The treatment arm.
    pub arm: String,
    /// Its customers.
    pub customers: u64,
    /// The experiment's sample-ratio p-value, and whether it is below 0.001.
    pub srm_p_value: f64,
    /// Whether the sample-ratio test alerts.
    pub srm_alert: bool,
    /// `(metric, relative lift, adjusted p-value)`.
    pub metrics: Vec<(String, Option<f64>, Option<f64>)>,
}

/// Experiments the run summary prints in full; `persona experiment report` prints any.
const SUMMARY_EXPERIMENTS: usize = 3;

impl ResultsReport {
    fn new(rows: Vec<ResultRow>) -> Self {
        let mut arms: Vec<&ResultRow> = Vec::new();
        for r in rows.iter().filter(|r| !r.is_control) {
            if !arms
                .iter()
                .any(|a| a.experiment == r.experiment && a.arm == r.arm)
            {
                arms.push(r);
            }
        }
        let experiments = arms
            .iter()
            .map(|r| ArmFinding {
                experiment: r.experiment.clone(),
                arm: r.arm.clone(),
                customers: r.customers,
                srm_p_value: r.srm_p_value,
                srm_alert: r.srm_alert,
                metrics: rows
                    .iter()
                    .filter(|x| x.experiment == r.experiment && x.arm == r.arm)
                    .map(|x| {
                        let lift = x.raw.map(|c| c.relative_lift).filter(|v| v.is_finite());
                        (x.metric.clone(), lift, x.p_adjusted)
                    })
                    .collect(),
            })
            .collect();
        Self { experiments, rows }
    }
}

impl Report for ResultsReport {
    const KEY: &'static str = "experiment_results";

    fn summary(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut keys: Vec<&str> = self.rows.iter().map(|r| r.experiment.as_str()).collect();
        keys.dedup();
        let shown: Vec<ResultRow> = self
            .rows
            .iter()
            .filter(|r| {
                keys.iter()
                    .take(SUMMARY_EXPERIMENTS)
                    .any(|k| *k == r.experiment)
            })
            .cloned()
            .collect();
        if !shown.is_empty() {
            write!(f, "\n{}", readable(&shown))?;
        }
        if keys.len() > SUMMARY_EXPERIMENTS {
            let alerts = self.experiments.iter().filter(|e| e.srm_alert).count();
            writeln!(
                f,
                "  … and {} more experiments ({alerts} with a sample-ratio alert): \
                 persona experiment report KEY",
                keys.len() - SUMMARY_EXPERIMENTS
            )?;
        }
        Ok(())
    }
}

#[async_trait(?Send)]
impl Unit for Results {
    fn code(&self) -> &'static str {
        "jobs/src/stages/experiment_results.rs"
    }

    fn off_by_config(&self, config: &PipelineConfig) -> bool {
        config.experiments.is_empty()
    }

    async fn run(&self, _stage: &Stage, night: &mut Night<'_>) -> Result<u64> {
        let rows = analyse_table(night.ctx, &night.config.experiments).await?;
        let batch = analysis::to_batch(&rows)?;
        let written = night.work.write_batch(night.ctx, TABLE, &batch).await?;
        night.record.reports.put(ResultsReport::new(rows));
        Ok(written)
    }

    async fn plan(&self, _stage: &Stage, night: &mut Night<'_>) -> Result<String> {
        if night.config.experiments.is_empty() {
            return Ok("no [[experiments]] declared: nothing to analyse\n".into());
        }
        night
            .ctx
            .sql(&aggregate_sql(&night.config.experiments, &BTreeMap::new()))
            .await?;
        register_empty(night.ctx, TABLE, analysis::schema())?;
        Ok(format!(
            "aggregate {CUSTOMERS} per experiment and arm, then compare every arm with the \
             control on each metric ({} experiment(s))\n",
            night.config.experiments.len()
        ))
    }
}

/// Analyses every experiment of `experiments` from the registered [`CUSTOMERS`] table: the
/// rows of `experiment_results`. An arm without customers in an experiment that has some is
/// a configuration error (exit 4) naming both.
pub async fn analyse_table(
    ctx: &SessionContext,
    experiments: &[ExperimentConfig],
) -> Result<Vec<ResultRow>> {
    let caps = caps(ctx, experiments).await?;
    let batches = ctx
        .sql(&aggregate_sql(experiments, &caps))
        .await?
        .collect()
        .await?;
    let aggregates = read_aggregates(&batches)?;
    let mut rows = Vec::new();
    for e in experiments {
        let mine: Vec<ArmAggregate> = aggregates
            .iter()
            .filter(|(key, _)| *key == e.key)
            .map(|(_, a)| a.clone())
            .collect();
        let metric_caps: BTreeMap<String, f64> = caps
            .get(&e.key)
            .map(|c| {
                COLUMNS
                    .iter()
                    .filter_map(|(metric, y, _)| c.get(*y).map(|v| (metric.to_string(), *v)))
                    .collect()
            })
            .unwrap_or_default();
        match analysis::analyse(e, &mine, &metric_caps) {
            Ok(r) => rows.extend(r),
            Err(AnalysisError::EmptyArm(arm)) => {
                return Err(PipelineError::Config(format!(
                    "experiments: experiment '{}': arm '{arm}' has no customers while the \
                     others have some (check its weight and the eligibility predicate)",
                    e.key
                )));
            }
        }
    }
    Ok(rows)
}

/// The winsorisation caps of the experiments that ask for them: experiment → column → the
/// column's `winsorize` percentile over the experiment's customers (`percentile_cont`, exact,
/// interpolated as numpy's default).
async fn caps(
    ctx: &SessionContext,
    experiments: &[ExperimentConfig],
) -> Result<BTreeMap<String, BTreeMap<String, f64>>> {
    let parts: Vec<String> = experiments
        .iter()
        .filter_map(|e| e.winsorize.map(|p| (e, p)))
        .map(|(e, p)| {
            let caps: Vec<String> = CAPPED
                .iter()
                .map(|c| format!("percentile_cont({p:?}) WITHIN GROUP (ORDER BY {c}) AS {c}"))
                .collect();
            format!(
                "SELECT '{}' AS experiment, {} FROM {CUSTOMERS} WHERE experiment = '{}'",
                e.key,
                caps.join(", "),
                e.key
            )
        })
        .collect();
    let mut out = BTreeMap::new();
    if parts.is_empty() {
        return Ok(out);
    }
    for batch in ctx.sql(&parts.join(" UNION ALL ")).await?.collect().await? {
        let key = arrow::compute::cast(batch.column(0), &DataType::Utf8)?;
        for r in 0..batch.num_rows() {
            let mut caps = BTreeMap::new();
            for (i, c) in CAPPED.iter().enumerate() {
                let col = arrow::compute::cast(batch.column(i + 1), &DataType::Float64)?;
                let col = col.as_primitive::<Float64Type>();
                if col.is_valid(r) {
                    caps.insert(c.to_string(), col.value(r));
                }
            }
            out.insert(key.as_string::<i32>().value(r).to_string(), caps);
        }
    }
    Ok(out)
}

/// One scan of [`CUSTOMERS`]: per experiment and arm, the customers and, for each metric,
/// the mean and variance of `y` and `x` and their covariance (capped where winsorised).
fn aggregate_sql(
    experiments: &[ExperimentConfig],
    caps: &BTreeMap<String, BTreeMap<String, f64>>,
) -> String {
    let capped = |column: &str| {
        let whens: Vec<String> = caps
            .iter()
            .filter_map(|(key, c)| {
                c.get(column)
                    .map(|v| format!("WHEN '{key}' THEN LEAST({column}, {v:e})"))
            })
            .collect();
        if whens.is_empty() {
            column.to_string()
        } else {
            format!("CASE experiment {} ELSE {column} END", whens.join(" "))
        }
    };
    let mut inner = vec!["experiment".to_string(), "arm".to_string()];
    let mut outer = vec![
        "experiment".to_string(),
        "arm".to_string(),
        "COUNT(*) AS customers".to_string(),
    ];
    for (metric, y, x) in COLUMNS {
        inner.push(format!("CAST({} AS DOUBLE) AS y_{metric}", capped(y)));
        inner.push(format!("CAST({} AS DOUBLE) AS x_{metric}", capped(x)));
        outer.push(format!(
            "AVG(y_{metric}), VAR_SAMP(y_{metric}), AVG(x_{metric}), VAR_SAMP(x_{metric}), \
             COVAR_SAMP(x_{metric}, y_{metric})"
        ));
    }
    let keys: Vec<String> = experiments.iter().map(|e| format!("'{}'", e.key)).collect();
    format!(
        "SELECT {} FROM (SELECT {} FROM {CUSTOMERS} WHERE experiment IN ({})) \
         GROUP BY experiment, arm ORDER BY experiment, arm",
        outer.join(", "),
        inner.join(", "),
        if keys.is_empty() {
            "NULL".to_string()
        } else {
            keys.join(", ")
        }
    )
}

/// `(experiment, aggregate)` for every arm and metric of the aggregation's rows. A variance
/// or covariance of one customer (NULL) is 0.
fn read_aggregates(batches: &[RecordBatch]) -> Result<Vec<(String, ArmAggregate)>> {
    let mut out = Vec::new();
    for batch in batches {
        let text = |i: usize| arrow::compute::cast(batch.column(i), &DataType::Utf8);
        let num = |i: usize| arrow::compute::cast(batch.column(i), &DataType::Float64);
        let (experiment, arm, n) = (text(0)?, text(1)?, num(2)?);
        let (experiment, arm) = (experiment.as_string::<i32>(), arm.as_string::<i32>());
        let n = n.as_primitive::<Float64Type>();
        for (m, (metric, _, _)) in COLUMNS.iter().enumerate() {
            let cols = (0..5)
                .map(|j| num(3 + 5 * m + j))
                .collect::<std::result::Result<Vec<_>, _>>()?;
            let value = |j: usize, r: usize| {
                let c = cols[j].as_primitive::<Float64Type>();
                if c.is_valid(r) { c.value(r) } else { 0.0 }
            };
            for r in 0..batch.num_rows() {
                out.push((
                    experiment.value(r).to_string(),
                    ArmAggregate {
                        arm: arm.value(r).to_string(),
                        metric: metric.to_string(),
                        moments: Moments {
                            n: n.value(r),
                            mean_y: value(0, r),
                            var_y: value(1, r),
                            mean_x: value(2, r),
                            var_x: value(3, r),
                            cov_xy: value(4, r),
                        },
                    },
                ));
            }
        }
    }
    Ok(out)
}

/// The results as a reader wants them: per experiment its arms' sizes and the SRM test, then
/// per treatment arm and metric the relative lift with its 95% interval and adjusted p-value,
/// raw and with CUPED (`*` where the adjusted p-value is below 0.05).
pub fn readable(rows: &[ResultRow]) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let mut keys: Vec<&str> = rows.iter().map(|r| r.experiment.as_str()).collect();
    keys.dedup();
    let pct = |v: f64| {
        if v.is_finite() {
            format!("{:+.1}%", 100.0 * v)
        } else {
            "-".to_string()
        }
    };
    for key in keys {
        let mine: Vec<&ResultRow> = rows.iter().filter(|r| r.experiment == key).collect();
        let Some(first) = mine.first() else { continue };
        let mut arms: Vec<String> = Vec::new();
        for r in mine.iter().filter(|r| r.metric == first.metric) {
            arms.push(format!("{} {}", r.arm, r.customers));
        }
        let _ = writeln!(
            out,
            "Experiment {key}: {}; sample ratio p = {:.4}{}",
            arms.join(", "),
            first.srm_p_value,
            if first.srm_alert {
                "  SAMPLE RATIO MISMATCH: the arms' sizes are not what the weights say; \
                 do not trust these results"
            } else {
                ""
            }
        );
        let _ = writeln!(
            out,
            "  {:<11} {:<10} {:>12} {:>12}  {:<24} {:>8}  {:<24} {:>8}",
            "metric",
            "arm",
            "control",
            "arm mean",
            "lift [95% CI]",
            "p adj",
            "CUPED lift [95% CI]",
            "p adj"
        );
        for r in mine.iter().filter(|r| !r.is_control) {
            let control = mine
                .iter()
                .find(|c| c.is_control && c.metric == r.metric)
                .map_or(f64::NAN, |c| c.mean);
            let interval = |c: Option<&crate::models::experiments::stats::Comparison>| {
                c.map_or_else(
                    || "-".to_string(),
                    |c| {
                        format!(
                            "{} [{}, {}]",
                            pct(c.relative_lift),
                            pct(c.relative_low),
                            pct(c.relative_high)
                        )
                    },
                )
            };
            let p = |p: Option<f64>| {
                p.map_or_else(
                    || "-".to_string(),
                    |p| format!("{p:.4}{}", if p < 0.05 { "*" } else { " " }),
                )
            };
            let _ = writeln!(
                out,
                "  {:<11} {:<10} {:>12.4} {:>12.4}  {:<24} {:>8}  {:<24} {:>8}",
                r.metric,
                r.arm,
                control,
                r.mean,
                interval(r.raw.as_ref()),
                p(r.p_adjusted),
                interval(r.cuped.as_ref()),
                p(r.cuped_p_adjusted)
            );
        }
    }
    out
}
