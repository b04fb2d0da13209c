//! Finding, validating and registering the input sources.
//!
//! Before any query runs, every file the run will read is checked against the contract from its
//! Parquet footer alone (cheap): a missing column, a wrong type or a file that is not Parquet is
//! reported with the file, the column, and what was expected. Then each source is registered as
//! a listing table with the contract's schema (hive partition column `dt`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::NaiveDate;
use datafusion::arrow::datatypes::DataType;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::prelude::SessionContext;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::contract::{self, Source};
use crate::error::{PipelineError, Result};

/// The days a run reads: partitions `first..=last`.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    /// First day (inclusive).
    pub first: NaiveDate,
    /// Last day (inclusive): the run date.
    pub last: NaiveDate,
}

impl Window {
    /// The `lookback_days` days ending at `date`.
    pub fn ending(date: NaiveDate, lookback_days: u32) -> Self {
        Self {
            first: date - chrono::Duration::days(i64::from(lookback_days.max(1)) - 1),
            last: date,
        }
    }
}

/// What was found per source.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SourceReport {
    /// Source name.
    pub source: String,
    /// Files validated.
    pub files: usize,
    /// Partitions (days) found in the window.
    pub days: usize,
    /// Whether the source was present (optional sources may be absent).
    pub present: bool,
}

/// Validates and registers every source under `root` for `window`.
pub async fn register_inputs(
    ctx: &SessionContext,
    root: &Path,
    window: Window,
) -> Result<Vec<SourceReport>> {
    if !root.is_dir() {
        return Err(PipelineError::BadInput(format!(
            "input root {} does not exist or is not a folder (expected web_logs/, app_events/, crm_customers/ under it)",
            root.display()
        )));
    }
    let mut reports = Vec::new();
    for source in contract::sources() {
        let dir = root.join(source.name);
        if !dir.is_dir() {
            if source.required {
                return Err(PipelineError::BadInput(format!(
                    "input folder {} is missing: expected the {} source as Parquet files (see README, 'Input contract')",
                    dir.display(),
                    source.name
                )));
            }
            register_fallback(ctx, &source).await?;
            reports.push(SourceReport {
                source: source.name.into(),
                files: 0,
                days: 0,
                present: false,
            });
            continue;
        }
        let (files, days) = files_in_window(&dir, &source, window)?;
        if files.is_empty() {
            let what = if source.partitioned {
                format!(
                    "no Parquet files in partitions dt={}..dt={}",
                    window.first, window.last
                )
            } else {
                "no Parquet files".to_string()
            };
            return Err(PipelineError::BadInput(format!(
                "{}: {what} (empty window)",
                dir.display()
            )));
        }
        for file in &files {
            validate_file(file, &source)?;
        }
        register_source(ctx, &dir, &source).await?;
        reports.push(SourceReport {
            source: source.name.into(),
            files: files.len(),
            days,
            present: true,
        });
    }
    Ok(reports)
}

/// The Parquet files of a source that the run reads, and the number of day partitions.
fn files_in_window(dir: &Path, source: &Source, window: Window) -> Result<(Vec<PathBuf>, usize)> {
    if !source.partitioned {
        return Ok((parquet_files(dir)?, 0));
    }
    let mut files = Vec::new();
    let mut days = 0;
    for entry in read_dir(dir)? {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(date) = name
            .strip_prefix("dt=")
            .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
        else {
            continue;
        };
        if date >= window.first && date <= window.last {
            let found = parquet_files(&entry.path())?;
            days += usize::from(!found.is_empty());
            files.extend(found);
        }
    }
    files.sort();
    Ok((files, days))
}

fn read_dir(dir: &Path) -> Result<Vec<std::fs::DirEntry>> {
    let entries = std::fs::read_dir(dir).map_err(|e| PipelineError::io(dir, e))?;
    entries
        .collect::<std::io::Result<Vec<_>>>()
        .map_err(|e| PipelineError::io(dir, e))
}

/// Parquet files directly in `dir` (hidden and `_`-prefixed files are not data).
fn parquet_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = read_dir(dir)?
        .into_iter()
        .map(|e| e.path())
        .filter(|p| {
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            p.is_file() && name.ends_with(".parquet") && !name.starts_with(['.', '_'])
        })
        .collect();
    files.sort();
    Ok(files)
}

/// Checks one file's footer against the contract.
pub fn validate_file(path: &Path, source: &Source) -> Result<()> {
    let file = std::fs::File::open(path).map_err(|e| PipelineError::io(path, e))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| {
        PipelineError::BadInput(format!(
            "{}: not a readable Parquet file ({e})",
            path.display()
        ))
    })?;
    let schema = builder.schema();
    for column in &source.columns {
        match schema.field_with_name(column.name) {
            Err(_) => {
                let found: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
                return Err(PipelineError::BadInput(format!(
                    "{}: column '{}' is missing (expected {} column of {}); the file has: {}",
                    path.display(),
                    column.name,
                    column.family.describe(),
                    source.name,
                    found.join(", ")
                )));
            }
            Ok(field) if !column.family.accepts(field.data_type()) => {
                return Err(PipelineError::BadInput(format!(
                    "{}: column '{}' has type {}, expected {}",
                    path.display(),
                    column.name,
                    field.data_type(),
                    column.family.describe()
                )));
            }
            Ok(_) => {}
        }
    }
    Ok(())
}

async fn register_source(ctx: &SessionContext, dir: &Path, source: &Source) -> Result<()> {
    let url = ListingTableUrl::parse(format!("{}/", dir.display()))?;
    let mut options =
        ListingOptions::new(Arc::new(ParquetFormat::default())).with_file_extension(".parquet");
    if source.partitioned {
        options = options.with_table_partition_cols(vec![("dt".to_string(), DataType::Utf8)]);
    }
    let config = ListingTableConfig::new(url)
        .with_listing_options(options)
        .with_schema(source.schema());
    ctx.register_table(source.name, Arc::new(ListingTable::try_new(config)?))?;
    Ok(())
}

/// Stand-ins for absent optional sources: without a catalog, every item seen in the app events
/// counts as a catalog item with unknown category.
async fn register_fallback(ctx: &SessionContext, source: &Source) -> Result<()> {
    if source.name == "items" {
        ctx.sql(
            "CREATE VIEW items AS SELECT DISTINCT item_id, CAST(NULL AS VARCHAR) AS category, \
             CAST(NULL AS VARCHAR) AS brand, CAST(NULL AS DOUBLE) AS price FROM app_events WHERE item_id IS NOT NULL",
        )
        .await?;
    }
    Ok(())
}
