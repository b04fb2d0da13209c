//! The stage watchdog: turns a stage that runs longer than `[execution] stage_timeout_seconds`
//! into a `[TIMEOUT]` error. On Ballista 55 a job whose executor died mid-stage can wait forever
//! for tasks nobody runs; this makes it a failed run that publishes nothing, which a rerun
//! repeats on the executors that remain.

use std::time::Duration;

use crate::config::PipelineConfig;
use crate::engine::progress::StageClock;
use crate::engine::session::Engine;
use crate::engine::signals;
use crate::error::{PipelineError, Result};

/// The stage time limit of a run: `[execution] stage_timeout_seconds`, or when unset none
/// locally and an hour on Ballista.
pub fn stage_timeout(config: &PipelineConfig, engine: &Engine) -> Option<Duration> {
    let seconds = match config.execution.stage_timeout_seconds {
        Some(s) => s,
        None if *engine == Engine::Local => 0,
        None => 3600,
    };
    (seconds > 0).then(|| Duration::from_secs(seconds))
}

/// Runs a command that is one stage as a whole (`persona als`, `persona kmeans`) under the same
/// watchdog as the stages of `persona run`, so that a fit on a cluster that lost its executors
/// fails with `[TIMEOUT]` instead of waiting forever.
pub async fn as_one_stage<T>(
    stage: &str,
    config: &PipelineConfig,
    engine: &Engine,
    work: impl std::future::Future<Output = Result<T>>,
) -> Result<T> {
    let clock = StageClock::started(stage);
    tokio::select! {
        result = work => result,
        late = stage_watchdog(clock, stage_timeout(config, engine), engine) => Err(late),
    }
}

/// Resolves to a `[TIMEOUT]` error when the stage on `clock` has run longer than `limit` (never
/// while the run is publishing, which nothing interrupts); never resolves without a limit.
pub async fn stage_watchdog(
    clock: StageClock,
    limit: Option<Duration>,
    engine: &Engine,
) -> PipelineError {
    let Some(limit) = limit else {
        return std::future::pending().await;
    };
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        if signals::committing() {
            continue;
        }
        if let Some((stage, running)) = clock.current().filter(|(_, t)| *t > limit) {
            let hint = match engine {
                Engine::Local => String::new(),
                other => format!(
                    "; on {other} a lost executor leaves its job waiting forever: check that every `persona executor` is running and registered (the scheduler logs 'heartbeat timed out' for a lost one), then rerun"
                ),
            };
            return PipelineError::Timeout(format!(
                "stage {stage} ran {} s, longer than [execution] stage_timeout_seconds = {}{hint}; nothing was published",
                running.as_secs(),
                limit.as_secs()
            ));
        }
    }
}
