//! Progress reporting: a spinner per stage on a terminal, plain `tracing` log lines otherwise
//! (cron, Airflow and Kubernetes capture stderr).

use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

use serde::Serialize;

/// Reports stage starts and ends.
#[derive(Debug)]
pub struct Progress {
    interactive: bool,
    bar: Option<ProgressBar>,
    clock: StageClock,
}

/// The stage running now and since when, shared with the stage watchdog.
#[derive(Debug, Clone, Default)]
pub struct StageClock(Arc<Mutex<Option<(String, Instant)>>>);

impl StageClock {
    /// A clock whose stage `stage` starts now.
    pub fn started(stage: &str) -> Self {
        let clock = Self::default();
        clock.set(Some(stage));
        clock
    }

    /// The running stage and how long it has run.
    pub fn current(&self) -> Option<(String, Duration)> {
        let guard = self.0.lock().ok()?;
        guard.as_ref().map(|(s, t)| (s.clone(), t.elapsed()))
    }

    fn set(&self, stage: Option<&str>) {
        if let Ok(mut guard) = self.0.lock() {
            *guard = stage.map(|s| (s.to_string(), Instant::now()));
        }
    }
}

impl Default for Progress {
    fn default() -> Self {
        Self::new()
    }
}

impl Progress {
    /// Spinners when stderr is a terminal, log lines otherwise.
    pub fn new() -> Self {
        Self {
            interactive: std::io::stderr().is_terminal(),
            bar: None,
            clock: StageClock::default(),
        }
    }

    /// A stage begins.
    pub fn start(&mut self, stage: &str) {
        self.clock.set(Some(stage));
        if self.interactive {
            let bar = ProgressBar::new_spinner();
            if let Ok(style) = ProgressStyle::with_template("  {spinner} {msg} {elapsed}") {
                bar.set_style(style);
            }
            bar.set_message(stage.to_string());
            bar.enable_steady_tick(Duration::from_millis(100));
            self.bar = Some(bar);
        } else {
            tracing::info!(stage, "stage started");
        }
    }

    /// A stage ended.
    pub fn finish(&mut self, m: &StageMetrics) {
        self.clock.set(None);
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
            eprintln!(
                "  ✔ {:<24} {:>12} rows {:>8.2}s",
                m.name,
                group_digits(m.rows),
                m.seconds
            );
        } else {
            tracing::info!(stage = %m.name, rows = m.rows, seconds = m.seconds, "stage finished");
        }
    }

    /// A stage failed: clear the spinner.
    pub fn abandon(&mut self) {
        self.clock.set(None);
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

impl Progress {
    /// A handle on the running stage, for the stage watchdog ([`crate::engine::watchdog`]).
    pub fn clock(&self) -> StageClock {
        self.clock.clone()
    }
}

/// `1234567` → `1,234,567`.
pub fn group_digits(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn groups_digits() {
        assert_eq!(super::group_digits(0), "0");
        assert_eq!(super::group_digits(1234), "1,234");
        assert_eq!(super::group_digits(1234567), "1,234,567");
    }
}

/// What one stage did: reported on the terminal and recorded in the run manifest.
#[derive(Debug, Clone, Serialize)]
pub struct StageMetrics {
    /// Stage name (the table it produced, or the model).
    pub name: String,
    /// Rows produced.
    pub rows: u64,
    /// Wall time in seconds.
    pub seconds: f64,
    /// Parquet bytes its queries scanned (after pruning and projection), when they ran in this
    /// process; with `seconds`, how close a stage runs to the speed of reading its input.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes_read: Option<u64>,
    /// Rows its queries' scans read (of Parquet after pruning, of tables held in memory all),
    /// when they ran in this process: the manifest's `passes` adds them up.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rows_read: Option<u64>,
}

impl StageMetrics {
    /// Metrics of a finished stage.
    pub fn new(name: &str, rows: u64, elapsed: Duration) -> Self {
        Self {
            name: name.to_string(),
            rows,
            seconds: elapsed.as_secs_f64(),
            bytes_read: None,
            rows_read: None,
        }
    }
}
