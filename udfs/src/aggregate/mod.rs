//! Aggregate UDFs, one file per function; [`functions`] lists them all.
//!
//! Most are one distributed pass of a model fit (`kmeans_step`, `als_solve_gathered`,
//! `als_gram`); `session_stats` counts a customer's sessions and active days for the features stage. Their
//! states merge associatively, so DataFusion
//! (and Ballista, across executors) may split the input anywhere: partial aggregates per
//! partition, merged after the shuffle.

mod als_gram;
mod als_solve_gathered;
mod kmeans_step;
mod session_stats;

use std::sync::Arc;

use datafusion::logical_expr::AggregateUDF;

pub use als_gram::AlsGram;
pub use als_solve_gathered::AlsSolveGathered;
pub use kmeans_step::{KMeansStep, KMeansStepResult};
pub use session_stats::SessionStats;

/// Every aggregate UDF, with its default (model-less) instance.
pub fn functions() -> Vec<Arc<AggregateUDF>> {
    vec![
        Arc::new(AggregateUDF::from(KMeansStep::default())),
        Arc::new(AggregateUDF::from(AlsSolveGathered::default())),
        Arc::new(AggregateUDF::from(AlsGram::default())),
        Arc::new(AggregateUDF::from(SessionStats::default())),
    ]
}
