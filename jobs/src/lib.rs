//! Persona's nightly pipeline: staging, features, segments (K-Means), recommendations
//! (implicit ALS) and publishing, on Apache DataFusion.
//!
//! - [`contract`]: the input sources and their columns; [`input`] validates and registers them.
//! - [`sql`]: the SQL stages embedded from `sql/`; [`work`]: where their tables are materialised.
//! - [`stages`]: the night's stage registry, the loop that runs it, and the model stages;
//!   [`kmeans`]: distributed K-Means (also `persona kmeans`); [`als`]: implicit ALS (also
//!   `persona als` and the evaluation); [`publish`]: atomic publishing; [`manifest`]: the run
//!   record; [`gates`]: the data-quality gates.
//! - [`pipeline`]: `persona run`, `evaluate`, `check` and `--dry-run` around the night, with
//!   [`watchdog`], [`signals`] and [`fault`] injection; [`generate`]: `persona generate` demo
//!   data.
//! - [`cluster`]: what Ballista plans carry (codecs, factor files); [`servers`]: the scheduler
//!   and executor processes; [`tables`]: Parquet tables and quoting for `kmeans` and `als`.
//! - [`query`]: `persona sql` over the published tables.
//! - [`storage`]: local and `s3://` roots; [`lock`]: one run per date at a time.
//! - [`config`], [`session`], [`progress`], [`error`]: the plumbing.

pub mod als;
pub mod cluster;
pub mod commit;
pub mod config;
pub mod contract;
pub mod demo;
pub mod error;
pub mod fault;
pub mod gates;
pub mod generate;
pub mod input;
pub mod kmeans;
pub mod lock;
pub mod manifest;
pub mod pipeline;
pub mod progress;
pub mod propensity;
pub mod publish;
pub mod query;
pub mod report;
pub mod servers;
pub mod session;
pub mod signals;
pub mod sql;
pub mod stages;
pub mod storage;
pub mod tables;
pub mod watchdog;
pub mod work;

pub use error::{PipelineError, Result};
