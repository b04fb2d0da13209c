//! Bad input: each case gives one clear message naming what is wrong, a documented non-zero
//! exit code, and publishes nothing.

use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Int64Array, StringArray};
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

// Clock-skewed events and conflicting CRM duplicates are SQL semantics: they are tested in
// tests/slt/02_app_events_flagged.slt and tests/slt/03_customers.slt.

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

/// Damage of every kind inside the data pages (garbage bytes at eight places of a file, with
/// its footer intact): every run it breaks fails with exit 3 and names the file, whichever
/// reader noticed (a decompressor, the page decoder, a dictionary key out of range); damage that
/// happens to decode (inside a string value, say) passes unnoticed, as with any reader.
#[test]
fn damage_anywhere_in_the_data_pages_names_the_file() {
    let mut failed = 0;
    for variant in 0..8u64 {
        let input = broken_copy();
        let day = input.path().join("web_logs").join(format!("dt={DATE}"));
        let file = first_file(&day);
        let mut bytes = std::fs::read(&file).unwrap();
        let n = bytes.len();
        let footer = u32::from_le_bytes(bytes[n - 8..n - 4].try_into().unwrap()) as usize;
        let data_end = n - 8 - footer;
        let start = 4 + (variant as usize + 1) * (data_end - 4 - 48) / 9;
        let mut state = variant.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        for b in &mut bytes[start..start + 48] {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            *b = state as u8;
        }
        std::fs::write(&file, &bytes).unwrap();
        let out = temp();
        let result = run_job(input.path(), out.path(), &[]);
        if result.status.success() {
            continue;
        }
        failed += 1;
        let line = error_line(&result, 3);
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            line.contains(&name) && line.contains("cannot be decoded"),
            "variant {variant} (bytes {start}..{}): {line}",
            start + 48
        );
        assert!(
            list_files(out.path()).is_empty(),
            "variant {variant} published files"
        );
    }
    assert!(
        failed >= 4,
        "only {failed} of 8 damaged files failed the run"
    );
}
