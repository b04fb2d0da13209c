//! The `persona` command line: `demo`, `generate`, `run`, `sql`, `kmeans`, `scheduler`,
//! `executor`.
//!
//! Exit codes: 0 success, 1 internal error, 2 bad usage, 3 bad input, 4 bad configuration,
//! 5 storage error, 6 another run of the same date holds the lock (see the README).

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use chrono::NaiveDate;
use clap::{Args, Parser, Subcommand};
use persona_jobs::cluster::process::{
    ExecutorOptions, SchedulerOptions, run_executor, run_scheduler,
};
use persona_jobs::config::{
    AlsSolver, Distance, Init, KChoice, PipelineConfig, RecommendationsConfig, SegmentsConfig,
    StorageConfig,
};
use persona_jobs::generate::{self, GenerateOptions, Scale};
use persona_jobs::pipeline::{self, RunOptions, RunSummary};
use persona_jobs::progress::{Progress, group_digits};
use persona_jobs::query::{self, Format, SqlOptions};
use persona_jobs::session::Engine;
use persona_jobs::storage::Root;
use persona_jobs::{PipelineError, Result};
use persona_jobs::{als, kmeans};

/// Persona: nightly customer profiles, segments and recommendations from web logs, app events
/// and CRM exports.
#[derive(Debug, Parser)]
#[command(name = "persona", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Generate demo data and run the whole job on it, on the local disk.
    Demo(DemoArgs),
    /// Generate realistic demo input data in the input contract.
    Generate(GenerateArgs),
    /// Run the nightly job for one date.
    Run(RunArgs),
    /// Query the published tables with SQL (one query, or an interactive shell).
    Sql(SqlArgs),
    /// Cluster any Parquet table with K-Means (the engine behind the nightly segments).
    Kmeans(KMeansArgs),
    /// Fit implicit ALS on any Parquet table of interactions (the engine behind the nightly
    /// recommendations).
    Als(AlsArgs),
    /// Score the recommendations offline for one date (ALS against popularity on the last
    /// days of the window) and publish the evaluation table.
    Evaluate(EvaluateArgs),
    /// Validate one date's inputs and run the data-quality gates, publishing nothing (a
    /// pre-flight task for a scheduler): exit 0 when the night can run, 3 or 7 when not.
    Check(CheckArgs),
    /// Run a Ballista scheduler with Persona's functions and codecs.
    Scheduler(SchedulerArgs),
    /// Run a Ballista executor with Persona's functions and codecs.
    Executor(ExecutorArgs),
}

#[derive(Debug, Args)]
struct SqlArgs {
    /// Output root of `persona run`: a folder or s3://BUCKET/PREFIX.
    #[arg(long, env = "PERSONA_OUTPUT")]
    output: String,
    /// Read each table at this date (YYYY-MM-DD) instead of its latest successful one.
    #[arg(long, value_parser = parse_date)]
    date: Option<NaiveDate>,
    /// Result format.
    #[arg(long, value_enum, default_value = "table")]
    format: Format,
    /// Write the results to this file instead of stdout.
    #[arg(long)]
    out: Option<PathBuf>,
    /// persona.toml (for the [storage] section).
    #[arg(long, env = "PERSONA_CONFIG")]
    config: Option<PathBuf>,
    /// SQL to run (several statements separated by ';': the last one's result is printed).
    /// Without it: an interactive shell on a terminal, otherwise the SQL on stdin.
    #[arg(allow_hyphen_values = true)]
    query: Option<String>,
}

#[derive(Debug, Args)]
struct KMeansArgs {
    /// Parquet file or folder to cluster: local, or s3://BUCKET/KEY.
    #[arg(long)]
    input: String,
    /// Output folder (local or s3://): assignments/, centroids/ and report/report.json.
    #[arg(long)]
    output: String,
    /// Numeric columns to cluster on, comma-separated.
    #[arg(long, value_delimiter = ',', required = true)]
    features: Vec<String>,
    /// Number of clusters, or "auto" (tries --k-min..=--k-max, keeps the best silhouette).
    #[arg(long, default_value = "8")]
    k: KChoice,
    /// Smallest k tried by --k auto.
    #[arg(long, default_value_t = 2)]
    k_min: usize,
    /// Largest k tried by --k auto.
    #[arg(long, default_value_t = 10)]
    k_max: usize,
    /// Maximum Lloyd iterations.
    #[arg(long, default_value_t = 100)]
    max_iter: usize,
    /// Stop when no centroid moves more than this (0: always run --max-iter iterations).
    #[arg(long, default_value_t = 1e-4)]
    tol: f64,
    /// Seed of the initialisation (restart r uses seed + r).
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Independent restarts; the lowest inertia wins.
    #[arg(long, default_value_t = 1)]
    n_init: usize,
    /// Initialisation.
    #[arg(long, value_enum, default_value = "k-means||")]
    init: Init,
    /// Distance.
    #[arg(long, value_enum, default_value = "euclidean")]
    distance: Distance,
    /// Numeric column weighing each row.
    #[arg(long)]
    weight: Option<String>,
    /// Features to transform with ln(1 + x) first (heavy-tailed money and counts).
    #[arg(long, value_delimiter = ',')]
    log: Vec<String>,
    /// Cluster the raw values instead of z-scores.
    #[arg(long)]
    no_standardize: bool,
    /// Start from these centroids (Parquet with the feature columns, one row per centroid)
    /// instead of initialising; e.g. yesterday's centroids, or a peer's for a benchmark.
    #[arg(long)]
    init_from: Option<String>,
    /// persona.toml (for the [storage] and [execution] sections).
    #[arg(long, env = "PERSONA_CONFIG")]
    config: Option<PathBuf>,
    /// Where queries run: local, standalone or ballista://HOST:PORT.
    #[arg(long, env = "PERSONA_ENGINE", default_value = "local")]
    engine: Engine,
}

#[derive(Debug, Args)]
struct CheckArgs {
    /// Input root: a folder or s3://BUCKET/PREFIX.
    #[arg(long, env = "PERSONA_INPUT")]
    input: String,
    /// The run date (YYYY-MM-DD).
    #[arg(long, env = "PERSONA_DATE", value_parser = parse_date)]
    date: NaiveDate,
    /// persona.toml ([window], [gates], [storage]).
    #[arg(long, env = "PERSONA_CONFIG")]
    config: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct EvaluateArgs {
    #[command(flatten)]
    run: RunArgs,
    /// Also write the exact split the evaluation used, as FOLDER/train.parquet (user_idx,
    /// item_idx, weight) and FOLDER/holdout.parquet (user_idx, item_idx): to score another
    /// library on the same data (scripts/bench-als.sh does).
    #[arg(long)]
    export_split: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct AlsArgs {
    /// Parquet file or folder of interactions: local, or s3://BUCKET/KEY. Rows of the same
    /// (user, item) pair are summed.
    #[arg(long)]
    input: String,
    /// Output folder (local or s3://): user_factors/, item_factors/, recommendations/ and
    /// report/report.json.
    #[arg(long)]
    output: String,
    /// User id column.
    #[arg(long)]
    user: String,
    /// Item id column.
    #[arg(long)]
    item: String,
    /// Numeric weight column (default: every row weighs 1). Rows with a weight that is null or
    /// not positive are dropped and counted.
    #[arg(long)]
    weight: Option<String>,
    /// Held-out interactions (Parquet with the --user and --item columns): report precision,
    /// recall, NDCG and MAP at --top-n for the model and for popularity.
    #[arg(long)]
    holdout: Option<String>,
    /// Latent factors.
    #[arg(long, default_value_t = 32)]
    rank: usize,
    /// Iterations (each solves every user, then every item).
    #[arg(long, default_value_t = 10)]
    iterations: usize,
    /// Regularisation.
    #[arg(long, default_value_t = 0.1)]
    lambda: f64,
    /// Confidence scale: c = 1 + alpha * weight.
    #[arg(long, default_value_t = 10.0)]
    alpha: f64,
    /// Scale lambda by each row's interaction count (ALS-WR, as Spark does).
    #[arg(long)]
    weighted_lambda: bool,
    /// Solver of each row's equations.
    #[arg(long, value_enum, default_value = "cg")]
    solver: AlsSolver,
    /// Conjugate-gradient steps per solve.
    #[arg(long, default_value_t = 3)]
    cg_steps: usize,
    /// Seed of the factor initialisation.
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Recommendations per user (and the cut-off of the --holdout metrics).
    #[arg(long, default_value_t = 10)]
    top_n: usize,
    /// Also recommend items the user already interacted with.
    #[arg(long)]
    keep_seen: bool,
    /// The weights are explicit ratings (stars, scores): minimise the squared error on the
    /// rated pairs only, and report RMSE (on --holdout too, whose --weight column it reads).
    #[arg(long, requires = "weight")]
    explicit: bool,
    /// persona.toml (for the [storage] and [execution] sections).
    #[arg(long, env = "PERSONA_CONFIG")]
    config: Option<PathBuf>,
    /// Where queries run: local, standalone or ballista://HOST:PORT.
    #[arg(long, env = "PERSONA_ENGINE", default_value = "local")]
    engine: Engine,
}

#[derive(Debug, Args)]
struct SchedulerArgs {
    /// Address to bind.
    #[arg(long, default_value = "127.0.0.1", env = "PERSONA_SCHEDULER_BIND")]
    bind: String,
    /// gRPC port for clients and executors.
    #[arg(long, default_value_t = 50050, env = "PERSONA_SCHEDULER_PORT")]
    port: u16,
    /// Seconds without a heartbeat before an executor counts as lost and its tasks are run
    /// again elsewhere (executors beat every 60 s on their own, and at once when they finish
    /// a task).
    #[arg(long, default_value_t = 180)]
    executor_timeout: u64,
}

#[derive(Debug, Args)]
struct ExecutorArgs {
    /// Address to bind.
    #[arg(long, default_value = "127.0.0.1", env = "PERSONA_EXECUTOR_BIND")]
    bind: String,
    /// Address the scheduler and other executors reach this executor at (default: --bind);
    /// needed when binding 0.0.0.0, e.g. the pod IP on Kubernetes.
    #[arg(long, env = "PERSONA_EXECUTOR_HOST")]
    external_host: Option<String>,
    /// Arrow Flight port (shuffle data).
    #[arg(long, default_value_t = 50051)]
    port: u16,
    /// gRPC port (tasks).
    #[arg(long, default_value_t = 50052)]
    grpc_port: u16,
    /// Scheduler host.
    #[arg(long, default_value = "127.0.0.1", env = "PERSONA_SCHEDULER_HOST")]
    scheduler_host: String,
    /// Scheduler port.
    #[arg(long, default_value_t = 50050, env = "PERSONA_SCHEDULER_PORT")]
    scheduler_port: u16,
    /// Concurrent tasks (default: one per core).
    #[arg(long)]
    task_slots: Option<usize>,
    /// Folder for shuffle files (default: a temporary folder).
    #[arg(long)]
    work_dir: Option<String>,
    /// Seconds between heartbeats to the scheduler (keep it well under the scheduler's
    /// --executor-timeout).
    #[arg(long, default_value_t = 10)]
    heartbeat_interval: u64,
    /// Register none of Persona's functions and codecs: behaves like a stock Ballista
    /// executor, so that the tests can check the error a cluster with one gives.
    #[arg(long, hide = true)]
    without_persona_functions: bool,
}

#[derive(Debug, Args)]
struct DemoArgs {
    /// Folder for the demo's input and output.
    #[arg(long, default_value = "demo", env = "PERSONA_DEMO_DIR")]
    dir: PathBuf,
    /// Dataset size.
    #[arg(long, value_enum, default_value = "small")]
    scale: Scale,
    /// Generator seed.
    #[arg(long, default_value_t = 42)]
    seed: u64,
}

#[derive(Debug, Args)]
struct GenerateArgs {
    /// Dataset size.
    #[arg(long, value_enum, default_value = "tiny")]
    scale: Scale,
    /// Seed: the same seed, scale and dates give the same data.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Output root (the input root of `persona run`): a folder or s3://BUCKET/PREFIX.
    #[arg(long)]
    out: String,
    /// Last day with events (YYYY-MM-DD).
    #[arg(long, default_value = "2026-11-22", value_parser = parse_date)]
    end_date: NaiveDate,
    /// Days of events ending at --end-date.
    #[arg(long, default_value_t = 28)]
    days: u32,
}

#[derive(Debug, Args)]
struct RunArgs {
    /// Input root: a folder or s3://BUCKET/PREFIX with web_logs/, app_events/, crm_customers/
    /// and optionally items/.
    #[arg(long, env = "PERSONA_INPUT")]
    input: String,
    /// Output root (a folder or s3://BUCKET/PREFIX): tables are published under
    /// OUTPUT/<table>/dt=<date>/.
    #[arg(long, env = "PERSONA_OUTPUT")]
    output: String,
    /// The run date (YYYY-MM-DD): the last day of the look-back window.
    #[arg(long, env = "PERSONA_DATE", value_parser = parse_date)]
    date: NaiveDate,
    /// persona.toml with settings (defaults when absent).
    #[arg(long, env = "PERSONA_CONFIG")]
    config: Option<PathBuf>,
    /// Where queries run: local (this process), standalone (in-process Ballista scheduler and
    /// executor), or ballista://HOST:PORT (a Ballista cluster).
    #[arg(long, env = "PERSONA_ENGINE", default_value = "local")]
    engine: Engine,
}

fn parse_date(s: &str) -> std::result::Result<NaiveDate, String> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map_err(|e| format!("'{s}' is not a date in the form YYYY-MM-DD ({e})"))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    match main_inner(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let e = e.explained();
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

fn init_logging() {
    // On a terminal the progress display shows the stages; logs show warnings only unless
    // RUST_LOG asks for more. Elsewhere (cron, Airflow) stage lines are logged at info.
    let default = if std::io::stderr().is_terminal() {
        "warn"
    } else {
        "info"
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
}

fn main_inner(cli: Cli) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| PipelineError::Internal(format!("cannot start the async runtime: {e}")))?;
    match cli.command {
        Command::Generate(args) => {
            let summary = if args.out.starts_with("s3://") {
                runtime.block_on(generate_to_bucket(&args))?
            } else {
                let out = Path::new(&args.out);
                generate_data(args.scale, args.seed, out, args.end_date, args.days)?
            };
            println!(
                "{}",
                serde_json::to_string_pretty(&summary).unwrap_or_default()
            );
            Ok(())
        }
        Command::Run(args) => {
            let opts = RunOptions {
                input: args.input,
                output: args.output,
                date: args.date,
                config: PipelineConfig::load(args.config.as_deref())?,
                engine: args.engine,
                evaluate_only: false,
                export_split: None,
            };
            let summary = runtime.block_on(pipeline::run(&opts, &mut Progress::new()))?;
            print_summary(&summary);
            Ok(())
        }
        Command::Evaluate(EvaluateArgs {
            run: args,
            export_split,
        }) => {
            let opts = RunOptions {
                input: args.input,
                output: args.output,
                date: args.date,
                config: PipelineConfig::load(args.config.as_deref())?,
                engine: args.engine,
                evaluate_only: true,
                export_split,
            };
            let summary = runtime.block_on(pipeline::run(&opts, &mut Progress::new()))?;
            print_summary(&summary);
            Ok(())
        }
        Command::Check(args) => {
            let opts = RunOptions {
                input: args.input,
                output: String::new(),
                date: args.date,
                config: PipelineConfig::load(args.config.as_deref())?,
                engine: Engine::Local,
                evaluate_only: false,
                export_split: None,
            };
            let mut report = None;
            let result = runtime.block_on(pipeline::check(&opts, &mut report));
            if let Some(report) = &report {
                print_check(report, args.date);
            }
            result
        }
        Command::Als(args) => {
            let opts = als_options(args)?;
            let report = runtime.block_on(als::command::run(&opts))?;
            print_als(&report, &opts.output);
            Ok(())
        }
        Command::Demo(args) => runtime.block_on(demo(args)),
        Command::Sql(args) => {
            let opts = SqlOptions {
                output: args.output,
                date: args.date,
                format: args.format,
                out: args.out,
                query: args.query,
                config: PipelineConfig::load(args.config.as_deref())?,
            };
            runtime.block_on(query::run(&opts))
        }
        Command::Kmeans(args) => {
            let opts = kmeans_options(args)?;
            let summary = runtime.block_on(kmeans::command::run(&opts))?;
            print_kmeans(&summary);
            Ok(())
        }
        Command::Scheduler(args) => {
            let opts = SchedulerOptions {
                bind_host: args.bind,
                port: args.port,
                executor_timeout_seconds: args.executor_timeout,
            };
            runtime.block_on(run_scheduler(&opts))
        }
        Command::Executor(args) => {
            let opts = ExecutorOptions {
                bind_host: args.bind,
                external_host: args.external_host,
                port: args.port,
                grpc_port: args.grpc_port,
                scheduler_host: args.scheduler_host,
                scheduler_port: args.scheduler_port,
                task_slots: args.task_slots,
                work_dir: args.work_dir,
                heartbeat_interval_seconds: args.heartbeat_interval,
                stock: args.without_persona_functions,
            };
            runtime.block_on(run_executor(&opts))
        }
    }
}

fn kmeans_options(args: KMeansArgs) -> Result<kmeans::command::KMeansOptions> {
    let pipeline = PipelineConfig::load(args.config.as_deref())?;
    let kmeans = SegmentsConfig {
        k: args.k,
        k_min: args.k_min,
        k_max: args.k_max,
        max_iter: args.max_iter,
        tol: args.tol,
        seed: args.seed,
        features: args.features,
        log_features: args.log,
        standardize: !args.no_standardize,
        init: args.init,
        n_init: args.n_init,
        distance: args.distance,
        weight_column: args.weight,
        ..pipeline.segments.clone()
    };
    let check = PipelineConfig {
        segments: kmeans.clone(),
        ..PipelineConfig::default()
    };
    check
        .validate()
        .map_err(|e| PipelineError::Config(e.replace("segments.", "--").replace('_', "-")))?;
    Ok(kmeans::command::KMeansOptions {
        input: args.input,
        output: args.output,
        kmeans,
        pipeline,
        engine: args.engine,
        init_from: args.init_from,
    })
}

fn als_options(args: AlsArgs) -> Result<als::command::AlsOptions> {
    let pipeline = PipelineConfig::load(args.config.as_deref())?;
    let als = RecommendationsConfig {
        rank: args.rank,
        iterations: args.iterations,
        lambda: args.lambda,
        alpha: args.alpha,
        weighted_lambda: args.weighted_lambda,
        solver: args.solver,
        cg_steps: args.cg_steps,
        seed: args.seed,
        top_n: args.top_n,
        explicit: args.explicit,
        ..pipeline.recommendations.clone()
    };
    let check = PipelineConfig {
        recommendations: als.clone(),
        ..PipelineConfig::default()
    };
    check.validate().map_err(|e| {
        PipelineError::Config(e.replace("recommendations.", "--").replace('_', "-"))
    })?;
    Ok(als::command::AlsOptions {
        input: args.input,
        output: args.output,
        user: args.user,
        item: args.item,
        weight: args.weight,
        holdout: args.holdout,
        keep_seen: args.keep_seen,
        als,
        pipeline,
        engine: args.engine,
    })
}

fn print_als(r: &als::command::AlsCommandReport, output: &str) {
    let fit = &r.fit;
    let per_iteration = fit.seconds_per_iteration.iter().sum::<f64>()
        / fit.seconds_per_iteration.len().max(1) as f64;
    println!(
        "\nALS on {} users x {} items ({} pairs): rank {}, {} iterations, {:.3}s per iteration, loss {:.6e}, {:.1}s in all",
        group_digits(fit.users as u64),
        group_digits(fit.items as u64),
        group_digits(fit.interactions),
        r.config.rank,
        fit.iterations,
        per_iteration,
        fit.loss.last().copied().unwrap_or(f64::NAN),
        r.seconds
    );
    if let Some(rmse) = &r.rmse {
        match rmse.holdout {
            Some(h) => println!(
                "  RMSE: {:.4} on the training ratings, {h:.4} on the holdout",
                rmse.train
            ),
            None => println!("  RMSE: {:.4} on the training ratings", rmse.train),
        }
    }
    for m in r.holdout.iter().flatten() {
        println!(
            "  {:<8} precision@k {:.4}  recall@k {:.4}  ndcg@k {:.4}  map@k {:.4}  coverage {:.3}  ({} users)",
            m.model, m.precision_at_k, m.recall_at_k, m.ndcg_at_k, m.map_at_k, m.coverage, m.users
        );
    }
    println!("\npublished to {output}");
}

fn print_kmeans(summary: &kmeans::command::KMeansSummary) {
    let r = &summary.report;
    let fit = &r.fit;
    let per_iteration = fit.seconds_per_iteration.iter().sum::<f64>()
        / fit.seconds_per_iteration.len().max(1) as f64;
    println!(
        "\nK-Means on {} rows: k={} ({}), {} iterations{}, inertia {:.6e}, {:.3}s per iteration, {:.1}s in all",
        group_digits(r.rows),
        fit.k,
        fit.k_choice,
        fit.iterations,
        if fit.converged { " (converged)" } else { "" },
        fit.final_inertia,
        per_iteration,
        r.seconds
    );
    for c in &fit.candidates {
        println!(
            "  k={:<3} silhouette {:+.4}  inertia {:.6e}",
            c.k, c.silhouette, c.inertia
        );
    }
    println!();
    let total: u64 = summary.segments.iter().map(|s| s.size).sum();
    for s in &summary.segments {
        let share = 100.0 * s.size as f64 / total.max(1) as f64;
        println!(
            "  {:>2}  {:<44} {:>10} ({share:4.1}%)",
            s.id,
            s.label,
            group_digits(s.size)
        );
    }
    println!(
        "\nOutputs: {0}/assignments/, {0}/centroids/, {0}/report/report.json",
        summary.output
    );
}

fn generate_data(
    scale: Scale,
    seed: u64,
    out: &Path,
    end_date: NaiveDate,
    days: u32,
) -> Result<generate::GenerateSummary> {
    let opts = GenerateOptions {
        scale,
        seed,
        out: out.to_path_buf(),
        end_date,
        days,
    };
    eprintln!(
        "generating {scale:?} demo data (seed {seed}) into {}",
        out.display()
    );
    generate::generate(&opts)
}

/// `persona generate --out s3://...`: generates into a local temporary folder, then uploads.
async fn generate_to_bucket(args: &GenerateArgs) -> Result<generate::GenerateSummary> {
    let bucket = Root::parse(&args.out, &StorageConfig::default())?;
    let scratch = tempfile::tempdir()
        .map_err(|e| PipelineError::Storage(format!("cannot create a temporary folder: {e}")))?;
    let summary = generate_data(
        args.scale,
        args.seed,
        scratch.path(),
        args.end_date,
        args.days,
    )?;
    let local = Root::parse(&scratch.path().to_string_lossy(), &StorageConfig::default())?;
    let files = local.list_all("").await?;
    eprintln!("uploading {} files to {}", files.len(), bucket.display());
    for meta in &files {
        let rel = local.relative(meta);
        let data = local.read(&rel).await?.unwrap_or_default();
        bucket.write(&rel, data).await?;
    }
    Ok(summary)
}

async fn demo(args: DemoArgs) -> Result<()> {
    let date = NaiveDate::from_ymd_opt(2026, 11, 22)
        .ok_or_else(|| PipelineError::Internal("demo date".into()))?;
    let input = args
        .dir
        .join(format!("input-{:?}-{}", args.scale, args.seed).to_lowercase());
    if !input.join("crm_customers").is_dir() {
        generate_data(args.scale, args.seed, &input, date, 28)?;
    } else {
        eprintln!("using demo data in {}", input.display());
    }
    let opts = RunOptions {
        input: input.to_string_lossy().into_owned(),
        output: args.dir.join("output").to_string_lossy().into_owned(),
        date,
        config: PipelineConfig::default(),
        engine: Engine::Local,
        evaluate_only: false,
        export_split: None,
    };
    eprintln!("running the nightly job for {date}");
    let summary = pipeline::run(&opts, &mut Progress::new()).await?;
    print_summary(&summary);
    Ok(())
}

fn print_check(report: &pipeline::CheckReport, date: NaiveDate) {
    println!("\nInputs for {date}: raw rows per source and reason");
    for d in &report.data_quality {
        println!(
            "  {:<12} {:<18} {:>10}",
            d.source,
            d.reason,
            group_digits(d.rows)
        );
    }
    println!("\nGates:");
    for g in &report.gates {
        let value = if g.value.is_nan() {
            "-".to_string()
        } else if g.gate == "source_present" {
            format!("{}", g.value)
        } else {
            format!("{:.1}%", 100.0 * g.value)
        };
        println!(
            "  {:<5} {:<17} {:<11} {:>8}  {}",
            if g.passed { "ok" } else { "FAIL" },
            g.gate,
            g.source,
            value,
            g.detail
        );
    }
}

fn print_summary(summary: &RunSummary) {
    let m = &summary.manifest;
    println!(
        "\nPersona run {} for {} finished in {:.1}s",
        m.run_id, m.date, m.seconds
    );
    println!("\nPublished tables:");
    for (table, rows) in &m.tables {
        let at = summary.locations.get(table).cloned().unwrap_or_default();
        println!("  {table:<16} {:>10} rows  {at}", group_digits(*rows));
    }
    if let Some(seg) = &m.segments {
        println!(
            "\nSegments ({} customers, k={}, {} iterations):",
            group_digits(seg.points),
            seg.k,
            seg.iterations
        );
        for (id, (size, label)) in seg.sizes.iter().zip(&seg.labels).enumerate() {
            let share = 100.0 * *size as f64 / seg.points.max(1) as f64;
            println!(
                "  {id:>2}  {label:<44} {:>8} ({share:4.1}%)",
                group_digits(*size)
            );
        }
    }
    if let Some(als) = &m.recommendations {
        println!(
            "\nRecommendations: ALS on {} customers × {} items ({} interactions), {} iterations",
            group_digits(als.users as u64),
            group_digits(als.items as u64),
            group_digits(als.interactions),
            als.iterations
        );
    }
    if let Some(eval) = &m.evaluation {
        match &eval.skipped {
            Some(why) => println!("\nEvaluation skipped: {why}"),
            None => {
                println!(
                    "\nEvaluation (trained before {}, scored on the last {} days, k = {}):",
                    eval.holdout_start, eval.holdout_days, eval.k
                );
                for s in &eval.models {
                    println!(
                        "  {:<8} precision {:.4}  recall {:.4}  ndcg {:.4}  map {:.4}  coverage {:.3}  ({} customers)",
                        s.model,
                        s.precision_at_k,
                        s.recall_at_k,
                        s.ndcg_at_k,
                        s.map_at_k,
                        s.coverage,
                        group_digits(s.users)
                    );
                }
            }
        }
    }
    if !m.gates.is_empty() {
        let worst_drop = m
            .gates
            .iter()
            .filter(|g| g.gate == "dropped_share")
            .map(|g| g.value)
            .fold(0.0f64, f64::max);
        println!(
            "\nGates: all {} passed (highest dropped share {:.1}%; see the manifest's gates)",
            m.gates.len(),
            100.0 * worst_drop
        );
    }
    println!("\nData quality (rows per source and reason):");
    for d in &m.data_quality {
        println!(
            "  {:<12} {:<18} {:>10}",
            d.source,
            d.reason,
            group_digits(d.rows)
        );
    }
    println!("\nManifest: {}/_runs/dt={}/manifest.json", m.output, m.date);
}
