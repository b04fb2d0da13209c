//! Persona's Rust UDFs and UDAFs.
//!
//! Everything here is Arrow in, Arrow out, with no I/O, so the same functions run in a local
//! DataFusion session, in the Ballista scheduler and in every Ballista executor. There is exactly
//! one way to make them available: [`register_all`].
//!
//! Families:
//! - [`scalar`]: web-log parsing (`is_crawler`, `url_page_type`, `url_item_id`,
//!   `looks_like_personal_data`) and model
//!   application (`kmeans_assign`, `als_solve`, `als_top_n`, `als_similar`), reproducible sampling (`unit_hash`) and row digests for
//!   grouping wide rows (`row_digest`).
//! - [`aggregate`]: one distributed pass of a model fit (`kmeans_step`, and for the ALS fit on
//!   a cluster `als_solve_gathered` and `als_gram`), and `session_stats` for the features.
//! - [`ml`]: the numeric kernels and the model state those functions carry.
//!
//! Model functions carry their model (centroids, factors) inside the function instance, never as
//! a literal argument: DataFusion expands literal arguments to one copy per row of every batch.
//! The instances registered by [`register_all`] carry an empty model so that plans naming them
//! resolve; the pipeline builds parameterised instances for each pass.

pub mod aggregate;
mod args;
pub mod codec;
mod docs;
pub mod lists;
pub mod ml;
pub mod scalar;

use std::sync::Arc;

use datafusion::common::Result;
use datafusion::execution::FunctionRegistry;
use datafusion::logical_expr::{AggregateUDF, ScalarUDF};

/// Every scalar UDF Persona defines, as registered by [`register_all`].
pub fn all_scalar_udfs() -> Vec<Arc<ScalarUDF>> {
    scalar::functions()
}

/// Every aggregate UDF Persona defines, as registered by [`register_all`].
pub fn all_udafs() -> Vec<Arc<AggregateUDF>> {
    aggregate::functions()
}

/// Registers all of Persona's functions on a registry (a `SessionContext`, a `SessionState`, or
/// the function registry of a Ballista executor). The one registration path used everywhere.
pub fn register_all(registry: &mut dyn FunctionRegistry) -> Result<()> {
    for udf in all_scalar_udfs() {
        registry.register_udf(udf)?;
    }
    for udaf in all_udafs() {
        registry.register_udaf(udaf)?;
    }
    Ok(())
}

#[cfg(test)]
#[expect(clippy::unwrap_used, clippy::panic, reason = "tests fail by panicking")]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn function_names_and_aliases_are_unique() {
        let mut seen = HashSet::new();
        for udf in all_scalar_udfs() {
            for name in std::iter::once(udf.name()).chain(udf.aliases().iter().map(String::as_str))
            {
                assert!(
                    seen.insert(name.to_string()),
                    "duplicate function name {name}"
                );
            }
        }
        for udaf in all_udafs() {
            for name in
                std::iter::once(udaf.name()).chain(udaf.aliases().iter().map(String::as_str))
            {
                assert!(
                    seen.insert(name.to_string()),
                    "duplicate function name {name}"
                );
            }
        }
        let mut names: Vec<String> = all_scalar_udfs()
            .iter()
            .map(|f| f.name().to_string())
            .chain(all_udafs().iter().map(|f| f.name().to_string()))
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                "als_gram",
                "als_similar",
                "als_solve",
                "als_solve_gathered",
                "als_top_n",
                "experiment_bucket",
                "is_crawler",
                "kmeans_assign",
                "kmeans_step",
                "logistic_step",
                "looks_like_personal_data",
                "row_digest",
                "session_stats",
                "sparse_dot",
                "top_contributions",
                "unit_hash",
                "url_item_id",
                "url_page_type",
            ],
            "every function the SQL stages and the model drivers call is registered"
        );
    }

    /// Every function says what it does and shows an SQL example that calls it.
    #[test]
    fn every_function_is_documented_with_an_sql_example() {
        let (scalars, aggregates) = (all_scalar_udfs(), all_udafs());
        let docs = scalars
            .iter()
            .map(|f| (f.name(), f.documentation()))
            .chain(aggregates.iter().map(|f| (f.name(), f.documentation())));
        for (name, doc) in docs {
            let doc = doc.unwrap_or_else(|| panic!("{name} has no documentation()"));
            let example = doc.sql_example.as_deref().unwrap_or_default();
            assert!(
                example.contains(&format!("{name}(")),
                "{name}: the SQL example calls it: {example}"
            );
            assert!(doc.description.starts_with(&format!("`{name}(")), "{name}");
        }
    }

    #[test]
    fn register_all_registers_every_function() {
        let mut ctx = datafusion::prelude::SessionContext::new();
        register_all(&mut ctx).unwrap();
        for udf in all_scalar_udfs() {
            assert!(ctx.udf(udf.name()).is_ok());
        }
        for udaf in all_udafs() {
            assert!(ctx.udaf(udaf.name()).is_ok());
        }
    }
}
