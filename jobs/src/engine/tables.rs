//! Tables of the one-off commands (`persona kmeans`, `persona als`): any Parquet file or folder
//! registered under a name, and column names quoted for the SQL the commands write; and a
//! committed night's table folder as a DataFrame (`persona sql`, `persona report`).

use std::sync::Arc;

use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::prelude::{DataFrame, ParquetReadOptions, SessionContext};

use crate::engine::commit::parquet_files;
use crate::engine::storage::Root;
use crate::error::{PipelineError, Result};

/// An identifier quoted for SQL.
pub fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Registers a Parquet file or folder as `name`, with errors that name it.
pub async fn register_parquet(
    ctx: &SessionContext,
    name: &str,
    root: &Root,
    text: &str,
) -> Result<()> {
    if let Some(path) = root.local_path()
        && !path.exists()
    {
        return Err(PipelineError::BadInput(format!(
            "{}: no such file or folder",
            path.display()
        )));
    }
    let is_file = root
        .local_path()
        .map_or(text.ends_with(".parquet"), |p| p.is_file());
    let url = if is_file {
        root.location("")
    } else {
        root.url("")
    };
    ctx.register_parquet(name, &url, ParquetReadOptions::default())
        .await
        .map_err(|e| {
            PipelineError::BadInput(format!(
                "cannot read {} as Parquet: {}",
                root.display(),
                crate::error::first_line(&e.to_string())
            ))
        })?;
    Ok(())
}

/// Bytes read from the end of a file to find its footer (one request when the footer fits).
const FOOTER_PREFETCH: usize = 64 * 1024;

/// One committed table folder (its Parquet files, not its sub-folders) as a DataFrame.
pub async fn partition_frame(
    ctx: &SessionContext,
    output: &Root,
    folder: &str,
) -> Result<DataFrame> {
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
