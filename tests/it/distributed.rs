//! The same job on Ballista (an in-process scheduler and executor) gives the same outputs as the
//! local run: every stage, the model passes included, runs as distributed work, and the
//! order-independent accumulation makes the results identical, not merely close.

use crate::end_to_end::snapshot;
use crate::support::{DATE, ok, persona, temp, tiny_input};

#[tokio::test(flavor = "multi_thread")]
async fn standalone_ballista_matches_local() {
    let input = tiny_input();
    let (local, standalone) = (temp(), temp());
    ok(&crate::support::run_job(input, local.path(), &[]));
    ok(&persona(
        &[
            "run",
            "--input",
            input.to_str().unwrap(),
            "--output",
            standalone.path().to_str().unwrap(),
            "--date",
            DATE,
            "--engine",
            "standalone",
        ],
        &[],
    ));
    crate::end_to_end::assert_same(
        &snapshot(standalone.path(), input).await,
        &snapshot(local.path(), input).await,
        "standalone Ballista differs from local",
    );
}
