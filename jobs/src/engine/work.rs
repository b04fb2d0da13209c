//! The run's work area: intermediate tables materialised as Parquet under
//! `OUTPUT/_work/run-<id>/`, re-read by later stages instead of re-derived, and removed when the
//! run ends. Materialising (rather than caching in memory) is what lets the same stages run on a
//! Ballista cluster, where in-memory tables do not exist.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arrow::array::AsArray;
use arrow::datatypes::{SchemaRef, UInt64Type};
use arrow::record_batch::RecordBatch;
use datafusion::common::config::TableParquetOptions;
use datafusion::datasource::file_format::format_as_file_type;
use datafusion::datasource::file_format::parquet::ParquetFormatFactory;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::source::DataSourceExec;
use datafusion::execution::TaskContext;
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryReservation};
use datafusion::logical_expr::LogicalPlanBuilder;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::{ExecutionPlanProperties, SendableRecordBatchStream};
use datafusion::prelude::{DataFrame, ParquetReadOptions, SessionContext};
use futures::StreamExt;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use persona_udfs::ml::Factors;

use crate::config::ExecutionConfig;
use crate::engine::storage::Root;
use crate::error::{PipelineError, Result};

/// The work tables are kept in memory only when this many times the night's Parquet input
/// fits the budget: a threshold between the measured scales (medium: 2.6 GB of live work
/// tables, the two flagged tables and `events`, from 408 MB of input, kept within 3 GiB;
/// large: 4.4 GB of input, whose held tables starved a join of the memory pool).
const WORK_TABLES_PER_INPUT_BYTE: u64 = 6;

/// Work folders untouched for this long belong to runs that died; the next run removes them
/// (on a local disk at once, when the folder's process is gone).
const STALE_AFTER: Duration = Duration::from_secs(6 * 3600);

/// A run's scratch space.
#[derive(Debug)]
pub struct WorkArea {
    /// Where intermediate tables go.
    dir: Root,
    /// Where tables are staged for publishing: always under the output root, so that the
    /// commit can move or copy them within one store.
    publish: Root,
    /// Every folder this run created, removed at the end.
    owned: Vec<Root>,
    /// Whether the queries run in this process (not on a Ballista cluster).
    in_process: bool,
    /// Factor matrices stored so far ([`WorkArea::share_factors`]), to name the next file.
    shared: AtomicUsize,
    /// Parquet bytes the materialised queries scanned since [`WorkArea::take_bytes_read`].
    bytes_read: AtomicU64,
    /// Rows the materialised queries' scans read since [`WorkArea::take_rows_read`].
    rows_read: AtomicU64,
    /// The bytes that the work tables held in memory may take together (0: none is).
    memory_budget: AtomicUsize,
    /// The work tables held in memory: their bytes, and their share of the memory pool (given
    /// back when the table is replaced or released).
    held: Mutex<HashMap<String, (usize, MemoryReservation)>>,
}

/// One partition of a table being held in memory: drains its stream into batches while the
/// budget allows, into a Parquet file once any partition went past it.
struct Spill {
    over: Arc<AtomicBool>,
    used: Arc<AtomicUsize>,
    reservation: Arc<Mutex<MemoryReservation>>,
    room: usize,
    file: PathBuf,
}

/// What a partition ended with: its batches (when held, or not yet written) and its rows.
struct Drained {
    kept: Vec<RecordBatch>,
    in_file: bool,
    rows: u64,
}

impl Spill {
    async fn drain(self, mut stream: SendableRecordBatchStream) -> Result<Drained> {
        let mut kept = Vec::new();
        let mut writer: Option<ArrowWriter<File>> = None;
        let mut rows = 0u64;
        while let Some(batch) = stream.next().await {
            let batch = batch?;
            rows += batch.num_rows() as u64;
            if writer.is_none() {
                let size = held_size(&batch);
                let total = self.used.fetch_add(size, Ordering::Relaxed) + size;
                let granted = total <= self.room
                    && self
                        .reservation
                        .lock()
                        .map_err(|e| PipelineError::Internal(e.to_string()))?
                        .try_grow(size)
                        .is_ok();
                if !granted {
                    self.over.store(true, Ordering::Relaxed);
                }
                if !self.over.load(Ordering::Relaxed) {
                    kept.push(batch);
                    continue;
                }
                let mut w = open_parquet_file(&self.file, &batch.schema())?;
                for b in kept.drain(..) {
                    w.write(&b)?;
                }
                writer = Some(w);
            }
            if let Some(w) = writer.as_mut() {
                w.write(&batch)?;
            }
        }
        let in_file = writer.is_some();
        if let Some(w) = writer {
            w.close()?;
        }
        Ok(Drained {
            kept,
            in_file,
            rows,
        })
    }
}

/// The bytes `batch` keeps alive, counted by the rows it holds: a query's output batches are
/// often slices of one larger array, and counting each slice's whole buffers would count the
/// array once per slice.
fn held_size(batch: &RecordBatch) -> usize {
    batch
        .columns()
        .iter()
        .map(|c| {
            c.to_data()
                .get_slice_memory_size()
                .unwrap_or_else(|_| c.get_array_memory_size())
        })
        .sum()
}

/// A Parquet writer (snappy) at `path`, its folder created.
fn open_parquet_file(path: &Path, schema: &SchemaRef) -> Result<ArrowWriter<File>> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| PipelineError::io(dir, e))?;
    }
    let file = File::create(path).map_err(|e| PipelineError::io(path, e))?;
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .build();
    Ok(ArrowWriter::try_new(file, Arc::clone(schema), Some(props))?)
}

/// Writes `batches` as one Parquet file at `path`.
fn write_parquet_file(path: &Path, schema: &SchemaRef, batches: &[RecordBatch]) -> Result<()> {
    let mut writer = open_parquet_file(path, schema)?;
    for batch in batches {
        writer.write(batch)?;
    }
    writer.close()?;
    Ok(())
}

/// What the scans of the executed `plan` read, in one walk of it: the Parquet bytes (each file
/// scan's `bytes_scanned`, after pruning and projection) and the rows (a file scan's output
/// rows, after row-group pruning; every row of a table held in memory, whose scan keeps no
/// metrics).
fn scanned(plan: &dyn ExecutionPlan) -> Scanned {
    if let Some(scan) = plan.downcast_ref::<DataSourceExec>() {
        let metrics = plan.metrics();
        let bytes = metrics
            .as_ref()
            .and_then(|m| m.sum_by_name("bytes_scanned"))
            .map_or(0, |v| v.as_usize() as u64);
        let rows = match scan.data_source().downcast_ref::<MemorySourceConfig>() {
            Some(memory) => memory
                .partitions()
                .iter()
                .flatten()
                .map(|b| b.num_rows() as u64)
                .sum(),
            None => metrics
                .and_then(|m| m.output_rows())
                .map_or(0, |r| r as u64),
        };
        return Scanned { bytes, rows };
    }
    plan.children()
        .into_iter()
        .map(|c| scanned(c.as_ref()))
        .fold(Scanned::default(), |a, b| Scanned {
            bytes: a.bytes + b.bytes,
            rows: a.rows + b.rows,
        })
}

/// Bytes and rows read by a plan's scans ([`scanned`]).
#[derive(Debug, Default, Clone, Copy)]
struct Scanned {
    bytes: u64,
    rows: u64,
}

/// `PERSONA_EXPLAIN=<table>[,<table>...]` (or `all`): after materialising each named table,
/// prints the plan that computed it with every operator's rows, time and spills (what `EXPLAIN
/// ANALYZE` shows, read from the run's own plan, so at no extra cost) to standard error. For
/// finding where a stage spends its time; in one process only, as a cluster's executors keep
/// the operators' metrics.
fn explain_when_asked(name: &str, plan: &dyn ExecutionPlan) {
    let Ok(wanted) = std::env::var("PERSONA_EXPLAIN") else {
        return;
    };
    if wanted
        .split(',')
        .any(|w| w.trim() == name || w.trim() == "all")
    {
        let shown =
            datafusion::physical_plan::display::DisplayableExecutionPlan::with_metrics(plan)
                .indent(true);
        eprintln!("== PERSONA_EXPLAIN {name}\n{shown}");
    }
}

/// A unique id for a run or a command started now: `<UTC time>-<pid>`.
pub fn new_run_id() -> String {
    format!(
        "{}-{}",
        chrono::Utc::now().format("%Y%m%dT%H%M%S"),
        std::process::id()
    )
}

impl WorkArea {
    /// The work area of a one-off command (`persona kmeans`, `persona als`) publishing into
    /// `output`: creates a local `output` folder if needed, then `create`s the area under a
    /// fresh id `<kind>-<time>-<pid>`.
    pub async fn for_command(output: &Root, kind: &str, local_scratch: bool) -> Result<Self> {
        if let Some(path) = output.local_path() {
            std::fs::create_dir_all(path).map_err(|e| PipelineError::io(path, e))?;
        }
        Self::create(output, &format!("{kind}-{}", new_run_id()), local_scratch).await
    }

    /// Creates `output/_work/run-<run_id>/`, first removing stale work folders of dead runs.
    ///
    /// With `local_scratch` (a run in this process) and an output in object storage, the
    /// intermediate tables go to a local temporary folder instead, which is much faster to
    /// write and re-read; a Ballista run keeps them on the shared output storage, where every
    /// executor can read them.
    pub async fn create(output: &Root, run_id: &str, local_scratch: bool) -> Result<Self> {
        let parent = output.child("_work");
        remove_stale(&parent).await;
        let run_dir = parent.child(&format!("run-{run_id}"));
        let mut owned = vec![run_dir.clone()];
        let dir = if local_scratch && output.is_object_store() {
            let scratch = std::env::temp_dir().join("persona-work");
            let scratch = Root::parse(&scratch.to_string_lossy(), &Default::default())?;
            remove_stale(&scratch).await;
            let dir = scratch.child(&format!("run-{run_id}"));
            owned.push(dir.clone());
            dir
        } else {
            run_dir.clone()
        };
        for root in &owned {
            if let Some(path) = root.local_path() {
                std::fs::create_dir_all(path).map_err(|e| PipelineError::io(path, e))?;
            }
        }
        Ok(Self {
            dir,
            publish: run_dir.child("publish"),
            owned,
            in_process: local_scratch,
            shared: AtomicUsize::new(0),
            bytes_read: AtomicU64::new(0),
            rows_read: AtomicU64::new(0),
            memory_budget: AtomicUsize::new(0),
            held: Mutex::new(HashMap::new()),
        })
    }

    /// Keeps work tables in memory within `[execution] work_tables_memory_gb`, in this
    /// process only (a cluster's executors read files).
    pub fn keeping_tables(self, execution: &ExecutionConfig) -> Self {
        self.memory_budget
            .store(execution.work_tables_bytes(), Ordering::Relaxed);
        self
    }

    /// Keeps no work table in memory when the night's inputs (`input_bytes` of Parquet) are
    /// too large for its live work tables to fit the budget: they would fill it with the first
    /// tables and hold that memory while later queries need it (measured at the large scale:
    /// 2.3 GB held left a join of `recommendations` short of the memory pool). Such a night
    /// then runs as with `work_tables_memory_gb = 0`.
    pub fn size_for_inputs(&self, input_bytes: u64) {
        let budget = self.memory_budget.load(Ordering::Relaxed);
        let needed = input_bytes.saturating_mul(WORK_TABLES_PER_INPUT_BYTE);
        if budget > 0 && needed > budget as u64 {
            tracing::info!(
                input_bytes,
                budget,
                "inputs too large to keep the work tables in memory: writing them as Parquet"
            );
            self.memory_budget.store(0, Ordering::Relaxed);
        }
    }

    /// The folder of this run's intermediate tables.
    pub fn dir(&self) -> &Root {
        &self.dir
    }

    /// The folder where tables are staged for publishing (under the output root).
    pub fn publish_dir(&self) -> &Root {
        &self.publish
    }

    /// Materialises a DataFrame as the work table `name` and registers it under that name,
    /// replacing any earlier registration. Returns the rows written.
    ///
    /// In this process, a table is kept in memory while the held tables fit
    /// `[execution] work_tables_memory_gb` ([`Self::hold_or_spill`]); otherwise it is written
    /// as Parquet (snappy) into the work area, as a Ballista cluster always does: its
    /// executors read files.
    pub async fn materialize(
        &self,
        ctx: &SessionContext,
        name: &str,
        df: DataFrame,
    ) -> Result<u64> {
        self.forget(name);
        let schema = df.schema().as_arrow().clone();
        let (state, plan) = df.into_parts();
        if self.memory_budget.load(Ordering::Relaxed) > 0 && self.in_process {
            let physical = state.create_physical_plan(&plan).await?;
            let rows = self
                .hold_or_spill(ctx, name, Arc::clone(&physical), state.task_ctx())
                .await?;
            self.note_scans(name, physical.as_ref());
            return Ok(rows);
        }
        let url = self.dir.url(name);
        let mut options = TableParquetOptions::default();
        options.global.compression = Some("snappy".into());
        let format = format_as_file_type(Arc::new(ParquetFormatFactory::new_with_options(options)));
        // `DataFrame::write_parquet`, with the physical plan kept to read its scan metrics.
        let plan = LogicalPlanBuilder::copy_to(plan, url.clone(), format, HashMap::new(), vec![])?
            .build()?;
        let physical = state.create_physical_plan(&plan).await?;
        let counts =
            datafusion::physical_plan::collect(Arc::clone(&physical), state.task_ctx()).await?;
        self.note_scans(name, physical.as_ref());
        let rows = count_rows_written(&counts);
        if let Some(path) = self.dir.child(name).local_path() {
            std::fs::create_dir_all(path).map_err(|e| PipelineError::io(path, e))?;
        }
        ctx.deregister_table(name)?;
        ctx.register_parquet(name, &url, ParquetReadOptions::default().schema(&schema))
            .await?;
        Ok(rows)
    }

    /// Adds the plan's scanned bytes to the stage's count and prints it when asked.
    fn note_scans(&self, name: &str, physical: &dyn ExecutionPlan) {
        let read = scanned(physical);
        self.bytes_read.fetch_add(read.bytes, Ordering::Relaxed);
        self.rows_read.fetch_add(read.rows, Ordering::Relaxed);
        explain_when_asked(name, physical);
    }

    /// Runs `physical` and keeps its batches in memory as the table `name`, one partition per
    /// output partition, while all the held tables stay within the budget and the memory pool
    /// grants their size; past that, every partition goes to a Parquet file in the work area
    /// instead (what was collected first included), so a table that does not fit costs one
    /// write, not a second run of its query. (Arrow IPC files were measured too: slower to
    /// read back than Parquet, and more memory; docs/benchmarks.md, "Work tables".)
    async fn hold_or_spill(
        &self,
        ctx: &SessionContext,
        name: &str,
        physical: Arc<dyn ExecutionPlan>,
        task_ctx: Arc<TaskContext>,
    ) -> Result<u64> {
        let held_before: usize = self.held_bytes();
        let room = self
            .memory_budget
            .load(Ordering::Relaxed)
            .saturating_sub(held_before);
        let reservation = Arc::new(Mutex::new(
            MemoryConsumer::new(format!("work table {name}")).register(task_ctx.memory_pool()),
        ));
        let over = Arc::new(AtomicBool::new(false));
        let used = Arc::new(AtomicUsize::new(0));
        let folder = self
            .dir
            .child(name)
            .local_path()
            .map(Path::to_path_buf)
            .ok_or_else(|| {
                PipelineError::Internal("an in-process work area is on the local disk".into())
            })?;
        // An earlier version's files (a table replaced; no query reads the table it replaces)
        // must not mix with this one's if it goes to files.
        if folder.exists() {
            std::fs::remove_dir_all(&folder).map_err(|e| PipelineError::io(&folder, e))?;
        }
        let schema = physical.schema();
        let mut tasks = tokio::task::JoinSet::new();
        for partition in 0..physical.output_partitioning().partition_count() {
            let stream = physical.execute(partition, Arc::clone(&task_ctx))?;
            let spill = Spill {
                over: Arc::clone(&over),
                used: Arc::clone(&used),
                reservation: Arc::clone(&reservation),
                room,
                file: folder.join(format!("part-{partition}.parquet")),
            };
            tasks.spawn(async move { spill.drain(stream).await.map(|p| (partition, p)) });
        }
        let mut partitions = Vec::new();
        while let Some(joined) = tasks.join_next().await {
            let joined = joined.map_err(|e| PipelineError::Internal(e.to_string()))?;
            partitions.push(joined?);
        }
        partitions.sort_by_key(|(p, _)| *p);
        let rows = partitions.iter().map(|(_, p)| p.rows).sum();
        ctx.deregister_table(name)?;
        if over.load(Ordering::Relaxed) {
            // Some partition went to a file: the rest go too, so the table is one folder.
            for (p, part) in &partitions {
                if !part.in_file {
                    write_parquet_file(
                        &folder.join(format!("part-{p}.parquet")),
                        &schema,
                        &part.kept,
                    )?;
                }
            }
            drop(reservation);
            tracing::info!(
                table = name,
                held_before,
                "work table past work_tables_memory_gb: written as Parquet"
            );
            ctx.register_parquet(
                name,
                &self.dir.url(name),
                ParquetReadOptions::default().schema(&schema),
            )
            .await?;
        } else {
            let bytes = used.load(Ordering::Relaxed);
            let batches = partitions.into_iter().map(|(_, p)| p.kept).collect();
            let table = datafusion::datasource::MemTable::try_new(schema, batches)?;
            ctx.register_table(name, Arc::new(table))?;
            let reservation = Arc::try_unwrap(reservation)
                .map_err(|_| PipelineError::Internal("a partition task outlived its join".into()))?
                .into_inner()
                .map_err(|e| PipelineError::Internal(e.to_string()))?;
            self.held
                .lock()
                .map_err(|e| PipelineError::Internal(e.to_string()))?
                .insert(name.to_string(), (bytes, reservation));
        }
        Ok(rows)
    }

    /// The bytes of the work tables held in memory now.
    fn held_bytes(&self) -> usize {
        self.held
            .lock()
            .map(|h| h.values().map(|(b, _)| *b).sum())
            .unwrap_or(0)
    }

    /// The work tables held in memory now, with their sizes in bytes.
    pub fn held_tables(&self) -> Vec<(String, usize)> {
        self.held
            .lock()
            .map(|h| h.iter().map(|(n, (b, _))| (n.clone(), *b)).collect())
            .unwrap_or_default()
    }

    /// Gives back the memory of the table `name` if it is held (it is being replaced).
    fn forget(&self, name: &str) {
        if let Ok(mut held) = self.held.lock() {
            held.remove(name);
        }
    }

    /// Forgets the work table `name`, no later stage reading it: its memory is given back,
    /// and files are left for the work area's removal.
    pub fn release(&self, ctx: &SessionContext, name: &str) -> Result<()> {
        if self.held.lock().is_ok_and(|h| h.contains_key(name)) {
            ctx.deregister_table(name)?;
            self.forget(name);
        }
        Ok(())
    }

    /// The Parquet bytes that the queries materialised since the last call scanned (read from
    /// storage after pruning and projection), and zero for the next call. `None` on a cluster,
    /// whose executors keep the scan metrics.
    pub fn take_bytes_read(&self) -> Option<u64> {
        let bytes = self.bytes_read.swap(0, Ordering::Relaxed);
        self.in_process.then_some(bytes)
    }

    /// The rows that the scans of the queries materialised since the last call read (from
    /// Parquet, after pruning; from a table held in memory, all of it), and zero for the next
    /// call: with the night's input rows, how many passes the night makes over its data.
    /// `None` on a cluster, as [`Self::take_bytes_read`].
    pub fn take_rows_read(&self) -> Option<u64> {
        let rows = self.rows_read.swap(0, Ordering::Relaxed);
        self.in_process.then_some(rows)
    }

    /// Materialises a table that an iterative stage re-reads on every pass (the K-Means
    /// points). In this process it is kept in memory, partitioned for the cores, so each pass
    /// costs only the computation, as Spark's cached RDDs do for MLlib; on a cluster, where
    /// in-memory tables do not exist, it is written as Parquet like any other table.
    pub async fn materialize_reused(
        &self,
        ctx: &SessionContext,
        name: &str,
        df: DataFrame,
    ) -> Result<u64> {
        if !self.in_process {
            return self.materialize(ctx, name, df).await;
        }
        let schema = std::sync::Arc::new(df.schema().as_arrow().clone());
        // One partition per core with the same number of rows each, whatever the layout of the
        // source: a scan splits a file by bytes, and a file of one row group then gives all
        // its rows to one partition (measured: 100k points in partitions of 13 batches and 0,
        // so every pass ran on one core). A `RoundRobinBatch` repartition of the query does
        // not help: the optimizer drops it when the scan already has enough partitions.
        let cores = ctx.copied_config().target_partitions();
        let batches: Vec<RecordBatch> = df.collect().await?;
        let partitions = split_evenly(&batches, cores);
        // Float columns as the fit kernels scan them best: one allocation per batch, columns
        // in different cache sets (see `stagger_float_columns`).
        let partitions = partitions
            .iter()
            .map(|batches| {
                batches
                    .iter()
                    .map(persona_udfs::ml::layout::stagger_float_columns)
                    .collect::<std::result::Result<Vec<_>, _>>()
            })
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let rows = partitions
            .iter()
            .flatten()
            .map(|b| b.num_rows() as u64)
            .sum();
        let table = datafusion::datasource::MemTable::try_new(schema, partitions)?;
        ctx.deregister_table(name)?;
        ctx.register_table(name, std::sync::Arc::new(table))?;
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
        let mut buffer = Vec::new();
        let mut writer = ArrowWriter::try_new(&mut buffer, batch.schema(), None)?;
        writer.write(batch)?;
        writer.close()?;
        self.dir
            .write(&format!("{name}/part-0.parquet"), buffer)
            .await?;
        ctx.deregister_table(name)?;
        ctx.register_parquet(
            name,
            &self.dir.url(name),
            ParquetReadOptions::default().schema(&batch.schema()),
        )
        .await?;
        Ok(batch.num_rows() as u64)
    }

    /// A factor matrix that a model function will carry into distributed plans, made ready
    /// to travel: on a cluster it is written once to `_factors/` in the work area and marked
    /// as stored there, so plans name the file instead of carrying the values to every task
    /// (see [`crate::engine::cluster::factor_files`]); in this process, or when it is stored already
    /// (a clone of a shared matrix keeps its location until a row changes), it is returned
    /// as it is.
    pub async fn share_factors(&self, factors: Factors) -> Result<Factors> {
        if self.in_process || factors.rows() == 0 || factors.stored_at().is_some() {
            return Ok(factors);
        }
        let n = self.shared.fetch_add(1, Ordering::Relaxed);
        let rel = format!("_factors/{n}.factors");
        self.dir
            .write(&rel, persona_udfs::codec::factors_file(&factors))
            .await?;
        Ok(factors.with_stored_at(&self.dir.location(&rel)))
    }

    /// Whether the queries run in this process (not on a Ballista cluster).
    pub fn in_process(&self) -> bool {
        self.in_process
    }

    /// Forgets the intermediate table `name` and deletes its files (an iterative stage's
    /// previous pass, no longer needed).
    pub async fn drop_table(&self, ctx: &SessionContext, name: &str) -> Result<()> {
        ctx.deregister_table(name)?;
        self.forget(name);
        self.dir.delete_tree(name).await
    }

    /// Removes the work area.
    pub async fn remove(&self) {
        for root in &self.owned {
            if let Err(e) = root.delete_tree("").await {
                tracing::warn!(dir = %root.display(), error = %e, "could not remove the work area");
            }
        }
    }
}

/// `batches` cut into `parts` runs of consecutive rows whose lengths differ by at most one row
/// (batches are sliced where a run ends; slices share the batches' memory). Empty runs are
/// left out, so fewer than `parts` come back when there are fewer rows; with no rows at all,
/// one empty run (a table needs a partition to scan).
fn split_evenly(batches: &[RecordBatch], parts: usize) -> Vec<Vec<RecordBatch>> {
    let total: usize = batches.iter().map(RecordBatch::num_rows).sum();
    let parts = parts.clamp(1, total.max(1));
    let mut runs = vec![Vec::new(); parts];
    // Row `r` of the whole table goes to run `r · parts / total`: run `p` ends before row
    // `(p + 1) · total / parts`, rounded up.
    let end_of = |p: usize| ((p + 1) * total).div_ceil(parts);
    let (mut run, mut row) = (0, 0);
    for batch in batches {
        let mut offset = 0;
        while offset < batch.num_rows() {
            let take = (end_of(run) - row).min(batch.num_rows() - offset);
            runs[run].push(batch.slice(offset, take));
            offset += take;
            row += take;
            if row == end_of(run) {
                run += 1;
            }
        }
    }
    runs.retain(|r| !r.is_empty());
    if runs.is_empty() {
        runs.push(Vec::new());
    }
    runs
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

/// Removes the work folders under `parent` whose newest file is older than [`STALE_AFTER`].
/// Whether the run of the local work folder `run-<…>-<pid>` was a process that no longer
/// exists. Only for folders on this machine's disk: on shared object storage the folder may be
/// another host's, whose processes this one cannot see.
fn process_gone(folder: &str) -> bool {
    folder
        .rsplit('-')
        .next()
        .and_then(|pid| pid.parse::<u32>().ok())
        .is_some_and(|pid| pid != std::process::id() && !crate::engine::lock::process_runs(pid))
}

async fn remove_stale(parent: &Root) {
    let Ok(runs) = parent.list_dirs("").await else {
        return;
    };
    for run in runs {
        let Ok(files) = parent.list_all(&run).await else {
            continue;
        };
        // An empty local folder still has its own modification time; an empty S3 prefix does
        // not exist at all.
        let newest = files.iter().map(|m| m.last_modified).max().or_else(|| {
            let path = parent.child(&run).local_path()?.to_path_buf();
            let modified = std::fs::metadata(path).and_then(|m| m.modified()).ok()?;
            Some(chrono::DateTime::<chrono::Utc>::from(modified))
        });
        let old = newest.is_some_and(|t| {
            (chrono::Utc::now() - t)
                .to_std()
                .is_ok_and(|age| age > STALE_AFTER)
        });
        if old || (parent.local_path().is_some() && process_gone(&run)) {
            tracing::info!(dir = %parent.location(&run), "removing the work area of an earlier, interrupted run");
            let _ = parent.delete_tree(&run).await;
        }
    }
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "tests fail by panicking")]
mod tests {
    use std::sync::Arc;

    use arrow::array::{AsArray, Int64Array};
    use arrow::datatypes::Int64Type;

    use super::*;

    fn batch(from: i64, rows: i64) -> RecordBatch {
        let ids: Vec<i64> = (from..from + rows).collect();
        RecordBatch::try_from_iter([("id", Arc::new(Int64Array::from(ids)) as _)]).unwrap()
    }

    fn ids(run: &[RecordBatch]) -> Vec<i64> {
        run.iter()
            .flat_map(|b| b.column(0).as_primitive::<Int64Type>().values().to_vec())
            .collect()
    }

    #[test]
    fn one_big_partition_is_split_into_equal_runs_in_order() {
        // As a one-row-group file arrives: every batch in one partition, the last one short.
        let batches = vec![batch(0, 8), batch(8, 8), batch(16, 5)];
        let runs = split_evenly(&batches, 2);
        assert_eq!(runs.len(), 2);
        assert_eq!(ids(&runs[0]), (0..11).collect::<Vec<_>>());
        assert_eq!(ids(&runs[1]), (11..21).collect::<Vec<_>>());
        let runs = split_evenly(&batches, 4);
        let sizes: Vec<usize> = runs.iter().map(|r| ids(r).len()).collect();
        assert_eq!(sizes, vec![6, 5, 5, 5]);
        assert_eq!(
            runs.iter().flat_map(|r| ids(r)).collect::<Vec<_>>(),
            ids(&batches)
        );
    }

    /// A work area keeping tables in memory within `limit_bytes` (twice the budget) of a
    /// session with that memory pool.
    async fn memory_area(dir: &std::path::Path, limit_bytes: usize) -> (SessionContext, WorkArea) {
        let execution = ExecutionConfig {
            work_tables_memory_gb: limit_bytes as f64 / 2.0 / (1u64 << 30) as f64,
            memory_limit_gb: limit_bytes as f64 / (1u64 << 30) as f64,
            ..ExecutionConfig::default()
        };
        let runtime = crate::engine::session::runtime_env(
            &Default::default(),
            None,
            execution.memory_limit_bytes(),
        )
        .unwrap();
        let state = datafusion::execution::SessionStateBuilder::new()
            .with_config(datafusion::prelude::SessionConfig::new().with_target_partitions(2))
            .with_runtime_env(runtime)
            .with_default_features()
            .build();
        let root = Root::parse(&dir.to_string_lossy(), &Default::default()).unwrap();
        let work = WorkArea::create(&root, "test", true)
            .await
            .unwrap()
            .keeping_tables(&execution);
        (SessionContext::new_with_state(state), work)
    }

    async fn sum_of(ctx: &SessionContext, table: &str) -> (i64, i64) {
        let batches = ctx
            .sql(&format!("SELECT COUNT(*), SUM(v) FROM {table}"))
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let b = &batches[0];
        (
            b.column(0).as_primitive::<Int64Type>().value(0),
            b.column(1).as_primitive::<Int64Type>().value(0),
        )
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn tables_stay_in_memory_within_the_budget_and_go_to_files_past_it() {
        let dir = tempfile::tempdir().unwrap();
        // 64 MiB of memory limit: 32 MiB for the work tables.
        let (ctx, work) = memory_area(dir.path(), 64 << 20).await;
        let small = ctx
            .sql("SELECT value AS v FROM generate_series(1, 100000)")
            .await
            .unwrap();
        assert_eq!(
            work.materialize(&ctx, "small", small).await.unwrap(),
            100_000
        );
        assert_eq!(work.held_tables().len(), 1);
        assert!(!dir.path().join("_work/run-test/small").exists());
        assert_eq!(sum_of(&ctx, "small").await, (100_000, 5_000_050_000));

        // 8M rows of 8 bytes (64 MB) cannot be held: the whole table goes to Parquet files,
        // the batches collected before it passed the budget included.
        let big = ctx
            .sql("SELECT value AS v FROM generate_series(1, 8000000)")
            .await
            .unwrap();
        assert_eq!(work.materialize(&ctx, "big", big).await.unwrap(), 8_000_000);
        assert_eq!(work.held_tables().len(), 1, "only the small table is held");
        let files = std::fs::read_dir(dir.path().join("_work/run-test/big"))
            .unwrap()
            .count();
        assert!(files >= 1);
        assert_eq!(sum_of(&ctx, "big").await, (8_000_000, 32_000_004_000_000));

        // Released: the memory is given back and the name is gone.
        work.release(&ctx, "small").unwrap();
        assert!(work.held_tables().is_empty());
        assert!(ctx.sql("SELECT * FROM small").await.is_err());

        // Inputs too large for the budget: nothing is held any more, even a small table.
        work.size_for_inputs(1 << 30);
        let again = ctx.sql("SELECT 1 AS v").await.unwrap();
        work.materialize(&ctx, "again", again).await.unwrap();
        assert!(work.held_tables().is_empty());
        assert!(dir.path().join("_work/run-test/again").exists());
        work.remove().await;
    }

    #[test]
    fn fewer_rows_than_parts_and_no_rows() {
        let runs = split_evenly(&[batch(0, 2)], 4);
        assert_eq!(
            runs.iter().map(|r| ids(r)).collect::<Vec<_>>(),
            vec![vec![0], vec![1]]
        );
        for empty in [vec![], vec![batch(0, 0)]] {
            let runs = split_evenly(&empty, 2);
            assert_eq!(runs.len(), 1);
            assert!(ids(&runs[0]).is_empty());
        }
    }
}
