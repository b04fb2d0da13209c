//! The published tables as an analyst sees them: every table under the output root by name at
//! its latest committed date (or the pinned `--date`), and `<table>_history` with every
//! committed date and a `dt` column. A date's tables are found through its manifest only
//! ([`crate::engine::commit`]), so a run that is publishing (or died publishing) is never read, and
//! every table of a date comes from the same run.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::NaiveDate;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::prelude::{DataFrame, SessionContext, lit};

use crate::engine::commit::{committed_nights, parquet_files};
use crate::engine::storage::Root;
use crate::error::{PipelineError, Result};

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

/// The committed nights under `output`, as each table's dates and folders, oldest first.
async fn committed_tables(output: &Root) -> Result<BTreeMap<String, Vec<(NaiveDate, String)>>> {
    let mut tables: BTreeMap<String, Vec<(NaiveDate, String)>> = BTreeMap::new();
    for night in committed_nights(output).await? {
        for (table, folder) in night.tables {
            // The audiences' activation files are CSV, read by the tools they are for.
            if table == crate::stages::audiences::EXPORTS {
                continue;
            }
            tables.entry(table).or_default().push((night.date, folder));
        }
    }
    Ok(tables)
}

/// Registers the tables of `output` on `ctx`; `pinned` reads that date instead of the latest.
pub async fn register_outputs(
    ctx: &SessionContext,
    output: &Root,
    pinned: Option<NaiveDate>,
) -> Result<Vec<TableInfo>> {
    let tables = committed_tables(output).await?;
    if tables.is_empty() {
        return Err(PipelineError::BadInput(format!(
            "no published tables under {} (looked for the nights' manifests, _runs/dt=<date>/manifest.json); run `persona run --output {}` first",
            output.display(),
            output.display()
        )));
    }
    let mut infos = Vec::new();
    for (name, nights) in tables {
        let dates: Vec<NaiveDate> = nights.iter().map(|(d, _)| *d).collect();
        let date = match pinned {
            None => dates.last().copied(),
            Some(d) => dates.iter().copied().find(|x| *x == d),
        };
        let Some(date) = date else {
            continue;
        };
        // Each partition is read (its footers fetched) once, for both registrations.
        let mut history: Option<DataFrame> = None;
        for (d, folder) in &nights {
            let frame = partition_frame(ctx, output, folder).await?;
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

/// One committed table folder (its Parquet files, not its sub-folders) as a DataFrame.
async fn partition_frame(ctx: &SessionContext, output: &Root, folder: &str) -> Result<DataFrame> {
    let urls = parquet_files(output, folder)
        .await?
        .iter()
        .map(ListingTableUrl::parse)
        .collect::<std::result::Result<Vec<_>, _>>()?;
    if urls.is_empty() {
        return Err(PipelineError::BadInput(format!(
            "{} has no Parquet file, though its night's manifest names it",
            output.location(folder)
        )));
    }
    // DataFusion prefetches 512 KiB from the end of a file to find its footer, i.e. whole files
    // at our sizes; the footers of published tables are a few KiB.
    let format = ParquetFormat::default().with_metadata_size_hint(Some(FOOTER_PREFETCH));
    let options = ListingOptions::new(Arc::new(format)).with_file_extension(".parquet");
    let config = ListingTableConfig::new_with_multi_paths(urls)
        .with_listing_options(options)
        .infer_schema(&ctx.state())
        .await?;
    Ok(ctx.read_table(Arc::new(ListingTable::try_new(config)?))?)
}
