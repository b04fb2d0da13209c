//! `persona scheduler` and `persona executor`: Ballista's scheduler and executor processes with
//! everything Persona needs registered: its functions (the same [`persona_udfs::register_all`]
//! as local runs) and its codecs (model functions travel with their models).

use std::net::SocketAddr;
use std::sync::Arc;

use ballista_core::RuntimeProducer;
use ballista_core::registry::BallistaFunctionRegistry;
use ballista_executor::executor_process::{ExecutorProcessConfig, start_executor_process};
use ballista_scheduler::cluster::BallistaCluster;
use ballista_scheduler::config::SchedulerConfig;
use ballista_scheduler::scheduler_process::start_server;
use datafusion::error::DataFusionError;
use datafusion::execution::SessionStateBuilder;
use datafusion::prelude::SessionConfig;

use crate::config::{ExecutionConfig, StorageConfig};
use crate::engine::cluster::codec::codecs;
use crate::engine::session::{ballista_state, runtime_env};
use crate::error::{PipelineError, Result};

/// Where a scheduler listens.
#[derive(Debug, Clone)]
pub struct SchedulerOptions {
    /// Address to bind.
    pub bind_host: String,
    /// gRPC port (clients and executors connect here).
    pub port: u16,
    /// Seconds without a heartbeat before an executor is declared lost.
    pub executor_timeout_seconds: u64,
}

/// Runs a scheduler until the process is stopped.
pub async fn run_scheduler(opts: &SchedulerOptions) -> Result<()> {
    let addr: SocketAddr = format!("{}:{}", opts.bind_host, opts.port)
        .parse()
        .map_err(|e| {
            PipelineError::Config(format!(
                "bad scheduler address {}:{}: {e}",
                opts.bind_host, opts.port
            ))
        })?;
    // Model factors stored by the driver are read with the same S3 settings.
    let (logical_codec, physical_codec) =
        codecs(runtime_env(&StorageConfig::default(), None, None)?);
    let config = SchedulerConfig {
        bind_host: opts.bind_host.clone(),
        bind_port: opts.port,
        external_host: opts.bind_host.clone(),
        override_session_builder: Some(Arc::new(|config: SessionConfig| {
            // S3 from the standard AWS variables of the scheduler's environment: it lists the
            // files of the tables it plans.
            let runtime = runtime_env(&StorageConfig::default(), None, None)
                .map_err(|e| DataFusionError::External(Box::new(e)))?;
            let state = ballista_core::utils::default_session_builder(config)?;
            let mut state = SessionStateBuilder::new_from_existing(state)
                .with_runtime_env(runtime)
                .build();
            persona_udfs::register_all(&mut state)?;
            Ok(state)
        })),
        override_logical_codec: Some(logical_codec),
        override_physical_codec: Some(physical_codec),
        executor_timeout_seconds: opts.executor_timeout_seconds,
        expire_dead_executor_interval_seconds: opts.executor_timeout_seconds.clamp(1, 15),
        no_executors_grace_period_seconds: opts.executor_timeout_seconds,
        ..Default::default()
    };
    let cluster = BallistaCluster::new_from_config(&config)
        .await
        .map_err(|e| PipelineError::Internal(format!("scheduler cluster state: {e}")))?;
    tracing::info!(%addr, "Persona scheduler listening");
    start_server(cluster, addr, Arc::new(config))
        .await
        .map_err(|e| PipelineError::Internal(format!("scheduler on {addr}: {e}")))
}

/// How an executor runs and where its scheduler is.
#[derive(Debug, Clone)]
pub struct ExecutorOptions {
    /// Address to bind.
    pub bind_host: String,
    /// Address the scheduler and other executors reach this one at (default: `bind_host`).
    pub external_host: Option<String>,
    /// Arrow Flight port (shuffle data).
    pub port: u16,
    /// gRPC port (tasks).
    pub grpc_port: u16,
    /// Scheduler host.
    pub scheduler_host: String,
    /// Scheduler port.
    pub scheduler_port: u16,
    /// Concurrent tasks (default: one per core).
    pub task_slots: Option<usize>,
    /// Folder for shuffle files.
    pub work_dir: Option<String>,
    /// Seconds between heartbeats to the scheduler.
    pub heartbeat_interval_seconds: u64,
    /// Behave like a stock Ballista executor: none of Persona's functions or codecs.
    pub stock: bool,
}

/// Runs an executor until the process is stopped.
pub async fn run_executor(opts: &ExecutorOptions) -> Result<()> {
    let storage = StorageConfig::default();
    let state = ballista_state(&ExecutionConfig::default(), &storage)?;
    // Tasks read and write `s3://` with the standard AWS variables of the executor's
    // environment; spills go to the work dir, as with Ballista's own executor.
    let temp_dir = opts.work_dir.clone();
    let (logical_codec, physical_codec) = codecs(runtime_env(&storage, None, None)?);
    let runtime_producer: RuntimeProducer = Arc::new(move |_: &SessionConfig| {
        runtime_env(&storage, temp_dir.as_deref(), None)
            .map_err(|e| DataFusionError::External(Box::new(e)))
    });
    let mut config = ExecutorProcessConfig {
        bind_host: opts.bind_host.clone(),
        external_host: Some(
            opts.external_host
                .clone()
                .unwrap_or_else(|| opts.bind_host.clone()),
        ),
        port: opts.port,
        grpc_port: opts.grpc_port,
        scheduler_host: opts.scheduler_host.clone(),
        scheduler_port: opts.scheduler_port,
        scheduler_connect_timeout_seconds: 30,
        executor_heartbeat_interval_seconds: opts.heartbeat_interval_seconds,
        work_dir: opts.work_dir.clone(),
        override_function_registry: Some(Arc::new(BallistaFunctionRegistry::from(&state))),
        override_runtime_producer: Some(runtime_producer),
        override_logical_codec: Some(logical_codec),
        override_physical_codec: Some(physical_codec),
        ..Default::default()
    };
    if opts.stock {
        config.override_function_registry = None;
        config.override_logical_codec = None;
        config.override_physical_codec = None;
    }
    if let Some(slots) = opts.task_slots {
        config.vcores = slots;
    }
    tracing::info!(port = opts.port, scheduler = %format!("{}:{}", opts.scheduler_host, opts.scheduler_port), "Persona executor starting");
    start_executor_process(Arc::new(config))
        .await
        .map_err(|e| PipelineError::Internal(format!("executor: {e}")))
}
