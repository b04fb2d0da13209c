//! Fault injection for tests: `PERSONA_FAIL_AT=<point>` makes the run fail at that point
//! (a stage name, or `commit:<table>` just before that table is published), so tests can prove
//! that a run failing mid-way leaves the previous outputs intact. `PERSONA_PAUSE_AT=<point>`
//! instead stops there (printing `paused at <point>` on stderr) so a test can kill the process
//! at that moment. Both are unset in production.

use crate::error::{PipelineError, Result};

/// The environment variable that names the failure point.
pub const ENV: &str = "PERSONA_FAIL_AT";

/// The environment variable that names the pause point.
pub const PAUSE_ENV: &str = "PERSONA_PAUSE_AT";

/// Fails if `PERSONA_FAIL_AT` names `point`; waits to be killed if `PERSONA_PAUSE_AT` does.
/// The wait is asynchronous: the runtime's workers go on serving the process's other tasks
/// (signal handlers, the watchdog), as they would in a real hang.
pub async fn check(point: &str) -> Result<()> {
    if std::env::var(PAUSE_ENV).is_ok_and(|p| p == point) {
        eprintln!("paused at {point} ({PAUSE_ENV})");
        std::future::pending::<()>().await;
    }
    match std::env::var(ENV) {
        Ok(target) if target == point => Err(PipelineError::Internal(format!(
            "injected failure at {point} ({ENV})"
        ))),
        _ => Ok(()),
    }
}
