//! The data-quality gates as a stage of the night: measured over `event_drops`
//! ([`crate::gates`]); one that fails stops the night (exit 7) after every gate is recorded,
//! so that `persona check` can report them all.

use async_trait::async_trait;

use super::night::Night;
use super::registry::Stage;
use super::unit::Unit;
use crate::error::Result;
use crate::gates;

/// The data-quality gates over `event_drops`: fails the night when one fails.
#[derive(Debug)]
pub struct Gates;

#[async_trait(?Send)]
impl Unit for Gates {
    fn code(&self) -> &'static str {
        "jobs/src/stages/gates.rs"
    }

    async fn run(&self, _stage: &Stage, night: &mut Night<'_>) -> Result<u64> {
        let cfg = &night.config.gates;
        night.record.gates = gates::evaluate(night.ctx, cfg, night.window.last).await?;
        gates::enforce(&night.record.gates)?;
        Ok(night.record.gates.len() as u64)
    }

    async fn plan(&self, _stage: &Stage, night: &mut Night<'_>) -> Result<String> {
        let cfg = &night.config.gates;
        Ok(format!(
            "gates {} on event_drops: required sources {:?}, share of rows per broken-data reason <= {:?}, volume >= {} x the median of the last {} days\n",
            if cfg.enabled { "enabled" } else { "disabled" },
            cfg.required_sources,
            cfg.max_share.by_reason(),
            cfg.min_volume_ratio,
            cfg.volume_history_days
        ))
    }
}
