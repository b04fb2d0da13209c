//! The neighbourhood recommenders and the choice between models: `persona recommend --model
//! item_knn | user_knn` on the planted taste groups of `als.rs` (held-out items ranked far above
//! popularity, neighbours inside the group, each item-to-item recommendation explained by one
//! of the customer's items); the customer-to-customer model's pruning against the exact
//! Pearson neighbours; and the night's `[recommendations] model`, named or `auto`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use datafusion::arrow::array::AsArray;
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Float64Type};

use crate::als::{planted, report, score, table, write_planted};
use crate::end_to_end::manifest;
use crate::support::{
    error_line, ok, persona, register_partition, rows_as_text, run_job_with, temp, tiny_input,
};

/// Writes the planted data and runs `persona recommend --model MODEL` with `extra`; returns
/// the folder (kept alive) and the output folder.
fn recommend(model: &str, extra: &[&str]) -> (tempfile::TempDir, PathBuf) {
    let (dir, t, h) = write_planted();
    let out = dir.path().join("out");
    let mut args = vec![
        "recommend",
        "--model",
        model,
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
        "--holdout",
        h.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    ok(&persona(&args, &[]));
    (dir, out)
}

/// The planted taste group of an id (`c3-017` or `i063`: group 3).
fn group(id: &str) -> usize {
    if let Some(rest) = id.strip_prefix('c') {
        rest.split('-').next().unwrap().parse().unwrap()
    } else {
        id[1..].parse::<usize>().unwrap() / 20
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn item_to_item_recommends_the_taste_group_and_says_why() {
    let (_dir, out) = recommend("item_knn", &[]);
    let r = report(&out);
    assert_eq!(r["model"], "item_knn");
    let (ndcg, popular) = (
        score(&r, "item_knn", "ndcg_at_k"),
        score(&r, "popular", "ndcg_at_k"),
    );
    assert!(
        ndcg > 0.5 && ndcg > 3.0 * popular,
        "ndcg {ndcg}, popularity {popular}"
    );

    // Every neighbour is in the item's group: nobody interacts across groups.
    let pairs = table(
        &out,
        "item_neighbours",
        "SELECT product, neighbour_product FROM item_neighbours",
    )
    .await;
    assert!(pairs.len() >= 100 * 10, "{} neighbour rows", pairs.len());
    for p in &pairs {
        let (a, b) = p.split_once('|').unwrap();
        assert_eq!(group(a), group(b), "{p}");
    }

    // Each recommendation is explained by an item the customer interacted with.
    let (train, _) = planted();
    let users = train.column(0).as_string::<i32>();
    let items = train.column(1).as_string::<i32>();
    let had: std::collections::HashSet<(String, String)> = (0..train.num_rows())
        .map(|i| (users.value(i).to_string(), items.value(i).to_string()))
        .collect();
    let recs = table(
        &out,
        "recommendations",
        "SELECT customer, product, because_product FROM recommendations",
    )
    .await;
    assert_eq!(recs.len(), 400 * 10);
    for r in &recs {
        let v: Vec<&str> = r.split('|').collect();
        assert!(had.contains(&(v[0].to_string(), v[2].to_string())), "{r}");
        assert!(!had.contains(&(v[0].to_string(), v[1].to_string())), "{r}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn customer_to_customer_recommends_the_taste_group() {
    let (_dir, out) = recommend("user_knn", &["--neighbours", "10"]);
    let r = report(&out);
    let (ndcg, popular) = (
        score(&r, "user_knn", "ndcg_at_k"),
        score(&r, "popular", "ndcg_at_k"),
    );
    assert!(
        ndcg > 0.3 && ndcg > 3.0 * popular,
        "ndcg {ndcg}, popularity {popular}"
    );
    let pairs = table(
        &out,
        "similar_users",
        "SELECT customer, similar_customer, rank FROM similar_users",
    )
    .await;
    assert!(pairs.len() >= 400 * 5, "{} similar-user rows", pairs.len());
    for p in &pairs {
        let v: Vec<&str> = p.split('|').collect();
        assert_eq!(group(v[0]), group(v[1]), "{p}");
        assert!(v[2].parse::<i32>().unwrap() <= 10, "{p}");
    }
}

/// Each customer's top `k` similarities, best first, by the Pearson correlation of the planted
/// training weights over every item (what scikit-learn's correlation metric computes).
fn exact_top(k: usize) -> HashMap<String, Vec<f64>> {
    let (train, _) = planted();
    let users = train.column(0).as_string::<i32>();
    let items = train.column(1).as_string::<i32>();
    let weights = cast(train.column(2), &DataType::Float64).unwrap();
    let weights = weights.as_primitive::<Float64Type>();
    let mut item_ids: Vec<&str> = (0..train.num_rows()).map(|i| items.value(i)).collect();
    item_ids.sort();
    item_ids.dedup();
    let column: HashMap<&str, usize> = item_ids.iter().enumerate().map(|(c, i)| (*i, c)).collect();
    let mut rows: HashMap<String, Vec<f64>> = HashMap::new();
    for i in 0..train.num_rows() {
        let row = rows
            .entry(users.value(i).to_string())
            .or_insert_with(|| vec![0.0; item_ids.len()]);
        row[column[items.value(i)]] += weights.value(i);
    }
    let n = item_ids.len() as f64;
    let centred: HashMap<&String, Vec<f64>> = rows
        .iter()
        .map(|(u, x)| {
            let mean = x.iter().sum::<f64>() / n;
            (u, x.iter().map(|v| v - mean).collect())
        })
        .collect();
    let norm = |x: &[f64]| x.iter().map(|v| v * v).sum::<f64>().sqrt();
    centred
        .iter()
        .map(|(u, x)| {
            let mut sims: Vec<f64> = centred
                .iter()
                .filter(|(v, _)| v != &u)
                .map(|(_, y)| {
                    x.iter().zip(y).map(|(a, b)| a * b).sum::<f64>() / (norm(x) * norm(y))
                })
                .filter(|s| *s > 0.0)
                .collect();
            sims.sort_by(|a, b| b.total_cmp(a));
            sims.truncate(k);
            ((*u).clone(), sims)
        })
        .collect()
}

/// Each customer's similarities in `similar_users`, best first.
async fn found(out: &Path) -> HashMap<String, Vec<f64>> {
    let mut by_user: HashMap<String, Vec<f64>> = HashMap::new();
    for row in table(
        out,
        "similar_users",
        "SELECT customer, CAST(similarity AS DOUBLE) FROM similar_users ORDER BY customer, rank",
    )
    .await
    {
        let (u, s) = row.split_once('|').unwrap();
        by_user
            .entry(u.to_string())
            .or_default()
            .push(s.parse().unwrap());
    }
    by_user
}

/// With blocks as large as the most popular item's customers nothing is pruned: every
/// customer's neighbours are the exact top ones (compared by similarity, as ties may swap
/// who). With blocks of 4 and no spare candidates, most pairs never meet; what is found still
/// has its exact similarity, and a fair share of the best neighbours' similarity is found.
#[tokio::test(flavor = "multi_thread")]
async fn pruned_neighbours_against_the_exact_ones() {
    let exact = exact_top(10);
    let config = |dir: &Path, block: usize, candidates: usize| {
        let path = dir.join(format!("persona-{block}.toml"));
        std::fs::write(
            &path,
            format!(
                "[recommendations.user_knn]\nneighbours = 10\nblock = {block}\n\
                 candidates = {candidates}\n"
            ),
        )
        .unwrap();
        path
    };
    let dir = temp();
    let whole = config(dir.path(), 1000, 400);
    let (_a, out) = recommend(
        "user_knn",
        &["--neighbours", "10", "--config", whole.to_str().unwrap()],
    );
    let unpruned = found(&out).await;
    assert_eq!(unpruned.len(), exact.len());
    for (user, sims) in &exact {
        let mine = &unpruned[user];
        assert_eq!(mine.len(), sims.len(), "{user}");
        for (a, b) in mine.iter().zip(sims) {
            assert!((a - b).abs() < 1e-5, "{user}: {mine:?} against {sims:?}");
        }
    }

    let small = config(dir.path(), 4, 10);
    let (_b, out) = recommend(
        "user_knn",
        &["--neighbours", "10", "--config", small.to_str().unwrap()],
    );
    let pruned = found(&out).await;
    let (mut captured, mut best) = (0.0, 0.0);
    for (user, sims) in &exact {
        best += sims.iter().sum::<f64>();
        let mine = pruned.get(user).cloned().unwrap_or_default();
        captured += mine.iter().sum::<f64>();
        // Never better than exact: the k-th best found is at most the k-th best there is.
        for (a, b) in mine.iter().zip(sims) {
            assert!(*a <= b + 1e-5, "{user}: {mine:?} against {sims:?}");
        }
    }
    let share = captured / best;
    println!("blocks of 4, 10 candidates: {share:.3} of the exact neighbours' similarity");
    assert!(
        (0.3..1.0).contains(&share),
        "blocks of 4 found {share:.3} of the exact neighbours' similarity"
    );
}

/// A night whose `persona.toml` is `toml`, on the tiny data.
fn night(toml: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = temp();
    let config = dir.path().join("persona.toml");
    std::fs::write(&config, toml).unwrap();
    let out = dir.path().join("out");
    ok(&run_job_with(
        tiny_input(),
        &out,
        &["--config", config.to_str().unwrap()],
        &[],
    ));
    (dir, out)
}

/// The distinct `source` values of the night's recommendations.
async fn sources(out: &Path) -> Vec<String> {
    let ctx = datafusion::prelude::SessionContext::new();
    register_partition(&ctx, "r", out, "recommendations", crate::support::DATE).await;
    rows_as_text(&ctx, "SELECT DISTINCT source FROM r")
        .await
        .into_iter()
        .map(|l| l.trim_matches(|c| c == '|' || c == ' ').to_string())
        .filter(|l| !l.is_empty() && !l.starts_with('+') && l != "source")
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn auto_publishes_the_model_with_the_best_ndcg() {
    let (_dir, out) = night(
        "[recommendations]\nmodel = \"auto\"\n[recommendations.item_knn]\nenabled = true\n\
         [recommendations.user_knn]\nenabled = true\n[propensity]\nenabled = false\n",
    );
    let m = manifest(&out);
    let models = m["evaluation"]["models"].as_array().unwrap();
    let names: Vec<&str> = models
        .iter()
        .map(|s| s["model"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["als", "item_knn", "popular", "user_knn"]);
    let best = models
        .iter()
        .filter(|s| s["model"] != "popular")
        .max_by(|a, b| {
            a["ndcg_at_k"]
                .as_f64()
                .unwrap()
                .total_cmp(&b["ndcg_at_k"].as_f64().unwrap())
        })
        .unwrap();
    let published: Vec<&serde_json::Value> =
        models.iter().filter(|s| s["published"] == true).collect();
    assert_eq!(published, [best]);
    let choice = &m["recommendation_model"];
    assert_eq!(choice["configured"], "auto");
    assert_eq!(choice["published"], best["model"]);
    assert!(
        sources(&out)
            .await
            .contains(&best["model"].as_str().unwrap().to_string())
    );
    assert!(m["tables"]["similar_customers"].as_u64().unwrap() > 100);
    assert!(m["tables"]["item_neighbours"].as_u64().unwrap() > 100);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_named_model_is_published_without_an_evaluation() {
    let (_dir, out) = night(
        "[recommendations]\nmodel = \"user_knn\"\n[evaluation]\nenabled = false\n\
         [propensity]\nenabled = false\n",
    );
    let m = manifest(&out);
    assert_eq!(m["recommendation_model"]["published"], "user_knn");
    assert_eq!(m["recommendation_model"]["why"], "as configured");
    let mut s = sources(&out).await;
    s.sort();
    assert!(s.contains(&"user_knn".to_string()), "{s:?}");
    assert!(!s.contains(&"als".to_string()), "{s:?}");
    assert!(m["tables"]["similar_customers"].as_u64().unwrap() > 100);
    assert!(m["tables"].get("item_neighbours").is_none());
}

#[test]
fn auto_without_the_evaluation_is_a_configuration_error() {
    let dir = temp();
    let config = dir.path().join("persona.toml");
    std::fs::write(
        &config,
        "[recommendations]\nmodel = \"auto\"\n[evaluation]\nenabled = false\n",
    )
    .unwrap();
    let out = dir.path().join("out");
    let result = run_job_with(
        tiny_input(),
        &out,
        &["--config", config.to_str().unwrap()],
        &[],
    );
    let line = error_line(&result, 4);
    assert!(line.contains("recommendations.model"), "{line}");
    assert!(!out.join("_runs").exists());
}
