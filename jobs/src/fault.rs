//! Fault injection for tests: `PERSONA_FAIL_AT=<point>` makes the run fail at that point
//! (a stage name, or `commit:<table>` just before that table is published), so tests can prove
//! that a run failing mid-way leaves the previous outputs intact. Unset in production.

use crate::error::{PipelineError, Result};

/// The environment variable that names the failure point.
pub const ENV: &str = "PERSONA_FAIL_AT";

/// Fails if `PERSONA_FAIL_AT` names `point`.
pub fn check(point: &str) -> Result<()> {
    match std::env::var(ENV) {
        Ok(target) if target == point => Err(PipelineError::Internal(format!(
            "injected failure at {point} ({ENV})"
        ))),
        _ => Ok(()),
    }
}
