//! The run's work area: intermediate tables materialised as Parquet under
//! `OUTPUT/_work/run-<id>/`, re-read by later stages instead of re-derived, and removed when the
//! run ends. Materialising (rather than caching in memory) is what lets the same stages run on a
//! Ballista cluster, where in-memory tables do not exist.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use arrow::array::AsArray;
use arrow::datatypes::UInt64Type;
use arrow::record_batch::RecordBatch;
use datafusion::common::config::TableParquetOptions;
use datafusion::dataframe::DataFrameWriteOptions;
use datafusion::prelude::{DataFrame, ParquetReadOptions, SessionContext};
use parquet::arrow::ArrowWriter;

use crate::error::{PipelineError, Result};

/// Work folders untouched for this long belong to runs that died; the next run removes them.
const STALE_AFTER: Duration = Duration::from_secs(6 * 3600);

/// A run's scratch space.
#[derive(Debug)]
pub struct WorkArea {
    dir: PathBuf,
}

impl WorkArea {
    /// Creates `output/_work/run-<run_id>/`, first removing stale work folders of dead runs.
    pub fn create(output: &Path, run_id: &str) -> Result<Self> {
        let parent = output.join("_work");
        remove_stale(&parent);
        let dir = parent.join(format!("run-{run_id}"));
        std::fs::create_dir_all(&dir).map_err(|e| PipelineError::io(&dir, e))?;
        Ok(Self { dir })
    }

    /// The folder of this run.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes a DataFrame as the table `name` (Parquet, snappy) and registers it under that
    /// name, replacing any earlier registration. Returns the rows written.
    pub async fn materialize(
        &self,
        ctx: &SessionContext,
        name: &str,
        df: DataFrame,
    ) -> Result<u64> {
        let schema = df.schema().as_arrow().clone();
        let path = self.dir.join(name);
        let url = format!("{}/", path.display());
        let mut options = TableParquetOptions::default();
        options.global.compression = Some("snappy".into());
        let counts = df
            .write_parquet(&url, DataFrameWriteOptions::new(), Some(options))
            .await?;
        let rows = count_rows_written(&counts);
        std::fs::create_dir_all(&path).map_err(|e| PipelineError::io(&path, e))?;
        ctx.deregister_table(name)?;
        ctx.register_parquet(name, &url, ParquetReadOptions::default().schema(&schema))
            .await?;
        Ok(rows)
    }

    /// Writes a small batch computed on the client (centroid labels, factors) as table `name`
    /// and registers it.
    pub async fn write_batch(
        &self,
        ctx: &SessionContext,
        name: &str,
        batch: &RecordBatch,
    ) -> Result<u64> {
        let path = self.dir.join(name);
        std::fs::create_dir_all(&path).map_err(|e| PipelineError::io(&path, e))?;
        let file_path = path.join("part-0.parquet");
        let file = File::create(&file_path).map_err(|e| PipelineError::io(&file_path, e))?;
        let mut writer = ArrowWriter::try_new(file, batch.schema(), None)?;
        writer.write(batch)?;
        writer.close()?;
        let url = format!("{}/", path.display());
        ctx.deregister_table(name)?;
        ctx.register_parquet(
            name,
            &url,
            ParquetReadOptions::default().schema(&batch.schema()),
        )
        .await?;
        Ok(batch.num_rows() as u64)
    }

    /// Removes the work area.
    pub fn remove(&self) {
        if let Err(e) = std::fs::remove_dir_all(&self.dir) {
            tracing::warn!(dir = %self.dir.display(), error = %e, "could not remove the work area");
        }
    }
}

/// The total of the `count` column DataFusion's writers return.
pub fn count_rows_written(batches: &[RecordBatch]) -> u64 {
    batches
        .iter()
        .filter_map(|b| b.column_by_name("count"))
        .filter_map(|c| {
            c.as_primitive_opt::<UInt64Type>()
                .map(|a| a.iter().flatten().sum::<u64>())
        })
        .sum()
}

fn remove_stale(parent: &Path) {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| SystemTime::now().duration_since(t).ok())
            .is_some_and(|age| age > STALE_AFTER);
        if old {
            tracing::info!(dir = %entry.path().display(), "removing the work area of an earlier, interrupted run");
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}
