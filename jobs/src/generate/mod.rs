//! `persona generate`: realistic, deterministic demo data in the input contract.
//!
//! Behaviour is driven by hidden customer types and tastes ([`world`]), and the data carries the
//! dirt real exports have: exact duplicates, crawler traffic, anonymous sessions whose cookie
//! logs in elsewhere, events of customers missing from the CRM export, late (next partition) and
//! future-dated events, nulls, impossible birth dates and discontinued items. Output is written
//! day by day through bounded buffers, so memory stays flat at every scale. The hidden truth
//! (each customer's type, and the week after the window) goes to `OUT/_truth/` for the
//! benchmarks ([`truth`]); `persona run` never reads it.

pub mod campaign;
mod crm;
pub mod family;
mod rows;
mod session;
mod sink;
mod truth;
pub mod world;

use std::path::Path;

use chrono::NaiveDate;
use clap::ValueEnum;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::config::StorageConfig;
use crate::contract;
use crate::engine::storage::Root;
use crate::error::{PipelineError, Result};
use rows::{AppRows, WebRows};
use session::DayWriter;
use sink::ParquetSink;
use world::World;

/// Changes whenever the same options start giving other data, so that cached demo data of an
/// older generator is not reused.
pub const GENERATOR_VERSION: u32 = 3;

/// Dataset sizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scale {
    /// ~2k customers, ~100k events per source: tests and a first look.
    Tiny,
    /// ~20k customers, ~1M events per source.
    Small,
    /// ~200k customers, ~7M app events and ~12M web-log rows (40% anonymous by default).
    Medium,
    /// ~2M customers, ~70M app events and ~120M web-log rows: ten times medium, for measuring
    /// how the night's cost grows (about 4 GB of Parquet).
    Large,
}

impl Scale {
    fn customers(self) -> usize {
        match self {
            Scale::Tiny => 2_000,
            Scale::Small => 20_000,
            Scale::Medium => 200_000,
            Scale::Large => 2_000_000,
        }
    }
    fn items(self) -> usize {
        match self {
            Scale::Tiny => 400,
            Scale::Small => 2_000,
            Scale::Medium => 10_000,
            Scale::Large => 50_000,
        }
    }
    fn rows_per_file(self) -> usize {
        match self {
            Scale::Tiny => 1 << 20,
            Scale::Small | Scale::Medium => 200_000,
            Scale::Large => 1_000_000,
        }
    }
}

/// What to generate.
#[derive(Debug, Clone)]
pub struct GenerateOptions {
    /// Dataset size.
    pub scale: Scale,
    /// RNG seed: the same seed, scale and dates give the same files.
    pub seed: u64,
    /// Output root (the input root of `persona run`): a folder or `s3://BUCKET/PREFIX`.
    pub out: String,
    /// Last day with events.
    pub end_date: NaiveDate,
    /// Number of days of events, ending at `end_date`.
    pub days: u32,
    /// Share of web-log rows from crawlers and visitors who never log in (real sites see
    /// 30–60%).
    pub anonymous_share: f64,
    /// What tells the hidden customer types apart (`--types-by`, `--type-strength`).
    pub types: family::TypeMix,
    /// A campaign to plant for the A/B analysis to find (`--campaign-lift`; the demo's).
    pub campaign: Option<campaign::Campaign>,
}

impl GenerateOptions {
    /// The default anonymous share of web traffic.
    pub const ANONYMOUS_SHARE: f64 = 0.4;
}

/// Row counts written.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct GenerateSummary {
    /// Customers in the hidden world (some are missing from the CRM export).
    pub customers: usize,
    /// Rows of `crm_customers`.
    pub crm_rows: u64,
    /// Rows of `items`.
    pub item_rows: u64,
    /// Rows of `web_logs`.
    pub web_log_rows: u64,
    /// Rows of `app_events`.
    pub app_event_rows: u64,
}

/// Generates the dataset. Existing source folders under `out` are replaced.
pub async fn generate(opts: &GenerateOptions) -> Result<GenerateSummary> {
    eprintln!(
        "generating {:?} demo data (seed {}) into {}",
        opts.scale, opts.seed, opts.out
    );
    if !opts.out.starts_with("s3://") {
        return generate_in(opts, Path::new(&opts.out));
    }
    // A bucket: generate into a local temporary folder, then upload.
    let bucket = Root::parse(&opts.out, &StorageConfig::default())?;
    let scratch = tempfile::tempdir()
        .map_err(|e| PipelineError::Storage(format!("cannot create a temporary folder: {e}")))?;
    let summary = generate_in(opts, scratch.path())?;
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

/// Generates into the local folder `out`.
fn generate_in(opts: &GenerateOptions, out: &Path) -> Result<GenerateSummary> {
    if opts.days == 0 {
        return Err(PipelineError::Config("--days must be at least 1".into()));
    }
    if !(0.0..=0.9).contains(&opts.anonymous_share) {
        return Err(PipelineError::Config(format!(
            "--anonymous-share must be between 0 and 0.9, not {}",
            opts.anonymous_share
        )));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(opts.seed);
    if !(0.0..=1.0).contains(&opts.types.strength) {
        return Err(PipelineError::Config(format!(
            "--type-strength must be between 0 and 1, not {}",
            opts.types.strength
        )));
    }
    let world = World::new(
        &mut rng,
        opts.scale.customers(),
        opts.scale.items(),
        opts.days,
        opts.types,
    );
    for source in contract::sources() {
        remove_dir_if_exists(&out.join(source.name))?;
    }
    remove_dir_if_exists(&out.join("_truth"))?;
    let crm_rows = crm::write_customers(
        &mut rng,
        &world,
        &out.join("crm_customers"),
        opts.end_date,
        opts.days,
    )?;
    let item_rows = crm::write_items(&world, &out.join("items"))?;
    let (web_log_rows, app_event_rows) = write_events(&mut rng, &world, opts, out)?;
    truth::write(&mut rng, &world, out, opts.end_date, opts.days)?;
    Ok(GenerateSummary {
        customers: world.customers.len(),
        crm_rows,
        item_rows,
        web_log_rows,
        app_event_rows,
    })
}

fn remove_dir_if_exists(dir: &Path) -> Result<()> {
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(PipelineError::io(dir, e)),
        _ => Ok(()),
    }
}

/// Writes every day's partitions; returns (web rows, app rows).
fn write_events(
    rng: &mut ChaCha8Rng,
    world: &World,
    opts: &GenerateOptions,
    out: &Path,
) -> Result<(u64, u64)> {
    let web_schema = contract::web_logs().schema();
    let app_schema = contract::app_events().schema();
    let first = opts.end_date - chrono::Duration::days(i64::from(opts.days) - 1);
    let (mut late_web, mut late_app) = (WebRows::default(), AppRows::default());
    let (mut web_total, mut app_total) = (0, 0);
    let mut planted = opts
        .campaign
        .as_ref()
        .map(|c| campaign::Planted::new(c, world, opts.seed, first, opts.days));
    for day in 0..opts.days {
        let date = first + chrono::Duration::days(i64::from(day));
        let dt = format!("dt={date}");
        let mut web_sink = ParquetSink::new(
            &out.join("web_logs").join(&dt),
            std::sync::Arc::clone(&web_schema),
            opts.scale.rows_per_file(),
        )?;
        let mut app_sink = ParquetSink::new(
            &out.join("app_events").join(&dt),
            std::sync::Arc::clone(&app_schema),
            opts.scale.rows_per_file(),
        )?;
        // Events that arrived late yesterday land in today's partition.
        web_sink.write(&late_web.take_batch(&web_schema)?)?;
        app_sink.write(&late_app.take_batch(&app_schema)?)?;
        let mut writer = DayWriter::new(world, date, day, opts.days);
        for (index, customer) in world.customers.iter().enumerate() {
            let before = writer.purchases;
            writer.customer_day(rng, customer);
            if let Some(p) = planted.as_mut() {
                if writer.purchases > before {
                    p.purchased(index, day);
                }
                if p.order_day[index] == Some(day) {
                    writer.campaign_order(&mut p.rng, customer);
                }
            }
            writer.flush_if_full(rng, &mut web_sink, &mut app_sink, &web_schema, &app_schema)?;
        }
        writer.background_traffic(rng, opts.anonymous_share);
        writer.flush(rng, &mut web_sink, &mut app_sink, &web_schema, &app_schema)?;
        (late_web, late_app) = writer.into_late();
        web_total += web_sink.close()?;
        app_total += app_sink.close()?;
    }
    if let Some(p) = &planted {
        p.write_truth(world, out)?;
    }
    Ok((web_total, app_total))
}
