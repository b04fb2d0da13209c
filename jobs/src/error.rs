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
    /// A stage ran longer than `[execution] stage_timeout_seconds` (on a Ballista cluster: most
    /// likely a lost executor, which Ballista does not always recover from).
    #[error("[TIMEOUT] {0}")]
    Timeout(String),
    /// The Ballista cluster failed the job: a process was lost or lacks Persona's functions.
    #[error("[CLUSTER] {0}")]
    Cluster(String),
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

    /// Rewrites a query error that came back from a Ballista cluster (where it arrives as the
    /// text of a failed job, several layers deep) as one line that says which process failed
    /// and what to check. Other errors are returned as they are.
    pub fn explained(self) -> Self {
        match self {
            PipelineError::Stage { stage, source } => PipelineError::Stage {
                stage,
                source: Box::new(source.explained()),
            },
            PipelineError::DataFusion(e) => {
                let text = e.to_string();
                explain_disk_full(&text)
                    .or_else(|| explain_cluster_failure(&text))
                    .unwrap_or(PipelineError::DataFusion(e))
            }
            // A storage error too: a work table kept in memory leaves the first write of a
            // night to the object store or to Persona's own Parquet writer.
            other @ (PipelineError::Parquet(_)
            | PipelineError::Arrow(_)
            | PipelineError::Internal(_)
            | PipelineError::Storage(_)) => explain_disk_full(&other.to_string()).unwrap_or(other),
            other => other,
        }
    }

    /// Whether the data of an input could not be decoded (a damaged page, a dictionary key out
    /// of range): an error of the Parquet or Arrow readers, which does not name the file.
    pub fn is_decoding_error(&self) -> bool {
        match self.root() {
            PipelineError::DataFusion(e) => is_input_error(e),
            PipelineError::Parquet(_) | PipelineError::Arrow(_) => true,
            _ => false,
        }
    }

    /// The innermost error (inside any `Stage` wrapping).
    pub fn root(&self) -> &PipelineError {
        match self {
            PipelineError::Stage { source, .. } => source.root(),
            other => other,
        }
    }

    /// The process exit code for this error (documented in docs/operations.md).
    pub fn exit_code(&self) -> u8 {
        match self.root() {
            PipelineError::BadInput(_) => 3,
            PipelineError::Config(_) => 4,
            PipelineError::Storage(_) | PipelineError::Parquet(_) => 5,
            PipelineError::Locked(_) => 6,
            PipelineError::GateFailed(_) => 7,
            PipelineError::Timeout(_) | PipelineError::Cluster(_) => 8,
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

/// The one-line error for the text of a failed Ballista job, when it is one of the failures an
/// operator can fix: a lost process, an executor without Persona's functions, an executor that
/// cannot reach the object store.
fn explain_cluster_failure(text: &str) -> Option<PipelineError> {
    let after = |marker: &str| -> Option<String> {
        let rest = &text[text.find(marker)? + marker.len()..];
        Some(
            rest.chars()
                .take_while(|c| !matches!(c, '"' | '\\' | ' ' | ')'))
                .collect::<String>()
                .trim_end_matches([':', ','])
                .to_string(),
        )
    };
    if let Some(address) = after("Error connecting to Ballista scheduler or executor at ") {
        let address = address.trim_start_matches("http://");
        return Some(PipelineError::Cluster(format!(
            "lost contact with the Ballista process at {address} during the job: check that the scheduler and every `persona executor` are running (an executor that died takes its shuffle data with it), then rerun; nothing was published"
        )));
    }
    if let Some(executor) = after("Shuffle fetch partition error from Executor ") {
        return Some(PipelineError::Cluster(format!(
            "could not fetch shuffle data from Ballista executor {executor}: it has stopped or is unreachable (an executor that dies takes its shuffle data with it); check that every `persona executor` is running, then rerun; nothing was published"
        )));
    }
    for kind in ["UDF", "UDAF"] {
        if let Some(name) = after(&format!("There is no {kind} named \\\""))
            .or_else(|| after(&format!("There is no {kind} named \"")))
        {
            return Some(PipelineError::Cluster(format!(
                "a Ballista executor does not know Persona's function '{name}': run `persona executor` (the same version as this client) on every executor, not a stock Ballista executor; nothing was published"
            )));
        }
    }
    if text.contains("task could not be prepared or was rejected by executor") {
        return Some(PipelineError::Cluster(
            "a Ballista executor could not prepare a task of the job: most often it does not know Persona's functions (a stock Ballista executor, or `persona executor` of another version), which its log names ('There is no UDF named ...'); run `persona executor` of this version on every executor; nothing was published".into(),
        ));
    }
    let ballista_job = text.contains("Fail to execute query") || text.contains("Job failed due to");
    let storage = [
        "Object Store error",
        "Generic S3 error",
        "Generic LocalFileSystem error",
    ];
    if ballista_job && storage.iter().any(|m| text.contains(m)) {
        let path = after("Failed to fetch metadata for file ").or_else(|| after("path "));
        let what = path.map_or(String::new(), |p| format!(" ({p})"));
        return Some(PipelineError::Storage(format!(
            "a Ballista executor could not read or write the object store{what}: every executor builds its S3 client from its own environment (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_ALLOW_HTTP); check them on the executors, and that the endpoint is reachable from them; nothing was published"
        )));
    }
    // After the storage errors, which can break a stream too: an executor that dies while
    // another task streams its shuffle output breaks the stream mid-body rather than refusing
    // the connection.
    let broken_stream = ["h2 protocol error", "broken pipe", "Connection reset"];
    if ballista_job && broken_stream.iter().any(|m| text.contains(m)) {
        return Some(PipelineError::Cluster(
            "a Ballista executor stopped while the job was reading its shuffle data (the stream broke mid-transfer): check that every `persona executor` is running (an executor that died takes its shuffle data with it), then rerun; nothing was published".into(),
        ));
    }
    None
}

/// A full disk, whichever layer reported it (DataFusion's writer, the Parquet writer, the object
/// store): a storage error (exit 5) that says so, not a failed query.
fn explain_disk_full(text: &str) -> Option<PipelineError> {
    let what = ["No space left on device", "Disk quota exceeded"]
        .into_iter()
        .find(|m| text.contains(m))?;
    Some(PipelineError::Storage(format!(
        "{what}: the disk filled up while the run wrote its tables ({}); free space under the \
         output root (the run's work area is OUTPUT/_work/; with an S3 output, $TMPDIR), then \
         rerun; nothing was published",
        first_line(text)
    )))
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

    fn explained(text: &str) -> PipelineError {
        PipelineError::DataFusion(DataFusionError::Execution(text.into()))
            .in_stage("als")
            .explained()
    }

    #[test]
    fn a_shuffle_stream_broken_by_a_dying_executor_is_a_cluster_failure() {
        let text = r#"Execution error: Job 038HF2KRTP000 failed: Job failed due to stage 1 failed: Task failed due to runtime execution error: DataFusionError(Shared(External(ArrowError(IpcError("Arrow error: Ipc error: code: 'Unknown error', message: \"h2 protocol error: error reading a body from connection\", source: hyper::Error(Body, Error { kind: Io(Custom { kind: BrokenPipe, error: \"stream closed because of a broken pipe\" }) })")))))"#;
        let e = PipelineError::DataFusion(DataFusionError::Execution(text.into()))
            .in_stage("als")
            .explained();
        assert_eq!(e.exit_code(), 8, "{e}");
        assert!(e.to_string().contains("persona executor"), "{e}");
    }

    #[test]
    fn cluster_failures_are_explained_in_one_line() {
        let lost = explained(
            "GrpcConnectionError(\"Error connecting to Ballista scheduler or executor at http://127.0.0.1:33353: tonic::transport::Error(Transport, ...)\")",
        );
        assert_eq!(lost.exit_code(), 8);
        assert!(
            lost.to_string()
                .contains("[CLUSTER] lost contact with the Ballista process at 127.0.0.1:33353"),
            "{lost}"
        );

        let fetch = explained(
            "External error: Shuffle fetch partition error from Executor 027738c1-ec07-4ba9-b4a0-a7c97f08fd3f, map_stage 1, map_partition 1, error desc: Status { code: Unavailable, message: \"tcp connect error\" }",
        );
        assert_eq!(fetch.exit_code(), 8);
        assert!(
            fetch.to_string().contains(
                "[CLUSTER] could not fetch shuffle data from Ballista executor 027738c1-ec07-4ba9-b4a0-a7c97f08fd3f: "
            ),
            "{fetch}"
        );

        let udf = explained(
            "Fail to execute query due to FailedJob { error: \"Task failed: Error during planning: There is no UDF named \\\"is_crawler\\\" in the TaskContext\" }",
        );
        assert!(
            udf.to_string()
                .contains("does not know Persona's function 'is_crawler'"),
            "{udf}"
        );
        let rejected = explained(
            "Job 038GB6ASZR000 failed: task could not be prepared or was rejected by executor",
        );
        assert!(
            rejected.to_string().contains("stock Ballista executor"),
            "{rejected}"
        );

        let bucket = explained(
            "Fail to execute query due to FailedJob { error: \"Object Store error: Generic S3 error: Error performing GET http://127.0.0.1:1/b/x.parquet\" }",
        );
        assert_eq!(bucket.exit_code(), 5);
        assert!(bucket.to_string().contains("AWS_ENDPOINT_URL"), "{bucket}");

        let other = explained("Arrow error: something else");
        assert_eq!(other.exit_code(), 1);
    }
}
