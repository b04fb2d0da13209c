//! Data-quality gates: a failed gate stops the run with exit code 7, names the gate, the
//! source, the measured value and the limit, and publishes nothing; `persona check` runs the
//! same gates as a pre-flight, publishing nothing either way.

use std::path::Path;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, TimestampMicrosecondArray};
use arrow::record_batch::RecordBatch;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::support::{
    DATE, copy_dir, list_files, ok, persona, run_job, run_job_with, temp, tiny_input, write_parquet,
};

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
    let strict = config(dir.path(), "[gates.max_share]\nduplicate = 0.001\n");
    let result = run_job_with(tiny_input(), out.path(), &["--config", &strict], &[]);
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert_eq!(result.status.code(), Some(7), "{stderr}");
    assert!(
        stderr.contains("[GATE] duplicate_share on app_events")
            && stderr.contains("; duplicate_share on web_logs")
            && stderr.contains("allowed at most 0.1%")
            && stderr.contains("raw rows are extra copies of another row"),
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
fn a_run_date_after_the_data_fails_the_volume_gate() {
    // Twenty days after the last day with data, the look-back window still holds old data but
    // the date and the days before it have none: that night must not be published.
    let late = (chrono::NaiveDate::parse_from_str(DATE, "%Y-%m-%d").unwrap()
        + chrono::Duration::days(20))
    .to_string();
    let out = temp();
    let result = crate::support::run_at(
        tiny_input().to_str().unwrap(),
        out.path().to_str().unwrap(),
        &late,
        &[],
        &[],
    );
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert_eq!(result.status.code(), Some(7), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "volume_vs_median on web_logs: 0.0% (no kept rows on {late} itself; the last day with data is 2026-11-"
        )),
        "{stderr}"
    );
    assert!(
        list_files(out.path()).is_empty(),
        "a gated run published files"
    );
}

#[test]
fn check_reports_the_inputs_and_every_gate() {
    let stdout = ok(&check(tiny_input(), None));
    assert!(
        stdout.contains("raw rows per source and reason"),
        "{stdout}"
    );
    for gate in [
        "source_present",
        "invalid_value_share",
        "unknown_customer_share",
        "duplicate_share",
        "future_dated_share",
        "volume_vs_median",
    ] {
        assert!(
            stdout
                .lines()
                .any(|l| l.trim_start().starts_with("ok") && l.contains(gate)),
            "{gate} missing or failing:\n{stdout}"
        );
    }
    let dir = temp();
    let strict = config(dir.path(), "[gates.max_share]\nfuture_dated = 0.0\n");
    let result = check(tiny_input(), Some(&strict));
    assert_eq!(result.status.code(), Some(7));
    assert!(String::from_utf8_lossy(&result.stdout).contains("FAIL  future_dated_share"));
}

/// Anonymous visitors and crawlers are normal traffic: a night where they are 60% of the web
/// hits passes the default gates, and the manifest still counts them.
#[test]
fn sixty_percent_anonymous_traffic_passes_the_default_gates() {
    let (input, out) = (temp(), temp());
    let generated = persona(
        &[
            "generate",
            "--scale",
            "tiny",
            "--out",
            input.path().to_str().unwrap(),
            "--end-date",
            DATE,
            "--anonymous-share",
            "0.6",
        ],
        &[],
    );
    ok(&generated);
    ok(&run_job(input.path(), out.path(), &[]));
    let manifest = std::fs::read_to_string(
        out.path()
            .join("_runs")
            .join(format!("dt={DATE}"))
            .join("manifest.json"),
    )
    .unwrap();
    let manifest: serde_json::Value = serde_json::from_str(&manifest).unwrap();
    let web_rows = |reasons: &[&str]| -> f64 {
        manifest["data_quality"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| {
                r["source"] == "web_logs"
                    && reasons.contains(&r["reason"].as_str().unwrap_or_default())
            })
            .map(|r| r["rows"].as_f64().unwrap())
            .sum()
    };
    let anonymous = web_rows(&["anonymous", "crawler"]);
    let all = web_rows(&[
        "kept",
        "anonymous",
        "crawler",
        "duplicate",
        "error_status",
        "invalid_value",
        "future_dated",
        "outside_window",
        "unknown_customer",
    ]);
    let share = anonymous / all;
    assert!(
        (0.5..0.65).contains(&share),
        "anonymous and crawler share of web rows {share:.3}"
    );
}

/// Rows that signal a broken export fail the night: here 30% of the web rows lost their time.
#[test]
fn thirty_percent_invalid_rows_fail_the_default_gates() {
    let input = temp();
    copy_dir(tiny_input(), input.path());
    for file in list_files(&input.path().join("web_logs")) {
        let path = input.path().join("web_logs").join(file);
        blank_times(&path, 0.3);
    }
    let result = check(input.path(), None);
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert_eq!(result.status.code(), Some(7), "{stderr}");
    let gate = "[GATE] invalid_value_share on web_logs: ";
    let value: f64 = stderr
        .split(gate)
        .nth(1)
        .and_then(|rest| rest.split('%').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {gate:?} in {stderr}"));
    assert!((29.0..=31.0).contains(&value), "{stderr}");
    assert!(stderr.contains("allowed at most 5.0%"), "{stderr}");
    assert!(!stderr.contains("anonymous"), "{stderr}");
}

/// Rewrites a web-log file with the time of `share` of its rows set to null.
fn blank_times(path: &Path, share: f64) {
    let file = std::fs::File::open(path).unwrap();
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap()
        .build()
        .unwrap();
    let batches: Vec<RecordBatch> = reader.map(|b| b.unwrap()).collect();
    let schema = batches[0].schema();
    let ts_at = schema.index_of("ts").unwrap();
    let blank_per_100 = (share * 100.0).round() as usize;
    let mut out = Vec::new();
    let mut row = 0usize;
    for batch in batches {
        let ts = batch
            .column(ts_at)
            .as_any()
            .downcast_ref::<TimestampMicrosecondArray>()
            .unwrap();
        let blanked: TimestampMicrosecondArray = (0..ts.len())
            .map(|i| {
                row += 1;
                (row % 100 >= blank_per_100).then(|| ts.value(i))
            })
            .collect();
        let blanked = blanked.with_timezone_opt(ts.timezone());
        let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
        columns[ts_at] = Arc::new(blanked);
        out.push(RecordBatch::try_new(Arc::clone(&schema), columns).unwrap());
    }
    let merged = arrow::compute::concat_batches(&schema, &out).unwrap();
    write_parquet(path, &merged);
}
