//! What `persona kmeans`, `als` and `propensity` share: one Parquet table in, outputs published
//! whole or not at all. [`on_table`] opens the session, registers the input, creates the work
//! area under the output root, runs the command's body as one watched stage and removes the
//! work area, whatever the body returned.

use datafusion::prelude::SessionContext;

use crate::config::PipelineConfig;
use crate::engine::session::{self, Engine};
use crate::engine::storage::Root;
use crate::engine::tables::register_parquet;
use crate::engine::watchdog;
use crate::engine::work::WorkArea;
use crate::error::Result;

/// A command's table: where it is read and published, and the session it is registered in.
pub struct OnTable {
    /// The session, with the input registered as the table the command named.
    pub ctx: SessionContext,
    /// Where the input is read.
    pub input: Root,
    /// Where the outputs are published.
    pub output: Root,
    /// The run's work area, under the output root.
    pub work: WorkArea,
}

/// Where and how a command on one table runs.
#[derive(Debug, Clone, Copy)]
pub struct TableCommand<'a> {
    /// The command (`kmeans`): the work area's prefix and the watchdog's stage name.
    pub name: &'a str,
    /// The input file or folder, local or `s3://`.
    pub input: &'a str,
    /// The output folder, local or `s3://`.
    pub output: &'a str,
    /// The name the input is registered under.
    pub table: &'a str,
    /// Storage and execution settings.
    pub pipeline: &'a PipelineConfig,
    /// Where the queries run.
    pub engine: &'a Engine,
}

impl TableCommand<'_> {
    /// Runs `body` on the registered input under the stage watchdog, then removes the work
    /// area (also when `body` failed or timed out).
    pub async fn run<T>(self, body: impl AsyncFnOnce(&OnTable) -> Result<T>) -> Result<T> {
        let storage = &self.pipeline.storage;
        let (input, output) = (
            Root::parse(self.input, storage)?,
            Root::parse(self.output, storage)?,
        );
        let ctx = session::new_context(self.engine, self.pipeline).await?;
        register_parquet(&ctx, self.table, &input, self.input).await?;
        let local = *self.engine == Engine::Local;
        let work = WorkArea::for_command(&output, self.name, local)
            .await?
            .keeping_tables(&self.pipeline.execution);
        let on = OnTable {
            ctx,
            input,
            output,
            work,
        };
        let result = watchdog::as_one_stage(self.name, self.pipeline, self.engine, body(&on)).await;
        on.work.remove().await;
        result
    }
}
