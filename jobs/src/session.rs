//! The one place a DataFusion session is built, so every context (local runs, tests, and later
//! the Ballista scheduler and executors) has Persona's functions registered the same way.

use datafusion::execution::SessionStateBuilder;
use datafusion::prelude::{SessionConfig, SessionContext};

use crate::config::ExecutionConfig;
use crate::error::Result;

/// A local session with Persona's UDFs and UDAFs registered.
pub fn new_context(cfg: &ExecutionConfig) -> Result<SessionContext> {
    let mut config = SessionConfig::new().with_information_schema(true);
    if cfg.target_partitions > 0 {
        config = config.with_target_partitions(cfg.target_partitions);
    }
    let state = SessionStateBuilder::new()
        .with_config(config)
        .with_default_features()
        .build();
    let mut ctx = SessionContext::new_with_state(state);
    persona_udfs::register_all(&mut ctx)?;
    Ok(ctx)
}
