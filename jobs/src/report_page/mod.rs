//! The nightly report: one self-contained HTML page (`report/dt=<date>/run=<id>/index.html`)
//! that a marketing team opens instead of writing SQL.
//!
//! [`build`] reads the night's published tables by name from a session (tonight's work tables
//! during the night, the committed night's files for `persona report`), the previous night's
//! `user_profiles` as `previous_user_profiles` and `evaluation_history`, when there are any, and
//! the night's manifest; it writes aggregates only (no customer id, e-mail, IP or cookie), with
//! the charts inline ([`charts`]) and no script or file fetched from anywhere.

pub mod charts;
mod html;

use std::collections::{BTreeMap, BTreeSet};

use arrow::array::AsArray;
use arrow::datatypes::DataType;
use chrono::NaiveDate;
use datafusion::prelude::SessionContext;
use serde_json::Value;

use datafusion::prelude::lit;

use crate::engine::commit::{FILE_FOLDERS, committed_nights, last_published_before, manifest_path};
use crate::engine::session::{self, Engine};
use crate::engine::storage::Root;
use crate::engine::tables::{partition_frame, register_parquet};
use crate::error::{PipelineError, Result};
use html::{Page, esc};

/// The folder the report is published in, like a table: `report/dt=<date>/run=<id>/`.
pub const FOLDER: &str = crate::engine::commit::REPORT_FOLDER;
/// The page's file name in it.
pub const FILE: &str = "index.html";
/// The previous night's profiles, for the segment transitions.
pub const PREVIOUS_PROFILES: &str = "previous_user_profiles";

/// Every chart the page can hold, by id: a test checks each is drawn.
pub const CHARTS: [&str; 8] = [
    "chart-segment-sizes",
    "chart-segment-heatmap",
    "chart-evaluation-history",
    "chart-data-quality-web_logs",
    "chart-data-quality-app_events",
    "chart-propensity-gains",
    "chart-propensity-calibration",
    "chart-experiment-lifts",
];

/// Registers what the page reads beside the night's own tables (already registered on `ctx`
/// by name): `evaluation_history`, the evaluations of the committed nights before `date` under
/// `output` and tonight's, and [`PREVIOUS_PROFILES`], the last published profiles before it.
/// Returns the manifest of the last committed night before `date`, if any.
pub async fn register_context(
    ctx: &SessionContext,
    output: &Root,
    date: NaiveDate,
) -> Result<Option<Value>> {
    const COLUMNS: [&str; 3] = ["model", "k", "ndcg_at_k"];
    let mut frames = Vec::new();
    let nights = committed_nights(output).await?;
    for night in &nights {
        if night.date >= date {
            continue;
        }
        if let Some(folder) = night.tables.get("evaluation") {
            let frame = partition_frame(ctx, output, folder).await?;
            frames.push(
                frame
                    .select_columns(&COLUMNS)?
                    .with_column("dt", lit(night.date.to_string()))?,
            );
        }
    }
    if has(ctx, "evaluation") {
        let frame = ctx.table("evaluation").await?;
        frames.push(
            frame
                .select_columns(&COLUMNS)?
                .with_column("dt", lit(date.to_string()))?,
        );
    }
    let mut frames = frames.into_iter();
    if let Some(first) = frames.next() {
        let history = frames.try_fold(first, |all, f| all.union(f))?;
        ctx.deregister_table("evaluation_history")?;
        ctx.register_table("evaluation_history", history.into_view())?;
    }
    if let Some((_, folder)) = last_published_before(output, date, "user_profiles").await? {
        ctx.deregister_table(PREVIOUS_PROFILES)?;
        register_parquet(ctx, PREVIOUS_PROFILES, &output.child(&folder), "").await?;
    }
    let Some(last) = nights.iter().rev().find(|n| n.date < date) else {
        return Ok(None);
    };
    let bytes = output.read(&manifest_path(last.date)).await?;
    Ok(bytes.and_then(|b| serde_json::from_slice(&b).ok()))
}

/// What `persona report` rebuilds.
#[derive(Debug, Clone)]
pub struct PageOptions {
    /// Output root of `persona run`.
    pub output: String,
    /// The night; the latest by default.
    pub date: Option<NaiveDate>,
    /// Where to write the page; `report-<date>.html` in the current folder by default.
    pub to: Option<std::path::PathBuf>,
    /// The configuration (its `[storage]`).
    pub config: crate::config::PipelineConfig,
}

/// `persona report`: rebuilds a committed night's page from what it published (local or S3)
/// and writes it to a local file, leaving the night untouched; returns the file.
pub async fn rebuild(opts: &PageOptions) -> Result<std::path::PathBuf> {
    let output = Root::parse(&opts.output, &opts.config.storage)?;
    let nights = committed_nights(&output).await?;
    let night = nights
        .iter()
        .rev()
        .find(|n| opts.date.is_none_or(|d| n.date == d))
        .ok_or_else(|| {
            PipelineError::BadInput(format!(
                "no committed night{} under {}; run `persona run` first",
                opts.date.map(|d| format!(" of {d}")).unwrap_or_default(),
                output.display()
            ))
        })?;
    let ctx = session::new_context(&Engine::Local, &opts.config).await?;
    for (table, folder) in &night.tables {
        if FILE_FOLDERS.contains(&table.as_str()) {
            continue;
        }
        let frame = partition_frame(&ctx, &output, folder).await?;
        ctx.register_table(table.as_str(), frame.into_view())?;
    }
    let previous = register_context(&ctx, &output, night.date).await?;
    let path = manifest_path(night.date);
    let bytes = output
        .read(&path)
        .await?
        .ok_or_else(|| PipelineError::BadInput(format!("{} is missing", output.location(&path))))?;
    let manifest: Value = serde_json::from_slice(&bytes).map_err(|e| {
        PipelineError::BadInput(format!("{}: not a manifest ({e})", output.location(&path)))
    })?;
    let html = build(&ctx, &manifest, previous.as_ref(), night.date).await?;
    let to = opts
        .to
        .clone()
        .unwrap_or_else(|| std::path::PathBuf::from(format!("report-{}.html", night.date)));
    std::fs::write(&to, html).map_err(|e| PipelineError::io(&to, e))?;
    Ok(to)
}

/// The page of the night of `date`, from the tables registered on `ctx` and the night's
/// `manifest` (its JSON).
pub async fn build(
    ctx: &SessionContext,
    manifest: &Value,
    previous: Option<&Value>,
    date: NaiveDate,
) -> Result<String> {
    let mut page = Page::new(&format!("Persona · the night of {date}"));
    at_a_glance(&mut page, manifest, date);
    if let Some(previous) = previous {
        changes(&mut page, manifest, previous);
    }
    segments(ctx, &mut page).await?;
    recommendations(ctx, &mut page, date).await?;
    data_quality(ctx, &mut page).await?;
    propensity(ctx, &mut page).await?;
    experiments(ctx, &mut page).await?;
    audiences(ctx, &mut page).await?;
    Ok(page.finish())
}

/// The rows of `sql` with every column as text (NULL as `None`).
async fn rows(ctx: &SessionContext, sql: &str) -> Result<Vec<Vec<Option<String>>>> {
    let mut out = Vec::new();
    for b in ctx.sql(sql).await?.collect().await? {
        let columns = (0..b.num_columns())
            .map(|i| arrow::compute::cast(b.column(i), &DataType::Utf8))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        for r in 0..b.num_rows() {
            out.push(
                columns
                    .iter()
                    .map(|c| {
                        let c = c.as_string::<i32>();
                        (!arrow::array::Array::is_null(c, r)).then(|| c.value(r).to_string())
                    })
                    .collect(),
            );
        }
    }
    Ok(out)
}

fn text(cell: &Option<String>) -> String {
    cell.clone().unwrap_or_default()
}

fn num(cell: &Option<String>) -> f64 {
    cell.as_deref()
        .and_then(|s| s.parse::<f64>().ok())
        .unwrap_or(f64::NAN)
}

fn has(ctx: &SessionContext, table: &str) -> bool {
    ctx.table_exist(table).unwrap_or(false)
}

/// Customers, events kept and excluded, gates, run time, and tables against the last night.
fn at_a_glance(page: &mut Page, manifest: &Value, date: NaiveDate) {
    let tables = &manifest["tables"];
    let customers = tables["user_profiles"].as_f64().unwrap_or(0.0);
    let mut kept = 0.0;
    let mut excluded: BTreeMap<String, f64> = BTreeMap::new();
    for d in manifest["data_quality"].as_array().into_iter().flatten() {
        let (reason, n) = (
            d["reason"].as_str().unwrap_or_default(),
            d["rows"].as_f64().unwrap_or(0.0),
        );
        if d["source"].as_str() == Some("crm_customers") {
            continue;
        }
        if reason == "kept" {
            kept += n;
        } else {
            *excluded.entry(reason.to_string()).or_default() += n;
        }
    }
    let gates = manifest["gates"].as_array().cloned().unwrap_or_default();
    let failed = gates
        .iter()
        .filter(|g| g["passed"].as_bool() == Some(false))
        .count();
    let seconds = manifest["seconds"].as_f64().unwrap_or(0.0);
    let total_excluded: f64 = excluded.values().sum();
    page.section("glance", "The night at a glance");
    page.tiles(&[
        ("customers profiled", charts::count(customers)),
        ("events kept", charts::count(kept)),
        (
            "raw rows excluded",
            format!(
                "{} ({})",
                charts::count(total_excluded),
                charts::percent(total_excluded / (kept + total_excluded).max(1.0))
            ),
        ),
        (
            "gates",
            if failed == 0 {
                format!("all {} passed", gates.len())
            } else {
                format!("{failed} of {} failed", gates.len())
            },
        ),
        ("run time", format!("{seconds:.0} s")),
        (
            "recommendations from",
            manifest["recommendation_model"]["published"]
                .as_str()
                .unwrap_or("als")
                .to_string(),
        ),
    ]);
    let mut reasons: Vec<(String, f64)> = excluded.into_iter().collect();
    reasons.sort_by(|a, b| b.1.total_cmp(&a.1));
    page.table(
        "Raw rows excluded, by reason",
        &["reason", "rows", "share of raw rows"],
        &reasons
            .iter()
            .map(|(r, n)| {
                vec![
                    esc(r),
                    charts::count(*n),
                    charts::percent(n / (kept + total_excluded).max(1.0)),
                ]
            })
            .collect::<Vec<_>>(),
    );
    page.paragraph(&format!(
        "The window {} to {date}; Persona {}.",
        esc(manifest["window"][0].as_str().unwrap_or_default()),
        esc(manifest["version"].as_str().unwrap_or_default()),
    ));
}

/// Rows per published table tonight against the previous committed night's.
fn changes(page: &mut Page, manifest: &Value, previous: &Value) {
    let (now, then) = (&manifest["tables"], &previous["tables"]);
    let Some(tables) = now.as_object() else {
        return;
    };
    let rows: Vec<Vec<String>> = tables
        .iter()
        .map(|(table, n)| {
            let n = n.as_f64().unwrap_or(0.0);
            let before = then[table].as_f64();
            vec![
                esc(table),
                charts::count(n),
                before.map_or("–".to_string(), charts::count),
                before.map_or("new".to_string(), |b| {
                    if b > 0.0 {
                        format!("{:+.1}%", 100.0 * (n - b) / b)
                    } else {
                        "–".to_string()
                    }
                }),
            ]
        })
        .collect();
    let since = esc(previous["date"].as_str().unwrap_or_default());
    page.table(
        &format!("What changed since the night of {since} (rows per published table)"),
        &["table", "tonight", "then", "change"],
        &rows,
    );
}

/// Sizes, the z-score heat map, labels with key averages, and the moves since last night.
async fn segments(ctx: &SessionContext, page: &mut Page) -> Result<()> {
    if !has(ctx, "segments") {
        return Ok(());
    }
    page.section("segments", "Segments");
    let segs = rows(
        ctx,
        "SELECT segment_id, segment_label, size, share, avg_recency_days, avg_purchases, \
         avg_monetary, avg_conversion_rate FROM segments ORDER BY segment_id",
    )
    .await?;
    let labels: Vec<String> = segs
        .iter()
        .map(|r| format!("{} {}", text(&r[0]), short(&text(&r[1]), 28)))
        .collect();
    let sizes: Vec<f64> = segs.iter().map(|r| num(&r[2])).collect();
    page.chart(
        "chart-segment-sizes",
        &charts::bars("Customers per segment", &labels, &sizes, "customers")?,
    );
    let cells = rows(
        ctx,
        "SELECT segment_id, feature, z FROM (SELECT segment_id, unnest(feature_names) AS feature, \
         unnest(centroid_z) AS z FROM segments) ORDER BY segment_id, feature",
    )
    .await?;
    // The features that tell segments apart most: the largest |z| of any segment, at most 20.
    let mut reach: BTreeMap<String, f64> = BTreeMap::new();
    for c in &cells {
        let z = num(&c[2]).abs();
        let e = reach.entry(text(&c[1])).or_default();
        *e = e.max(if z.is_finite() { z } else { 0.0 });
    }
    let mut features: Vec<(String, f64)> = reach.into_iter().collect();
    features.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let features: Vec<String> = features.into_iter().take(20).map(|(f, _)| f).collect();
    let ids: Vec<String> = segs.iter().map(|r| text(&r[0])).collect();
    let values: Vec<Vec<f64>> = features
        .iter()
        .map(|f| {
            ids.iter()
                .map(|id| {
                    cells
                        .iter()
                        .find(|c| text(&c[0]) == *id && text(&c[1]) == *f)
                        .map_or(0.0, |c| num(&c[2]))
                })
                .collect()
        })
        .collect();
    page.chart(
        "chart-segment-heatmap",
        &charts::heatmap(
            "What sets each segment apart (the 20 features that differ most)",
            &features,
            &ids,
            &values,
            2.0,
        )?,
    );
    page.table(
        "Segments and their averages",
        &[
            "id",
            "label",
            "customers",
            "share",
            "days since last event",
            "purchases",
            "spend",
            "conversion",
        ],
        &segs
            .iter()
            .map(|r| {
                vec![
                    esc(&text(&r[0])),
                    esc(&text(&r[1])),
                    charts::count(num(&r[2])),
                    charts::percent(num(&r[3])),
                    format!("{:.1}", num(&r[4])),
                    format!("{:.2}", num(&r[5])),
                    format!("{:.0}", num(&r[6])),
                    charts::percent(num(&r[7])),
                ]
            })
            .collect::<Vec<_>>(),
    );
    if has(ctx, PREVIOUS_PROFILES) {
        let moves = rows(
            ctx,
            &format!(
                "SELECT CAST(p.segment_id AS VARCHAR) AS before, CAST(t.segment_id AS VARCHAR) AS after, COUNT(*) AS n \
                 FROM user_profiles t JOIN {PREVIOUS_PROFILES} p ON p.customer_id = t.customer_id \
                 GROUP BY p.segment_id, t.segment_id"
            ),
        )
        .await?;
        let before: Vec<String> = moves
            .iter()
            .map(|r| text(&r[0]))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let header: Vec<String> = std::iter::once("last night → tonight".to_string())
            .chain(ids.iter().map(|i| format!("to {i}")))
            .collect();
        let body: Vec<Vec<String>> = before
            .iter()
            .map(|b| {
                let total: f64 = moves
                    .iter()
                    .filter(|r| text(&r[0]) == *b)
                    .map(|r| num(&r[2]))
                    .sum();
                std::iter::once(format!("from {}", esc(b)))
                    .chain(ids.iter().map(|a| {
                        let n = moves
                            .iter()
                            .find(|r| text(&r[0]) == *b && text(&r[1]) == *a)
                            .map_or(0.0, |r| num(&r[2]));
                        charts::percent(n / total.max(1.0))
                    }))
                    .collect()
            })
            .collect();
        let header: Vec<&str> = header.iter().map(String::as_str).collect();
        page.table(
            "Where last night's customers are tonight (share of each row)",
            &header,
            &body,
        );
    } else {
        page.paragraph("No earlier night to compare the segments with.");
    }
    Ok(())
}

/// The evaluation night after night, coverage, and the items recommended most per segment.
async fn recommendations(ctx: &SessionContext, page: &mut Page, date: NaiveDate) -> Result<()> {
    if !has(ctx, "recommendations") {
        return Ok(());
    }
    page.section("recommendations", "Recommendations");
    if has(ctx, "evaluation_history") {
        let history = rows(
            ctx,
            &format!(
                "SELECT CAST(dt AS VARCHAR) AS night, model, ndcg_at_k, k FROM evaluation_history \
                 WHERE CAST(dt AS VARCHAR) <= '{date}' ORDER BY night, model"
            ),
        )
        .await?;
        let nights: Vec<String> = history
            .iter()
            .map(|r| text(&r[0]))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let models: BTreeSet<String> = history.iter().map(|r| text(&r[1])).collect();
        let series: Vec<(String, Vec<Option<f64>>)> = models
            .iter()
            .map(|m| {
                (
                    m.clone(),
                    nights
                        .iter()
                        .map(|n| {
                            history
                                .iter()
                                .find(|r| text(&r[0]) == *n && text(&r[1]) == *m)
                                .map(|r| num(&r[2]))
                        })
                        .collect(),
                )
            })
            .collect();
        let k = history.first().map(|r| text(&r[3])).unwrap_or_default();
        page.chart(
            "chart-evaluation-history",
            &charts::lines(
                &format!("Ranking quality night after night (NDCG@{k}, held-out days)"),
                &nights,
                &series,
                &format!("NDCG@{k}"),
            )?,
        );
        let tonight = rows(
            ctx,
            "SELECT model, ndcg_at_k, precision_at_k, coverage FROM evaluation ORDER BY ndcg_at_k DESC",
        )
        .await?;
        page.table(
            "Tonight's evaluation",
            &["model", "NDCG", "precision", "catalogue coverage"],
            &tonight
                .iter()
                .map(|r| {
                    vec![
                        esc(&text(&r[0])),
                        format!("{:.4}", num(&r[1])),
                        format!("{:.4}", num(&r[2])),
                        charts::percent(num(&r[3])),
                    ]
                })
                .collect::<Vec<_>>(),
        );
    }
    let top = rows(
        ctx,
        "SELECT CAST(segment_id AS VARCHAR) AS segment, item_id, n FROM (\
           SELECT u.segment_id, r.item_id, COUNT(*) AS n, ROW_NUMBER() OVER \
             (PARTITION BY u.segment_id ORDER BY COUNT(*) DESC, r.item_id) AS place \
           FROM recommendations r JOIN user_profiles u ON u.customer_id = r.customer_id \
           GROUP BY u.segment_id, r.item_id) WHERE place <= 5 ORDER BY segment_id, place",
    )
    .await?;
    let mut by_segment: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in &top {
        by_segment.entry(text(&r[0])).or_default().push(format!(
            "{} ({})",
            esc(&text(&r[1])),
            charts::count(num(&r[2]))
        ));
    }
    page.table(
        "The items recommended most, per segment (customers they are recommended to)",
        &["segment", "items"],
        &by_segment
            .into_iter()
            .map(|(s, items)| vec![esc(&s), items.join(", ")])
            .collect::<Vec<_>>(),
    );
    Ok(())
}

/// Raw rows per source, reason and event day, stacked: a broken feed stands out.
async fn data_quality(ctx: &SessionContext, page: &mut Page) -> Result<()> {
    if !has(ctx, "data_quality") {
        return Ok(());
    }
    page.section("data-quality", "Data quality");
    let dq = rows(
        ctx,
        "SELECT source, reason, CAST(event_date AS VARCHAR) AS day, rows FROM data_quality \
         WHERE event_date IS NOT NULL ORDER BY day",
    )
    .await?;
    for source in ["web_logs", "app_events"] {
        let mine: Vec<&Vec<Option<String>>> = dq.iter().filter(|r| text(&r[0]) == source).collect();
        let days: Vec<String> = mine
            .iter()
            .map(|r| text(&r[2]))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let mut reasons: Vec<String> = mine
            .iter()
            .map(|r| text(&r[1]))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        // Kept first, at the bottom of every bar.
        reasons.sort_by_key(|r| (r != "kept", r.clone()));
        let series: Vec<(String, Vec<f64>)> = reasons
            .iter()
            .map(|reason| {
                (
                    reason.clone(),
                    days.iter()
                        .map(|d| {
                            mine.iter()
                                .filter(|r| text(&r[1]) == *reason && text(&r[2]) == *d)
                                .map(|r| num(&r[3]))
                                .sum()
                        })
                        .collect(),
                )
            })
            .collect();
        let short_days: Vec<String> = days
            .iter()
            .map(|d| d.get(5..).unwrap_or(d).to_string())
            .collect();
        page.chart(
            &format!("chart-data-quality-{source}"),
            &charts::stacked(
                &format!("{source}: raw rows per day, kept and excluded by reason"),
                &short_days,
                &series,
                "raw rows",
            )?,
        );
    }
    Ok(())
}

/// The gains curve and the holdout's metrics of the purchase-propensity model.
async fn propensity(ctx: &SessionContext, page: &mut Page) -> Result<()> {
    if !has(ctx, "propensity_evaluation") {
        return Ok(());
    }
    page.section("propensity", "Who will buy: propensity");
    let gains = rows(
        ctx,
        "SELECT model, decile, value FROM propensity_evaluation \
         WHERE metric = 'cumulative_capture' AND model IN ('logistic', 'recency_frequency') \
         ORDER BY model, decile",
    )
    .await?;
    let models: BTreeSet<String> = gains.iter().map(|r| text(&r[0])).collect();
    let series: Vec<(String, Vec<f64>)> = models
        .iter()
        .map(|m| {
            (
                m.clone(),
                gains
                    .iter()
                    .filter(|r| text(&r[0]) == *m)
                    .map(|r| num(&r[2]))
                    .collect(),
            )
        })
        .collect();
    page.chart(
        "chart-propensity-gains",
        &charts::gains(
            "Buyers reached by contacting the likeliest first (held-out customers)",
            &series,
        )?,
    );
    let deciles = rows(
        ctx,
        "SELECT model, decile, metric, value FROM propensity_evaluation \
         WHERE metric IN ('mean_probability', 'conversion') \
         AND model IN ('logistic', 'logistic_uncalibrated') ORDER BY model, decile",
    )
    .await?;
    let calibrated: Vec<(String, Vec<(f64, f64)>)> = ["logistic", "logistic_uncalibrated"]
        .iter()
        .map(|m| {
            let value = |d: &str, metric: &str| {
                deciles
                    .iter()
                    .find(|r| text(&r[0]) == *m && text(&r[1]) == d && text(&r[2]) == metric)
                    .map(|r| num(&r[3]))
            };
            let points = (1..=10)
                .filter_map(|d| {
                    let d = d.to_string();
                    Some((value(&d, "mean_probability")?, value(&d, "conversion")?))
                })
                .collect();
            (m.to_string(), points)
        })
        .collect();
    page.chart(
        "chart-propensity-calibration",
        &charts::calibration(
            "Predicted against observed purchase rate, per decile (held-out customers)",
            &calibrated,
        )?,
    );
    let metrics = rows(
        ctx,
        "SELECT model, metric, value FROM propensity_evaluation WHERE decile IS NULL \
         AND metric IN ('auc', 'average_precision', 'brier', 'ece', 'top_decile_lift') \
         ORDER BY model, metric",
    )
    .await?;
    page.table(
        "The model on customers it never saw",
        &["model", "metric", "value"],
        &metrics
            .iter()
            .map(|r| {
                vec![
                    esc(&text(&r[0])),
                    esc(&text(&r[1])),
                    format!("{:.4}", num(&r[2])),
                ]
            })
            .collect::<Vec<_>>(),
    );
    Ok(())
}

/// Each experiment's relative lift per metric with its interval, and the SRM check.
async fn experiments(ctx: &SessionContext, page: &mut Page) -> Result<()> {
    if !has(ctx, "experiment_results") {
        return Ok(());
    }
    page.section("experiments", "Experiments");
    let results = rows(
        ctx,
        "SELECT experiment, metric, arm, relative_lift, relative_low, relative_high, p_adjusted, \
         srm_p_value, srm_alert, customers FROM experiment_results WHERE NOT is_control \
         AND relative_low IS NOT NULL ORDER BY experiment, arm, metric",
    )
    .await?;
    let lifts: Vec<(String, f64, f64, f64)> = results
        .iter()
        .map(|r| {
            (
                format!("{} · {} · {}", text(&r[0]), text(&r[2]), text(&r[1])),
                num(&r[3]),
                num(&r[4]),
                num(&r[5]),
            )
        })
        .collect();
    page.chart(
        "chart-experiment-lifts",
        &charts::forest(
            "Lift of each arm over its control, with 95% intervals",
            &lifts,
            "relative lift (orange: the interval excludes no change)",
        )?,
    );
    let mut srm: BTreeMap<String, (f64, String)> = BTreeMap::new();
    for r in &results {
        srm.insert(text(&r[0]), (num(&r[7]), text(&r[8])));
    }
    page.table(
        "Sample-ratio check (a p-value below 0.001 means the split itself is broken)",
        &["experiment", "SRM p-value", "alert"],
        &srm.iter()
            .map(|(e, (p, alert))| vec![esc(e), format!("{p:.4}"), esc(alert)])
            .collect::<Vec<_>>(),
    );
    Ok(())
}

/// Each audience's funnel.
async fn audiences(ctx: &SessionContext, page: &mut Page) -> Result<()> {
    if !has(ctx, "audience_summary") {
        return Ok(());
    }
    page.section("audiences", "Audiences");
    let summary = rows(
        ctx,
        "SELECT audience, channel, matched, excluded_opt_out, excluded_suppressed, beyond_limit, \
         size, holdout, contacted, entered, \"left\", expected_conversions FROM audience_summary \
         ORDER BY audience",
    )
    .await?;
    page.table(
        "Who each campaign list reaches tonight",
        &[
            "audience",
            "channel",
            "matched",
            "no opt-in",
            "suppressed",
            "past the limit",
            "size",
            "holdout",
            "contacted",
            "entered",
            "left",
            "expected buyers",
        ],
        &summary
            .iter()
            .map(|r| {
                let mut cells = vec![esc(&text(&r[0])), esc(&text(&r[1]))];
                cells.extend(r[2..11].iter().map(|c| charts::count(num(c))));
                cells.push(if r[11].is_some() {
                    charts::count(num(&r[11]).round())
                } else {
                    "–".to_string()
                });
                cells
            })
            .collect::<Vec<_>>(),
    );
    Ok(())
}

/// `s` cut to `n` characters.
fn short(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(n - 1).collect::<String>())
    }
}
