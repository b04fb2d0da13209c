//! The night's commit: every table of a night becomes visible at once, or none does.
//!
//! **Writers.** A run writes each table into a folder of its own,
//! `OUTPUT/<table>/dt=<date>/run=<run_id>/` (Parquet files, then `_SUCCESS`), and never writes
//! into another run's folder. The night is then committed by one atomic step: its manifest
//! `OUTPUT/_runs/dt=<date>/manifest.json`, whose `published` map names every table's run folder,
//! is written with a single create-or-replace: on a local disk a fully written temporary file
//! renamed over the old one (object_store's `LocalFileSystem` puts that way), on S3 one PUT,
//! which the store applies whole or not at all. Before that write the run checks that it still
//! holds the date's lock ([`crate::engine::lock::verify_held`]), so a run whose lock was taken over
//! never commits.
//!
//! **Readers** (`persona sql`, the segment continuity, the recipes in
//! docs/contract-and-outputs.md) find a date's tables only through its manifest
//! ([`committed_nights`]), so they see the whole previous night or the whole new one, never a
//! mixture. A run folder that no manifest names, from a run that failed or was killed before its
//! commit, is invisible to them.
//!
//! **Garbage collection.** Only after the manifest is in place are the date's other run folders
//! removed ([`collect_garbage`]): those of killed runs at once, those of the nights it
//! replaced once they were replaced `[output] keep_replaced_hours` ago ([`still_readable`]; the
//! new manifest lists them as `replaced`), so that a reader that resolved the previous manifest
//! a moment before the commit still reads a whole night, as Delta Lake's and Iceberg's readers
//! do until a `VACUUM`. A run killed before or during the removal leaves the folders for the
//! next run of the date, which removes them after its own commit.
//!
//! Outputs of Persona versions before this protocol have their files directly in
//! `<table>/dt=<date>/` with a manifest that has no `published` map; readers still find them
//! (every table with `_SUCCESS` in that folder), and the next run of such a date removes them
//! after its commit.

use std::collections::{BTreeMap, BTreeSet};

use chrono::NaiveDate;

use crate::engine::fault;
use crate::engine::storage::Root;
use crate::engine::storage::partition_date;
use crate::error::{PipelineError, Result};

/// The folder under the output root that holds the nights' manifests.
pub const RUNS_DIR: &str = "_runs";
/// A night's manifest, the commit point, in `_runs/dt=<date>/`.
pub const MANIFEST: &str = "manifest.json";
/// The marker written last into every complete table folder.
pub const SUCCESS: &str = "_SUCCESS";
/// The folder of the audiences' activation files (CSV), committed like a table.
pub const EXPORTS_FOLDER: &str = "exports";
/// The folder of the night's report page (HTML), committed like a table.
pub const REPORT_FOLDER: &str = "report";
/// The folders a night publishes whose files are not Parquet tables: readers of tables skip them.
pub const FILE_FOLDERS: [&str; 2] = [EXPORTS_FOLDER, REPORT_FOLDER];

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
    crate::engine::lock::verify_held(output, date, run_id).await?;
    // The replaced runs that stay readable are named in the manifest itself.
    let replaced = serde_json::from_slice::<Pointer>(&manifest)
        .map(|p| p.replaced)
        .unwrap_or_default();
    output.write(&manifest_path(date), manifest).await?;
    let keep: BTreeSet<&str> = published
        .values()
        .chain(replaced.iter().flat_map(|r| r.folders.iter()))
        .map(String::as_str)
        .collect();
    collect_garbage(output, date, &keep).await;
    Ok(())
}

/// A run whose night a later run of the same date replaced: its folders stay readable until
/// `[output] keep_replaced_hours` after `replaced_at`, for the readers that resolved its
/// manifest before the replacement. The manifest of the night that replaced it lists it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Replaced {
    /// The replaced run.
    pub run_id: String,
    /// When it was replaced (RFC 3339).
    pub replaced_at: String,
    /// Its table folders, relative to the output root.
    pub folders: Vec<String>,
}

/// The runs of `date` that must stay readable when a new night of that date is committed now:
/// the night committed so far (replaced now) and the runs that it kept readable, replaced less
/// than `keep` ago. Empty when `keep` is zero.
pub async fn still_readable(
    output: &Root,
    date: NaiveDate,
    keep: std::time::Duration,
) -> Result<Vec<Replaced>> {
    if keep.is_zero() {
        return Ok(Vec::new());
    }
    let Some(bytes) = output.read(&manifest_path(date)).await? else {
        return Ok(Vec::new());
    };
    let Ok(current) = serde_json::from_slice::<Pointer>(&bytes) else {
        return Ok(Vec::new());
    };
    let now = chrono::Utc::now();
    let recent = |r: &Replaced| {
        chrono::DateTime::parse_from_rfc3339(&r.replaced_at).is_ok_and(|t| {
            (now - t.with_timezone(&chrono::Utc))
                .to_std()
                .is_ok_and(|age| age < keep)
        })
    };
    let mut runs: Vec<Replaced> = current.published.map_or_else(Vec::new, |published| {
        vec![Replaced {
            run_id: current.run_id,
            replaced_at: now.to_rfc3339(),
            folders: published.into_values().collect(),
        }]
    });
    runs.extend(current.replaced.into_iter().filter(recent));
    Ok(runs)
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

/// Removes what a killed write left of the date's lock and manifest on a local disk: the
/// temporary `dt=<date>.lock#<n>` and `manifest.json#<n>` files that a put writes before it
/// renames them into place. Called by the run that holds the date's lock, so no other run of
/// the date is writing them; a file younger than a minute is left to a starter that may be
/// writing it right now.
pub fn remove_stray_temp_files(output: &Root, date: NaiveDate) {
    let Some(root) = output.local_path() else {
        return;
    };
    let manifest = manifest_path(date);
    let lock = format!("_locks/dt={date}.lock");
    for target in [lock.as_str(), manifest.as_str()] {
        let path = root.join(target);
        let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
            continue;
        };
        let prefix = format!("{}#", name.to_string_lossy());
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let old = entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age > std::time::Duration::from_secs(60));
            if old && entry.file_name().to_string_lossy().starts_with(&prefix) {
                tracing::info!(file = %entry.path().display(), "removing what a killed write left");
                let _ = std::fs::remove_file(entry.path());
            }
        }
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
    /// Earlier runs of the date whose folders stay readable for a while.
    #[serde(default)]
    replaced: Vec<Replaced>,
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

/// The last committed night before `date` that published `table`: its date and the table's
/// folder (relative to `output`). What a night continues from (segment ids, experiment arms).
pub async fn last_published_before(
    output: &Root,
    date: NaiveDate,
    table: &str,
) -> Result<Option<(NaiveDate, String)>> {
    Ok(committed_nights(output)
        .await?
        .into_iter()
        .filter(|n| n.date < date)
        .filter_map(|n| Some((n.date, n.tables.get(table)?.clone())))
        .next_back())
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

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "tests fail by panicking")]
mod tests {
    use super::*;

    #[test]
    fn a_killed_writes_temporary_files_are_removed_once_old() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::parse(dir.path().to_str().unwrap(), &Default::default()).unwrap();
        let date = NaiveDate::from_ymd_opt(2026, 11, 22).unwrap();
        let other = NaiveDate::from_ymd_opt(2026, 11, 21).unwrap();
        let hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
        let file = |rel: &str, modified: Option<std::time::SystemTime>| {
            let path = dir.path().join(rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            let f = std::fs::File::create(&path).unwrap();
            if let Some(t) = modified {
                f.set_modified(t).unwrap();
            }
            path
        };
        let stray_lock = file(&format!("_locks/dt={date}.lock#1"), Some(hour_ago));
        let stray_manifest = file(&format!("{}#3", manifest_path(date)), Some(hour_ago));
        let fresh = file(&format!("_locks/dt={date}.lock#2"), None);
        let other_date = file(&format!("_locks/dt={other}.lock#1"), Some(hour_ago));
        let manifest = file(&manifest_path(date), Some(hour_ago));
        remove_stray_temp_files(&root, date);
        assert!(!stray_lock.exists() && !stray_manifest.exists());
        assert!(fresh.exists() && other_date.exists() && manifest.exists());
    }
}
