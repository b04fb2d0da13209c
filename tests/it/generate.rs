//! The generator: deterministic, in the contract, with the promised dirt.

use crate::support::{DATE, copy_dir, list_files, ok, persona, run_job, temp, tiny_input};

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
/// `_truth/`, and `persona run` never reads it: a run over a garbled truth publishes exactly
/// what a run without any truth publishes.
#[test]
fn the_truth_is_written_beside_the_data_and_the_run_never_reads_it() {
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
    let tables = |root: &std::path::Path| {
        let text = std::fs::read_to_string(
            root.join("_runs")
                .join(format!("dt={DATE}"))
                .join("manifest.json"),
        )
        .unwrap();
        serde_json::from_str::<serde_json::Value>(&text).unwrap()["tables"].clone()
    };
    assert_eq!(tables(garbled.path()), tables(none.path()));
    for table in ["user_profiles", "recommendations"] {
        let part =
            |root: &std::path::Path| list_files(&root.join(table).join(format!("dt={DATE}")));
        assert_eq!(part(garbled.path()), part(none.path()));
        for f in part(none.path()) {
            let read = |root: &std::path::Path| {
                std::fs::read(root.join(table).join(format!("dt={DATE}")).join(&f)).unwrap()
            };
            assert!(
                read(garbled.path()) == read(none.path()),
                "{table}/{f} differs"
            );
        }
    }
}
