//! Recommendations: implicit-feedback ALS over the staged `interactions`, then top-N per
//! customer.
//!
//! Each half-iteration is one grouped aggregation (`als_half_step`, grouped by the side being
//! solved) over the materialised interactions; the fixed side's factors travel inside the
//! function. The interactions are staged once and re-read every iteration, never re-derived.

use std::sync::Arc;
use std::time::Instant;

use arrow::array::{ArrayRef, AsArray, Int32Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Float32Type, Int32Type, Int64Type, Schema};
use datafusion::logical_expr::{AggregateUDF, ScalarUDF};
use datafusion::prelude::SessionContext;
use persona_udfs::aggregate::AlsHalfStep;
use persona_udfs::lists::{list_type, uniform_list};
use persona_udfs::ml::{AlsModelSide, Factors};
use persona_udfs::scalar::{AlsTopN, TopNModel};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::config::RecommendationsConfig;
use crate::error::{PipelineError, Result};
use crate::work::WorkArea;

/// What the fit did, for the manifest.
#[derive(Debug, Clone, Serialize)]
pub struct AlsReport {
    /// Customers with factors.
    pub users: usize,
    /// Items with factors.
    pub items: usize,
    /// (customer, item) pairs.
    pub interactions: u64,
    /// Iterations run.
    pub iterations: usize,
    /// Seconds per full iteration (both halves).
    pub seconds_per_iteration: Vec<f64>,
}

/// Fits ALS on the registered `interactions` and registers `user_factors`, `item_factors` and
/// the `als_top_n` function that the `als_recommendations` SQL stage uses.
pub async fn fit(
    ctx: &SessionContext,
    work: &WorkArea,
    cfg: &RecommendationsConfig,
) -> Result<AlsReport> {
    let users = count(ctx, "SELECT COUNT(*) FROM user_index").await? as usize;
    let items = count(ctx, "SELECT COUNT(*) FROM item_index").await? as usize;
    let interactions = count(ctx, "SELECT COUNT(*) FROM interactions").await?;
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let mut x = random_factors(&mut rng, users, cfg.rank);
    let mut y = random_factors(&mut rng, items, cfg.rank);
    let mut seconds = Vec::new();
    if interactions > 0 {
        for iteration in 0..cfg.iterations {
            let started = Instant::now();
            x = half_step(ctx, cfg, &y, x, "user_idx", "item_idx").await?;
            y = half_step(ctx, cfg, &x, y, "item_idx", "user_idx").await?;
            seconds.push(started.elapsed().as_secs_f64());
            tracing::debug!(iteration, seconds = seconds[iteration], "ALS iteration");
        }
    }
    write_factors(ctx, work, "user_factors", "user_idx", &x).await?;
    write_factors(ctx, work, "item_factors", "item_idx", &y).await?;
    let allowed = catalog_mask(ctx, items).await?;
    ctx.register_udf(ScalarUDF::from(AlsTopN::new(TopNModel {
        items: Arc::new(y),
        allowed: Arc::new(allowed),
        n: cfg.top_n,
    })));
    Ok(AlsReport {
        users,
        items,
        interactions,
        iterations: seconds.len(),
        seconds_per_iteration: seconds,
    })
}

async fn count(ctx: &SessionContext, sql: &str) -> Result<u64> {
    let batches = ctx.sql(sql).await?.collect().await?;
    Ok(batches
        .first()
        .filter(|b| b.num_rows() > 0)
        .map_or(0, |b| b.column(0).as_primitive::<Int64Type>().value(0)) as u64)
}

/// Small uniform random factors, as the `implicit` library initialises them.
fn random_factors(rng: &mut ChaCha8Rng, rows: usize, rank: usize) -> Factors {
    let values = (0..rows * rank)
        .map(|_| rng.random::<f32>() * 0.01)
        .collect();
    Factors::new(rows, rank, values).unwrap_or_else(|| Factors::zeros(rows, rank))
}

/// Solves every row of one side (`own`) against the fixed `other` factors.
async fn half_step(
    ctx: &SessionContext,
    cfg: &RecommendationsConfig,
    other: &Factors,
    previous: Factors,
    own_col: &str,
    other_col: &str,
) -> Result<Factors> {
    let rank = other.rank();
    let gram = Factors::new(rank, rank, other.gram())
        .ok_or_else(|| PipelineError::Internal("gram size".into()))?;
    let side = AlsModelSide {
        other: Arc::new(other.clone()),
        gram: Arc::new(gram),
        previous: Arc::new(previous.clone()),
        alpha_bits: (cfg.alpha as f32).to_bits(),
        lambda_bits: (cfg.lambda as f32).to_bits(),
        weighted_lambda: cfg.weighted_lambda,
        cg_steps: cfg.cg_steps,
    };
    ctx.register_udaf(AggregateUDF::from(AlsHalfStep::new(side)));
    let sql = format!(
        "SELECT {own_col}, als_half_step({own_col}, {other_col}, weight) AS factors FROM interactions GROUP BY {own_col}"
    );
    let batches = ctx.sql(&sql).await?.collect().await?;
    let mut solved = previous;
    for batch in &batches {
        let ids = batch.column(0).as_primitive::<Int32Type>();
        let lists = batch.column(1).as_list::<i32>();
        for r in 0..batch.num_rows() {
            let values = lists.value(r);
            let values = values.as_primitive::<Float32Type>();
            let row = solved.row_mut(ids.value(r) as usize);
            if row.len() == values.len() {
                row.copy_from_slice(values.values());
            }
        }
    }
    Ok(solved)
}

/// Writes a factor matrix as a table (`<id_col>`, `factors list<float>`).
async fn write_factors(
    ctx: &SessionContext,
    work: &WorkArea,
    name: &str,
    id_col: &str,
    f: &Factors,
) -> Result<()> {
    let schema = Arc::new(Schema::new(vec![
        Field::new(id_col, DataType::Int32, false),
        Field::new("factors", list_type(DataType::Float32), false),
    ]));
    let values = arrow::array::Float32Array::from(f.values().to_vec());
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int32Array::from_iter_values(0..f.rows() as i32)),
        Arc::new(uniform_list(Arc::new(values), f.rank(), f.rows())),
    ];
    work.write_batch(ctx, name, &RecordBatch::try_new(schema, columns)?)
        .await?;
    Ok(())
}

/// Which item ids are in the catalog (may be recommended).
async fn catalog_mask(ctx: &SessionContext, items: usize) -> Result<Vec<bool>> {
    let mut mask = vec![false; items];
    let batches = ctx
        .sql("SELECT item_idx FROM item_index WHERE in_catalog")
        .await?
        .collect()
        .await?;
    for b in &batches {
        for idx in b.column(0).as_primitive::<Int32Type>().iter().flatten() {
            if let Some(m) = mask.get_mut(idx as usize) {
                *m = true;
            }
        }
    }
    Ok(mask)
}
