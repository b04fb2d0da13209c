//! The map of the night: every stage of `persona run`, in run order, declared once.
//!
//! A stage has one name, used by the progress display, errors, fault injection
//! (`PERSONA_FAIL_AT`) and the manifest; the tables it reads and writes; whether its table is
//! published; its SQL file, if it has one; and the [`Unit`] that runs and plans it. `persona
//! run`, `persona evaluate`, `persona check`, `persona stages`, `--dry-run` and the tests all
//! take their lists from [`NIGHT`]. A new SQL stage is one `sql!` line here and its numbered
//! file under `sql/`; a new Rust stage is one line here and one file that implements [`Unit`]
//! (docs/how-it-works.md, "Adding a stage").

use std::collections::BTreeMap;
use std::fmt;

use super::audiences::{Changes, CustomerView, Exports, Selection};
use super::evaluation::{EvaluationFit, EvaluationKnn, EvaluationScores};
use super::experiment_results::Results;
use super::experiments::Assignment;
use super::gates::Gates;
use super::inputs::Inputs;
use super::model_choice::{ModelRecommendations, WhenPublished};
use super::propensity::{PropensityEvaluation, PropensityFit};
use super::publish::Publish;
use super::recommendations::AlsFit;
use super::segments::Segmentation;
use super::unit::{SqlQuery, SqlWhen, Unit};
use crate::config::RecommendationModel;
use crate::engine::sql::{SqlFile, sql_file};
use crate::error::{PipelineError, Result};

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
    /// The A/B tests' assignments (when `[[experiments]]` are declared; `persona run` only).
    Experiments,
    /// The campaign audiences (when `[[audiences]]` are declared; `persona run` only).
    Audiences,
    /// Staging and committing the published tables and the manifest.
    Publish,
}

/// One stage of the night.
#[derive(Clone, Copy)]
pub struct Stage {
    /// The stage's one name (for SQL stages, the table it produces).
    pub name: &'static str,
    /// Its part of the night.
    pub part: Part,
    /// The SQL file it runs, if any (`sql/NN_<name>.sql`).
    pub sql: Option<SqlFile>,
    /// Parameters its SQL is rendered with in place of the night's: `(name, other)` gives
    /// `{{name}}` the value of `{{other}}` (a file that two stages run over different days).
    pub with: &'static [(&'static str, &'static str)],
    /// What runs it and plans it: [`SqlQuery`] for a plain SQL stage.
    pub unit: &'static dyn Unit,
    /// Tables (and input sources) it reads.
    pub reads: &'static [&'static str],
    /// Tables it writes into the run's work area.
    pub writes: &'static [&'static str],
    /// Whether the table it writes is published under the output root.
    pub published: bool,
}

impl fmt::Debug for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stage")
            .field("name", &self.name)
            .field("part", &self.part)
            .field("code", &self.code())
            .finish()
    }
}

/// An SQL stage: runs `sql/<file>`, which writes the table `<name>`.
macro_rules! sql {
    ($name:literal, $file:literal, $part:expr, [$($read:literal),* $(,)?], $published:literal $(,)?) => {
        Stage {
            name: $name,
            part: $part,
            sql: Some(sql_file!($file)),
            with: &[],
            unit: &SqlQuery,
            reads: &[$($read),*],
            writes: &[$name],
            published: $published,
        }
    };
}

/// The item-to-item model's night stages: only with `[recommendations.item_knn] enabled`.
const ITEM_KNN_SQL: SqlWhen = SqlWhen {
    runs: |c| c.recommendations.item_knn_on(),
    off: "[recommendations.item_knn] enabled = false",
};

/// The customer-to-customer model's night stages: only with `[recommendations.user_knn]
/// enabled`.
const USER_KNN_SQL: SqlWhen = SqlWhen {
    runs: |c| c.recommendations.user_knn_on(),
    off: "[recommendations.user_knn] enabled = false",
};

/// The item-to-item model in the evaluation.
const EVAL_ITEM_KNN: EvaluationKnn = EvaluationKnn {
    model: RecommendationModel::ItemKnn,
    recommendations: "eval_item_knn",
    export_as: "item_neighbours.parquet",
};

/// The customer-to-customer model in the evaluation.
const EVAL_USER_KNN: EvaluationKnn = EvaluationKnn {
    model: RecommendationModel::UserKnn,
    recommendations: "eval_user_knn",
    export_as: "customer_neighbours.parquet",
};

/// The experiments' SQL stage: only with `[[experiments]]` declared.
const EXPERIMENT_SQL: SqlWhen = SqlWhen {
    runs: |c| !c.experiments.is_empty(),
    off: "no [[experiments]] declared",
};

/// The audiences' SQL stage: only with `[[audiences]]` declared.
const AUDIENCE_SQL: SqlWhen = SqlWhen {
    runs: |c| !c.audiences.is_empty(),
    off: "no [[audiences]] declared",
};

/// The night, in run order.
pub const NIGHT: &[Stage] = &[
    Stage {
        name: "inputs",
        part: Part::Intake,
        sql: None,
        with: &[],
        unit: &Inputs,
        reads: &[
            "web_logs/",
            "app_events/",
            "crm_customers/",
            "items/",
            "suppressions/",
        ],
        writes: &[
            "web_logs",
            "app_events",
            "crm_customers",
            "items",
            "suppressions",
        ],
        published: false,
    },
    sql!(
        "web_logs_flagged",
        "01_web_logs_flagged.sql",
        Part::Intake,
        ["web_logs"],
        false
    ),
    sql!(
        "app_events_flagged",
        "02_app_events_flagged.sql",
        Part::Intake,
        ["app_events"],
        false
    ),
    sql!(
        "customers",
        "03_customers.sql",
        Part::Intake,
        ["crm_customers"],
        false
    ),
    sql!(
        "identity_map",
        "04_identity_map.sql",
        Part::Intake,
        ["web_logs_flagged"],
        false
    ),
    sql!(
        "events",
        "05_events.sql",
        Part::Intake,
        [
            "web_logs_flagged",
            "app_events_flagged",
            "identity_map",
            "customers",
            "items"
        ],
        false,
    ),
    sql!(
        "event_drops",
        "06_event_drops.sql",
        Part::Intake,
        [
            "web_logs_flagged",
            "app_events_flagged",
            "events",
            "customers"
        ],
        false,
    ),
    Stage {
        name: "gates",
        part: Part::Intake,
        sql: None,
        with: &[],
        unit: &Gates,
        reads: &["event_drops"],
        writes: &[],
        published: false,
    },
    sql!(
        "user_features",
        "07_user_features.sql",
        Part::Features,
        ["events", "customers", "items"],
        true
    ),
    sql!(
        "item_index",
        "08_item_index.sql",
        Part::Features,
        ["events", "items"],
        false
    ),
    sql!(
        "user_index",
        "09_user_index.sql",
        Part::Features,
        ["events"],
        false
    ),
    sql!(
        "interactions",
        "10_interactions.sql",
        Part::Features,
        ["events", "user_index", "item_index"],
        false,
    ),
    sql!(
        "popular_items",
        "11_popular_items.sql",
        Part::Features,
        ["interactions", "item_index"],
        false
    ),
    // The interactions of the days before the holdout, weighed as `interactions` weighs them
    // (which sums them in the same pass).
    sql!(
        "eval_train",
        "12_eval_train.sql",
        Part::Evaluation,
        ["interactions"],
        false
    ),
    sql!(
        "eval_holdout",
        "13_eval_holdout.sql",
        Part::Evaluation,
        ["interactions", "item_index", "eval_train"],
        false,
    ),
    Stage {
        name: "eval_fit",
        part: Part::Evaluation,
        sql: None,
        with: &[],
        unit: &EvaluationFit,
        reads: &["eval_train", "eval_holdout", "user_index", "item_index"],
        writes: &["eval_user_factor_rows", "eval_recommendations"],
        published: false,
    },
    // The item-to-item model on the same training days, scored beside ALS.
    Stage {
        name: "eval_item_neighbours",
        part: Part::Evaluation,
        sql: Some(sql_file!("14_item_neighbour_rows.sql")),
        with: &[("knn_interactions", "eval_interactions")],
        unit: &EVAL_ITEM_KNN,
        reads: &["eval_train"],
        writes: &["eval_item_neighbours"],
        published: false,
    },
    Stage {
        name: "eval_item_knn",
        part: Part::Evaluation,
        sql: Some(sql_file!("15_item_knn_recommendations.sql")),
        with: &[
            ("knn_interactions", "eval_interactions"),
            ("knn_neighbour_table", "eval_neighbours"),
            ("knn_customers", "eval_customers"),
            ("knn_exclude", "every_item"),
            ("knn_top_n", "eval_k"),
        ],
        unit: &EVAL_ITEM_KNN,
        // Its unit also adds its rows to eval_fit's `eval_recommendations` (rewritten, not
        // read by the SQL, so not among the reads).
        reads: &[
            "eval_train",
            "eval_item_neighbours",
            "eval_holdout",
            "item_index",
        ],
        writes: &["eval_item_knn", "eval_recommendations"],
        published: false,
    },
    // The customer-to-customer model on the same training days, scored beside ALS.
    Stage {
        name: "eval_customer_neighbours",
        part: Part::Evaluation,
        sql: Some(sql_file!("16_customer_neighbour_rows.sql")),
        with: &[("knn_interactions", "eval_interactions")],
        unit: &EVAL_USER_KNN,
        reads: &["eval_train"],
        writes: &["eval_customer_neighbours"],
        published: false,
    },
    Stage {
        name: "eval_user_knn",
        part: Part::Evaluation,
        sql: Some(sql_file!("17_user_knn_recommendations.sql")),
        with: &[
            ("knn_interactions", "eval_interactions"),
            ("knn_neighbour_table", "eval_customer_neighbours"),
            ("knn_customers", "eval_customers"),
            ("knn_exclude", "every_item"),
            ("knn_top_n", "eval_k"),
        ],
        unit: &EVAL_USER_KNN,
        // Its unit also adds its rows to `eval_recommendations`, as eval_item_knn's does.
        reads: &[
            "eval_train",
            "eval_customer_neighbours",
            "eval_holdout",
            "item_index",
        ],
        writes: &["eval_user_knn", "eval_recommendations"],
        published: false,
    },
    Stage {
        name: "evaluation",
        part: Part::Evaluation,
        sql: Some(crate::models::als::evaluate::SCORES_SQL),
        with: &[],
        unit: &EvaluationScores,
        reads: &["eval_recommendations", "eval_holdout"],
        writes: &["evaluation"],
        published: true,
    },
    Stage {
        name: "kmeans",
        part: Part::Models,
        sql: None,
        with: &[],
        unit: &Segmentation,
        reads: &["user_features"],
        writes: &["segment_points", "segment_assignments", "segment_labels"],
        published: false,
    },
    Stage {
        name: "als",
        part: Part::Models,
        sql: None,
        with: &[],
        unit: &AlsFit,
        reads: &["interactions", "user_index", "item_index"],
        writes: &["user_factor_rows", "item_factor_rows"],
        published: false,
    },
    // The item-to-item model over the whole window: its neighbours, published by item id.
    Stage {
        name: "item_neighbour_rows",
        part: Part::Models,
        sql: Some(sql_file!("14_item_neighbour_rows.sql")),
        with: &[("knn_interactions", "night_interactions")],
        unit: &ITEM_KNN_SQL,
        reads: &["interactions"],
        writes: &["item_neighbour_rows"],
        published: false,
    },
    // The customer-to-customer model over the whole window: published by customer id.
    Stage {
        name: "customer_neighbour_rows",
        part: Part::Models,
        sql: Some(sql_file!("16_customer_neighbour_rows.sql")),
        with: &[("knn_interactions", "night_interactions")],
        unit: &USER_KNN_SQL,
        reads: &["interactions"],
        writes: &["customer_neighbour_rows"],
        published: false,
    },
    sql!(
        "als_recommendations",
        "19_als_recommendations.sql",
        Part::Outputs,
        ["user_factor_rows", "interactions"],
        false,
    ),
    // The neighbourhood models' top-N for every customer, on the nights that publish them.
    Stage {
        name: "item_knn_recommendations",
        part: Part::Outputs,
        sql: Some(sql_file!("15_item_knn_recommendations.sql")),
        with: &[
            ("knn_interactions", "night_interactions"),
            ("knn_neighbour_table", "night_neighbours"),
            ("knn_customers", "every_customer"),
            ("knn_exclude", "exclude_rule"),
            ("knn_top_n", "top_n"),
        ],
        unit: &WhenPublished(RecommendationModel::ItemKnn),
        reads: &["interactions", "item_neighbour_rows", "item_index"],
        writes: &["item_knn_recommendations"],
        published: false,
    },
    Stage {
        name: "user_knn_recommendations",
        part: Part::Outputs,
        sql: Some(sql_file!("17_user_knn_recommendations.sql")),
        with: &[
            ("knn_interactions", "night_interactions"),
            ("knn_neighbour_table", "night_customer_neighbours"),
            ("knn_customers", "every_customer"),
            ("knn_exclude", "exclude_rule"),
            ("knn_top_n", "top_n"),
        ],
        unit: &WhenPublished(RecommendationModel::UserKnn),
        reads: &["interactions", "customer_neighbour_rows", "item_index"],
        writes: &["user_knn_recommendations"],
        published: false,
    },
    // The published model's top-N ([recommendations] model).
    Stage {
        name: "model_recommendations",
        part: Part::Outputs,
        sql: None,
        with: &[],
        unit: &ModelRecommendations,
        reads: &[
            "als_recommendations",
            "item_knn_recommendations",
            "user_knn_recommendations",
        ],
        writes: &["model_recommendations"],
        published: false,
    },
    sql!(
        "user_profiles",
        "20_user_profiles.sql",
        Part::Outputs,
        ["user_features", "segment_assignments", "segment_labels"],
        true,
    ),
    sql!(
        "segments",
        "21_segments.sql",
        Part::Outputs,
        ["user_profiles", "segment_labels"],
        true
    ),
    sql!(
        "recommendations",
        "22_recommendations.sql",
        Part::Outputs,
        [
            "model_recommendations",
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
        "23_user_factors.sql",
        Part::Outputs,
        ["user_factor_rows", "user_index"],
        true
    ),
    sql!(
        "item_factors",
        "24_item_factors.sql",
        Part::Outputs,
        ["item_factor_rows", "item_index"],
        true
    ),
    sql!(
        "similar_items",
        "25_similar_items.sql",
        Part::Outputs,
        ["item_factor_rows", "item_index"],
        true
    ),
    Stage {
        name: "item_neighbours",
        part: Part::Outputs,
        sql: Some(sql_file!("26_item_neighbours.sql")),
        with: &[],
        unit: &ITEM_KNN_SQL,
        reads: &["item_neighbour_rows", "item_index"],
        writes: &["item_neighbours"],
        published: true,
    },
    Stage {
        name: "similar_customers",
        part: Part::Outputs,
        sql: Some(sql_file!("27_similar_customers.sql")),
        with: &[],
        unit: &USER_KNN_SQL,
        reads: &["customer_neighbour_rows", "user_index"],
        writes: &["similar_customers"],
        published: true,
    },
    sql!(
        "data_quality",
        "28_data_quality.sql",
        Part::Outputs,
        ["event_drops"],
        true
    ),
    sql!(
        "propensity_snapshots",
        "29_propensity_snapshots.sql",
        Part::Propensity,
        ["events", "customers"],
        false,
    ),
    Stage {
        name: "propensity_fit",
        part: Part::Propensity,
        sql: None,
        with: &[],
        unit: &PropensityFit,
        reads: &["propensity_snapshots"],
        writes: &[
            "propensity_points",
            "propensity_holdout",
            "propensity_scores",
            "propensity_coefficients",
        ],
        published: false,
    },
    sql!(
        "propensity",
        "30_propensity.sql",
        Part::Propensity,
        ["propensity_scores"],
        true
    ),
    sql!(
        "propensity_model",
        "31_propensity_model.sql",
        Part::Propensity,
        ["propensity_coefficients"],
        true,
    ),
    Stage {
        name: "propensity_evaluation",
        part: Part::Propensity,
        sql: Some(sql_file!("32_propensity_evaluation.sql")),
        with: &[],
        unit: &PropensityEvaluation,
        reads: &["propensity_holdout"],
        writes: &["propensity_evaluation"],
        published: true,
    },
    // The audiences come before the experiments: an experiment can take its customers from
    // an audience (`experiment = "key"`), whose holdout is its control arm.
    Stage {
        name: "audience_customers",
        part: Part::Audiences,
        sql: Some(sql_file!("33_audience_customers.sql")),
        with: &[],
        unit: &CustomerView,
        reads: &[
            "user_profiles",
            "audience_propensity",
            "recommendations",
            "suppressions",
        ],
        // audience_propensity: a view of `propensity`, or no rows when it did not run.
        writes: &["audience_propensity", "audience_customers"],
        published: false,
    },
    Stage {
        name: "audiences",
        part: Part::Audiences,
        sql: None,
        with: &[],
        unit: &Selection,
        reads: &["audience_customers"],
        writes: &["audiences", "audience_counts"],
        published: true,
    },
    Stage {
        name: "experiment_assignments",
        part: Part::Experiments,
        sql: None,
        with: &[],
        unit: &Assignment,
        reads: &["user_profiles", "propensity", "audiences"],
        writes: &["experiment_assignments"],
        published: true,
    },
    Stage {
        name: "experiment_customers",
        part: Part::Experiments,
        sql: Some(sql_file!("34_experiment_customers.sql")),
        with: &[],
        unit: &EXPERIMENT_SQL,
        reads: &["experiment_assignments", "events"],
        writes: &["experiment_customers"],
        published: false,
    },
    Stage {
        name: "experiment_results",
        part: Part::Experiments,
        sql: None,
        with: &[],
        unit: &Results,
        reads: &["experiment_customers"],
        writes: &["experiment_results"],
        published: true,
    },
    Stage {
        name: "audience_changes",
        part: Part::Audiences,
        sql: Some(sql_file!("35_audience_changes.sql")),
        with: &[],
        unit: &Changes,
        reads: &["audiences", "previous_audiences"],
        // previous_audiences: the last published night's `audiences`, or no rows.
        writes: &["previous_audiences", "audience_changes"],
        published: true,
    },
    Stage {
        name: "audience_summary",
        part: Part::Audiences,
        sql: Some(sql_file!("36_audience_summary.sql")),
        with: &[],
        unit: &AUDIENCE_SQL,
        reads: &[
            "audience_counts",
            "audiences",
            "audience_customers",
            "audience_changes",
        ],
        writes: &["audience_summary"],
        published: true,
    },
    // The activation files: written into the night's run folder of `exports`, committed by
    // the manifest with the tables.
    Stage {
        name: "audience_export_rows",
        part: Part::Audiences,
        sql: Some(sql_file!("37_audience_export_rows.sql")),
        with: &[],
        unit: &Exports,
        reads: &["audiences", "crm_customers"],
        writes: &["audience_export_rows"],
        published: false,
    },
    Stage {
        name: "publish",
        part: Part::Publish,
        sql: None,
        with: &[],
        unit: &Publish,
        // Besides every published table: the manifest's data-quality counts.
        reads: &["event_drops"],
        writes: &[],
        published: false,
    },
];

/// Which command is running the night.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `persona run`: everything, the evaluation and the propensity model when enabled.
    Run {
        /// Whether the offline evaluation runs (`[evaluation] enabled`).
        evaluation: bool,
        /// Whether the propensity model runs (`[propensity] enabled`).
        propensity: bool,
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
            Mode::Run {
                evaluation,
                propensity,
            } => match part {
                Part::Evaluation => evaluation,
                Part::Propensity => propensity,
                _ => true,
            },
            Mode::Evaluate => !matches!(
                part,
                Part::Models
                    | Part::Outputs
                    | Part::Propensity
                    | Part::Experiments
                    | Part::Audiences
            ),
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
            Part::Experiments => "experiments",
            Part::Audiences => "audiences",
            Part::Publish => "publish",
        };
        f.pad(name)
    }
}

impl Stage {
    /// Where the stage's code is: its SQL file, or the file of the unit that runs it.
    pub fn code(&self) -> String {
        match &self.sql {
            Some(sql) => format!("sql/{}", sql.file),
            None => self.unit.code().to_string(),
        }
    }

    /// Its SQL file, for the stages that have one.
    pub fn sql_file(&self) -> Result<&SqlFile> {
        self.sql
            .as_ref()
            .ok_or_else(|| PipelineError::Internal(format!("stage {} has no SQL file", self.name)))
    }

    /// Its SQL, rendered with the night's `params` and its own [`Stage::with`].
    pub fn render(&self, params: &BTreeMap<&str, String>) -> Result<String> {
        let mut params = params.clone();
        for (name, other) in self.with {
            let value = params.get(other).cloned().ok_or_else(|| {
                PipelineError::Internal(format!("{}: no parameter {other} to take", self.name))
            })?;
            params.insert(name, value);
        }
        crate::engine::sql::render(self.sql_file()?, &params)
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
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../sql");
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|f| f.ends_with(".sql"))
            .collect();
        files.sort();
        let mut registered: Vec<&str> = Vec::new();
        for file in NIGHT.iter().filter_map(|s| s.sql).map(|q| q.file) {
            if !registered.contains(&file) {
                registered.push(file);
            }
        }
        assert_eq!(registered, files, "sql/ numbers must be the run order");
        for stage in NIGHT {
            if let Some(sql) = stage.sql {
                let (_, header) = sql.text.split_once("output:").unwrap();
                let outputs = header.lines().next().unwrap();
                assert!(
                    outputs.split([' ', ',', '(', ')']).any(|t| t == stage.name),
                    "{}: its header must name {}",
                    sql.file,
                    stage.name
                );
            }
        }
    }

    #[test]
    fn every_table_read_was_written_by_an_earlier_stage() {
        let mut written: BTreeSet<&str> = BTreeSet::new();
        for stage in NIGHT {
            // A unit may register what its own SQL reads first (the previous night's
            // audiences, the propensity columns' relation): it writes it too.
            for table in stage.reads.iter().filter(|t| !t.ends_with('/')) {
                assert!(
                    written.contains(table) || stage.writes.contains(table),
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
        params.extend(crate::models::als::evaluate::params(
            &config.evaluation,
            config.recommendations.model,
            1,
        ));
        params.extend(crate::stages::interests::params(&ctx).await.unwrap());
        for stage in NIGHT.iter().filter(|s| s.sql.is_some()) {
            let sql = stage.sql_file().unwrap();
            let text = stage.render(&params).unwrap();
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
        assert!(
            !names(Mode::Run {
                evaluation: false,
                propensity: true
            })
            .contains(&"eval_fit")
        );
        assert!(
            names(Mode::Run {
                evaluation: true,
                propensity: true
            })
            .contains(&"eval_fit")
        );
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
            published(Mode::Run {
                evaluation: true,
                propensity: true
            }),
            published_tables().collect::<Vec<_>>()
        );
        assert_eq!(
            find("kmeans").map(|s| s.code()).as_deref(),
            Some("jobs/src/stages/segments.rs")
        );
    }
}
