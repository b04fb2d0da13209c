//! The stages of the night: the registry that lists them ([`registry`]), the loop that runs
//! them ([`night`]) or plans them ([`dry_run`]), the model drivers that are Rust rather than
//! SQL, and the metrics every stage reports.

pub mod continuity;
pub mod dry_run;
pub mod interests;
pub mod night;
pub mod recommendations;
pub mod registry;
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
    /// Parquet bytes its queries scanned (after pruning and projection), when they ran in this
    /// process; with `seconds`, how close a stage runs to the speed of reading its input.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes_read: Option<u64>,
}

impl StageMetrics {
    /// Metrics of a finished stage.
    pub fn new(name: &str, rows: u64, elapsed: Duration) -> Self {
        Self {
            name: name.to_string(),
            rows,
            seconds: elapsed.as_secs_f64(),
            bytes_read: None,
        }
    }
}
