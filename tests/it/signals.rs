//! SIGTERM during a run: it stops cleanly, publishes nothing, releases the lock and removes
//! its work area, and exits 143; the next run of the date succeeds.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use crate::support::{DATE, list_files, ok, persona_bin, run_job, temp, tiny_input};

#[test]
fn sigterm_stops_the_run_with_nothing_published() {
    let out = temp();
    let mut child = Command::new(persona_bin())
        .args(["run", "--input", tiny_input().to_str().unwrap()])
        .args(["--output", out.path().to_str().unwrap(), "--date", DATE])
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    // The first stage has started: the signal handlers are installed and most work is ahead.
    let started = lines
        .by_ref()
        .map_while(Result::ok)
        .any(|l| l.contains("web_logs_flagged") && l.contains("stage started"));
    assert!(started, "the run never started its first stage");
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(143), "{rest:?}");
    assert!(
        rest.iter().any(|l| l.contains("[INTERRUPTED] SIGTERM")),
        "{rest:?}"
    );
    // Nothing published, no work area, no lock left behind.
    let left = list_files(out.path());
    assert!(left.is_empty(), "files left after SIGTERM: {left:?}");
    ok(&run_job(tiny_input(), out.path(), &[]));
}
