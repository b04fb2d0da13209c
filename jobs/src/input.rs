//! Finding, validating and registering the input sources.
//!
//! Before any query runs, every file the run will read is checked against the contract from its
//! Parquet footer alone (cheap): a missing column, a wrong type or a file that is not Parquet is
//! reported with the file, the column, and what was expected. Then each source is registered as
//! a listing table with the contract's schema (hive partition column `dt`).

use std::sync::Arc;

use chrono::NaiveDate;
use datafusion::arrow::datatypes::{DataType, Schema, SchemaRef};
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::prelude::SessionContext;
use futures::{StreamExt, TryStreamExt};
use object_store::ObjectMeta;
use object_store::ObjectStoreExt;
use parquet::arrow::parquet_to_arrow_schema;
use parquet::file::metadata::{FooterTail, ParquetMetaDataReader};

use crate::contract::{self, Source};
use crate::engine::storage::{Root, partition_date};
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
    /// Bytes of Parquet in those files.
    pub bytes: u64,
}

/// Validates and registers every source under `root` for `window`.
pub async fn register_inputs(
    ctx: &SessionContext,
    root: &Root,
    window: Window,
) -> Result<Vec<SourceReport>> {
    if let Some(path) = root.local_path()
        && !path.is_dir()
    {
        return Err(PipelineError::BadInput(format!(
            "input root {} does not exist or is not a folder (expected web_logs/, app_events/, crm_customers/ under it)",
            path.display()
        )));
    }
    let mut reports = Vec::new();
    for source in contract::sources() {
        if !root.exists_dir(source.name).await? {
            if source.required {
                return Err(PipelineError::BadInput(format!(
                    "input folder {} is missing: expected the {} source as Parquet files (see docs/contract-and-outputs.md)",
                    root.location(source.name),
                    source.name
                )));
            }
            register_fallback(ctx, &source).await?;
            reports.push(SourceReport {
                source: source.name.into(),
                files: 0,
                days: 0,
                present: false,
                bytes: 0,
            });
            continue;
        }
        let (files, days) = files_in_window(root, &source, window).await?;
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
                root.location(source.name)
            )));
        }
        validate_files(root, &files, &source).await?;
        register_source(ctx, root, &source).await?;
        reports.push(SourceReport {
            source: source.name.into(),
            files: files.len(),
            days,
            present: true,
            bytes: files.iter().map(|f| f.size).sum(),
        });
    }
    Ok(reports)
}

/// The Parquet files of a source that the run reads, and the number of day partitions.
async fn files_in_window(
    root: &Root,
    source: &Source,
    window: Window,
) -> Result<(Vec<ObjectMeta>, usize)> {
    if !source.partitioned {
        return Ok((parquet_files(root, source.name).await?, 0));
    }
    let mut files = Vec::new();
    let mut days = 0;
    for name in root.list_dirs(source.name).await? {
        let Some(date) = partition_date(&name) else {
            continue;
        };
        if date >= window.first && date <= window.last {
            let found = parquet_files(root, &format!("{}/{name}", source.name)).await?;
            days += usize::from(!found.is_empty());
            files.extend(found);
        }
    }
    Ok((files, days))
}

/// Parquet files directly in `rel` (hidden and `_`-prefixed files are not data).
async fn parquet_files(root: &Root, rel: &str) -> Result<Vec<ObjectMeta>> {
    Ok(root
        .list_files(rel)
        .await?
        .into_iter()
        .filter(|m| {
            let name = m.location.filename().unwrap_or_default();
            name.ends_with(".parquet") && !name.starts_with(['.', '_'])
        })
        .collect())
}

/// Checks the footers of `files`, a few at a time (one round trip each on S3).
async fn validate_files(root: &Root, files: &[ObjectMeta], source: &Source) -> Result<()> {
    let checks = files.iter().map(|meta| async move {
        let rel = root.relative(meta);
        let schema = read_schema(root, &rel, meta.size).await?;
        check_schema(&schema, &root.location(&rel), source)
    });
    futures::stream::iter(checks)
        .buffered(8)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(())
}

/// Bytes fetched from the end of a file at first: the footer of a typical file fits, so one
/// ranged GET usually suffices.
const FOOTER_PREFETCH: u64 = 64 * 1024;

/// The Arrow schema of the Parquet file `rel`, from its footer alone (one or two ranged reads).
async fn read_schema(root: &Root, rel: &str, size: u64) -> Result<SchemaRef> {
    let not_parquet = |why: String| {
        PipelineError::BadInput(format!(
            "{}: not a readable Parquet file ({why})",
            root.location(rel)
        ))
    };
    if size < 12 {
        return Err(not_parquet(format!("{size} bytes is too short")));
    }
    let (store, path) = root.object(rel)?;
    let start = size.saturating_sub(FOOTER_PREFETCH);
    let suffix = store
        .get_range(&path, start..size)
        .await
        .map_err(|e| root.error(rel, e))?;
    let tail: &[u8] = &suffix[suffix.len() - 8..];
    let footer = FooterTail::try_from(tail).map_err(|e| not_parquet(e.to_string()))?;
    let needed = footer.metadata_length() as u64 + 8;
    if needed > size {
        return Err(not_parquet(format!(
            "the footer claims {needed} bytes of a {size}-byte file"
        )));
    }
    let metadata = if needed <= suffix.len() as u64 {
        let from = suffix.len() - needed as usize;
        ParquetMetaDataReader::decode_metadata(&suffix[from..suffix.len() - 8])
    } else {
        let bytes = store
            .get_range(&path, size - needed..size - 8)
            .await
            .map_err(|e| root.error(rel, e))?;
        ParquetMetaDataReader::decode_metadata(&bytes)
    }
    .map_err(|e| not_parquet(e.to_string()))?;
    let file = metadata.file_metadata();
    let schema = parquet_to_arrow_schema(file.schema_descr(), file.key_value_metadata())
        .map_err(|e| not_parquet(e.to_string()))?;
    Ok(Arc::new(schema))
}

/// Checks one file's schema against the contract.
pub fn check_schema(schema: &Schema, file: &str, source: &Source) -> Result<()> {
    for column in &source.columns {
        match schema.field_with_name(column.name) {
            Err(_) => {
                let found: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
                return Err(PipelineError::BadInput(format!(
                    "{file}: column '{}' is missing (expected {} column of {}); the file has: {}",
                    column.name,
                    column.family.describe(),
                    source.name,
                    found.join(", ")
                )));
            }
            Ok(field) if !column.family.accepts(field.data_type()) => {
                return Err(PipelineError::BadInput(format!(
                    "{file}: column '{}' has type {}, expected {}",
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

async fn register_source(ctx: &SessionContext, root: &Root, source: &Source) -> Result<()> {
    let url = ListingTableUrl::parse(root.url(source.name))?;
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
/// counts as a catalog item with unknown category; without a suppression list, nobody is
/// suppressed. Views, not in-memory tables, so that they travel to a Ballista cluster.
async fn register_fallback(ctx: &SessionContext, source: &Source) -> Result<()> {
    let view = match source.name {
        "items" => {
            "CREATE OR REPLACE VIEW items AS SELECT DISTINCT item_id, CAST(NULL AS VARCHAR) AS category, \
             CAST(NULL AS VARCHAR) AS brand, CAST(NULL AS DOUBLE) AS price FROM app_events WHERE item_id IS NOT NULL"
        }
        "suppressions" => {
            "CREATE OR REPLACE VIEW suppressions AS SELECT CAST(NULL AS VARCHAR) AS customer_id WHERE false"
        }
        _ => return Ok(()),
    };
    ctx.sql(view).await?;
    Ok(())
}

/// Whether a failed query's error looks like undecodable Parquet data (corrupt pages behind a
/// valid footer): the footers were all checked up front, the pages are only read by the query,
/// whose error does not say which file it was reading.
pub fn is_page_decoding_error(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("parquet")
        && [
            "corrupt",
            "decompress",
            "snappy",
            "zstd",
            "out of spec",
            "eof",
        ]
        .iter()
        .any(|w| m.contains(w))
}

/// Finds the first input file of the window whose data cannot be decoded, by reading each one
/// whole. Only called after a query failed on undecodable data, to name the file.
pub async fn find_undecodable_file(root: &Root, window: Window) -> Result<Option<PipelineError>> {
    for source in contract::sources() {
        if !root.exists_dir(source.name).await? {
            continue;
        }
        let (files, _) = files_in_window(root, &source, window).await?;
        for meta in files {
            let rel = root.relative(&meta);
            let (store, path) = root.object(&rel)?;
            let bytes = store
                .get(&path)
                .await
                .map_err(|e| root.error(&rel, e))?
                .bytes()
                .await
                .map_err(|e| root.error(&rel, e))?;
            // A damaged page can make a decoder panic rather than fail: that names the file too.
            let decoded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes)
                    .and_then(|b| b.build())
                    .map_err(|e| e.to_string())
                    .and_then(|reader| {
                        reader
                            .map(|batch| batch.map(|_| ()).map_err(|e| e.to_string()))
                            .collect::<std::result::Result<Vec<()>, String>>()
                    })
            }))
            .unwrap_or_else(|_| Err("the decoder panicked".to_string()));
            if let Err(why) = decoded {
                return Ok(Some(PipelineError::BadInput(format!(
                    "{}: the file's data cannot be decoded ({why}); its footer is intact, so the \
                     file was damaged after it was written: re-export it",
                    root.location(&rel)
                ))));
            }
        }
    }
    Ok(None)
}
