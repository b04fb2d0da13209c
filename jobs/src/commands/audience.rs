//! `persona audience preview`: what an audience would hold over a published night, before a
//! marketer commits its definition to persona.toml.
//!
//! The night's own selection ([`crate::stages::audiences`]) runs over the published tables of
//! one night (`user_profiles`, `recommendations`, `propensity`): the same view, the same
//! exclusions, ranks, limit and holdout, so the preview is what the next night would publish
//! on the same profiles. Suppressed customers are known only with `--input` (the night's
//! `suppressions/` source); without it the preview says so.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Float64Type, Int64Type};
use chrono::NaiveDate;
use datafusion::catalog::MemTable;
use datafusion::prelude::SessionContext;
use serde::Serialize;

use crate::commands::experiment::register_night;
use crate::config::{AudienceConfig, Channel, PipelineConfig};
use crate::engine::session::{self, Engine};
use crate::engine::storage::Root;
use crate::engine::tables::register_parquet;
use crate::error::{PipelineError, Result};
use crate::stages::audiences::{self, TABLE, VIEW};
use crate::stages::registry;

/// What to preview.
#[derive(Debug, Clone)]
pub struct PreviewOptions {
    /// Output root of `persona run`.
    pub output: String,
    /// The audience's name: declared in `config`, or a new one (then `predicate` is needed).
    pub name: String,
    /// A `where` to try instead of the declared one.
    pub predicate: Option<String>,
    /// The configuration (its `[[audiences]]`, `[[experiments]]` and `[storage]`).
    pub config: PipelineConfig,
    /// The night to preview over; the latest by default.
    pub date: Option<NaiveDate>,
    /// The input root, for its `suppressions/` source.
    pub input: Option<String>,
}

/// What the audience would hold.
#[derive(Debug, Clone, Serialize)]
pub struct Preview {
    /// The audience.
    pub audience: String,
    /// The predicate previewed.
    pub predicate: String,
    /// The night whose tables were read.
    pub date: NaiveDate,
    /// Customers the predicate selects.
    pub matched: u64,
    /// Of them, without marketing opt-in.
    pub excluded_opt_out: u64,
    /// Of the rest, suppressed (0 without `--input`).
    pub excluded_suppressed: u64,
    /// Whether the suppression list was read.
    pub suppressions_read: bool,
    /// Contactable customers that `limit` cuts off.
    pub beyond_limit: u64,
    /// Customers in the audience, holdout included.
    pub size: u64,
    /// Of them, held out.
    pub holdout: u64,
    /// Sum of the contacted customers' purchase probabilities (when propensity was published).
    pub expected_conversions: Option<f64>,
    /// Customers shared with each audience the night published.
    pub overlap: Vec<(String, u64)>,
    /// Customers per segment, largest first: (segment id, label, customers).
    pub segment_mix: Vec<(i64, String, u64)>,
}

/// Runs the audience's selection over the night's published tables.
pub async fn preview(opts: &PreviewOptions) -> Result<Preview> {
    let audience = audience_to_preview(opts)?;
    let mut config = opts.config.clone();
    config.audiences = vec![audience.clone()];
    let output = Root::parse(&opts.output, &config.storage)?;
    let ctx = session::new_context(&Engine::Local, &config).await?;
    let tables = ["user_profiles", "recommendations", "propensity", TABLE];
    let date = register_night(&ctx, &output, &tables, opts.date)
        .await?
        .ok_or_else(|| {
            PipelineError::BadInput(format!(
                "no published night{} with user_profiles under {}; run `persona run` first",
                opts.date.map(|d| format!(" of {d}")).unwrap_or_default(),
                output.display()
            ))
        })?;
    let suppressions_read = register_suppressions(&ctx, opts.input.as_deref(), &config).await?;
    audiences::register_propensity(&ctx).await?;
    let view = registry::find(VIEW)
        .ok_or_else(|| PipelineError::Internal(format!("no stage {VIEW}")))?
        .render(&BTreeMap::new())?;
    ctx.sql(&format!("CREATE VIEW {VIEW} AS {view}")).await?;
    let propensity = ctx.table_exist("propensity")?;
    let queries = audiences::selection_sql(&ctx, &config, propensity).await?;
    let members = ctx.sql(&queries.members).await?;
    let schema = Arc::new(members.schema().as_arrow().clone());
    let batches = members.collect().await?;
    ctx.register_table(
        "preview_members",
        Arc::new(MemTable::try_new(schema, vec![batches])?),
    )?;

    let counts = ints(&ctx, &queries.counts).await?;
    let [matched, excluded_opt_out, excluded_suppressed, eligible] =
        [counts[2], counts[3], counts[4], counts[5]];
    let sizes = ctx
        .sql(&format!(
            "SELECT COUNT(*), COALESCE(SUM(CASE WHEN m.in_holdout THEN 1 ELSE 0 END), 0), \
             CAST(SUM(c.probability) FILTER (WHERE NOT m.in_holdout) AS DOUBLE) \
             FROM preview_members m JOIN {VIEW} c ON c.customer_id = m.customer_id"
        ))
        .await?
        .collect()
        .await?;
    let (size, holdout, expected) = first_row(&sizes, |b, r| {
        let n = |i: usize| b.column(i).as_primitive::<Int64Type>().value(r) as u64;
        let p = b.column(2).as_primitive::<Float64Type>();
        (n(0), n(1), (!p.is_null(r)).then(|| p.value(r)))
    })
    .unwrap_or((0, 0, None));
    let overlap = if ctx.table_exist(TABLE)? {
        rows(
            &ctx,
            &format!(
                "SELECT CAST(a.audience AS VARCHAR) AS name, COUNT(*) AS customers \
                 FROM {TABLE} a JOIN preview_members m ON m.customer_id = a.customer_id \
                 WHERE a.audience <> '{}' GROUP BY a.audience ORDER BY name",
                audience.name
            ),
        )
        .await?
        .into_iter()
        .map(|(name, _, n)| (name, n))
        .collect()
    } else {
        Vec::new()
    };
    let segment_mix = rows(
        &ctx,
        &format!(
            "SELECT CAST(c.segment_label AS VARCHAR) AS label, \
             CAST(c.segment_id AS BIGINT) AS segment, COUNT(*) AS customers \
             FROM preview_members m JOIN {VIEW} c ON c.customer_id = m.customer_id \
             GROUP BY c.segment_id, c.segment_label ORDER BY customers DESC, segment"
        ),
    )
    .await?
    .into_iter()
    .map(|(label, id, n)| (id, label, n))
    .collect();
    Ok(Preview {
        audience: audience.name,
        predicate: audience.predicate,
        date,
        matched,
        excluded_opt_out,
        excluded_suppressed,
        suppressions_read,
        beyond_limit: eligible.saturating_sub(size),
        size,
        holdout,
        expected_conversions: expected,
        overlap,
        segment_mix,
    })
}

/// The declared audience `opts.name` with `--where` applied, or a new one from `--where`.
fn audience_to_preview(opts: &PreviewOptions) -> Result<AudienceConfig> {
    let declared = opts.config.audiences.iter().find(|a| a.name == opts.name);
    let mut audience = match (declared, &opts.predicate) {
        (Some(a), _) => a.clone(),
        (None, Some(predicate)) => AudienceConfig {
            name: opts.name.clone(),
            predicate: predicate.clone(),
            order_by: None,
            limit: None,
            holdout_share: None,
            channel: Channel::Any,
            experiment: None,
        },
        (None, None) => {
            let names: Vec<&str> = opts
                .config
                .audiences
                .iter()
                .map(|a| a.name.as_str())
                .collect();
            return Err(PipelineError::Config(format!(
                "no audience '{}' in the configuration (declared: {}); give --where to preview \
                 a new one",
                opts.name,
                if names.is_empty() {
                    "none".to_string()
                } else {
                    names.join(", ")
                }
            )));
        }
    };
    if let Some(predicate) = &opts.predicate {
        audience.predicate = predicate.clone();
    }
    let mut check = opts.config.clone();
    check.audiences = vec![audience.clone()];
    check.validate().map_err(PipelineError::Config)?;
    Ok(audience)
}

/// Registers `suppressions` from the input root's `suppressions/` when given and present
/// (returns true), otherwise no rows.
async fn register_suppressions(
    ctx: &SessionContext,
    input: Option<&str>,
    config: &PipelineConfig,
) -> Result<bool> {
    if let Some(input) = input {
        let root = Root::parse(input, &config.storage)?;
        let source = crate::contract::suppressions();
        if root.exists_dir(source.name).await? {
            register_parquet(ctx, source.name, &root.child(source.name), "").await?;
            return Ok(true);
        }
    }
    ctx.sql("CREATE VIEW suppressions AS SELECT CAST(NULL AS VARCHAR) AS customer_id WHERE false")
        .await?;
    Ok(false)
}

/// The first row of a one-row query's integers.
async fn ints(ctx: &SessionContext, sql: &str) -> Result<Vec<u64>> {
    let batches = ctx.sql(sql).await?.collect().await?;
    first_row(&batches, |b, r| {
        (0..b.num_columns())
            .map(|i| {
                arrow::compute::cast(b.column(i), &DataType::Int64)
                    .ok()
                    .map_or(0, |c| c.as_primitive::<Int64Type>().value(r) as u64)
            })
            .collect()
    })
    .ok_or_else(|| PipelineError::Internal("the audience's counts have no row".into()))
}

/// `f` of the first row of `batches`, if any.
fn first_row<T>(batches: &[RecordBatch], f: impl Fn(&RecordBatch, usize) -> T) -> Option<T> {
    batches.iter().find(|b| b.num_rows() > 0).map(|b| f(b, 0))
}

/// `(text, integer, count)` rows of a query whose columns are a string, an integer (or a
/// count, when it has two columns) and a count.
async fn rows(ctx: &SessionContext, sql: &str) -> Result<Vec<(String, i64, u64)>> {
    let mut out = Vec::new();
    for b in ctx.sql(sql).await?.collect().await? {
        let text = arrow::compute::cast(b.column(0), &DataType::Utf8)?;
        let text = text.as_string::<i32>();
        let last = arrow::compute::cast(b.column(b.num_columns() - 1), &DataType::Int64)?;
        let middle = arrow::compute::cast(b.column(1), &DataType::Int64)?;
        for r in 0..b.num_rows() {
            out.push((
                text.value(r).to_string(),
                middle.as_primitive::<Int64Type>().value(r),
                last.as_primitive::<Int64Type>().value(r) as u64,
            ));
        }
    }
    Ok(out)
}

impl fmt::Display for Preview {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "Audience {} over the night of {}: {} customers ({} held out, {} contacted)",
            self.audience,
            self.date,
            self.size,
            self.holdout,
            self.size - self.holdout
        )?;
        writeln!(f, "  where {}", self.predicate)?;
        writeln!(
            f,
            "  matched {}; excluded {} without opt-in, {} suppressed{}; {} beyond the limit",
            self.matched,
            self.excluded_opt_out,
            self.excluded_suppressed,
            if self.suppressions_read {
                ""
            } else {
                " (no --input: suppressions not read)"
            },
            self.beyond_limit
        )?;
        if let Some(e) = self.expected_conversions {
            writeln!(f, "  expected conversions among the contacted: {e:.1}")?;
        }
        if !self.overlap.is_empty() {
            let parts: Vec<String> = self
                .overlap
                .iter()
                .map(|(name, n)| format!("{name} {n}"))
                .collect();
            writeln!(f, "  overlap: {}", parts.join(", "))?;
        }
        writeln!(f, "  segments:")?;
        for (id, label, n) in &self.segment_mix {
            let share = 100.0 * *n as f64 / self.size.max(1) as f64;
            writeln!(f, "    {id:>3} {label:<50} {n:>8} {share:>5.1}%")?;
        }
        Ok(())
    }
}
