//! The same job on Ballista gives the same outputs as the local run: every stage, the model
//! passes included, runs as distributed work, and the order-independent accumulation makes the
//! results identical, not merely close.

use crate::end_to_end::{assert_same, snapshot};
use crate::support::{LocalCluster, ok, run_job, run_job_with, temp, tiny_input};

fn run_on(engine: &str, output: &std::path::Path) {
    ok(&run_job_with(
        tiny_input(),
        output,
        &["--engine", engine],
        &[],
    ));
}

#[tokio::test(flavor = "multi_thread")]
async fn standalone_ballista_matches_local() {
    let (local, standalone) = (temp(), temp());
    ok(&run_job(tiny_input(), local.path(), &[]));
    run_on("standalone", standalone.path());
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
    ok(&run_job(tiny_input(), local.path(), &[]));
    run_on(&cluster.engine(), distributed.path());
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
