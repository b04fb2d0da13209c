//! The stages of the night: the registry that lists them ([`registry`]), the loop that runs
//! them ([`night`]) or plans them ([`dry_run`]), what they report ([`record`]), and one file
//! per Rust stage, each a [`unit::Unit`]: [`inputs`], [`gates`], [`segments`],
//! [`recommendations`], [`evaluation`], [`propensity`], [`audiences`], [`experiments`], [`publish`].

pub mod audiences;
pub mod continuity;
pub mod dry_run;
pub mod evaluation;
pub mod experiment_results;
pub mod experiments;
pub mod gates;
pub mod inputs;
pub mod interests;
pub mod model_choice;
pub mod night;
pub mod propensity;
pub mod publish;
#[cfg(test)]
mod recipe;
pub mod recommendations;
pub mod record;
pub mod registry;
pub mod segments;
pub mod unit;

pub use crate::engine::progress::StageMetrics;
