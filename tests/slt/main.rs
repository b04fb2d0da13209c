//! The SQL test layer: every `.slt` file under `tests/slt/` runs on Persona's own session (its
//! UDFs and settings, `target_partitions` fixed at 4), one fresh session per file, so SQL
//! semantics are tested in milliseconds instead of through whole nights.
//!
//! Besides SQL, a file may say `STAGE <name>`: the SQL stage `sql/NN_<name>.sql`, rendered with
//! the parameters of a default night ending on 2026-11-22 (28-day window), is materialised as
//! the in-memory table `<name>`, over whatever tables the file created before. `STAGE <name>
//! WITH <param>=<value>, …` changes some of those parameters first.
//!
//! `ITEM FACTORS <n>: <row>; <row>; …` (each row the factors of one `item_idx`, from 0, values
//! separated by spaces) registers `als_top_n` and `als_similar` over those item factors,
//! recommending `n` items, as the als stage does after its fit.
//!
//! `cargo test -p persona-tests --test slt` runs them; `-- --complete` rewrites each file's
//! expected results from what the queries return now (review the diff); `-- NAME` runs only
//! the files whose name contains NAME.
//!
//! Runs on the `sqllogictest` crate's runner with an engine of ours rather than on
//! `datafusion-sqllogictest`: that crate switches on DataFusion's `avro` feature and arrow's
//! `chrono-tz`, for the tests only, so `cargo build` and `cargo test` would each compile
//! DataFusion with its own features, twice the ~25-minute cold build.

#![expect(clippy::expect_used, reason = "a test runner fails by panicking")]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Float32Type, Float64Type};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::catalog::MemTable;
use datafusion::error::DataFusionError;
use datafusion::logical_expr::ScalarUDF;
use datafusion::prelude::SessionContext;
use persona_jobs::config::PipelineConfig;
use persona_jobs::engine::session::{self, Engine};
use persona_jobs::input::Window;
use persona_jobs::stages::night::sql_params;
use persona_udfs::ml::Factors;
use persona_udfs::scalar::{AlsTopN, TopNModel};
use sqllogictest::{DBOutput, DefaultColumnType};

/// The run date of the stages' parameters.
const DATE: (i32, u32, u32) = (2026, 11, 22);

/// One file's database: a fresh Persona session.
struct PersonaDb {
    ctx: SessionContext,
}

impl PersonaDb {
    async fn new() -> Result<Self, DataFusionError> {
        let ctx = session::new_context(&Engine::Local, &PipelineConfig::default())
            .await
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        ctx.sql("SET datafusion.execution.target_partitions = 4")
            .await?
            .collect()
            .await?;
        Ok(Self { ctx })
    }

    /// `STAGE <name> [WITH <param>=<value>, …]`: materialises the SQL stage `<name>` in
    /// memory, with these `{{parameters}}` changed.
    async fn stage(&self, spec: &str) -> Result<u64, DataFusionError> {
        let (name, overrides) = spec.split_once(" WITH ").unwrap_or((spec, ""));
        let name = name.trim();
        let external = |e: persona_jobs::PipelineError| DataFusionError::External(Box::new(e));
        let config = PipelineConfig::default();
        let (y, m, d) = DATE;
        let date = chrono::NaiveDate::from_ymd_opt(y, m, d).expect("a date");
        let mut params = sql_params(&config, Window::ending(date, config.window.lookback_days));
        params.extend(persona_jobs::models::als::evaluate::params(
            &config.evaluation,
            config.recommendations.model,
            1,
        ));
        params.extend(
            persona_jobs::stages::interests::params(&self.ctx)
                .await
                .map_err(external)?,
        );
        for pair in overrides.split(',').filter(|p| !p.trim().is_empty()) {
            let (key, value) = pair
                .split_once('=')
                .ok_or_else(|| DataFusionError::Plan(format!("WITH {pair}: not name=value")))?;
            let key = params
                .keys()
                .copied()
                .find(|k| *k == key.trim())
                .ok_or_else(|| DataFusionError::Plan(format!("no parameter {key}")))?;
            params.insert(key, value.trim().to_string());
        }
        let stage = persona_jobs::stages::registry::find(name)
            .ok_or_else(|| DataFusionError::Plan(format!("no stage {name}")))?;
        let text = stage.render(&params).map_err(external)?;
        let df = self.ctx.sql(&text).await?;
        let planned = Arc::new(df.schema().as_arrow().clone());
        let batches = df.collect().await?;
        // The batches' own schema: execution may know a column to be non-nullable where the
        // plan did not.
        let schema = batches.first().map_or(planned, |b| b.schema());
        let rows = batches.iter().map(|b| b.num_rows() as u64).sum();
        self.ctx.deregister_table(name)?;
        self.ctx
            .register_table(name, Arc::new(MemTable::try_new(schema, vec![batches])?))?;
        Ok(rows)
    }
}

impl PersonaDb {
    /// `ITEM FACTORS <n>: <row>; …`: registers the top-N functions over these item factors.
    fn item_factors(&self, spec: &str) -> Result<u64, DataFusionError> {
        let bad =
            || DataFusionError::Plan(format!("expected ITEM FACTORS <n>: <row>; …, got {spec}"));
        let (n, rows) = spec.split_once(':').ok_or_else(bad)?;
        let n: usize = n.trim().parse().map_err(|_| bad())?;
        let rows: Vec<Vec<f32>> = rows
            .split(';')
            .map(|r| r.split_whitespace().map(str::parse).collect())
            .collect::<Result<_, _>>()
            .map_err(|_| bad())?;
        let rank = rows.first().map_or(0, Vec::len);
        let items = rows.len();
        let factors =
            Factors::new(items, rank, rows.into_iter().flatten().collect()).ok_or_else(bad)?;
        let allowed = Arc::new(vec![true; items]);
        let model = |factors: Factors| TopNModel {
            items: Arc::new(factors),
            allowed: Arc::clone(&allowed),
            n,
        };
        self.ctx
            .register_udf(ScalarUDF::from(AlsTopN::similar_normalized(model(
                factors.normalized(),
            ))));
        self.ctx
            .register_udf(ScalarUDF::from(AlsTopN::new(model(factors))));
        Ok(items as u64)
    }
}

#[async_trait]
impl sqllogictest::AsyncDB for PersonaDb {
    type Error = DataFusionError;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, DataFusionError> {
        if let Some(name) = sql.trim().strip_prefix("STAGE ") {
            return Ok(DBOutput::StatementComplete(self.stage(name.trim()).await?));
        }
        if let Some(model) = sql.trim().strip_prefix("ITEM FACTORS ") {
            return Ok(DBOutput::StatementComplete(self.item_factors(model)?));
        }
        let df = self.ctx.sql(sql).await?;
        let types: Vec<DefaultColumnType> = df
            .schema()
            .fields()
            .iter()
            .map(|f| column_type(f.data_type()))
            .collect();
        let batches = df.collect().await?;
        if types.is_empty() {
            // DDL and `SET` return no columns.
            return Ok(DBOutput::StatementComplete(0));
        }
        let mut rows = Vec::new();
        for batch in &batches {
            rows.extend(format_rows(batch)?);
        }
        Ok(DBOutput::Rows { types, rows })
    }

    async fn shutdown(&mut self) {}

    fn engine_name(&self) -> &str {
        "persona"
    }

    async fn sleep(dur: Duration) {
        tokio::time::sleep(dur).await;
    }
}

/// `I` for integers, `R` for floating point, `T` for everything else (as DataFusion's own
/// `.slt` files write them).
fn column_type(t: &DataType) -> DefaultColumnType {
    if t.is_integer() {
        DefaultColumnType::Integer
    } else if t.is_floating() || matches!(t, DataType::Decimal128(..) | DataType::Decimal256(..)) {
        DefaultColumnType::FloatingPoint
    } else {
        DefaultColumnType::Text
    }
}

/// Every value as text: `NULL` for nulls, `(empty)` for empty strings, floats rounded to 12
/// significant digits (so results do not depend on summation order), the rest as Arrow
/// displays it.
fn format_rows(batch: &RecordBatch) -> Result<Vec<Vec<String>>, DataFusionError> {
    let options = FormatOptions::default().with_null("NULL");
    let columns: Vec<(&ArrayRef, ArrayFormatter<'_>)> = batch
        .columns()
        .iter()
        .map(|c| Ok((c, ArrayFormatter::try_new(c.as_ref(), &options)?)))
        .collect::<Result<_, DataFusionError>>()?;
    let mut rows = Vec::with_capacity(batch.num_rows());
    for r in 0..batch.num_rows() {
        let row = columns
            .iter()
            .map(|(array, formatter)| {
                if array.is_null(r) {
                    return "NULL".to_string();
                }
                let text = match array.data_type() {
                    DataType::Float64 => round(array.as_primitive::<Float64Type>().value(r)),
                    DataType::Float32 => {
                        round(f64::from(array.as_primitive::<Float32Type>().value(r)))
                    }
                    _ => formatter.value(r).to_string(),
                };
                if text.is_empty() {
                    "(empty)".to_string()
                } else {
                    text
                }
            })
            .collect();
        rows.push(row);
    }
    Ok(rows)
}

fn round(v: f64) -> String {
    if !v.is_finite() || v == 0.0 {
        return format!("{v}");
    }
    let digits = 12 - 1 - v.abs().log10().floor() as i32;
    let scale = 10f64.powi(digits.clamp(0, 300));
    let rounded = if digits > 0 {
        (v * scale).round() / scale
    } else {
        v
    };
    format!("{rounded}")
}

fn slt_files(filter: Option<&str>) -> Vec<PathBuf> {
    // The checkout being tested: cargo sets the variable when it runs the test (the value
    // compiled in may name another checkout that shares the build folder).
    let manifest_dir =
        std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into());
    let dir = Path::new(&manifest_dir).join("slt");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("tests/slt")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "slt"))
        .filter(|p| filter.is_none_or(|f| p.to_string_lossy().contains(f)))
        .collect();
    files.sort();
    files
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let complete = args.iter().any(|a| a == "--complete");
    let filter = args
        .iter()
        .find(|a| !a.starts_with('-'))
        .map(String::as_str);
    let files = slt_files(filter);
    let (mut passed, mut failed) = (0, 0);
    for file in &files {
        let mut runner = sqllogictest::Runner::new(PersonaDb::new);
        runner.with_column_validator(sqllogictest::strict_column_validator);
        let result = if complete {
            runner
                .update_test_file(
                    file,
                    " ",
                    sqllogictest::default_validator,
                    sqllogictest::default_normalizer,
                    sqllogictest::strict_column_validator,
                )
                .await
                .map_err(|e| e.to_string())
        } else {
            runner.run_file_async(file).await.map_err(|e| e.to_string())
        };
        let name = file.file_name().map(|n| n.to_string_lossy().into_owned());
        match result {
            Ok(()) => {
                passed += 1;
                println!("ok     {}", name.unwrap_or_default());
            }
            Err(e) => {
                failed += 1;
                println!("FAILED {}:\n{e}", name.unwrap_or_default());
            }
        }
    }
    println!("{passed} passed, {failed} failed");
    if failed > 0 || files.is_empty() {
        std::process::ExitCode::FAILURE
    } else {
        std::process::ExitCode::SUCCESS
    }
}
