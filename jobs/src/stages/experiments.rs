//! The night's A/B tests, first part: who is in which arm (`experiment_assignments`).
//!
//! Each `[[experiments]]` experiment takes in, every night from its `start` to its `end`, the
//! customers its `eligible` predicate selects over `user_profiles` (with the propensity
//! model's `probability` and `decile` when that stage ran). A customer's arm is cut from
//! `experiment_bucket(key, customer_id)`, GrowthBook's hash, by the arms' cumulative weights,
//! so any system can recompute it. Customers stay where they were put: the previous night's
//! assignments are carried over unchanged, so changing the weights (a ramp-up) or the
//! predicate moves nobody already assigned, and `first_eligible_date` is the night a customer
//! entered. An experiment no longer configured is dropped from the table.
//!
//! The first night that assigns an experiment whose `start` is already past (it was declared
//! late, or Persona was down) backdates its customers' entry to the start: the campaign, which
//! recomputes the hash, has treated them since then. A key whose earlier assignments name an
//! arm the configuration no longer has is refused: a new test needs a new key.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use async_trait::async_trait;
use chrono::NaiveDate;
use datafusion::prelude::SessionContext;
use serde::Serialize;

use super::dry_run::register_empty;
use super::night::Night;
use super::record::Report;
use super::registry::Stage;
use super::unit::Unit;
use crate::config::{ExperimentConfig, PipelineConfig};
use crate::engine::commit::last_published_before;
use crate::engine::storage::Root;
use crate::engine::tables::register_parquet;
use crate::error::{PipelineError, Result};

/// Days before a customer's entry whose behaviour is the covariate of CUPED
/// (`sql/34_experiment_customers.sql`).
pub const PRE_DAYS: u32 = 14;
/// The table every night's assignments are read from and written to.
pub const TABLE: &str = "experiment_assignments";
/// The previous night's assignments, registered for the stage's SQL (and the alias of the
/// relation that stands for them).
const PREVIOUS: &str = "previous_experiment_assignments";
/// The alias of the customers an eligibility predicate is evaluated over.
const CUSTOMERS: &str = "experiment_customers";

/// What the assignment did, for the manifest: customers per experiment and arm.
#[derive(Debug, Clone, Serialize, Default)]
pub struct ExperimentsReport {
    /// Per experiment: its key, whether it took in customers tonight, and customers per arm
    /// (all assigned so far, and new tonight).
    pub experiments: Vec<ExperimentCount>,
}

/// One experiment's counts.
#[derive(Debug, Clone, Serialize)]
pub struct ExperimentCount {
    /// Its key.
    pub key: String,
    /// Whether tonight is within its start and end.
    pub open: bool,
    /// `(arm, customers, of whom new tonight)`, in the configured order.
    pub arms: Vec<(String, u64, u64)>,
}

impl Report for ExperimentsReport {
    const KEY: &'static str = "experiments";

    fn summary(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.experiments.is_empty() {
            return Ok(());
        }
        writeln!(f, "\nExperiments:")?;
        for e in &self.experiments {
            let arms: Vec<String> = e
                .arms
                .iter()
                .map(|(arm, n, new)| format!("{arm} {n} (+{new})"))
                .collect();
            let state = if e.open { "open" } else { "closed" };
            writeln!(f, "  {} ({state}): {}", e.key, arms.join(", "))?;
        }
        Ok(())
    }
}

/// The stage: registers `experiment_assignments`.
#[derive(Debug)]
pub struct Assignment;

#[async_trait(?Send)]
impl Unit for Assignment {
    fn code(&self) -> &'static str {
        "jobs/src/stages/experiments.rs"
    }

    fn off_by_config(&self, config: &PipelineConfig) -> bool {
        config.experiments.is_empty()
    }

    async fn run(&self, _stage: &Stage, night: &mut Night<'_>) -> Result<u64> {
        let previous = register_previous(night.ctx, night.roots.output, night.window.last).await?;
        let earlier = earlier_arms(night.ctx, &previous).await?;
        check_arms_unchanged(&night.config.experiments, &earlier)?;
        let sql = assignment_sql(
            night.ctx,
            &night.config.experiments,
            &linked_audiences(night.config),
            night.window.last,
            &previous,
            &earlier,
        )
        .await?;
        let df = night.ctx.sql(&sql).await?;
        let rows = night.work.materialize(night.ctx, TABLE, df).await?;
        let counts = night
            .ctx
            .sql(&format!(
                "SELECT a.experiment, a.arm, COUNT(*), \
                 SUM(CASE WHEN p.customer_id IS NULL THEN 1 ELSE 0 END) \
                 FROM {TABLE} a LEFT JOIN {previous} p \
                 ON p.experiment = a.experiment AND p.customer_id = a.customer_id \
                 GROUP BY a.experiment, a.arm"
            ))
            .await?
            .collect()
            .await?;
        night.record.reports.put(report(
            &night.config.experiments,
            night.window.last,
            &counts,
        )?);
        Ok(rows)
    }

    async fn plan(&self, _stage: &Stage, night: &mut Night<'_>) -> Result<String> {
        if night.config.experiments.is_empty() {
            register_empty(night.ctx, TABLE, schema())?;
            return Ok("no [[experiments]] declared: nothing to assign\n".into());
        }
        let sql = assignment_sql(
            night.ctx,
            &night.config.experiments,
            &linked_audiences(night.config),
            night.window.last,
            NONE_BEFORE,
            &[],
        )
        .await?;
        night.ctx.sql(&sql).await?;
        register_empty(night.ctx, TABLE, schema())?;
        Ok(format!(
            "assign the customers of {} experiment(s) to arms\n",
            night.config.experiments.len()
        ))
    }
}

/// The schema of `experiment_assignments`.
pub fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("experiment", DataType::Utf8, false),
        Field::new("customer_id", DataType::Utf8, false),
        Field::new("arm", DataType::Utf8, false),
        Field::new("first_eligible_date", DataType::Date32, false),
    ]))
}

/// Registers the last published night's assignments before `date` as [`PREVIOUS`] and
/// returns the relation to read them from: that table, or an empty relation written in SQL
/// when there is none (an in-memory table would not travel to a Ballista cluster).
async fn register_previous(ctx: &SessionContext, output: &Root, date: NaiveDate) -> Result<String> {
    match last_published_before(output, date, TABLE).await? {
        Some((_, folder)) => {
            register_parquet(ctx, PREVIOUS, &output.child(&folder), "").await?;
            Ok(PREVIOUS.to_string())
        }
        None => Ok(NONE_BEFORE.to_string()),
    }
}

/// How many of the customers registered on `ctx` (`user_profiles`, and `propensity` when there
/// is one) experiment `e` would take in, per arm, in the configured order: what its first night
/// would assign. A predicate that does not plan is a configuration error, as on the night.
pub async fn preview(ctx: &SessionContext, e: &ExperimentConfig) -> Result<Vec<(String, u64)>> {
    use arrow::array::AsArray;
    use arrow::datatypes::Int64Type;
    let start = e
        .start_date()
        .ok_or_else(|| PipelineError::Config(format!("experiment '{}': no start", e.key)))?;
    let sql = assignment_sql(ctx, std::slice::from_ref(e), &[], start, NONE_BEFORE, &[]).await?;
    let batches = ctx
        .sql(&format!(
            "SELECT CAST(arm AS VARCHAR), COUNT(*) FROM ({sql}) GROUP BY arm"
        ))
        .await?
        .collect()
        .await?;
    let mut counts: Vec<(String, u64)> = e.arms.iter().map(|a| (a.name.clone(), 0)).collect();
    for b in &batches {
        let arm = arrow::compute::cast(b.column(0), &DataType::Utf8)?;
        let n = arrow::compute::cast(b.column(1), &DataType::Int64)?;
        let (arm, n) = (arm.as_string::<i32>(), n.as_primitive::<Int64Type>());
        for r in 0..b.num_rows() {
            if let Some(c) = counts.iter_mut().find(|(a, _)| a == arm.value(r)) {
                c.1 = n.value(r) as u64;
            }
        }
    }
    Ok(counts)
}

/// `(experiment, arm)` of every arm with customers in `previous`.
async fn earlier_arms(ctx: &SessionContext, previous: &str) -> Result<Vec<(String, String)>> {
    use arrow::array::AsArray;
    let batches = ctx
        .sql(&format!(
            "SELECT DISTINCT CAST(experiment AS VARCHAR), CAST(arm AS VARCHAR) \
             FROM {previous} {PREVIOUS}"
        ))
        .await?
        .collect()
        .await?;
    let mut out = Vec::new();
    for b in &batches {
        let text = |i: usize| arrow::compute::cast(b.column(i), &DataType::Utf8);
        let (e, a) = (text(0)?, text(1)?);
        let (e, a) = (e.as_string::<i32>(), a.as_string::<i32>());
        for r in 0..b.num_rows() {
            out.push((e.value(r).to_string(), a.value(r).to_string()));
        }
    }
    Ok(out)
}

/// Refuses (exit 4) an experiment whose earlier assignments name an arm it no longer has:
/// its key was reused for another test, or an arm was renamed, and either would mix two
/// tests' customers in one analysis.
fn check_arms_unchanged(
    experiments: &[ExperimentConfig],
    earlier: &[(String, String)],
) -> Result<()> {
    for e in experiments {
        let gone: Vec<&str> = earlier
            .iter()
            .filter(|(key, arm)| *key == e.key && !e.arms.iter().any(|a| a.name == *arm))
            .map(|(_, arm)| arm.as_str())
            .collect();
        if !gone.is_empty() {
            let arms: Vec<&str> = e.arms.iter().map(|a| a.name.as_str()).collect();
            return Err(PipelineError::Config(format!(
                "experiments: experiment '{}': earlier nights assigned customers to arm(s) {} \
                 that its arms ({}) no longer include; a different test needs a new key",
                e.key,
                gone.join(", "),
                arms.join(", ")
            )));
        }
    }
    Ok(())
}

/// No assignments before tonight, as a relation.
const NONE_BEFORE: &str = "(SELECT CAST(NULL AS VARCHAR) AS experiment, \
     CAST(NULL AS VARCHAR) AS customer_id, CAST(NULL AS VARCHAR) AS arm, \
     CAST(NULL AS DATE) AS first_eligible_date WHERE false)";

/// `(experiment key, audience name)` of every experiment that takes its customers from an
/// audience (`[[audiences]] experiment = "key"`).
fn linked_audiences(config: &PipelineConfig) -> Vec<(String, String)> {
    config
        .audiences
        .iter()
        .filter_map(|a| Some((a.experiment.clone()?, a.name.clone())))
        .collect()
}

/// The SQL of tonight's (`date`) assignments, given the relation of the previous night's
/// (`previous`) and its `(experiment, arm)` pairs (`earlier`). The customers are the profiles,
/// with the propensity columns when that stage ran; an experiment that `linked` pairs with an
/// audience takes only that audience's customers (tonight's `audiences`, holdout included: its
/// control arm is the holdout). An eligibility predicate that does not plan over those columns
/// is a configuration error (exit 4) naming its experiment.
async fn assignment_sql(
    ctx: &SessionContext,
    experiments: &[ExperimentConfig],
    linked: &[(String, String)],
    date: NaiveDate,
    previous: &str,
    earlier: &[(String, String)],
) -> Result<String> {
    let customers = if ctx.table_exist("propensity")? {
        "(SELECT p.*, q.probability, q.decile FROM user_profiles p \
         LEFT JOIN propensity q ON p.customer_id = q.customer_id)"
    } else {
        "user_profiles"
    };
    let keys: Vec<String> = experiments.iter().map(|e| format!("'{}'", e.key)).collect();
    let mut parts = vec![format!(
        "SELECT experiment, CAST(customer_id AS VARCHAR) AS customer_id, arm, \
         first_eligible_date FROM {previous} {PREVIOUS} WHERE experiment IN ({})",
        keys.join(", ")
    )];
    for e in experiments {
        let check = format!(
            "SELECT customer_id FROM {customers} {CUSTOMERS} WHERE ({})",
            e.eligible
        );
        if let Err(err) = ctx.sql(&check).await {
            return Err(PipelineError::Config(format!(
                "experiments: experiment '{}': eligible = \"{}\" is not a predicate over \
                 user_profiles (with probability and decile when propensity runs): {err}",
                e.key, e.eligible
            )));
        }
        // Assigned before: tonight's newly eligible enter tonight. Never assigned: backdated
        // to the start (see the module's comment).
        let entry = match e.start_date() {
            Some(start) if !earlier.iter().any(|(key, _)| *key == e.key) => start.min(date),
            _ => date,
        };
        let from_audience = linked
            .iter()
            .find(|(key, _)| *key == e.key)
            .map(|(_, name)| {
                format!(
                    "(SELECT c.* FROM {customers} c WHERE c.customer_id IN \
                 (SELECT customer_id FROM {} WHERE audience = '{name}'))",
                    super::audiences::TABLE
                )
            });
        let customers = from_audience.as_deref().unwrap_or(customers);
        parts.push(new_customers_sql(e, date, entry, customers, previous));
    }
    Ok(parts.join("\nUNION ALL\n"))
}

/// The customers of `e` eligible on `date` who have no arm yet, with their arm and `entry` as
/// their first eligible date; nothing when `date` is outside the experiment's dates.
fn new_customers_sql(
    e: &ExperimentConfig,
    date: NaiveDate,
    entry: NaiveDate,
    customers: &str,
    previous: &str,
) -> String {
    let total: f64 = e.arms.iter().map(|a| a.weight).sum();
    // Weights sum to 1 (checked); dividing by their sum keeps the last cut at exactly 1.
    let mut cumulative = 0.0;
    let mut arms = Vec::new();
    for (i, arm) in e.arms.iter().enumerate() {
        cumulative += arm.weight / total;
        if i + 1 == e.arms.len() {
            arms.push(format!("ELSE '{}'", arm.name));
        } else {
            arms.push(format!(
                "WHEN __bucket < {cumulative:e} THEN '{}'",
                arm.name
            ));
        }
    }
    let open = e.open_on(date);
    format!(
        "SELECT '{key}' AS experiment, c.customer_id, CASE {arms} END AS arm, \
         DATE '{entry}' AS first_eligible_date \
         FROM (SELECT CAST(customer_id AS VARCHAR) AS customer_id, \
               experiment_bucket('{key}', CAST(customer_id AS VARCHAR)) AS __bucket \
               FROM {customers} {CUSTOMERS} WHERE ({eligible})) c \
         LEFT JOIN {previous} p ON p.experiment = '{key}' AND p.customer_id = c.customer_id \
         WHERE p.customer_id IS NULL AND {open}",
        key = e.key,
        arms = arms.join(" "),
        eligible = e.eligible,
    )
}

/// The manifest's counts from `(experiment, arm, customers, new)` rows.
fn report(
    experiments: &[ExperimentConfig],
    date: NaiveDate,
    counts: &[arrow::array::RecordBatch],
) -> Result<ExperimentsReport> {
    use arrow::array::AsArray;
    use arrow::datatypes::Int64Type;
    let mut rows: Vec<(String, String, u64, u64)> = Vec::new();
    for batch in counts {
        let cast = |i: usize, t: &DataType| arrow::compute::cast(batch.column(i), t);
        let (e, a) = (cast(0, &DataType::Utf8)?, cast(1, &DataType::Utf8)?);
        let (n, new) = (cast(2, &DataType::Int64)?, cast(3, &DataType::Int64)?);
        for r in 0..batch.num_rows() {
            rows.push((
                e.as_string::<i32>().value(r).to_string(),
                a.as_string::<i32>().value(r).to_string(),
                n.as_primitive::<Int64Type>().value(r) as u64,
                new.as_primitive::<Int64Type>().value(r) as u64,
            ));
        }
    }
    let experiments = experiments
        .iter()
        .map(|e| ExperimentCount {
            key: e.key.clone(),
            open: e.open_on(date),
            arms: e
                .arms
                .iter()
                .map(|arm| {
                    let (n, new) = rows
                        .iter()
                        .find(|(k, a, _, _)| *k == e.key && *a == arm.name)
                        .map_or((0, 0), |(_, _, n, new)| (*n, *new));
                    (arm.name.clone(), n, new)
                })
                .collect(),
        })
        .collect();
    Ok(ExperimentsReport { experiments })
}
