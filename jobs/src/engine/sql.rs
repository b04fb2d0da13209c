//! The SQL files under `sql/`, embedded at build time, and how their parameters are filled.
//! Which file a stage runs, when and with what, is the stage registry's business
//! ([`crate::stages::registry`] names each SQL stage's file, numbered in run order).
//!
//! Each file reads logical table names only (registered by the pipeline) and produces one table,
//! named in its header. Parameters are written `{{name}}` and filled by [`render`]; an unfilled
//! parameter is an error, never silently left in the query.

use std::collections::BTreeMap;

use crate::error::{PipelineError, Result};

/// One SQL file under `sql/`, embedded at build time.
#[derive(Debug, Clone, Copy)]
pub struct SqlFile {
    /// Its path under `sql/` (`10_interactions.sql`, `als/pairs.sql`).
    pub file: &'static str,
    /// The SQL text.
    pub text: &'static str,
}

/// The file `sql/<path>`, embedded: `sql_file!("10_interactions.sql")`.
macro_rules! sql_file {
    ($path:literal) => {
        $crate::engine::sql::SqlFile {
            file: $path,
            text: include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../sql/", $path)),
        }
    };
}
pub(crate) use sql_file;

/// SQL that Rust code runs outside the registry, under `sql/als/`: what `persona als` adds to
/// the night's stages it runs, and the evaluation's top-k, rendered like the stages. Named by
/// their path (`als/recommendations`).
pub const TEMPLATES: &[SqlFile] = &[
    sql_file!("als/recommendations.sql"),
    sql_file!("als/holdout_ratings.sql"),
    sql_file!("als/holdout_pairs.sql"),
    sql_file!("als/eval_top_n.sql"),
    sql_file!("als/neighbour_holdout.sql"),
];

/// The template `name` (`als/recommendations`) rendered with `params`.
pub fn template(name: &str, params: &BTreeMap<&str, String>) -> Result<String> {
    let template = TEMPLATES
        .iter()
        .find(|t| t.file.strip_suffix(".sql") == Some(name))
        .ok_or_else(|| PipelineError::Internal(format!("no SQL template {name}")))?;
    render(template, params)
}

/// Fills `{{name}}` parameters. Fails on a parameter without a value.
pub fn render(stage: &SqlFile, params: &BTreeMap<&str, String>) -> Result<String> {
    let mut out = String::with_capacity(stage.text.len());
    let mut rest = stage.text;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            return Err(PipelineError::Internal(format!(
                "{}: unclosed '{{{{'",
                stage.file
            )));
        };
        let name = after[..end].trim();
        let value = params.get(name).ok_or_else(|| {
            PipelineError::Internal(format!(
                "{}: no value for parameter {{{{{name}}}}}",
                stage.file
            ))
        })?;
        out.push_str(value);
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "tests fail by panicking")]
mod tests {
    use super::*;

    #[test]
    fn every_template_file_is_listed() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../sql/als");
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| format!("als/{}", e.unwrap().file_name().to_string_lossy()))
            .collect();
        files.sort();
        let mut listed: Vec<&str> = TEMPLATES.iter().map(|t| t.file).collect();
        listed.sort();
        assert_eq!(files, listed);
    }

    #[test]
    fn render_fills_and_rejects_missing_parameters() {
        let s = SqlFile {
            file: "t.sql",
            text: "SELECT {{a}} + {{ b }}",
        };
        let mut p = BTreeMap::new();
        p.insert("a", "1".to_string());
        assert!(render(&s, &p).unwrap_err().to_string().contains("{{b}}"));
        p.insert("b", "2".to_string());
        assert_eq!(render(&s, &p).unwrap(), "SELECT 1 + 2");
    }
}
