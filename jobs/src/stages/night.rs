//! Running the night: one loop over the stage registry ([`super::registry`]).
//!
//! [`Night`] holds what the stages share (the session, the work area, the SQL parameters) and
//! what they report (the [`NightRecord`] that becomes the manifest). Each stage runs inside a
//! `tracing` span that carries its name, the run id and the date; its metrics go to the
//! progress display and the manifest under the stage's one name.

use std::collections::BTreeMap;
use std::time::Instant;

use chrono::{DateTime, Utc};
use datafusion::prelude::SessionContext;
use tracing::Instrument;

use super::StageMetrics;
use super::record::{Handoffs, Reports};
use super::registry::{self, Mode, Stage};
use crate::config::{Exclude, PipelineConfig};
use crate::engine::fault;
use crate::engine::progress::Progress;
use crate::engine::storage::Root;
use crate::engine::work::WorkArea;
use crate::error::{PipelineError, Result};
use crate::gates::GateResult;
use crate::input::{self, SourceReport, Window};
use crate::manifest::Manifest;

/// What the stages reported so far: the manifest's content.
#[derive(Debug, Default)]
pub struct NightRecord {
    /// What was found per input source.
    pub inputs: Vec<SourceReport>,
    /// Every finished stage, in order.
    pub stages: Vec<StageMetrics>,
    /// Every gate (also when one failed: `persona check` reports them).
    pub gates: Vec<GateResult>,
    /// Each Rust stage's report: a section of the manifest.
    pub reports: Reports,
    /// What stages leave for later ones.
    pub handoffs: Handoffs,
    /// Rows per published table, once published.
    pub tables: BTreeMap<String, u64>,
    /// The published manifest, once published.
    pub manifest: Option<Manifest>,
    /// Where each published table's partition is.
    pub locations: BTreeMap<String, String>,
}

/// The input and output roots of a night.
#[derive(Debug, Clone, Copy)]
pub struct Roots<'a> {
    /// Where the sources are read.
    pub input: &'a Root,
    /// Where the tables are published.
    pub output: &'a Root,
}

/// One night: the shared state of its stages.
pub struct Night<'a> {
    pub(super) ctx: &'a SessionContext,
    pub(super) work: &'a WorkArea,
    pub(super) config: &'a PipelineConfig,
    pub(super) roots: Roots<'a>,
    pub(super) run_id: &'a str,
    pub(super) mode: Mode,
    /// The stages, in run order ([`registry::NIGHT`] unless a test adds one).
    pub(super) stages: Vec<&'static Stage>,
    pub(super) window: Window,
    /// The `{{parameters}}` of the SQL stages.
    pub(super) params: BTreeMap<&'static str, String>,
    /// Where `--export-split` writes the models' training data, if asked.
    pub(super) export_split: Option<&'a std::path::Path>,
    pub(super) started: Instant,
    pub(super) started_at: DateTime<Utc>,
    /// Whether a work table held in memory is let go once the last stage that reads it has
    /// run ([`Night::releasing_work_tables`]).
    pub(super) release: bool,
    /// What the stages reported.
    pub record: NightRecord,
}

impl<'a> Night<'a> {
    /// A night of `mode` for the window ending at `date`, its tables in `work`.
    pub fn new(
        ctx: &'a SessionContext,
        work: &'a WorkArea,
        config: &'a PipelineConfig,
        roots: Roots<'a>,
        run_id: &'a str,
        mode: Mode,
        date: chrono::NaiveDate,
    ) -> Self {
        let window = Window::ending(date, config.window.lookback_days);
        Self {
            ctx,
            work,
            config,
            roots,
            run_id,
            mode,
            stages: registry::NIGHT.iter().collect(),
            window,
            params: sql_params(config, window),
            export_split: None,
            started: Instant::now(),
            started_at: Utc::now(),
            release: false,
            record: NightRecord::default(),
        }
    }

    /// Runs these stages instead of [`registry::NIGHT`]: a test's night with a stage more, or
    /// a command's short night of a few of the night's stages.
    pub fn with_stages(mut self, stages: impl IntoIterator<Item = &'static Stage>) -> Self {
        self.stages = stages.into_iter().collect();
        self
    }

    /// Sets these `{{parameters}}` of the SQL stages over the night's (`persona als` maps its
    /// input onto the night's tables with them).
    pub fn with_params(mut self, params: impl IntoIterator<Item = (&'static str, String)>) -> Self {
        self.params.extend(params);
        self
    }

    /// The stages of the night's mode, in order.
    pub(super) fn stages_to_run(&self) -> impl Iterator<Item = &'static Stage> + use<> {
        let mode = self.mode;
        self.stages
            .clone()
            .into_iter()
            .filter(move |s| mode.runs(s.part))
    }

    /// Lets go of each work table held in memory once no stage left to run reads it (by the
    /// registry's `reads`) and it is not published (the publish stage and the report read
    /// those): a night's memory is then its live tables, not all it made. For the commands
    /// whose night is the registry's; one that reads a table after its night must not.
    pub fn releasing_work_tables(mut self) -> Self {
        self.release = true;
        self
    }

    /// Lets go of the held work tables that no stage after `done` (the index in the night's
    /// stages) reads.
    fn release_unread(&self, done: usize) -> Result<()> {
        let later = &self.stages[done + 1..];
        for (table, bytes) in self.work.held_tables() {
            let read_later = later.iter().any(|s| s.reads.contains(&table.as_str()));
            let published = self
                .stages
                .iter()
                .any(|s| s.published && s.writes.contains(&table.as_str()));
            if !read_later && !published {
                tracing::debug!(table, bytes, "work table released");
                self.work.release(self.ctx, &table)?;
            }
        }
        Ok(())
    }

    /// Also writes the evaluation's train and holdout pairs to this local folder.
    pub fn with_export_split(mut self, dir: Option<&'a std::path::Path>) -> Self {
        self.export_split = dir;
        self
    }

    /// Runs every stage of the night's mode, in order.
    pub async fn run(&mut self, progress: &mut Progress) -> Result<()> {
        for (index, stage) in self.stages.clone().into_iter().enumerate() {
            if !self.mode.runs(stage.part) || stage.unit.skips(self) {
                continue;
            }
            let span = tracing::info_span!(
                "stage",
                stage = stage.name,
                run_id = self.run_id,
                date = %self.window.last
            );
            progress.start(stage.name);
            let t = Instant::now();
            let rows = self.run_stage(stage).instrument(span).await?;
            let mut metrics = StageMetrics::new(stage.name, rows, t.elapsed());
            metrics.bytes_read = self.work.take_bytes_read().filter(|b| *b > 0);
            metrics.rows_read = self.work.take_rows_read().filter(|r| *r > 0);
            progress.finish(&metrics);
            self.record.stages.push(metrics);
            if self.release {
                self.release_unread(index)?;
            }
        }
        Ok(())
    }

    /// Runs one stage; returns the rows (or files, gates, points) it produced.
    async fn run_stage(&mut self, stage: &Stage) -> Result<u64> {
        let context = match &stage.sql {
            Some(sql) => format!("{} ({})", stage.name, sql.file),
            None => stage.name.to_string(),
        };
        let result = async {
            fault::check(stage.name).await?;
            stage.unit.run(stage, self).await
        }
        .await;
        match result {
            Err(e)
                if stage.sql.is_some()
                    && (e.is_decoding_error() || input::is_page_decoding_error(&e.to_string())) =>
            {
                // A query hit a damaged data page of an input: name the file, which the
                // query's error does not.
                Err(
                    match input::find_undecodable_file(self.roots.input, self.window).await? {
                        Some(named) => named.in_stage(&context),
                        None => e.in_stage(&context),
                    },
                )
            }
            other => other.map_err(|e| e.in_stage(&context)),
        }
    }

    /// Runs `stage`'s SQL file with `params` and materialises its table in the work area.
    pub(super) async fn run_sql(
        &self,
        stage: &Stage,
        params: &BTreeMap<&str, String>,
    ) -> Result<u64> {
        let text = stage.render(params)?;
        let df = self.ctx.sql(&text).await?;
        self.work.materialize(self.ctx, stage.name, df).await
    }
}

/// Writes the result of `sql` as one Parquet file at `path`.
pub(super) async fn export_table(
    ctx: &SessionContext,
    sql: &str,
    path: &std::path::Path,
) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| PipelineError::io(dir, e))?;
    }
    // One file, streamed by DataFusion's own Parquet writer (no batches collected here).
    ctx.sql(sql)
        .await?
        .write_parquet(
            &path.to_string_lossy(),
            datafusion::dataframe::DataFrameWriteOptions::new().with_single_file_output(true),
            None,
        )
        .await?;
    Ok(())
}

/// The `{{parameters}}` of the SQL stages.
pub fn sql_params(config: &PipelineConfig, window: Window) -> BTreeMap<&'static str, String> {
    let rec = &config.recommendations;
    let end = window.last + chrono::Duration::days(1);
    let holdout_start = end - chrono::Duration::days(i64::from(config.evaluation.holdout_days));
    let horizon = i64::from(config.propensity.horizon_days);
    let feature_days = i64::from(config.window.lookback_days) - horizon;
    let cutoff = end - chrono::Duration::days(horizon);
    let score_start = end - chrono::Duration::days(feature_days);
    let exclude = match rec.exclude {
        Exclude::Purchased => "purchased",
        Exclude::Seen => "true",
        Exclude::None => "false",
    };
    let events = rec.weights.by_event_type();
    let listed: Vec<String> = events.iter().map(|(t, _)| format!("'{t}'")).collect();
    let weights: Vec<String> = events
        .iter()
        .map(|(t, w)| format!("WHEN '{t}' THEN {w:?}"))
        .collect();
    BTreeMap::from([
        ("run_date", window.last.to_string()),
        ("first_dt", window.first.to_string()),
        ("last_dt", window.last.to_string()),
        ("window_start", format!("{}T00:00:00Z", window.first)),
        ("window_end", format!("{end}T00:00:00Z")),
        ("interaction_events", format!("({})", listed.join(", "))),
        (
            "event_weight",
            format!("CASE e.event_type {} ELSE 0.0 END", weights.join(" ")),
        ),
        ("interactions_end", format!("{end}T00:00:00Z")),
        ("max_weight", format!("{:?}", rec.max_weight)),
        ("half_life_days", format!("{:?}", rec.half_life_days)),
        ("top_n", rec.top_n.to_string()),
        ("min_interactions", rec.min_interactions.to_string()),
        ("exclude_rule", exclude.to_string()),
        ("holdout_start", format!("{holdout_start}T00:00:00Z")),
        (
            "recommend_without_opt_in",
            config.privacy.recommend_without_opt_in.to_string(),
        ),
        (
            "score_without_opt_in",
            config.privacy.score_without_opt_in.to_string(),
        ),
        ("horizon_days", horizon.to_string()),
        ("propensity_feature_days", feature_days.to_string()),
        ("propensity_cutoff", format!("{cutoff}T00:00:00Z")),
        ("propensity_score_start", format!("{score_start}T00:00:00Z")),
        ("lookback_days", config.window.lookback_days.to_string()),
        // The item-to-item model (sql/14, sql/15), and what its night and evaluation stages
        // hand it through their registry entries' `with`.
        ("knn_similarity", rec.item_knn.similarity.name().to_string()),
        ("knn_neighbours", rec.item_knn.neighbours.to_string()),
        ("bm25_k1", format!("{:?}", rec.item_knn.bm25_k1)),
        ("bm25_b", format!("{:?}", rec.item_knn.bm25_b)),
        ("night_interactions", "interactions".to_string()),
        ("night_neighbours", "item_neighbour_rows".to_string()),
        ("every_customer", "true".to_string()),
        ("eval_interactions", "eval_train".to_string()),
        ("eval_neighbours", "eval_item_neighbours".to_string()),
        (
            "eval_customers",
            "x.user_idx IN (SELECT user_idx FROM eval_holdout)".to_string(),
        ),
        ("every_item", "true".to_string()),
        // The customer-to-customer model (sql/16, sql/17), through the same `knn_` names.
        ("uknn_neighbours", rec.user_knn.neighbours.to_string()),
        ("uknn_block", rec.user_knn.block.to_string()),
        ("uknn_candidates", rec.user_knn.candidates.to_string()),
        (
            "uknn_prediction",
            rec.user_knn.prediction.name().to_string(),
        ),
        (
            "night_customer_neighbours",
            "customer_neighbour_rows".to_string(),
        ),
        (
            "eval_customer_neighbours",
            "eval_customer_neighbours".to_string(),
        ),
        ("recommendation_model", rec.model.name().to_string()),
        ("eval_k", config.evaluation.k.to_string()),
        (
            "export_hashed_emails",
            config.privacy.export_hashed_emails.to_string(),
        ),
        (
            "experiment_pre_days",
            crate::stages::experiments::PRE_DAYS.to_string(),
        ),
    ])
}
