//! Tables of the one-off commands (`persona kmeans`, `persona als`): any Parquet file or folder
//! registered under a name, and column names quoted for the SQL the commands write.

use datafusion::prelude::{ParquetReadOptions, SessionContext};

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
