//! Bad input: each case gives one clear message naming what is wrong, a documented non-zero
//! exit code, and publishes nothing.

use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, Int64Array, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::record_batch::RecordBatch;

use crate::support::{
    DATE, copy_dir, error_line, list_files, persona, run_job, run_job_with, temp, tiny_input,
    write_parquet,
};

/// Runs on a broken copy of the tiny input; asserts the exit code, that stderr contains every
/// expected fragment, and that nothing was published.
fn expect_failure(input: &Path, code: i32, fragments: &[&str]) {
    let out = temp();
    let result = run_job(input, out.path(), &[]);
    error_line(&result, code);
    let stderr = String::from_utf8_lossy(&result.stderr);
    for f in fragments {
        assert!(stderr.contains(f), "stderr lacks '{f}':\n{stderr}");
    }
    let published: Vec<String> = list_files(out.path());
    assert!(
        published.is_empty(),
        "a failed run published files: {published:?}"
    );
}

fn broken_copy() -> tempfile::TempDir {
    let dir = temp();
    copy_dir(tiny_input(), dir.path());
    dir
}

fn first_file(dir: &Path) -> std::path::PathBuf {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    files.sort();
    files
        .into_iter()
        .find(|p| p.extension().is_some_and(|e| e == "parquet"))
        .unwrap()
}

#[test]
fn missing_input_folder() {
    let input = broken_copy();
    std::fs::remove_dir_all(input.path().join("app_events")).unwrap();
    expect_failure(
        input.path(),
        3,
        &["[BAD_INPUT]", "app_events", "is missing"],
    );
}

#[test]
fn missing_input_root() {
    let root = temp();
    expect_failure(
        &root.path().join("nowhere"),
        3,
        &["[BAD_INPUT]", "nowhere", "does not exist"],
    );
}

#[test]
fn file_with_a_missing_column() {
    let input = broken_copy();
    let file = input.path().join("crm_customers").join("bad.parquet");
    let schema = Arc::new(Schema::new(vec![Field::new(
        "customer_id",
        DataType::Utf8,
        true,
    )]));
    let batch = RecordBatch::try_new(
        schema,
        vec![Arc::new(StringArray::from(vec!["C1"])) as ArrayRef],
    )
    .unwrap();
    write_parquet(&file, &batch);
    expect_failure(
        input.path(),
        3,
        &[
            "bad.parquet",
            "column 'email' is missing",
            "expected a string",
        ],
    );
}

#[test]
fn file_with_a_mistyped_column() {
    let input = broken_copy();
    let day = input.path().join("web_logs").join(format!("dt={DATE}"));
    let file = day.join("zz-mistyped.parquet");
    // A web-log file whose `status` is a string.
    let names = [
        "ts",
        "cookie_id",
        "customer_id",
        "method",
        "url",
        "status",
        "bytes",
        "referrer",
        "user_agent",
        "ip",
    ];
    let mut fields: Vec<Field> = names
        .iter()
        .map(|n| Field::new(*n, DataType::Utf8, true))
        .collect();
    fields[0] = Field::new(
        "ts",
        DataType::Timestamp(
            datafusion::arrow::datatypes::TimeUnit::Microsecond,
            Some("UTC".into()),
        ),
        true,
    );
    fields[6] = Field::new("bytes", DataType::Int64, true);
    let columns: Vec<ArrayRef> = fields
        .iter()
        .map(|f| match f.data_type() {
            DataType::Int64 => Arc::new(Int64Array::from(vec![1])) as ArrayRef,
            DataType::Utf8 => Arc::new(StringArray::from(vec!["200"])) as ArrayRef,
            _ => Arc::new(
                datafusion::arrow::array::TimestampMicrosecondArray::from(vec![0])
                    .with_timezone("UTC"),
            ) as ArrayRef,
        })
        .collect();
    write_parquet(
        &file,
        &RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap(),
    );
    expect_failure(
        input.path(),
        3,
        &[
            "zz-mistyped.parquet",
            "column 'status' has type Utf8, expected an integer",
        ],
    );
}

#[test]
fn corrupt_parquet_file() {
    let input = broken_copy();
    let day = input.path().join("app_events").join(format!("dt={DATE}"));
    let file = first_file(&day);
    let bytes = std::fs::read(&file).unwrap();
    std::fs::write(&file, &bytes[..bytes.len() / 2]).unwrap();
    let name = file.file_name().unwrap().to_string_lossy().into_owned();
    expect_failure(input.path(), 3, &[&name, "not a readable Parquet file"]);
}

#[test]
fn empty_window() {
    let out = temp();
    let result = persona(
        &[
            "run",
            "--input",
            tiny_input().to_str().unwrap(),
            "--output",
            out.path().to_str().unwrap(),
            "--date",
            "2020-01-01",
        ],
        &[],
    );
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert_eq!(result.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("empty window") && stderr.contains("dt=2019-12-05..dt=2020-01-01"),
        "{stderr}"
    );
    assert!(list_files(out.path()).is_empty());
}

#[test]
fn bad_date() {
    let out = temp();
    let result = persona(
        &[
            "run",
            "--input",
            tiny_input().to_str().unwrap(),
            "--output",
            out.path().to_str().unwrap(),
            "--date",
            "2026-13-01",
        ],
        &[],
    );
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert_eq!(result.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("'2026-13-01' is not a date in the form YYYY-MM-DD"),
        "{stderr}"
    );
    assert!(list_files(out.path()).is_empty());
}

#[test]
fn unknown_config_key() {
    let out = temp();
    let cfg = out.path().join("persona.toml");
    std::fs::write(&cfg, "[segments]\nkk = 3\n").unwrap();
    let output = out.path().join("out");
    let result = run_job_with(
        tiny_input(),
        &output,
        &["--config", cfg.to_str().unwrap()],
        &[],
    );
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert_eq!(result.status.code(), Some(4), "{stderr}");
    assert!(
        stderr.contains("[BAD_CONFIG]") && stderr.contains("kk"),
        "{stderr}"
    );
}

/// The customer id and time of the first app event of the run date in `input`.
fn an_active_customer(input: &Path) -> String {
    let day = input.join("app_events").join(format!("dt={DATE}"));
    let file = std::fs::File::open(first_file(&day)).unwrap();
    let mut reader =
        parquet::arrow::arrow_reader::ParquetRecordBatchReader::try_new(file, 1024).unwrap();
    let batch = reader.next().unwrap().unwrap();
    let ids = batch
        .column_by_name("customer_id")
        .unwrap()
        .as_any()
        .downcast_ref::<StringArray>()
        .unwrap();
    (0..ids.len())
        .find(|&i| ids.is_valid(i))
        .map(|i| ids.value(i).to_string())
        .unwrap()
}

fn manifest(output: &Path) -> serde_json::Value {
    let text =
        std::fs::read_to_string(output.join(format!("_runs/dt={DATE}/manifest.json"))).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn drops(m: &serde_json::Value, source: &str, reason: &str) -> i64 {
    m["data_quality"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["source"] == source && d["reason"] == reason)
        .and_then(|d| d["rows"].as_i64())
        .unwrap_or(0)
}

/// Events from a device with a wrong clock (years ahead) are not errors: they are dropped as
/// future_dated, counted, and the run publishes everything else.
#[test]
fn clock_skewed_events_are_counted_and_left_out() {
    use datafusion::arrow::array::{Float64Array, Int32Array, TimestampMicrosecondArray};
    let (baseline, skewed) = (temp(), temp());
    crate::support::ok(&run_job(tiny_input(), baseline.path(), &[]));
    let input = broken_copy();
    let customer = an_active_customer(input.path());
    let rows = 25;
    let year_2031_us = 1_924_992_000_000_000i64;
    let fields = vec![
        Field::new(
            "event_time",
            DataType::Timestamp(
                datafusion::arrow::datatypes::TimeUnit::Microsecond,
                Some("UTC".into()),
            ),
            true,
        ),
        Field::new("customer_id", DataType::Utf8, true),
        Field::new("device_id", DataType::Utf8, true),
        Field::new("platform", DataType::Utf8, true),
        Field::new("event_type", DataType::Utf8, true),
        Field::new("item_id", DataType::Utf8, true),
        Field::new("quantity", DataType::Int32, true),
        Field::new("price", DataType::Float64, true),
    ];
    let columns: Vec<ArrayRef> = vec![
        Arc::new(
            TimestampMicrosecondArray::from_iter_values(
                (0..rows).map(|i| year_2031_us + i * 1_000_000),
            )
            .with_timezone("UTC"),
        ),
        Arc::new(StringArray::from(vec![customer.as_str(); rows as usize])),
        Arc::new(StringArray::from(vec!["skewed-device"; rows as usize])),
        Arc::new(StringArray::from(vec!["ios"; rows as usize])),
        Arc::new(StringArray::from(vec!["app_open"; rows as usize])),
        Arc::new(StringArray::from(vec![None::<&str>; rows as usize])),
        Arc::new(Int32Array::from(vec![None; rows as usize])),
        Arc::new(Float64Array::from(vec![None; rows as usize])),
    ];
    let day = input.path().join("app_events").join(format!("dt={DATE}"));
    write_parquet(
        &day.join("zz-skewed.parquet"),
        &RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap(),
    );
    crate::support::ok(&run_job(input.path(), skewed.path(), &[]));
    let (before, after) = (manifest(baseline.path()), manifest(skewed.path()));
    assert_eq!(
        drops(&after, "app_events", "future_dated"),
        drops(&before, "app_events", "future_dated") + rows,
        "every skewed event is counted as future_dated"
    );
    assert_eq!(
        drops(&after, "app_events", "kept"),
        drops(&before, "app_events", "kept")
    );
    assert_eq!(
        after["tables"]["user_features"],
        before["tables"]["user_features"]
    );
}

/// A customer exported twice with conflicting values: the row with the latest signup_date
/// wins, as the input contract says, and the customer appears once.
#[tokio::test(flavor = "multi_thread")]
async fn conflicting_crm_duplicates_resolve_to_the_latest_signup() {
    use datafusion::arrow::array::{BooleanArray, Date32Array, Float64Array};
    let input = broken_copy();
    let customer = an_active_customer(input.path());
    let fields = vec![
        Field::new("customer_id", DataType::Utf8, true),
        Field::new("email", DataType::Utf8, true),
        Field::new("birth_date", DataType::Date32, true),
        Field::new("gender", DataType::Utf8, true),
        Field::new("country", DataType::Utf8, true),
        Field::new("city", DataType::Utf8, true),
        Field::new("annual_income", DataType::Float64, true),
        Field::new("signup_date", DataType::Date32, true),
        Field::new("loyalty_tier", DataType::Utf8, true),
        Field::new("marketing_opt_in", DataType::Boolean, true),
    ];
    // Two more rows for the customer: an older signup (must lose) and a newer one (must win).
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(vec![
            customer.as_str(),
            customer.as_str(),
        ])),
        Arc::new(StringArray::from(vec![
            "old@example.com",
            "new@example.com",
        ])),
        Arc::new(Date32Array::from(vec![Some(3650), Some(3650)])),
        Arc::new(StringArray::from(vec!["f", "f"])),
        Arc::new(StringArray::from(vec!["OLD", "NEW"])),
        Arc::new(StringArray::from(vec!["Old Town", "New Town"])),
        Arc::new(Float64Array::from(vec![1.0, 2.0])),
        // 1970-01-02 and 2026-11-21 (the day before the run date): older and newer than the
        // customer's signup in the generated export.
        Arc::new(Date32Array::from(vec![Some(1), Some(20_778)])),
        Arc::new(StringArray::from(vec!["none", "silver"])),
        Arc::new(BooleanArray::from(vec![false, true])),
    ];
    write_parquet(
        &input
            .path()
            .join("crm_customers")
            .join("zz-duplicates.parquet"),
        &RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap(),
    );
    let out = temp();
    crate::support::ok(&run_job(input.path(), out.path(), &[]));
    let ctx = crate::support::outputs(out.path(), input.path()).await;
    let rows = crate::support::rows_as_text(
        &ctx,
        &format!("SELECT country, loyalty_tier, annual_income FROM user_features WHERE customer_id = '{customer}'"),
    )
    .await;
    let data: Vec<&String> = rows
        .iter()
        .filter(|l| l.starts_with("| ") && !l.contains("country"))
        .collect();
    assert_eq!(data.len(), 1, "the customer appears once: {rows:?}");
    assert!(
        data[0].contains("NEW") && data[0].contains("silver") && data[0].contains("| 2.0"),
        "{rows:?}"
    );
}

/// A file damaged after it was written: its footer is intact (so the up-front check passes)
/// but its data pages are garbage. The failure names the file.
#[test]
fn damaged_data_pages_name_the_file() {
    let input = broken_copy();
    let day = input.path().join("app_events").join(format!("dt={DATE}"));
    let file = first_file(&day);
    let mut bytes = std::fs::read(&file).unwrap();
    let n = bytes.len();
    let footer = u32::from_le_bytes(bytes[n - 8..n - 4].try_into().unwrap()) as usize;
    // Garble the data between the leading magic (plus a little) and the footer.
    let end = n - 8 - footer - 64;
    for b in &mut bytes[200..end] {
        *b = 0xAB;
    }
    std::fs::write(&file, &bytes).unwrap();
    let name = file.file_name().unwrap().to_string_lossy().into_owned();
    expect_failure(
        input.path(),
        3,
        &[&name, "cannot be decoded", "re-export it"],
    );
}
