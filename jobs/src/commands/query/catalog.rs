//! The published tables as an analyst sees them: every table under the output root by name at
//! its latest committed date (or the pinned `--date`), and `<table>_history` with every
//! committed date and a `dt` column. A date's tables are found through its manifest only
//! ([`crate::engine::commit`]), so a run that is publishing (or died publishing) is never read, and
//! every table of a date comes from the same run.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use datafusion::prelude::{DataFrame, SessionContext, lit};

use crate::engine::commit::committed_nights;
use crate::engine::storage::Root;
use crate::engine::tables::partition_frame;
use crate::error::{PipelineError, Result};

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
            // The audiences' activation files (CSV) and the report (HTML) are not tables.
            if crate::engine::commit::FILE_FOLDERS.contains(&table.as_str()) {
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
