//! `persona stages` and `persona run --dry-run`: the night as the registry declares it, planned
//! without computing or writing anything.

use persona_jobs::stages::registry::NIGHT;

use crate::support::{DATE, copy_dir, error_line, list_files, ok, persona, temp, tiny_input};

#[test]
fn stages_lists_the_registry_in_run_order() {
    let out = ok(&persona(&["stages"], &[]));
    let names: Vec<&str> = out
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().nth(1))
        .collect();
    let expected: Vec<&str> = NIGHT.iter().map(|s| s.name).collect();
    assert_eq!(names, expected);
    let user_features = out
        .lines()
        .find(|l| l.split_whitespace().nth(1) == Some("user_features"))
        .unwrap();
    assert!(
        user_features.contains("sql/07_user_features.sql")
            && user_features.contains("yes")
            && user_features.contains("events, customers, items -> user_features"),
        "{user_features}"
    );
}

#[test]
fn dry_run_plans_every_stage_and_writes_nothing() {
    let input = temp();
    copy_dir(tiny_input(), input.path());
    let files_before = list_files(input.path());
    let output = temp();
    let root = output.path().join("out");
    let out = ok(&persona(
        &[
            "run",
            "--input",
            input.path().to_str().unwrap(),
            "--output",
            root.to_str().unwrap(),
            "--date",
            DATE,
            "--dry-run",
        ],
        &[],
    ));
    let planned: Vec<&str> = out
        .lines()
        .filter_map(|l| l.strip_prefix("== "))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    let expected: Vec<&str> = NIGHT.iter().map(|s| s.name).collect();
    assert_eq!(planned, expected);
    // Every SQL stage's plan, down to the scans of the tables before it.
    assert!(out.contains("physical_plan:"), "{out}");
    assert!(
        out.contains("TableScan: segment_assignments"),
        "the outputs plan against the models' tables:\n{out}"
    );
    assert!(out.contains(&format!("/user_profiles/dt={DATE}")), "{out}");
    assert!(!root.exists(), "a dry run creates no output root");
    assert_eq!(list_files(input.path()), files_before, "inputs untouched");
}

#[test]
fn dry_run_rejects_bad_inputs_and_bad_configuration() {
    let output = temp();
    let missing = output.path().join("no-such-input");
    let out = persona(
        &[
            "run",
            "--input",
            missing.to_str().unwrap(),
            "--output",
            output.path().to_str().unwrap(),
            "--date",
            DATE,
            "--dry-run",
        ],
        &[],
    );
    assert!(error_line(&out, 3).contains("does not exist"));

    let config = output.path().join("persona.toml");
    std::fs::write(&config, "[segments]\nk = 1\n").unwrap();
    let out = persona(
        &[
            "run",
            "--input",
            tiny_input().to_str().unwrap(),
            "--output",
            output.path().to_str().unwrap(),
            "--date",
            DATE,
            "--config",
            config.to_str().unwrap(),
            "--dry-run",
        ],
        &[],
    );
    assert!(error_line(&out, 4).contains("segments.k must be at least 2"));
}

#[test]
fn flags_name_themselves_in_range_errors() {
    let dir = temp();
    let out = persona(
        &[
            "kmeans",
            "--input",
            dir.path().to_str().unwrap(),
            "--output",
            dir.path().to_str().unwrap(),
            "--features",
            "a",
            "--k-min",
            "5",
            "--k-max",
            "3",
        ],
        &[],
    );
    assert!(
        error_line(&out, 4).contains("--k-min must be at least 2 and at most --k-max"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
