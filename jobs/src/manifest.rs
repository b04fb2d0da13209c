//! The run manifest: what a run read, did and published, written as
//! `OUTPUT/_runs/dt=<date>/manifest.json` after the tables. Writing it commits the night: its
//! `published` map is where readers find each table ([`crate::commit`]).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::als::AlsReport;
use crate::als::evaluate::EvaluationReport;
use crate::config::PipelineConfig;
use crate::input::SourceReport;
use crate::stages::StageMetrics;
use crate::stages::segments::SegmentsReport;

/// Rows read or dropped, per source and reason (`kept` for rows that went on).
#[derive(Debug, Clone, Serialize)]
pub struct DropCount {
    /// Source table.
    pub source: String,
    /// Drop reason, or `kept`.
    pub reason: String,
    /// Rows.
    pub rows: u64,
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
    /// Rows per published table.
    pub tables: BTreeMap<String, u64>,
    /// Each published table's folder, relative to the output root
    /// (`<table>/dt=<date>/run=<run_id>`): the night readers see.
    pub published: BTreeMap<String, String>,
    /// Data-quality counters.
    pub data_quality: Vec<DropCount>,
    /// Every data-quality gate with its threshold and measured value.
    pub gates: Vec<crate::gates::GateResult>,
    /// Segmentation details.
    pub segments: Option<SegmentsReport>,
    /// ALS details.
    pub recommendations: Option<AlsReport>,
    /// The offline evaluation (ALS against popularity on the holdout days).
    pub evaluation: Option<EvaluationReport>,
    /// The purchase-propensity model: its fit, calibration and holdout metrics.
    pub propensity: Option<crate::propensity::PropensityReport>,
    /// The effective configuration.
    pub config: PipelineConfig,
}
