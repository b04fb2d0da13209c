//! `persona sql`: SQL over the published tables, for analysts.
//!
//! The tables are registered by [`catalog::register_outputs`]; a query given on the command line
//! (or statements piped on stdin) run once and print in the chosen [`Format`]; on a terminal
//! without a query, [`shell`] opens an interactive shell.

pub mod catalog;
pub mod shell;

use std::io::Write;
use std::path::{Path, PathBuf};

use arrow::record_batch::RecordBatch;
use chrono::NaiveDate;
use datafusion::common::utils::datafusion_strsim::levenshtein;
use datafusion::error::DataFusionError;
use datafusion::execution::context::SQLOptions;
use datafusion::prelude::SessionContext;
use datafusion::sql::parser::DFParser;

use crate::config::PipelineConfig;
use crate::engine::session::{self, Engine};
use crate::engine::storage::Root;
use crate::error::{PipelineError, Result, first_line};

/// How results are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// An aligned table (for people).
    Table,
    /// CSV with a header row.
    Csv,
    /// JSON lines: one object per row.
    Json,
    /// Parquet (needs `--out`).
    Parquet,
}

/// What `persona sql` was asked.
#[derive(Debug, Clone)]
pub struct SqlOptions {
    /// Output root of `persona run` (folder or `s3://`).
    pub output: String,
    /// Read this date instead of each table's latest.
    pub date: Option<NaiveDate>,
    /// Result format.
    pub format: Format,
    /// Write results here instead of stdout.
    pub out: Option<PathBuf>,
    /// The statements; `None` opens the shell (or reads stdin when it is not a terminal).
    pub query: Option<String>,
    /// Configuration (for `[storage]`).
    pub config: PipelineConfig,
}

/// A session with the published tables registered.
pub struct Analyst {
    ctx: SessionContext,
    tables: Vec<catalog::TableInfo>,
    root: Root,
}

impl Analyst {
    /// Opens the output root of `opts`.
    pub async fn open(opts: &SqlOptions) -> Result<Self> {
        let root = Root::parse(&opts.output, &opts.config.storage)?;
        let ctx = session::new_context(&Engine::Local, &opts.config).await?;
        let tables = catalog::register_outputs(&ctx, &root, opts.date).await?;
        Ok(Self { ctx, tables, root })
    }

    /// The registered tables.
    pub fn tables(&self) -> &[catalog::TableInfo] {
        &self.tables
    }

    /// The session (for describing tables).
    pub fn context(&self) -> &SessionContext {
        &self.ctx
    }

    /// Runs every statement of `sql` and returns the batches of the last one.
    pub async fn query(&self, sql: &str) -> Result<Vec<RecordBatch>> {
        let statements = DFParser::parse_sql(sql).map_err(|e| self.explain(e))?;
        if statements.is_empty() {
            return Err(PipelineError::Config("no SQL statement given".into()));
        }
        let mut last = Vec::new();
        for statement in statements {
            let plan = self
                .ctx
                .state()
                .statement_to_plan(statement)
                .await
                .map_err(|e| self.explain(e))?;
            // Refused before anything runs: planning a statement has no effect, executing it
            // does (a COPY writes, a CREATE registers).
            read_only()
                .verify_plan(&plan)
                .map_err(|e| self.refused(&e))?;
            let df = self
                .ctx
                .execute_logical_plan(plan)
                .await
                .map_err(|e| self.explain(e))?;
            last = df.collect().await.map_err(|e| self.explain(e))?;
        }
        Ok(last)
    }

    /// A statement that would write or change the session, refused in one line.
    fn refused(&self, e: &DataFusionError) -> PipelineError {
        let what = e.to_string();
        let what = what
            .split_once("Error during planning: ")
            .map_or(what.as_str(), |(_, rest)| rest);
        PipelineError::Query(format!(
            "persona sql only reads the tables published under {}: {} (queries only: no CREATE, DROP, INSERT, COPY, SET or other statement that writes or changes the session)",
            self.root.display(),
            first_line(what)
        ))
    }

    /// A query error as an analyst's tool says it: unknown tables get the close matches and
    /// the list of tables.
    fn explain(&self, e: DataFusionError) -> PipelineError {
        let text = e.to_string();
        if let Some(missing) = missing_table(&text) {
            let mut names: Vec<String> = self
                .tables
                .iter()
                .flat_map(|t| [t.name.clone(), format!("{}_history", t.name)])
                .collect();
            names.sort_by_key(|n| levenshtein(n, &missing));
            let close: Vec<&String> = names
                .iter()
                .filter(|n| levenshtein(n, &missing) <= 3.max(missing.len() / 3))
                .take(3)
                .collect();
            let hint = match close.as_slice() {
                [] => String::new(),
                some => format!(
                    " Did you mean {}?",
                    some.iter()
                        .map(|n| format!("'{n}'"))
                        .collect::<Vec<_>>()
                        .join(" or ")
                ),
            };
            let mut all: Vec<&str> = self.tables.iter().map(|t| t.name.as_str()).collect();
            all.sort();
            return PipelineError::Query(format!(
                "table '{missing}' not found in {}.{hint} Tables: {} (and each as <table>_history)",
                self.root.display(),
                all.join(", ")
            ));
        }
        if file_vanished(&e) {
            return PipelineError::Storage(format!(
                "a published file under {} was removed while this query read it: the night was rerun and its replaced run's folders removed after [output] keep_replaced_hours; run the query again ({})",
                self.root.display(),
                first_line(&text)
            ));
        }
        PipelineError::Query(first_line(&text).to_string())
    }
}

/// Whether a query failed because a file it had planned to read was gone: the night it read
/// was replaced and its folders removed after the grace period. Never an answer from part of a
/// night: the query fails with one message (exit 5).
fn file_vanished(e: &DataFusionError) -> bool {
    let not_found = |e: &DataFusionError| match e {
        DataFusionError::ObjectStore(inner) => {
            matches!(**inner, object_store::Error::NotFound { .. })
        }
        DataFusionError::IoError(io) => io.kind() == std::io::ErrorKind::NotFound,
        _ => false,
    };
    let text = e.to_string();
    not_found(e.find_root())
        || text.contains("No such file or directory")
        || (text.contains("Object at location") && text.contains("not found"))
}

/// What `persona sql` lets a statement do: read the registered tables. DDL (`CREATE [EXTERNAL]
/// TABLE`, `CREATE VIEW`, `DROP`), DML (`INSERT`, `COPY … TO`) and session statements (`SET`)
/// are refused, so an analyst's query can neither write a file, nor read one outside the
/// published tables (the raw CRM export), nor change what later queries see.
fn read_only() -> SQLOptions {
    SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false)
}

/// The bare name in DataFusion's "table 'datafusion.public.x' not found".
fn missing_table(message: &str) -> Option<String> {
    let start = message.find("table '")? + "table '".len();
    let rest = &message[start..];
    let end = rest.find("' not found")?;
    let qualified = &rest[..end];
    Some(
        qualified
            .rsplit('.')
            .next()
            .unwrap_or(qualified)
            .to_string(),
    )
}

/// Refuses an `--out` file inside a local output root: it could overwrite a published table or
/// a night's manifest (and the night would no longer open).
fn check_out_outside(output: &Root, out: Option<&Path>) -> Result<()> {
    let (Some(root), Some(out)) = (output.local_path(), out) else {
        return Ok(());
    };
    // The file may not exist yet: resolve its folder (`.` for a bare name), then add its name.
    let resolve = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let out_abs = resolve(parent).join(out.file_name().unwrap_or_default());
    let root_abs = resolve(root);
    if out_abs.starts_with(&root_abs) {
        return Err(PipelineError::Query(format!(
            "--out {} is inside the output root {}: writing there could replace a published table or a night's manifest; write the results elsewhere",
            out.display(),
            root_abs.display()
        )));
    }
    Ok(())
}

/// `persona sql`.
pub async fn run(opts: &SqlOptions) -> Result<()> {
    check_out_outside(
        &Root::parse(&opts.output, &opts.config.storage)?,
        opts.out.as_deref(),
    )?;
    let analyst = Analyst::open(opts).await?;
    let sql = match &opts.query {
        Some(q) => q.clone(),
        None if std::io::IsTerminal::is_terminal(&std::io::stdin()) => {
            return shell::run(&analyst, opts).await;
        }
        None => std::io::read_to_string(std::io::stdin())
            .map_err(|e| PipelineError::Config(format!("cannot read SQL from stdin: {e}")))?,
    };
    let batches = analyst.query(&sql).await?;
    write_results(&batches, opts.format, opts.out.as_deref())
}

/// Writes `batches` in `format` to `out` (or stdout).
pub fn write_results(
    batches: &[RecordBatch],
    format: Format,
    out: Option<&std::path::Path>,
) -> Result<()> {
    let mut buffer: Vec<u8> = Vec::new();
    match format {
        Format::Table => {
            let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
            if rows > 0 {
                let table = arrow::util::pretty::pretty_format_batches(batches)?;
                writeln!(buffer, "{table}").map_err(write_error)?;
            }
            writeln!(buffer, "({rows} row{})", if rows == 1 { "" } else { "s" })
                .map_err(write_error)?;
        }
        Format::Csv => {
            let mut writer = arrow::csv::WriterBuilder::new()
                .with_header(true)
                .build(&mut buffer);
            for b in batches {
                writer.write(&nested_as_text(b)?)?;
            }
        }
        Format::Json => {
            let mut writer = arrow::json::LineDelimitedWriter::new(&mut buffer);
            for b in batches {
                writer.write(b)?;
            }
            writer.finish()?;
        }
        Format::Parquet => {
            let Some(path) = out else {
                return Err(PipelineError::Config(
                    "--format parquet needs --out FILE".into(),
                ));
            };
            let Some(first) = batches.first() else {
                return Err(PipelineError::Config(
                    "the query returned no batches to write as Parquet".into(),
                ));
            };
            let file = std::fs::File::create(path).map_err(|e| PipelineError::io(path, e))?;
            let mut writer = parquet::arrow::ArrowWriter::try_new(file, first.schema(), None)?;
            for b in batches {
                writer.write(b)?;
            }
            writer.close()?;
            return Ok(());
        }
    }
    match out {
        Some(path) => std::fs::write(path, &buffer).map_err(|e| PipelineError::io(path, e)),
        None => std::io::stdout().write_all(&buffer).map_err(write_error),
    }
}

/// CSV has no nested values: lists and structs are written as their display text
/// (`[a, b]`, `{x: 1}`), as in the table format.
fn nested_as_text(batch: &RecordBatch) -> Result<RecordBatch> {
    let schema = batch.schema();
    if !schema.fields().iter().any(|f| f.data_type().is_nested()) {
        return Ok(batch.clone());
    }
    let options = arrow::util::display::FormatOptions::default();
    let mut fields = Vec::new();
    let mut columns: Vec<arrow::array::ArrayRef> = Vec::new();
    for (field, column) in schema.fields().iter().zip(batch.columns()) {
        if field.data_type().is_nested() {
            let formatter = arrow::util::display::ArrayFormatter::try_new(column, &options)?;
            let text: arrow::array::StringArray = (0..column.len())
                .map(|i| column.is_valid(i).then(|| formatter.value(i).to_string()))
                .collect();
            fields.push(arrow::datatypes::Field::new(
                field.name(),
                arrow::datatypes::DataType::Utf8,
                true,
            ));
            columns.push(std::sync::Arc::new(text));
        } else {
            fields.push(field.as_ref().clone());
            columns.push(std::sync::Arc::clone(column));
        }
    }
    Ok(RecordBatch::try_new(
        std::sync::Arc::new(arrow::datatypes::Schema::new(fields)),
        columns,
    )?)
}

fn write_error(e: std::io::Error) -> PipelineError {
    PipelineError::Storage(format!("cannot write the results: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_tables_are_found_in_datafusion_messages() {
        assert_eq!(
            missing_table("Error during planning: table 'datafusion.public.segmnts' not found"),
            Some("segmnts".to_string())
        );
        assert_eq!(missing_table("Schema error: No field named x"), None);
    }
}
