//! Implicit-feedback ALS (Hu, Koren & Volinsky 2008) as DataFusion work: the driver behind the
//! nightly recommendations, the nightly evaluation and `persona als`.
//!
//! The interactions (`user_idx`, `item_idx`, `weight`, one row per pair) are grouped once per
//! fit by customer ([`stage_grouped`]: `idx`, the items and the weights as lists). Every
//! customer half-iteration is then a projection, `als_solve(idx, items, weights)`, solved
//! against the item factors and their Gram matrix `YᵀY`, which travel inside the function (the
//! catalogue is small). The item half-iteration needs the customer factors, which grow with
//! the customer base, and they meet the interactions in one of two ways ([`Exchange`]):
//!
//! - **in the plan** (one process): the driver keeps the customer factors in memory and the
//!   item half is the same projection over the interactions grouped by item;
//! - **through tables** (a Ballista cluster): the customer factors are a work table on the
//!   shared storage, written by the executors and never collected; the item half joins the
//!   interactions with it and solves each item in the `als_solve_gathered` aggregate, and
//!   `XᵀX` comes back as one `rank × rank` matrix per block of customers (`als_gram`). Only
//!   the item factors, the Gram matrices and the loss reach the client.
//!
//! Every solve puts a row's interactions in index order first and `XᵀX` is added block by
//! block in a fixed order, so the two ways, and any partitioning, give the same factors bit
//! for bit.

pub mod evaluate;

use std::sync::Arc;
use std::time::Instant;

use arrow::array::{ArrayRef, AsArray, Int32Array, RecordBatch};
use arrow::datatypes::{
    DataType, Field, Float32Type, Float64Type, Int32Type, Int64Type, Schema, SchemaRef,
};
use datafusion::logical_expr::{AggregateUDF, ScalarUDF};
use datafusion::prelude::SessionContext;
use persona_udfs::aggregate::AlsSolveGathered;
use persona_udfs::lists::{list_type, uniform_list};
use persona_udfs::ml::{AlsModelSide, Factors, GRAM_BLOCK, Solver, blocked_gram, sum_block_grams};
use persona_udfs::scalar::{AlsSolve, AlsTopN, TopNModel};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::config::{AlsSolver, FactorExchange, RecommendationsConfig};
use crate::engine::work::WorkArea;
use crate::error::{PipelineError, Result};

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
    /// How the customer factors met the interactions: `plan` or `tables`.
    pub exchange: String,
    /// When this fit continued an earlier one (the night's model continuing the evaluation's
    /// fit on the days before the holdout): that fit's iterations.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub continued_from_iterations: Option<usize>,
}

/// A fitted model: the item factors in memory, the customer factors in a work table.
#[derive(Debug, Clone)]
pub struct AlsModel {
    /// The work table of the customer factors (`user_idx int`, `factors list<float>`), one row
    /// per customer with interactions.
    pub users: String,
    /// Item factors, indexed by `item_idx`.
    pub items: Factors,
    /// What the fit did.
    pub report: AlsReport,
}

/// How the customer factors meet the interactions in the item half-iteration (see the module
/// documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Exchange {
    Plan,
    Tables,
}

impl Exchange {
    fn of(cfg: &RecommendationsConfig, work: &WorkArea) -> Self {
        match cfg.factor_exchange {
            FactorExchange::Plan => Exchange::Plan,
            FactorExchange::Tables => Exchange::Tables,
            FactorExchange::Auto if work.in_process() => Exchange::Plan,
            FactorExchange::Auto => Exchange::Tables,
        }
    }
}

/// An ALS fit over a registered table of interactions, set up like [`crate::models::kmeans::KMeans`]:
/// `Als::new(…)`, `with_*` setters, then [`Als::fit`].
pub struct Als<'a> {
    ctx: &'a SessionContext,
    work: &'a WorkArea,
    interactions: String,
    dimensions: (usize, usize),
    cfg: &'a RecommendationsConfig,
    users_table: String,
    warm_start: Option<(Factors, usize)>,
}

impl<'a> Als<'a> {
    /// A fit of the table `interactions` (`user_idx int`, `item_idx int`, `weight float`,
    /// unique pairs), whose ids run `0..users` and `0..items`, with the settings of `cfg`
    /// (rank, iterations, λ, α, solver, seed). Intermediate tables are named after
    /// `interactions`; the customer factors go to `<interactions>_user_factors` unless
    /// [`Self::with_users_table`] says otherwise.
    pub fn new(
        ctx: &'a SessionContext,
        work: &'a WorkArea,
        interactions: &str,
        (users, items): (usize, usize),
        cfg: &'a RecommendationsConfig,
    ) -> Self {
        Self {
            ctx,
            work,
            interactions: interactions.to_string(),
            dimensions: (users, items),
            cfg,
            users_table: format!("{interactions}_user_factors"),
            warm_start: None,
        }
    }

    /// Starts from the item factors `items` (of another fit over the same item ids, such as the
    /// evaluation's on the training days) instead of random ones, and runs `iterations`
    /// iterations instead of the configured number: the fit then continues that model on this
    /// table's interactions rather than starting over.
    pub fn with_warm_start(mut self, items: Factors, iterations: usize) -> Self {
        self.warm_start = Some((items, iterations));
        self
    }

    /// Writes the customer factors as the work table `table`.
    pub fn with_users_table(mut self, table: &str) -> Self {
        self.users_table = table.to_string();
        self
    }

    /// Runs the fit: the interactions grouped once, then `iterations` alternating halves.
    pub async fn fit(self) -> Result<AlsModel> {
        let Self {
            ctx,
            work,
            interactions,
            dimensions,
            cfg,
            users_table,
            warm_start,
        } = self;
        let (interactions, users_table) = (interactions.as_str(), users_table.as_str());
        let (users, items) = dimensions;
        let exchange = Exchange::of(cfg, work);
        let started = Instant::now();
        let by_user = format!("{interactions}_by_user");
        let pairs =
            stage_grouped(ctx, work, interactions, "user_idx", "item_idx", &by_user).await?;
        // Only ALS-WR's loss needs them (each item's λ is scaled by its count).
        let item_counts = if cfg.weighted_lambda {
            item_counts(ctx, interactions, items).await?
        } else {
            Vec::new()
        };
        let mut state = match exchange {
            Exchange::Plan => {
                let by_item = format!("{interactions}_by_item");
                stage_grouped(ctx, work, interactions, "item_idx", "user_idx", &by_item).await?;
                CustomerFactors::InPlan {
                    x: Factors::zeros(users, cfg.rank),
                    present: vec![false; users],
                    by_item,
                }
            }
            Exchange::Tables => CustomerFactors::InTable {
                table: None,
                interactions: interactions.to_string(),
                passes: 0,
                customer_gram: Factors::default(),
            },
        };
        let staging_seconds = started.elapsed().as_secs_f64();

        // The customer factors start at zero (they are only the warm start of the first customer
        // half, which solves against the item factors: random ones, or those of the warm start
        // when it has this fit's shape; a warm start of another shape is ignored).
        let (mut y, iterations) = match warm_start {
            Some((y, iterations)) if y.rows() == items && y.rank() == cfg.rank => (y, iterations),
            _ => {
                let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
                (random_factors(&mut rng, items, cfg.rank), cfg.iterations)
            }
        };
        let (mut seconds, mut loss) = (Vec::new(), Vec::new());
        if pairs > 0 {
            for iteration in 0..iterations {
                let t = Instant::now();
                // Stored once per iteration on a cluster: the customer half solves against it and
                // the item half starts from it.
                y = work.share_factors(y).await?;
                let user_loss = state.solve_customers(ctx, work, cfg, &y, &by_user).await?;
                loss.push(user_loss + regularisation(cfg, &y, &item_counts));
                y = state.solve_items(ctx, work, cfg, y).await?;
                seconds.push(t.elapsed().as_secs_f64());
                tracing::debug!(
                    iteration,
                    seconds = seconds[iteration],
                    loss = loss[iteration],
                    "ALS iteration"
                );
            }
        }
        state.write(ctx, work, users_table).await?;
        let report = AlsReport {
            users,
            items,
            interactions: pairs,
            iterations: seconds.len(),
            seconds_per_iteration: seconds,
            loss,
            staging_seconds,
            exchange: match exchange {
                Exchange::Plan => "plan",
                Exchange::Tables => "tables",
            }
            .to_string(),
            continued_from_iterations: None,
        };
        Ok(AlsModel {
            users: users_table.to_string(),
            items: y,
            report,
        })
    }
}

/// Where the customer factors live during a fit.
enum CustomerFactors {
    /// In this process, with which rows have been solved (customers with interactions).
    InPlan {
        x: Factors,
        present: Vec<bool>,
        by_item: String,
    },
    /// In a work table (`idx`, `solved struct<factors, loss>`), `None` before the first pass,
    /// with its `XᵀX`.
    InTable {
        table: Option<String>,
        interactions: String,
        passes: usize,
        customer_gram: Factors,
    },
}

impl CustomerFactors {
    /// The customer half-iteration against the item factors `y`; returns the customers' loss.
    async fn solve_customers(
        &mut self,
        ctx: &SessionContext,
        work: &WorkArea,
        cfg: &RecommendationsConfig,
        y: &Factors,
        by_user: &str,
    ) -> Result<f64> {
        let gram = gram_of(y.rank(), y.gram())?;
        match self {
            CustomerFactors::InPlan { x, present, .. } => {
                let previous = std::mem::take(x);
                let (solved, loss) =
                    half_step(ctx, work, cfg, y, gram, previous, present, by_user).await?;
                *x = solved;
                Ok(loss)
            }
            CustomerFactors::InTable {
                table,
                passes,
                customer_gram,
                ..
            } => {
                let side = model_side(cfg, y.clone(), gram, Factors::default());
                ctx.register_udf(ScalarUDF::from(AlsSolve::new(side)));
                let sql = match table.as_deref() {
                    None => format!(
                        "SELECT idx, als_solve(idx, items, weights) AS solved FROM {by_user}"
                    ),
                    Some(previous) => format!(
                        "SELECT b.idx, als_solve(b.idx, b.items, b.weights, p.solved) AS solved \
                         FROM {by_user} b JOIN {previous} p ON b.idx = p.idx"
                    ),
                };
                // The result struct is kept whole and passed on whole (see `als_solve`).
                *passes += 1;
                let name = format!("{by_user}_factors_{passes}");
                work.materialize(ctx, &name, ctx.sql(&sql).await?).await?;
                if let Some(previous) = table.replace(name.clone()) {
                    work.drop_table(ctx, &previous).await?;
                }
                let (gram, loss) = blocked_gram_and_loss(ctx, &name, y.rank()).await?;
                *customer_gram = gram;
                Ok(loss)
            }
        }
    }

    /// The item half-iteration against the current customer factors; returns the new item
    /// factors (`previous` for items without interactions).
    async fn solve_items(
        &mut self,
        ctx: &SessionContext,
        work: &WorkArea,
        cfg: &RecommendationsConfig,
        previous: Factors,
    ) -> Result<Factors> {
        let rank = previous.rank();
        match self {
            CustomerFactors::InPlan {
                x,
                present,
                by_item,
            } => {
                let gram = gram_of(rank, blocked_gram(x, present))?;
                Ok(
                    half_step(ctx, work, cfg, x, gram, previous, &mut [], by_item)
                        .await?
                        .0,
                )
            }
            CustomerFactors::InTable {
                table: Some(x),
                interactions,
                customer_gram,
                ..
            } => {
                let side = model_side(
                    cfg,
                    Factors::default(),
                    customer_gram.clone(),
                    previous.clone(),
                );
                ctx.register_udaf(AggregateUDF::from(AlsSolveGathered::new(side)));
                let sql = format!(
                    "SELECT i.item_idx AS idx, \
                            als_solve_gathered(i.item_idx, i.user_idx, CAST(i.weight AS FLOAT), x.solved) AS solved \
                     FROM {interactions} i JOIN {x} x ON i.user_idx = x.idx \
                     GROUP BY i.item_idx"
                );
                let batches = ctx.sql(&sql).await?.collect().await?;
                Ok(read_solved(previous, &batches, &mut []).0)
            }
            CustomerFactors::InTable { table: None, .. } => Ok(previous),
        }
    }

    /// Writes the customer factors as the work table `name` (`user_idx`, `factors`).
    async fn write(&self, ctx: &SessionContext, work: &WorkArea, name: &str) -> Result<()> {
        match self {
            CustomerFactors::InPlan { x, present, .. } => {
                write_factors_of(ctx, work, name, "user_idx", x, Some(present)).await
            }
            CustomerFactors::InTable { table: Some(x), .. } => {
                let sql = format!("SELECT idx AS user_idx, solved['factors'] AS factors FROM {x}");
                work.materialize(ctx, name, ctx.sql(&sql).await?).await?;
                Ok(())
            }
            CustomerFactors::InTable { table: None, .. } => {
                write_factors_of(ctx, work, name, "user_idx", &Factors::default(), None).await
            }
        }
    }
}

/// A `rank × rank` matrix as [`Factors`].
fn gram_of(rank: usize, values: Vec<f32>) -> Result<Factors> {
    if rank == 0 {
        return Ok(Factors::default());
    }
    Factors::new(rank, rank, values).ok_or_else(|| PipelineError::Internal("gram size".into()))
}

/// `XᵀX` of the customer factors in the work table `x` (added block by block, as
/// [`blocked_gram`] does in memory) and the customers' summed loss: one query, whose result is
/// one `rank × rank` matrix per block of customers. The loss is summed as a decimal (exact, so
/// in any order the same), then the blocks in block order.
async fn blocked_gram_and_loss(
    ctx: &SessionContext,
    x: &str,
    rank: usize,
) -> Result<(Factors, f64)> {
    let batches = ctx
        .sql(&format!(
            "SELECT CAST(idx / {GRAM_BLOCK} AS INT) AS block, als_gram(idx, solved) AS gram, \
                    CAST(SUM(CAST(solved['loss'] AS DECIMAL(38, 10))) AS DOUBLE) AS loss \
             FROM {x} GROUP BY CAST(idx / {GRAM_BLOCK} AS INT)"
        ))
        .await?
        .collect()
        .await?;
    let mut blocks: Vec<(i32, Vec<f32>, f64)> = Vec::new();
    for b in &batches {
        let ids = b.column(0).as_primitive::<Int32Type>();
        let (grams, losses) = (
            b.column(1).as_list::<i32>(),
            b.column(2).as_primitive::<Float64Type>(),
        );
        for r in 0..b.num_rows() {
            let g = grams.value(r);
            blocks.push((
                ids.value(r),
                g.as_primitive::<Float32Type>().values().to_vec(),
                losses.value(r),
            ));
        }
    }
    blocks.sort_by_key(|(block, _, _)| *block);
    let gram = sum_block_grams(rank, blocks.iter().map(|(_, g, _)| g.as_slice()));
    Ok((gram_of(rank, gram)?, blocks.iter().map(|(_, _, l)| l).sum()))
}

/// Interactions per item (ALS-WR scales each item's λ by it).
async fn item_counts(ctx: &SessionContext, interactions: &str, items: usize) -> Result<Vec<u64>> {
    let batches = ctx
        .sql(&format!(
            "SELECT item_idx, COUNT(*) AS n FROM {interactions} GROUP BY item_idx"
        ))
        .await?
        .collect()
        .await?;
    let mut counts = vec![0u64; items];
    for b in &batches {
        let (ids, n) = (
            b.column(0).as_primitive::<Int32Type>(),
            b.column(1).as_primitive::<Int64Type>(),
        );
        for r in 0..b.num_rows() {
            if let Some(c) = usize::try_from(ids.value(r))
                .ok()
                .and_then(|i| counts.get_mut(i))
            {
                *c = n.value(r) as u64;
            }
        }
    }
    Ok(counts)
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

/// The fixed side, the warm start and the hyper-parameters of one half-iteration.
fn model_side(
    cfg: &RecommendationsConfig,
    other: Factors,
    gram: Factors,
    previous: Factors,
) -> AlsModelSide {
    AlsModelSide {
        other: Arc::new(other),
        gram: Arc::new(gram),
        previous: Arc::new(previous),
        alpha_bits: (cfg.alpha as f32).to_bits(),
        lambda_bits: (cfg.lambda as f32).to_bits(),
        weighted_lambda: cfg.weighted_lambda,
        solver: solver(cfg),
        explicit: cfg.explicit,
    }
}

/// Solves every row of `grouped` against the fixed `other` factors (whose Gram matrix is
/// `gram`); rows absent from `grouped` keep their previous factors. Marks the solved rows in
/// `solved` and returns the new factors and the summed row losses.
#[expect(
    clippy::too_many_arguments,
    reason = "one half-iteration's inputs, each used once"
)]
async fn half_step(
    ctx: &SessionContext,
    work: &WorkArea,
    cfg: &RecommendationsConfig,
    other: &Factors,
    gram: Factors,
    previous: Factors,
    solved: &mut [bool],
    grouped: &str,
) -> Result<(Factors, f64)> {
    let side = model_side(
        cfg,
        work.share_factors(other.clone()).await?,
        gram,
        work.share_factors(previous.clone()).await?,
    );
    ctx.register_udf(ScalarUDF::from(AlsSolve::new(side)));
    let sql = format!("SELECT idx, als_solve(idx, items, weights) AS solved FROM {grouped}");
    let batches = ctx.sql(&sql).await?.collect().await?;
    Ok(read_solved(previous, &batches, solved))
}

/// Copies the solved rows of `(idx, struct<factors, loss>)` batches over `previous`, marking
/// them in `solved` (when it is long enough), and sums their losses.
fn read_solved(previous: Factors, batches: &[RecordBatch], solved: &mut [bool]) -> (Factors, f64) {
    let mut factors = previous;
    // Summed in row order, not in the order the batches arrive (which varies from run to run),
    // so that the loss in the manifest is the same to the last bit on every rerun.
    let mut losses_by_row: Vec<(usize, f64)> = Vec::new();
    for batch in batches {
        let ids = batch.column(0).as_primitive::<Int32Type>();
        let result = batch.column(1).as_struct();
        let lists = result.column(0).as_list::<i32>();
        let losses = result.column(1).as_primitive::<Float64Type>();
        let values = lists.values().as_primitive::<Float32Type>().values();
        let offsets = lists.value_offsets();
        for r in 0..batch.num_rows() {
            let id = ids.value(r) as usize;
            let row = factors.row_mut(id);
            let new = &values[offsets[r] as usize..offsets[r + 1] as usize];
            if row.len() == new.len() {
                row.copy_from_slice(new);
                if let Some(s) = solved.get_mut(id) {
                    *s = true;
                }
            }
            losses_by_row.push((id, losses.value(r)));
        }
    }
    losses_by_row.sort_unstable_by_key(|(id, _)| *id);
    (factors, losses_by_row.iter().map(|(_, l)| l).sum())
}

/// `λ Σ ‖y_i‖²` over the item side (each scaled by the item's count under ALS-WR): the part of
/// the loss that the customer rows do not carry.
fn regularisation(cfg: &RecommendationsConfig, y: &Factors, counts: &[u64]) -> f64 {
    let norm = |i: usize| -> f64 { y.row(i).iter().map(|v| f64::from(*v).powi(2)).sum() };
    let total: f64 = if cfg.weighted_lambda {
        (0..y.rows())
            .map(|i| counts.get(i).copied().unwrap_or(0) as f64 * norm(i))
            .sum()
    } else {
        (0..y.rows()).map(norm).sum()
    };
    cfg.lambda * total
}

/// Writes a factor matrix as the work table `name` (`<id_col> int`, `factors list<float>`).
pub async fn write_factors(
    ctx: &SessionContext,
    work: &WorkArea,
    name: &str,
    id_col: &str,
    f: &Factors,
) -> Result<()> {
    write_factors_of(ctx, work, name, id_col, f, None).await
}

/// The schema of a factor work table: the integer id `id_col` and the row's `factors`.
pub fn factors_schema(id_col: &str) -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new(id_col, DataType::Int32, false),
        Field::new("factors", list_type(DataType::Float32), false),
    ]))
}

/// [`write_factors`], only the rows `rows` marks when given.
async fn write_factors_of(
    ctx: &SessionContext,
    work: &WorkArea,
    name: &str,
    id_col: &str,
    f: &Factors,
    rows: Option<&[bool]>,
) -> Result<()> {
    let schema = factors_schema(id_col);
    let kept: Vec<usize> = (0..f.rows())
        .filter(|&r| rows.is_none_or(|m| m.get(r).copied().unwrap_or(false)))
        .collect();
    let values: Vec<f32> = kept
        .iter()
        .flat_map(|&r| f.row(r).iter().copied())
        .collect();
    let values = arrow::array::Float32Array::from(values);
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int32Array::from_iter_values(kept.iter().map(|&r| r as i32))),
        Arc::new(uniform_list(Arc::new(values), f.rank().max(1), kept.len())),
    ];
    work.write_batch(ctx, name, &RecordBatch::try_new(schema, columns)?)
        .await?;
    Ok(())
}

/// Registers `als_top_n` (best items for a customer's factors) and `als_similar` (items most
/// similar to an item's factors, by cosine) over `items`, recommending only `allowed` items.
/// On a cluster both item matrices (as they are, and normalised) travel through the work area.
pub async fn register_top_n(
    ctx: &SessionContext,
    work: &WorkArea,
    items: &Factors,
    allowed: Vec<bool>,
    n: usize,
) -> Result<()> {
    let allowed = Arc::new(allowed);
    let model = |items: Factors| TopNModel {
        items: Arc::new(items),
        allowed: Arc::clone(&allowed),
        n,
    };
    let normalized = work.share_factors(items.normalized()).await?;
    ctx.register_udf(ScalarUDF::from(AlsTopN::similar_normalized(model(
        normalized,
    ))));
    let items = work.share_factors(items.clone()).await?;
    ctx.register_udf(ScalarUDF::from(AlsTopN::new(model(items))));
    Ok(())
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
