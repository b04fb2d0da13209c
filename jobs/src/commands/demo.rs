//! `persona demo`: generated data and the whole night on the local disk, no server.

use std::path::PathBuf;

use chrono::NaiveDate;

use crate::commands::pipeline::{self, RunOptions, RunSummary};
use crate::config::PipelineConfig;
use crate::engine::progress::Progress;
use crate::engine::session::Engine;
use crate::error::{PipelineError, Result};
use crate::generate::campaign::Campaign;
use crate::generate::{self, GenerateOptions, Scale};
use crate::stages::registry::NIGHT;

/// The demo's settings.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Folder for the demo's input and output.
    pub dir: PathBuf,
    /// Dataset size.
    pub scale: Scale,
    /// Generator seed.
    pub seed: u64,
}

/// Generates the data once (kept in `DIR/input-<scale>-<seed>`), then runs the night of the
/// data's last day into `DIR/output`.
pub async fn run(opts: &DemoOptions) -> Result<RunSummary> {
    let date = NaiveDate::from_ymd_opt(2026, 11, 22)
        .ok_or_else(|| PipelineError::Internal("demo date".into()))?;
    let input = opts.dir.join(
        format!(
            "input-{:?}-{}-v{}",
            opts.scale,
            opts.seed,
            generate::GENERATOR_VERSION
        )
        .to_lowercase(),
    );
    if input.join("crm_customers").is_dir() {
        eprintln!("using demo data in {}", input.display());
    } else {
        generate::generate(&GenerateOptions {
            scale: opts.scale,
            seed: opts.seed,
            out: input.to_string_lossy().into_owned(),
            end_date: date,
            days: 28,
            anonymous_share: GenerateOptions::ANONYMOUS_SHARE,
            types: Default::default(),
            campaign: Some(Campaign::demo(date)),
        })
        .await?;
    }
    let run = RunOptions {
        input: input.to_string_lossy().into_owned(),
        output: opts.dir.join("output").to_string_lossy().into_owned(),
        date,
        config: demo_config(date)?,
        engine: Engine::Local,
        evaluate_only: false,
        export_split: None,
        stages: NIGHT,
    };
    eprintln!("running the nightly job for {date}");
    pipeline::run(&run, &mut Progress::new()).await
}

/// The demo's configuration: the defaults with both neighbourhood models on and the published
/// model chosen by the evaluation (`auto`: the small data takes them in seconds); the A/B test
/// of the campaign planted in its data (`demo_email`, control and email half and half,
/// everyone eligible, from the campaign's first day); and two audiences ([`DEMO_AUDIENCES`]).
fn demo_config(date: NaiveDate) -> Result<PipelineConfig> {
    let start = Campaign::demo(date).start;
    PipelineConfig::parse(&format!(
        "[recommendations]\nmodel = \"auto\"\n[recommendations.item_knn]\nenabled = true\n\
         [recommendations.user_knn]\nenabled = true\n\n[[experiments]]\nkey = \"{}\"\nstart = \"{start}\"\n\
         arms = [{{ name = \"control\", weight = {w} }}, {{ name = \"email\", weight = {e} }}]\n\
         {DEMO_AUDIENCES}",
        Campaign::KEY,
        w = Campaign::CONTROL_WEIGHT,
        e = 1.0 - Campaign::CONTROL_WEIGHT,
    ))
    .map_err(PipelineError::Config)
}

/// The demo's audiences, as a marketer would declare them in persona.toml: the 1,000 customers
/// most likely to buy this week (by the propensity model) for an e-mail with a 10% holdout, and
/// the dormant gold and platinum customers for a win-back ad campaign with a 20% holdout.
pub const DEMO_AUDIENCES: &str = include_str!("demo_audiences.toml");
