//! Data-quality gates: a failed gate stops the run with exit code 7, names the gate, the
//! source, the measured value and the limit, and publishes nothing; `persona check` runs the
//! same gates as a pre-flight, publishing nothing either way.

use std::path::Path;

use crate::support::{DATE, copy_dir, list_files, ok, persona, run_job_with, temp, tiny_input};

fn config(dir: &Path, text: &str) -> String {
    let path = dir.join("persona.toml");
    std::fs::write(&path, text).unwrap();
    path.to_string_lossy().into_owned()
}

fn check(input: &Path, config: Option<&str>) -> std::process::Output {
    let mut args = vec!["check", "--input", input.to_str().unwrap(), "--date", DATE];
    if let Some(c) = config {
        args.extend(["--config", c]);
    }
    persona(&args, &[])
}

#[test]
fn a_failed_gate_stops_the_run_and_publishes_nothing() {
    let (dir, out) = (temp(), temp());
    let strict = config(dir.path(), "[gates]\nmax_dropped_share = 0.05\n");
    let result = run_job_with(tiny_input(), out.path(), &["--config", &strict], &[]);
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert_eq!(result.status.code(), Some(7), "{stderr}");
    assert!(
        stderr.contains("[GATE] dropped_share on web_logs")
            && stderr.contains("allowed at most 5.0%")
            && stderr.contains("raw rows dropped"),
        "{stderr}"
    );
    assert!(
        list_files(out.path()).is_empty(),
        "a gated run published files"
    );
}

#[test]
fn a_missing_run_date_fails_the_volume_gate() {
    let input = temp();
    copy_dir(tiny_input(), input.path());
    for source in ["web_logs", "app_events"] {
        std::fs::remove_dir_all(input.path().join(source).join(format!("dt={DATE}"))).unwrap();
    }
    let result = check(input.path(), None);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&result.stdout),
        String::from_utf8_lossy(&result.stderr),
    );
    assert_eq!(result.status.code(), Some(7), "{stdout}\n{stderr}");
    assert!(stderr.contains("volume_vs_median on web_logs"), "{stderr}");
    assert!(stderr.contains("of the median"), "{stderr}");
    assert!(stdout.contains("FAIL  volume_vs_median"), "{stdout}");
}

#[test]
fn check_reports_the_inputs_and_every_gate() {
    let stdout = ok(&check(tiny_input(), None));
    assert!(
        stdout.contains("raw rows per source and reason"),
        "{stdout}"
    );
    for gate in ["source_present", "dropped_share", "volume_vs_median"] {
        assert!(
            stdout
                .lines()
                .any(|l| l.trim_start().starts_with("ok") && l.contains(gate)),
            "{gate} missing or failing:\n{stdout}"
        );
    }
    let dir = temp();
    let strict = config(dir.path(), "[gates]\nmax_dropped_share = 0.01\n");
    let result = check(tiny_input(), Some(&strict));
    assert_eq!(result.status.code(), Some(7));
    assert!(String::from_utf8_lossy(&result.stdout).contains("FAIL  dropped_share"));
}
