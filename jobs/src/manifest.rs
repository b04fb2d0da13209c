//! The run manifest: what a run read, did and published, written as
//! `OUTPUT/_runs/dt=<date>/manifest.json` after the tables. Writing it commits the night: its
//! `published` map is where readers find each table ([`crate::engine::commit`]).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::config::PipelineConfig;
use crate::engine::commit::Replaced;
use crate::engine::progress::StageMetrics;
use crate::gates::{DropCount, GateResult};
use crate::input::SourceReport;

/// The rows the night's queries read, against the rows of its input: a measure of the passes
/// it makes over its data, which a design that fuses stages brings down.
#[derive(Debug, Clone, Serialize)]
pub struct Passes {
    /// Rows read by the stages that read only input sources (staging the raw web logs, app
    /// events and CRM export).
    pub input_rows: u64,
    /// Rows read by every stage whose queries were counted (`stages[].rows_read`), those
    /// included; the Rust model stages' own queries (ALS and K-Means iterations) are not.
    pub rows_read: u64,
    /// `rows_read / input_rows`.
    pub per_input_row: f64,
}

/// Everything about one run.
#[derive(Debug, Clone, Serialize)]
pub struct Manifest {
    /// Unique id of the run.
    pub run_id: String,
    /// The run date (`--date`).
    pub date: String,
    /// Window start (inclusive) and end (inclusive), as dates.
    pub window: (String, String),
    /// Input root.
    pub input: String,
    /// Output root.
    pub output: String,
    /// Persona version.
    pub version: String,
    /// Start and end, RFC 3339.
    pub started_at: String,
    /// End of the run (before the commit).
    pub finished_at: String,
    /// Wall time in seconds.
    pub seconds: f64,
    /// Input sources found.
    pub inputs: Vec<SourceReport>,
    /// Every stage with rows and seconds, in run order.
    pub stages: Vec<StageMetrics>,
    /// How many times the night's queries read a row, per row of its input (in this process;
    /// absent on a cluster, whose executors keep the scan metrics).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passes: Option<Passes>,
    /// Rows per published table.
    pub tables: BTreeMap<String, u64>,
    /// Each published table's folder, relative to the output root
    /// (`<table>/dt=<date>/run=<run_id>`): the night readers see.
    pub published: BTreeMap<String, String>,
    /// Earlier runs of this date whose folders stay readable for `[output]
    /// keep_replaced_hours` after this night replaced them (or a night they were kept by).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replaced: Vec<Replaced>,
    /// Data-quality counters.
    pub data_quality: Vec<DropCount>,
    /// Every data-quality gate with its threshold and measured value.
    pub gates: Vec<GateResult>,
    /// Each model stage's report under its key, for the stages that ran: `segments` (the
    /// segmentation), `recommendations` (the ALS fit), `evaluation` (ALS against popularity on
    /// the holdout days), `propensity` (the purchase model's fit, calibration and metrics).
    #[serde(flatten)]
    pub reports: BTreeMap<String, serde_json::Value>,
    /// The effective configuration.
    pub config: PipelineConfig,
}
