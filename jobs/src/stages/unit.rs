//! What every stage is to the night: a [`Unit`] that runs it and plans it for `--dry-run`, so
//! that a stage's behaviour lives in one file instead of one arm of several `match`es.
//!
//! A plain SQL stage needs no code: [`SqlQuery`] runs the file its registry entry names. A Rust
//! stage is a unit struct in its own file under `stages/` that implements [`Unit`]; what it
//! reports for the manifest goes into the night's [`super::record::Reports`], what it hands to
//! a later stage into [`super::record::Handoffs`].

use async_trait::async_trait;

use super::night::Night;
use super::registry::Stage;
use crate::config::PipelineConfig;
use crate::error::Result;

/// How a stage runs and how it is planned. The night awaits its stages one by one on the
/// command's own task, so their futures need not be `Send` (some of DataFusion's listing
/// futures are not, for every lifetime).
#[async_trait(?Send)]
pub trait Unit: Send + Sync {
    /// The file that holds the stage's code, for `persona stages` (an SQL stage shows its SQL
    /// file instead).
    fn code(&self) -> &'static str;

    /// Whether the configuration turns the stage off (no `[[experiments]]`, a neighbourhood
    /// model not enabled): it then never runs, and `--dry-run` plans no output for it.
    fn off_by_config(&self, _config: &PipelineConfig) -> bool {
        false
    }

    /// Whether the stage does not run tonight: off by the configuration, or by what earlier
    /// stages reported. Which parts of the night run at all is [`super::registry::Mode`]'s
    /// business.
    fn skips(&self, night: &Night<'_>) -> bool {
        self.off_by_config(night.config)
    }

    /// Runs the stage: computes and registers the tables it writes; returns the rows (or
    /// files, gates, points) it produced.
    async fn run(&self, stage: &Stage, night: &mut Night<'_>) -> Result<u64>;

    /// Plans the stage for `--dry-run` without computing anything: registers the tables it
    /// writes, empty and with their real schemas, so that later stages can be planned
    /// against them; returns what it would do, as text.
    async fn plan(&self, stage: &Stage, night: &mut Night<'_>) -> Result<String>;
}

/// A plain SQL stage: runs the registry entry's file with the night's `{{parameters}}` and
/// materialises its table.
#[derive(Debug)]
pub struct SqlQuery;

#[async_trait(?Send)]
impl Unit for SqlQuery {
    fn code(&self) -> &'static str {
        "jobs/src/stages/unit.rs"
    }

    async fn run(&self, stage: &Stage, night: &mut Night<'_>) -> Result<u64> {
        night.run_sql(stage, &night.params).await
    }

    async fn plan(&self, stage: &Stage, night: &mut Night<'_>) -> Result<String> {
        night.plan_sql(stage, &night.params).await
    }
}

/// A plain SQL stage that runs only on nights whose configuration asks for it
/// (`[[experiments]]` declared, `[recommendations.item_knn] enabled`). `--dry-run` plans it
/// either way, so that the stages after it can be planned against its table, and says when it
/// is off.
#[derive(Debug)]
pub struct SqlWhen {
    /// Whether the configuration asks for the stage.
    pub runs: fn(&PipelineConfig) -> bool,
    /// What `--dry-run` says when it does not.
    pub off: &'static str,
}

#[async_trait(?Send)]
impl Unit for SqlWhen {
    fn code(&self) -> &'static str {
        "jobs/src/stages/unit.rs"
    }

    fn off_by_config(&self, config: &PipelineConfig) -> bool {
        !(self.runs)(config)
    }

    async fn run(&self, stage: &Stage, night: &mut Night<'_>) -> Result<u64> {
        night.run_sql(stage, &night.params).await
    }

    async fn plan(&self, stage: &Stage, night: &mut Night<'_>) -> Result<String> {
        let plan = night.plan_sql(stage, &night.params).await?;
        Ok(if !self.off_by_config(night.config) {
            plan
        } else {
            format!(
                "off tonight: {}
{plan}",
                self.off
            )
        })
    }
}
