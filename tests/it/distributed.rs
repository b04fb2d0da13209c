//! The same job on Ballista gives the same outputs as the local run: every stage, the model
//! passes included, runs as distributed work, and the order-independent accumulation makes the
//! results identical, not merely close. Locally the ALS driver keeps the customer factors and
//! ships them in the plan; on Ballista they stay in a work table (`factor_exchange`), so these
//! tests also check that both ways give the same bits.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::end_to_end::{assert_same, snapshot};
use crate::support::{LocalCluster, ok, run_job_with, temp, tiny_input};

/// A configuration with fewer ALS iterations than the default: every iteration is a few
/// Ballista jobs, and the standalone engine polls for work about once a second.
fn config() -> &'static Path {
    static CONFIG: OnceLock<PathBuf> = OnceLock::new();
    CONFIG.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir").keep();
        let path = dir.join("persona.toml");
        std::fs::write(&path, "[recommendations]\niterations = 3\n").expect("config");
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
    let text = std::fs::read_to_string(output.join(format!("_runs/dt={}/manifest.json", crate::support::DATE)))
        .expect("manifest");
    let m: serde_json::Value = serde_json::from_str(&text).expect("json");
    m["recommendations"]["exchange"].as_str().unwrap_or_default().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn standalone_ballista_matches_local() {
    let (local, standalone) = (temp(), temp());
    run_on("local", local.path());
    run_on("standalone", standalone.path());
    assert_eq!(exchange(standalone.path()), "tables");
    assert_same(
        &snapshot(standalone.path(), tiny_input()).await,
        &snapshot(local.path(), tiny_input()).await,
        "standalone Ballista differs from local",
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
