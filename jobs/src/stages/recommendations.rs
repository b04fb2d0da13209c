//! Recommendations: implicit-feedback ALS ([`crate::models::als`]) over the staged `interactions`, then
//! the factors and the top-N functions the output SQL stages use.

use std::fmt;

use async_trait::async_trait;
use datafusion::prelude::SessionContext;

use super::dry_run::register_empty;
use super::evaluation::WarmStart;
use super::night::Night;
use super::record::Report;
use super::registry::Stage;
use super::unit::Unit;
use crate::config::RecommendationsConfig;
use crate::engine::progress::group_digits;
use crate::engine::work::WorkArea;
use crate::error::Result;
use crate::models::als::{self, Als, AlsModel, AlsReport};
use persona_udfs::ml::Factors;

/// The published ALS fit over `interactions`, continuing the evaluation fit's model when the
/// evaluation ran.
#[derive(Debug)]
pub struct AlsFit;

#[async_trait(?Send)]
impl Unit for AlsFit {
    fn code(&self) -> &'static str {
        "jobs/src/stages/recommendations.rs"
    }

    async fn run(&self, _stage: &Stage, night: &mut Night<'_>) -> Result<u64> {
        let warm_start = night.record.handoffs.take::<WarmStart>().map(|w| w.0);
        let cfg = &night.config.recommendations;
        let model = fit(night.ctx, night.work, cfg, warm_start).await?;
        let interactions = model.report.interactions;
        night.record.reports.put(model.report);
        night.record.handoffs.put(FittedItems(model.items));
        Ok(interactions)
    }

    async fn plan(&self, _stage: &Stage, night: &mut Night<'_>) -> Result<String> {
        night
            .register_empty_model("user_factor_rows", "user_idx")
            .await?;
        register_empty(
            night.ctx,
            "item_factor_rows",
            als::factors_schema("item_idx"),
        )?;
        let r = &night.config.recommendations;
        Ok(format!(
            "implicit ALS over interactions: rank {}, {} iterations, lambda {}, alpha {}, solver {:?}, top {}\n",
            r.rank, r.iterations, r.lambda, r.alpha, r.solver, r.top_n
        ))
    }
}

impl Report for AlsReport {
    const KEY: &'static str = "recommendations";

    fn summary(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let plural = |n: usize| if n == 1 { "" } else { "s" };
        let iterations = match self.continued_from_iterations {
            Some(before) => format!(
                "{before} iteration{} on the days before the holdout (the evaluation's fit), then {} on the whole window",
                plural(before),
                self.iterations
            ),
            None => format!(
                "{} iteration{} on the whole window",
                self.iterations,
                plural(self.iterations)
            ),
        };
        writeln!(
            f,
            "\nRecommendations: ALS on {} customers × {} items ({} interactions), {iterations}",
            group_digits(self.users as u64),
            group_digits(self.items as u64),
            group_digits(self.interactions),
        )
    }
}

/// The fitted item factors, by `item_idx` (the `item_factor_rows` table holds them too): for
/// a command that scores the model after its short night (`persona als --holdout`).
#[derive(Debug)]
pub struct FittedItems(pub Factors);

/// Fits ALS on the registered `interactions`; registers the work tables `user_factor_rows` and
/// `item_factor_rows` (by integer id) and the functions `als_top_n` and `als_similar` that the
/// `als_recommendations` and `similar_items` SQL stages use. With `warm_start` (the item
/// factors of the evaluation's fit on all but the holdout days) and `warm_start_iterations`
/// above 0, the fit continues that model for those iterations instead of starting over.
pub async fn fit(
    ctx: &SessionContext,
    work: &WorkArea,
    cfg: &RecommendationsConfig,
    warm_start: Option<Factors>,
) -> Result<AlsModel> {
    let users = als::count(ctx, "SELECT COUNT(*) FROM user_index").await? as usize;
    let items = als::count(ctx, "SELECT COUNT(*) FROM item_index").await? as usize;
    let mut fit = Als::new(ctx, work, "interactions", (users, items), cfg)
        .with_users_table("user_factor_rows");
    let warm = warm_start.filter(|_| cfg.warm_start_iterations > 0);
    let continued = warm.is_some();
    if let Some(y) = warm {
        fit = fit.with_warm_start(y, cfg.warm_start_iterations);
    }
    let mut model = fit.fit().await?;
    // The evaluation's fit ran the configured iterations on the days before the holdout.
    model.report.continued_from_iterations = continued.then_some(cfg.iterations);
    als::write_factors(ctx, work, "item_factor_rows", "item_idx", &model.items).await?;
    let allowed = als::item_mask(
        ctx,
        "SELECT item_idx FROM item_index WHERE in_catalog",
        items,
    )
    .await?;
    als::register_top_n(ctx, work, &model.items, allowed, cfg.top_n).await?;
    Ok(model)
}
