//! Publishing: outputs appear whole or not at all, and a failed run never touches the previous
//! outputs.
//!
//! The nightly job's tables follow the night's commit protocol ([`crate::engine::commit`]): each is
//! written straight into this run's own folder `OUTPUT/<table>/dt=<date>/run=<run_id>/`, which no
//! reader looks at until [`Publisher::commit`] writes the night's manifest, naming them all, in
//! one atomic step. A run that fails or is stopped before that removes its folders
//! ([`commit::discard_run`]); one that is killed leaves them invisible, for the next run of the
//! date to remove.
//!
//! The standalone commands (`persona kmeans`, `persona als`) publish whole tables
//! `OUTPUT/<table>/` instead: every table is first written into the run's work area with its
//! `_SUCCESS` marker, then put in place, the report last:
//!
//! - on a local disk, with one directory rename per table (atomic). A table that already exists
//!   is moved aside first and restored if anything fails before the last table is in place;
//! - in object storage, which has no rename: the table's `_SUCCESS` is removed first (readers
//!   trust only folders with `_SUCCESS`), the old objects are copied aside and deleted, the
//!   staged objects are copied in (server-side), and `_SUCCESS` is written last. A failure
//!   restores the old objects.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use datafusion::common::config::TableParquetOptions;
use datafusion::dataframe::DataFrameWriteOptions;
use datafusion::prelude::{DataFrame, SessionContext};
use parquet::arrow::ArrowWriter;

use crate::engine::commit::{self, SUCCESS};
use crate::engine::fault;
use crate::engine::storage::Root;
use crate::engine::work::{WorkArea, count_rows_written};
use crate::error::{PipelineError, Result};

/// Where a publisher's tables go.
#[derive(Debug)]
enum Target {
    /// The night of `date`: `OUTPUT/<table>/dt=<date>/run=<run_id>/`, committed by the manifest
    /// `_runs/dt=<date>/manifest.json` ([`crate::engine::commit`]).
    Night {
        date: NaiveDate,
        run_id: String,
        /// The manifest's `published` map and the manifest itself, once staged.
        manifest: Option<(BTreeMap<String, String>, Vec<u8>)>,
    },
    /// Whole tables `OUTPUT/<table>/`, staged in `staging`, with the report at
    /// `OUTPUT/<folder>/<file>`.
    Tables {
        staging: Root,
        folder: String,
        file: String,
    },
}

/// Writes tables and commits them.
#[derive(Debug)]
pub struct Publisher {
    output: Root,
    target: Target,
    /// Tables written so far, in order.
    staged: Vec<String>,
}

impl Publisher {
    /// A publisher of the night of `date` by run `run_id` under `output`.
    pub fn night(output: &Root, date: NaiveDate, run_id: &str) -> Self {
        Self {
            output: output.clone(),
            target: Target::Night {
                date,
                run_id: run_id.to_string(),
                manifest: None,
            },
            staged: Vec::new(),
        }
    }

    /// A publisher of whole tables `OUTPUT/<table>/` (no date partition), for standalone
    /// commands, staging inside `work`, with the report at `OUTPUT/<folder>/<file>`.
    pub fn unpartitioned(output: &Root, work: &WorkArea, folder: &str, file: &str) -> Self {
        Self {
            output: output.clone(),
            target: Target::Tables {
                staging: work.publish_dir().clone(),
                folder: folder.to_string(),
                file: file.to_string(),
            },
            staged: Vec::new(),
        }
    }

    /// Where `table` is published, relative to the output root.
    fn published_rel(&self, table: &str) -> String {
        match &self.target {
            Target::Night { date, run_id, .. } => commit::run_folder(table, *date, run_id),
            Target::Tables { .. } => table.to_string(),
        }
    }

    /// Where `table` is published.
    pub fn partition_location(&self, table: &str) -> String {
        self.output.location(&self.published_rel(table))
    }

    /// Every table written so far and its folder relative to the output root: the manifest's
    /// `published` map.
    pub fn published(&self) -> BTreeMap<String, String> {
        self.staged
            .iter()
            .map(|t| (t.clone(), self.published_rel(t)))
            .collect()
    }

    /// Writes the registered table `table` (zstd Parquet) with its `_SUCCESS` marker: into the
    /// night's run folder, or into the staging area. Returns the rows written.
    pub async fn stage_table(&mut self, ctx: &SessionContext, table: &str) -> Result<u64> {
        self.stage_query(table, ctx.table(table).await?).await
    }

    /// Writes `df` as the table `table`, like [`Self::stage_table`].
    pub async fn stage_query(&mut self, table: &str, df: DataFrame) -> Result<u64> {
        let dest = match &self.target {
            Target::Night { .. } => {
                fault::check(&format!("commit:{table}")).await?;
                self.output.child(&self.published_rel(table))
            }
            Target::Tables { staging, .. } => staging.child(table),
        };
        self.staged.push(table.to_string());
        let schema = df.schema().as_arrow().clone();
        let mut options = TableParquetOptions::default();
        options.global.compression = Some("zstd(3)".into());
        let counts = df
            .write_parquet(&dest.url(""), DataFrameWriteOptions::new(), Some(options))
            .await?;
        let rows = count_rows_written(&counts);
        if rows == 0 {
            // Readers need a file to learn the schema of an empty table.
            let mut buffer = Vec::new();
            ArrowWriter::try_new(&mut buffer, std::sync::Arc::new(schema), None)?.close()?;
            dest.write("part-0.parquet", buffer).await?;
        }
        dest.write(SUCCESS, Vec::new()).await?;
        Ok(rows)
    }

    /// Names in the manifest a folder that a stage already wrote whole into the night's run
    /// folder of `folder` (the audiences' `exports`, files other than Parquet): the commit makes
    /// it visible with the tables, and a run that fails removes it with them.
    pub fn adopt(&mut self, folder: &str) {
        self.staged.push(folder.to_string());
    }

    /// Stages the run manifest (JSON): kept for the commit of a night, written into the staging
    /// area otherwise. `published` is the night's map of table folders, as in the manifest.
    pub async fn stage_manifest(
        &mut self,
        manifest_json: &str,
        published: &BTreeMap<String, String>,
    ) -> Result<()> {
        match &mut self.target {
            Target::Night { manifest, .. } => {
                *manifest = Some((published.clone(), manifest_json.as_bytes().to_vec()));
                Ok(())
            }
            Target::Tables {
                staging,
                folder,
                file,
            } => {
                staging
                    .write(
                        &format!("{folder}/{file}"),
                        manifest_json.as_bytes().to_vec(),
                    )
                    .await?;
                staging
                    .write(&format!("{folder}/{SUCCESS}"), Vec::new())
                    .await
            }
        }
    }

    /// Makes every written table visible at once with the manifest (a night), or puts every
    /// staged table in place, then the report (whole tables). On failure the previous outputs
    /// are what readers see, and the error is returned.
    pub async fn commit(self) -> Result<()> {
        match &self.target {
            Target::Night {
                date,
                run_id,
                manifest,
            } => {
                let (published, manifest) = manifest.clone().ok_or_else(|| {
                    PipelineError::Internal("the night's manifest was not staged".into())
                })?;
                commit::commit_night(&self.output, *date, run_id, &published, manifest).await
            }
            Target::Tables {
                staging, folder, ..
            } => {
                let mut order = self.staged.clone();
                order.push(folder.clone());
                match (self.output.local_path(), staging.local_path()) {
                    (Some(output), Some(staging)) => {
                        let targets: Vec<(String, String)> =
                            order.iter().map(|t| (t.clone(), t.clone())).collect();
                        commit_by_rename(output, staging, &targets).await
                    }
                    _ => self.commit_by_copy(staging, &order).await,
                }
            }
        }
    }

    /// The object-storage commit of whole tables (see the module documentation).
    async fn commit_by_copy(&self, staging: &Root, order: &[String]) -> Result<()> {
        let aside = staging.child("_replaced");
        let mut touched: Vec<(String, bool)> = Vec::new();
        for table in order {
            fault::check(&format!("commit:{table}")).await?;
            let target = self.published_rel(table);
            let had_old = self.output.exists_dir(&target).await?;
            touched.push((table.clone(), had_old));
            let result = async {
                if had_old {
                    copy_partition(&self.output.child(&target), &aside, table).await?;
                }
                self.clear_partition(&target).await?;
                copy_partition(&staging.child(table), &self.output, &target).await
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
            let target = self.published_rel(table);
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
