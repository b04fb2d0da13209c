//! The one place a DataFusion session is built, so every context (local runs, Ballista clients,
//! and the Ballista scheduler and executors) has Persona's functions and codecs registered the
//! same way.

use std::str::FromStr;
use std::sync::Arc;

use ballista::prelude::{SessionConfigExt, SessionContextExt};
use datafusion::execution::memory_pool::FairSpillPool;
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::execution::{SessionState, SessionStateBuilder};
use datafusion::prelude::{SessionConfig, SessionContext};

use crate::config::{ExecutionConfig, PipelineConfig, StorageConfig};
use crate::engine::cluster::codec::codecs;
use crate::engine::storage::s3;
use crate::error::{PipelineError, Result};

/// Where queries run.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Engine {
    /// In this process, with DataFusion.
    #[default]
    Local,
    /// An in-process Ballista scheduler and executor (exercises the distributed path).
    Standalone,
    /// A Ballista cluster: the scheduler's `host:port`.
    Ballista(String),
}

impl FromStr for Engine {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "local" => Ok(Engine::Local),
            "standalone" => Ok(Engine::Standalone),
            other => match other.strip_prefix("ballista://") {
                Some(addr) if !addr.is_empty() => Ok(Engine::Ballista(addr.to_string())),
                _ => Err(format!(
                    "'{other}' is not an engine: expected local, standalone or ballista://HOST:PORT"
                )),
            },
        }
    }
}

impl std::fmt::Display for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Engine::Local => write!(f, "local"),
            Engine::Standalone => write!(f, "standalone"),
            Engine::Ballista(addr) => write!(f, "ballista://{addr}"),
        }
    }
}

/// A session on `engine` with Persona's UDFs and UDAFs registered, and `s3://` URLs resolved
/// with the `[storage]` settings.
pub async fn new_context(engine: &Engine, pipeline: &PipelineConfig) -> Result<SessionContext> {
    let (cfg, storage) = (&pipeline.execution, &pipeline.storage);
    let mut ctx = match engine {
        Engine::Local => SessionContext::new_with_state(local_state(cfg, storage)?),
        Engine::Standalone => {
            SessionContext::standalone_with_state(ballista_state(cfg, storage)?).await?
        }
        Engine::Ballista(addr) => {
            probe_scheduler(addr).await?;
            SessionContext::remote_with_state(
                &format!("df://{addr}"),
                ballista_state(cfg, storage)?,
            )
            .await
            .map_err(|e| {
                PipelineError::Storage(format!("cannot use the Ballista scheduler at {addr}: {e}"))
            })?
        }
    };
    // Ballista replaces the function registry of the state it is given: register on the
    // context it returns (again).
    persona_udfs::register_all(&mut ctx)?;
    Ok(ctx)
}

/// Fails early, in one line, when nothing listens at the scheduler's address (Ballista itself
/// would only notice at the first query, deep inside a transport error).
async fn probe_scheduler(addr: &str) -> Result<()> {
    let connect = tokio::net::TcpStream::connect(addr);
    match tokio::time::timeout(std::time::Duration::from_secs(10), connect).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(PipelineError::Storage(format!(
            "cannot reach the Ballista scheduler at {addr} ({e}); start one with `persona scheduler` or check --engine"
        ))),
        Err(_) => Err(PipelineError::Storage(format!(
            "the Ballista scheduler at {addr} did not answer within 10 s"
        ))),
    }
}

/// Persona's settings, then the configuration's `[execution.datafusion]` ones (checked when the
/// configuration was loaded, so an error here names what DataFusion refused).
fn session_config(cfg: &ExecutionConfig, base: SessionConfig) -> Result<SessionConfig> {
    let mut config = base.with_information_schema(true);
    if cfg.target_partitions > 0 {
        config = config.with_target_partitions(cfg.target_partitions);
    }
    cfg.apply_datafusion(&mut config)
        .map_err(|e| PipelineError::Config(format!("execution.datafusion.{e}")))?;
    Ok(config)
}

/// The runtime of a session: its object stores resolve `s3://` URLs with `storage`;
/// `temp_dir` is where spills go (executors pass their work dir); with `memory_limit`, the
/// queries share that many bytes (a fair spill pool: aggregations and sorts spill to the
/// temporary folder rather than grow past their share).
pub fn runtime_env(
    storage: &StorageConfig,
    temp_dir: Option<&str>,
    memory_limit: Option<usize>,
) -> Result<Arc<RuntimeEnv>> {
    let mut builder =
        RuntimeEnvBuilder::new().with_object_store_registry(s3::object_store_registry(storage));
    if let Some(dir) = temp_dir {
        builder = builder.with_temp_file_path(dir);
    }
    if let Some(bytes) = memory_limit {
        builder = builder.with_memory_pool(Arc::new(FairSpillPool::new(bytes)));
    }
    Ok(builder.build_arc()?)
}

/// The state of a local session.
pub fn local_state(cfg: &ExecutionConfig, storage: &StorageConfig) -> Result<SessionState> {
    let config = session_config(cfg, SessionConfig::new())?;
    with_functions(
        SessionStateBuilder::new()
            .with_config(config)
            .with_runtime_env(runtime_env(storage, None, cfg.memory_limit_bytes())?)
            .with_default_features()
            .build(),
    )
}

/// The state of a Ballista client, scheduler or executor: Ballista's configuration, Persona's
/// codecs and functions.
pub fn ballista_state(cfg: &ExecutionConfig, storage: &StorageConfig) -> Result<SessionState> {
    let runtime = runtime_env(storage, None, None)?;
    let (logical_codec, physical_codec) = codecs(Arc::clone(&runtime));
    let mut config = session_config(cfg, SessionConfig::new_with_ballista())?
        .with_ballista_logical_extension_codec(logical_codec)
        .with_ballista_physical_extension_codec(physical_codec);
    // A UNION ALL of inputs partitioned alike becomes an InterleaveExec, which the scheduler
    // cannot rebuild once their stages are resolved into shuffle readers ("Can not create
    // InterleaveExec: new children can not be interleaved"): the job then never finishes
    // (sql/32_propensity_evaluation.sql hung so). Plain unions run the same rows.
    config.options_mut().optimizer.prefer_existing_union = true;
    with_functions(
        SessionStateBuilder::new()
            .with_config(config)
            .with_runtime_env(runtime)
            .with_default_features()
            .build(),
    )
}

fn with_functions(mut state: SessionState) -> Result<SessionState> {
    persona_udfs::register_all(&mut state)?;
    Ok(state)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engines_parse() {
        assert_eq!("local".parse::<Engine>(), Ok(Engine::Local));
        assert_eq!("standalone".parse::<Engine>(), Ok(Engine::Standalone));
        assert_eq!(
            "ballista://127.0.0.1:50050".parse::<Engine>(),
            Ok(Engine::Ballista("127.0.0.1:50050".into()))
        );
        assert!("spark://x".parse::<Engine>().is_err());
        assert!("ballista://".parse::<Engine>().is_err());
    }
}
