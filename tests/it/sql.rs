//! `persona sql` as an analyst runs it, and the outputs read by an engine that is not
//! DataFusion (pyarrow).

use std::path::Path;
use std::process::Output;

use crate::support::{DATE, ok, persona, published_tables, run_at, run_job_with, temp, tiny_input};

/// The day before [`DATE`]: a second published date for the `_history` tables.
const PREVIOUS: &str = "2026-11-21";

/// `persona sql --output ROOT QUERY` with extra arguments.
pub fn sql(output: &str, query: &str, extra: &[&str]) -> Output {
    let mut args = vec!["sql", "--output", output];
    args.extend_from_slice(extra);
    args.push(query);
    persona(&args, &[])
}

/// The CSV result of a query (header first).
pub fn sql_csv(output: &str, query: &str) -> Vec<String> {
    ok(&sql(output, query, &["--format", "csv"]))
        .lines()
        .map(str::to_string)
        .collect()
}

/// Published outputs for [`PREVIOUS`] and [`DATE`], made once per test process.
fn two_dates() -> &'static Path {
    static OUT: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    OUT.get_or_init(|| {
        let dir = temp().keep();
        let (input, output) = (
            tiny_input().to_str().expect("utf8"),
            dir.to_str().expect("utf8"),
        );
        for date in [PREVIOUS, DATE] {
            ok(&run_at(input, output, date, &[], &[]));
        }
        dir
    })
}

fn manifest_rows(output: &Path, date: &str, table: &str) -> u64 {
    let text = std::fs::read_to_string(output.join(format!("_runs/dt={date}/manifest.json")))
        .expect("manifest");
    let m: serde_json::Value = serde_json::from_str(&text).expect("json");
    m["tables"][table].as_u64().expect("table rows")
}

#[test]
fn tables_are_registered_at_their_latest_date_and_with_history() {
    let out = two_dates();
    let root = out.to_str().unwrap();
    for table in [
        "user_features",
        "user_profiles",
        "segments",
        "recommendations",
    ] {
        let rows = sql_csv(root, &format!("SELECT COUNT(*) AS n FROM {table}"));
        assert_eq!(rows[0], "n");
        assert_eq!(
            rows[1].parse::<u64>().unwrap(),
            manifest_rows(out, DATE, table),
            "{table} at the latest date"
        );
    }
    let dates = sql_csv(
        root,
        "SELECT dt, COUNT(*) AS n FROM segments_history GROUP BY dt ORDER BY dt",
    );
    assert_eq!(dates.len(), 3, "{dates:?}");
    assert!(dates[1].starts_with(PREVIOUS) && dates[2].starts_with(DATE));

    // --date pins a day.
    let pinned = ok(&sql(
        root,
        "SELECT COUNT(*) AS n FROM user_profiles",
        &["--format", "csv", "--date", PREVIOUS],
    ));
    assert_eq!(
        pinned.lines().nth(1).unwrap().parse::<u64>().unwrap(),
        manifest_rows(out, PREVIOUS, "user_profiles")
    );
}

#[test]
fn a_run_folder_no_manifest_names_is_never_read() {
    let out = temp();
    crate::support::copy_dir(two_dates(), out.path());
    let committed = crate::support::published_folder(out.path(), "segments", DATE);
    // A newer night still being written (its tables, no manifest yet), and a run of DATE killed
    // before its commit: complete folders, with _SUCCESS, that no manifest names.
    crate::support::copy_dir(&committed, &out.path().join("segments/dt=2026-11-30/run=x"));
    crate::support::copy_dir(
        &committed,
        &out.path().join(format!("segments/dt={DATE}/run=x")),
    );
    let root = out.path().to_str().unwrap();
    let dates = sql_csv(root, "SELECT DISTINCT dt FROM segments_history ORDER BY dt");
    assert_eq!(dates, vec!["dt", PREVIOUS, DATE]);
    let rows = sql_csv(root, "SELECT COUNT(*) AS n FROM segments");
    assert_eq!(
        rows[1].parse::<u64>().unwrap(),
        manifest_rows(out.path(), DATE, "segments")
    );
}

#[test]
fn formats_table_json_and_parquet() {
    let root = two_dates().to_str().unwrap();
    let q = "SELECT segment_id, size FROM segments ORDER BY segment_id LIMIT 2";
    let table = ok(&sql(root, q, &[]));
    assert!(
        table.contains("| segment_id | size |") && table.contains("(2 rows)"),
        "{table}"
    );
    let json = ok(&sql(root, q, &["--format", "json"]));
    let first: serde_json::Value = serde_json::from_str(json.lines().next().unwrap()).unwrap();
    assert_eq!(first["segment_id"], 0);
    let dir = temp();
    let file = dir.path().join("seg.parquet");
    ok(&sql(
        root,
        q,
        &["--format", "parquet", "--out", file.to_str().unwrap()],
    ));
    let reader = parquet::file::serialized_reader::SerializedFileReader::new(
        std::fs::File::open(&file).unwrap(),
    )
    .unwrap();
    use parquet::file::reader::FileReader;
    assert_eq!(reader.metadata().file_metadata().num_rows(), 2);
    // Several statements: the last one's result is printed.
    let last = sql_csv(root, "SELECT 1 AS a; SELECT 2 AS b");
    assert_eq!(last, vec!["b", "2"]);
}

#[test]
fn every_example_query_runs() {
    let out = two_dates();
    let root = out.to_str().unwrap();
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../sql/examples");
    let mut names: Vec<_> = std::fs::read_dir(&examples)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    assert!(names.len() >= 4, "{names:?}");
    for path in names {
        let text = std::fs::read_to_string(&path).unwrap();
        let rows = sql_csv(root, &text);
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        match name.as_str() {
            "segment_sizes_over_time" => {
                let k =
                    manifest_rows(out, DATE, "segments") + manifest_rows(out, PREVIOUS, "segments");
                assert_eq!(rows.len() as u64, k + 1, "{name}: {rows:?}");
            }
            "top_items_per_segment" => {
                assert_eq!(
                    rows[0],
                    "segment_id,segment_label,item_id,customers,from_model"
                );
                assert!(rows.len() > 1, "{name}: no rows");
            }
            "segment_changes" => {
                assert!(rows[0].starts_with("customer_id,previous_dt"), "{rows:?}");
                // Every listed customer really changed segment.
                for row in &rows[1..] {
                    let f: Vec<&str> = row.split(',').collect();
                    assert_eq!(f[1], PREVIOUS);
                    assert_ne!(f[2], f[5], "{row}");
                }
            }
            "recommendation_sources" => {
                assert!(rows[1..].iter().any(|r| r.contains(",als,")), "{rows:?}");
            }
            "evaluation_trend" => {
                assert!(
                    rows[0].starts_with("dt,users,als_ndcg,popular_ndcg,lift"),
                    "{rows:?}"
                );
                assert_eq!(rows.len(), 3, "one row per date: {rows:?}");
                for row in &rows[1..] {
                    let lift: f64 = row.split(',').nth(4).unwrap().parse().unwrap();
                    assert!(lift > 1.0, "ALS does not beat popularity: {row}");
                }
            }
            other => panic!("example {other} has no test: add one here"),
        }
    }
}

#[test]
fn mistakes_read_like_an_analysts_tool() {
    let root = two_dates().to_str().unwrap();
    let typo = sql(root, "SELECT * FROM segmnts", &[]);
    assert_eq!(typo.status.code(), Some(2));
    let err = String::from_utf8_lossy(&typo.stderr);
    assert!(err.contains("Did you mean 'segments'"), "{err}");

    let column = sql(root, "SELECT segmnt_id FROM segments", &[]);
    assert_eq!(column.status.code(), Some(2));
    let err = String::from_utf8_lossy(&column.stderr);
    assert!(err.contains("segment_id"), "{err}");

    let empty = temp();
    let none = sql(empty.path().to_str().unwrap(), "SELECT 1", &[]);
    assert_eq!(none.status.code(), Some(3));
    let err = String::from_utf8_lossy(&none.stderr);
    assert!(
        err.contains("no published tables under") && err.contains("persona run"),
        "{err}"
    );
}

/// `--out` never writes inside the output root: the committed manifest (or a published
/// table) would be replaced and the night would no longer open.
#[test]
fn results_are_never_written_into_the_output_root() {
    let out = two_dates();
    let root = out.to_str().unwrap();
    let manifest = out.join(format!("_runs/dt={DATE}/manifest.json"));
    let before = std::fs::read(&manifest).unwrap();
    for target in [
        manifest.clone(),
        out.join("segments/new.parquet"),
        out.join("_runs/../results.csv"),
    ] {
        let refused = sql(
            root,
            "SELECT 1 AS a",
            &["--format", "csv", "--out", target.to_str().unwrap()],
        );
        assert_eq!(refused.status.code(), Some(2), "{target:?}");
        let err = String::from_utf8_lossy(&refused.stderr);
        assert!(err.contains("inside the output root"), "{err}");
    }
    assert_eq!(std::fs::read(&manifest).unwrap(), before);
    assert!(!out.join("segments/new.parquet").exists());
    // The night still opens, and a file beside the root is written.
    let beside = temp();
    let file = beside.path().join("a.csv");
    ok(&sql(
        root,
        "SELECT COUNT(*) AS n FROM segments",
        &["--format", "csv", "--out", file.to_str().unwrap()],
    ));
    assert!(std::fs::read_to_string(&file).unwrap().starts_with('n'));
}

/// pyarrow reads every published table: row counts match the manifest and the types are the
/// documented ones. The interpreter comes from `PERSONA_PYTHON` (a virtualenv with pyarrow that
/// scripts/test.sh makes); without it this test fails rather than pretending to pass.
#[test]
fn outputs_are_readable_by_pyarrow() {
    let python = std::env::var("PERSONA_PYTHON").unwrap_or_else(|_| {
        panic!(
            "PERSONA_PYTHON is not set: run the tests with scripts/test.sh (it installs pyarrow)"
        )
    });
    let out = temp();
    ok(&run_job_with(tiny_input(), out.path(), &[], &[]));
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("read_outputs.py");
    let result = std::process::Command::new(python)
        .arg(script)
        .arg(out.path())
        .output()
        .unwrap();
    let stdout = ok(&result);
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    for table in published_tables() {
        assert_eq!(
            report[table]["rows"].as_u64().unwrap(),
            manifest_rows(out.path(), DATE, table),
            "{table}: {report}"
        );
    }
    let types = &report["recommendations"]["types"];
    assert_eq!(types["customer_id"], "string", "{types}");
    assert_eq!(types["item_id"], "string", "{types}");
    assert_eq!(types["score"], "float", "{types}");
    assert_eq!(report["segments"]["types"]["segment_label"], "string");
    // Vectors are lists of float32, as docs/contract-and-outputs.md's schema reference says.
    for table in ["user_factors", "item_factors"] {
        let factors = report[table]["types"]["factors"].as_str().unwrap();
        assert!(
            factors.starts_with("list<") && factors.contains("float>"),
            "{table}: {factors}"
        );
    }
    assert_eq!(report["evaluation"]["types"]["ndcg_at_k"], "double");
    assert!(
        report["recommendations"]["compression"]
            .as_str()
            .unwrap()
            .contains("ZSTD"),
        "{report}"
    );
    assert!(
        report["recommendations"]["has_statistics"]
            .as_bool()
            .unwrap()
    );
}

/// `persona sql` only reads the published tables: every statement that would write a file,
/// read one outside them (the raw CRM export) or change the session is refused with one
/// message and exit 2, before it does anything.
#[test]
fn the_shell_is_read_only() {
    let root = two_dates().to_str().unwrap();
    let scratch = temp();
    let copied = scratch.path().join("copied.parquet");
    let crm = tiny_input().join("crm_customers");
    let statements = [
        format!("COPY (SELECT * FROM segments) TO '{}'", copied.display()),
        "INSERT INTO segments SELECT * FROM segments".to_string(),
        format!(
            "CREATE EXTERNAL TABLE crm STORED AS PARQUET LOCATION '{}/'",
            crm.display()
        ),
        "CREATE TABLE t AS SELECT 1 AS x".to_string(),
        "CREATE VIEW v AS SELECT * FROM segments".to_string(),
        "DROP TABLE segments".to_string(),
        "SET datafusion.execution.batch_size = 1".to_string(),
        // A refused statement stops the statements after it too.
        format!(
            "SELECT 1; COPY (SELECT 1 AS x) TO '{}'; SELECT 2",
            copied.display()
        ),
    ];
    for statement in &statements {
        let out = sql(root, statement, &[]);
        let line = crate::support::error_line(&out, 2);
        assert!(
            line.contains("persona sql only reads the tables published under")
                && line.contains("not supported"),
            "{statement}: {line}"
        );
    }
    assert!(
        !copied.exists(),
        "a refused COPY wrote {}",
        copied.display()
    );
    assert_eq!(
        sql_csv(root, "SELECT COUNT(*) AS n FROM segments")[1],
        manifest_rows(two_dates(), DATE, "segments").to_string(),
        "the published tables are unchanged and still readable"
    );
    let listed = ok(&sql(root, "SHOW TABLES", &["--format", "csv"]));
    assert!(
        !listed.contains(",crm,") && !listed.contains(",t,"),
        "{listed}"
    );
}
