//! The SQL stages: the files under `sql/`, embedded at build time, numbered in run order. When
//! and with what each runs is the stage registry's business ([`crate::stages::registry`]).
//!
//! Each file reads logical table names only (registered by the pipeline) and produces one table,
//! named in its header. Parameters are written `{{name}}` and filled by [`render`]; an unfilled
//! parameter is an error, never silently left in the query.

use std::collections::BTreeMap;

use crate::error::{PipelineError, Result};

/// One SQL stage.
#[derive(Debug, Clone, Copy)]
pub struct SqlStage {
    /// The table it produces (and the stage's name).
    pub output: &'static str,
    /// File name under `sql/`.
    pub file: &'static str,
    /// The SQL text.
    pub text: &'static str,
}

macro_rules! stage {
    ($output:literal, $file:literal) => {
        SqlStage {
            output: $output,
            file: $file,
            text: include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../sql/", $file)),
        }
    };
}

macro_rules! template {
    ($name:literal) => {
        SqlStage {
            output: $name,
            file: concat!($name, ".sql"),
            text: include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../sql/",
                $name,
                ".sql"
            )),
        }
    };
}

/// Every SQL stage, in file (= run) order.
pub const STAGES: &[SqlStage] = &[
    stage!("web_logs_flagged", "01_web_logs_flagged.sql"),
    stage!("app_events_flagged", "02_app_events_flagged.sql"),
    stage!("customers", "03_customers.sql"),
    stage!("identity_map", "04_identity_map.sql"),
    stage!("events", "05_events.sql"),
    stage!("event_drops", "06_event_drops.sql"),
    stage!("user_features", "07_user_features.sql"),
    stage!("item_index", "08_item_index.sql"),
    stage!("user_index", "09_user_index.sql"),
    stage!("interactions", "10_interactions.sql"),
    stage!("popular_items", "11_popular_items.sql"),
    stage!("eval_train", "12_eval_train.sql"),
    stage!("eval_holdout", "13_eval_holdout.sql"),
    stage!("evaluation", "14_evaluation.sql"),
    stage!("als_recommendations", "15_als_recommendations.sql"),
    stage!("user_profiles", "16_user_profiles.sql"),
    stage!("segments", "17_segments.sql"),
    stage!("recommendations", "18_recommendations.sql"),
    stage!("user_factors", "19_user_factors.sql"),
    stage!("item_factors", "20_item_factors.sql"),
    stage!("similar_items", "21_similar_items.sql"),
    stage!("data_quality", "22_data_quality.sql"),
    stage!("propensity_snapshots", "23_propensity_snapshots.sql"),
    stage!("propensity", "24_propensity.sql"),
    stage!("propensity_model", "25_propensity_model.sql"),
    stage!("propensity_evaluation", "26_propensity_evaluation.sql"),
];

/// SQL that Rust code runs outside the registry, under `sql/als/`: the queries of `persona als`
/// and the evaluation's top-k, rendered like the stages. Named by their path (`als/pairs`).
pub const TEMPLATES: &[SqlStage] = &[
    template!("als/index"),
    template!("als/pairs"),
    template!("als/recommendations"),
    template!("als/factors"),
    template!("als/holdout_ratings"),
    template!("als/holdout_pairs"),
    template!("als/eval_top_n"),
];

/// The template `name` (`als/pairs`) rendered with `params`.
pub fn template(name: &str, params: &BTreeMap<&str, String>) -> Result<String> {
    let template = TEMPLATES
        .iter()
        .find(|t| t.output == name)
        .ok_or_else(|| PipelineError::Internal(format!("no SQL template {name}")))?;
    render(template, params)
}

/// Looks a stage up by the table it produces.
pub fn stage(output: &str) -> Result<&'static SqlStage> {
    STAGES
        .iter()
        .find(|s| s.output == output)
        .ok_or_else(|| PipelineError::Internal(format!("no SQL stage produces {output}")))
}

/// Fills `{{name}}` parameters. Fails on a parameter without a value.
pub fn render(stage: &SqlStage, params: &BTreeMap<&str, String>) -> Result<String> {
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
    fn every_sql_file_is_registered_once_in_order() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../sql");
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|f| f.ends_with(".sql"))
            .collect();
        files.sort();
        let registered: Vec<&str> = STAGES.iter().map(|s| s.file).collect();
        assert_eq!(files, registered);
        for s in STAGES {
            assert!(
                s.text.contains(&format!("output: {}", s.output)),
                "{} header must name its output",
                s.file
            );
        }
    }

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
        let s = SqlStage {
            output: "t",
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
