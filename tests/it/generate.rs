//! The generator: deterministic, in the contract, with the promised dirt.

use crate::support::{
    DATE, copy_dir, list_files, ok, outputs, persona, rows_as_text, run_job, temp, tiny_input,
};

#[test]
fn same_seed_gives_identical_files_and_another_seed_differs() {
    let (a, b, c) = (temp(), temp(), temp());
    for (dir, seed) in [(&a, "7"), (&b, "7"), (&c, "8")] {
        ok(&persona(
            &[
                "generate",
                "--scale",
                "tiny",
                "--seed",
                seed,
                "--days",
                "3",
                "--end-date",
                DATE,
                "--out",
                dir.path().to_str().unwrap(),
            ],
            &[],
        ));
    }
    let files = list_files(a.path());
    assert_eq!(files, list_files(b.path()));
    assert!(
        files
            .iter()
            .any(|f| f.starts_with("web_logs/dt=2026-11-20/")),
        "{files:?}"
    );
    assert!(files.iter().any(|f| f.starts_with("crm_customers/")));
    assert!(files.iter().any(|f| f.starts_with("items/")));
    for f in &files {
        let (x, y) = (
            std::fs::read(a.path().join(f)).unwrap(),
            std::fs::read(b.path().join(f)).unwrap(),
        );
        assert!(x == y, "{f} differs between two runs with the same seed");
    }
    let crm = "crm_customers/part-00000.parquet";
    assert_ne!(
        std::fs::read(a.path().join(crm)).unwrap(),
        std::fs::read(c.path().join(crm)).unwrap()
    );
}

/// The generator writes its hidden truth (customer types, the week after the window) under
/// `_truth/`, and `persona run` never reads it: a run over a garbled truth publishes the same
/// rows as a run without any truth.
#[tokio::test]
async fn the_truth_is_written_beside_the_data_and_the_run_never_reads_it() {
    let input = temp();
    copy_dir(tiny_input(), input.path());
    let truth = input.path().join("_truth");
    let files = list_files(&truth);
    assert!(
        files.iter().any(|f| f.starts_with("customers/"))
            && files.iter().any(|f| f.starts_with("next_week/")),
        "{files:?}"
    );
    for f in &files {
        std::fs::write(truth.join(f), b"not parquet").unwrap();
    }
    let (garbled, none) = (temp(), temp());
    ok(&run_job(input.path(), garbled.path(), &[]));
    std::fs::remove_dir_all(&truth).unwrap();
    ok(&run_job(input.path(), none.path(), &[]));
    let (a, b) = (
        outputs(garbled.path(), input.path()).await,
        outputs(none.path(), input.path()).await,
    );
    for table in ["user_profiles", "recommendations", "segments"] {
        let sql = format!("SELECT * FROM {table}");
        assert_eq!(
            rows_as_text(&a, &sql).await,
            rows_as_text(&b, &sql).await,
            "{table} differs"
        );
    }
}
