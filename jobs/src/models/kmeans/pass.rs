//! How one `kmeans_step` pass is run: as SQL (planned anew each pass, which is what a Ballista
//! cluster needs), or, in this process, on a physical plan of the points' scan built once per
//! fit.
//!
//! Planning `SELECT kmeans_step(30 columns) FROM points` took 0.74 ms per pass on this machine
//! (0.28 ms parsing and logical optimisation, 0.46 ms physical planning), more than half of a
//! pass over 100k points on two cores. Only the aggregate's centroids change between passes, so
//! in process the scan is planned once and each pass wraps it in the same two aggregation
//! steps the planner would make (partial per partition, merged, final), built directly.

use std::sync::Arc;

use arrow::record_batch::RecordBatch;
use datafusion::logical_expr::AggregateUDF;
use datafusion::physical_expr::aggregate::AggregateExprBuilder;
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_plan::aggregates::{AggregateExec, AggregateMode, PhysicalGroupBy};
use datafusion::physical_plan::coalesce_partitions::CoalescePartitionsExec;
use datafusion::physical_plan::{ExecutionPlan, PhysicalExpr};
use datafusion::prelude::SessionContext;
use tokio::sync::OnceCell;

use crate::error::Result;

/// The value of a pass's one row and column: the step aggregate's merged state, a list of
/// doubles (`kmeans_step`, `logistic_step`); `None` when the pass saw no rows.
pub fn state_vector(batches: &[RecordBatch]) -> Option<Vec<f64>> {
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::Float64Type;
    batches
        .iter()
        .find(|b| b.num_rows() > 0 && b.column(0).is_valid(0))
        .map(|b| {
            b.column(0)
                .as_list::<i32>()
                .value(0)
                .as_primitive::<Float64Type>()
                .values()
                .to_vec()
        })
}

/// Runs the aggregation passes of one fit, which all read the same columns of the same table.
#[derive(Debug, Clone, Default)]
pub struct StepRunner {
    /// The scan of the fit's columns, planned on the first pass; `None` when every pass goes
    /// through SQL (a Ballista session, whose planner distributes the query).
    scan: Option<Arc<OnceCell<Arc<dyn ExecutionPlan>>>>,
}

impl StepRunner {
    /// Passes that, with `in_process`, reuse the scan's plan (only valid when the session runs
    /// queries in this process).
    pub fn new(in_process: bool) -> Self {
        Self {
            scan: in_process.then(|| Arc::new(OnceCell::new())),
        }
    }

    /// `udaf` over `table`'s `args` (comma-separated; the same on every pass of a runner): one
    /// row, one column.
    pub async fn run(
        &self,
        ctx: &SessionContext,
        udaf: AggregateUDF,
        table: &str,
        args: &str,
    ) -> Result<Vec<RecordBatch>> {
        let Some(scan) = &self.scan else {
            ctx.register_udaf(udaf.clone());
            let sql = format!("SELECT {}({args}) FROM {table}", udaf.name());
            return Ok(ctx.sql(&sql).await?.collect().await?);
        };
        let scan = scan
            .get_or_try_init(|| async {
                let sql = format!("SELECT {args} FROM {table}");
                ctx.sql(&sql).await?.create_physical_plan().await
            })
            .await?;
        let plan = aggregate_all(Arc::clone(scan), udaf)?;
        Ok(datafusion::physical_plan::collect(plan, ctx.task_ctx()).await?)
    }
}

/// `udaf` over every column of `input`, as DataFusion plans an aggregation without groups:
/// partial states per partition, merged into one partition, then the final value.
fn aggregate_all(
    input: Arc<dyn ExecutionPlan>,
    udaf: AggregateUDF,
) -> datafusion::common::Result<Arc<dyn ExecutionPlan>> {
    let schema = input.schema();
    let args: Vec<Arc<dyn PhysicalExpr>> = schema
        .fields()
        .iter()
        .enumerate()
        .map(|(i, f)| Arc::new(Column::new(f.name(), i)) as Arc<dyn PhysicalExpr>)
        .collect();
    let name = udaf.name().to_string();
    let aggregate = Arc::new(
        AggregateExprBuilder::new(Arc::new(udaf), args)
            .schema(Arc::clone(&schema))
            .alias(name)
            .build()?,
    );
    let partial = AggregateExec::try_new(
        AggregateMode::Partial,
        PhysicalGroupBy::default(),
        vec![Arc::clone(&aggregate)],
        vec![None],
        input,
        Arc::clone(&schema),
    )?;
    let merged = CoalescePartitionsExec::new(Arc::new(partial));
    Ok(Arc::new(AggregateExec::try_new(
        AggregateMode::Final,
        PhysicalGroupBy::default(),
        vec![aggregate],
        vec![None],
        Arc::new(merged),
        schema,
    )?))
}
