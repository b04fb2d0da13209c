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
    let first = write_config(conf.path(), &experiment("marketing_opt_in", 1.0, 1.0));
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
    let second = write_config(conf.path(), &experiment("true", 9.0, 1.0));
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
    let config = write_config(conf.path(), &experiment("no_such_column > 3", 1.0, 1.0));
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
