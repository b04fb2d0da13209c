//! The job against a real S3-compatible server over HTTP (started by scripts/s3-server.sh from
//! scripts/test.sh, which exports AWS_ENDPOINT_URL, the keys and PERSONA_S3_BUCKET). Without
//! the server these tests fail: they are not skipped.

use crate::sql::sql_csv;
use crate::support::{
    DATE, LocalCluster, error_line, free_port, generate_tiny, ok, run_at, run_job_with, temp,
    tiny_input,
};

/// The test bucket (the server is started by scripts/test.sh).
fn bucket() -> String {
    let endpoint = std::env::var("AWS_ENDPOINT_URL").unwrap_or_default();
    assert!(
        endpoint.starts_with("http://127.0.0.1:"),
        "AWS_ENDPOINT_URL must name the local S3 server: run the tests with scripts/test.sh \
         (or `eval \"$(scripts/s3-server.sh start)\"` first)"
    );
    std::env::var("PERSONA_S3_BUCKET").expect("PERSONA_S3_BUCKET (scripts/s3-server.sh env)")
}

/// A fresh prefix in the bucket for one test.
fn prefix(test: &str) -> String {
    let unique = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("s3://{}/tests/{test}-{unique}", bucket())
}

/// Generates the tiny dataset into `root/input`.
fn generate_into(root: &str) -> String {
    let input = format!("{root}/input");
    generate_tiny(&input);
    input
}

fn run(input: &str, output: &str, date: &str, env: &[(&str, &str)]) -> std::process::Output {
    run_at(input, output, date, &[], env)
}

#[test]
fn bucket_to_bucket_gives_the_same_tables_as_the_local_disk() {
    let root = prefix("same-as-local");
    let input = generate_into(&root);
    let output = format!("{root}/output");
    ok(&run(&input, &output, DATE, &[]));
    assert_same_tables_as_local(&output);

    // `persona sql` on a bucket is read-only too: neither a COPY into the bucket nor a table
    // over the raw CRM export in it.
    for statement in [
        format!("COPY (SELECT * FROM segments) TO '{root}/copied.parquet'"),
        format!("CREATE EXTERNAL TABLE crm STORED AS PARQUET LOCATION '{input}/crm_customers/'"),
    ] {
        let out = crate::sql::sql(&output, &statement, &[]);
        assert!(
            error_line(&out, 2).contains("persona sql only reads the tables published under"),
            "{statement}"
        );
    }
}

/// The published tables under `output` equal those of a local-disk run on the same data.
fn assert_same_tables_as_local(output: &str) {
    let local = temp();
    ok(&run_job_with(tiny_input(), local.path(), &[], &[]));
    let local = local.path().to_str().unwrap();
    for q in [
        "SELECT * FROM user_features ORDER BY customer_id",
        "SELECT customer_id, segment_id, segment_label, distance_to_centroid FROM user_profiles ORDER BY customer_id",
        "SELECT * FROM segments ORDER BY segment_id",
        "SELECT customer_id, rank, item_id, score, source FROM recommendations ORDER BY customer_id, rank",
    ] {
        let (from_s3, from_disk) = (sql_csv(output, q), sql_csv(local, q));
        assert!(from_s3.len() > 1, "{q}: no rows from S3");
        assert_eq!(from_s3, from_disk, "{q}: S3 and local disk differ");
    }
}

/// Scheduler and executors are separate processes that reach the bucket with their own S3
/// clients (built from the AWS variables they inherit).
#[test]
fn a_ballista_cluster_runs_bucket_to_bucket_like_the_local_disk() {
    let cluster = LocalCluster::start(2);
    let root = prefix("cluster");
    let input = generate_into(&root);
    let output = format!("{root}/output");
    let engine = cluster.engine();
    ok(&run_at(&input, &output, DATE, &["--engine", &engine], &[]));
    assert_same_tables_as_local(&output);
}

#[test]
fn a_run_killed_mid_publish_leaves_the_previous_date_readable_and_no_partial_partition() {
    let root = prefix("killed");
    let input = generate_into(&root);
    let output = format!("{root}/output");
    ok(&run(&input, &output, "2026-11-21", &[]));
    let before = sql_csv(&output, "SELECT * FROM segments ORDER BY segment_id");

    // Stop the next night's run just before its third table is written, and kill it there.
    crate::commit::kill_at(&input, &output, None, "commit:segments");

    // Readers see the previous date's segments, unchanged, and no partial partition of DATE:
    // segments and recommendations were not committed, so their latest is still the day before.
    assert_eq!(
        sql_csv(&output, "SELECT * FROM segments ORDER BY segment_id"),
        before
    );
    let latest = sql_csv(&output, "SELECT DISTINCT dt FROM recommendations_history");
    assert_eq!(latest, vec!["dt", "2026-11-21"]);

    // The next run of that date takes over the dead run's lock and publishes.
    ok(&run(&input, &output, DATE, &[]));
    let dates = sql_csv(
        &output,
        "SELECT DISTINCT dt FROM segments_history ORDER BY dt",
    );
    assert_eq!(dates, vec!["dt", "2026-11-21", DATE]);
}

#[test]
fn storage_mistakes_give_one_line_with_the_url_and_a_hint() {
    let root = prefix("errors");
    let input = generate_into(&root);

    let secret = "wrong-secret-value";
    let denied = run(
        &input,
        &format!("{root}/out"),
        DATE,
        &[("AWS_SECRET_ACCESS_KEY", secret)],
    );
    assert_eq!(denied.status.code(), Some(5));
    let err = String::from_utf8_lossy(&denied.stderr);
    assert!(
        err.contains("access denied") && err.contains(&root),
        "{err}"
    );
    assert!(!err.contains(secret), "the secret leaked: {err}");

    let missing = run(
        "s3://no-such-bucket-persona/input",
        &format!("{root}/out"),
        DATE,
        &[],
    );
    assert_eq!(missing.status.code(), Some(5));
    let err = String::from_utf8_lossy(&missing.stderr);
    assert!(
        err.contains("bucket 'no-such-bucket-persona' does not exist"),
        "{err}"
    );

    let port = free_port().to_string();
    let endpoint = format!("http://127.0.0.1:{port}");
    let down = run(
        &input,
        &format!("{root}/out"),
        DATE,
        &[("AWS_ENDPOINT_URL", endpoint.as_str())],
    );
    assert_eq!(down.status.code(), Some(5));
    let err = String::from_utf8_lossy(&down.stderr);
    assert!(
        err.contains("cannot reach the S3 endpoint") && err.contains(&endpoint),
        "{err}"
    );
}

/// A cluster whose executor cannot reach the S3 endpoint (its own AWS_ENDPOINT_URL is wrong,
/// while the client's and the scheduler's are right): one line that says an executor could
/// not reach the store and which settings of the executors to check; exit 5.
#[test]
fn an_executor_that_cannot_reach_the_bucket_is_named() {
    let root = prefix("executor-without-bucket");
    let input = generate_into(&root);
    let nowhere = format!("http://127.0.0.1:{}", free_port());
    let cluster = LocalCluster::start_with(1, &[], &[], &[("AWS_ENDPOINT_URL", &nowhere)]);
    let output = format!("{root}/output");
    let result = run_at(&input, &output, DATE, &["--engine", &cluster.engine()], &[]);
    let error = error_line(&result, 5);
    assert!(
        error.contains("a Ballista executor could not read or write the object store")
            && error.contains("AWS_ENDPOINT_URL"),
        "{error}"
    );
}

/// The night's commit on S3: a rerun killed before a table is written, before the manifest
/// that commits the night, or while the previous run's objects are removed leaves readers the
/// whole old night, the whole old night, and the whole new one.
#[test]
fn on_s3_a_rerun_killed_in_its_commit_leaves_one_whole_night() {
    use crate::commit::{OTHER_NIGHT, kill_at, reader_view};
    let root = prefix("commit");
    let input = generate_into(&root);
    let dir = temp();
    let config = dir.path().join("other.toml");
    std::fs::write(&config, OTHER_NIGHT).unwrap();
    let reference = format!("{root}/new");
    ok(&run_at(
        &input,
        &reference,
        DATE,
        &["--config", config.to_str().unwrap()],
        &[],
    ));
    let new = reader_view(&reference);
    for (i, (point, sees_new)) in [
        ("commit:user_profiles", false),
        ("commit:_runs", false),
        ("gc:segments", true),
    ]
    .into_iter()
    .enumerate()
    {
        let output = format!("{root}/out{i}");
        ok(&run(&input, &output, DATE, &[]));
        let old = reader_view(&output);
        assert_ne!(old, new);
        kill_at(&input, &output, Some(&config), point);
        let seen = reader_view(&output);
        assert_eq!(
            &seen,
            if sees_new { &new } else { &old },
            "killed at {point}"
        );
    }
}

/// Of many starters that find the same abandoned lock in a bucket, exactly one can commit. The
/// bundled S3 server (s3s-fs) checks `If-None-Match: *` and then writes, not atomically as AWS S3
/// and MinIO do, so two starters can both create the take-over marker and both take the lock;
/// the lock then holds one of them, and only that one passes the fence every night checks just
/// before its commit ([`verify_held`]).
#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn on_s3_of_many_starters_over_an_abandoned_lock_exactly_one_can_commit() {
    use persona_jobs::config::StorageConfig;
    use persona_jobs::engine::lock::{RunLock, verify_held};
    use persona_jobs::engine::storage::Root;
    let root = Root::parse(&prefix("lock"), &StorageConfig::default()).unwrap();
    let date = chrono::NaiveDate::from_ymd_opt(2024, 3, 1).unwrap();
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    for round in 0..10 {
        // A holder on this host whose process is gone: abandoned at once.
        let dead = serde_json::json!({
            "run_id": format!("dead-{round}"),
            "host": host.trim(),
            "pid": u32::MAX - 1,
            "acquired_at": chrono::Utc::now().to_rfc3339(),
        });
        root.write(
            &format!("_locks/dt={date}.lock"),
            serde_json::to_vec(&dead).unwrap(),
        )
        .await
        .unwrap();
        let starters: Vec<_> = (0..8)
            .map(|i| {
                let root = root.clone();
                tokio::spawn(async move {
                    let id = format!("run-{round}-{i}");
                    RunLock::acquire(&root, date, &id)
                        .await
                        .map(|lock| (id, lock))
                })
            })
            .collect();
        let mut winners = Vec::new();
        for s in starters {
            match s.await.unwrap() {
                Ok(won) => winners.push(won),
                Err(e) => assert_eq!(e.exit_code(), 6, "{e}"),
            }
        }
        assert!(
            !winners.is_empty(),
            "round {round}: no starter took the lock"
        );
        let mut fenced_in = Vec::new();
        for (id, _) in &winners {
            if verify_held(&root, date, id).await.is_ok() {
                fenced_in.push(id.clone());
            }
        }
        assert_eq!(
            fenced_in.len(),
            1,
            "round {round}: {fenced_in:?} could commit"
        );
        for (_, lock) in winners {
            lock.release().await;
        }
    }
}
