//! The stages of the nightly job that are Rust rather than SQL: the model drivers, and the
//! metrics every stage reports.

pub mod recommendations;
pub mod segments;

use std::time::Duration;

use serde::Serialize;

/// What one stage did: reported on the terminal and recorded in the run manifest.
#[derive(Debug, Clone, Serialize)]
pub struct StageMetrics {
    /// Stage name (the table it produced, or the model).
    pub name: String,
    /// Rows produced.
    pub rows: u64,
    /// Wall time in seconds.
    pub seconds: f64,
}

impl StageMetrics {
    /// Metrics of a finished stage.
    pub fn new(name: &str, rows: u64, elapsed: Duration) -> Self {
        Self {
            name: name.to_string(),
            rows,
            seconds: elapsed.as_secs_f64(),
        }
    }
}
