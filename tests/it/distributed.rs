//! The same job on Ballista gives the same outputs as the local run: every stage, the model
//! passes included, runs as distributed work, and the order-independent accumulation makes the
//! results identical, not merely close. Locally the ALS driver keeps the customer factors and
//! ships them in the plan; on Ballista they stay in a work table (`factor_exchange`), so these
//! tests also check that both ways give the same bits.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::end_to_end::{assert_same, manifest, snapshot};
use crate::support::{LocalCluster, error_line, ok, run_job_with, temp, tiny_input};

/// A configuration with fewer ALS iterations than the default: every iteration is a few
/// Ballista jobs, and the standalone engine polls for work about once a second.
fn config() -> &'static Path {
    static CONFIG: OnceLock<PathBuf> = OnceLock::new();
    CONFIG.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir").keep();
        let path = dir.join("persona.toml");
        // An experiment too, winsorised: its assignments and results must be the same on the
        // cluster; two audiences, one splitting an experiment of its own, with their e-mail
        // hashes exported; and both neighbourhood models, the published one chosen by the evaluation
        // (the item-to-item model on the tiny data), so the choice must be the same too.
        std::fs::write(
            &path,
            "[recommendations]\niterations = 3\nmodel = \"auto\"\n\
             [recommendations.item_knn]\nenabled = true\n\
             [recommendations.user_knn]\nenabled = true\n\
             [[experiments]]\nkey = \"winback\"\nstart = \"2026-11-01\"\n\
             eligible = \"marketing_opt_in\"\nwinsorize = 0.99\n\
             arms = [{ name = \"control\", weight = 0.5 }, { name = \"offer\", weight = 0.5 }]\n\
             [[experiments]]\nkey = \"likely_test\"\nstart = \"2026-11-01\"\n\
             arms = [{ name = \"control\", weight = 0.3 }, { name = \"email\", weight = 0.7 }]\n\
             [privacy]\nexport_hashed_emails = true\n\
             [[audiences]]\nname = \"likely\"\nwhere = \"decile <= 4 AND lifecycle <> 'dormant'\"\n\
             order_by = \"probability DESC\"\nlimit = 60\nexperiment = \"likely_test\"\n\
             [[audiences]]\nname = \"loyal\"\nwhere = \"loyalty_tier IN ('gold', 'platinum')\"\n\
             holdout_share = 0.2\nchannel = \"ads\"\n",
        )
        .expect("config");
        path
    })
}

fn run_on(engine: &str, output: &Path) {
    let config = config().to_str().expect("utf8");
    ok(&run_job_with(
        tiny_input(),
        output,
        &["--engine", engine, "--config", config],
        &[],
    ));
}

/// How the run's ALS fit exchanged the customer factors (`plan` or `tables`).
fn exchange(output: &Path) -> String {
    manifest(output)["recommendations"]["exchange"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn standalone_ballista_matches_local() {
    let (local, standalone) = (temp(), temp());
    run_on("local", local.path());
    run_on("standalone", standalone.path());
    assert_eq!(exchange(standalone.path()), "tables");
    let published = |output: &Path| manifest(output)["recommendation_model"]["published"].clone();
    assert_eq!(published(local.path()), "item_knn");
    assert_eq!(published(standalone.path()), "item_knn");
    assert_same(
        &snapshot(standalone.path(), tiny_input()).await,
        &snapshot(local.path(), tiny_input()).await,
        "standalone Ballista differs from local",
    );
    assert_configured_tables_match(standalone.path(), local.path()).await;
}

/// The tables a night publishes only when its configuration asks (the experiment's, the
/// neighbourhood models'), outside `snapshot`: each with the query that reads it as `t`, and the
/// rows it must at least have. Results' figures are compared to 6 decimals (sums of
/// floating-point numbers in another order differ in the last bits); the neighbours' are exact
/// (sums of whole numbers).
const CONFIGURED_TABLES: [(&str, &str, usize); 7] = [
    (
        "experiment_assignments",
        "SELECT experiment, customer_id, arm, first_eligible_date FROM t",
        10,
    ),
    (
        "experiment_results",
        "SELECT experiment, metric, arm, customers, ROUND(mean, 6), ROUND(lift_low, 6), \
         ROUND(p_value, 6), ROUND(cuped_theta, 6), ROUND(cuped_lift_high, 6), \
         ROUND(cuped_p_adjusted, 6), ROUND(winsorized_at, 6), ROUND(srm_p_value, 6) FROM t",
        10,
    ),
    (
        "item_neighbours",
        "SELECT item_id, rank, neighbour_id, similarity FROM t",
        100,
    ),
    (
        "similar_customers",
        "SELECT customer_id, rank, similar_customer_id, similarity FROM t",
        100,
    ),
    (
        "audiences",
        "SELECT audience, customer_id, rank, in_holdout, why FROM t",
        40,
    ),
    (
        "audience_changes",
        "SELECT audience, customer_id, change, in_holdout FROM t",
        40,
    ),
    (
        "audience_summary",
        "SELECT audience, channel, matched, excluded_opt_out, excluded_suppressed, \
         beyond_limit, size, holdout, contacted, entered, \"left\", \
         ROUND(expected_conversions, 6), overlap, segment_mix FROM t",
        1,
    ),
];

/// Asserts that the configured tables of the night under `cluster` are those under `local`.
async fn assert_configured_tables_match(cluster: &Path, local: &Path) {
    for (table, sql, at_least) in CONFIGURED_TABLES {
        let mut sides = Vec::new();
        for output in [cluster, local] {
            let ctx = datafusion::prelude::SessionContext::new();
            crate::support::register_partition(&ctx, "t", output, table, crate::support::DATE)
                .await;
            let rows = crate::support::rows_as_text(&ctx, sql).await;
            assert!(rows.len() > at_least, "{table}: {} rows", rows.len());
            sides.push(rows);
        }
        assert_eq!(sides[0], sides[1], "{table} differs from the local run's");
    }
    // The audiences' activation files, byte for byte.
    let files = |output: &Path| {
        let folder = crate::support::published_folder(output, "exports", crate::support::DATE);
        [
            "likely.csv",
            "likely.email_sha256.csv",
            "loyal.csv",
            "loyal.email_sha256.csv",
        ]
        .map(|f| std::fs::read_to_string(folder.join(f)).expect("an exported file"))
    };
    assert_eq!(
        files(cluster),
        files(local),
        "the exports differ from the local run's"
    );
    // The report, but for its run time.
    let report = |output: &Path| {
        let folder = crate::support::published_folder(output, "report", crate::support::DATE);
        let html = std::fs::read_to_string(folder.join("index.html")).expect("the report");
        let tile = "</b><span>run time</span>";
        let at = html.find(tile).expect("the run time tile");
        let start = html[..at].rfind("<b>").expect("its value");
        format!("{}{}", &html[..start], &html[at..])
    };
    assert_eq!(
        report(cluster),
        report(local),
        "the report differs from the local run's"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn cluster_of_real_processes_matches_local() {
    let cluster = LocalCluster::start(2);
    let (local, distributed) = (temp(), temp());
    run_on("local", local.path());
    assert_eq!(exchange(local.path()), "plan");
    run_on(&cluster.engine(), distributed.path());
    assert_eq!(exchange(distributed.path()), "tables");
    assert_same(
        &snapshot(distributed.path(), tiny_input()).await,
        &snapshot(local.path(), tiny_input()).await,
        "a scheduler with two executors differs from local",
    );
    assert_configured_tables_match(distributed.path(), local.path()).await;
}

#[test]
fn unreachable_scheduler_is_a_clear_error() {
    let out = temp();
    let port = crate::support::free_port();
    let engine = format!("ballista://127.0.0.1:{port}");
    let result = run_job_with(tiny_input(), out.path(), &["--engine", &engine], &[]);
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert_eq!(result.status.code(), Some(5), "{stderr}");
    assert!(
        stderr.contains("cannot reach the Ballista scheduler"),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("127.0.0.1:{port}")),
        "the error names the scheduler address: {stderr}"
    );
}

/// An executor killed during the ALS stage: Ballista 55 does not reschedule the lost tasks of
/// the running job (it waits for them forever, and keeps retrying the orphaned job after the
/// client gives up), so the run must end by the stage watchdog with exit 8 and a message that
/// says what to check, publish nothing, and leave the previous night's outputs as they were;
/// on a restarted cluster the rerun succeeds. If a later Ballista recovers the job instead,
/// the run simply succeeds, and the test accepts that too.
#[tokio::test(flavor = "multi_thread")]
async fn a_lost_executor_fails_the_run_cleanly_and_a_rerun_succeeds() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};

    let out = temp();
    // The previous night's outputs, from a local run.
    run_on("local", out.path());
    let before = snapshot(out.path(), tiny_input()).await;

    let timeout_config = out.path().join("timeout.toml");
    std::fs::write(
        &timeout_config,
        "[recommendations]\niterations = 3\n[execution]\nstage_timeout_seconds = 20\n",
    )
    .expect("config");
    let mut cluster = LocalCluster::start_with(
        2,
        &["--executor-timeout", "6"],
        &["--heartbeat-interval", "2"],
        &[],
    );
    let mut run = Command::new(crate::support::persona_bin())
        .args([
            "run",
            "--input",
            tiny_input().to_str().expect("utf8"),
            "--output",
            out.path().to_str().expect("utf8"),
            "--date",
            crate::support::DATE,
            "--engine",
            &cluster.engine(),
            "--config",
            timeout_config.to_str().expect("utf8"),
        ])
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the run");
    let mut stderr = BufReader::new(run.stderr.take().expect("stderr"));
    let mut log = String::new();
    let mut line = String::new();
    while stderr.read_line(&mut line).expect("read stderr") > 0 {
        log.push_str(&line);
        if line.contains("stage started") && line.contains("stage=\"als\"") {
            break;
        }
        line.clear();
    }
    assert!(
        log.contains("stage=\"als\""),
        "the ALS stage never started:\n{log}"
    );
    std::thread::sleep(std::time::Duration::from_millis(300));
    let executor = &mut cluster.children[2];
    executor.kill().expect("kill an executor");
    executor.wait().expect("reap it");
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).expect("read stderr");
    let status = run.wait().expect("wait for the run");
    match status.code() {
        Some(0) => {}
        Some(8) => {
            assert!(
                (rest.contains("[TIMEOUT]") || rest.contains("[CLUSTER]"))
                    && rest.contains("persona executor"),
                "{rest}"
            );
            assert_same(
                &snapshot(out.path(), tiny_input()).await,
                &before,
                "a failed cluster run changed the previous outputs",
            );
        }
        other => panic!("exit {other:?} after losing an executor:\n{rest}"),
    }
    drop(cluster);

    let cluster = LocalCluster::start(2);
    run_on(&cluster.engine(), out.path());
    assert_same(
        &snapshot(out.path(), tiny_input()).await,
        &before,
        "the rerun on the cluster differs from the local run",
    );
}

/// An executor without Persona's functions (as a stock Ballista executor would be): the run
/// fails with one line that names the function and says which process to run instead.
#[test]
fn an_executor_without_persona_functions_is_named() {
    let cluster = LocalCluster::start_with(1, &[], &["--without-persona-functions"], &[]);
    let out = temp();
    let result = run_job_with(
        tiny_input(),
        out.path(),
        &["--engine", &cluster.engine()],
        &[],
    );
    let error = error_line(&result, 8);
    assert!(
        error.contains("[CLUSTER] a Ballista executor")
            && error.contains("Persona's functions")
            && error.contains("run `persona executor`"),
        "{error}"
    );
}

/// `persona als` and `persona kmeans` run as one stage under the same watchdog as `persona
/// run`: on a cluster with no executor their first job would wait forever; instead each fails
/// with `[TIMEOUT]` (exit 8) and publishes nothing.
#[test]
fn a_fit_on_a_cluster_without_executors_times_out() {
    use arrow::array::{Float64Array, Int64Array, RecordBatch};

    let cluster = LocalCluster::start_with(0, &[], &[], &[]);
    let dir = temp();
    let input = dir.path().join("pairs.parquet");
    let batch = RecordBatch::try_from_iter([
        (
            "customer",
            std::sync::Arc::new(Int64Array::from_iter_values(0..60)) as _,
        ),
        (
            "product",
            std::sync::Arc::new(Int64Array::from_iter_values((0..60).map(|i| i % 7))) as _,
        ),
        (
            "spend",
            std::sync::Arc::new(Float64Array::from_iter_values((0..60).map(f64::from))) as _,
        ),
    ])
    .expect("batch");
    crate::support::write_parquet(&input, &batch);
    let config = dir.path().join("timeout.toml");
    std::fs::write(&config, "[execution]\nstage_timeout_seconds = 3\n").expect("config");

    let engine = cluster.engine();
    let (input, config) = (
        input.to_str().expect("utf8"),
        config.to_str().expect("utf8"),
    );
    let fits: [(&str, Vec<&str>); 2] = [
        ("als", vec!["--user", "customer", "--item", "product"]),
        ("kmeans", vec!["--features", "spend", "--k", "2"]),
    ];
    for (command, flags) in fits {
        let out = dir.path().join(command);
        let mut args = vec![
            command,
            "--input",
            input,
            "--output",
            out.to_str().expect("utf8"),
            "--engine",
            &engine,
            "--config",
            config,
        ];
        args.extend(flags);
        let error = error_line(&crate::support::persona(&args, &[]), 8);
        assert!(
            error.contains(&format!("[TIMEOUT] stage {command} ran"))
                && error.contains("persona executor"),
            "{error}"
        );
        let published: Vec<String> = std::fs::read_dir(&out)
            .map(|entries| {
                entries
                    .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
                    .filter(|name| name != "_work")
                    .collect()
            })
            .unwrap_or_default();
        assert!(published.is_empty(), "{command} published {published:?}");
    }
}

/// Item factors larger than one Ballista message (16 MiB by default: about 65k items at rank
/// 64): the customer half, the item half's warm start and the top-N all need them, and they
/// reach the executors through the work area instead of inside every task's plan. The fit on
/// a cluster gives the same model and recommendations as the local fit.
#[tokio::test(flavor = "multi_thread")]
async fn item_factors_larger_than_a_plan_message_reach_the_executors() {
    use arrow::array::{Float64Array, Int64Array, RecordBatch};

    const ITEMS: i64 = 80_000;
    const PER_CUSTOMER: i64 = 40;
    let dir = temp();
    let input = dir.path().join("pairs.parquet");
    let pairs = ITEMS; // every item is seen once
    let batch = RecordBatch::try_from_iter([
        (
            "customer",
            std::sync::Arc::new(Int64Array::from_iter_values(
                (0..pairs).map(|p| p / PER_CUSTOMER),
            )) as _,
        ),
        (
            "product",
            // Spread each customer's items over the catalogue, so that items share customers.
            std::sync::Arc::new(Int64Array::from_iter_values(
                (0..pairs).map(|p| (p * 7919) % ITEMS),
            )) as _,
        ),
        (
            "spend",
            std::sync::Arc::new(Float64Array::from_iter_values(
                (0..pairs).map(|p| 1.0 + (p % 5) as f64),
            )) as _,
        ),
    ])
    .expect("batch");
    crate::support::write_parquet(&input, &batch);

    let cluster = LocalCluster::start(2);
    let mut tables = Vec::new();
    for engine in ["local".to_string(), cluster.engine()] {
        let out = dir.path().join(if engine == "local" {
            "local"
        } else {
            "cluster"
        });
        ok(&crate::support::persona(
            &[
                "als",
                "--input",
                input.to_str().expect("utf8"),
                "--output",
                out.to_str().expect("utf8"),
                "--user",
                "customer",
                "--item",
                "product",
                "--weight",
                "spend",
                "--rank",
                "64",
                "--iterations",
                "1",
                "--engine",
                &engine,
            ],
            &[],
        ));
        let ctx = datafusion::prelude::SessionContext::new();
        for table in ["item_factors", "recommendations"] {
            ctx.register_parquet(
                table,
                out.join(table).to_str().expect("utf8"),
                datafusion::prelude::ParquetReadOptions::default(),
            )
            .await
            .expect("register");
        }
        let values = "SELECT COUNT(*) FROM (SELECT unnest(factors) FROM item_factors)";
        assert_eq!(crate::support::scalar_i64(&ctx, values).await, ITEMS * 64);
        tables.push([
            crate::support::rows_as_text(&ctx, "SELECT * FROM item_factors").await,
            crate::support::rows_as_text(&ctx, "SELECT * FROM recommendations").await,
        ]);
    }
    assert!(!tables[0][1].is_empty());
    assert!(
        tables[1] == tables[0],
        "the cluster's model or recommendations differ from the local ones"
    );
}
