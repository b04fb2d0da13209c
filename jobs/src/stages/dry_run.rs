//! `persona run --dry-run`: validates the inputs and the configuration, then walks the night's
//! stages and prints each one's plan without computing or writing a table.
//!
//! Each stage's [`super::unit::Unit::plan`] does it: an SQL stage is planned (`EXPLAIN`) and its
//! table registered as an empty table of the schema it would have, so the next stage plans
//! against it; the model stages register their work tables and functions the same way, empty.
//! Only Parquet footers of the inputs are read.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

use arrow::array::AsArray;
use arrow::datatypes::SchemaRef;
use datafusion::catalog::MemTable;
use datafusion::prelude::{DataFrame, SessionContext};
use persona_udfs::ml::Factors;

use super::night::Night;
use super::registry::Stage;
use crate::error::{PipelineError, Result};
use crate::models::als;

impl Night<'_> {
    /// Plans every stage of the night's mode, in order; returns the plans as text.
    pub async fn dry_run(&mut self) -> Result<String> {
        let mut out = String::new();
        for stage in self.stages_to_run() {
            let plan = stage
                .unit
                .plan(stage, self)
                .await
                .map_err(|e| e.in_stage(stage.name))?;
            let _ = writeln!(out, "== {} ({})\n{plan}", stage.name, stage.part);
        }
        Ok(out)
    }

    /// Plans `stage`'s SQL file with `params` and registers its table, empty.
    pub(super) async fn plan_sql(
        &self,
        stage: &Stage,
        params: &BTreeMap<&str, String>,
    ) -> Result<String> {
        let text = stage.render(params)?;
        let df = self.ctx.sql(&text).await?;
        let plan = explain(&df).await?;
        register_empty(self.ctx, stage.name, df.schema().as_arrow().clone().into())?;
        Ok(plan)
    }

    /// Registers an empty factor table and the top-N functions over a model with no items.
    pub(super) async fn register_empty_model(&self, table: &str, id_col: &str) -> Result<()> {
        register_empty(self.ctx, table, als::factors_schema(id_col))?;
        let rank = self.config.recommendations.rank;
        let none = Factors::new(0, rank, vec![])
            .ok_or_else(|| PipelineError::Internal("an empty factor matrix".into()))?;
        als::register_top_n(self.ctx, self.work, &none, vec![], 1).await
    }
}

/// `EXPLAIN` of a planned query, as text: each plan type, then its plan indented.
pub(super) async fn explain(df: &DataFrame) -> Result<String> {
    let mut text = String::new();
    for batch in df.clone().explain(false, false)?.collect().await? {
        let (types, plans) = (
            batch.column(0).as_string::<i32>(),
            batch.column(1).as_string::<i32>(),
        );
        for row in 0..batch.num_rows() {
            let _ = writeln!(text, "{}:", types.value(row));
            for line in plans.value(row).lines() {
                let _ = writeln!(text, "    {line}");
            }
        }
    }
    Ok(text)
}

/// Registers `name` as an empty table of `schema`, replacing any earlier one.
pub(super) fn register_empty(ctx: &SessionContext, name: &str, schema: SchemaRef) -> Result<()> {
    let table = MemTable::try_new(schema, vec![vec![]])?;
    ctx.deregister_table(name)?;
    ctx.register_table(name, Arc::new(table))?;
    Ok(())
}
