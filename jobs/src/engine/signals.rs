//! SIGINT and SIGTERM stop a run cleanly: the computation is dropped at once, the work area is
//! removed, the lock released, nothing is published, and the process exits with 130 (SIGINT)
//! or 143 (SIGTERM), as shells and schedulers expect. Once the commit has begun, a signal waits
//! for it to finish instead: stopping half-way through replacing partitions would be the one
//! way to leave a date half-published.

use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::PipelineError;

/// Set while the commit runs (a signal then waits for it).
static COMMITTING: AtomicBool = AtomicBool::new(false);

/// Marks the start of the commit.
pub fn commit_started() {
    COMMITTING.store(true, Ordering::SeqCst);
}

/// Whether the run is publishing (nothing may stop it then).
pub fn committing() -> bool {
    COMMITTING.load(Ordering::SeqCst)
}

/// Resolves with the error to stop with when SIGINT or SIGTERM arrives outside the commit;
/// never resolves during the commit. Installing the handlers replaces the default action of
/// both signals for the rest of the process.
pub async fn interrupted() -> PipelineError {
    let (name, code) = wait_for_signal().await;
    if COMMITTING.load(Ordering::SeqCst) {
        tracing::warn!(
            signal = name,
            "received while publishing: finishing the commit first"
        );
        std::future::pending::<()>().await;
    }
    PipelineError::Interrupted {
        signal: name,
        exit_code: code,
    }
}

#[cfg(unix)]
async fn wait_for_signal() -> (&'static str, u8) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::warn!("cannot install signal handlers: signals stop the run abruptly");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => ("SIGTERM", 143),
        _ = int.recv() => ("SIGINT", 130),
    }
}

#[cfg(not(unix))]
async fn wait_for_signal() -> (&'static str, u8) {
    match tokio::signal::ctrl_c().await {
        Ok(()) => ("SIGINT", 130),
        Err(_) => std::future::pending().await,
    }
}
