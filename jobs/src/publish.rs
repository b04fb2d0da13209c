//! Publishing: outputs appear whole or not at all, and a failed run never touches the previous
//! partitions.
//!
//! Every table is first written completely into the run's work area, with its `_SUCCESS` marker.
//! Only when all tables and the manifest are staged does [`Publisher::commit`] put each one in
//! place as `OUTPUT/<table>/dt=<date>/`, the run manifest last:
//!
//! - on a local disk, with one directory rename per table (atomic). A partition of the same date
//!   that already exists (a rerun) is moved aside first and restored if anything fails before the
//!   last table is in place;
//! - in object storage, which has no rename: the partition's `_SUCCESS` is removed first (readers
//!   trust only partitions with `_SUCCESS`, so the partition disappears for them), the old
//!   objects are copied aside and deleted, the staged objects are copied in (server-side), and
//!   `_SUCCESS` is written last. A failure restores the old objects; a killed run leaves at most
//!   a partition without `_SUCCESS`, which readers skip and the next run of that date replaces.

use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use datafusion::common::config::TableParquetOptions;
use datafusion::dataframe::DataFrameWriteOptions;
use datafusion::prelude::SessionContext;
use parquet::arrow::ArrowWriter;

use crate::error::{PipelineError, Result};
use crate::fault;
use crate::storage::Root;
use crate::work::{WorkArea, count_rows_written};

/// The folder under the output root that holds the run manifests.
pub const RUNS_DIR: &str = "_runs";
/// The marker written last into every complete partition.
pub const SUCCESS: &str = "_SUCCESS";

/// Stages tables into the work area and commits them.
#[derive(Debug)]
pub struct Publisher {
    output: Root,
    /// `dt=<date>` for the nightly tables; `None` publishes `OUTPUT/<table>/` itself.
    partition: Option<String>,
    staging: Root,
    staged: Vec<String>,
    /// Folder and file name of the manifest.
    manifest: (String, String),
}

impl Publisher {
    /// A publisher for `date` under `output`, staging inside `work`.
    pub fn new(output: &Root, date: NaiveDate, work: &WorkArea) -> Self {
        Self {
            output: output.clone(),
            partition: Some(format!("dt={date}")),
            staging: work.publish_dir().clone(),
            staged: Vec::new(),
            manifest: (RUNS_DIR.to_string(), "manifest.json".to_string()),
        }
    }

    /// A publisher of whole tables `OUTPUT/<table>/` (no date partition), for standalone
    /// commands, with the report at `OUTPUT/<folder>/<file>`.
    pub fn unpartitioned(output: &Root, work: &WorkArea, folder: &str, file: &str) -> Self {
        Self {
            output: output.clone(),
            partition: None,
            staging: work.publish_dir().clone(),
            staged: Vec::new(),
            manifest: (folder.to_string(), file.to_string()),
        }
    }

    /// A table's partition for this date (or the table's folder), relative to the output root.
    fn partition_rel(&self, table: &str) -> String {
        match &self.partition {
            Some(p) => format!("{table}/{p}"),
            None => table.to_string(),
        }
    }

    /// Where a table's partition for this date is published.
    pub fn partition_location(&self, table: &str) -> String {
        self.output.location(&self.partition_rel(table))
    }

    /// Writes the registered table `table` (zstd Parquet) with its `_SUCCESS` marker into the
    /// staging area. Returns the rows written.
    pub async fn stage_table(&mut self, ctx: &SessionContext, table: &str) -> Result<u64> {
        let df = ctx.table(table).await?;
        let schema = df.schema().as_arrow().clone();
        let mut options = TableParquetOptions::default();
        options.global.compression = Some("zstd(3)".into());
        let counts = df
            .write_parquet(
                &self.staging.url(table),
                DataFrameWriteOptions::new(),
                Some(options),
            )
            .await?;
        let rows = count_rows_written(&counts);
        if rows == 0 {
            // Readers need a file to learn the schema of an empty table.
            let mut buffer = Vec::new();
            ArrowWriter::try_new(&mut buffer, std::sync::Arc::new(schema), None)?.close()?;
            self.staging
                .write(&format!("{table}/part-0.parquet"), buffer)
                .await?;
        }
        self.staging
            .write(&format!("{table}/{SUCCESS}"), Vec::new())
            .await?;
        self.staged.push(table.to_string());
        Ok(rows)
    }

    /// Stages the run manifest (JSON), under `_runs/` for the nightly job.
    pub async fn stage_manifest(&mut self, manifest_json: &str) -> Result<()> {
        let (folder, file) = &self.manifest;
        self.staging
            .write(
                &format!("{folder}/{file}"),
                manifest_json.as_bytes().to_vec(),
            )
            .await?;
        self.staging
            .write(&format!("{folder}/{SUCCESS}"), Vec::new())
            .await
    }

    /// Puts every staged table in place, then the manifest. On failure, partitions already
    /// replaced are restored and the error is returned.
    pub async fn commit(self) -> Result<()> {
        let mut order = self.staged.clone();
        order.push(self.manifest.0.clone());
        match (self.output.local_path(), self.staging.local_path()) {
            (Some(output), Some(staging)) => {
                let targets: Vec<(String, String)> = order
                    .iter()
                    .map(|t| (t.clone(), self.partition_rel(t)))
                    .collect();
                commit_by_rename(output, staging, &targets).await
            }
            _ => self.commit_by_copy(&order).await,
        }
    }

    /// The object-storage commit (see the module documentation).
    async fn commit_by_copy(&self, order: &[String]) -> Result<()> {
        let aside = self.staging.child("_replaced");
        let mut touched: Vec<(String, bool)> = Vec::new();
        for table in order {
            fault::check(&format!("commit:{table}")).await?;
            let target = self.partition_rel(table);
            let had_old = self.output.exists_dir(&target).await?;
            touched.push((table.clone(), had_old));
            let result = async {
                if had_old {
                    copy_partition(&self.output.child(&target), &aside, table).await?;
                }
                self.clear_partition(&target).await?;
                copy_partition(&self.staging.child(table), &self.output, &target).await
            }
            .await;
            if let Err(e) = result {
                self.restore_copies(&aside, &touched).await;
                return Err(e);
            }
        }
        Ok(())
    }

    /// Hides the partition `target` from readers (its `_SUCCESS` first), then removes it.
    async fn clear_partition(&self, target: &str) -> Result<()> {
        self.output.delete(&format!("{target}/{SUCCESS}")).await?;
        self.output.delete_tree(target).await
    }

    /// Undoes an object-storage commit, newest first: removes what was published and copies
    /// the previous objects back, `_SUCCESS` last.
    async fn restore_copies(&self, aside: &Root, touched: &[(String, bool)]) {
        for (table, had_old) in touched.iter().rev() {
            let target = self.partition_rel(table);
            let restored = async {
                self.clear_partition(&target).await?;
                if *had_old {
                    copy_partition(&aside.child(table), &self.output, &target).await?;
                }
                Ok::<(), PipelineError>(())
            }
            .await;
            if let Err(e) = restored {
                tracing::error!(partition = %self.output.location(&target), error = %e, "rollback: could not restore the previous partition");
            }
        }
    }
}

/// Copies every object under `from` to the same relative path under `to` in `dest` (one
/// store, server-side), the `_SUCCESS` marker last, so that readers see the copy only once it
/// is complete.
async fn copy_partition(from: &Root, dest: &Root, to: &str) -> Result<()> {
    let mut names: Vec<String> = from
        .list_all("")
        .await?
        .iter()
        .map(|m| from.relative(m))
        .collect();
    names.sort_by_key(|n| n == SUCCESS);
    for name in names {
        from.copy_to(&name, dest, &format!("{to}/{name}")).await?;
    }
    Ok(())
}

/// The local-disk commit (see the module documentation): each staged folder `(name, target)`
/// is renamed to `OUTPUT/<target>`.
async fn commit_by_rename(
    output: &Path,
    staging: &Path,
    targets: &[(String, String)],
) -> Result<()> {
    let aside = staging.join("_replaced");
    std::fs::create_dir_all(&aside).map_err(|e| PipelineError::io(&aside, e))?;
    let mut done: Vec<(PathBuf, Option<PathBuf>)> = Vec::new();
    for (table, target) in targets {
        match swap_in(output, staging, table, target, &aside).await {
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
async fn swap_in(
    output: &Path,
    staging: &Path,
    table: &str,
    target: &str,
    aside: &Path,
) -> Result<(PathBuf, Option<PathBuf>)> {
    fault::check(&format!("commit:{table}")).await?;
    let target = output.join(target);
    let parent = target.parent().unwrap_or(output);
    std::fs::create_dir_all(parent).map_err(|e| PipelineError::io(parent, e))?;
    let old = if target.exists() {
        let old = aside.join(table);
        std::fs::rename(&target, &old).map_err(|e| PipelineError::io(&target, e))?;
        Some(old)
    } else {
        None
    };
    let staged = staging.join(table);
    if let Err(e) = std::fs::rename(&staged, &target) {
        if let Some(old) = &old {
            let _ = std::fs::rename(old, &target);
        }
        return Err(PipelineError::io(&target, e));
    }
    Ok((target, old))
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
