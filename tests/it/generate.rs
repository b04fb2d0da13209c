//! The generator: deterministic, in the contract, with the promised dirt.

use crate::support::{DATE, list_files, ok, persona, temp};

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
