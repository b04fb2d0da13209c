//! A/B tests' assignments: every eligible customer gets the arm its hash says, recomputable
//! outside Persona (GrowthBook's hash); assigned customers keep their arm and entry date night
//! after night, whatever the weights become; a predicate that is not SQL over the profiles is
//! a configuration error naming the experiment.

use std::path::Path;

use datafusion::prelude::SessionContext;
use persona_udfs::scalar::experiment_bucket;

use crate::support::{
    DATE, error_line, ok, register_partition, run_at, scalar_i64, temp, tiny_input,
};

const YESTERDAY: &str = "2026-11-21";

fn experiment(eligible: &str, control: f64, offer: f64) -> String {
    format!(
        "[[experiments]]\nkey = \"winback\"\nstart = \"{YESTERDAY}\"\neligible = \"{eligible}\"\n\
         arms = [{{ name = \"control\", weight = {control} }}, {{ name = \"offer\", weight = {offer} }}]\n"
    )
}

fn write_config(dir: &Path, text: &str) -> String {
    let path = dir.join("persona.toml");
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

/// `(customer_id, arm, first_eligible_date)` of the night of `date`, sorted.
async fn assignments(output: &Path, date: &str) -> Vec<(String, String, String)> {
    let ctx = SessionContext::new();
    register_partition(&ctx, "a", output, "experiment_assignments", date).await;
    let batches = ctx
        .sql(
            "SELECT customer_id, arm, CAST(first_eligible_date AS VARCHAR) FROM a \
             WHERE experiment = 'winback' ORDER BY customer_id",
        )
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let mut rows = Vec::new();
    for b in &batches {
        let col = |i: usize| {
            datafusion::arrow::compute::cast(
                b.column(i),
                &datafusion::arrow::datatypes::DataType::Utf8,
            )
            .unwrap()
        };
        let (c, a, d) = (col(0), col(1), col(2));
        use datafusion::arrow::array::AsArray;
        for r in 0..b.num_rows() {
            rows.push((
                c.as_string::<i32>().value(r).to_string(),
                a.as_string::<i32>().value(r).to_string(),
                d.as_string::<i32>().value(r).to_string(),
            ));
        }
    }
    rows
}

#[tokio::test]
async fn customers_keep_their_arm_and_the_hash_decides_it() {
    let (out, conf) = (temp(), temp());
    let (input, output) = (tiny_input().to_str().unwrap(), out.path().to_str().unwrap());
    // Night 1: opted-in customers only, half and half.
    let first = write_config(conf.path(), &experiment("marketing_opt_in", 0.5, 0.5));
    ok(&run_at(
        input,
        output,
        YESTERDAY,
        &["--config", &first],
        &[],
    ));
    let night1 = assignments(out.path(), YESTERDAY).await;
    assert!(night1.len() > 10, "{}", night1.len());
    for (customer, arm, date) in &night1 {
        let expected = if experiment_bucket("winback", customer) < 0.5 {
            "control"
        } else {
            "offer"
        };
        assert_eq!(
            (arm.as_str(), date.as_str()),
            (expected, YESTERDAY),
            "{customer}"
        );
    }
    let offers = night1.iter().filter(|r| r.1 == "offer").count();
    assert!(
        offers > 0 && offers < night1.len(),
        "both arms get customers"
    );

    // Night 2: everyone is eligible and the offer ramps down to 10%: yesterday's customers keep
    // their arm and entry date; the newly eligible are cut at 0.9.
    let second = write_config(conf.path(), &experiment("true", 0.9, 0.1));
    ok(&run_at(input, output, DATE, &["--config", &second], &[]));
    let night2 = assignments(out.path(), DATE).await;
    for row in &night1 {
        assert!(night2.contains(row), "kept: {row:?}");
    }
    let new: Vec<_> = night2.iter().filter(|r| r.2 == DATE).collect();
    assert!(!new.is_empty(), "the newly eligible enter tonight");
    for (customer, arm, _) in new {
        let expected = if experiment_bucket("winback", customer) < 0.9 {
            "control"
        } else {
            "offer"
        };
        assert_eq!(arm, expected, "{customer}");
    }
    let ctx = SessionContext::new();
    register_partition(&ctx, "profiles", out.path(), "user_profiles", DATE).await;
    register_partition(&ctx, "a", out.path(), "experiment_assignments", DATE).await;
    let unassigned = scalar_i64(
        &ctx,
        "SELECT COUNT(*) FROM profiles p LEFT JOIN a ON a.customer_id = p.customer_id \
         WHERE a.customer_id IS NULL",
    )
    .await;
    assert_eq!(unassigned, 0, "every eligible customer is assigned");
    let twice = scalar_i64(
        &ctx,
        "SELECT COUNT(*) FROM (SELECT customer_id FROM a GROUP BY customer_id HAVING COUNT(*) > 1)",
    )
    .await;
    assert_eq!(twice, 0, "no customer has two arms");
}

#[test]
fn an_eligibility_predicate_that_is_not_sql_over_the_profiles_is_named() {
    let (out, conf) = (temp(), temp());
    let config = write_config(conf.path(), &experiment("no_such_column > 3", 0.5, 0.5));
    let result = run_at(
        tiny_input().to_str().unwrap(),
        out.path().to_str().unwrap(),
        DATE,
        &["--config", &config],
        &[],
    );
    let line = error_line(&result, 4);
    assert!(
        line.contains("winback") && line.contains("no_such_column"),
        "{line}"
    );
    assert!(!out.path().join("_runs").exists(), "nothing published");
}

#[test]
fn plan_prints_the_customers_an_experiment_needs() {
    let out = ok(&crate::support::persona(
        &["experiment", "plan", "--baseline", "0.05", "--mde", "0.10"],
        &[],
    ));
    assert!(
        out.contains("31,218 customers per arm, 62,436 in all"),
        "{out}"
    );
    let bad = crate::support::persona(
        &["experiment", "plan", "--baseline", "5", "--mde", "0.10"],
        &[],
    );
    assert!(error_line(&bad, 4).contains("--baseline"));
}

/// Tiny data with the demo's campaign planted strongly enough (a third of the reachable
/// email customers order once more) to be found among 2,000 customers.
fn campaign_input() -> &'static Path {
    static INPUT: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    INPUT.get_or_init(|| {
        let dir = tempfile::Builder::new()
            .prefix("persona-campaign-")
            .tempdir()
            .unwrap()
            .keep();
        let out = dir.join("input");
        crate::support::generate_tiny_with(out.to_str().unwrap(), &["--campaign-lift", "0.3"]);
        out
    })
}

/// The demo's experiment, as `persona demo` declares it: 14 days to [`DATE`].
const DEMO_EMAIL: &str = "[[experiments]]\nkey = \"demo_email\"\nstart = \"2026-11-09\"\n\
    arms = [{ name = \"control\", weight = 0.5 }, { name = \"email\", weight = 0.5 }]\n";

#[tokio::test]
async fn the_planted_campaign_is_found_and_its_interval_covers_the_truth() {
    let (out, conf) = (temp(), temp());
    let config = write_config(conf.path(), DEMO_EMAIL);
    let input = campaign_input();
    ok(&run_at(
        input.to_str().unwrap(),
        out.path().to_str().unwrap(),
        DATE,
        &["--config", &config],
        &[],
    ));
    let ctx = SessionContext::new();
    register_partition(&ctx, "a", out.path(), "experiment_assignments", DATE).await;
    register_partition(&ctx, "r", out.path(), "experiment_results", DATE).await;
    ctx.register_parquet(
        "truth",
        &format!("{}/_truth/campaign/", input.display()),
        Default::default(),
    )
    .await
    .unwrap();
    // Everyone entered at the start (the experiment's first night backdates to it).
    let late = scalar_i64(
        &ctx,
        "SELECT COUNT(*) FROM a WHERE first_eligible_date <> DATE '2026-11-09'",
    )
    .await;
    assert_eq!(late, 0);
    // The planted lift: the share of the email arm whom only the campaign made purchase.
    let planted = crate::support::query(
        &ctx,
        "SELECT AVG(CASE WHEN t.campaign_order AND NOT t.organic_conversion THEN 1.0 ELSE 0.0 END) \
         FROM a JOIN truth t ON a.customer_id = t.customer_id WHERE a.arm = 'email'",
    )
    .await;
    let planted = f64_at(&planted, 0);
    let found = crate::support::query(
        &ctx,
        "SELECT lift_low, lift_high, p_adjusted, cuped_lift_low, cuped_lift_high, \
         CAST(srm_alert AS INT) FROM r WHERE metric = 'conversion' AND arm = 'email'",
    )
    .await;
    let (low, high, p) = (f64_at(&found, 0), f64_at(&found, 1), f64_at(&found, 2));
    let (cuped_low, cuped_high) = (f64_at(&found, 3), f64_at(&found, 4));
    assert!(planted > 0.05, "planted lift {planted}");
    assert!(
        low <= planted && planted <= high,
        "[{low}, {high}] covers {planted}"
    );
    assert!(
        cuped_low <= planted && planted <= cuped_high,
        "CUPED [{cuped_low}, {cuped_high}] covers {planted}"
    );
    assert!(p < 0.05 && low > 0.0, "found: p = {p}");
    assert_eq!(f64_at(&found, 5), 0.0, "no sample ratio mismatch");

    // `persona experiment report` prints it; an unknown key lists the known ones (exit 3).
    let report = ok(&crate::support::persona(
        &[
            "experiment",
            "report",
            "demo_email",
            "--output",
            out.path().to_str().unwrap(),
        ],
        &[],
    ));
    assert!(
        report.contains("Experiment demo_email: control") && report.contains("conversion  email"),
        "{report}"
    );
    let unknown = crate::support::persona(
        &[
            "experiment",
            "report",
            "nope",
            "--output",
            out.path().to_str().unwrap(),
        ],
        &[],
    );
    assert!(error_line(&unknown, 3).contains("it has: demo_email"));
}

/// Column `i` of the first row, as a number.
fn f64_at(batches: &[datafusion::arrow::array::RecordBatch], i: usize) -> f64 {
    use datafusion::arrow::array::AsArray;
    let b = batches.iter().find(|b| b.num_rows() > 0).unwrap();
    let c = datafusion::arrow::compute::cast(
        b.column(i),
        &datafusion::arrow::datatypes::DataType::Float64,
    )
    .unwrap();
    c.as_primitive::<datafusion::arrow::datatypes::Float64Type>()
        .value(0)
}

/// 200 A/A experiments on data without a campaign (each key splits the same customers
/// another way): the tests reject at about their nominal 5%.
#[tokio::test]
async fn two_hundred_a_a_tests_reject_at_about_five_percent() {
    let (out, conf) = (temp(), temp());
    let experiments: String = (0..200)
        .map(|i| {
            format!(
                "[[experiments]]\nkey = \"aa_{i}\"\nstart = \"2026-11-09\"\n\
                 arms = [{{ name = \"control\", weight = 0.5 }}, {{ name = \"same\", weight = 0.5 }}]\n"
            )
        })
        .collect();
    let config = write_config(conf.path(), &experiments);
    ok(&run_at(
        tiny_input().to_str().unwrap(),
        out.path().to_str().unwrap(),
        DATE,
        &["--config", &config],
        &[],
    ));
    let ctx = SessionContext::new();
    register_partition(&ctx, "r", out.path(), "experiment_results", DATE).await;
    for (metric, column) in [
        ("conversion", "p_value"),
        ("revenue", "p_value"),
        ("conversion", "cuped_p_value"),
        ("sessions", "cuped_p_value"),
    ] {
        let rejected = scalar_i64(
            &ctx,
            &format!(
                "SELECT SUM(CASE WHEN {column} < 0.05 THEN 1 ELSE 0 END) FROM r \
                 WHERE metric = '{metric}' AND arm = 'same'"
            ),
        )
        .await;
        println!("A/A: {metric} {column}: {rejected} of 200 rejected");
        assert!(
            (4..=18).contains(&rejected),
            "{metric} {column}: {rejected} of 200 rejected (2-9% expected)"
        );
    }
    let alerts = scalar_i64(&ctx, "SELECT COUNT(*) FROM r WHERE srm_alert").await;
    assert_eq!(alerts, 0, "the hash splits every A/A test as weighed");
}

/// A per-customer table of `persona experiment analyse`: 4,000 customers split by parity,
/// `keep` deciding which survive (a broken assignment loses some of one arm).
fn customers_table(dir: &Path, keep: &str) -> String {
    let path = dir.join("customers.parquet");
    let sql = format!(
        "COPY (SELECT 'broken' AS experiment, CAST(v AS VARCHAR) AS customer_id, \
         CASE WHEN v % 2 = 0 THEN 'control' ELSE 'email' END AS arm, \
         CAST(v % 3 = 0 AS DOUBLE) AS conversion, CAST(v % 7 AS DOUBLE) AS revenue, \
         CAST(v % 3 AS DOUBLE) AS orders, CAST(v % 5 AS DOUBLE) AS sessions, \
         CAST(v % 4 = 0 AS DOUBLE) AS pre_conversion, CAST(v % 11 AS DOUBLE) AS pre_revenue, \
         CAST(v % 2 AS DOUBLE) AS pre_orders, CAST(v % 6 AS DOUBLE) AS pre_sessions \
         FROM (SELECT value AS v FROM generate_series(1, 4000)) WHERE {keep}) \
         TO '{}' STORED AS PARQUET",
        path.display()
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        SessionContext::new()
            .sql(&sql)
            .await
            .unwrap()
            .collect()
            .await
            .unwrap()
    });
    path.to_str().unwrap().to_string()
}

#[test]
fn a_broken_assignment_raises_the_sample_ratio_alarm_and_an_empty_arm_is_refused() {
    let dir = temp();
    let config = write_config(
        dir.path(),
        "[[experiments]]\nkey = \"broken\"\nstart = \"2026-11-01\"\n\
         arms = [{ name = \"control\", weight = 0.5 }, { name = \"email\", weight = 0.5 }]\n",
    );
    // One email customer in five lost: 2,000 against 1,600.
    let input = customers_table(dir.path(), "NOT (v % 2 = 1 AND v % 10 = 1)");
    let report = ok(&crate::support::persona(
        &[
            "experiment",
            "analyse",
            "--input",
            &input,
            "--config",
            &config,
        ],
        &[],
    ));
    assert!(
        report.contains("control 2000, email 1600") && report.contains("SAMPLE RATIO MISMATCH"),
        "{report}"
    );
    // The same split intact: no alarm.
    let whole = customers_table(dir.path(), "true");
    let report = ok(&crate::support::persona(
        &[
            "experiment",
            "analyse",
            "--input",
            &whole,
            "--config",
            &config,
        ],
        &[],
    ));
    assert!(!report.contains("SAMPLE RATIO MISMATCH"), "{report}");
    // Every email customer lost: refused, naming the experiment and the arm.
    let control_only = customers_table(dir.path(), "v % 2 = 0");
    let refused = crate::support::persona(
        &[
            "experiment",
            "analyse",
            "--input",
            &control_only,
            "--config",
            &config,
        ],
        &[],
    );
    let line = error_line(&refused, 4);
    assert!(
        line.contains("'broken'") && line.contains("arm 'email' has no customers"),
        "{line}"
    );
}

#[test]
fn a_key_reused_with_other_arms_is_refused_and_nothing_is_published() {
    let (out, conf) = (temp(), temp());
    let (input, output) = (tiny_input().to_str().unwrap(), out.path().to_str().unwrap());
    let first = write_config(conf.path(), &experiment("true", 0.5, 0.5));
    ok(&run_at(
        input,
        output,
        YESTERDAY,
        &["--config", &first],
        &[],
    ));
    let renamed = experiment("true", 0.5, 0.5).replace("\"offer\"", "\"email\"");
    let second = write_config(conf.path(), &renamed);
    let result = run_at(input, output, DATE, &["--config", &second], &[]);
    let line = error_line(&result, 4);
    assert!(
        line.contains("'winback'") && line.contains("offer") && line.contains("new key"),
        "{line}"
    );
    assert!(
        !out.path()
            .join(format!("_runs/dt={DATE}/manifest.json"))
            .exists(),
        "tonight published nothing"
    );
    // Weights that do not sum to 1 are refused before anything runs.
    let third = write_config(conf.path(), &experiment("true", 0.5, 0.6));
    let line = error_line(&run_at(input, output, DATE, &["--config", &third], &[]), 4);
    assert!(
        line.contains("'winback'") && line.contains("sum to 1.1"),
        "{line}"
    );
}

/// `scripts/check-experiment-stats.py`: every figure of `persona experiment analyse` agrees
/// with scipy and statsmodels on the same per-customer table (1e-6 relative). The interpreter
/// comes from `PERSONA_PYTHON` (scripts/test.sh's virtualenv, with scipy and statsmodels);
/// without it this test fails rather than pretending to pass.
#[test]
fn the_statistics_match_scipy_and_statsmodels() {
    let python = std::env::var("PERSONA_PYTHON").unwrap_or_else(|_| {
        panic!("PERSONA_PYTHON is not set: run the tests with scripts/test.sh (it installs scipy)")
    });
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let result = std::process::Command::new(python)
        .arg(root.join("scripts/check-experiment-stats.py"))
        .arg("--persona")
        .arg(crate::support::persona_bin())
        .output()
        .unwrap();
    let stdout = ok(&result);
    assert!(
        stdout.contains("331 figures of 25 rows compared"),
        "{stdout}"
    );
}

#[test]
fn assign_declares_an_experiment_and_previews_its_arms() {
    let (out, conf) = (temp(), temp());
    ok(&run_at(
        tiny_input().to_str().unwrap(),
        out.path().to_str().unwrap(),
        DATE,
        &[],
        &[],
    ));
    let config = conf.path().join("persona.toml");
    std::fs::write(&config, "[segments]\nk = 4\n").unwrap();
    let assign = |key: &str, arms: &str, eligible: &str| {
        crate::support::persona(
            &[
                "experiment",
                "assign",
                "--config",
                config.to_str().unwrap(),
                "--key",
                key,
                "--arms",
                arms,
                "--eligible",
                eligible,
                "--start",
                "2026-12-01",
                "--output",
                out.path().to_str().unwrap(),
            ],
            &[],
        )
    };
    let said = ok(&assign(
        "spring_sale",
        "control=0.5,sale=0.5",
        "marketing_opt_in",
    ));
    assert!(
        said.contains("its first night would assign: control "),
        "{said}"
    );
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(text.starts_with("[segments]\nk = 4\n") && text.contains("key = \"spring_sale\""));
    // The preview counts the opted-in profiles, every one in an arm.
    let ctx = SessionContext::new();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let opted_in = rt.block_on(async {
        register_partition(&ctx, "p", out.path(), "user_profiles", DATE).await;
        scalar_i64(&ctx, "SELECT COUNT(*) FROM p WHERE marketing_opt_in").await
    });
    let counts: u64 = said
        .split("would assign: ")
        .nth(1)
        .unwrap()
        .trim_end_matches(|c: char| !c.is_ascii_digit())
        .split(", ")
        .map(|arm| {
            arm.rsplit(' ')
                .next()
                .unwrap()
                .trim_end_matches('.')
                .parse::<u64>()
                .unwrap()
        })
        .sum();
    assert_eq!(counts as i64, opted_in);
    // A key used twice, weights that do not sum to 1, a predicate that is not SQL over the
    // profiles: refused (exit 4) and the file unchanged.
    for (key, arms, eligible, says) in [
        ("spring_sale", "control=0.5,sale=0.5", "true", "used twice"),
        ("other", "control=0.5,sale=0.6", "true", "sum to 1.1"),
        (
            "other",
            "control=0.5,sale=0.5",
            "no_such_column",
            "no_such_column",
        ),
    ] {
        let line = error_line(&assign(key, arms, eligible), 4);
        assert!(line.contains(says), "{line}");
        assert_eq!(std::fs::read_to_string(&config).unwrap(), text);
    }
}
