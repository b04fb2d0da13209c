//! The interactive `persona sql` shell: line editing and history (rustyline), statements that
//! may span lines and end with `;`, `\d` to list the tables, `\d TABLE` for its columns, `\q`.

use rustyline::DefaultEditor;
use rustyline::error::ReadlineError;

use super::{Analyst, SqlOptions, write_results};
use crate::error::{PipelineError, Result};

/// Runs the shell until `\q` or end of input.
pub async fn run(analyst: &Analyst, opts: &SqlOptions) -> Result<()> {
    let mut editor = DefaultEditor::new()
        .map_err(|e| PipelineError::Internal(format!("cannot start the line editor: {e}")))?;
    let history =
        std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".persona_sql_history"));
    if let Some(h) = &history {
        let _ = editor.load_history(h);
    }
    println!(
        "persona sql on {} tables; end statements with ';'. \\d lists tables, \\d TABLE shows columns, \\q quits.",
        analyst.tables().len()
    );
    let mut pending = String::new();
    loop {
        let prompt = if pending.is_empty() {
            "persona> "
        } else {
            "     ...> "
        };
        let line = match editor.readline(prompt) {
            Ok(line) => line,
            Err(ReadlineError::Interrupted) => {
                pending.clear();
                continue;
            }
            Err(ReadlineError::Eof) => break,
            Err(e) => return Err(PipelineError::Internal(format!("line editor: {e}"))),
        };
        let trimmed = line.trim();
        if pending.is_empty() && trimmed.starts_with('\\') {
            let _ = editor.add_history_entry(trimmed);
            match command(analyst, trimmed).await {
                Ok(true) => break,
                Ok(false) => {}
                Err(e) => eprintln!("error: {e}"),
            }
            continue;
        }
        pending.push_str(&line);
        pending.push('\n');
        if !trimmed.ends_with(';') {
            continue;
        }
        let sql = std::mem::take(&mut pending);
        let _ = editor.add_history_entry(sql.trim());
        let started = std::time::Instant::now();
        match analyst.query(&sql).await {
            Ok(batches) => {
                if let Err(e) = write_results(&batches, opts.format, None) {
                    eprintln!("error: {e}");
                }
                eprintln!("({:.3} s)", started.elapsed().as_secs_f64());
            }
            Err(e) => eprintln!("error: {e}"),
        }
    }
    if let Some(h) = &history {
        let _ = editor.save_history(h);
    }
    Ok(())
}

/// A backslash command; returns true to quit.
async fn command(analyst: &Analyst, line: &str) -> Result<bool> {
    let mut words = line.split_whitespace();
    match (words.next(), words.next()) {
        (Some("\\q"), _) => Ok(true),
        (Some("\\d"), None) => {
            for t in analyst.tables() {
                println!(
                    "{:<24} latest {}  ({} dates; history: {}_history)",
                    t.name,
                    t.date,
                    t.dates.len(),
                    t.name
                );
            }
            Ok(false)
        }
        (Some("\\d"), Some(table)) => {
            let df = analyst.context().table(table).await.map_err(|_| {
                PipelineError::Query(format!("no table '{table}' (\\d lists the tables)"))
            })?;
            for field in df.schema().fields() {
                println!(
                    "{:<28} {}{}",
                    field.name(),
                    field.data_type(),
                    if field.is_nullable() { "" } else { " not null" }
                );
            }
            Ok(false)
        }
        _ => Err(PipelineError::Query(format!(
            "unknown command {line}: \\d, \\d TABLE or \\q"
        ))),
    }
}
