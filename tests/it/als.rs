//! `persona als` on planted low-rank data: held-out items of a customer's taste group are
//! ranked high (far above popularity), the loss falls every iteration, the same seed gives the
//! same factors, both solvers agree, and bad inputs get clear errors with nothing published.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Float64Array, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::prelude::{ParquetReadOptions, SessionContext};

use crate::support::{ok, persona, query, temp, write_parquet};

const GROUPS: usize = 5;
const USERS_PER_GROUP: usize = 80;
const ITEMS_PER_GROUP: usize = 20;

/// Customers in taste groups: each interacts with 8 of its group's 20 items in training
/// (weights 1–5) and with 2 others of them in the holdout. String ids, as real data has.
pub(crate) fn planted() -> (RecordBatch, RecordBatch) {
    let (mut tu, mut ti, mut tw, mut hu, mut hi) = (vec![], vec![], vec![], vec![], vec![]);
    for g in 0..GROUPS {
        for u in 0..USERS_PER_GROUP {
            let user = format!("c{g}-{u:03}");
            for j in 0..10 {
                let item = format!(
                    "i{:03}",
                    g * ITEMS_PER_GROUP + (u * 7 + j * 3) % ITEMS_PER_GROUP
                );
                if j < 8 {
                    tu.push(user.clone());
                    ti.push(item);
                    tw.push(1.0 + ((u + j) % 5) as f64);
                } else {
                    hu.push(user.clone());
                    hi.push(item);
                }
            }
        }
    }
    let schema = |weight: bool| {
        let mut f = vec![
            Field::new("customer", DataType::Utf8, true),
            Field::new("product", DataType::Utf8, true),
        ];
        if weight {
            f.push(Field::new("strength", DataType::Float64, true));
        }
        Arc::new(Schema::new(f))
    };
    let train: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(tu)),
        Arc::new(StringArray::from(ti)),
        Arc::new(Float64Array::from(tw)),
    ];
    let holdout: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(hu)),
        Arc::new(StringArray::from(hi)),
    ];
    (
        RecordBatch::try_new(schema(true), train).unwrap(),
        RecordBatch::try_new(schema(false), holdout).unwrap(),
    )
}

/// Writes the planted data into a new folder: the folder, the training and the holdout file.
pub(crate) fn write_planted() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = temp();
    let (train, holdout) = planted();
    let (t, h) = (
        dir.path().join("train.parquet"),
        dir.path().join("holdout.parquet"),
    );
    write_parquet(&t, &train);
    write_parquet(&h, &holdout);
    (dir, t, h)
}

/// Writes the planted data and runs `persona als` with `extra`; returns the folder, the
/// output folder and the process output.
fn fit(extra: &[&str]) -> (tempfile::TempDir, PathBuf, std::process::Output) {
    let (dir, t, h) = write_planted();
    let out = dir.path().join("out");
    let mut args = vec![
        "als",
        "--input",
        t.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
        "--user",
        "customer",
        "--item",
        "product",
        "--holdout",
        h.to_str().unwrap(),
        "--rank",
        "8",
        "--iterations",
        "8",
    ];
    args.extend_from_slice(extra);
    let result = persona(&args, &[]);
    (dir, out, result)
}

pub(crate) fn report(output: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(output.join("report/report.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

pub(crate) fn score(report: &serde_json::Value, model: &str, metric: &str) -> f64 {
    report["holdout"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["model"] == model)
        .and_then(|m| m[metric].as_f64())
        .unwrap_or_else(|| panic!("no {metric} for {model}: {report}"))
}

/// The rows of a query, each as its values joined by `|`.
async fn rows(ctx: &SessionContext, sql: &str) -> Vec<String> {
    let mut out = Vec::new();
    for b in query(ctx, sql).await {
        for r in 0..b.num_rows() {
            let values: Vec<String> = b
                .columns()
                .iter()
                .map(|c| datafusion::arrow::util::display::array_value_to_string(c, r).unwrap())
                .collect();
            out.push(values.join("|"));
        }
    }
    out
}

pub(crate) async fn table(output: &Path, name: &str, sql: &str) -> Vec<String> {
    let ctx = SessionContext::new();
    ctx.register_parquet(
        name,
        output.join(name).to_str().unwrap(),
        ParquetReadOptions::default(),
    )
    .await
    .unwrap();
    rows(&ctx, sql).await
}

#[tokio::test(flavor = "multi_thread")]
async fn held_out_items_of_the_taste_group_are_ranked_high() {
    let (_dir, out, result) = fit(&["--weight", "strength"]);
    let stdout = ok(&result);
    assert!(
        stdout.contains("ALS on 400 users x 100 items (3,200 pairs)"),
        "{stdout}"
    );
    let r = report(&out);
    let (als, popular) = (
        score(&r, "als", "ndcg_at_k"),
        score(&r, "popular", "ndcg_at_k"),
    );
    assert!(
        als > 0.35 && als > 3.0 * popular,
        "ALS ndcg {als} vs popular {popular}"
    );
    assert!(score(&r, "als", "recall_at_k") > 0.6, "{r}");
    assert_eq!(r["holdout"][0]["users"].as_u64(), Some(400));

    let loss: Vec<f64> = r["fit"]["loss"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert_eq!(loss.len(), 8);
    assert!(
        loss.windows(2).all(|w| w[1] < w[0]),
        "the loss must fall every iteration: {loss:?}"
    );

    // Recommendations: 10 per user, ranks 1..10, never an item the user already has.
    let per_user = table(
        &out,
        "recommendations",
        "SELECT COUNT(*), MIN(rank), MAX(rank) FROM recommendations GROUP BY customer ORDER BY 1 LIMIT 1",
    )
    .await;
    assert_eq!(per_user, vec!["10|1|10"]);
    let ctx = SessionContext::new();
    for name in ["recommendations", "user_factors", "item_factors"] {
        ctx.register_parquet(
            name,
            out.join(name).to_str().unwrap(),
            ParquetReadOptions::default(),
        )
        .await
        .unwrap();
    }
    ctx.register_parquet(
        "train",
        _dir.path().join("train.parquet").to_str().unwrap(),
        ParquetReadOptions::default(),
    )
    .await
    .unwrap();
    let seen = rows(
        &ctx,
        "SELECT COUNT(*) FROM recommendations r JOIN train t ON r.customer = t.customer AND r.product = t.product",
    )
    .await;
    assert_eq!(seen, vec!["0"], "a seen item was recommended");
    let shapes = rows(
        &ctx,
        "SELECT (SELECT COUNT(*) FROM user_factors WHERE cardinality(factors) = 8) AS users, (SELECT COUNT(*) FROM item_factors) AS items",
    )
    .await;
    assert_eq!(shapes, vec!["400|100"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_same_seed_gives_the_same_factors_and_both_solvers_agree() {
    let sql = "SELECT customer, factors FROM user_factors ORDER BY customer";
    let (_a, first, r1) = fit(&["--weight", "strength"]);
    let (_b, second, r2) = fit(&["--weight", "strength"]);
    ok(&r1);
    ok(&r2);
    assert_eq!(
        table(&first, "user_factors", sql).await,
        table(&second, "user_factors", sql).await
    );
    let (_c, exact, r3) = fit(&["--weight", "strength", "--solver", "cholesky"]);
    ok(&r3);
    let (cg, cholesky) = (report(&first), report(&exact));
    let (a, b) = (
        score(&cg, "als", "ndcg_at_k"),
        score(&cholesky, "als", "ndcg_at_k"),
    );
    assert!((a - b).abs() < 0.05, "cg ndcg {a} vs cholesky {b}");
    let (la, lb) = (
        cg["fit"]["loss"]
            .as_array()
            .unwrap()
            .last()
            .unwrap()
            .as_f64()
            .unwrap(),
        cholesky["fit"]["loss"]
            .as_array()
            .unwrap()
            .last()
            .unwrap()
            .as_f64()
            .unwrap(),
    );
    assert!(
        lb <= la * 1.001,
        "the exact solve must not end with a higher loss: {lb} vs {la}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_factors_do_not_depend_on_how_the_rows_are_partitioned() {
    let sql = "SELECT customer, factors FROM user_factors ORDER BY customer";
    let mut results = Vec::new();
    for partitions in ["1", "7"] {
        let dir = temp();
        let config = dir.path().join("persona.toml");
        std::fs::write(
            &config,
            format!("[execution]\ntarget_partitions = {partitions}\n"),
        )
        .unwrap();
        let (_data, out, result) =
            fit(&["--weight", "strength", "--config", config.to_str().unwrap()]);
        ok(&result);
        results.push(table(&out, "user_factors", sql).await);
    }
    assert_eq!(results[0].len(), 400);
    assert_eq!(
        results[0], results[1],
        "1 and 7 partitions gave different factors"
    );
}

#[test]
fn bad_inputs_are_named_and_nothing_is_published() {
    let (_dir, out, result) = fit(&["--weight", "no_such_column"]);
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert_eq!(result.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("no column \"no_such_column\" (--weight)")
            && stderr.contains("customer, product, strength"),
        "{stderr}"
    );
    assert!(!out.join("report").exists() && !out.join("user_factors").exists());

    let (_dir, out, result) = fit(&["--weight", "customer"]);
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert_eq!(result.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("must be numeric, found Utf8"), "{stderr}");
    assert!(!out.join("report").exists());
}

/// Ratings from a rank-6 truth (five groups and a constant): 5 stars for items of the customer's group, 1 otherwise, with a
/// little deterministic jitter; 30 rated items per customer to train on, 5 held out.
fn ratings() -> (RecordBatch, RecordBatch) {
    let mut rows: [(Vec<String>, Vec<String>, Vec<f64>); 2] = Default::default();
    for g in 0..GROUPS {
        for u in 0..USERS_PER_GROUP {
            for j in 0..35 {
                let item = (u * 13 + j * 17 + g) % (GROUPS * ITEMS_PER_GROUP);
                let stars = if item / ITEMS_PER_GROUP == g {
                    5.0
                } else {
                    1.0
                };
                let jitter = ((u * 31 + j * 7) % 5) as f64 * 0.1 - 0.2;
                let part = &mut rows[usize::from(j >= 30)];
                part.0.push(format!("c{g}-{u:03}"));
                part.1.push(format!("i{item:03}"));
                part.2.push(stars + jitter);
            }
        }
    }
    let schema = Arc::new(Schema::new(vec![
        Field::new("customer", DataType::Utf8, true),
        Field::new("product", DataType::Utf8, true),
        Field::new("strength", DataType::Float64, true),
    ]));
    let [train, holdout] = rows.map(|(u, i, r)| {
        let columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from(u)),
            Arc::new(StringArray::from(i)),
            Arc::new(Float64Array::from(r)),
        ];
        RecordBatch::try_new(Arc::clone(&schema), columns).unwrap()
    });
    (train, holdout)
}

#[test]
fn explicit_ratings_are_predicted_on_held_out_pairs() {
    let dir = temp();
    let (train, holdout) = ratings();
    let (t, h) = (
        dir.path().join("train.parquet"),
        dir.path().join("holdout.parquet"),
    );
    write_parquet(&t, &train);
    write_parquet(&h, &holdout);
    let out = dir.path().join("out");
    let result = persona(
        &[
            "als",
            "--input",
            t.to_str().unwrap(),
            "--output",
            out.to_str().unwrap(),
            "--user",
            "customer",
            "--item",
            "product",
            "--weight",
            "strength",
            "--explicit",
            "--holdout",
            h.to_str().unwrap(),
            "--rank",
            "6",
            "--iterations",
            "10",
            "--lambda",
            "1",
            "--solver",
            "cholesky",
        ],
        &[],
    );
    let stdout = ok(&result);
    assert!(stdout.contains("RMSE:"), "{stdout}");
    let r = report(&out);
    let (train_rmse, holdout_rmse) = (
        r["rmse"]["train"].as_f64().unwrap(),
        r["rmse"]["holdout"].as_f64().unwrap(),
    );
    // The baseline: predicting every held-out rating by the training mean.
    let mean = {
        let r = train
            .column(2)
            .as_any()
            .downcast_ref::<Float64Array>()
            .unwrap();
        r.values().iter().sum::<f64>() / r.len() as f64
    };
    let held = holdout
        .column(2)
        .as_any()
        .downcast_ref::<Float64Array>()
        .unwrap();
    let baseline = (held
        .values()
        .iter()
        .map(|v| (v - mean).powi(2))
        .sum::<f64>()
        / held.len() as f64)
        .sqrt();
    assert!(train_rmse < 0.3, "train RMSE {train_rmse}");
    assert!(
        holdout_rmse < 0.4 * baseline,
        "holdout RMSE {holdout_rmse} against {baseline} for the mean"
    );
    let loss: Vec<f64> = r["fit"]["loss"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert!(
        loss.windows(2).all(|w| w[1] <= w[0] * (1.0 + 1e-9)),
        "{loss:?}"
    );
}
