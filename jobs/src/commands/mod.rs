//! What the `persona` CLI runs, one module per command family; each returns a report that
//! [`report`] prints.
//!
//! - [`pipeline`]: `persona run`, `evaluate`, `check` and `--dry-run`: the night, under the
//!   run lock, the stage watchdog and the signal handlers; [`demo`]: `persona demo`;
//! - [`query`]: `persona sql`, read-only, over the published tables;
//! - [`experiment`]: `persona experiment plan`, the size of an A/B test;
//! - [`audience`]: `persona audience preview`, an audience over a published night;
//! - [`als`], [`kmeans`], [`propensity`]: the models on any Parquet table (`persona als` is a
//!   short night of the night's own stages), each run by [`on_table`].

pub mod als;
pub mod audience;
pub mod demo;
pub mod experiment;
pub mod kmeans;
pub mod on_table;
pub mod pipeline;
pub mod propensity;
pub mod query;
pub mod report;
