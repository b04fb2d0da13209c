//! `persona run`, `persona evaluate` and `persona check`: a night of stages from the registry
//! ([`crate::stages::registry`]) run by [`Night`], under the run lock, the stage watchdog and
//! the signal handlers, in a work area that is removed at the end whether the run succeeded or
//! not.
//!
//! `persona run --dry-run` plans the same stages without computing or writing a table.

use std::collections::BTreeMap;

use chrono::NaiveDate;

use crate::config::PipelineConfig;
use crate::engine::commit;
use crate::engine::lock::RunLock;
use crate::engine::progress::Progress;
use crate::engine::session::{self, Engine};
use crate::engine::signals;
use crate::engine::storage::Root;
use crate::engine::watchdog;
use crate::engine::work::WorkArea;
use crate::error::{PipelineError, Result};
use crate::gates;
use crate::gates::DropCount;
use crate::manifest::Manifest;
use crate::stages::night::{Night, Roots};
use crate::stages::registry::{Mode, Stage};

/// What to run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Input root (local folder or `s3://bucket/prefix`).
    pub input: String,
    /// Output root (local folder or `s3://bucket/prefix`).
    pub output: String,
    /// The run date: the last day of the window.
    pub date: NaiveDate,
    /// Configuration.
    pub config: PipelineConfig,
    /// Where the queries run.
    pub engine: Engine,
    /// Only the evaluation (`persona evaluate`): no models for the night, and only the
    /// `evaluation` table published.
    pub evaluate_only: bool,
    /// Write the evaluation's train and holdout pairs to this local folder.
    pub export_split: Option<std::path::PathBuf>,
    /// The night's stages: [`crate::stages::registry::NIGHT`] (a test adds its own).
    pub stages: &'static [Stage],
}

/// What a successful run produced.
#[derive(Debug, Clone)]
pub struct RunSummary {
    /// The manifest that was published.
    pub manifest: Manifest,
    /// Where each table's partition is.
    pub locations: BTreeMap<String, String>,
    /// The model stages' reports as the run summary shows them.
    pub reports: String,
}

impl RunOptions {
    /// Which part of the night this run is.
    pub fn mode(&self) -> Mode {
        if self.evaluate_only {
            Mode::Evaluate
        } else {
            Mode::Run {
                evaluation: self.config.evaluation.enabled,
                propensity: self.config.propensity.enabled,
            }
        }
    }
}

/// Runs the whole job.
pub async fn run(opts: &RunOptions, progress: &mut Progress) -> Result<RunSummary> {
    preflight(opts).await?;
    let storage = &opts.config.storage;
    let (input, output) = (
        Root::parse(&opts.input, storage)?,
        Root::parse(&opts.output, storage)?,
    );
    let ctx = session::new_context(&opts.engine, &opts.config).await?;
    if let Some(path) = output.local_path() {
        std::fs::create_dir_all(path).map_err(|e| PipelineError::io(path, e))?;
    }
    let run_id = crate::engine::work::new_run_id();
    let lock = RunLock::acquire(&output, opts.date, &run_id)
        .await
        .map_err(|e| e.in_stage("lock"))?;
    crate::engine::commit::remove_stray_temp_files(&output, opts.date);
    let result = async {
        let work = WorkArea::create(&output, &run_id, opts.engine == Engine::Local)
            .await?
            .keeping_tables(&opts.config.execution);
        let roots = Roots {
            input: &input,
            output: &output,
        };
        let mut night = Night::new(
            &ctx,
            &work,
            &opts.config,
            roots,
            &run_id,
            opts.mode(),
            opts.date,
        )
        .with_stages(opts.stages)
        .with_export_split(opts.export_split.as_deref())
        .releasing_work_tables();
        let limit = watchdog::stage_timeout(&opts.config, &opts.engine);
        let watchdog = watchdog::stage_watchdog(progress.clock(), limit, &opts.engine);
        let result = tokio::select! {
            result = night.run(progress) => result,
            stop = signals::interrupted() => Err(stop),
            late = watchdog => Err(late),
        };
        work.remove().await;
        if result.is_err() {
            commit::discard_run(&output, opts.date, &run_id).await;
        }
        let record = night.record;
        result.and_then(|()| {
            let manifest = record
                .manifest
                .ok_or_else(|| PipelineError::Internal("the night published no manifest".into()))?;
            Ok(RunSummary {
                manifest,
                locations: record.locations,
                reports: record.reports.summary(),
            })
        })
    }
    .await;
    if result.is_err() {
        progress.abandon();
    }
    lock.release().await;
    result
}

/// `persona run --dry-run`: validates the inputs and the configuration and returns each stage's
/// plan, computing and publishing nothing. Plans in this process whatever the engine: the
/// SQL and the functions are the same on a cluster.
pub async fn dry_run(opts: &RunOptions) -> Result<String> {
    let input = Root::parse(&opts.input, &opts.config.storage)?;
    let output = Root::parse(&opts.output, &opts.config.storage)?;
    let ctx = session::new_context(&Engine::Local, &opts.config).await?;
    let scratch = Scratch::create(&opts.config, "dry-run").await?;
    let roots = Roots {
        input: &input,
        output: &output,
    };
    let mut night = Night::new(
        &ctx,
        &scratch.work,
        &opts.config,
        roots,
        "dry-run",
        opts.mode(),
        opts.date,
    )
    .with_stages(opts.stages);
    let result = night.dry_run().await;
    scratch.remove().await;
    result
}

/// Plans the night (as `--dry-run` does, reading only the inputs' footers) when the
/// configuration declares SQL of its own to run over the night's tables (`[[audiences]]`'
/// `where` and `order_by`, `[[experiments]]`' `eligible`), so that one that does not plan fails
/// the night with its configuration error (exit 4) before anything is computed. Other errors
/// are left to the night itself, which reports them where they happen.
async fn preflight(opts: &RunOptions) -> Result<()> {
    let declared = !opts.config.audiences.is_empty() || !opts.config.experiments.is_empty();
    if !declared || !matches!(opts.mode(), Mode::Run { .. }) {
        return Ok(());
    }
    match dry_run(opts).await {
        Err(e) if matches!(e.root(), PipelineError::Config(_)) => Err(e),
        _ => Ok(()),
    }
}

/// What `persona check` checks.
#[derive(Debug, Clone)]
pub struct CheckOptions {
    /// Input root (local folder or `s3://bucket/prefix`).
    pub input: String,
    /// The run date: the last day of the window.
    pub date: NaiveDate,
    /// Configuration (`[window]`, `[gates]`, `[storage]`).
    pub config: PipelineConfig,
}

/// What `persona check` found.
#[derive(Debug, Clone)]
pub struct CheckReport {
    /// The run date.
    pub date: NaiveDate,
    /// Raw rows per source and reason.
    pub data_quality: Vec<DropCount>,
    /// Every gate.
    pub gates: Vec<gates::GateResult>,
}

/// `persona check`: validates the inputs of `opts.date` against the contract, runs the
/// intake stages (`sql/01`–`06`) in a scratch area and the gates, publishing nothing. A failed
/// gate is an error (exit 7) after the report has been returned to the caller through `report`.
pub async fn check(opts: &CheckOptions, report: &mut Option<CheckReport>) -> Result<()> {
    let cfg = &opts.config;
    let input = Root::parse(&opts.input, &cfg.storage)?;
    preflight(&RunOptions {
        input: opts.input.clone(),
        output: opts.input.clone(),
        date: opts.date,
        config: cfg.clone(),
        engine: Engine::Local,
        evaluate_only: false,
        export_split: None,
        stages: crate::stages::registry::NIGHT,
    })
    .await?;
    let ctx = session::new_context(&Engine::Local, cfg).await?;
    let scratch = Scratch::create(cfg, "check").await?;
    let roots = Roots {
        input: &input,
        output: &scratch.root,
    };
    let mut night = Night::new(
        &ctx,
        &scratch.work,
        cfg,
        roots,
        "check",
        Mode::Check,
        opts.date,
    );
    let mut progress = Progress::new();
    let result = night.run(&mut progress).await;
    if result.is_err() {
        progress.abandon();
    }
    let gates_ran =
        !night.record.gates.is_empty() || night.record.stages.iter().any(|m| m.name == "gates");
    if gates_ran {
        *report = Some(CheckReport {
            date: opts.date,
            data_quality: gates::drop_counts(&ctx).await?,
            gates: night.record.gates.clone(),
        });
    }
    scratch.remove().await;
    result
}

/// A work area in a temporary local folder, for commands that publish nothing.
struct Scratch {
    dir: std::path::PathBuf,
    root: Root,
    work: WorkArea,
}

impl Scratch {
    async fn create(cfg: &PipelineConfig, kind: &str) -> Result<Self> {
        let dir = std::env::temp_dir().join(format!("persona-{kind}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| PipelineError::io(&dir, e))?;
        let root = Root::parse(&dir.to_string_lossy(), &cfg.storage)?;
        let work = WorkArea::create(&root, kind, true).await?;
        Ok(Self { dir, root, work })
    }

    async fn remove(self) {
        self.work.remove().await;
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
