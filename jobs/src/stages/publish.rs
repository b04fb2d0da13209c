//! The night's last stage: every table the command publishes is written into this run's
//! folders, then the manifest that names them is written, which commits the night at once
//! ([`crate::engine::commit`]).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Instant;

use async_trait::async_trait;
use chrono::Utc;

use super::StageMetrics;
use super::audiences;
use super::night::Night;
use super::registry::{self, Mode, Part, Stage};
use super::unit::Unit;
use crate::engine::commit;
use crate::engine::fault;
use crate::engine::publish::Publisher;
use crate::engine::signals;
use crate::error::{PipelineError, Result};
use crate::gates;
use crate::manifest::{Manifest, Passes};
use crate::report_page;

/// Stages every published table and the manifest, then commits them.
#[derive(Debug)]
pub struct Publish;

#[async_trait(?Send)]
impl Unit for Publish {
    fn code(&self) -> &'static str {
        "jobs/src/stages/publish.rs"
    }

    async fn run(&self, _stage: &Stage, night: &mut Night<'_>) -> Result<u64> {
        night.publish().await
    }

    async fn plan(&self, _stage: &Stage, night: &mut Night<'_>) -> Result<String> {
        let mut text = String::from("would write, each into this run's folder:\n");
        // A stage the configuration turns off (the experiments' without [[experiments]], a
        // neighbourhood model's when it is off) publishes nothing.
        for s in night
            .stages
            .iter()
            .filter(|s| night.mode.publishes(s) && !s.unit.off_by_config(night.config))
        {
            let _ = writeln!(
                text,
                "  {}",
                night.roots.output.location(&format!(
                    "{}/dt={}/run=<run id>/",
                    s.name, night.window.last
                ))
            );
        }
        if night.mode.runs(Part::Audiences) && !night.config.audiences.is_empty() {
            let _ = writeln!(
                text,
                "  {} (the audiences' files, already written)",
                night.roots.output.location(&format!(
                    "{}/dt={}/run=<run id>/",
                    audiences::EXPORTS,
                    night.window.last
                ))
            );
        }
        let _ = writeln!(
            text,
            "then commit them at once by writing {}",
            night
                .roots
                .output
                .location(&commit::manifest_path(night.window.last))
        );
        Ok(text)
    }
}

impl Night<'_> {
    /// Stages every table this mode publishes and the manifest, then commits them.
    async fn publish(&mut self) -> Result<u64> {
        let t = Instant::now();
        let tables: Vec<&str> = self
            .stages
            .iter()
            .filter(|s| {
                self.mode.publishes(s) && self.record.stages.iter().any(|m| m.name == s.name)
            })
            .map(|s| s.name)
            .collect();
        let mut publisher = Publisher::night(self.roots.output, self.window.last, self.run_id);
        if self
            .record
            .stages
            .iter()
            .any(|m| m.name == audiences::EXPORTS_STAGE)
        {
            publisher.adopt(audiences::EXPORTS);
        }
        let report = matches!(self.mode, Mode::Run { .. });
        if report {
            publisher.adopt(report_page::FOLDER);
        }
        let manifest = self.stage_tables(&mut publisher, &tables, t).await?;
        self.record.locations = tables
            .iter()
            .map(|t| (t.to_string(), publisher.partition_location(t)))
            .collect();
        if report {
            self.record.locations.insert(
                report_page::FOLDER.to_string(),
                publisher.partition_location(report_page::FOLDER),
            );
        }
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
        let keep = self.config.output.keep_replaced();
        manifest.replaced =
            commit::still_readable(self.roots.output, self.window.last, keep).await?;
        if manifest.published.contains_key(report_page::FOLDER) {
            self.write_report(&manifest).await?;
        }
        let json = serde_json::to_string_pretty(&manifest)
            .map_err(|e| PipelineError::Internal(format!("manifest: {e}")))?;
        publisher.stage_manifest(&json, &manifest.published).await?;
        fault::check("commit").await?;
        Ok(manifest)
    }

    /// Writes the night's report page into this run's `report` folder, from tonight's tables,
    /// the earlier nights' evaluations and last night's profiles, and the manifest about to be
    /// committed (which names the folder).
    async fn write_report(&self, manifest: &Manifest) -> Result<()> {
        let date = self.window.last;
        let previous = report_page::register_context(self.ctx, self.roots.output, date).await?;
        let json = serde_json::to_value(manifest)
            .map_err(|e| PipelineError::Internal(format!("manifest: {e}")))?;
        let html = report_page::build(self.ctx, &json, previous.as_ref(), date).await?;
        let folder =
            self.roots
                .output
                .child(&commit::run_folder(report_page::FOLDER, date, self.run_id));
        folder.write(report_page::FILE, html.into_bytes()).await?;
        folder.write(commit::SUCCESS, Vec::new()).await
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
            passes: passes(&stages),
            stages,
            tables: r.tables.clone(),
            // Filled in by the publisher, which knows where it wrote each table.
            published: BTreeMap::new(),
            // Filled in just before the commit.
            replaced: Vec::new(),
            data_quality: gates::drop_counts(self.ctx).await?,
            gates: r.gates.clone(),
            reports: r.reports.sections()?,
            config: self.config.clone(),
        })
    }
}

/// The night's rows read per input row, from the stages' `rows_read`: the input rows are those
/// read by the stages that read nothing but input sources (the tables the `inputs` stage
/// registers).
fn passes(stages: &[StageMetrics]) -> Option<Passes> {
    let sources = registry::find("inputs")?.writes;
    let reads_only_input = |name: &str| {
        registry::find(name)
            .is_some_and(|s| !s.reads.is_empty() && s.reads.iter().all(|r| sources.contains(r)))
    };
    let input_rows: u64 = stages
        .iter()
        .filter(|s| reads_only_input(&s.name))
        .filter_map(|s| s.rows_read)
        .sum();
    let rows_read: u64 = stages.iter().filter_map(|s| s.rows_read).sum();
    (input_rows > 0).then(|| Passes {
        input_rows,
        rows_read,
        per_input_row: rows_read as f64 / input_rows as f64,
    })
}
