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

use super::registry::{self, Mode, Runner, Stage};
use super::{StageMetrics, continuity, interests, recommendations, segments};
use crate::als::AlsReport;
use crate::als::evaluate::{self, EvaluationReport};
use crate::commit;
use crate::config::{Exclude, PipelineConfig};
use crate::error::{PipelineError, Result};
use crate::fault;
use crate::gates::{self, GateResult};
use crate::input::{self, SourceReport, Window};
use crate::manifest::Manifest;
use crate::progress::Progress;
use crate::publish::Publisher;
use crate::signals;
use crate::sql;
use crate::storage::Root;
use crate::work::WorkArea;

use super::segments::SegmentsReport;
use crate::propensity::{self, PropensityReport};

/// What the stages reported so far: the manifest's content.
#[derive(Debug, Default)]
pub struct NightRecord {
    /// What was found per input source.
    pub inputs: Vec<SourceReport>,
    /// Every finished stage, in order.
    pub stages: Vec<StageMetrics>,
    /// Every gate (also when one failed: `persona check` reports them).
    pub gates: Vec<GateResult>,
    /// The segmentation.
    pub segments: Option<SegmentsReport>,
    /// The ALS fit.
    pub recommendations: Option<AlsReport>,
    /// The offline evaluation.
    pub evaluation: Option<EvaluationReport>,
    /// The propensity model.
    pub propensity: Option<PropensityReport>,
    /// The `{{parameters}}` the evaluation fit adds for the `evaluation` SQL stage.
    eval_params: BTreeMap<&'static str, String>,
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
    run_id: &'a str,
    pub(super) mode: Mode,
    pub(super) window: Window,
    pub(super) params: BTreeMap<&'static str, String>,
    export_split: Option<&'a std::path::Path>,
    /// The evaluation fit's item factors, the published fit's warm start.
    eval_items: Option<persona_udfs::ml::Factors>,
    started: Instant,
    started_at: DateTime<Utc>,
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
            window,
            params: sql_params(config, window),
            export_split: None,
            eval_items: None,
            started: Instant::now(),
            started_at: Utc::now(),
            record: NightRecord::default(),
        }
    }

    /// Also writes the evaluation's train and holdout pairs to this local folder.
    pub fn with_export_split(mut self, dir: Option<&'a std::path::Path>) -> Self {
        self.export_split = dir;
        self
    }

    /// Runs every stage of the night's mode, in order.
    pub async fn run(&mut self, progress: &mut Progress) -> Result<()> {
        for stage in registry::stages_of(self.mode) {
            if self.skips(stage) {
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
            progress.finish(&metrics);
            self.record.stages.push(metrics);
        }
        Ok(())
    }

    /// The `evaluation` stage scores nothing when the evaluation fit found nothing to score;
    /// the propensity stages run only when `[propensity] enabled`.
    fn skips(&self, stage: &Stage) -> bool {
        if stage.part == registry::Part::Propensity {
            return !self.config.propensity.enabled;
        }
        stage.runner == Runner::EvalScores
            && self
                .record
                .evaluation
                .as_ref()
                .is_none_or(|e| e.skipped.is_some())
    }

    /// Runs one stage; returns the rows (or files, gates, points) it produced.
    async fn run_stage(&mut self, stage: &Stage) -> Result<u64> {
        let context = match stage.runner {
            Runner::Sql | Runner::EvalScores | Runner::PropensityScores => {
                format!("{} ({})", stage.name, sql::stage(stage.name)?.file)
            }
            _ => stage.name.to_string(),
        };
        let result = async {
            fault::check(stage.name).await?;
            self.dispatch(stage).await
        }
        .await;
        match result {
            Err(e)
                if stage.runner == Runner::Sql
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

    async fn dispatch(&mut self, stage: &Stage) -> Result<u64> {
        let (ctx, work, cfg) = (self.ctx, self.work, self.config);
        match stage.runner {
            Runner::Inputs => {
                let inputs = input::register_inputs(ctx, self.roots.input, self.window).await?;
                let files = inputs.iter().map(|r| r.files as u64).sum();
                self.record.inputs = inputs;
                self.params.extend(interests::params(ctx).await?);
                Ok(files)
            }
            Runner::Sql => self.run_sql(stage.name, &self.params).await,
            Runner::Gates => {
                let results = gates::evaluate(ctx, &cfg.gates, self.window.last).await?;
                self.record.gates = results;
                gates::enforce(&self.record.gates)?;
                Ok(self.record.gates.len() as u64)
            }
            Runner::KMeans => {
                // Without a readable previous night the segments get fresh ids; that is no
                // reason to fail tonight.
                let previous =
                    match continuity::previous_segments(ctx, self.roots.output, self.window.last)
                        .await
                    {
                        Ok(previous) => previous,
                        Err(e) => {
                            tracing::warn!("previous segments unreadable, fresh segment ids: {e}");
                            None
                        }
                    };
                let report = segments::run(ctx, work, &cfg.segments, previous.as_ref()).await?;
                let points = report.points;
                self.record.segments = Some(report);
                Ok(points)
            }
            Runner::Als => {
                let warm_start = self.eval_items.take();
                let report =
                    recommendations::fit(ctx, work, &cfg.recommendations, warm_start).await?;
                let interactions = report.interactions;
                self.record.recommendations = Some(report);
                Ok(interactions)
            }
            Runner::EvalFit => self.evaluation_fit().await,
            Runner::EvalScores => {
                let mut params = self.params.clone();
                params.extend(self.record.eval_params.clone());
                let rows = self.run_sql(stage.name, &params).await?;
                if let Some(report) = self.record.evaluation.as_mut() {
                    evaluate::read_scores(ctx, report).await?;
                }
                Ok(rows)
            }
            Runner::Propensity => {
                let days = cfg.window.lookback_days - cfg.propensity.horizon_days;
                let report = propensity::run(ctx, work, &cfg.propensity, days).await?;
                if let Some(dir) = self.export_split {
                    export_table(
                        ctx,
                        "SELECT * FROM propensity_points WHERE snapshot = 'train'",
                        &dir.join("propensity.parquet"),
                    )
                    .await?;
                }
                let scored = report.scored;
                self.record.propensity = Some(report);
                Ok(scored)
            }
            Runner::PropensityScores => {
                let rows = self.run_sql(stage.name, &self.params).await?;
                if let Some(report) = self.record.propensity.as_mut() {
                    propensity::read_evaluation(ctx, report).await?;
                }
                Ok(rows)
            }
            Runner::Publish => self.publish().await,
        }
    }

    /// Runs one SQL stage and materialises its table in the work area.
    async fn run_sql(&self, name: &str, params: &BTreeMap<&str, String>) -> Result<u64> {
        let text = sql::render(sql::stage(name)?, params)?;
        let df = self.ctx.sql(&text).await?;
        self.work.materialize(self.ctx, name, df).await
    }

    /// The evaluation's fit and top-N; exports the split when asked.
    async fn evaluation_fit(&mut self) -> Result<u64> {
        let holdout_start = self
            .params
            .get("holdout_start")
            .cloned()
            .unwrap_or_default();
        let (report, candidates, items) = evaluate::recommend(
            self.ctx,
            self.work,
            &self.config.recommendations,
            &self.config.evaluation,
            holdout_start,
        )
        .await?;
        if let Some(dir) = self.export_split {
            export_split(self.ctx, dir).await?;
        }
        if let (Some(why), Mode::Evaluate) = (&report.skipped, self.mode) {
            return Err(PipelineError::BadInput(format!(
                "nothing to evaluate for {}: {why} (holdout: the last {} days of the window)",
                self.window.last, self.config.evaluation.holdout_days
            )));
        }
        self.record.eval_params = evaluate::params(&self.config.evaluation, candidates);
        self.eval_items = items;
        let pairs = report.train_pairs;
        self.record.evaluation = Some(report);
        Ok(pairs)
    }

    /// Stages every table this mode publishes and the manifest, then commits them.
    async fn publish(&mut self) -> Result<u64> {
        let t = Instant::now();
        let tables: Vec<&str> = registry::NIGHT
            .iter()
            .filter(|s| {
                self.mode.publishes(s) && self.record.stages.iter().any(|m| m.name == s.name)
            })
            .map(|s| s.name)
            .collect();
        let mut publisher = Publisher::night(self.roots.output, self.window.last, self.run_id);
        let manifest = self.stage_tables(&mut publisher, &tables, t).await?;
        self.record.locations = tables
            .iter()
            .map(|t| (t.to_string(), publisher.partition_location(t)))
            .collect();
        signals::commit_started();
        publisher.commit().await?;
        let rows = self.record.tables.values().sum();
        self.record.manifest = Some(manifest);
        Ok(rows)
    }

    /// Writes every table into this run's folders and stages the manifest that names them.
    async fn stage_tables(
        &mut self,
        publisher: &mut Publisher,
        tables: &[&str],
        started: Instant,
    ) -> Result<Manifest> {
        for table in tables {
            let rows = publisher.stage_table(self.ctx, table).await?;
            self.record.tables.insert(table.to_string(), rows);
        }
        let rows: u64 = self.record.tables.values().sum();
        let mut manifest = self
            .manifest(StageMetrics::new("publish", rows, started.elapsed()))
            .await?;
        manifest.published = publisher.published();
        if self.mode == Mode::Evaluate {
            self.carry_over(&mut manifest).await?;
        }
        let json = serde_json::to_string_pretty(&manifest)
            .map_err(|e| PipelineError::Internal(format!("manifest: {e}")))?;
        publisher.stage_manifest(&json, &manifest.published).await?;
        fault::check("commit").await?;
        Ok(manifest)
    }

    /// `persona evaluate` publishes one table into a night that may already be committed: the
    /// night's other tables stay published (and their row counts in the manifest), where
    /// replacing the manifest alone would hide them.
    async fn carry_over(&self, manifest: &mut Manifest) -> Result<()> {
        let Some(night) = commit::committed_night(self.roots.output, self.window.last).await?
        else {
            return Ok(());
        };
        for (table, folder) in night.tables {
            if manifest.published.contains_key(&table) {
                continue;
            }
            if let Some(rows) = night.rows.get(&table) {
                manifest.tables.insert(table.clone(), *rows);
            }
            manifest.published.insert(table, folder);
        }
        Ok(())
    }

    /// The run record, with `publish` as the last stage so far.
    async fn manifest(&self, publish: StageMetrics) -> Result<Manifest> {
        let r = &self.record;
        let mut stages = r.stages.clone();
        stages.push(publish);
        Ok(Manifest {
            run_id: self.run_id.to_string(),
            date: self.window.last.to_string(),
            window: (self.window.first.to_string(), self.window.last.to_string()),
            input: self.roots.input.display(),
            output: self.roots.output.display(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            started_at: self.started_at.to_rfc3339(),
            finished_at: Utc::now().to_rfc3339(),
            seconds: self.started.elapsed().as_secs_f64(),
            inputs: r.inputs.clone(),
            stages,
            tables: r.tables.clone(),
            // Filled in by the publisher, which knows where it wrote each table.
            published: BTreeMap::new(),
            data_quality: gates::drop_counts(self.ctx).await?,
            gates: r.gates.clone(),
            segments: r.segments.clone(),
            recommendations: r.recommendations.clone(),
            evaluation: r.evaluation.clone(),
            propensity: r.propensity.clone(),
            config: self.config.clone(),
        })
    }
}

/// Writes `eval_train` and `eval_holdout` as single Parquet files under `dir`.
async fn export_split(ctx: &SessionContext, dir: &std::path::Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| PipelineError::io(dir, e))?;
    // The split, and the whole window's matrix with its ids, so that a peer can be trained on
    // exactly what the night's own fit saw and scored against the generator's hidden next week.
    for (table, file) in [
        ("eval_train", "train.parquet"),
        ("eval_holdout", "holdout.parquet"),
        ("interactions", "interactions.parquet"),
        ("user_index", "users.parquet"),
        ("item_index", "items.parquet"),
    ] {
        if !ctx.table_exist(table)? {
            continue;
        }
        export_table(ctx, &format!("SELECT * FROM {table}"), &dir.join(file)).await?;
    }
    Ok(())
}

/// Writes the result of `sql` as one Parquet file at `path`.
async fn export_table(ctx: &SessionContext, sql: &str, path: &std::path::Path) -> Result<()> {
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
    BTreeMap::from([
        ("run_date", window.last.to_string()),
        ("first_dt", window.first.to_string()),
        ("last_dt", window.last.to_string()),
        ("window_start", format!("{}T00:00:00Z", window.first)),
        ("window_end", format!("{end}T00:00:00Z")),
        ("weight_view", format!("{:?}", rec.weights.view)),
        ("weight_click", format!("{:?}", rec.weights.click)),
        (
            "weight_add_to_cart",
            format!("{:?}", rec.weights.add_to_cart),
        ),
        ("weight_purchase", format!("{:?}", rec.weights.purchase)),
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
    ])
}
