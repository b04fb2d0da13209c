//! Data-quality gates: checks on the staged inputs, after the drops are counted and before
//! anything is computed from them. Only what signals broken data is gated (invalid values,
//! unknown customers, duplicates, future dates, each with its own limit); crawlers, anonymous
//! visitors, error pages and rows of other days are normal traffic, counted but never gated.
//! A failed gate stops the run with exit code 7 and nothing published; every gate's threshold
//! and measured value go into the manifest (and into the report of `persona check`).

use std::collections::BTreeMap;

use arrow::array::AsArray;
use arrow::datatypes::{Date32Type, Int64Type};
use chrono::NaiveDate;
use datafusion::prelude::SessionContext;
use serde::Serialize;

use crate::config::GatesConfig;
use crate::error::{PipelineError, Result};

/// The event sources: the share gates measure their raw rows, the volume gate their kept rows
/// per day (`event_drops` also counts the CRM's opt-in conflicts, which are neither).
const EVENT_SOURCES: [&str; 2] = ["web_logs", "app_events"];

/// Rows read or dropped, per source and reason (`kept` for rows that went on): the
/// manifest's and `persona check`'s data-quality counters.
#[derive(Debug, Clone, Serialize)]
pub struct DropCount {
    /// Source table.
    pub source: String,
    /// Drop reason, or `kept`.
    pub reason: String,
    /// Rows.
    pub rows: u64,
}

/// One gate on one source.
#[derive(Debug, Clone, Serialize)]
pub struct GateResult {
    /// `source_present`, `<reason>_share` (one per reason that signals broken data:
    /// `invalid_value`, `unknown_customer`, `duplicate`, `future_dated`) or `volume_vs_median`.
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
    let counts = rows_by_source_and_reason(ctx).await?;
    for source in &cfg.required_sources {
        let rows = counts.get(source).map_or(0, |c| c.values().sum());
        results.push(GateResult {
            gate: "source_present".into(),
            source: source.clone(),
            threshold: 1.0,
            value: rows as f64,
            passed: rows > 0,
            detail: format!("{rows} raw rows in the window"),
        });
    }
    for (source, reasons) in counts
        .iter()
        .filter(|(s, _)| EVENT_SOURCES.contains(&s.as_str()))
    {
        let total: i64 = reasons.values().sum();
        for (reason, limit) in cfg.max_share.by_reason() {
            let rows = reasons.get(reason).copied().unwrap_or(0);
            let share = if total > 0 {
                rows as f64 / total as f64
            } else {
                0.0
            };
            results.push(GateResult {
                gate: format!("{reason}_share"),
                source: source.clone(),
                threshold: limit,
                value: share,
                passed: share <= limit,
                detail: format!("{rows} of {total} raw rows {}", reason_in_words(reason)),
            });
        }
    }
    for source in EVENT_SOURCES {
        if let Some(gate) = volume_gate(ctx, cfg, date, source).await? {
            results.push(gate);
        }
    }
    Ok(results)
}

/// Raw rows per source and reason, from the counters of `event_drops`.
async fn rows_by_source_and_reason(
    ctx: &SessionContext,
) -> Result<BTreeMap<String, BTreeMap<String, i64>>> {
    let mut counts: BTreeMap<String, BTreeMap<String, i64>> = BTreeMap::new();
    for c in drop_counts(ctx).await? {
        counts
            .entry(c.source)
            .or_default()
            .insert(c.reason, c.rows as i64);
    }
    Ok(counts)
}

/// Reads the data-quality counters staged by `06_event_drops.sql`.
pub async fn drop_counts(ctx: &SessionContext) -> Result<Vec<DropCount>> {
    let batches = ctx
        .sql(
            "SELECT source, reason, CAST(SUM(rows) AS BIGINT) AS rows FROM event_drops \
             GROUP BY source, reason ORDER BY source, reason",
        )
        .await?
        .collect()
        .await?;
    let mut out = Vec::new();
    for b in &batches {
        let (source, reason) = (
            b.column(0).as_string::<i32>(),
            b.column(1).as_string::<i32>(),
        );
        let rows = b.column(2).as_primitive::<Int64Type>();
        for r in 0..b.num_rows() {
            out.push(DropCount {
                source: source.value(r).into(),
                reason: reason.value(r).into(),
                rows: rows.value(r) as u64,
            });
        }
    }
    Ok(out)
}

/// What a gated reason says about the rows, for the gate's message.
fn reason_in_words(reason: &str) -> &'static str {
    match reason {
        "invalid_value" => {
            "are invalid (no time, customer or URL; an unknown event type; a negative price)"
        }
        "unknown_customer" => "are of customers missing from the CRM export",
        "duplicate" => "are extra copies of another row",
        "future_dated" => "are dated after the run date",
        _ => "are dropped",
    }
}

/// Whether a gate measures a share of rows (so its value and limit read as percentages).
fn is_share(gate: &str) -> bool {
    gate.ends_with("_share")
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
    if today == 0 {
        // Without this, a --date past the end of the data (nothing on the date, nothing in
        // the days before it either) passed as "not checked" and published a night of old data.
        let last = per_day
            .keys()
            .next_back()
            .map_or("none in the window".to_string(), |d| d.to_string());
        return Ok(Some(GateResult {
            gate: "volume_vs_median".into(),
            source: source.into(),
            threshold: cfg.min_volume_ratio,
            value: 0.0,
            passed: false,
            detail: format!("no kept rows on {date} itself; the last day with data is {last}"),
        }));
    }
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
                gate if is_share(gate) => format!("at most {:.1}%", 100.0 * g.threshold),
                "volume_vs_median" => format!("at least {:.0}% of the median", 100.0 * g.threshold),
                _ => "at least one row".to_string(),
            };
            let value = match g.gate.as_str() {
                gate if is_share(gate) || gate == "volume_vs_median" => {
                    format!("{:.1}%", 100.0 * g.value)
                }
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
