//! Recommendations: implicit-feedback ALS ([`crate::als`]) over the staged `interactions`, then
//! the factors and the top-N functions the output SQL stages use.

use datafusion::prelude::SessionContext;

use crate::als::{self, Als, AlsReport};
use crate::config::RecommendationsConfig;
use crate::error::Result;
use crate::work::WorkArea;
use persona_udfs::ml::Factors;

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
) -> Result<AlsReport> {
    let users = als::count(ctx, "SELECT COUNT(*) FROM user_index").await? as usize;
    let items = als::count(ctx, "SELECT COUNT(*) FROM item_index").await? as usize;
    let mut fit = Als::new(ctx, work, "interactions", (users, items), cfg)
        .with_users_table("user_factor_rows");
    if let Some(y) = warm_start.filter(|_| cfg.warm_start_iterations > 0) {
        fit = fit.with_warm_start(y, cfg.warm_start_iterations);
    }
    let model = fit.fit().await?;
    als::write_factors(ctx, work, "item_factor_rows", "item_idx", &model.items).await?;
    let allowed = als::item_mask(
        ctx,
        "SELECT item_idx FROM item_index WHERE in_catalog",
        items,
    )
    .await?;
    als::register_top_n(ctx, work, &model.items, allowed, cfg.top_n).await?;
    Ok(model.report)
}
