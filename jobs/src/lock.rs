//! One run per date and output root at a time.
//!
//! A run takes `OUTPUT/_locks/dt=<date>.lock` with a create-only write (a conditional PUT on S3,
//! `O_EXCL` on a local disk), so of two runs of the same date started together exactly one gets
//! it; the other is refused with the holder's run id. A lock whose holder died does not block
//! the next night forever: it expires after [`LOCK_TTL`], and at once when its holder was a
//! process on this host that no longer exists.

use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{PipelineError, Result};
use crate::storage::Root;

/// After this long a lock is treated as abandoned.
pub const LOCK_TTL: Duration = Duration::from_secs(6 * 3600);

/// What a lock file says about its holder.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Holder {
    run_id: String,
    host: String,
    pid: u32,
    /// RFC 3339.
    acquired_at: String,
}

/// A held lock; [`RunLock::release`] gives it back.
#[derive(Debug)]
pub struct RunLock {
    root: Root,
    rel: String,
    run_id: String,
}

impl RunLock {
    /// Takes the lock of `date` under `output` for `run_id`, or says who holds it.
    pub async fn acquire(output: &Root, date: NaiveDate, run_id: &str) -> Result<Self> {
        let rel = format!("_locks/dt={date}.lock");
        let me = Holder {
            run_id: run_id.to_string(),
            host: hostname(),
            pid: std::process::id(),
            acquired_at: Utc::now().to_rfc3339(),
        };
        let body = serde_json::to_vec_pretty(&me)
            .map_err(|e| PipelineError::Internal(format!("lock: {e}")))?;
        for _ in 0..2 {
            if output.create_new(&rel, body.clone()).await? {
                return Ok(Self {
                    root: output.clone(),
                    rel,
                    run_id: run_id.to_string(),
                });
            }
            let current = output.read(&rel).await?;
            let holder = current
                .as_deref()
                .and_then(|b| serde_json::from_slice::<Holder>(b).ok());
            match holder {
                Some(h) if !abandoned(&h) => {
                    return Err(PipelineError::Locked(format!(
                        "another run of {date} (run {}, pid {} on {}, started {}) holds {}; wait for it to finish, or remove the lock if that run is gone",
                        h.run_id,
                        h.pid,
                        h.host,
                        h.acquired_at,
                        output.location(&rel)
                    )));
                }
                _ => {
                    tracing::warn!(lock = %output.location(&rel), "taking over an abandoned lock");
                    output.delete(&rel).await?;
                }
            }
        }
        Err(PipelineError::Locked(format!(
            "could not take {} (another run keeps taking it)",
            output.location(&rel)
        )))
    }

    /// Gives the lock back (only if this run still holds it).
    pub async fn release(self) {
        let still_mine = match self.root.read(&self.rel).await {
            Ok(Some(bytes)) => {
                serde_json::from_slice::<Holder>(&bytes).is_ok_and(|h| h.run_id == self.run_id)
            }
            _ => false,
        };
        if still_mine && let Err(e) = self.root.delete(&self.rel).await {
            tracing::warn!(lock = %self.root.location(&self.rel), error = %e, "could not release the lock");
        }
    }
}

/// Whether the holder is gone: expired, or a process of this host that no longer runs.
fn abandoned(h: &Holder) -> bool {
    let expired = match DateTime::parse_from_rfc3339(&h.acquired_at) {
        Ok(t) => (Utc::now() - t.with_timezone(&Utc))
            .to_std()
            .is_ok_and(|age| age > LOCK_TTL),
        Err(_) => true,
    };
    let dead_here =
        h.host == hostname() && !std::path::Path::new(&format!("/proc/{}", h.pid)).exists();
    expired || dead_here
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "unknown-host".to_string())
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "tests fail by panicking")]
mod tests {
    use super::*;
    use crate::config::StorageConfig;

    #[tokio::test]
    async fn a_second_run_of_the_same_date_is_refused_until_the_first_releases() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::parse(dir.path().to_str().unwrap(), &StorageConfig::default()).unwrap();
        let date = NaiveDate::from_ymd_opt(2024, 3, 1).unwrap();
        let first = RunLock::acquire(&root, date, "run-a").await.unwrap();
        let refused = RunLock::acquire(&root, date, "run-b").await.unwrap_err();
        assert_eq!(refused.exit_code(), 6);
        assert!(refused.to_string().contains("run-a"), "{refused}");
        let other_day = date.succ_opt().unwrap();
        RunLock::acquire(&root, other_day, "run-c").await.unwrap();
        first.release().await;
        RunLock::acquire(&root, date, "run-b").await.unwrap();
    }

    #[tokio::test]
    async fn a_lock_of_a_dead_process_on_this_host_is_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::parse(dir.path().to_str().unwrap(), &StorageConfig::default()).unwrap();
        let date = NaiveDate::from_ymd_opt(2024, 3, 1).unwrap();
        let dead = Holder {
            run_id: "dead".into(),
            host: hostname(),
            pid: u32::MAX - 1,
            acquired_at: Utc::now().to_rfc3339(),
        };
        root.write(
            &format!("_locks/dt={date}.lock"),
            serde_json::to_vec(&dead).unwrap(),
        )
        .await
        .unwrap();
        RunLock::acquire(&root, date, "alive").await.unwrap();
    }
}
