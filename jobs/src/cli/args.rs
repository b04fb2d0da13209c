//! The command line's words: clap structs, one per subcommand, with a doc comment and (for
//! what a scheduler sets) an `env = "PERSONA_…"` on every flag. [`super::convert`] turns them
//! into the validated option types the library takes.

use std::path::PathBuf;

use chrono::NaiveDate;
use clap::{Args, Parser, Subcommand};
use persona_jobs::commands::query::Format;
use persona_jobs::config::{AlsSolver, ClassWeight, Distance, Init, KChoice};
use persona_jobs::engine::session::Engine;
use persona_jobs::generate::family::TypesBy;
use persona_jobs::generate::{GenerateOptions, Scale};

/// Persona: nightly customer profiles, segments and recommendations from web logs, app events
/// and CRM exports.
#[derive(Debug, Parser)]
#[command(name = "persona", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
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
    /// Recommend with any of the night's models (ALS, item-to-item or customer-to-customer
    /// neighbours) on any Parquet table of interactions: `persona als`'s flags plus --model.
    Recommend(RecommendArgs),
    /// Fit a logistic regression on any Parquet table with a 0/1 label and score every row
    /// (the engine behind the nightly propensity model).
    Propensity(PropensityArgs),
    /// Score the recommendations offline for one date (ALS against popularity on the last
    /// days of the window) and publish the evaluation table.
    Evaluate(EvaluateArgs),
    /// Validate one date's inputs and run the data-quality gates, publishing nothing (a
    /// pre-flight task for a scheduler): exit 0 when the night can run, 3 or 7 when not.
    Check(CheckArgs),
    /// A/B tests: `plan` sizes one before it starts.
    #[command(subcommand)]
    Experiment(ExperimentCommand),
    /// Campaign audiences: `preview` one over a published night.
    #[command(subcommand)]
    Audience(AudienceCommand),
    /// Rebuild a night's HTML report from what it published, into a local file.
    Report(ReportArgs),
    /// List the stages of the night in run order: name, part, how it runs, the tables it reads
    /// and writes, and whether it is published.
    Stages,
    /// Run a Ballista scheduler with Persona's functions and codecs.
    Scheduler(SchedulerArgs),
    /// Run a Ballista executor with Persona's functions and codecs.
    Executor(ExecutorArgs),
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Output root of `persona run`: a folder or s3://BUCKET/PREFIX.
    #[arg(long, env = "PERSONA_OUTPUT")]
    pub output: String,
    /// The night (YYYY-MM-DD); the latest by default.
    #[arg(long, env = "PERSONA_DATE", value_parser = parse_date)]
    pub date: Option<NaiveDate>,
    /// The file to write; report-<date>.html in the current folder by default.
    #[arg(long)]
    pub to: Option<PathBuf>,
    /// persona.toml (for the [storage] section).
    #[arg(long, env = "PERSONA_CONFIG")]
    pub config: Option<PathBuf>,
}

/// `persona audience …`.
#[derive(Debug, Subcommand)]
pub enum AudienceCommand {
    /// What an audience would hold over a published night: size, holdout, exclusions,
    /// overlap with the night's audiences, segment mix. The night's own selection, on the
    /// published profiles; nothing is written.
    Preview(PreviewArgs),
}

#[derive(Debug, Args)]
pub struct PreviewArgs {
    /// The audience: one declared in persona.toml, or a new name with --where.
    pub name: String,
    /// Output root of `persona run`: a folder or s3://BUCKET/PREFIX.
    #[arg(long, env = "PERSONA_OUTPUT")]
    pub output: String,
    /// Try this predicate over the night's customer view instead of the declared one.
    #[arg(long = "where")]
    pub predicate: Option<String>,
    /// persona.toml declaring the [[audiences]] (and [storage]).
    #[arg(long, env = "PERSONA_CONFIG")]
    pub config: Option<PathBuf>,
    /// Read this night (YYYY-MM-DD) instead of the latest.
    #[arg(long, env = "PERSONA_DATE", value_parser = parse_date)]
    pub date: Option<NaiveDate>,
    /// Input root of `persona run`, to leave out the customers of its suppressions/ list.
    #[arg(long, env = "PERSONA_INPUT")]
    pub input: Option<String>,
    /// Print the preview as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `persona experiment …`.
#[derive(Debug, Subcommand)]
pub enum ExperimentCommand {
    /// Customers needed per arm to detect a relative lift of a conversion rate.
    Plan(PlanArgs),
    /// Declare an experiment: validate it and add its [[experiments]] block to persona.toml
    /// (with --output, first say how many customers each arm would get).
    Assign(AssignArgs),
    /// Print an experiment's published results (experiment_results of the latest night).
    Report(ExperimentReportArgs),
    /// Analyse a table of customers of your own (the columns of experiment_customers) as the
    /// night would.
    Analyse(AnalyseArgs),
}

#[derive(Debug, Args)]
pub struct AssignArgs {
    /// The configuration file to add the experiment to (created when missing).
    #[arg(long, env = "PERSONA_CONFIG")]
    pub config: PathBuf,
    /// The experiment's key, [a-z0-9_]+.
    #[arg(long)]
    pub key: String,
    /// The arms with their weights, the control first: control=0.5,email=0.5.
    #[arg(long, value_delimiter = ',', required = true, value_parser = parse_arm)]
    pub arms: Vec<(String, f64)>,
    /// Who takes part: SQL over user_profiles (and probability, decile); everyone by default.
    #[arg(long)]
    pub eligible: Option<String>,
    /// The first night that assigns customers (YYYY-MM-DD).
    #[arg(long, value_parser = parse_date)]
    pub start: NaiveDate,
    /// The last night that assigns new customers.
    #[arg(long, value_parser = parse_date)]
    pub end: Option<NaiveDate>,
    /// What to compare, comma-separated (all by default).
    #[arg(long, value_delimiter = ',')]
    pub metrics: Vec<String>,
    /// Cap revenue, orders and sessions at this percentile (e.g. 0.99).
    #[arg(long)]
    pub winsorize: Option<f64>,
    /// Output root of `persona run`: preview the arms over its latest profiles.
    #[arg(long, env = "PERSONA_OUTPUT")]
    pub output: Option<String>,
}

/// `name=weight`.
fn parse_arm(s: &str) -> Result<(String, f64), String> {
    let (name, weight) = s
        .split_once('=')
        .ok_or_else(|| format!("'{s}' is not name=weight (e.g. control=0.5)"))?;
    let weight = weight
        .trim()
        .parse::<f64>()
        .map_err(|_| format!("'{weight}' is not a weight (e.g. 0.5)"))?;
    Ok((name.trim().to_string(), weight))
}

#[derive(Debug, Args)]
pub struct ExperimentReportArgs {
    /// The experiment's key.
    pub key: String,
    /// Output root of `persona run`: a folder or s3://BUCKET/PREFIX.
    #[arg(long, env = "PERSONA_OUTPUT")]
    pub output: String,
    /// Read this night (YYYY-MM-DD) instead of the latest.
    #[arg(long, env = "PERSONA_DATE", value_parser = parse_date)]
    pub date: Option<NaiveDate>,
    /// persona.toml (for the [storage] section).
    #[arg(long, env = "PERSONA_CONFIG")]
    pub config: Option<PathBuf>,
    /// One JSON object per row instead of the table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct AnalyseArgs {
    /// Parquet file or folder: experiment, customer_id, arm, conversion, revenue, orders,
    /// sessions, pre_conversion, pre_revenue, pre_orders, pre_sessions.
    #[arg(long)]
    pub input: String,
    /// persona.toml declaring the [[experiments]] the table's rows belong to.
    #[arg(long, env = "PERSONA_CONFIG")]
    pub config: PathBuf,
    /// One JSON object per row instead of the table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// The control's conversion rate (0.05 for 5%).
    #[arg(long)]
    pub baseline: f64,
    /// The smallest relative lift worth detecting (0.10: 5% → 5.5%).
    #[arg(long)]
    pub mde: f64,
    /// Probability of detecting that lift when it is there.
    #[arg(long, default_value_t = 0.8)]
    pub power: f64,
    /// Significance level of the two-sided test.
    #[arg(long, default_value_t = 0.05)]
    pub alpha: f64,
    /// Arms, the control included.
    #[arg(long, default_value_t = 2)]
    pub arms: usize,
}

#[derive(Debug, Args)]
pub struct SqlArgs {
    /// Output root of `persona run`: a folder or s3://BUCKET/PREFIX.
    #[arg(long, env = "PERSONA_OUTPUT")]
    pub output: String,
    /// Read each table at this date (YYYY-MM-DD) instead of its latest successful one.
    #[arg(long, env = "PERSONA_DATE", value_parser = parse_date)]
    pub date: Option<NaiveDate>,
    /// Result format.
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
    /// Write the results to this file instead of stdout.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// persona.toml (for the [storage] section).
    #[arg(long, env = "PERSONA_CONFIG")]
    pub config: Option<PathBuf>,
    /// SQL to run (several statements separated by ';': the last one's result is printed).
    /// Without it: an interactive shell on a terminal, otherwise the SQL on stdin.
    #[arg(allow_hyphen_values = true)]
    pub query: Option<String>,
}

#[derive(Debug, Args)]
pub struct KMeansArgs {
    /// Parquet file or folder to cluster: local, or s3://BUCKET/KEY.
    #[arg(long)]
    pub input: String,
    /// Output folder (local or s3://): assignments/, centroids/ and report/report.json.
    #[arg(long)]
    pub output: String,
    /// Numeric columns to cluster on, comma-separated.
    #[arg(long, value_delimiter = ',', required = true)]
    pub features: Vec<String>,
    /// Number of clusters, or "auto" (tries --k-min..=--k-max, keeps the best silhouette).
    #[arg(long, default_value = "8")]
    pub k: KChoice,
    /// Smallest k tried by --k auto.
    #[arg(long, default_value_t = 2)]
    pub k_min: usize,
    /// Largest k tried by --k auto.
    #[arg(long, default_value_t = 10)]
    pub k_max: usize,
    /// Maximum Lloyd iterations.
    #[arg(long, default_value_t = 100)]
    pub max_iter: usize,
    /// Stop when no centroid moves more than this (0: always run --max-iter iterations).
    #[arg(long, default_value_t = 1e-4)]
    pub tol: f64,
    /// Seed of the initialisation (restart r uses seed + r).
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Independent restarts; the lowest inertia wins.
    #[arg(long, default_value_t = 1)]
    pub n_init: usize,
    /// Initialisation.
    #[arg(long, value_enum, default_value = "k-means||")]
    pub init: Init,
    /// Distance.
    #[arg(long, value_enum, default_value = "euclidean")]
    pub distance: Distance,
    /// Numeric column weighing each row.
    #[arg(long)]
    pub weight: Option<String>,
    /// Features to transform with ln(1 + x) first (heavy-tailed money and counts).
    #[arg(long, value_delimiter = ',')]
    pub log: Vec<String>,
    /// Categorical columns to cluster on as one-hot indicators (one per frequent value),
    /// comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub categorical: Vec<String>,
    /// Cluster the raw values instead of z-scores.
    #[arg(long)]
    pub no_standardize: bool,
    /// Start from these centroids (Parquet with the feature columns, one row per centroid)
    /// instead of initialising; e.g. yesterday's centroids, or a peer's for a benchmark.
    #[arg(long)]
    pub init_from: Option<String>,
    /// persona.toml (for the [storage] and [execution] sections).
    #[arg(long, env = "PERSONA_CONFIG")]
    pub config: Option<PathBuf>,
    /// Where queries run: local, standalone or ballista://HOST:PORT.
    #[arg(long, env = "PERSONA_ENGINE", default_value = "local")]
    pub engine: Engine,
}

#[derive(Debug, Args)]
pub struct PropensityArgs {
    /// Parquet file or folder: local, or s3://BUCKET/KEY.
    #[arg(long)]
    pub input: String,
    /// Output folder (local or s3://): scores/, model/ and report/report.json.
    #[arg(long)]
    pub output: String,
    /// The label column: 0/1 or boolean; rows where it is null are scored but not fitted.
    #[arg(long)]
    pub label: String,
    /// Numeric feature columns, comma-separated.
    #[arg(long, value_delimiter = ',', required = true)]
    pub features: Vec<String>,
    /// Features to transform with ln(1 + x) first (heavy-tailed money and counts).
    #[arg(long, value_delimiter = ',')]
    pub log: Vec<String>,
    /// Categorical columns used as one-hot indicators (one per frequent value).
    #[arg(long, value_delimiter = ',')]
    pub categorical: Vec<String>,
    /// Column identifying a row, hashed to choose the held-out rows (default: the whole row).
    #[arg(long)]
    pub id: Option<String>,
    /// Share of the labelled rows held out to measure the model (AUC, log loss, Brier).
    #[arg(long, default_value_t = 0.2)]
    pub test_share: f64,
    /// L2 penalty on the standardised coefficients (scikit-learn's C is 1 / l2).
    #[arg(long, default_value_t = 1.0)]
    pub l2: f64,
    /// Newton iterations at most.
    #[arg(long, default_value_t = 25)]
    pub max_iter: usize,
    /// Stop when no coefficient moves more than this.
    #[arg(long, default_value_t = 1e-6)]
    pub tol: f64,
    /// Class weights.
    #[arg(long, value_enum, default_value = "none")]
    pub class_weight: ClassWeight,
    /// persona.toml (for the [storage] and [execution] sections).
    #[arg(long, env = "PERSONA_CONFIG")]
    pub config: Option<PathBuf>,
    /// Where queries run: local, standalone or ballista://HOST:PORT.
    #[arg(long, env = "PERSONA_ENGINE", default_value = "local")]
    pub engine: Engine,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Input root: a folder or s3://BUCKET/PREFIX.
    #[arg(long, env = "PERSONA_INPUT")]
    pub input: String,
    /// The run date (YYYY-MM-DD).
    #[arg(long, env = "PERSONA_DATE", value_parser = parse_date)]
    pub date: NaiveDate,
    /// persona.toml ([window], [gates], [storage]).
    #[arg(long, env = "PERSONA_CONFIG")]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct EvaluateArgs {
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Debug, Args)]
pub struct AlsArgs {
    /// Parquet file or folder of interactions: local, or s3://BUCKET/KEY. Rows of the same
    /// (user, item) pair are summed.
    #[arg(long)]
    pub input: String,
    /// Output folder (local or s3://): user_factors/, item_factors/, recommendations/ and
    /// report/report.json.
    #[arg(long)]
    pub output: String,
    /// User id column.
    #[arg(long)]
    pub user: String,
    /// Item id column.
    #[arg(long)]
    pub item: String,
    /// Numeric weight column (default: every row weighs 1). Rows with a weight that is null or
    /// not positive are dropped and counted.
    #[arg(long)]
    pub weight: Option<String>,
    /// Held-out interactions (Parquet with the --user and --item columns): report precision,
    /// recall, NDCG and MAP at --top-n for the model and for popularity.
    #[arg(long)]
    pub holdout: Option<String>,
    /// Latent factors.
    #[arg(long, default_value_t = 32)]
    pub rank: usize,
    /// Iterations (each solves every user, then every item).
    #[arg(long, default_value_t = 10)]
    pub iterations: usize,
    /// Regularisation.
    #[arg(long, default_value_t = 0.1)]
    pub lambda: f64,
    /// Confidence scale: c = 1 + alpha * weight.
    #[arg(long, default_value_t = 10.0)]
    pub alpha: f64,
    /// Scale lambda by each row's interaction count (ALS-WR, as Spark does).
    #[arg(long)]
    pub weighted_lambda: bool,
    /// Solver of each row's equations.
    #[arg(long, value_enum, default_value = "cg")]
    pub solver: AlsSolver,
    /// Conjugate-gradient steps per solve.
    #[arg(long, default_value_t = 3)]
    pub cg_steps: usize,
    /// Seed of the factor initialisation.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Recommendations per user (and the cut-off of the --holdout metrics).
    #[arg(long, default_value_t = 10)]
    pub top_n: usize,
    /// Also recommend items the user already interacted with.
    #[arg(long)]
    pub keep_seen: bool,
    /// The weights are explicit ratings (stars, scores): minimise the squared error on the
    /// rated pairs only, and report RMSE (on --holdout too, whose --weight column it reads).
    #[arg(long, requires = "weight")]
    pub explicit: bool,
    /// persona.toml (for the [storage] and [execution] sections).
    #[arg(long, env = "PERSONA_CONFIG")]
    pub config: Option<PathBuf>,
    /// Where queries run: local, standalone or ballista://HOST:PORT.
    #[arg(long, env = "PERSONA_ENGINE", default_value = "local")]
    pub engine: Engine,
}

#[derive(Debug, Args)]
pub struct RecommendArgs {
    /// The model: als (matrix factorisation), item_knn (items the same users interacted with,
    /// BM25 or cosine; publishes item_neighbours/ and the item that explains each
    /// recommendation) or user_knn (the most correlated users' items; publishes
    /// similar_users/).
    #[arg(long, value_enum, default_value = "als")]
    pub model: ModelArg,
    /// Neighbours kept per item (item_knn) or per user (user_knn).
    #[arg(long, default_value_t = 50)]
    pub neighbours: usize,
    /// item_knn's similarity.
    #[arg(long, value_enum, default_value = "bm25")]
    pub similarity: SimilarityArg,
    #[command(flatten)]
    pub als: AlsArgs,
}

/// `persona recommend --model`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ModelArg {
    /// Implicit ALS.
    Als,
    /// The item-to-item model.
    #[value(name = "item_knn")]
    ItemKnn,
    /// The customer-to-customer model.
    #[value(name = "user_knn")]
    UserKnn,
}

/// `persona recommend --similarity`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum SimilarityArg {
    /// BM25-weighted co-interaction.
    Bm25,
    /// Cosine of the item columns.
    Cosine,
}

#[derive(Debug, Args)]
pub struct SchedulerArgs {
    /// Address to bind.
    #[arg(long, default_value = "127.0.0.1", env = "PERSONA_SCHEDULER_BIND")]
    pub bind: String,
    /// gRPC port for clients and executors.
    #[arg(long, default_value_t = 50050, env = "PERSONA_SCHEDULER_PORT")]
    pub port: u16,
    /// Seconds without a heartbeat before an executor counts as lost and its tasks are run
    /// again elsewhere (executors beat every 60 s on their own, and at once when they finish
    /// a task).
    #[arg(
        long,
        default_value_t = 180,
        env = "PERSONA_SCHEDULER_EXECUTOR_TIMEOUT"
    )]
    pub executor_timeout: u64,
}

#[derive(Debug, Args)]
pub struct ExecutorArgs {
    /// Address to bind.
    #[arg(long, default_value = "127.0.0.1", env = "PERSONA_EXECUTOR_BIND")]
    pub bind: String,
    /// Address the scheduler and other executors reach this executor at (default: --bind);
    /// needed when binding 0.0.0.0, e.g. the pod IP on Kubernetes.
    #[arg(long, env = "PERSONA_EXECUTOR_HOST")]
    pub external_host: Option<String>,
    /// Arrow Flight port (shuffle data).
    #[arg(long, default_value_t = 50051, env = "PERSONA_EXECUTOR_PORT")]
    pub port: u16,
    /// gRPC port (tasks).
    #[arg(long, default_value_t = 50052, env = "PERSONA_EXECUTOR_GRPC_PORT")]
    pub grpc_port: u16,
    /// Scheduler host.
    #[arg(long, default_value = "127.0.0.1", env = "PERSONA_SCHEDULER_HOST")]
    pub scheduler_host: String,
    /// Scheduler port.
    #[arg(long, default_value_t = 50050, env = "PERSONA_SCHEDULER_PORT")]
    pub scheduler_port: u16,
    /// Concurrent tasks (default: one per core).
    #[arg(long, env = "PERSONA_EXECUTOR_TASK_SLOTS")]
    pub task_slots: Option<usize>,
    /// Folder for shuffle files (default: a temporary folder).
    #[arg(long, env = "PERSONA_EXECUTOR_WORK_DIR")]
    pub work_dir: Option<String>,
    /// Seconds between heartbeats to the scheduler (keep it well under the scheduler's
    /// --executor-timeout).
    #[arg(
        long,
        default_value_t = 10,
        env = "PERSONA_EXECUTOR_HEARTBEAT_INTERVAL"
    )]
    pub heartbeat_interval: u64,
    /// Register none of Persona's functions and codecs: behaves like a stock Ballista
    /// executor, so that the tests can check the error a cluster with one gives.
    #[arg(long, hide = true)]
    pub without_persona_functions: bool,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Folder for the demo's input and output.
    #[arg(long, default_value = "demo", env = "PERSONA_DEMO_DIR")]
    pub dir: PathBuf,
    /// Dataset size.
    #[arg(long, value_enum, default_value = "small")]
    pub scale: Scale,
    /// Generator seed.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
}

#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// Dataset size.
    #[arg(long, value_enum, default_value = "tiny")]
    pub scale: Scale,
    /// Seed: the same seed, scale and dates give the same data.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Output root (the input root of `persona run`): a folder or s3://BUCKET/PREFIX.
    #[arg(long)]
    pub out: String,
    /// Last day with events (YYYY-MM-DD).
    #[arg(long, default_value = "2026-11-22", value_parser = parse_date)]
    pub end_date: NaiveDate,
    /// Days of events ending at --end-date.
    #[arg(long, default_value_t = 28)]
    pub days: u32,
    /// Share of web-log rows from crawlers and visitors who never log in (0–0.9).
    #[arg(long, default_value_t = GenerateOptions::ANONYMOUS_SHARE)]
    pub anonymous_share: f64,
    /// What tells the six hidden customer types apart: `shop` (the demo shop: activity,
    /// purchasing, channel and some demographics), or one group alone — `behaviour`,
    /// `channel`, `taste`, `demographics` — or `mixed` (every group at half strength).
    #[arg(long, value_enum, default_value = "shop")]
    pub types_by: TypesBy,
    /// How strongly the types differ in that group, from 0 (alike) to 1.
    #[arg(long, default_value_t = 1.0)]
    pub type_strength: f64,
    /// Plant the demo's campaign (experiment demo_email, control and email half and half, the
    /// last 14 days): each reachable customer of the email arm places one extra order with
    /// this probability (0: no campaign; `persona demo` plants 0.1). The truth is written to
    /// OUT/_truth/campaign/.
    #[arg(long, default_value_t = 0.0)]
    pub campaign_lift: f64,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Input root: a folder or s3://BUCKET/PREFIX with web_logs/, app_events/, crm_customers/
    /// and optionally items/.
    #[arg(long, env = "PERSONA_INPUT")]
    pub input: String,
    /// Output root (a folder or s3://BUCKET/PREFIX): tables are published under
    /// OUTPUT/<table>/dt=<date>/run=<run id>/, committed by OUTPUT/_runs/dt=<date>/manifest.json.
    #[arg(long, env = "PERSONA_OUTPUT")]
    pub output: String,
    /// The run date (YYYY-MM-DD): the last day of the look-back window.
    #[arg(long, env = "PERSONA_DATE", value_parser = parse_date)]
    pub date: NaiveDate,
    /// persona.toml with settings (defaults when absent).
    #[arg(long, env = "PERSONA_CONFIG")]
    pub config: Option<PathBuf>,
    /// Where queries run: local (this process), standalone (in-process Ballista scheduler and
    /// executor), or ballista://HOST:PORT (a Ballista cluster).
    #[arg(long, env = "PERSONA_ENGINE", default_value = "local")]
    pub engine: Engine,
    /// Validate the inputs and the configuration and print each stage's plan (EXPLAIN),
    /// computing and writing nothing.
    #[arg(long, env = "PERSONA_DRY_RUN")]
    pub dry_run: bool,
    /// Also write the exact data the night's models were measured on, to fit another library
    /// on it: the evaluation's split as FOLDER/train.parquet (user_idx, item_idx, weight) and
    /// FOLDER/holdout.parquet (user_idx, item_idx), as scripts/bench-als.sh does, and the
    /// propensity model's standardised training rows as FOLDER/propensity.parquet (split,
    /// label and one __z<i> column per term of propensity_model), as
    /// scripts/bench-propensity.sh does.
    #[arg(long, env = "PERSONA_EXPORT_SPLIT")]
    pub export_split: Option<PathBuf>,
}

pub fn parse_date(s: &str) -> std::result::Result<NaiveDate, String> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map_err(|e| format!("'{s}' is not a date in the form YYYY-MM-DD ({e})"))
}
