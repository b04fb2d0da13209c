//! Data-quality gates: checks on the staged inputs, after the drops are counted and before
//! anything is computed from them. A failed gate stops the run with exit code 7 and nothing
//! published; every gate's threshold and measured value go into the manifest (and into the
//! report of `persona check`).

use std::collections::BTreeMap;

use arrow::array::AsArray;
use arrow::datatypes::{Date32Type, Int64Type};
use chrono::NaiveDate;
use datafusion::prelude::SessionContext;
use serde::Serialize;

use crate::config::GatesConfig;
use crate::error::{PipelineError, Result};

/// One gate on one source.
#[derive(Debug, Clone, Serialize)]
pub struct GateResult {
    /// `source_present`, `dropped_share` or `volume_vs_median`.
    pub gate: String,
    /// The input source it looked at.
    pub source: String,
    /// The configured limit.
    pub threshold: f64,
    /// What was measured (NaN when it could not be: see `detail`).
    pub value: f64,
    /// Whether the gate passed.
    pub passed: bool,
    /// The measurement in words.
    pub detail: String,
}

/// Runs every gate on the registered `event_drops` (raw rows per source, reason and event day)
/// for the run `date`. Never fails for a failed gate: see [`enforce`].
pub async fn evaluate(
    ctx: &SessionContext,
    cfg: &GatesConfig,
    date: NaiveDate,
) -> Result<Vec<GateResult>> {
    let mut results = Vec::new();
    if !cfg.enabled {
        return Ok(results);
    }
    let mut totals: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    let sql = "SELECT source, CAST(SUM(rows) AS BIGINT), \
                      CAST(SUM(CASE WHEN reason = 'kept' THEN rows ELSE 0 END) AS BIGINT) \
               FROM event_drops GROUP BY source";
    for b in ctx.sql(sql).await?.collect().await? {
        let (source, total, kept) = (
            b.column(0).as_string::<i32>(),
            b.column(1).as_primitive::<Int64Type>(),
            b.column(2).as_primitive::<Int64Type>(),
        );
        for r in 0..b.num_rows() {
            totals.insert(source.value(r).to_string(), (total.value(r), kept.value(r)));
        }
    }
    for source in &cfg.required_sources {
        let rows = totals.get(source).map_or(0, |t| t.0);
        results.push(GateResult {
            gate: "source_present".into(),
            source: source.clone(),
            threshold: 1.0,
            value: rows as f64,
            passed: rows > 0,
            detail: format!("{rows} raw rows in the window"),
        });
    }
    for (source, (total, kept)) in &totals {
        let share = if *total > 0 {
            1.0 - *kept as f64 / *total as f64
        } else {
            0.0
        };
        results.push(GateResult {
            gate: "dropped_share".into(),
            source: source.clone(),
            threshold: cfg.max_dropped_share,
            value: share,
            passed: share <= cfg.max_dropped_share,
            detail: format!("{} of {total} raw rows dropped", total - kept),
        });
    }
    for source in ["web_logs", "app_events"] {
        if let Some(gate) = volume_gate(ctx, cfg, date, source).await? {
            results.push(gate);
        }
    }
    Ok(results)
}

/// The run date's kept rows of `source` (those that became events) against the median of the
/// days before it, from the per-day counters of `event_drops`: no further scan of the inputs.
async fn volume_gate(
    ctx: &SessionContext,
    cfg: &GatesConfig,
    date: NaiveDate,
    source: &str,
) -> Result<Option<GateResult>> {
    if cfg.min_volume_ratio <= 0.0 {
        return Ok(None);
    }
    let sql = format!(
        "SELECT day, CAST(SUM(rows) AS BIGINT) AS n FROM event_drops \
         WHERE source = '{source}' AND reason = 'kept' AND day IS NOT NULL GROUP BY day"
    );
    let mut per_day = BTreeMap::new();
    for b in ctx.sql(&sql).await?.collect().await? {
        let (days, counts) = (
            b.column(0).as_primitive::<Date32Type>(),
            b.column(1).as_primitive::<Int64Type>(),
        );
        for r in 0..b.num_rows() {
            if let Some(day) = days.value_as_date(r) {
                per_day.insert(day, counts.value(r));
            }
        }
    }
    let history: Vec<i64> = (1..=i64::from(cfg.volume_history_days))
        .filter_map(|back| per_day.get(&(date - chrono::Duration::days(back))).copied())
        .collect();
    let today = per_day.get(&date).copied().unwrap_or(0);
    if history.len() < 3 {
        return Ok(Some(GateResult {
            gate: "volume_vs_median".into(),
            source: source.into(),
            threshold: cfg.min_volume_ratio,
            value: f64::NAN,
            passed: true,
            detail: format!(
                "not checked: {} earlier day(s) with data in the window, 3 needed",
                history.len()
            ),
        }));
    }
    let mut sorted = history.clone();
    sorted.sort_unstable();
    let median = if sorted.len() % 2 == 1 {
        sorted[sorted.len() / 2] as f64
    } else {
        (sorted[sorted.len() / 2 - 1] + sorted[sorted.len() / 2]) as f64 / 2.0
    };
    let ratio = if median > 0.0 {
        today as f64 / median
    } else {
        1.0
    };
    Ok(Some(GateResult {
        gate: "volume_vs_median".into(),
        source: source.into(),
        threshold: cfg.min_volume_ratio,
        value: ratio,
        passed: ratio >= cfg.min_volume_ratio,
        detail: format!(
            "{today} kept rows on {date}, median {median} over the {} days before",
            history.len()
        ),
    }))
}

/// Fails with every failed gate named, its threshold and its value.
pub fn enforce(results: &[GateResult]) -> Result<()> {
    let failed: Vec<String> = results
        .iter()
        .filter(|g| !g.passed)
        .map(|g| {
            let limit = match g.gate.as_str() {
                "dropped_share" => format!("at most {:.1}%", 100.0 * g.threshold),
                "volume_vs_median" => format!("at least {:.0}% of the median", 100.0 * g.threshold),
                _ => "at least one row".to_string(),
            };
            let value = match g.gate.as_str() {
                "dropped_share" | "volume_vs_median" => format!("{:.1}%", 100.0 * g.value),
                _ => format!("{}", g.value),
            };
            format!(
                "{} on {}: {value} ({}), allowed {limit}",
                g.gate, g.source, g.detail
            )
        })
        .collect();
    if failed.is_empty() {
        Ok(())
    } else {
        Err(PipelineError::GateFailed(failed.join("; ")))
    }
}
