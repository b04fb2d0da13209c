//! `persona run --dry-run`: validates the inputs and the configuration, then walks the night's
//! stages and prints each one's plan without computing or writing a table.
//!
//! Each SQL stage is planned (`EXPLAIN`) and its table registered as an empty table of the
//! schema it would have, so the next stage plans against it; the model stages register their
//! work tables and functions the same way, empty. Only Parquet footers of the inputs are read.

use std::fmt::Write as _;
use std::sync::Arc;

use arrow::array::AsArray;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::MemTable;
use datafusion::prelude::{DataFrame, SessionContext};
use persona_udfs::ml::Factors;

use super::interests;
use super::night::Night;
use super::registry::{self, Runner, Stage};
use crate::als;
use crate::als::evaluate;
use crate::error::{PipelineError, Result};
use crate::input;
use crate::kmeans::describe;
use crate::sql;

impl Night<'_> {
    /// Plans every stage of the night's mode, in order; returns the plans as text.
    pub async fn dry_run(&mut self) -> Result<String> {
        let mut out = String::new();
        for stage in registry::stages_of(self.mode) {
            if stage.part == registry::Part::Propensity && !self.config.propensity.enabled {
                continue;
            }
            let plan = self
                .plan_stage(stage)
                .await
                .map_err(|e| e.in_stage(stage.name))?;
            let _ = writeln!(out, "== {} ({})\n{plan}", stage.name, stage.part);
        }
        Ok(out)
    }

    async fn plan_stage(&mut self, stage: &Stage) -> Result<String> {
        let (ctx, cfg) = (self.ctx, self.config);
        match stage.runner {
            Runner::Inputs => {
                let inputs = input::register_inputs(ctx, self.roots.input, self.window).await?;
                self.params.extend(interests::params(ctx).await?);
                let mut text = format!(
                    "window {} .. {}; inputs valid:\n",
                    self.window.first, self.window.last
                );
                for r in &inputs {
                    let _ = writeln!(
                        text,
                        "  {:<14} {:>6} files {:>4} days{}",
                        r.source,
                        r.files,
                        r.days,
                        if r.present { "" } else { " (absent: empty)" }
                    );
                }
                Ok(text)
            }
            Runner::Sql | Runner::PropensityScores => self.plan_sql(stage.name, &self.params).await,
            Runner::Propensity => {
                let snapshots = ctx.table("propensity_snapshots").await?;
                let snapshots = snapshots.schema().as_arrow().clone();
                for (name, schema) in crate::propensity::work_table_schemas(&snapshots)? {
                    register_empty(ctx, name, schema)?;
                }
                let p = &cfg.propensity;
                Ok(format!(
                    "logistic regression over propensity_snapshots (fit split): features {:?} (log: {:?}, one-hot: {:?}), l2 {}, max_iter {}, tol {}, class weights {:?}; Platt scaling on the calibrate split; scores for the test split and tonight\n",
                    p.features,
                    p.log_features,
                    p.categorical_features,
                    p.l2,
                    p.max_iter,
                    p.tol,
                    p.class_weight
                ))
            }
            Runner::EvalScores => {
                let mut params = self.params.clone();
                params.extend(evaluate::params(&cfg.evaluation, 1));
                self.plan_sql(stage.name, &params).await
            }
            Runner::Gates => Ok(format!(
                "gates {} on event_drops: required sources {:?}, share of rows per broken-data reason <= {:?}, volume >= {} x the median of the last {} days\n",
                if cfg.gates.enabled {
                    "enabled"
                } else {
                    "disabled"
                },
                cfg.gates.required_sources,
                cfg.gates.max_share.by_reason(),
                cfg.gates.min_volume_ratio,
                cfg.gates.volume_history_days
            )),
            Runner::KMeans => {
                let features = ctx.table("user_features").await?;
                let key = features
                    .schema()
                    .as_arrow()
                    .field_with_name("customer_id")?
                    .clone();
                register_empty(
                    ctx,
                    "segment_assignments",
                    Arc::new(Schema::new(vec![
                        key,
                        Field::new("segment_id", DataType::Int32, false),
                        Field::new("distance_to_centroid", DataType::Float64, false),
                    ])),
                )?;
                register_empty(ctx, "segment_labels", describe::labels_schema())?;
                let s = &cfg.segments;
                Ok(format!(
                    "K-Means over user_features: k = {:?}, features {:?} (log: {:?}), init {:?}, max_iter {}, tol {}, seed {}\n",
                    s.k, s.features, s.log_features, s.init, s.max_iter, s.tol, s.seed
                ))
            }
            Runner::Als => {
                self.register_empty_model("user_factor_rows", "user_idx")
                    .await?;
                register_empty(ctx, "item_factor_rows", als::factors_schema("item_idx"))?;
                let r = &cfg.recommendations;
                Ok(format!(
                    "implicit ALS over interactions: rank {}, {} iterations, lambda {}, alpha {}, solver {:?}, top {}\n",
                    r.rank, r.iterations, r.lambda, r.alpha, r.solver, r.top_n
                ))
            }
            Runner::EvalFit => {
                self.register_empty_model("eval_user_factor_rows", "user_idx")
                    .await?;
                let df = ctx
                    .sql(&evaluate::recommend_sql("als", "eval_user_factor_rows")?)
                    .await?;
                let plan = explain(&df).await?;
                register_empty(
                    ctx,
                    "eval_recommendations",
                    df.schema().as_arrow().clone().into(),
                )?;
                Ok(format!(
                    "ALS on eval_train (as above), then the top {} of ALS and of popularity for eval_holdout's customers:\n{plan}",
                    cfg.evaluation.k
                ))
            }
            Runner::Publish => {
                let mut text = String::from("would write, each into this run's folder:\n");
                for s in registry::NIGHT.iter().filter(|s| self.mode.publishes(s)) {
                    let _ = writeln!(
                        text,
                        "  {}",
                        self.roots
                            .output
                            .location(&format!("{}/dt={}/run=<run id>/", s.name, self.window.last))
                    );
                }
                let _ = writeln!(
                    text,
                    "then commit them at once by writing {}",
                    self.roots
                        .output
                        .location(&crate::commit::manifest_path(self.window.last))
                );
                Ok(text)
            }
        }
    }

    /// Plans an SQL stage and registers its table, empty.
    async fn plan_sql(
        &self,
        name: &str,
        params: &std::collections::BTreeMap<&str, String>,
    ) -> Result<String> {
        let text = sql::render(sql::stage(name)?, params)?;
        let df = self.ctx.sql(&text).await?;
        let plan = explain(&df).await?;
        register_empty(self.ctx, name, df.schema().as_arrow().clone().into())?;
        Ok(plan)
    }

    /// Registers an empty factor table and the top-N functions over a model with no items.
    async fn register_empty_model(&self, table: &str, id_col: &str) -> Result<()> {
        register_empty(self.ctx, table, als::factors_schema(id_col))?;
        let rank = self.config.recommendations.rank;
        let none = Factors::new(0, rank, vec![])
            .ok_or_else(|| PipelineError::Internal("an empty factor matrix".into()))?;
        als::register_top_n(self.ctx, self.work, &none, vec![], 1).await
    }
}

/// `EXPLAIN` of a planned query, as text: each plan type, then its plan indented.
async fn explain(df: &DataFrame) -> Result<String> {
    let mut text = String::new();
    for batch in df.clone().explain(false, false)?.collect().await? {
        let (types, plans) = (
            batch.column(0).as_string::<i32>(),
            batch.column(1).as_string::<i32>(),
        );
        for row in 0..batch.num_rows() {
            let _ = writeln!(text, "{}:", types.value(row));
            for line in plans.value(row).lines() {
                let _ = writeln!(text, "    {line}");
            }
        }
    }
    Ok(text)
}

/// Registers `name` as an empty table of `schema`, replacing any earlier one.
fn register_empty(ctx: &SessionContext, name: &str, schema: SchemaRef) -> Result<()> {
    let table = MemTable::try_new(schema, vec![vec![]])?;
    ctx.deregister_table(name)?;
    ctx.register_table(name, Arc::new(table))?;
    Ok(())
}
