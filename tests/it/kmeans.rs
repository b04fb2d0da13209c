//! `persona kmeans` on generated tables: planted clusters are recovered, `--k auto` finds their
//! number, the distributed Lloyd matches a plain reference Lloyd from the same start, the same
//! seed gives the same result, the cosine distance groups by direction, categorical columns
//! cluster as one-hot indicators, and bad inputs get clear
//! errors with nothing published.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Float64Array, Int64Array, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::prelude::{ParquetReadOptions, SessionContext};

use crate::support::{list_files, ok, persona, query, temp, write_parquet};

/// A deterministic generator (SplitMix64) with standard normal draws.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    }

    fn normal(&mut self) -> f64 {
        let (u, v) = (self.next().max(1e-12), self.next());
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }
}

/// `n` points around each of `centres` (spread `sd`): columns id, x0.., label, truth.
fn blobs(centres: &[Vec<f64>], n: usize, sd: f64, seed: u64) -> (RecordBatch, Vec<usize>) {
    let d = centres[0].len();
    let mut rng = Rng(seed);
    let mut cols = vec![Vec::new(); d];
    let mut truth = Vec::new();
    for i in 0..n * centres.len() {
        let c = i % centres.len();
        for j in 0..d {
            cols[j].push(centres[c][j] + sd * rng.normal());
        }
        truth.push(c);
    }
    let mut fields = vec![Field::new("id", DataType::Int64, false)];
    let mut arrays: Vec<ArrayRef> = vec![Arc::new(Int64Array::from_iter_values(
        0..truth.len() as i64,
    ))];
    for (j, col) in cols.into_iter().enumerate() {
        fields.push(Field::new(format!("x{j}"), DataType::Float64, true));
        arrays.push(Arc::new(Float64Array::from(col)));
    }
    fields.push(Field::new("label", DataType::Utf8, false));
    arrays.push(Arc::new(StringArray::from_iter_values(
        truth.iter().map(|t| format!("blob-{t}")),
    )));
    let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).unwrap();
    (batch, truth)
}

/// Five well-separated blobs in 3-D.
fn planted() -> (RecordBatch, Vec<usize>) {
    let centres = vec![
        vec![0.0, 0.0, 0.0],
        vec![8.0, 0.0, 0.0],
        vec![0.0, 8.0, 0.0],
        vec![0.0, 0.0, 8.0],
        vec![8.0, 8.0, 8.0],
    ];
    blobs(&centres, 600, 1.0, 7)
}

fn kmeans(input: &Path, output: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "kmeans",
        "--input",
        input.to_str().unwrap(),
        "--output",
        output.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    persona(&args, &[])
}

/// Writes `batch` as a Parquet file in a fresh folder and clusters it with `extra` arguments;
/// returns the folder (removed when dropped), the output folder and stdout.
fn cluster(batch: &RecordBatch, extra: &[&str]) -> (tempfile::TempDir, PathBuf, String) {
    let dir = temp();
    let input = dir.path().join("points.parquet");
    write_parquet(&input, batch);
    let out = dir.path().join("out");
    let stdout = ok(&kmeans(&input, &out, extra));
    (dir, out, stdout)
}

fn report(output: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(output.join("report/report.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// (id, segment_id) of every assigned row, by id.
async fn assignments(output: &Path) -> Vec<(i64, i32)> {
    let ctx = SessionContext::new();
    ctx.register_parquet(
        "a",
        output.join("assignments").to_str().unwrap(),
        ParquetReadOptions::default(),
    )
    .await
    .unwrap();
    let mut out = Vec::new();
    for b in query(&ctx, "SELECT id, segment_id FROM a ORDER BY id").await {
        let ids = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
        let segs = b
            .column(1)
            .as_any()
            .downcast_ref::<datafusion::arrow::array::Int32Array>()
            .unwrap();
        for r in 0..b.num_rows() {
            out.push((ids.value(r), segs.value(r)));
        }
    }
    out
}

/// The segment of every assigned row, by id.
async fn segment_ids(output: &Path) -> Vec<usize> {
    assignments(output)
        .await
        .iter()
        .map(|r| r.1 as usize)
        .collect()
}

/// Adjusted Rand index of two labellings (Hubert & Arabie).
fn adjusted_rand(a: &[usize], b: &[usize]) -> f64 {
    let ka = a.iter().max().map_or(0, |m| m + 1);
    let kb = b.iter().max().map_or(0, |m| m + 1);
    let mut table = vec![vec![0f64; kb]; ka];
    for (x, y) in a.iter().zip(b) {
        table[*x][*y] += 1.0;
    }
    let pairs = |n: f64| n * (n - 1.0) / 2.0;
    let index: f64 = table.iter().flatten().map(|&n| pairs(n)).sum();
    let rows: f64 = table.iter().map(|r| pairs(r.iter().sum())).sum();
    let cols: f64 = (0..kb)
        .map(|j| pairs(table.iter().map(|r| r[j]).sum()))
        .sum();
    let expected = rows * cols / pairs(a.len() as f64);
    (index - expected) / ((rows + cols) / 2.0 - expected)
}

#[tokio::test(flavor = "multi_thread")]
async fn planted_clusters_are_recovered_and_every_row_is_assigned() {
    let (batch, truth) = planted();
    let (_dir, out, stdout) = cluster(&batch, &["--features", "x0,x1,x2", "--k", "5"]);
    assert!(stdout.contains("k=5"), "{stdout}");
    let rows = assignments(&out).await;
    assert_eq!(rows.len(), truth.len());
    let found: Vec<usize> = rows.iter().map(|r| r.1 as usize).collect();
    let ari = adjusted_rand(&truth, &found);
    assert!(ari >= 0.95, "adjusted Rand index {ari}");
    let r = report(&out);
    assert_eq!(r["fit"]["k"], 5);
    assert_eq!(r["fit"]["init"], "k-means||");
    let sizes: f64 = r["fit"]["sizes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_f64().unwrap())
        .sum();
    assert_eq!(sizes as usize, truth.len());
    // Only whole outputs are visible: no work area is left behind.
    assert!(!out.join("_work").exists() || list_files(&out.join("_work")).is_empty());
    assert!(out.join("centroids/_SUCCESS").exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn k_auto_finds_the_planted_number_of_clusters() {
    let (batch, _) = planted();
    let (_dir, out, _) = cluster(
        &batch,
        &[
            "--features",
            "x0,x1,x2",
            "--k",
            "auto",
            "--k-min",
            "2",
            "--k-max",
            "8",
        ],
    );
    let r = report(&out);
    assert_eq!(r["fit"]["k"], 5, "{}", r["fit"]["candidates"]);
    assert_eq!(r["fit"]["k_choice"], "auto (silhouette)");
    let candidates = r["fit"]["candidates"].as_array().unwrap();
    assert_eq!(candidates.len(), 7);
    // Inertia falls as k grows (the elbow is in the report).
    let inertia: Vec<f64> = candidates
        .iter()
        .map(|c| c["inertia"].as_f64().unwrap())
        .collect();
    assert!(inertia[0] > inertia[3], "{inertia:?}");
}

/// Plain Lloyd: `iterations` updates from `start`, then the inertia of the final centroids.
fn reference_lloyd(points: &[Vec<f64>], start: &[Vec<f64>], iterations: usize) -> f64 {
    let nearest = |p: &[f64], cs: &[Vec<f64>]| {
        cs.iter()
            .enumerate()
            .map(|(c, x)| {
                (
                    c,
                    x.iter().zip(p).map(|(a, b)| (a - b) * (a - b)).sum::<f64>(),
                )
            })
            .fold((0, f64::INFINITY), |b, x| if x.1 < b.1 { x } else { b })
    };
    let mut centres = start.to_vec();
    let d = start[0].len();
    for _ in 0..iterations {
        let mut sums = vec![vec![0.0; d]; centres.len()];
        let mut counts = vec![0.0; centres.len()];
        for p in points {
            let (c, _) = nearest(p, &centres);
            counts[c] += 1.0;
            for j in 0..d {
                sums[c][j] += p[j];
            }
        }
        for c in 0..centres.len() {
            if counts[c] > 0.0 {
                centres[c] = sums[c].iter().map(|s| s / counts[c]).collect();
            }
        }
    }
    points.iter().map(|p| nearest(p, &centres).1).sum()
}

#[tokio::test(flavor = "multi_thread")]
async fn inertia_matches_a_reference_lloyd_from_the_same_start() {
    let dir = temp();
    // Overlapping blobs, so Lloyd needs many iterations.
    let centres = vec![
        vec![0.0, 0.0],
        vec![2.0, 0.5],
        vec![1.0, 2.0],
        vec![3.0, 3.0],
    ];
    let (batch, _) = blobs(&centres, 500, 1.0, 11);
    let input = dir.path().join("points.parquet");
    write_parquet(&input, &batch);
    let start = vec![
        vec![-1.0, -1.0],
        vec![0.0, 4.0],
        vec![4.0, 0.0],
        vec![4.0, 4.0],
    ];
    let init = RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("x0", DataType::Float64, false),
            Field::new("x1", DataType::Float64, false),
        ])),
        vec![
            Arc::new(Float64Array::from(
                start.iter().map(|c| c[0]).collect::<Vec<_>>(),
            )),
            Arc::new(Float64Array::from(
                start.iter().map(|c| c[1]).collect::<Vec<_>>(),
            )),
        ],
    )
    .unwrap();
    let init_path = dir.path().join("init.parquet");
    write_parquet(&init_path, &init);
    let out = dir.path().join("out");
    ok(&kmeans(
        &input,
        &out,
        &[
            "--features",
            "x0,x1",
            "--k",
            "4",
            "--no-standardize",
            "--init-from",
            init_path.to_str().unwrap(),
            "--max-iter",
            "15",
            "--tol",
            "0",
        ],
    ));
    let r = report(&out);
    let ours = r["fit"]["final_inertia"].as_f64().unwrap();
    let x = |j: usize| {
        batch
            .column(1 + j)
            .as_any()
            .downcast_ref::<Float64Array>()
            .unwrap()
            .clone()
    };
    let (x0, x1) = (x(0), x(1));
    let points: Vec<Vec<f64>> = (0..batch.num_rows())
        .map(|i| vec![x0.value(i), x1.value(i)])
        .collect();
    let iterations = r["fit"]["iterations"].as_u64().unwrap() as usize;
    let reference = reference_lloyd(&points, &start, iterations);
    assert!(
        (ours - reference).abs() <= 0.01 * reference,
        "persona {ours} vs reference {reference} after {iterations} iterations"
    );
    // Lloyd never increases the inertia.
    let trace: Vec<f64> = r["fit"]["inertia"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert!(
        trace.windows(2).all(|w| w[1] <= w[0] * (1.0 + 1e-9)),
        "{trace:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_same_seed_gives_the_same_result() {
    let dir = temp();
    let (batch, _) = blobs(
        &[
            vec![0.0, 0.0, 0.0],
            vec![3.0, 1.0, 0.0],
            vec![1.0, 3.0, 1.0],
        ],
        700,
        1.2,
        5,
    );
    let input = dir.path().join("points.parquet");
    write_parquet(&input, &batch);
    let run = |name: &str, init: &str| {
        let out = dir.path().join(name);
        ok(&kmeans(
            &input,
            &out,
            &[
                "--features",
                "x0,x1,x2",
                "--k",
                "4",
                "--n-init",
                "2",
                "--init",
                init,
                "--seed",
                "9",
            ],
        ));
        out
    };
    for init in ["k-means||", "k-means++"] {
        let (a, b) = (
            run(&format!("a{init}"), init),
            run(&format!("b{init}"), init),
        );
        assert_eq!(assignments(&a).await, assignments(&b).await, "{init}");
        assert_eq!(
            report(&a)["fit"]["final_inertia"],
            report(&b)["fit"]["final_inertia"],
            "{init}"
        );
        assert_eq!(report(&a)["fit"]["n_init"], 2);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn cosine_distance_groups_points_by_direction() {
    // Three directions; each point's length varies widely, so Euclidean k-means would split by
    // length instead.
    let dirs = [[1.0, 0.1, 0.0], [0.0, 1.0, 0.1], [0.1, 0.0, 1.0]];
    let mut rng = Rng(3);
    let (mut cols, mut truth) = (vec![Vec::new(); 3], Vec::new());
    for i in 0..900 {
        let c = i % 3;
        let length = 1.0 + 20.0 * rng.next();
        for j in 0..3 {
            cols[j].push(length * (dirs[c][j] + 0.05 * rng.normal()));
        }
        truth.push(c);
    }
    let batch = RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("x0", DataType::Float64, false),
            Field::new("x1", DataType::Float64, false),
            Field::new("x2", DataType::Float64, false),
        ])),
        vec![
            Arc::new(Int64Array::from_iter_values(0..900)),
            Arc::new(Float64Array::from(cols[0].clone())),
            Arc::new(Float64Array::from(cols[1].clone())),
            Arc::new(Float64Array::from(cols[2].clone())),
        ],
    )
    .unwrap();
    let (_dir, out, _) = cluster(
        &batch,
        &[
            "--features",
            "x0,x1,x2",
            "--k",
            "3",
            "--distance",
            "cosine",
            "--no-standardize",
        ],
    );
    let found = segment_ids(&out).await;
    let ari = adjusted_rand(&truth, &found);
    assert!(ari >= 0.95, "adjusted Rand index {ari}");
    // Distances are 1 − cos: between 0 and 2.
    let r = report(&out);
    assert!(r["fit"]["final_inertia"].as_f64().unwrap() < 900.0 * 0.1);
}

#[tokio::test(flavor = "multi_thread")]
async fn categorical_features_are_clustered_one_hot() {
    // Three groups that differ only in `tier` (one of them null); `x0` is the same noise for
    // all, so only the indicators can tell the groups apart.
    let mut rng = Rng(11);
    let tiers = [Some("gold"), Some("silver"), None];
    let (mut x0, mut tier, mut truth) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..600 {
        let c = i % 3;
        x0.push(rng.normal());
        tier.push(tiers[c]);
        truth.push(c);
    }
    let batch = RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("x0", DataType::Float64, false),
            Field::new("tier", DataType::Utf8, true),
        ])),
        vec![
            Arc::new(Int64Array::from_iter_values(0..600)),
            Arc::new(Float64Array::from(x0)),
            Arc::new(StringArray::from(tier)),
        ],
    )
    .unwrap();
    let args = ["--features", "x0", "--k", "3", "--n-init", "4"];
    let (_dir, out, _) = cluster(&batch, &[&args[..], &["--categorical", "tier"]].concat());
    let found = segment_ids(&out).await;
    let ari = adjusted_rand(&truth, &found);
    assert!(ari >= 0.99, "adjusted Rand index with the indicators {ari}");
    let r = report(&out);
    let names: Vec<&str> = r["features"]["scales"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    // One indicator per non-null value; a null is 0 in both.
    assert_eq!(names, ["x0", "tier=gold", "tier=silver"]);

    let (_dir, out, _) = cluster(&batch, &args);
    let found = segment_ids(&out).await;
    let ari = adjusted_rand(&truth, &found);
    assert!(
        ari < 0.1,
        "without the indicators the groups cannot be found: {ari}"
    );

    let (code, err) = fails(
        &_dir.path().join("points.parquet"),
        &["--features", "x0", "--categorical", "teir", "--k", "2"],
    );
    assert_eq!(code, 4, "{err}");
    assert!(
        err.contains("no column 'teir' (categorical feature)"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn row_weights_are_counted() {
    let (batch, truth) = planted();
    let weights: ArrayRef = Arc::new(Float64Array::from_iter_values(
        (0..truth.len()).map(|i| if i % 2 == 0 { 2.0 } else { 0.5 }),
    ));
    let mut columns = batch.columns().to_vec();
    columns.push(weights);
    let mut fields: Vec<Field> = batch
        .schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    fields.push(Field::new("w", DataType::Float64, false));
    let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap();
    let (_dir, out, _) = cluster(
        &batch,
        &["--features", "x0,x1,x2", "--k", "5", "--weight", "w"],
    );
    let total: f64 = report(&out)["fit"]["sizes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_f64().unwrap())
        .sum();
    assert_eq!(total, 1.25 * truth.len() as f64);
}

/// Runs `persona kmeans` expecting failure: returns (exit code, stderr) and checks nothing was
/// published.
fn fails(input: &Path, extra: &[&str]) -> (i32, String) {
    let out = temp();
    let result = kmeans(input, out.path(), extra);
    assert!(
        !result.status.success(),
        "persona kmeans succeeded on bad input"
    );
    for table in ["assignments", "centroids", "report"] {
        assert!(
            !out.path().join(table).exists(),
            "{table} published on failure"
        );
    }
    (
        result.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&result.stderr).into_owned(),
    )
}

#[test]
fn bad_inputs_get_clear_errors_and_publish_nothing() {
    let dir = temp();
    let (batch, _) = planted();
    let input = dir.path().join("points.parquet");
    write_parquet(&input, &batch);

    let (code, err) = fails(&input, &["--features", "x0,nope"]);
    assert_eq!(code, 4, "{err}");
    assert!(
        err.contains("no column 'nope'") && err.contains("x0, x1, x2"),
        "{err}"
    );

    let (code, err) = fails(&input, &["--features", "x0,label"]);
    assert_eq!(code, 4, "{err}");
    assert!(
        err.contains("'label'") && err.contains("string column, expected a numeric"),
        "{err}"
    );

    // An all-null feature, and a table with three distinct points.
    let nulls = RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("x0", DataType::Float64, true),
            Field::new("x1", DataType::Float64, true),
        ])),
        vec![
            Arc::new(Float64Array::from(vec![1.0, 2.0, 3.0, 1.0, 2.0, 3.0])),
            Arc::new(Float64Array::from(vec![None::<f64>; 6])),
        ],
    )
    .unwrap();
    let few = dir.path().join("few.parquet");
    write_parquet(&few, &nulls);
    let (code, err) = fails(&few, &["--features", "x0,x1"]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("'x1' is null in all 6 rows"), "{err}");
    for init in ["k-means||", "k-means++"] {
        // More segments than the data can have: the setting is wrong, not the data.
        let (code, err) = fails(&few, &["--features", "x0", "--k", "4", "--init", init]);
        assert_eq!(code, 4, "{err}");
        assert!(err.contains("only 3 distinct values"), "{init}: {err}");
    }

    let empty = dir.path().join("empty.parquet");
    write_parquet(&empty, &nulls.slice(0, 0));
    let (code, err) = fails(&empty, &["--features", "x0"]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("no rows"), "{err}");

    let (code, err) = fails(&dir.path().join("missing.parquet"), &["--features", "x0"]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("no such file"), "{err}");

    let corrupt = dir.path().join("corrupt.parquet");
    std::fs::write(&corrupt, b"PAR1 this is not parquet").unwrap();
    let (code, err) = fails(&corrupt, &["--features", "x0"]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("corrupt.parquet"), "{err}");

    let (code, err) = fails(&input, &["--features", "x0", "--k", "1"]);
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("at least 2"), "{err}");
}
