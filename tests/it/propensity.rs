//! The purchase-propensity model: published by the night, measured on its holdout, beating
//! its baseline; a night whose horizon has no purchase stops with one message; `persona
//! propensity` recovers a known model from any table. (Leakage is tested in SQL:
//! tests/slt/29_propensity_snapshots.slt; Ballista against local in distributed.rs, whose
//! snapshot includes the propensity tables.)

use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::array::{Float64Array, Int64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::prelude::{ParquetReadOptions, SessionContext, col, lit};

use crate::end_to_end::manifest;
use crate::support::{
    copy_dir, error_line, list_files, ok, outputs, persona, query, run_job, scalar_i64, temp,
    tiny_input, write_parquet,
};

/// One whole-holdout metric of the manifest.
fn metric(m: &serde_json::Value, model: &str, name: &str) -> f64 {
    m["propensity"]["evaluation"][model][name]
        .as_f64()
        .unwrap_or_else(|| panic!("{model}.{name} in {}", m["propensity"]))
}

#[tokio::test(flavor = "multi_thread")]
async fn the_night_publishes_calibrated_probabilities_that_beat_the_baseline() {
    let input = tiny_input();
    let out = temp();
    ok(&run_job(input, out.path(), &[]));
    let ctx = outputs(out.path(), input).await;

    // Every CRM customer is scored once, with a probability, a decile and its reasons.
    let crm = scalar_i64(&ctx, "SELECT COUNT(DISTINCT customer_id) FROM in_crm").await;
    let in_crm = scalar_i64(&ctx, "SELECT COUNT(*) FROM propensity WHERE in_crm").await;
    assert_eq!(in_crm, crm);
    let bad = scalar_i64(
        &ctx,
        "SELECT COUNT(*) FROM propensity WHERE probability IS NULL OR isnan(probability) \
         OR probability < 0 OR probability > 1 OR decile NOT BETWEEN 1 AND 10 \
         OR cardinality(top_features) NOT BETWEEN 1 AND 3",
    )
    .await;
    assert_eq!(bad, 0);
    let distinct = scalar_i64(
        &ctx,
        "SELECT COUNT(*) FROM (SELECT DISTINCT customer_id FROM propensity)",
    )
    .await;
    let rows = scalar_i64(&ctx, "SELECT COUNT(*) FROM propensity").await;
    assert_eq!(distinct, rows, "one row per customer");
    // Deciles order the probabilities.
    let misordered = scalar_i64(
        &ctx,
        "SELECT COUNT(*) FROM (SELECT decile, MIN(probability) AS lo FROM propensity GROUP BY decile) a \
         JOIN (SELECT decile, MAX(probability) AS hi FROM propensity GROUP BY decile) b \
         ON b.decile = a.decile + 1 WHERE b.hi > a.lo",
    )
    .await;
    assert_eq!(misordered, 0);

    // The model: one row per feature, then the intercept and the calibration.
    let terms = scalar_i64(&ctx, "SELECT COUNT(*) FROM propensity_model").await;
    let m = manifest(out.path());
    let features = m["propensity"]["features"]
        .as_array()
        .expect("features")
        .len() as i64;
    assert_eq!(terms, features + 3);
    assert!(
        m["propensity"]["fit"]["converged"]
            .as_bool()
            .unwrap_or(false),
        "{}",
        m["propensity"]
    );

    // On the held-out customers it ranks better than chance and than the rule, and the gains
    // table covers every positive.
    let auc = metric(&m, "logistic", "auc");
    let baseline = metric(&m, "recency_frequency", "auc");
    assert!(auc > 0.6, "AUC {auc}");
    assert!(
        auc > baseline,
        "AUC {auc} against the recency-frequency rule's {baseline}"
    );
    for name in [
        "average_precision",
        "log_loss",
        "brier",
        "ece",
        "top_decile_lift",
    ] {
        assert!(metric(&m, "logistic", name).is_finite(), "{name}");
    }
    let captured = query(
        &ctx,
        "SELECT value FROM propensity_evaluation WHERE model = 'logistic' \
         AND metric = 'cumulative_capture' AND decile = 10",
    )
    .await;
    let captured = captured[0]
        .column(0)
        .as_any()
        .downcast_ref::<Float64Array>()
        .expect("double")
        .value(0);
    assert!((captured - 1.0).abs() < 1e-9, "{captured}");
    // The calibration plot's points: each decile's mean predicted probability, falling from
    // decile 1 (the likeliest) to 10; none for the rule, which gives no probability.
    let means: Vec<f64> = query(
        &ctx,
        "SELECT value FROM propensity_evaluation WHERE model = 'logistic' \
         AND metric = 'mean_probability' ORDER BY decile",
    )
    .await
    .iter()
    .flat_map(|b| {
        let v = b
            .column(0)
            .as_any()
            .downcast_ref::<Float64Array>()
            .expect("double");
        (0..b.num_rows()).map(|r| v.value(r)).collect::<Vec<_>>()
    })
    .collect();
    assert_eq!(means.len(), 10, "{means:?}");
    assert!(means.windows(2).all(|w| w[0] >= w[1]), "{means:?}");
    assert!(means.iter().all(|p| (0.0..=1.0).contains(p)), "{means:?}");
    let rule = query(
        &ctx,
        "SELECT COUNT(*) FROM propensity_evaluation WHERE model = 'recency_frequency' \
         AND metric = 'mean_probability'",
    )
    .await;
    let rule = datafusion::arrow::compute::cast(
        rule[0].column(0),
        &datafusion::arrow::datatypes::DataType::Int64,
    )
    .expect("count");
    assert_eq!(
        rule.as_any()
            .downcast_ref::<datafusion::arrow::array::Int64Array>()
            .expect("int")
            .value(0),
        0
    );
}

/// Rewrites every app-events file without its purchases (the only source of purchases; all
/// days, as a file may hold events of another day).
async fn without_purchases(input: &Path) {
    let ctx = SessionContext::new();
    let mut days: Vec<_> = std::fs::read_dir(input.join("app_events"))
        .expect("app_events")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    days.sort();
    for dir in days {
        let kept = ctx
            .read_parquet(dir.to_str().expect("utf8"), ParquetReadOptions::default())
            .await
            .expect("read")
            .filter(col("event_type").not_eq(lit("purchase")))
            .expect("filter");
        let schema = Arc::new(kept.schema().as_arrow().clone());
        let batches = kept.collect().await.expect("collect");
        for entry in std::fs::read_dir(&dir).expect("day folder").flatten() {
            std::fs::remove_file(entry.path()).expect("remove");
        }
        let batch = datafusion::arrow::compute::concat_batches(&schema, &batches).expect("concat");
        write_parquet(&dir.join("part-0.parquet"), &batch);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_window_without_purchases_stops_the_night_with_one_message() {
    let input = temp();
    copy_dir(tiny_input(), input.path());
    without_purchases(input.path()).await;
    let out = temp();
    let result = run_job(input.path(), out.path(), &[]);
    let line = error_line(&result, 3);
    assert!(
        line.contains("propensity: no training customer purchased in the last 7 days"),
        "{line}"
    );
    assert!(line.contains("[propensity] enabled = false"), "{line}");
    assert!(list_files(out.path()).is_empty(), "nothing is published");

    // As the message says, the night runs without the model.
    let config = input.path().join("persona.toml");
    std::fs::write(&config, "[propensity]\nenabled = false\n").expect("config");
    let config = config.to_str().expect("utf8");
    ok(&crate::support::run_job_with(
        input.path(),
        out.path(),
        &["--config", config],
        &[],
    ));
    let published = list_files(out.path());
    assert!(published.iter().any(|f| f.starts_with("user_profiles/")));
    assert!(
        !published.iter().any(|f| f.starts_with("propensity")),
        "{published:?}"
    );
}

/// Rows of a known model: two numeric features, a category, labels drawn from the model's
/// probabilities by a fixed sequence.
fn known_model_rows(n: usize) -> RecordBatch {
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    let (mut id, mut x, mut z, mut tier, mut y) = (vec![], vec![], vec![], vec![], vec![]);
    for i in 0..n {
        let (a, b) = (next() * 4.0 - 2.0, next() * 2.0 - 1.0);
        let gold = next() < 0.3;
        let logit = 1.5 * a - 2.0 * b + if gold { 1.0 } else { 0.0 } - 0.5;
        let p = 1.0 / (1.0 + (-logit).exp());
        id.push(format!("r{i}"));
        x.push(a);
        z.push(b);
        tier.push(if gold { "gold" } else { "none" });
        y.push(i64::from(next() < p));
    }
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Utf8, false),
        Field::new("x", DataType::Float64, false),
        Field::new("z", DataType::Float64, false),
        Field::new("tier", DataType::Utf8, false),
        Field::new("bought", DataType::Int64, true),
    ]));
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(StringArray::from(id)),
            Arc::new(Float64Array::from(x)),
            Arc::new(Float64Array::from(z)),
            Arc::new(StringArray::from(tier)),
            Arc::new(Int64Array::from(y)),
        ],
    )
    .expect("batch")
}

#[tokio::test(flavor = "multi_thread")]
async fn persona_propensity_recovers_a_known_model_from_any_table() {
    let dir = temp();
    let input = dir.path().join("rows.parquet");
    write_parquet(&input, &known_model_rows(20_000));
    let out = dir.path().join("out");
    let args = [
        "propensity",
        "--input",
        input.to_str().expect("utf8"),
        "--output",
        out.to_str().expect("utf8"),
        "--label",
        "bought",
        "--features",
        "x,z",
        "--categorical",
        "tier",
        "--id",
        "id",
        "--l2",
        "0.001",
    ];
    let stdout = ok(&persona(&args, &[]));
    assert!(stdout.contains("holdout"), "{stdout}");
    let report: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out.join("report/report.json")).expect("report"),
    )
    .expect("json");
    // Coefficients on the raw scale: the model's, within sampling error.
    let ctx = SessionContext::new();
    ctx.register_parquet(
        "model",
        out.join("model").to_str().expect("utf8"),
        ParquetReadOptions::default(),
    )
    .await
    .expect("model");
    let batches = query(&ctx, "SELECT term, coefficient FROM model ORDER BY term").await;
    let mut coefficients = std::collections::BTreeMap::new();
    for b in &batches {
        // Read back as strings of any layout (Parquet strings come back as Utf8View).
        let terms = datafusion::arrow::compute::cast(b.column(0), &DataType::Utf8).expect("cast");
        let terms = terms.as_any().downcast_ref::<StringArray>().expect("terms");
        let values = b
            .column(1)
            .as_any()
            .downcast_ref::<Float64Array>()
            .expect("values");
        for i in 0..b.num_rows() {
            coefficients.insert(terms.value(i).to_string(), values.value(i));
        }
    }
    let near = |term: &str, want: f64| {
        let got = coefficients[term];
        assert!(
            (got - want).abs() < 0.15,
            "{term}: {got} vs {want} ({coefficients:?})"
        );
    };
    near("x", 1.5);
    near("z", -2.0);
    // One indicator per value and an intercept: only a customer's sum is identified (the L2
    // term splits it evenly), so the model is checked on the log-odds of each tier.
    let coefficient = |term: &str| coefficients[term];
    let none = coefficient("(intercept)") + coefficient("tier=none");
    let gold = coefficient("(intercept)") + coefficient("tier=gold");
    assert!((none + 0.5).abs() < 0.15, "tier none: {none} vs -0.5");
    assert!((gold - 0.5).abs() < 0.15, "tier gold: {gold} vs 0.5");
    let auc = report["holdout"]["auc"].as_f64().expect("auc");
    assert!(auc > 0.8, "AUC {auc}");
    let rows = report["holdout"]["rows"].as_u64().expect("rows");
    assert!(
        (3_000..5_000).contains(&rows),
        "about a fifth held out: {rows}"
    );

    // Every row is scored.
    ctx.register_parquet(
        "scores",
        out.join("scores").to_str().expect("utf8"),
        ParquetReadOptions::default(),
    )
    .await
    .expect("scores");
    assert_eq!(
        scalar_i64(&ctx, "SELECT COUNT(probability) FROM scores").await,
        20_000
    );

    // A label that is not 0/1 is named.
    let bad = persona(
        &[
            "propensity",
            "--input",
            input.to_str().expect("utf8"),
            "--output",
            dir.path().join("bad").to_str().expect("utf8"),
            "--label",
            "x",
            "--features",
            "z",
        ],
        &[],
    );
    let line = error_line(&bad, 3);
    assert!(line.contains("--label x") && line.contains("0/1"), "{line}");
}
