//! Publishing: outputs appear whole or not at all, and a failed run never touches the previous
//! partitions.
//!
//! Every table is first written completely into the run's work area, with its `_SUCCESS` marker.
//! Only when all tables and the manifest are staged does [`Publisher::commit`] move each staged
//! folder into place as `OUTPUT/<table>/dt=<date>/` with one directory rename (atomic on a local
//! file system). A partition of the same date that already exists (a rerun) is moved aside first
//! and restored if anything fails before the last table is in place; the run manifest goes last.

use std::fs::File;
use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use datafusion::common::config::TableParquetOptions;
use datafusion::dataframe::DataFrameWriteOptions;
use datafusion::prelude::SessionContext;
use parquet::arrow::ArrowWriter;

use crate::error::{PipelineError, Result};
use crate::fault;
use crate::work::{WorkArea, count_rows_written};

/// The folder under the output root that holds the run manifests.
pub const RUNS_DIR: &str = "_runs";
/// The marker written last into every complete partition.
pub const SUCCESS: &str = "_SUCCESS";

/// Stages tables into the work area and commits them.
#[derive(Debug)]
pub struct Publisher {
    output: PathBuf,
    partition: String,
    staging: PathBuf,
    staged: Vec<String>,
}

impl Publisher {
    /// A publisher for `date` under `output`, staging inside `work`.
    pub fn new(output: &Path, date: NaiveDate, work: &WorkArea) -> Self {
        Self {
            output: output.to_path_buf(),
            partition: format!("dt={date}"),
            staging: work.dir().join("publish"),
            staged: Vec::new(),
        }
    }

    /// Where a table's partition for this date is published.
    pub fn partition_dir(&self, table: &str) -> PathBuf {
        self.output.join(table).join(&self.partition)
    }

    /// Writes the registered table `table` (zstd Parquet) with its `_SUCCESS` marker into the
    /// staging area. Returns the rows written.
    pub async fn stage_table(&mut self, ctx: &SessionContext, table: &str) -> Result<u64> {
        let dir = self.staging.join(table);
        let df = ctx.table(table).await?;
        let schema = df.schema().as_arrow().clone();
        let mut options = TableParquetOptions::default();
        options.global.compression = Some("zstd(3)".into());
        let counts = df
            .write_parquet(
                &format!("{}/", dir.display()),
                DataFrameWriteOptions::new(),
                Some(options),
            )
            .await?;
        let rows = count_rows_written(&counts);
        std::fs::create_dir_all(&dir).map_err(|e| PipelineError::io(&dir, e))?;
        if rows == 0 {
            // Readers need a file to learn the schema of an empty table.
            let path = dir.join("part-0.parquet");
            let file = File::create(&path).map_err(|e| PipelineError::io(&path, e))?;
            ArrowWriter::try_new(file, std::sync::Arc::new(schema), None)?.close()?;
        }
        write_marker(&dir)?;
        self.staged.push(table.to_string());
        Ok(rows)
    }

    /// Stages the run manifest (JSON) under `_runs/`.
    pub fn stage_manifest(&mut self, manifest_json: &str) -> Result<()> {
        let dir = self.staging.join(RUNS_DIR);
        std::fs::create_dir_all(&dir).map_err(|e| PipelineError::io(&dir, e))?;
        let path = dir.join("manifest.json");
        std::fs::write(&path, manifest_json).map_err(|e| PipelineError::io(&path, e))?;
        write_marker(&dir)
    }

    /// Moves every staged table into place, then the manifest. On failure, partitions already
    /// replaced are restored and the error is returned.
    pub fn commit(self) -> Result<()> {
        let aside = self.staging.join("_replaced");
        std::fs::create_dir_all(&aside).map_err(|e| PipelineError::io(&aside, e))?;
        let mut order = self.staged.clone();
        order.push(RUNS_DIR.to_string());
        let mut done: Vec<(PathBuf, Option<PathBuf>)> = Vec::new();
        for table in &order {
            match self.swap_in(table, &aside) {
                Ok(step) => done.push(step),
                Err(e) => {
                    rollback(&done);
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// Puts one staged table in place; returns (published dir, where the old one went).
    fn swap_in(&self, table: &str, aside: &Path) -> Result<(PathBuf, Option<PathBuf>)> {
        fault::check(&format!("commit:{table}"))?;
        let target = self.partition_dir(table);
        let parent = target.parent().unwrap_or(&self.output);
        std::fs::create_dir_all(parent).map_err(|e| PipelineError::io(parent, e))?;
        let old = if target.exists() {
            let old = aside.join(table);
            std::fs::rename(&target, &old).map_err(|e| PipelineError::io(&target, e))?;
            Some(old)
        } else {
            None
        };
        let staged = self.staging.join(table);
        if let Err(e) = std::fs::rename(&staged, &target) {
            if let Some(old) = &old {
                let _ = std::fs::rename(old, &target);
            }
            return Err(PipelineError::io(&target, e));
        }
        Ok((target, old))
    }
}

fn write_marker(dir: &Path) -> Result<()> {
    let path = dir.join(SUCCESS);
    std::fs::write(&path, b"").map_err(|e| PipelineError::io(&path, e))
}

/// Undoes committed swaps, newest first: removes the new partition, restores the old one.
fn rollback(done: &[(PathBuf, Option<PathBuf>)]) {
    for (target, old) in done.iter().rev() {
        if let Err(e) = std::fs::remove_dir_all(target) {
            tracing::error!(dir = %target.display(), error = %e, "rollback: could not remove a new partition");
            continue;
        }
        if let Some(old) = old
            && let Err(e) = std::fs::rename(old, target)
        {
            tracing::error!(dir = %target.display(), error = %e, "rollback: could not restore the previous partition");
        }
    }
}
