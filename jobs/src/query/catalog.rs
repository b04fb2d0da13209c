//! The published tables as an analyst sees them: every table under the output root by name at
//! its latest successful date (or the pinned `--date`), and `<table>_history` with every
//! successful date and a `dt` column. A partition counts only once its `_SUCCESS` marker is
//! there, so a run that is publishing (or died publishing) is never read.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::NaiveDate;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::prelude::{DataFrame, SessionContext, lit};

use crate::error::{PipelineError, Result};
use crate::input::partition_date;
use crate::publish::SUCCESS;
use crate::storage::Root;

/// Bytes read from the end of a file to find its footer (one request when the footer fits).
const FOOTER_PREFETCH: usize = 64 * 1024;

/// One registered table.
#[derive(Debug, Clone)]
pub struct TableInfo {
    /// Name in SQL.
    pub name: String,
    /// The date the plain name reads.
    pub date: NaiveDate,
    /// Every successful date (the `_history` table).
    pub dates: Vec<NaiveDate>,
}

/// The successful dates of every table under `output`.
async fn successful_partitions(output: &Root) -> Result<BTreeMap<String, Vec<NaiveDate>>> {
    let mut tables = BTreeMap::new();
    for table in output.list_dirs("").await? {
        if table.starts_with(['_', '.']) {
            continue;
        }
        let dates = successful_dates(output, &table).await?;
        if !dates.is_empty() {
            tables.insert(table, dates);
        }
    }
    Ok(tables)
}

/// The dates of `table` under `output` whose partition is complete (has `_SUCCESS`), oldest
/// first; none when the table does not exist.
pub async fn successful_dates(output: &Root, table: &str) -> Result<Vec<NaiveDate>> {
    let mut dates = Vec::new();
    for partition in output.list_dirs(table).await? {
        let Some(date) = partition_date(&partition) else {
            continue;
        };
        let files = output.list_files(&format!("{table}/{partition}")).await?;
        if files.iter().any(|m| m.location.filename() == Some(SUCCESS)) {
            dates.push(date);
        }
    }
    dates.sort();
    Ok(dates)
}

/// Registers the tables of `output` on `ctx`; `pinned` reads that date instead of the latest.
pub async fn register_outputs(
    ctx: &SessionContext,
    output: &Root,
    pinned: Option<NaiveDate>,
) -> Result<Vec<TableInfo>> {
    let tables = successful_partitions(output).await?;
    if tables.is_empty() {
        return Err(PipelineError::BadInput(format!(
            "no published tables under {} (looked for <table>/dt=<date>/{SUCCESS}); run `persona run --output {}` first",
            output.display(),
            output.display()
        )));
    }
    let mut infos = Vec::new();
    for (name, dates) in tables {
        let date = match pinned {
            None => dates.last().copied(),
            Some(d) => dates.iter().copied().find(|x| *x == d),
        };
        let Some(date) = date else {
            continue;
        };
        // Each partition is read (its footers fetched) once, for both registrations.
        let mut history: Option<DataFrame> = None;
        for d in &dates {
            let frame = partition_frame(ctx, output, &name, *d).await?;
            if *d == date {
                ctx.register_table(name.as_str(), frame.clone().into_view())?;
            }
            let frame = frame.with_column("dt", lit(d.to_string()))?;
            history = Some(match history {
                None => frame,
                Some(h) => h.union(frame)?,
            });
        }
        if let Some(history) = history {
            ctx.register_table(format!("{name}_history").as_str(), history.into_view())?;
        }
        infos.push(TableInfo { name, date, dates });
    }
    if infos.is_empty() {
        let day = pinned.map(|d| d.to_string()).unwrap_or_default();
        return Err(PipelineError::BadInput(format!(
            "no table under {} has a successful partition for {day}",
            output.display()
        )));
    }
    Ok(infos)
}

/// One successful partition as a DataFrame.
async fn partition_frame(
    ctx: &SessionContext,
    output: &Root,
    table: &str,
    date: NaiveDate,
) -> Result<DataFrame> {
    let url = ListingTableUrl::parse(output.url(&format!("{table}/dt={date}")))?;
    // DataFusion prefetches 512 KiB from the end of a file to find its footer, i.e. whole files
    // at our sizes; the footers of published tables are a few KiB.
    let format = ParquetFormat::default().with_metadata_size_hint(Some(FOOTER_PREFETCH));
    let options = ListingOptions::new(Arc::new(format)).with_file_extension(".parquet");
    let config = ListingTableConfig::new(url)
        .with_listing_options(options)
        .infer_schema(&ctx.state())
        .await?;
    Ok(ctx.read_table(Arc::new(ListingTable::try_new(config)?))?)
}
