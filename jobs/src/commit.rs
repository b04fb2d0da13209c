//! The night's commit: every table of a night becomes visible at once, or none does.
//!
//! **Writers.** A run writes each table into a folder of its own,
//! `OUTPUT/<table>/dt=<date>/run=<run_id>/` (Parquet files, then `_SUCCESS`), and never writes
//! into another run's folder. The night is then committed by one atomic step: its manifest
//! `OUTPUT/_runs/dt=<date>/manifest.json`, whose `published` map names every table's run folder,
//! is written with a single create-or-replace: on a local disk a fully written temporary file
//! renamed over the old one (object_store's `LocalFileSystem` puts that way), on S3 one PUT,
//! which the store applies whole or not at all. Before that write the run checks that it still
//! holds the date's lock ([`crate::lock::verify_held`]), so a run whose lock was taken over
//! never commits.
//!
//! **Readers** (`persona sql`, the segment continuity, the recipes in
//! docs/contract-and-outputs.md) find a date's tables only through its manifest
//! ([`committed_nights`]), so they see the whole previous night or the whole new one, never a
//! mixture. A run folder that no manifest names, from a run that failed or was killed before its
//! commit, is invisible to them.
//!
//! **Garbage collection.** Only after the manifest is in place are the date's other run folders
//! (the previous run's, and any left by a killed run) removed ([`collect_garbage`]); a run
//! killed before or during that leaves them for the next run of the date, which removes them
//! after its own commit.
//!
//! Outputs of Persona versions before this protocol have their files directly in
//! `<table>/dt=<date>/` with a manifest that has no `published` map; readers still find them
//! (every table with `_SUCCESS` in that folder), and the next run of such a date removes them
//! after its commit.

use std::collections::{BTreeMap, BTreeSet};

use chrono::NaiveDate;

use crate::error::{PipelineError, Result};
use crate::fault;
use crate::input::partition_date;
use crate::storage::Root;

/// The folder under the output root that holds the nights' manifests.
pub const RUNS_DIR: &str = "_runs";
/// A night's manifest, the commit point, in `_runs/dt=<date>/`.
pub const MANIFEST: &str = "manifest.json";
/// The marker written last into every complete table folder.
pub const SUCCESS: &str = "_SUCCESS";

/// The folder of `table` written by run `run_id` for `date`, relative to the output root.
pub fn run_folder(table: &str, date: NaiveDate, run_id: &str) -> String {
    format!("{table}/dt={date}/run={run_id}")
}

/// The manifest of `date`, relative to the output root.
pub fn manifest_path(date: NaiveDate) -> String {
    format!("{RUNS_DIR}/dt={date}/{MANIFEST}")
}

/// Commits the night of `date` by run `run_id`: checks the lock, writes `manifest` (whose
/// `published` map is `published`) in one atomic step, then removes the date's run folders that
/// `published` does not name. When this returns an error the previous night of the date is
/// untouched and still the one readers see.
pub async fn commit_night(
    output: &Root,
    date: NaiveDate,
    run_id: &str,
    published: &BTreeMap<String, String>,
    manifest: Vec<u8>,
) -> Result<()> {
    fault::check("commit:_runs").await?;
    crate::lock::verify_held(output, date, run_id).await?;
    output.write(&manifest_path(date), manifest).await?;
    let keep: BTreeSet<&str> = published.values().map(String::as_str).collect();
    collect_garbage(output, date, &keep).await;
    Ok(())
}

/// The table folders under `output` (not `_runs`, `_locks`, `_work` or hidden ones).
async fn table_folders(output: &Root) -> Result<Vec<String>> {
    let mut tables = output.list_dirs("").await?;
    tables.retain(|t| !t.starts_with(['_', '.']));
    Ok(tables)
}

/// Removes what readers of `date` no longer see: every table's folders of that date that
/// `keep` does not name, i.e. the run folders of earlier and of killed runs, and the files a
/// run of an earlier version published directly in the date's folder. Failures are logged, not
/// returned: the night is committed either way, and the next run of the date tries again.
pub async fn collect_garbage(output: &Root, date: NaiveDate, keep: &BTreeSet<&str>) {
    let tables = match table_folders(output).await {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!(error = %e, "could not list the output root to remove old runs");
            return;
        }
    };
    for table in &tables {
        let partition = format!("{table}/dt={date}");
        let removed = async {
            fault::check(&format!("gc:{table}")).await?;
            for dir in output.list_dirs(&partition).await? {
                let folder = format!("{partition}/{dir}");
                if dir.starts_with("run=") && !keep.contains(folder.as_str()) {
                    output.delete_tree(&folder).await?;
                }
            }
            if !keep.contains(partition.as_str()) {
                for file in output.list_files(&partition).await? {
                    output.delete(&output.relative(&file)).await?;
                }
            }
            remove_if_empty(output, &partition);
            remove_if_empty(output, table);
            Ok::<(), PipelineError>(())
        }
        .await;
        if let Err(e) = removed {
            tracing::warn!(partition = %output.location(&partition), error = %e, "could not remove an old run; the next run of this date will");
        }
    }
    // The marker of the earlier protocol's manifest folder.
    let _ = output
        .delete(&format!("{RUNS_DIR}/dt={date}/{SUCCESS}"))
        .await;
}

/// Removes what run `run_id` wrote for `date` but did not commit (it failed, or was stopped by a
/// signal or the watchdog). A manifest that names the run keeps them: a commit whose write
/// reported an error may still have been applied.
pub async fn discard_run(output: &Root, date: NaiveDate, run_id: &str) {
    if let Ok(Some(bytes)) = output.read(&manifest_path(date)).await
        && serde_json::from_slice::<Pointer>(&bytes).is_ok_and(|m| m.run_id == run_id)
    {
        return;
    }
    let Ok(tables) = table_folders(output).await else {
        return;
    };
    for table in &tables {
        let folder = run_folder(table, date, run_id);
        if let Err(e) = output.delete_tree(&folder).await {
            tracing::warn!(folder = %output.location(&folder), error = %e, "could not remove an uncommitted table; the next run of this date will");
        }
        remove_if_empty(output, &format!("{table}/dt={date}"));
        remove_if_empty(output, table);
    }
}

/// Removes the local folder `rel` if it is empty (object stores have no empty folders).
fn remove_if_empty(output: &Root, rel: &str) {
    if let Some(path) = output.local_path() {
        let _ = std::fs::remove_dir(path.join(rel));
    }
}

/// A committed night, as its manifest names it.
#[derive(Debug, Clone)]
pub struct CommittedNight {
    /// The run date.
    pub date: NaiveDate,
    /// The run that committed it.
    pub run_id: String,
    /// Every published table and its folder, relative to the output root.
    pub tables: BTreeMap<String, String>,
    /// Rows per table, as the manifest says.
    pub rows: BTreeMap<String, u64>,
}

/// What readers need of a manifest (the rest of it is skipped unparsed).
#[derive(Debug, serde::Deserialize)]
struct Pointer {
    run_id: String,
    /// Absent in the manifests of versions before run folders.
    published: Option<BTreeMap<String, String>>,
    /// Rows per table.
    #[serde(default)]
    tables: BTreeMap<String, u64>,
}

/// Every committed night under `output`, oldest first: the dates with a manifest.
pub async fn committed_nights(output: &Root) -> Result<Vec<CommittedNight>> {
    let mut nights = Vec::new();
    // Listed once, and only if a night of an earlier version needs it.
    let mut tables: Option<Vec<String>> = None;
    for dir in output.list_dirs(RUNS_DIR).await? {
        let Some(date) = partition_date(&dir) else {
            continue;
        };
        if let Some(night) = read_night(output, date, &mut tables).await? {
            nights.push(night);
        }
    }
    nights.sort_by_key(|n| n.date);
    Ok(nights)
}

/// The committed night of `date`, if there is one.
pub async fn committed_night(output: &Root, date: NaiveDate) -> Result<Option<CommittedNight>> {
    read_night(output, date, &mut None).await
}

/// Reads the manifest of `date` (none: `None`); `tables` caches the output root's table folders
/// for the nights of earlier versions.
async fn read_night(
    output: &Root,
    date: NaiveDate,
    tables: &mut Option<Vec<String>>,
) -> Result<Option<CommittedNight>> {
    let path = manifest_path(date);
    let Some(bytes) = output.read(&path).await? else {
        return Ok(None);
    };
    let pointer: Pointer = serde_json::from_slice(&bytes).map_err(|e| {
        PipelineError::BadInput(format!(
            "{}: not a Persona manifest ({e}); restore it from a backup or rerun the night",
            output.location(&path)
        ))
    })?;
    let folders = match pointer.published {
        Some(published) => published,
        None => {
            if tables.is_none() {
                *tables = Some(table_folders(output).await?);
            }
            legacy_night(output, date, tables.as_deref().unwrap_or_default()).await?
        }
    };
    Ok(Some(CommittedNight {
        date,
        run_id: pointer.run_id,
        tables: folders,
        rows: pointer.tables,
    }))
}

/// The tables of a night published before run folders existed: every table whose
/// `<table>/dt=<date>/` has `_SUCCESS` directly in it.
async fn legacy_night(
    output: &Root,
    date: NaiveDate,
    tables: &[String],
) -> Result<BTreeMap<String, String>> {
    let mut found = BTreeMap::new();
    for table in tables {
        let folder = format!("{table}/dt={date}");
        let files = output.list_files(&folder).await?;
        if files.iter().any(|m| m.location.filename() == Some(SUCCESS)) {
            found.insert(table.clone(), folder);
        }
    }
    Ok(found)
}

/// The Parquet files directly in `folder` (not in sub-folders: a legacy date folder can hold a
/// newer run's folder while it is being committed), as locations DataFusion can parse, sorted.
pub async fn parquet_files(output: &Root, folder: &str) -> Result<Vec<String>> {
    let files = output.list_files(folder).await?;
    Ok(files
        .iter()
        .filter(|m| m.location.as_ref().ends_with(".parquet"))
        .map(|m| output.location(&output.relative(m)))
        .collect())
}
