//! `persona experiment`: `plan` sizes an A/B test before it starts, `report` prints what the
//! night found (`experiment_results`), `analyse` computes the same results from a table of
//! customers of one's own (the check against scipy and statsmodels uses it).

use std::fmt;

use chrono::NaiveDate;
use serde::Serialize;

use crate::config::PipelineConfig;
use crate::engine::commit::committed_nights;
use crate::engine::session::{self, Engine};
use crate::engine::storage::Root;
use crate::engine::tables::register_parquet;
use crate::error::{PipelineError, Result};
use crate::models::experiments::analysis::{self, ResultRow};
use crate::models::experiments::stats;
use crate::stages::experiment_results::{self, CUSTOMERS};

/// Results to print: readable, or as JSON lines.
#[derive(Debug, Clone, Serialize)]
pub struct Results {
    /// The rows.
    pub rows: Vec<ResultRow>,
    /// Print one JSON object per row instead of the readable table.
    #[serde(skip)]
    pub json: bool,
}

impl fmt::Display for Results {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.json {
            return write!(f, "{}", experiment_results::readable(&self.rows));
        }
        for row in &self.rows {
            let line = serde_json::to_string(row).map_err(|_| fmt::Error)?;
            writeln!(f, "{line}")?;
        }
        Ok(())
    }
}

/// `persona experiment report KEY`: the published results of one experiment.
#[derive(Debug, Clone)]
pub struct ReportOptions {
    /// The output root of `persona run`.
    pub output: String,
    /// The experiment.
    pub key: String,
    /// The night to read (the latest by default).
    pub date: Option<NaiveDate>,
    /// Storage settings.
    pub config: PipelineConfig,
    /// JSON lines instead of the readable table.
    pub json: bool,
}

/// Reads experiment `key`'s rows of the latest (or the pinned) `experiment_results`; an
/// experiment the table does not have is a bad input (exit 3) that lists the ones it has.
pub async fn report(opts: &ReportOptions) -> Result<Results> {
    let output = Root::parse(&opts.output, &opts.config.storage)?;
    let ctx = session::new_context(&Engine::Local, &opts.config).await?;
    let registered = register_night(&ctx, &output, &[experiment_results::TABLE], opts.date).await?;
    let Some(date) = registered else {
        return Err(PipelineError::BadInput(format!(
            "no night under {} published experiment_results{}: declare [[experiments]] in \
             persona.toml and run the night",
            output.display(),
            opts.date.map(|d| format!(" on {d}")).unwrap_or_default()
        )));
    };
    let batches = ctx
        .sql(&format!(
            "SELECT * FROM {} ORDER BY experiment, metric, is_control DESC, arm",
            experiment_results::TABLE
        ))
        .await?
        .collect()
        .await?;
    let all = analysis::from_batches(&batches)?;
    let rows: Vec<ResultRow> = all
        .iter()
        .filter(|r| r.experiment == opts.key)
        .cloned()
        .collect();
    if rows.is_empty() {
        let mut keys: Vec<&str> = all.iter().map(|r| r.experiment.as_str()).collect();
        keys.dedup();
        return Err(PipelineError::BadInput(format!(
            "experiment_results of {} has no experiment '{}' (it has: {})",
            date,
            opts.key,
            if keys.is_empty() {
                "none".to_string()
            } else {
                keys.join(", ")
            }
        )));
    }
    Ok(Results {
        rows: sort_for_reading(rows),
        json: opts.json,
    })
}

/// Registers `tables` of one committed night under `output`, by name: the night of `date`, or
/// the latest that published the first of them; returns its date (None when no such night).
/// Only these tables' files are read, not every night's every table as `persona sql`'s
/// catalog reads them.
pub(crate) async fn register_night(
    ctx: &datafusion::prelude::SessionContext,
    output: &Root,
    tables: &[&str],
    date: Option<NaiveDate>,
) -> Result<Option<NaiveDate>> {
    let nights = committed_nights(output).await?;
    let Some(night) = nights.iter().rev().find(|n| {
        date.is_none_or(|d| n.date == d)
            && tables.first().is_some_and(|t| n.tables.contains_key(*t))
    }) else {
        return Ok(None);
    };
    for table in tables {
        if let Some(folder) = night.tables.get(*table) {
            register_parquet(ctx, table, &output.child(folder), "").await?;
        }
    }
    Ok(Some(night.date))
}

/// Rows in the order of the configuration's metrics as the night wrote them: by metric as
/// listed in [`crate::config::METRICS`], the control first.
fn sort_for_reading(mut rows: Vec<ResultRow>) -> Vec<ResultRow> {
    let rank = |m: &str| crate::config::METRICS.iter().position(|x| *x == m);
    rows.sort_by(|a, b| {
        (&a.experiment, rank(&a.metric), !a.is_control, &a.arm).cmp(&(
            &b.experiment,
            rank(&b.metric),
            !b.is_control,
            &b.arm,
        ))
    });
    rows
}

/// `persona experiment assign`: declares an experiment in persona.toml.
#[derive(Debug, Clone)]
pub struct AssignOptions {
    /// The configuration file to add it to (created when missing).
    pub config: std::path::PathBuf,
    /// The `[[experiments]]` block, as TOML.
    pub block: String,
    /// An output root whose latest profiles preview the arms' sizes.
    pub output: Option<String>,
}

/// What `assign` did.
#[derive(Debug, Clone, Serialize)]
pub struct Assigned {
    /// The file written.
    pub config: String,
    /// The block added.
    pub block: String,
    /// Customers per arm the first night would assign, over the latest published profiles.
    pub preview: Option<(NaiveDate, Vec<(String, u64)>)>,
}

impl fmt::Display for Assigned {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "Added to {}:\n\n{}", self.config, self.block)?;
        if let Some((date, arms)) = &self.preview {
            let arms: Vec<String> = arms.iter().map(|(a, n)| format!("{a} {n}")).collect();
            writeln!(
                f,
                "Over the profiles of {date}, its first night would assign: {}.",
                arms.join(", ")
            )?;
        }
        writeln!(
            f,
            "Every night from its start assigns the newly eligible; `persona experiment report` \
             shows the results."
        )
    }
}

/// Validates the experiment with the file's others (a reused key, weights that do not sum to
/// 1, an unknown metric: exit 4), previews its arms over the latest published profiles when
/// `output` is given (a predicate that is not SQL over them: exit 4), then appends the block
/// to the file, replacing it whole (a reader never sees half a file).
pub async fn assign(opts: &AssignOptions) -> Result<Assigned> {
    let before = match std::fs::read_to_string(&opts.config) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(PipelineError::io(&opts.config, e)),
    };
    let after = if before.trim().is_empty() {
        opts.block.clone()
    } else if before.ends_with('\n') {
        format!("{before}\n{}", opts.block)
    } else {
        format!("{before}\n\n{}", opts.block)
    };
    let parsed = PipelineConfig::parse(&after)
        .map_err(|e| PipelineError::Config(format!("{}: {e}", opts.config.display())))?;
    let Some(experiment) = parsed.experiments.last() else {
        return Err(PipelineError::Internal(
            "the block declares no experiment".into(),
        ));
    };
    let preview = match &opts.output {
        None => None,
        Some(output) => {
            let root = Root::parse(output, &parsed.storage)?;
            let ctx = session::new_context(&Engine::Local, &parsed).await?;
            let date = register_night(&ctx, &root, &["user_profiles", "propensity"], None)
                .await?
                .ok_or_else(|| {
                    PipelineError::BadInput(format!(
                        "no night under {} published user_profiles",
                        root.display()
                    ))
                })?;
            Some((
                date,
                crate::stages::experiments::preview(&ctx, experiment).await?,
            ))
        }
    };
    let tmp = opts.config.with_extension("toml.tmp");
    std::fs::write(&tmp, &after).map_err(|e| PipelineError::io(&tmp, e))?;
    std::fs::rename(&tmp, &opts.config).map_err(|e| PipelineError::io(&opts.config, e))?;
    Ok(Assigned {
        config: opts.config.display().to_string(),
        block: opts.block.clone(),
        preview,
    })
}

/// The `[[experiments]]` block of these settings, as TOML (strings quoted by TOML's rules).
pub fn experiment_block(
    key: &str,
    arms: &[(String, f64)],
    eligible: Option<&str>,
    start: NaiveDate,
    end: Option<NaiveDate>,
    metrics: &[String],
    winsorize: Option<f64>,
) -> String {
    let quote = |s: &str| toml::Value::String(s.to_string()).to_string();
    let arms: Vec<String> = arms
        .iter()
        .map(|(name, weight)| format!("{{ name = {}, weight = {weight:?} }}", quote(name)))
        .collect();
    let mut out = format!(
        "[[experiments]]\nkey = {}\narms = [{}]\nstart = \"{start}\"\n",
        quote(key),
        arms.join(", ")
    );
    if let Some(eligible) = eligible {
        out.push_str(&format!("eligible = {}\n", quote(eligible)));
    }
    if let Some(end) = end {
        out.push_str(&format!("end = \"{end}\"\n"));
    }
    if !metrics.is_empty() {
        let m: Vec<String> = metrics.iter().map(|m| quote(m)).collect();
        out.push_str(&format!("metrics = [{}]\n", m.join(", ")));
    }
    if let Some(p) = winsorize {
        out.push_str(&format!("winsorize = {p:?}\n"));
    }
    out
}

/// `persona experiment analyse`: the night's analysis on a table of one's own.
#[derive(Debug, Clone)]
pub struct AnalyseOptions {
    /// A Parquet file or folder with the columns of `experiment_customers` (experiment,
    /// customer_id, arm, conversion, revenue, orders, sessions and their pre_ values).
    pub input: String,
    /// The experiments (`[[experiments]]`) and storage settings.
    pub config: PipelineConfig,
    /// JSON lines instead of the readable table.
    pub json: bool,
}

/// Analyses the input's experiments as the night would.
pub async fn analyse(opts: &AnalyseOptions) -> Result<Results> {
    if opts.config.experiments.is_empty() {
        return Err(PipelineError::Config(
            "persona experiment analyse needs --config with the [[experiments]] to analyse".into(),
        ));
    }
    let input = Root::parse(&opts.input, &opts.config.storage)?;
    let ctx = session::new_context(&Engine::Local, &opts.config).await?;
    register_parquet(&ctx, CUSTOMERS, &input, &opts.input).await?;
    let rows = experiment_results::analyse_table(&ctx, &opts.config.experiments).await?;
    Ok(Results {
        rows,
        json: opts.json,
    })
}

/// What to plan for.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanOptions {
    /// The control's conversion rate, e.g. 0.05.
    pub baseline: f64,
    /// The smallest relative lift worth detecting, e.g. 0.10 (5% → 5.5%).
    pub mde: f64,
    /// Probability of detecting that lift when it is there.
    pub power: f64,
    /// Significance level of the two-sided test.
    pub alpha: f64,
    /// Arms, the control included; each needs the customers printed.
    pub arms: usize,
}

/// The plan: customers per arm and in all.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// The control's rate.
    pub baseline: f64,
    /// The treatment's rate that the test is sized to detect.
    pub target: f64,
    /// Relative lift.
    pub mde: f64,
    /// Power.
    pub power: f64,
    /// Level.
    pub alpha: f64,
    /// Arms.
    pub arms: usize,
    /// Customers each arm needs (rounded up).
    pub per_arm: u64,
    /// Customers the experiment needs.
    pub total: u64,
}

/// Sizes a test of a conversion rate; refuses settings that describe no test (exit 4).
pub fn plan(opts: &PlanOptions) -> Result<Plan> {
    let target = opts.baseline * (1.0 + opts.mde);
    let checks = [
        (
            opts.baseline > 0.0 && opts.baseline < 1.0,
            "--baseline must be a rate between 0 and 1 (0.05 for 5%)",
        ),
        (
            opts.mde.is_finite() && opts.mde != 0.0 && target > 0.0 && target < 1.0,
            "--mde must be a relative lift other than 0 that keeps the rate between 0 and 1 \
             (0.10 for +10%)",
        ),
        (
            opts.power > 0.0 && opts.power < 1.0,
            "--power must be between 0 and 1",
        ),
        (
            opts.alpha > 0.0 && opts.alpha < 1.0,
            "--alpha must be between 0 and 1",
        ),
        (opts.arms >= 2, "--arms must be at least 2"),
    ];
    if let Some((_, message)) = checks.iter().find(|(ok, _)| !ok) {
        return Err(PipelineError::Config((*message).to_string()));
    }
    let per_arm = stats::customers_per_arm(opts.baseline, opts.mde, opts.alpha, opts.power).ceil();
    Ok(Plan {
        baseline: opts.baseline,
        target,
        mde: opts.mde,
        power: opts.power,
        alpha: opts.alpha,
        arms: opts.arms,
        per_arm: per_arm as u64,
        total: per_arm as u64 * opts.arms as u64,
    })
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "To detect a conversion rate of {:.2}% against {:.2}% ({:+.1}% relative) with {:.0}% \
             power at a two-sided significance level of {}:",
            100.0 * self.target,
            100.0 * self.baseline,
            100.0 * self.mde,
            100.0 * self.power,
            self.alpha
        )?;
        writeln!(
            f,
            "  {} customers per arm, {} in all ({} arms).",
            crate::engine::progress::group_digits(self.per_arm),
            crate::engine::progress::group_digits(self.total),
            self.arms
        )?;
        if self.arms > 2 {
            writeln!(
                f,
                "  Each treatment is compared with the control at this level; the p-values are \
                 not corrected for the {} comparisons.",
                self.arms - 1
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "tests fail by panicking")]
mod tests {
    use super::*;

    fn opts() -> PlanOptions {
        PlanOptions {
            baseline: 0.05,
            mde: 0.10,
            power: 0.8,
            alpha: 0.05,
            arms: 2,
        }
    }

    #[test]
    fn a_five_percent_rate_needs_about_31_thousand_customers_per_arm() {
        let p = plan(&opts()).unwrap();
        assert_eq!((p.per_arm, p.total), (31_218, 62_436));
        assert!(p.to_string().contains("31,218 customers per arm"), "{p}");
        // A larger effect needs fewer customers; more power, more.
        assert!(plan(&PlanOptions { mde: 0.2, ..opts() }).unwrap().per_arm < p.per_arm);
        assert!(
            plan(&PlanOptions {
                power: 0.9,
                ..opts()
            })
            .unwrap()
            .per_arm
                > p.per_arm
        );
    }

    #[test]
    fn settings_that_describe_no_test_are_refused() {
        for bad in [
            PlanOptions {
                baseline: 5.0,
                ..opts()
            },
            PlanOptions { mde: 0.0, ..opts() },
            PlanOptions {
                mde: 30.0,
                ..opts()
            },
            PlanOptions {
                power: 1.0,
                ..opts()
            },
            PlanOptions {
                alpha: f64::NAN,
                ..opts()
            },
            PlanOptions { arms: 1, ..opts() },
        ] {
            assert!(
                matches!(plan(&bad), Err(PipelineError::Config(_))),
                "{bad:?}"
            );
        }
    }
}
