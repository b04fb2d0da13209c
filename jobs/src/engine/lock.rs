//! One run per date and output root at a time.
//!
//! A run takes `OUTPUT/_locks/dt=<date>.lock` with a create-only write (a conditional PUT on S3,
//! `O_EXCL` on a local disk), so of two runs of the same date started together exactly one gets
//! it; the other is refused with the holder's run id. A lock whose holder died does not block
//! the next night forever: it expires after [`LOCK_TTL`], and at once when its holder was a
//! process on this host that no longer exists. Taking over an abandoned lock is as exclusive as
//! taking a free one ([`take_over`]): of many starters that find the same dead holder, one
//! gets the lock. And a night commits only while its run still holds the lock
//! ([`verify_held`]), so even a run that stalled past the expiry and lost its lock publishes
//! nothing.

use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::engine::storage::Root;
use crate::error::{PipelineError, Result};

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
        let rel = lock_path(date);
        let me = Holder {
            run_id: run_id.to_string(),
            host: hostname(),
            pid: std::process::id(),
            acquired_at: Utc::now().to_rfc3339(),
        };
        let body = serde_json::to_vec_pretty(&me)
            .map_err(|e| PipelineError::Internal(format!("lock: {e}")))?;
        for _ in 0..3 {
            if output.create_new(&rel, body.clone()).await? {
                return Ok(Self {
                    root: output.clone(),
                    rel,
                    run_id: run_id.to_string(),
                });
            }
            let Some(current) = output.read(&rel).await? else {
                continue; // released meanwhile: try again
            };
            match serde_json::from_slice::<Holder>(&current) {
                Ok(h) if !abandoned(&h) => {
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
                    if take_over(output, &rel, &current, &body).await? {
                        tracing::warn!(lock = %output.location(&rel), "took over an abandoned lock");
                        return Ok(Self {
                            root: output.clone(),
                            rel,
                            run_id: run_id.to_string(),
                        });
                    }
                    // Another starter took it over first; the next round says who holds it.
                }
            }
        }
        Err(PipelineError::Locked(format!(
            "could not take {} (other runs keep taking it)",
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

/// Checks that run `run_id` still holds the lock of `date`: the fence a night passes just
/// before its commit, so that a run whose lock was taken over (it stalled past [`LOCK_TTL`], or
/// its process looked dead) publishes nothing.
pub async fn verify_held(output: &Root, date: NaiveDate, run_id: &str) -> Result<()> {
    let rel = lock_path(date);
    let holder = output
        .read(&rel)
        .await?
        .and_then(|b| serde_json::from_slice::<Holder>(&b).ok());
    match holder {
        Some(h) if h.run_id == run_id => Ok(()),
        other => Err(PipelineError::Locked(format!(
            "run {run_id} no longer holds {} ({}); it publishes nothing",
            output.location(&rel),
            match other {
                Some(h) => format!("run {} took it over", h.run_id),
                None => "the lock is gone".to_string(),
            }
        ))),
    }
}

/// The lock of `date`, relative to the output root.
fn lock_path(date: NaiveDate) -> String {
    format!("_locks/dt={date}.lock")
}

/// After this long a take-over marker belongs to a starter that died between creating it and
/// replacing the lock (a few milliseconds' work): it no longer blocks the take-over. A marker
/// of a process of this host that no longer runs blocks nothing at once.
const TAKEOVER_TTL: Duration = Duration::from_secs(600);

/// Replaces the abandoned lock `rel`, whose bytes were `stale`, with `body`, unless another
/// starter does so first. Two starters that both find the same abandoned lock must not both
/// take it (deleting it and creating it anew would let a slow one delete the fast one's fresh
/// lock). So the right to replace these bytes is itself taken with a create-only write, of the
/// marker `<rel>.takeover-<hash of stale>`; its holder re-reads the lock and replaces it (one
/// atomic write) only if it still holds `stale`. A starter that comes later finds either the
/// marker (it lost) or, once the marker is removed, a lock that is no longer `stale`.
async fn take_over(output: &Root, rel: &str, stale: &[u8], body: &[u8]) -> Result<bool> {
    let marker = takeover_marker(rel, stale);
    if !output.create_new(&marker, body.to_vec()).await? {
        let dead_taker = output
            .read(&marker)
            .await?
            .and_then(|b| serde_json::from_slice::<Holder>(&b).ok())
            .is_none_or(|h| older_than(&h, TAKEOVER_TTL) || gone_from_this_host(&h));
        if dead_taker {
            output.delete(&marker).await?;
        }
        return Ok(false);
    }
    let replaced = async {
        if output.read(rel).await?.as_deref() != Some(stale) {
            return Ok(false);
        }
        output.write(rel, body.to_vec()).await?;
        Ok(true)
    }
    .await;
    output.delete(&marker).await?;
    replaced
}

/// The take-over marker of the lock `rel` whose bytes are `stale`.
fn takeover_marker(rel: &str, stale: &[u8]) -> String {
    let mut hasher = std::hash::DefaultHasher::new();
    std::hash::Hash::hash(stale, &mut hasher);
    format!("{rel}.takeover-{:016x}", std::hash::Hasher::finish(&hasher))
}

/// Whether `h` took its lock more than `age` ago (or says so unreadably).
fn older_than(h: &Holder, age: Duration) -> bool {
    match DateTime::parse_from_rfc3339(&h.acquired_at) {
        Ok(t) => (Utc::now() - t.with_timezone(&Utc))
            .to_std()
            .is_ok_and(|a| a > age),
        Err(_) => true,
    }
}

/// Whether the holder is gone: expired, or a process of this host that no longer runs.
fn abandoned(h: &Holder) -> bool {
    older_than(h, LOCK_TTL) || gone_from_this_host(h)
}

/// Whether `h` was a process of this host that no longer runs.
fn gone_from_this_host(h: &Holder) -> bool {
    h.host == hostname() && !process_runs(h.pid)
}

/// Whether a process `pid` runs on this host (the question a lock's and a work area's
/// clean-up ask of a run that may have been killed).
pub fn process_runs(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
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

    /// A fresh local output root (removed with the returned folder) and a date.
    fn temp_root() -> (tempfile::TempDir, Root, NaiveDate) {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::parse(dir.path().to_str().unwrap(), &StorageConfig::default()).unwrap();
        (dir, root, NaiveDate::from_ymd_opt(2024, 3, 1).unwrap())
    }

    /// A holder on this host whose process is gone: abandoned at once.
    fn dead_holder(run_id: &str) -> Holder {
        Holder {
            run_id: run_id.into(),
            host: hostname(),
            pid: u32::MAX - 1,
            acquired_at: Utc::now().to_rfc3339(),
        }
    }

    /// Writes `holder` as the lock of `date`, as if it had taken it.
    async fn plant(root: &Root, date: NaiveDate, holder: &Holder) {
        root.write(&lock_path(date), serde_json::to_vec(holder).unwrap())
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn a_second_run_of_the_same_date_is_refused_until_the_first_releases() {
        let (_dir, root, date) = temp_root();
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
        let (_dir, root, date) = temp_root();
        plant(&root, date, &dead_holder("dead")).await;
        RunLock::acquire(&root, date, "alive").await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 8)]
    async fn of_many_starters_over_an_abandoned_lock_exactly_one_takes_it() {
        let (_dir, root, date) = temp_root();
        for round in 0..40 {
            plant(&root, date, &dead_holder(&format!("dead-{round}"))).await;
            let starters: Vec<_> = (0..8)
                .map(|i| {
                    let root = root.clone();
                    tokio::spawn(async move {
                        RunLock::acquire(&root, date, &format!("run-{round}-{i}")).await
                    })
                })
                .collect();
            let mut winners = Vec::new();
            for (i, s) in starters.into_iter().enumerate() {
                match s.await.unwrap() {
                    Ok(lock) => winners.push((i, lock)),
                    Err(e) => assert_eq!(e.exit_code(), 6, "{e}"),
                }
            }
            assert_eq!(
                winners.len(),
                1,
                "round {round}: {} runs took the lock",
                winners.len()
            );
            let (i, lock) = winners.pop().unwrap();
            verify_held(&root, date, &format!("run-{round}-{i}"))
                .await
                .unwrap();
            lock.release().await;
        }
    }

    /// A run killed while holding the lock, then the next run killed inside its take-over
    /// (after its marker, before it replaced the lock): the third run takes the lock at once.
    #[tokio::test]
    async fn a_take_over_killed_halfway_blocks_nothing() {
        let (_dir, root, date) = temp_root();
        let first = dead_holder("killed-holding");
        plant(&root, date, &first).await;
        let stale = root.read(&lock_path(date)).await.unwrap().unwrap();
        let taker = serde_json::to_vec(&dead_holder("killed-taking-over")).unwrap();
        // What the killed taker left: its marker, and the lock still the first run's.
        let marker = takeover_marker(&lock_path(date), &stale);
        assert!(root.create_new(&marker, taker).await.unwrap());
        let lock = RunLock::acquire(&root, date, "third").await.unwrap();
        verify_held(&root, date, "third").await.unwrap();
        assert!(root.read(&marker).await.unwrap().is_none());
        lock.release().await;
    }

    #[tokio::test]
    async fn a_run_whose_lock_was_taken_over_cannot_commit() {
        let (_dir, root, date) = temp_root();
        let _first = RunLock::acquire(&root, date, "slow").await.unwrap();
        verify_held(&root, date, "slow").await.unwrap();
        // The slow run's lock looks abandoned (as after six hours) and another run takes it.
        let expired = Holder {
            run_id: "slow".into(),
            host: hostname(),
            pid: std::process::id(),
            acquired_at: (Utc::now() - chrono::Duration::hours(7)).to_rfc3339(),
        };
        plant(&root, date, &expired).await;
        let _second = RunLock::acquire(&root, date, "fresh").await.unwrap();
        let refused = verify_held(&root, date, "slow").await.unwrap_err();
        assert_eq!(refused.exit_code(), 6);
        assert!(
            refused.to_string().contains("run fresh took it over"),
            "{refused}"
        );
    }
}
