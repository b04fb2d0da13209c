//! Shared helpers: locating the binary, generating the tiny dataset once, reading outputs.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use datafusion::arrow::record_batch::RecordBatch;
use datafusion::prelude::{ParquetReadOptions, SessionContext};

/// The run date the tiny fixture is generated for.
pub const DATE: &str = "2026-11-22";

/// The `persona` binary built alongside the tests (same profile).
pub fn persona_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target profile folder");
    let bin = dir.join(format!("persona{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.exists(),
        "{} not built: run the tests with `cargo test --workspace`",
        bin.display()
    );
    bin
}

/// Runs `persona` with arguments and extra environment.
pub fn persona(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(persona_bin());
    cmd.args(args).env("RUST_LOG", "warn");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run persona")
}

/// Asserts that a command failed with exit `code` and printed exactly one `error:` line, and
/// returns that line.
pub fn error_line(out: &Output, code: i32) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(code),
        "exit code; stderr:\n{stderr}"
    );
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "one error line expected:\n{stderr}");
    errors[0].to_string()
}

/// Writes `batch` as one Parquet file at `path` (test inputs).
pub fn write_parquet(path: &Path, batch: &RecordBatch) {
    let file = std::fs::File::create(path).expect("create the Parquet file");
    let mut writer =
        parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None).expect("a Parquet writer");
    writer.write(batch).expect("write the batch");
    writer.close().expect("close the Parquet file");
}

/// Asserts success and returns stdout.
pub fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "persona failed with {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The tiny dataset (seed 42), generated once per test process into a temporary folder that
/// lives as long as the process. Tests must not modify it: copy it first ([`copy_dir`]).
pub fn tiny_input() -> &'static Path {
    static INPUT: OnceLock<PathBuf> = OnceLock::new();
    INPUT.get_or_init(|| {
        let dir = tempfile::Builder::new()
            .prefix("persona-tiny-")
            .tempdir()
            .expect("tempdir")
            .keep();
        let out = dir.join("input");
        generate_tiny(out.to_str().expect("utf8"));
        out
    })
}

/// Generates the tiny dataset (seed 42, ending on [`DATE`]) into `out`: a folder or `s3://`.
pub fn generate_tiny(out: &str) {
    generate_tiny_with(out, &[]);
}

/// [`generate_tiny`] with more `persona generate` flags (`--campaign-lift`, …).
pub fn generate_tiny_with(out: &str, extra: &[&str]) {
    let mut args = vec![
        "generate",
        "--scale",
        "tiny",
        "--seed",
        "42",
        "--out",
        out,
        "--end-date",
        DATE,
    ];
    args.extend_from_slice(extra);
    ok(&persona(&args, &[]));
}

/// A fresh temporary folder, removed when dropped.
pub fn temp() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("persona-test-")
        .tempdir()
        .expect("tempdir")
}

/// Runs the job on `input` into `output` for [`DATE`].
pub fn run_job(input: &Path, output: &Path, env: &[(&str, &str)]) -> Output {
    run_job_with(input, output, &[], env)
}

/// Runs the job on `input` into `output` for [`DATE`] with extra arguments (`--engine`, ...).
pub fn run_job_with(input: &Path, output: &Path, extra: &[&str], env: &[(&str, &str)]) -> Output {
    let (input, output) = (
        input.to_str().expect("utf8"),
        output.to_str().expect("utf8"),
    );
    run_at(input, output, DATE, extra, env)
}

/// Runs the job from root `input` into root `output` (folders or `s3://`) for `date`.
pub fn run_at(
    input: &str,
    output: &str,
    date: &str,
    extra: &[&str],
    env: &[(&str, &str)],
) -> Output {
    let mut args = vec!["run", "--input", input, "--output", output, "--date", date];
    args.extend_from_slice(extra);
    persona(&args, env)
}

/// Copies a folder tree.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read_dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

/// Every file under a folder (relative paths, sorted).
pub fn list_files(root: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                out.push(
                    path.strip_prefix(root)
                        .expect("prefix")
                        .display()
                        .to_string(),
                );
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.sort();
    out
}

/// Every table a run on the tiny data publishes: the stage registry's published tables (the
/// tiny data's evaluation scores, so `evaluation` is among them), but for the experiments'
/// and the audiences' tables, which a night publishes only with `[[experiments]]` or
/// `[[audiences]]` declared, and the neighbourhood
/// models' `item_neighbours` and `similar_customers`, only when they are on.
pub fn published_tables() -> Vec<&'static str> {
    use persona_jobs::stages::registry::{NIGHT, Part};
    NIGHT
        .iter()
        .filter(|s| {
            s.published
                && s.part != Part::Experiments
                && s.part != Part::Audiences
                && !["item_neighbours", "similar_customers"].contains(&s.name)
        })
        .map(|s| s.name)
        .collect()
}

/// The folder of `table` in the night of `date` under `output`, found as a reader finds it:
/// through the night's manifest (`_runs/dt=<date>/manifest.json`, its `published` map).
pub fn published_folder(output: &Path, table: &str, date: &str) -> std::path::PathBuf {
    let path = output.join(format!("_runs/dt={date}/manifest.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let manifest: serde_json::Value = serde_json::from_str(&text).expect("manifest json");
    let folder = manifest["published"][table]
        .as_str()
        .unwrap_or_else(|| panic!("the manifest of {date} does not publish {table}"));
    output.join(folder)
}

/// Registers the published table `table` of the night of `date` as `name`.
pub async fn register_partition(
    ctx: &SessionContext,
    name: &str,
    output: &Path,
    table: &str,
    date: &str,
) {
    let dir = published_folder(output, table, date);
    ctx.register_parquet(
        name,
        &format!("{}/", dir.display()),
        ParquetReadOptions::default(),
    )
    .await
    .unwrap_or_else(|e| panic!("register {table} of {date}: {e}"));
}

/// A DataFusion session with every published table of `output` for [`DATE`] registered, and
/// the generated input sources as `in_<source>`.
pub async fn outputs(output: &Path, input: &Path) -> SessionContext {
    let ctx = SessionContext::new();
    for table in published_tables() {
        register_partition(&ctx, table, output, table, DATE).await;
    }
    for source in ["app_events", "web_logs"] {
        let opts = ParquetReadOptions::default().table_partition_cols(vec![(
            "dt".to_string(),
            datafusion::arrow::datatypes::DataType::Utf8,
        )]);
        ctx.register_parquet(
            &format!("in_{source}"),
            &format!("{}/{source}/", input.display()),
            opts,
        )
        .await
        .expect("register input");
    }
    ctx.register_parquet(
        "in_crm",
        &format!("{}/crm_customers/", input.display()),
        ParquetReadOptions::default(),
    )
    .await
    .expect("register crm");
    ctx
}

/// Runs a query and returns its batches.
pub async fn query(ctx: &SessionContext, sql: &str) -> Vec<RecordBatch> {
    ctx.sql(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .collect()
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// A single integer result.
pub async fn scalar_i64(ctx: &SessionContext, sql: &str) -> i64 {
    let batches = query(ctx, sql).await;
    let b = batches
        .iter()
        .find(|b| b.num_rows() > 0)
        .unwrap_or_else(|| panic!("{sql}: no rows"));
    let col = datafusion::arrow::compute::cast(
        b.column(0),
        &datafusion::arrow::datatypes::DataType::Int64,
    )
    .expect("cast");
    col.as_any()
        .downcast_ref::<datafusion::arrow::array::Int64Array>()
        .expect("int64")
        .value(0)
}

/// The rows of a query as sorted strings (for comparing two runs).
pub async fn rows_as_text(ctx: &SessionContext, sql: &str) -> Vec<String> {
    let batches = query(ctx, sql).await;
    let text = datafusion::arrow::util::pretty::pretty_format_batches(&batches)
        .expect("format")
        .to_string();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    lines.sort();
    lines
}

/// A free TCP port on 127.0.0.1 (bound, then released for a child process to take).
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

/// A Ballista cluster of real processes on 127.0.0.1: one `persona scheduler` and `executors`
/// `persona executor`s. Killed when dropped.
pub struct LocalCluster {
    /// The scheduler's port.
    pub scheduler_port: u16,
    /// Child processes: the scheduler first.
    pub children: Vec<std::process::Child>,
    _dir: tempfile::TempDir,
}

impl LocalCluster {
    /// Starts the processes and waits until the scheduler accepts connections.
    pub fn start(executors: usize) -> Self {
        Self::start_with(executors, &[], &[], &[])
    }

    /// [`Self::start`], with extra flags for the scheduler and for each executor, and extra
    /// environment variables for each executor.
    pub fn start_with(
        executors: usize,
        scheduler_flags: &[&str],
        executor_flags: &[&str],
        executor_env: &[(&str, &str)],
    ) -> Self {
        let dir = temp();
        let scheduler_port = free_port();
        let spawn = |args: Vec<String>, log: &str, env: &[(&str, &str)]| {
            let log = std::fs::File::create(dir.path().join(log)).expect("log file");
            Command::new(persona_bin())
                .args(args)
                .env("RUST_LOG", "warn")
                .envs(env.iter().copied())
                .stdout(log.try_clone().expect("log"))
                .stderr(log)
                .spawn()
                .expect("spawn")
        };
        let mut children = vec![spawn(
            ["scheduler", "--port", &scheduler_port.to_string()]
                .iter()
                .chain(scheduler_flags)
                .map(|s| s.to_string())
                .collect(),
            "scheduler.log",
            &[],
        )];
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", scheduler_port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "scheduler did not start"
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        for i in 0..executors {
            let work = dir.path().join(format!("executor-{i}"));
            std::fs::create_dir_all(&work).expect("work dir");
            let mut args: Vec<String> = vec![
                "executor".into(),
                "--port".into(),
                free_port().to_string(),
                "--grpc-port".into(),
                free_port().to_string(),
                "--scheduler-port".into(),
                scheduler_port.to_string(),
                "--task-slots".into(),
                "2".into(),
                "--work-dir".into(),
                work.display().to_string(),
            ];
            args.extend(executor_flags.iter().map(|s| s.to_string()));
            children.push(spawn(args, &format!("executor-{i}.log"), executor_env));
        }
        // Executors register with the scheduler shortly after start.
        std::thread::sleep(std::time::Duration::from_secs(2));
        Self {
            scheduler_port,
            children,
            _dir: dir,
        }
    }

    /// `ballista://127.0.0.1:PORT`.
    pub fn engine(&self) -> String {
        format!("ballista://127.0.0.1:{}", self.scheduler_port)
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
