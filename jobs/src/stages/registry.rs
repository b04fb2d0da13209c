//! The map of the night: every stage of `persona run`, in run order, declared once.
//!
//! A stage has one name, used by the progress display, errors, fault injection
//! (`PERSONA_FAIL_AT`) and the manifest; the tables it reads and writes; whether its table is
//! published; and how it runs ([`Runner`]). `persona run`, `persona evaluate`, `persona check`,
//! `persona stages`, `--dry-run` and the tests all take their lists from [`NIGHT`]: a new stage
//! is one entry here (and, if it is SQL, one numbered file under `sql/`).

use std::fmt;

/// The part of the night a stage belongs to. The commands run different parts ([`Mode`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// Reading, cleaning and stitching the inputs, then the data-quality gates: what
    /// `persona check` runs.
    Intake,
    /// Features, indexes and interactions: the models' inputs.
    Features,
    /// The model fits (K-Means, ALS).
    Models,
    /// The output tables built from the models.
    Outputs,
    /// The offline evaluation (when `[evaluation] enabled`, and `persona evaluate`).
    Evaluation,
    /// The purchase-propensity model, its scores and its evaluation (when `[propensity]
    /// enabled`; `persona run` only).
    Propensity,
    /// Staging and committing the published tables and the manifest.
    Publish,
}

/// How a stage runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runner {
    /// Validates the input sources against the contract and registers them.
    Inputs,
    /// The SQL file under `sql/` that produces the table named like the stage.
    Sql,
    /// The data-quality gates over `event_drops`: fails the night when one fails.
    Gates,
    /// Segmentation: K-Means over `user_features` ([`crate::stages::segments`]).
    KMeans,
    /// Implicit ALS over `interactions` ([`crate::stages::recommendations`]).
    Als,
    /// The evaluation's own fit on the training days and the top-N of ALS and of popularity
    /// for the holdout's customers ([`crate::als::evaluate::recommend`]).
    EvalFit,
    /// The `evaluation` SQL stage, then its scores read back for the manifest.
    EvalScores,
    /// The propensity model's fit, calibration and scores ([`crate::propensity`]).
    Propensity,
    /// The `propensity_evaluation` SQL stage, then its metrics read back for the manifest.
    PropensityScores,
    /// Stages every published table and the manifest, then commits them.
    Publish,
}

/// One stage of the night.
#[derive(Debug, Clone, Copy)]
pub struct Stage {
    /// The stage's one name (for SQL stages, the table it produces).
    pub name: &'static str,
    /// Its part of the night.
    pub part: Part,
    /// How it runs.
    pub runner: Runner,
    /// Tables (and input sources) it reads.
    pub reads: &'static [&'static str],
    /// Tables it writes into the run's work area.
    pub writes: &'static [&'static str],
    /// Whether the table it writes is published under the output root.
    pub published: bool,
}

/// An SQL stage: runs `sql/NN_<name>.sql`, which writes the table `<name>`.
macro_rules! sql {
    ($name:literal, $part:expr, [$($read:literal),* $(,)?], $published:literal $(,)?) => {
        Stage {
            name: $name,
            part: $part,
            runner: Runner::Sql,
            reads: &[$($read),*],
            writes: &[$name],
            published: $published,
        }
    };
}

/// The night, in run order.
pub const NIGHT: &[Stage] = &[
    Stage {
        name: "inputs",
        part: Part::Intake,
        runner: Runner::Inputs,
        reads: &["web_logs/", "app_events/", "crm_customers/", "items/"],
        writes: &["web_logs", "app_events", "crm_customers", "items"],
        published: false,
    },
    sql!("web_logs_flagged", Part::Intake, ["web_logs"], false),
    sql!("app_events_flagged", Part::Intake, ["app_events"], false),
    sql!("customers", Part::Intake, ["crm_customers"], false),
    sql!("identity_map", Part::Intake, ["web_logs_flagged"], false),
    sql!(
        "events",
        Part::Intake,
        [
            "web_logs_flagged",
            "app_events_flagged",
            "identity_map",
            "customers",
            "items",
        ],
        false,
    ),
    sql!(
        "event_drops",
        Part::Intake,
        [
            "web_logs_flagged",
            "app_events_flagged",
            "identity_map",
            "events",
            "customers"
        ],
        false,
    ),
    Stage {
        name: "gates",
        part: Part::Intake,
        runner: Runner::Gates,
        reads: &["event_drops"],
        writes: &[],
        published: false,
    },
    sql!(
        "user_features",
        Part::Features,
        ["events", "customers", "items"],
        true
    ),
    sql!("item_index", Part::Features, ["events", "items"], false),
    sql!("user_index", Part::Features, ["events"], false),
    sql!(
        "interactions",
        Part::Features,
        ["events", "user_index", "item_index"],
        false,
    ),
    sql!(
        "popular_items",
        Part::Features,
        ["interactions", "item_index"],
        false,
    ),
    sql!(
        "eval_train",
        Part::Evaluation,
        ["events", "user_index", "item_index"],
        false,
    ),
    sql!(
        "eval_holdout",
        Part::Evaluation,
        ["events", "user_index", "item_index", "eval_train"],
        false,
    ),
    Stage {
        name: "eval_fit",
        part: Part::Evaluation,
        runner: Runner::EvalFit,
        reads: &["eval_train", "eval_holdout", "user_index", "item_index"],
        writes: &["eval_user_factor_rows", "eval_recommendations"],
        published: false,
    },
    Stage {
        name: "evaluation",
        part: Part::Evaluation,
        runner: Runner::EvalScores,
        reads: &["eval_recommendations", "eval_holdout"],
        writes: &["evaluation"],
        published: true,
    },
    Stage {
        name: "kmeans",
        part: Part::Models,
        runner: Runner::KMeans,
        reads: &["user_features"],
        writes: &["segment_points", "segment_assignments", "segment_labels"],
        published: false,
    },
    Stage {
        name: "als",
        part: Part::Models,
        runner: Runner::Als,
        reads: &["interactions", "user_index", "item_index"],
        writes: &["user_factor_rows", "item_factor_rows"],
        published: false,
    },
    sql!(
        "als_recommendations",
        Part::Outputs,
        ["user_factor_rows", "interactions"],
        false,
    ),
    sql!(
        "user_profiles",
        Part::Outputs,
        ["user_features", "segment_assignments", "segment_labels"],
        true,
    ),
    sql!(
        "segments",
        Part::Outputs,
        ["user_profiles", "segment_labels"],
        true,
    ),
    sql!(
        "recommendations",
        Part::Outputs,
        [
            "als_recommendations",
            "interactions",
            "user_index",
            "item_index",
            "user_profiles",
            "popular_items",
        ],
        true,
    ),
    sql!(
        "user_factors",
        Part::Outputs,
        ["user_factor_rows", "user_index"],
        true,
    ),
    sql!(
        "item_factors",
        Part::Outputs,
        ["item_factor_rows", "item_index"],
        true,
    ),
    sql!(
        "similar_items",
        Part::Outputs,
        ["item_factor_rows", "item_index"],
        true,
    ),
    sql!("data_quality", Part::Outputs, ["event_drops"], true),
    sql!(
        "propensity_snapshots",
        Part::Propensity,
        ["events", "customers"],
        false
    ),
    Stage {
        name: "propensity_fit",
        part: Part::Propensity,
        runner: Runner::Propensity,
        reads: &["propensity_snapshots"],
        writes: &[
            "propensity_points",
            "propensity_holdout",
            "propensity_scores",
            "propensity_coefficients",
        ],
        published: false,
    },
    sql!("propensity", Part::Propensity, ["propensity_scores"], true),
    sql!(
        "propensity_model",
        Part::Propensity,
        ["propensity_coefficients"],
        true
    ),
    Stage {
        name: "propensity_evaluation",
        part: Part::Propensity,
        runner: Runner::PropensityScores,
        reads: &["propensity_holdout"],
        writes: &["propensity_evaluation"],
        published: true,
    },
    Stage {
        name: "publish",
        part: Part::Publish,
        runner: Runner::Publish,
        reads: &[],
        writes: &[],
        published: false,
    },
];

/// Which command is running the night.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `persona run`: everything, the evaluation when enabled.
    Run {
        /// Whether the offline evaluation runs (`[evaluation] enabled`).
        evaluation: bool,
    },
    /// `persona evaluate`: the inputs, the features and the evaluation; publishes only
    /// `evaluation`.
    Evaluate,
    /// `persona check`: the intake and the gates; publishes nothing.
    Check,
}

impl Mode {
    /// Whether this command runs the stages of `part`.
    pub fn runs(self, part: Part) -> bool {
        match self {
            Mode::Run { evaluation } => part != Part::Evaluation || evaluation,
            Mode::Evaluate => !matches!(part, Part::Models | Part::Outputs | Part::Propensity),
            Mode::Check => part == Part::Intake,
        }
    }

    /// Whether this command publishes the table of `stage`.
    pub fn publishes(self, stage: &Stage) -> bool {
        stage.published
            && match self {
                Mode::Run { .. } => true,
                Mode::Evaluate => stage.part == Part::Evaluation,
                Mode::Check => false,
            }
    }
}

/// The stages a command runs, in order.
pub fn stages_of(mode: Mode) -> impl Iterator<Item = &'static Stage> {
    NIGHT.iter().filter(move |s| mode.runs(s.part))
}

/// Every table `persona run` can publish (with the evaluation on), in run order.
pub fn published_tables() -> impl Iterator<Item = &'static str> {
    NIGHT.iter().filter(|s| s.published).map(|s| s.name)
}

/// The stage called `name`.
pub fn find(name: &str) -> Option<&'static Stage> {
    NIGHT.iter().find(|s| s.name == name)
}

impl fmt::Display for Part {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Part::Intake => "intake",
            Part::Features => "features",
            Part::Models => "models",
            Part::Outputs => "outputs",
            Part::Evaluation => "evaluation",
            Part::Propensity => "propensity",
            Part::Publish => "publish",
        };
        f.pad(name)
    }
}

impl Stage {
    /// Where the stage's code is: its SQL file, or the Rust module that runs it.
    pub fn code(&self) -> String {
        let module = match self.runner {
            Runner::Sql | Runner::EvalScores | Runner::PropensityScores => {
                return crate::sql::stage(self.name)
                    .map(|q| format!("sql/{}", q.file))
                    .unwrap_or_default();
            }
            Runner::Inputs => "input.rs",
            Runner::Gates => "gates.rs",
            Runner::KMeans => "stages/segments.rs",
            Runner::Als => "stages/recommendations.rs",
            Runner::EvalFit => "als/evaluate.rs",
            Runner::Propensity => "propensity/mod.rs",
            Runner::Publish => "publish.rs",
        };
        format!("jobs/src/{module}")
    }
}

/// `persona stages`: the night as a table (name, part, code, published, reads and writes).
pub struct NightTable;

impl fmt::Display for NightTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{:<3} {:<20} {:<10} {:<34} {:<9} reads -> writes",
            "#", "stage", "part", "code", "published"
        )?;
        for (i, s) in NIGHT.iter().enumerate() {
            let writes = if s.writes.is_empty() {
                "-".to_string()
            } else {
                s.writes.join(", ")
            };
            writeln!(
                f,
                "{:<3} {:<20} {:<10} {:<34} {:<9} {} -> {}",
                i + 1,
                s.name,
                s.part,
                s.code(),
                if s.published { "yes" } else { "" },
                s.reads.join(", "),
                writes
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "tests fail by panicking")]
mod tests {
    use std::collections::BTreeSet;

    use datafusion::prelude::SessionContext;
    use datafusion::sql::parser::DFParser;

    use super::*;
    use crate::config::PipelineConfig;
    use crate::input::Window;
    use crate::stages::night::sql_params;

    #[test]
    fn every_name_is_unique_and_every_sql_file_is_one_stage_in_file_order() {
        let names: BTreeSet<&str> = NIGHT.iter().map(|s| s.name).collect();
        assert_eq!(names.len(), NIGHT.len(), "stage names must be unique");
        let sql_stages: Vec<&str> = NIGHT
            .iter()
            .filter(|s| {
                matches!(
                    s.runner,
                    Runner::Sql | Runner::EvalScores | Runner::PropensityScores
                )
            })
            .map(|s| crate::sql::stage(s.name).unwrap().file)
            .collect();
        let files: Vec<&str> = crate::sql::STAGES.iter().map(|s| s.file).collect();
        assert_eq!(sql_stages, files, "sql/ numbers must be the run order");
    }

    #[test]
    fn every_table_read_was_written_by_an_earlier_stage() {
        let mut written: BTreeSet<&str> = BTreeSet::new();
        for stage in NIGHT {
            for table in stage.reads.iter().filter(|t| !t.ends_with('/')) {
                assert!(
                    written.contains(table),
                    "{} reads {table}, which no earlier stage writes",
                    stage.name
                );
            }
            written.extend(stage.writes);
        }
    }

    /// The declared reads of each SQL stage are exactly the tables its query names, and its
    /// file's header says the same.
    #[tokio::test]
    async fn sql_stages_read_what_they_declare() {
        let ctx = SessionContext::new();
        let config = PipelineConfig::default();
        let date = chrono::NaiveDate::from_ymd_opt(2026, 11, 22).unwrap();
        let mut params = sql_params(&config, Window::ending(date, 28));
        params.extend(crate::als::evaluate::params(&config.evaluation, 1));
        params.extend(crate::stages::interests::params(&ctx).await.unwrap());
        for stage in NIGHT.iter().filter(|s| {
            matches!(
                s.runner,
                Runner::Sql | Runner::EvalScores | Runner::PropensityScores
            )
        }) {
            let sql = crate::sql::stage(stage.name).unwrap();
            let text = crate::sql::render(sql, &params).unwrap();
            let statements = DFParser::parse_sql(&text).unwrap();
            let refs = ctx
                .state()
                .resolve_table_references(&statements[0])
                .unwrap();
            let tables: BTreeSet<String> = refs.iter().map(|r| r.table().to_string()).collect();
            let declared: BTreeSet<String> = stage.reads.iter().map(|t| t.to_string()).collect();
            assert_eq!(tables, declared, "{}: tables read", sql.file);
            let header = sql.text.lines().next().unwrap();
            for table in stage.reads {
                assert!(header.contains(table), "{}: header names {table}", sql.file);
            }
        }
    }

    #[test]
    fn modes_run_and_publish_their_parts() {
        let names = |mode| stages_of(mode).map(|s| s.name).collect::<Vec<_>>();
        let check = names(Mode::Check);
        assert_eq!(check.first(), Some(&"inputs"));
        assert_eq!(check.last(), Some(&"gates"));
        assert!(!names(Mode::Run { evaluation: false }).contains(&"eval_fit"));
        assert!(names(Mode::Run { evaluation: true }).contains(&"eval_fit"));
        let evaluate = names(Mode::Evaluate);
        assert!(evaluate.contains(&"interactions") && !evaluate.contains(&"als"));
        let published = |mode: Mode| {
            NIGHT
                .iter()
                .filter(|s| mode.publishes(s))
                .map(|s| s.name)
                .collect::<Vec<_>>()
        };
        assert_eq!(published(Mode::Evaluate), ["evaluation"]);
        assert!(published(Mode::Check).is_empty());
        assert_eq!(
            published(Mode::Run { evaluation: true }),
            published_tables().collect::<Vec<_>>()
        );
        assert_eq!(find("kmeans").map(|s| s.runner), Some(Runner::KMeans));
    }
}
