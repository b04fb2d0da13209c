//! The night's campaign audiences: who each `[[audiences]]` entry sends to tonight.
//!
//! Five stages, in run order:
//!
//! 1. `audience_customers` (`sql/33_audience_customers.sql`, [`CustomerView`]): the one view
//!    every predicate runs over: `user_profiles`, the propensity columns, the top
//!    recommendation and whether the customer is suppressed.
//! 2. `audiences` ([`Selection`]): per audience, the customers its `where` selects, then the
//!    exclusions, then the ranks by `order_by` and the `limit`, then the holdout. The
//!    exclusions are the outermost filter of a query of their own, so no predicate can undo
//!    them: a customer without `marketing_opt_in`, or in the `suppressions/` input, is never in
//!    an audience. The holdout is `experiment_bucket(seed, customer_id) < share`, GrowthBook's
//!    hash, stable night after night; with `experiment = "key"` the seed is the experiment's key
//!    and the share its control arm's weight, so the holdout is exactly the customers its
//!    assignment puts in the control arm (the experiment takes its customers from the audience:
//!    [`super::experiments`]).
//! 3. `audience_changes` ([`Changes`], `sql/35_audience_changes.sql`): who entered and who left
//!    since the previous published night.
//! 4. `audience_summary` (`sql/36_audience_summary.sql`): sizes, exclusions, overlap, segment
//!    mix, expected conversions.
//! 5. `audience_exports` ([`Exports`], `sql/37_audience_export_rows.sql`): the activation files
//!    `exports/dt=<date>/run=<run id>/<audience>.csv` (customer ids) and, with `[privacy]
//!    export_hashed_emails`, `<audience>.email_sha256.csv`, written into the night's run folder
//!    and committed by its manifest like a table.
//!
//! A predicate or `order_by` that does not plan over the view is a configuration error (exit 4)
//! naming the audience; `persona run` and `persona check` plan the night first
//! ([`crate::commands::pipeline`]), so it fails before anything is computed.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::sync::Arc;

use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::{DataType, Field, Int64Type, Schema, SchemaRef};
use async_trait::async_trait;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::prelude::{DataFrame, SessionContext};
use serde::Serialize;

use super::dry_run::register_empty;
use super::night::Night;
use super::record::Report;
use super::registry::Stage;
use super::unit::Unit;
use crate::config::{AudienceConfig, Channel, PipelineConfig};
use crate::engine::commit::{SUCCESS, last_published_before, run_folder};
use crate::engine::storage::Root;
use crate::engine::tables::register_parquet;
use crate::error::{PipelineError, Result};

/// The published table of tonight's audiences.
pub const TABLE: &str = "audiences";
/// The view every predicate runs over.
pub const VIEW: &str = "audience_customers";
/// The folder of the activation files, committed with the night.
pub const EXPORTS: &str = crate::engine::commit::EXPORTS_FOLDER;
/// The stage that writes them.
pub const EXPORTS_STAGE: &str = "audience_export_rows";
/// Per audience: matched and excluded customers (work table, for `audience_summary`).
const COUNTS: &str = "audience_counts";
/// The propensity columns of the view: `propensity` when it ran, an empty relation otherwise.
const PROPENSITY: &str = "audience_propensity";
/// The previous published night's audiences, for `audience_changes`.
const PREVIOUS: &str = "previous_audiences";
/// The view's columns that exist only when the propensity model ran.
const PROPENSITY_COLUMNS: [&str; 2] = ["probability", "decile"];
/// Who may be contacted at all: applied after every predicate.
const CONTACTABLE: &str = "COALESCE(x.marketing_opt_in, false) AND NOT x.suppressed";

/// What the audiences came to, for the manifest and the run's summary.
#[derive(Debug, Clone, Serialize, Default)]
pub struct AudiencesReport {
    /// One entry per declared audience, in the configured order.
    pub audiences: Vec<AudienceCount>,
}

/// One audience's counts.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct AudienceCount {
    /// Its name.
    pub name: String,
    /// Customers the predicate selects.
    pub matched: u64,
    /// Of them, without marketing opt-in.
    pub excluded_opt_out: u64,
    /// Of the rest, suppressed.
    pub excluded_suppressed: u64,
    /// Customers in the audience (holdout included).
    pub size: u64,
    /// Of them, held out.
    pub holdout: u64,
}

impl Report for AudiencesReport {
    const KEY: &'static str = "audiences";

    fn summary(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.audiences.is_empty() {
            return Ok(());
        }
        writeln!(f, "\nAudiences:")?;
        for a in &self.audiences {
            writeln!(
                f,
                "  {}: {} customers ({} held out); excluded {} without opt-in, {} suppressed",
                a.name, a.size, a.holdout, a.excluded_opt_out, a.excluded_suppressed
            )?;
        }
        Ok(())
    }
}

/// `audience_customers`: registers the propensity columns' relation, then runs the view's SQL.
#[derive(Debug)]
pub struct CustomerView;

#[async_trait(?Send)]
impl Unit for CustomerView {
    fn code(&self) -> &'static str {
        "jobs/src/stages/audiences.rs"
    }

    fn off_by_config(&self, config: &PipelineConfig) -> bool {
        config.audiences.is_empty()
    }

    async fn run(&self, stage: &Stage, night: &mut Night<'_>) -> Result<u64> {
        register_propensity(night.ctx).await?;
        night.run_sql(stage, &night.params).await
    }

    async fn plan(&self, stage: &Stage, night: &mut Night<'_>) -> Result<String> {
        register_propensity(night.ctx).await?;
        night.plan_sql(stage, &night.params).await
    }
}

/// Registers [`PROPENSITY`]: tonight's `propensity` table, or no rows of its columns when the
/// model did not run (a view, so that it travels to a Ballista cluster).
pub async fn register_propensity(ctx: &SessionContext) -> Result<()> {
    let body = if ctx.table_exist("propensity")? {
        "SELECT CAST(customer_id AS VARCHAR) AS customer_id, probability, decile FROM propensity"
    } else {
        "SELECT CAST(NULL AS VARCHAR) AS customer_id, CAST(NULL AS DOUBLE) AS probability, \
         CAST(NULL AS INT) AS decile WHERE false"
    };
    ctx.sql(&format!("CREATE OR REPLACE VIEW {PROPENSITY} AS {body}"))
        .await?;
    Ok(())
}

/// `audiences` (and the work table `audience_counts`).
#[derive(Debug)]
pub struct Selection;

#[async_trait(?Send)]
impl Unit for Selection {
    fn code(&self) -> &'static str {
        "jobs/src/stages/audiences.rs"
    }

    fn off_by_config(&self, config: &PipelineConfig) -> bool {
        config.audiences.is_empty()
    }

    async fn run(&self, _stage: &Stage, night: &mut Night<'_>) -> Result<u64> {
        let propensity = night.ctx.table_exist("propensity")?;
        let queries = selection_sql(night.ctx, night.config, propensity).await?;
        let df = night.ctx.sql(&queries.members).await?;
        let rows = night.work.materialize(night.ctx, TABLE, df).await?;
        let df = night.ctx.sql(&queries.counts).await?;
        night.work.materialize(night.ctx, COUNTS, df).await?;
        let report = report(night.ctx, &night.config.audiences).await?;
        night.record.reports.put(report);
        Ok(rows)
    }

    async fn plan(&self, _stage: &Stage, night: &mut Night<'_>) -> Result<String> {
        let propensity = night.ctx.table_exist("propensity")?;
        if night.config.audiences.is_empty() {
            register_empty(night.ctx, TABLE, schema())?;
            register_empty(night.ctx, COUNTS, counts_schema())?;
            return Ok("no [[audiences]] declared: nothing to select\n".into());
        }
        let queries = selection_sql(night.ctx, night.config, propensity).await?;
        night.ctx.sql(&queries.members).await?;
        night.ctx.sql(&queries.counts).await?;
        register_empty(night.ctx, TABLE, schema())?;
        register_empty(night.ctx, COUNTS, counts_schema())?;
        let mut text = String::new();
        for a in &night.config.audiences {
            let _ = writeln!(
                text,
                "select audience '{}' ({}): where {}{}{}; holdout {:.1}%",
                a.name,
                a.channel.name(),
                a.predicate,
                a.order_by
                    .as_ref()
                    .map(|o| format!(", order by {o}"))
                    .unwrap_or_default(),
                a.limit.map(|l| format!(", limit {l}")).unwrap_or_default(),
                100.0 * a.holdout(&night.config.experiments)
            );
        }
        Ok(text)
    }
}

/// The schema of `audiences`.
pub fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("audience", DataType::Utf8, false),
        Field::new("customer_id", DataType::Utf8, false),
        Field::new("rank", DataType::Int64, false),
        Field::new("in_holdout", DataType::Boolean, false),
        Field::new("why", DataType::Utf8, true),
    ]))
}

fn counts_schema() -> SchemaRef {
    let count = |name: &str| Field::new(name, DataType::Int64, false);
    Arc::new(Schema::new(vec![
        Field::new("audience", DataType::Utf8, false),
        Field::new("channel", DataType::Utf8, false),
        count("matched"),
        count("excluded_opt_out"),
        count("excluded_suppressed"),
        count("eligible"),
    ]))
}

/// The two queries of the selection, every audience's in one `UNION ALL` each.
pub struct SelectionSql {
    /// Rows of `audiences`.
    pub members: String,
    /// Rows of `audience_counts`.
    pub counts: String,
}

/// The selection's SQL over [`VIEW`] (registered on `ctx`) for every audience of `config`,
/// after checking each one's `where` and `order_by` (exit 4, naming the audience).
/// `propensity`: whether the propensity model ran tonight.
pub async fn selection_sql(
    ctx: &SessionContext,
    config: &PipelineConfig,
    propensity: bool,
) -> Result<SelectionSql> {
    let (mut members, mut counts) = (Vec::new(), Vec::new());
    for a in &config.audiences {
        let why = check_audience(ctx, a, propensity).await?;
        members.push(members_sql(a, &why, a.holdout(&config.experiments)));
        counts.push(counts_sql(a));
    }
    Ok(SelectionSql {
        members: members.join("\nUNION ALL\n"),
        counts: counts.join("\nUNION ALL\n"),
    })
}

/// Plans `a`'s `where` and `order_by` over [`VIEW`]; returns the `why` expression (the values
/// of the columns they name). Refuses a predicate that does not plan, and one that names the
/// propensity columns on a night without the model (it would select nobody, silently).
async fn check_audience(
    ctx: &SessionContext,
    a: &AudienceConfig,
    propensity: bool,
) -> Result<String> {
    let fail = |what: &str, text: &str, err: &dyn std::fmt::Display| {
        PipelineError::Config(format!(
            "audiences: audience '{}': {what} = \"{text}\" does not plan over the night's \
             customer view {VIEW} (user_profiles' columns, probability and decile when the \
             propensity model runs, top_item_id, top_item_source, suppressed; see \
             docs/contract-and-outputs.md): {err}",
            a.name
        ))
    };
    let filter = ctx
        .sql(&format!("SELECT 1 FROM {VIEW} WHERE ({})", a.predicate))
        .await
        .map_err(|e| fail("where", &a.predicate, &e))?;
    let mut named = column_refs(&filter)?;
    if let Some(order) = &a.order_by {
        let sorted = ctx
            .sql(&format!("SELECT 1 FROM {VIEW} ORDER BY {order}"))
            .await
            .map_err(|e| fail("order_by", order, &e))?;
        named.extend(column_refs(&sorted)?);
    }
    if !propensity && let Some(c) = PROPENSITY_COLUMNS.iter().find(|c| named.contains(**c)) {
        return Err(PipelineError::Config(format!(
            "audiences: audience '{}' names {c}, which the propensity model gives: it does not \
             run tonight ([propensity] enabled = false)",
            a.name
        )));
    }
    let schema = ctx.table(VIEW).await?.schema().as_arrow().clone();
    let parts: Vec<String> = schema
        .fields()
        .iter()
        .filter(|f| named.contains(f.name()) && f.name() != "customer_id")
        .map(|f| {
            let c = format!("\"{}\"", f.name());
            let value = match f.data_type() {
                DataType::List(_) | DataType::LargeList(_) | DataType::ListView(_) => {
                    format!("array_to_string({c}, '|')")
                }
                t if t.is_floating() => format!("CAST(round({c}, 4) AS VARCHAR)"),
                _ => format!("CAST({c} AS VARCHAR)"),
            };
            format!("'{}=' || COALESCE({value}, 'NULL')", f.name())
        })
        .collect();
    Ok(if parts.is_empty() {
        "CAST(NULL AS VARCHAR)".to_string()
    } else {
        format!("concat_ws(', ', {})", parts.join(", "))
    })
}

/// The names of the columns a planned query's expressions name.
fn column_refs(df: &DataFrame) -> Result<BTreeSet<String>> {
    let mut names = BTreeSet::new();
    df.logical_plan().apply_with_subqueries(|node| {
        node.apply_expressions(|e| {
            names.extend(e.column_refs().into_iter().map(|c| c.name.clone()));
            Ok(TreeNodeRecursion::Continue)
        })
    })?;
    Ok(names)
}

/// `a`'s members: the predicate in a subquery of its own, the exclusions outside it, then the
/// ranks, the limit and the holdout.
fn members_sql(a: &AudienceConfig, why: &str, holdout: f64) -> String {
    let order = a
        .order_by
        .as_ref()
        .map(|o| format!("{o}, "))
        .unwrap_or_default();
    let limit = a
        .limit
        .map_or("true".to_string(), |l| format!("rank <= {l}"));
    let in_holdout = if holdout > 0.0 {
        format!(
            "experiment_bucket('{}', customer_id) < {holdout:e}",
            a.holdout_seed()
        )
    } else {
        "false".to_string()
    };
    format!(
        "SELECT '{name}' AS audience, customer_id, CAST(rank AS BIGINT) AS rank, \
         {in_holdout} AS in_holdout, why \
         FROM (SELECT CAST(customer_id AS VARCHAR) AS customer_id, why, \
               ROW_NUMBER() OVER (ORDER BY {order}customer_id) AS rank \
               FROM (SELECT m.*, {why} AS why \
                     FROM (SELECT * FROM {VIEW} WHERE ({predicate})) m) x \
               WHERE {CONTACTABLE}) r \
         WHERE {limit}",
        name = a.name,
        predicate = a.predicate,
    )
}

/// `a`'s row of `audience_counts`: matched, excluded per reason, eligible.
fn counts_sql(a: &AudienceConfig) -> String {
    format!(
        "SELECT '{name}' AS audience, '{channel}' AS channel, COUNT(*) AS matched, \
         COALESCE(SUM(CASE WHEN COALESCE(x.marketing_opt_in, false) THEN 0 ELSE 1 END), 0) AS excluded_opt_out, \
         COALESCE(SUM(CASE WHEN COALESCE(x.marketing_opt_in, false) AND x.suppressed THEN 1 ELSE 0 END), 0) AS excluded_suppressed, \
         COALESCE(SUM(CASE WHEN {CONTACTABLE} THEN 1 ELSE 0 END), 0) AS eligible \
         FROM (SELECT * FROM {VIEW} WHERE ({predicate})) x",
        name = a.name,
        channel = a.channel.name(),
        predicate = a.predicate,
    )
}

/// Reads tonight's counts back for the manifest.
async fn report(ctx: &SessionContext, audiences: &[AudienceConfig]) -> Result<AudiencesReport> {
    let batches = ctx
        .sql(&format!(
            "SELECT CAST(n.audience AS VARCHAR), n.matched, n.excluded_opt_out, \
             n.excluded_suppressed, COUNT(a.customer_id), \
             COALESCE(SUM(CASE WHEN a.in_holdout THEN 1 ELSE 0 END), 0) \
             FROM {COUNTS} n LEFT JOIN {TABLE} a ON a.audience = n.audience \
             GROUP BY n.audience, n.matched, n.excluded_opt_out, n.excluded_suppressed"
        ))
        .await?
        .collect()
        .await?;
    let mut found: Vec<AudienceCount> = Vec::new();
    for b in &batches {
        let name = arrow::compute::cast(b.column(0), &DataType::Utf8)?;
        let ints: Vec<_> = (1..6)
            .map(|i| arrow::compute::cast(b.column(i), &DataType::Int64))
            .collect::<std::result::Result<_, _>>()?;
        for r in 0..b.num_rows() {
            let n = |i: usize| ints[i].as_primitive::<Int64Type>().value(r) as u64;
            found.push(AudienceCount {
                name: name.as_string::<i32>().value(r).to_string(),
                matched: n(0),
                excluded_opt_out: n(1),
                excluded_suppressed: n(2),
                size: n(3),
                holdout: n(4),
            });
        }
    }
    let audiences = audiences
        .iter()
        .filter_map(|a| found.iter().find(|f| f.name == a.name).cloned())
        .collect();
    Ok(AudiencesReport { audiences })
}

/// `audience_changes`: registers the previous published night's audiences, then runs the SQL.
#[derive(Debug)]
pub struct Changes;

#[async_trait(?Send)]
impl Unit for Changes {
    fn code(&self) -> &'static str {
        "jobs/src/stages/audiences.rs"
    }

    fn off_by_config(&self, config: &PipelineConfig) -> bool {
        config.audiences.is_empty()
    }

    async fn run(&self, stage: &Stage, night: &mut Night<'_>) -> Result<u64> {
        register_previous(night.ctx, Some(night.roots.output), night.window.last).await?;
        night.run_sql(stage, &night.params).await
    }

    async fn plan(&self, stage: &Stage, night: &mut Night<'_>) -> Result<String> {
        register_previous(night.ctx, None, night.window.last).await?;
        night.plan_sql(stage, &night.params).await
    }
}

/// Registers [`PREVIOUS`]: the last published night's `audiences` before `date` under
/// `output`, or no rows (a view, for a Ballista cluster) when there is none or no `output`.
async fn register_previous(
    ctx: &SessionContext,
    output: Option<&Root>,
    date: chrono::NaiveDate,
) -> Result<()> {
    let found = match output {
        Some(output) => last_published_before(output, date, TABLE)
            .await?
            .map(|(_, folder)| (output, folder)),
        None => None,
    };
    ctx.deregister_table(PREVIOUS)?;
    match found {
        Some((output, folder)) => {
            register_parquet(ctx, PREVIOUS, &output.child(&folder), "").await?;
        }
        None => {
            ctx.sql(&format!(
                "CREATE VIEW {PREVIOUS} AS SELECT CAST(NULL AS VARCHAR) AS audience, \
                 CAST(NULL AS VARCHAR) AS customer_id, CAST(NULL AS BIGINT) AS rank, \
                 CAST(NULL AS BOOLEAN) AS in_holdout, CAST(NULL AS VARCHAR) AS why WHERE false"
            ))
            .await?;
        }
    }
    Ok(())
}

/// `audience_exports`: computes the export rows, then writes each audience's files into the
/// night's run folder of [`EXPORTS`], which the publish stage commits with the tables.
#[derive(Debug)]
pub struct Exports;

#[async_trait(?Send)]
impl Unit for Exports {
    fn code(&self) -> &'static str {
        "jobs/src/stages/audiences.rs"
    }

    fn off_by_config(&self, config: &PipelineConfig) -> bool {
        config.audiences.is_empty()
    }

    async fn run(&self, stage: &Stage, night: &mut Night<'_>) -> Result<u64> {
        night.run_sql(stage, &night.params).await?;
        let folder =
            night
                .roots
                .output
                .child(&run_folder(EXPORTS, night.window.last, night.run_id));
        let hashed = night.config.privacy.export_hashed_emails;
        let mut files = 0;
        for a in &night.config.audiences {
            let rows = format!(
                "SELECT customer_id, email_sha256 FROM {} WHERE audience = '{}' ORDER BY rank",
                stage.name, a.name
            );
            let batches = night.ctx.sql(&rows).await?.collect().await?;
            folder
                .write(&format!("{}.csv", a.name), csv(&batches, 0, "customer_id")?)
                .await?;
            files += 1;
            if hashed && a.channel != Channel::Push {
                folder
                    .write(
                        &format!("{}.email_sha256.csv", a.name),
                        csv(&batches, 1, "email_sha256")?,
                    )
                    .await?;
                files += 1;
            }
        }
        folder.write(SUCCESS, Vec::new()).await?;
        Ok(files)
    }

    async fn plan(&self, stage: &Stage, night: &mut Night<'_>) -> Result<String> {
        let plan = night.plan_sql(stage, &night.params).await?;
        let hashed = night.config.privacy.export_hashed_emails;
        let mut text = String::new();
        for a in &night.config.audiences {
            let _ = writeln!(
                text,
                "write {}/{}.csv{}",
                night
                    .roots
                    .output
                    .location(&format!("{EXPORTS}/dt={}/run=<run id>", night.window.last)),
                a.name,
                if hashed && a.channel != Channel::Push {
                    " and .email_sha256.csv"
                } else {
                    ""
                }
            );
        }
        Ok(format!("{text}{plan}"))
    }
}

/// One column of `batches` as a one-column CSV file with `header`, nulls left out.
fn csv(batches: &[RecordBatch], column: usize, header: &str) -> Result<Vec<u8>> {
    let schema = Arc::new(Schema::new(vec![Field::new(header, DataType::Utf8, false)]));
    let mut out = Vec::new();
    {
        let mut writer = arrow::csv::WriterBuilder::new()
            .with_header(true)
            .build(&mut out);
        let mut wrote = false;
        for b in batches {
            let values = arrow::compute::cast(b.column(column), &DataType::Utf8)?;
            let kept = arrow::compute::filter(&values, &arrow::compute::is_not_null(&values)?)?;
            writer.write(&RecordBatch::try_new(Arc::clone(&schema), vec![kept])?)?;
            wrote = true;
        }
        if !wrote {
            writer.write(&RecordBatch::new_empty(schema))?;
        }
    }
    Ok(out)
}
