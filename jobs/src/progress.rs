//! Progress reporting: a spinner per stage on a terminal, plain `tracing` log lines otherwise
//! (cron, Airflow and Kubernetes capture stderr).

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

use crate::stages::StageMetrics;

/// Reports stage starts and ends.
#[derive(Debug)]
pub struct Progress {
    interactive: bool,
    bar: Option<ProgressBar>,
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
        }
    }

    /// Log lines only (tests, `--quiet`).
    pub fn plain() -> Self {
        Self {
            interactive: false,
            bar: None,
        }
    }

    /// A stage begins.
    pub fn start(&mut self, stage: &str) {
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
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
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
