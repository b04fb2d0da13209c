//! The night's commit: a rerun killed at every step of its commit (an injected pause at each
//! point, then SIGKILL: not a timing race) leaves readers the whole previous night or the whole
//! new one, never a mixture; the next run removes what the killed one left.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use crate::sql::{sql, sql_csv};

use crate::support::{
    DATE, copy_dir, ok, persona_bin, published_tables, run_at, run_job_with, temp, tiny_input,
};

/// A night that differs from the default one in every model table: other k, other top-N.
pub const OTHER_NIGHT: &str = "[segments]\nk = 4\n[recommendations]\ntop_n = 3\n";

/// What a reader sees of the latest night under `output` (a folder or `s3://`), through
/// `persona sql`: every table's rows, how many segments the profiles use and how many items a
/// customer is recommended (which tell the nights apart, and a mixture of them from both).
pub fn reader_view(output: &str) -> Vec<String> {
    let mut parts: Vec<String> = published_tables()
        .iter()
        .map(|t| format!("SELECT '{t}' AS t, COUNT(*) AS v FROM {t}"))
        .collect();
    parts.push("SELECT 'profile segments', COUNT(DISTINCT segment_id) FROM user_profiles".into());
    parts.push(
        "SELECT 'recommended per customer', MAX(n) FROM \
         (SELECT COUNT(*) AS n FROM recommendations GROUP BY customer_id)"
            .into(),
    );
    sql_csv(output, &format!("{} ORDER BY t", parts.join(" UNION ALL ")))
}

/// The run folders under `output` (`<table>/dt=<date>/run=<id>`, and the report's), sorted.
fn run_folders(output: &Path) -> Vec<String> {
    let mut found = Vec::new();
    for table in std::fs::read_dir(output).unwrap() {
        let table = table.unwrap().path();
        let name = table.file_name().unwrap().to_string_lossy().to_string();
        if name.starts_with('_') || !table.is_dir() {
            continue;
        }
        for date in std::fs::read_dir(&table).unwrap() {
            let date = date.unwrap().path();
            for run in std::fs::read_dir(&date).unwrap() {
                let run = run.unwrap().path();
                if run.is_dir() {
                    found.push(run.strip_prefix(output).unwrap().display().to_string());
                }
            }
        }
    }
    found.sort();
    found
}

/// Runs the night of [`DATE`] from `input` into `output` (folders or `s3://`), with `--config
/// config` when given, and `PERSONA_PAUSE_AT=point`, and kills it (SIGKILL) once it says it
/// paused there.
pub fn kill_at(input: &str, output: &str, config: Option<&Path>, point: &str) {
    let mut args = vec!["run", "--input", input, "--output", output, "--date", DATE];
    if let Some(config) = config {
        args.extend(["--config", config.to_str().unwrap()]);
    }
    let mut child = Command::new(persona_bin())
        .args(args)
        .env("PERSONA_PAUSE_AT", point)
        .env("RUST_LOG", "warn")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut paused = false;
    let mut seen = Vec::new();
    for line in BufReader::new(stderr).lines() {
        let line = line.unwrap();
        if line.contains(&format!("paused at {point} ")) {
            paused = true;
            break;
        }
        seen.push(line);
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        paused,
        "the run never reached {point}:\n{}",
        seen.join("\n")
    );
}

#[test]
fn a_rerun_killed_at_any_step_of_its_commit_leaves_one_whole_night() {
    let work = temp();
    let config = work.path().join("other.toml");
    // Replaced runs removed at once, so that what is left is exactly one night.
    std::fs::write(
        &config,
        format!("{OTHER_NIGHT}[output]\nkeep_replaced_hours = 0\n"),
    )
    .unwrap();
    let other = ["--config", config.to_str().unwrap()];

    let (old_root, new_root) = (work.path().join("old"), work.path().join("new"));
    ok(&run_job_with(tiny_input(), &old_root, &[], &[]));
    ok(&run_job_with(tiny_input(), &new_root, &other, &[]));
    let view = |root: &Path| reader_view(root.to_str().unwrap());
    let (old, new) = (view(&old_root), view(&new_root));
    assert_ne!(old, new, "the two nights must be told apart");

    // Every step of the commit: before each table is written into the run's folder, before
    // the manifest that commits them, and before each table's old run is removed.
    let tables = published_tables();
    let mut points: Vec<String> = tables.iter().map(|t| format!("commit:{t}")).collect();
    points.push("commit:_runs".into());
    points.extend(tables.iter().map(|t| format!("gc:{t}")));
    for point in &points {
        let out = work.path().join("killed");
        let _ = std::fs::remove_dir_all(&out);
        copy_dir(&old_root, &out);
        kill_at(
            tiny_input().to_str().unwrap(),
            out.to_str().unwrap(),
            Some(&config),
            point,
        );
        let seen = view(&out);
        let expected = if point.starts_with("gc:") { &new } else { &old };
        assert_eq!(
            &seen,
            expected,
            "killed at {point}: readers must see the whole {} night",
            if point.starts_with("gc:") {
                "new"
            } else {
                "old"
            }
        );

        // The next run of the date commits and removes every folder the killed run left or
        // made obsolete: one run folder per table, and the report's, is left.
        ok(&run_job_with(tiny_input(), &out, &other, &[]));
        assert_eq!(view(&out), new, "the rerun after a kill at {point}");
        let folders = run_folders(&out);
        assert_eq!(
            folders.len(),
            tables.len() + 1,
            "after a kill at {point}: {folders:?}"
        );
    }
}

/// Readers during reruns: while a date is rerun, queries of it answer from one whole night
/// or fail with the one documented message (exit 5), never from part of a night. The
/// replaced runs' folders stay for `[output] keep_replaced_hours`, listed in the manifest.
#[test]
fn readers_during_reruns_never_see_part_of_a_night() {
    let out = temp();
    let (input, output) = (
        tiny_input().to_str().unwrap(),
        out.path().to_str().unwrap().to_string(),
    );
    ok(&run_at(input, &output, DATE, &[], &[]));
    let query = "SELECT (SELECT COUNT(*) FROM user_profiles) AS p, \
                 (SELECT COUNT(*) FROM user_features) AS f, (SELECT COUNT(*) FROM segments) AS s";
    let whole = sql_csv(&output, query);
    let reruns = 4;
    let writer = {
        let output = output.clone();
        std::thread::spawn(move || {
            for _ in 0..reruns {
                ok(&run_at(input, &output, DATE, &[], &[]));
            }
        })
    };
    let (mut answers, mut failures) = (0, Vec::new());
    while !writer.is_finished() {
        let o = sql(&output, query, &["--format", "csv"]);
        let stdout = String::from_utf8_lossy(&o.stdout).to_string();
        let got: Vec<String> = stdout.lines().map(str::to_string).collect();
        if o.status.success() {
            assert_eq!(got, whole, "a reader saw part of a night");
            answers += 1;
        } else {
            let err = String::from_utf8_lossy(&o.stderr).to_string();
            assert_eq!(o.status.code(), Some(5), "{err}");
            assert!(err.contains("removed while this query read it"), "{err}");
            failures.push(err);
        }
    }
    writer.join().unwrap();
    assert!(answers > 0, "no query ran during the reruns");
    // Every replaced run is still readable and named by the manifest.
    let manifest: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out.path().join(format!("_runs/dt={DATE}/manifest.json")))
            .unwrap(),
    )
    .unwrap();
    let replaced = manifest["replaced"].as_array().unwrap();
    assert_eq!(replaced.len(), reruns, "{manifest}");
    for run in replaced {
        for folder in run["folders"].as_array().unwrap() {
            assert!(
                out.path().join(folder.as_str().unwrap()).is_dir(),
                "{folder}"
            );
        }
    }
    assert_eq!(
        run_folders(out.path()).len(),
        (reruns + 1) * (published_tables().len() + 1)
    );
    // With no grace, the next rerun removes them all.
    let config = out.path().with_extension("toml");
    std::fs::write(&config, "[output]\nkeep_replaced_hours = 0\n").unwrap();
    ok(&run_at(
        input,
        &output,
        DATE,
        &["--config", config.to_str().unwrap()],
        &[],
    ));
    assert_eq!(run_folders(out.path()).len(), published_tables().len() + 1);
    assert_eq!(sql_csv(&output, query), whole);
    let _ = std::fs::remove_file(config);
    eprintln!(
        "{answers} answers, {} failures: {failures:?}",
        failures.len()
    );
}

#[test]
fn a_failed_run_removes_what_it_wrote() {
    let out = temp();
    ok(&run_job_with(tiny_input(), out.path(), &[], &[]));
    let before = run_folders(out.path());
    for point in ["commit:segments", "commit:_runs"] {
        let failed = run_job_with(tiny_input(), out.path(), &[], &[("PERSONA_FAIL_AT", point)]);
        assert_eq!(failed.status.code(), Some(1), "failure at {point}");
        assert_eq!(
            run_folders(out.path()),
            before,
            "folders after a failure at {point}"
        );
    }
}

/// Unmounts a test's tmpfs when dropped, whatever the test's outcome.
struct Mounted(std::path::PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// A disk that fills up during a rerun: exit 5 with `[STORAGE] No space left on device`, the
/// previous night still whole for readers, nothing of the failed run left, and the next run,
/// once there is room, publishes. The disk is a 64 MiB tmpfs, which needs root (as CI has);
/// elsewhere the test says it did not run.
#[test]
fn a_full_disk_exits_5_and_keeps_the_previous_night() {
    let work = temp();
    let disk = work.path().join("disk");
    std::fs::create_dir_all(&disk).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=64m", "tmpfs"])
        .arg(&disk)
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!("NOT RUN: mounting a tmpfs needs root");
        return;
    }
    let _guard = Mounted(disk.clone());
    let out = disk.join("out");
    ok(&run_job_with(tiny_input(), &out, &[], &[]));
    let before = reader_view(out.to_str().unwrap());
    let folders = run_folders(&out);

    // Fill the disk but for 256 KiB: the rerun's first intermediate table does not fit.
    let filler = disk.join("filler");
    let free = {
        let out = Command::new("df")
            .args(["--output=avail", "-B1"])
            .arg(&disk)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .nth(1)
            .unwrap()
            .trim()
            .parse::<u64>()
            .unwrap()
    };
    let file = std::fs::File::create(&filler).unwrap();
    std::io::Write::write_all(
        &mut std::io::BufWriter::new(file),
        &vec![0u8; (free - 256 * 1024) as usize],
    )
    .unwrap();

    let failed = run_job_with(tiny_input(), &out, &[], &[]);
    let line = crate::support::error_line(&failed, 5);
    assert!(line.contains("[STORAGE] No space left on device"), "{line}");
    assert_eq!(
        reader_view(out.to_str().unwrap()),
        before,
        "the previous night changed"
    );
    assert_eq!(run_folders(&out), folders, "the failed run left folders");

    std::fs::remove_file(&filler).unwrap();
    ok(&run_job_with(tiny_input(), &out, &[], &[]));
}
