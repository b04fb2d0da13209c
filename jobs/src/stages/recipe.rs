//! docs/how-it-works.md's "Adding a stage", followed to the letter by a test: a throw-away SQL
//! stage (a registry entry naming its SQL) and a throw-away Rust stage (a registry entry and a
//! [`Unit`]) are added to the night, and nothing else changes: the night runs them, `--dry-run`
//! plans them, the SQL stage's table is published and the Rust stage's report reaches the
//! manifest.

use std::fmt;

use async_trait::async_trait;
use serde::Serialize;

use super::night::Night;
use super::record::Report;
use super::registry::{NIGHT, Part, Stage};
use super::unit::{SqlQuery, Unit};
use crate::engine::sql::SqlFile;
use crate::error::Result;

/// The throw-away Rust stage's report.
#[derive(Debug, Serialize)]
struct LoyalReport {
    customers: u64,
}

impl Report for LoyalReport {
    const KEY: &'static str = "loyal";

    fn summary(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "\nLoyal customers: {}", self.customers)
    }
}

/// The throw-away Rust stage: counts the throw-away SQL stage's rows.
struct CountLoyal;

#[async_trait(?Send)]
impl Unit for CountLoyal {
    fn code(&self) -> &'static str {
        "jobs/src/stages/recipe.rs"
    }

    async fn run(&self, _stage: &Stage, night: &mut Night<'_>) -> Result<u64> {
        let customers = night.ctx.table("loyal_customers").await?.count().await? as u64;
        night.record.reports.put(LoyalReport { customers });
        Ok(customers)
    }

    async fn plan(&self, _stage: &Stage, _night: &mut Night<'_>) -> Result<String> {
        Ok("counts loyal_customers\n".into())
    }
}

/// The night with both stages added before `publish`: one entry each.
fn night_with_two_more_stages() -> &'static [Stage] {
    let mut stages = NIGHT.to_vec();
    let publish = stages.len() - 1;
    stages.insert(
        publish,
        Stage {
            name: "loyal_customers",
            part: Part::Outputs,
            sql: Some(SqlFile {
                file: "99_loyal_customers.sql",
                text: "-- input: user_features   output: loyal_customers\n\
                       SELECT customer_id, purchases FROM user_features WHERE purchases >= 2",
            }),
            with: &[],
            unit: &SqlQuery,
            reads: &["user_features"],
            writes: &["loyal_customers"],
            published: true,
        },
    );
    stages.insert(
        publish + 1,
        Stage {
            name: "count_loyal",
            part: Part::Outputs,
            sql: None,
            with: &[],
            unit: &CountLoyal,
            reads: &["loyal_customers"],
            writes: &[],
            published: false,
        },
    );
    stages.leak()
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "tests fail by panicking")]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::commands::pipeline::{self, RunOptions};
    use crate::config::PipelineConfig;
    use crate::engine::progress::Progress;
    use crate::engine::session::Engine;
    use crate::generate::{self, GenerateOptions, Scale};

    async fn tiny_input(dir: &Path, date: chrono::NaiveDate) {
        generate::generate(&GenerateOptions {
            scale: Scale::Tiny,
            seed: 7,
            out: dir.to_string_lossy().into_owned(),
            end_date: date,
            days: 28,
            anonymous_share: GenerateOptions::ANONYMOUS_SHARE,
            types: Default::default(),
            campaign: None,
        })
        .await
        .unwrap();
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_stage_is_one_registry_entry_and_one_file() {
        let dir = tempfile::tempdir().unwrap();
        let date = chrono::NaiveDate::from_ymd_opt(2026, 11, 22).unwrap();
        tiny_input(&dir.path().join("in"), date).await;
        let mut config = PipelineConfig::default();
        config.evaluation.enabled = false;
        config.propensity.enabled = false;
        let opts = RunOptions {
            input: dir.path().join("in").to_string_lossy().into_owned(),
            output: dir.path().join("out").to_string_lossy().into_owned(),
            date,
            config,
            engine: Engine::Local,
            evaluate_only: false,
            export_split: None,
            stages: night_with_two_more_stages(),
        };

        let plan = pipeline::dry_run(&opts).await.unwrap();
        assert!(plan.contains("== loyal_customers (outputs)"), "{plan}");
        assert!(plan.contains("== count_loyal (outputs)\ncounts loyal_customers"));

        let summary = pipeline::run(&opts, &mut Progress::new()).await.unwrap();
        let manifest = &summary.manifest;
        let loyal = manifest.tables["loyal_customers"];
        assert!(loyal > 0, "the tiny night has customers with two purchases");
        assert!(manifest.published.contains_key("loyal_customers"));
        assert_eq!(manifest.reports["loyal"]["customers"], loyal);
        assert!(
            summary
                .reports
                .contains(&format!("Loyal customers: {loyal}"))
        );
        let stages: Vec<&str> = manifest.stages.iter().map(|m| m.name.as_str()).collect();
        let at = |name| stages.iter().position(|s| *s == name).unwrap();
        assert_eq!(at("count_loyal"), at("loyal_customers") + 1);
        assert_eq!(at("publish"), at("count_loyal") + 1);
    }
}
