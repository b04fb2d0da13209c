//! Implicit-feedback ALS (Hu, Koren & Volinsky 2008) as DataFusion work: the driver behind the
//! nightly recommendations, the nightly evaluation and `persona als`.
//!
//! The interactions (`user_idx`, `item_idx`, `weight`, one row per pair) are grouped once per
//! fit into two tables, one row per customer and one per item, with the other side's indices
//! and the weights as lists sorted by index ([`stage_grouped`]). Every half-iteration is then a
//! projection, `als_solve(idx, items, weights)`, over one of them: the fixed side's factors and
//! their Gram matrix `YᵀY` (computed once per half-iteration, here) travel inside the function,
//! each partition solves its rows, and only the new factors come back. Nothing is shuffled or
//! re-derived per iteration, and the result does not depend on the partitioning, so a run on a
//! Ballista cluster gives the same factors as one process.

pub mod command;
pub mod evaluate;

use std::sync::Arc;
use std::time::Instant;

use arrow::array::{ArrayRef, AsArray, Int32Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Float32Type, Float64Type, Int32Type, Int64Type, Schema};
use datafusion::logical_expr::ScalarUDF;
use datafusion::prelude::SessionContext;
use persona_udfs::lists::{list_type, uniform_list};
use persona_udfs::ml::{AlsModelSide, Factors, Solver};
use persona_udfs::scalar::{AlsSolve, AlsTopN, TopNModel};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::config::{AlsSolver, RecommendationsConfig};
use crate::error::{PipelineError, Result};
use crate::work::WorkArea;

/// What a fit did, for the manifest and `persona als`'s report.
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
    /// The loss ALS minimises, after each iteration's customer half (confidence-weighted
    /// squared error over every customer × item pair, plus regularisation).
    pub loss: Vec<f64>,
    /// Seconds spent grouping the interactions before the first iteration.
    pub staging_seconds: f64,
}

/// Fitted factors, indexed by the integer ids of the interactions.
#[derive(Debug, Clone)]
pub struct AlsModel {
    /// Customer factors.
    pub users: Factors,
    /// Item factors.
    pub items: Factors,
    /// What the fit did.
    pub report: AlsReport,
}

/// Fits ALS on the registered table `interactions` (`user_idx int`, `item_idx int`,
/// `weight float`, unique pairs), whose ids run `0..users` and `0..items`. Intermediate tables
/// are named after `interactions` (`<interactions>_by_user`, `<interactions>_by_item`).
pub async fn fit(
    ctx: &SessionContext,
    work: &WorkArea,
    interactions: &str,
    (users, items): (usize, usize),
    cfg: &RecommendationsConfig,
) -> Result<AlsModel> {
    let started = Instant::now();
    let by_user = format!("{interactions}_by_user");
    let by_item = format!("{interactions}_by_item");
    let pairs = stage_grouped(ctx, work, interactions, "user_idx", "item_idx", &by_user).await?;
    stage_grouped(ctx, work, interactions, "item_idx", "user_idx", &by_item).await?;
    let staging_seconds = started.elapsed().as_secs_f64();

    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let mut x = random_factors(&mut rng, users, cfg.rank);
    let mut y = random_factors(&mut rng, items, cfg.rank);
    let (mut seconds, mut loss) = (Vec::new(), Vec::new());
    if pairs > 0 {
        for iteration in 0..cfg.iterations {
            let t = Instant::now();
            let (new_x, user_loss) = half_step(ctx, cfg, &y, x, &by_user).await?;
            x = new_x;
            loss.push(user_loss + regularisation(ctx, cfg, &y, &by_item).await?);
            y = half_step(ctx, cfg, &x, y, &by_item).await?.0;
            seconds.push(t.elapsed().as_secs_f64());
            tracing::debug!(
                iteration,
                seconds = seconds[iteration],
                loss = loss[iteration],
                "ALS iteration"
            );
        }
    }
    let report = AlsReport {
        users,
        items,
        interactions: pairs,
        iterations: seconds.len(),
        seconds_per_iteration: seconds,
        loss,
        staging_seconds,
    };
    Ok(AlsModel {
        users: x,
        items: y,
        report,
    })
}

/// Groups the interactions by `own` into `name` (`idx`, `items list<int>`, `weights
/// list<float>`, `n`). The lists come in no particular order (an ordered `array_agg` costs
/// more than the whole fit); `als_solve` puts each row in index order before solving, so the
/// factors do not depend on it. Both lists are built by one aggregation over the same rows in
/// the same order, so they stay aligned. Returns the number of pairs.
async fn stage_grouped(
    ctx: &SessionContext,
    work: &WorkArea,
    interactions: &str,
    own: &str,
    other: &str,
    name: &str,
) -> Result<u64> {
    let sql = format!(
        "SELECT {own} AS idx, \
                array_agg({other}) AS items, \
                array_agg(CAST(weight AS FLOAT)) AS weights, \
                COUNT(*) AS n \
         FROM {interactions} GROUP BY {own}"
    );
    work.materialize_reused(ctx, name, ctx.sql(&sql).await?)
        .await?;
    count(
        ctx,
        &format!("SELECT CAST(COALESCE(SUM(n), 0) AS BIGINT) FROM {name}"),
    )
    .await
}

/// The first value of a one-row `BIGINT` query (0 when empty).
pub async fn count(ctx: &SessionContext, sql: &str) -> Result<u64> {
    let batches = ctx.sql(sql).await?.collect().await?;
    Ok(batches
        .first()
        .filter(|b| b.num_rows() > 0 && b.column(0).is_valid(0))
        .map_or(0, |b| b.column(0).as_primitive::<Int64Type>().value(0)) as u64)
}

/// Small uniform random factors, as the `implicit` library initialises them.
fn random_factors(rng: &mut ChaCha8Rng, rows: usize, rank: usize) -> Factors {
    let values = (0..rows * rank)
        .map(|_| rng.random::<f32>() * 0.01)
        .collect();
    Factors::new(rows, rank, values).unwrap_or_else(|| Factors::zeros(rows, rank))
}

/// The solver of the configuration.
fn solver(cfg: &RecommendationsConfig) -> Solver {
    match cfg.solver {
        AlsSolver::Cg => Solver::ConjugateGradient {
            steps: cfg.cg_steps,
        },
        AlsSolver::Cholesky => Solver::Cholesky,
    }
}

/// Solves every row of `grouped` against the fixed `other` factors; rows absent from `grouped`
/// keep their previous factors. Returns the new factors and the summed row losses.
async fn half_step(
    ctx: &SessionContext,
    cfg: &RecommendationsConfig,
    other: &Factors,
    previous: Factors,
    grouped: &str,
) -> Result<(Factors, f64)> {
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
        solver: solver(cfg),
        explicit: cfg.explicit,
    };
    ctx.register_udf(ScalarUDF::from(AlsSolve::new(side)));
    let sql = format!("SELECT idx, als_solve(idx, items, weights) AS solved FROM {grouped}");
    let batches = ctx.sql(&sql).await?.collect().await?;
    let mut solved = previous;
    let mut loss = 0.0;
    for batch in &batches {
        let ids = batch.column(0).as_primitive::<Int32Type>();
        let result = batch.column(1).as_struct();
        let lists = result.column(0).as_list::<i32>();
        let losses = result.column(1).as_primitive::<Float64Type>();
        let values = lists.values().as_primitive::<Float32Type>().values();
        let offsets = lists.value_offsets();
        for r in 0..batch.num_rows() {
            let row = solved.row_mut(ids.value(r) as usize);
            let new = &values[offsets[r] as usize..offsets[r + 1] as usize];
            if row.len() == new.len() {
                row.copy_from_slice(new);
            }
            loss += losses.value(r);
        }
    }
    Ok((solved, loss))
}

/// `λ Σ ‖y_i‖²` over the item side (each scaled by the item's count under ALS-WR): the part of
/// the loss that the customer rows do not carry.
async fn regularisation(
    ctx: &SessionContext,
    cfg: &RecommendationsConfig,
    y: &Factors,
    by_item: &str,
) -> Result<f64> {
    let norm = |i: usize| -> f64 { y.row(i).iter().map(|v| f64::from(*v).powi(2)).sum() };
    if !cfg.weighted_lambda {
        return Ok(cfg.lambda * (0..y.rows()).map(norm).sum::<f64>());
    }
    let batches = ctx
        .sql(&format!("SELECT idx, n FROM {by_item}"))
        .await?
        .collect()
        .await?;
    let mut total = 0.0;
    for b in &batches {
        let (ids, n) = (
            b.column(0).as_primitive::<Int32Type>(),
            b.column(1).as_primitive::<Int64Type>(),
        );
        for r in 0..b.num_rows() {
            total += n.value(r) as f64 * norm(ids.value(r) as usize);
        }
    }
    Ok(cfg.lambda * total)
}

/// Writes a factor matrix as the work table `name` (`<id_col> int`, `factors list<float>`).
pub async fn write_factors(
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

/// Registers `als_top_n` (best items for a customer's factors) and `als_similar` (items most
/// similar to an item's factors, by cosine) over `items`, recommending only `allowed` items.
pub fn register_top_n(ctx: &SessionContext, items: &Factors, allowed: Vec<bool>, n: usize) {
    let model = TopNModel {
        items: Arc::new(items.clone()),
        allowed: Arc::new(allowed),
        n,
    };
    ctx.register_udf(ScalarUDF::from(AlsTopN::similar(model.clone())));
    ctx.register_udf(ScalarUDF::from(AlsTopN::new(model)));
}

/// Which item ids `sql` (one `int` column) lists, as a mask over `items` ids.
pub async fn item_mask(ctx: &SessionContext, sql: &str, items: usize) -> Result<Vec<bool>> {
    let mut mask = vec![false; items];
    for b in &ctx.sql(sql).await?.collect().await? {
        for idx in b.column(0).as_primitive::<Int32Type>().iter().flatten() {
            if let Some(m) = mask.get_mut(idx as usize) {
                *m = true;
            }
        }
    }
    Ok(mask)
}
