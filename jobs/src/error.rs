//! Pipeline errors, with the exit code each class maps to.
//!
//! Messages start with a stable `[CODE]` so that alerts can match on them.

use std::path::Path;

use datafusion::error::DataFusionError;

/// Result alias for the pipeline.
pub type Result<T, E = PipelineError> = std::result::Result<T, E>;

/// Everything that can stop a Persona command.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The input violates the contract: missing folder or column, wrong type, corrupt file,
    /// empty window.
    #[error("[BAD_INPUT] {0}")]
    BadInput(String),
    /// The command line or persona.toml is invalid.
    #[error("[BAD_CONFIG] {0}")]
    Config(String),
    /// Reading or writing storage failed.
    #[error("[STORAGE] {0}")]
    Storage(String),
    /// A stage failed; `source` says why.
    #[error("stage {stage} failed: {source}")]
    Stage {
        /// Stage name.
        stage: String,
        /// The cause.
        #[source]
        source: Box<PipelineError>,
    },
    /// A data-quality gate failed: the inputs look wrong enough that publishing would mislead.
    #[error("[GATE] {0}")]
    GateFailed(String),
    /// Another run of the same date holds the output root's lock.
    #[error("[LOCKED] {0}")]
    Locked(String),
    /// SIGINT or SIGTERM stopped the run before it published anything.
    #[error("[INTERRUPTED] {signal} received: the run stopped, nothing was published")]
    Interrupted {
        /// The signal's name.
        signal: &'static str,
        /// 128 + the signal's number.
        exit_code: u8,
    },
    /// An analyst's query is wrong (unknown table or column, bad SQL).
    #[error("[QUERY] {0}")]
    Query(String),
    /// A query failed.
    #[error("[QUERY] {0}")]
    DataFusion(#[from] DataFusionError),
    /// An Arrow kernel failed.
    #[error("[INTERNAL] arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    /// A Parquet file could not be written or read.
    #[error("[STORAGE] parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    /// A bug: an invariant did not hold.
    #[error("[INTERNAL] {0}")]
    Internal(String),
}

impl PipelineError {
    /// An I/O error on `path`.
    pub fn io(path: &Path, e: std::io::Error) -> Self {
        PipelineError::Storage(format!("{}: {e}", path.display()))
    }

    /// Wraps an error with the stage it happened in.
    pub fn in_stage(self, stage: &str) -> Self {
        match self {
            already @ PipelineError::Stage { .. } => already,
            other => PipelineError::Stage {
                stage: stage.to_string(),
                source: Box::new(other),
            },
        }
    }

    /// The innermost error (inside any `Stage` wrapping).
    pub fn root(&self) -> &PipelineError {
        match self {
            PipelineError::Stage { source, .. } => source.root(),
            other => other,
        }
    }

    /// The process exit code for this error (documented in the README).
    pub fn exit_code(&self) -> u8 {
        match self.root() {
            PipelineError::BadInput(_) => 3,
            PipelineError::Config(_) => 4,
            PipelineError::Storage(_) | PipelineError::Parquet(_) => 5,
            PipelineError::Locked(_) => 6,
            PipelineError::GateFailed(_) => 7,
            PipelineError::Query(_) => 2,
            PipelineError::Interrupted { exit_code, .. } => *exit_code,
            PipelineError::DataFusion(e) if is_storage_error(e) => 5,
            PipelineError::DataFusion(e) if is_input_error(e) => 3,
            _ => 1,
        }
    }
}

/// Whether a query error was caused by the data (a failed cast, a corrupt page) rather than by
/// the pipeline.
fn is_input_error(e: &DataFusionError) -> bool {
    matches!(
        e.find_root(),
        DataFusionError::ParquetError(_) | DataFusionError::ArrowError(_, _)
    )
}

/// The first line of a (possibly multi-line) message, for one-line errors.
pub fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or(text)
}

/// Whether a query failed reading or writing storage.
fn is_storage_error(e: &DataFusionError) -> bool {
    matches!(e.find_root(), DataFusionError::ObjectStore(_))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_the_root_cause() {
        let e = PipelineError::BadInput("x".into()).in_stage("staging");
        assert_eq!(e.exit_code(), 3);
        assert!(
            e.to_string()
                .contains("stage staging failed: [BAD_INPUT] x")
        );
        assert_eq!(PipelineError::Config("c".into()).exit_code(), 4);
        assert_eq!(PipelineError::Storage("s".into()).exit_code(), 5);
        assert_eq!(PipelineError::Internal("i".into()).exit_code(), 1);
    }
}
