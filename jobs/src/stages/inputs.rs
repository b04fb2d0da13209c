//! The night's first stage: every input source is checked against the contract and registered
//! for the window's days ([`crate::input`]); the catalog's categories become the `interest_*`
//! parameters of the feature SQL ([`super::interests`]).

use std::fmt::Write as _;

use async_trait::async_trait;

use super::interests;
use super::night::Night;
use super::registry::Stage;
use super::unit::Unit;
use crate::error::Result;
use crate::input;

/// Validates the input sources against the contract and registers them.
#[derive(Debug)]
pub struct Inputs;

#[async_trait(?Send)]
impl Unit for Inputs {
    fn code(&self) -> &'static str {
        "jobs/src/stages/inputs.rs"
    }

    async fn run(&self, _stage: &Stage, night: &mut Night<'_>) -> Result<u64> {
        let inputs = input::register_inputs(night.ctx, night.roots.input, night.window).await?;
        let files = inputs.iter().map(|r| r.files as u64).sum();
        night
            .work
            .size_for_inputs(inputs.iter().map(|r| r.bytes).sum());
        night.record.inputs = inputs;
        night.params.extend(interests::params(night.ctx).await?);
        Ok(files)
    }

    async fn plan(&self, _stage: &Stage, night: &mut Night<'_>) -> Result<String> {
        let inputs = input::register_inputs(night.ctx, night.roots.input, night.window).await?;
        night.params.extend(interests::params(night.ctx).await?);
        let mut text = format!(
            "window {} .. {}; inputs valid:\n",
            night.window.first, night.window.last
        );
        for r in &inputs {
            let _ = writeln!(
                text,
                "  {:<14} {:>6} files {:>4} days{}",
                r.source,
                r.files,
                r.days,
                if r.present { "" } else { " (absent: empty)" }
            );
        }
        Ok(text)
    }
}
