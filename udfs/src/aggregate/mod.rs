//! Aggregate UDFs, one file per function; [`functions`] lists them all.
//!
//! Each is one distributed pass of a model fit. Their states merge associatively, so DataFusion
//! (and Ballista, across executors) may split the input anywhere: partial aggregates per
//! partition, merged after the shuffle.

mod kmeans_step;

use std::sync::Arc;

use datafusion::logical_expr::AggregateUDF;

pub use kmeans_step::{KMeansStep, KMeansStepResult};

/// Every aggregate UDF, with its default (model-less) instance.
pub fn functions() -> Vec<Arc<AggregateUDF>> {
    vec![Arc::new(AggregateUDF::from(KMeansStep::default()))]
}
