//! The engine: how queries run and outputs land, whatever the stage. Nothing here knows a
//! model, a stage or a command.
//!
//! - [`session`]: the DataFusion or Ballista session, its settings and memory pool;
//!   [`cluster`]: what Ballista plans carry (codecs, factor files); [`servers`]: the scheduler
//!   and executor processes.
//! - [`storage`]: local and `s3://` roots; [`tables`]: Parquet tables and identifier quoting;
//!   [`sql`]: the SQL files embedded from `sql/` and their `{{parameters}}`.
//! - [`work`]: where a run materialises its tables; [`publish`]: staging the outputs;
//!   [`commit`]: the whole-night commit and the `dt=` partitions; [`lock`]: one run per date.
//! - [`watchdog`], [`signals`], [`progress`] and [`fault`] injection: a run's supervision.

pub mod cluster;
pub mod commit;
pub mod fault;
pub mod lock;
pub mod progress;
pub mod publish;
pub mod servers;
pub mod session;
pub mod signals;
pub mod sql;
pub mod storage;
pub mod tables;
pub mod watchdog;
pub mod work;
