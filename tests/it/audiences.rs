//! Campaign audiences: opted-out and suppressed customers never appear whatever the predicate;
//! the holdout is as large as its share says and stays put night after night; the changes are
//! the difference of two nights; a linked experiment's control arm is the holdout; the
//! activation files hold the contacted customers; a predicate that does not plan fails the night
//! before anything is computed; the preview is the night's own selection.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::array::{AsArray, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::prelude::SessionContext;
use persona_udfs::scalar::experiment_bucket;

use crate::support::{
    DATE, copy_dir, error_line, ok, persona, published_folder, query, register_partition, run_at,
    scalar_i64, temp, tiny_input, write_parquet,
};

const YESTERDAY: &str = "2026-11-21";

fn write_config(dir: &Path, text: &str) -> String {
    let path = dir.join("persona.toml");
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

/// The first column of a query's rows, as text.
async fn texts(ctx: &SessionContext, sql: &str) -> Vec<String> {
    let mut out = Vec::new();
    for b in query(ctx, sql).await {
        let col = datafusion::arrow::compute::cast(b.column(0), &DataType::Utf8).unwrap();
        let col = col.as_string::<i32>();
        out.extend((0..b.num_rows()).map(|r| col.value(r).to_string()));
    }
    out
}

/// `(customer_id, in_holdout)` of `audience` in the night of `date`.
async fn members(output: &Path, audience: &str, date: &str) -> BTreeMap<String, bool> {
    let ctx = SessionContext::new();
    register_partition(&ctx, "a", output, "audiences", date).await;
    let mut out = BTreeMap::new();
    for b in query(
        &ctx,
        &format!("SELECT customer_id, in_holdout FROM a WHERE audience = '{audience}'"),
    )
    .await
    {
        let ids = datafusion::arrow::compute::cast(b.column(0), &DataType::Utf8).unwrap();
        let (ids, held) = (ids.as_string::<i32>(), b.column(1).as_boolean());
        for r in 0..b.num_rows() {
            out.insert(ids.value(r).to_string(), held.value(r));
        }
    }
    out
}

/// Random predicates over the customer view, from a fixed seed: conjunctions and
/// disjunctions of conditions on the profile, the propensity columns, the top recommendation,
/// and conditions that ask for the excluded customers outright.
fn random_predicates(n: usize) -> Vec<String> {
    let atoms = [
        "decile <= 3",
        "decile > 5",
        "lifecycle = 'active'",
        "lifecycle <> 'dormant'",
        "loyalty_tier IN ('gold', 'silver')",
        "recency_days < 5",
        "purchases >= 1",
        "NOT marketing_opt_in",
        "marketing_opt_in IS NULL",
        "suppressed",
        "suppressed OR NOT suppressed",
        "segment_id = 1",
        "top_item_source = 'popular'",
        "probability > 0.3",
        "true",
    ];
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = |m: usize| {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((state >> 33) % m as u64) as usize
    };
    (0..n)
        .map(|_| {
            let (a, b) = (atoms[next(atoms.len())], atoms[next(atoms.len())]);
            let op = ["AND", "OR"][next(2)];
            format!("({a}) {op} ({b})")
        })
        .collect()
}

#[tokio::test]
async fn opted_out_and_suppressed_customers_never_appear() {
    let (inp, out, conf) = (temp(), temp(), temp());
    copy_dir(tiny_input(), inp.path());
    // Every third opted-in CRM customer is suppressed.
    let crm = SessionContext::new();
    crm.register_parquet(
        "crm",
        &format!("{}/crm_customers/", inp.path().display()),
        Default::default(),
    )
    .await
    .unwrap();
    let opted_in = texts(
        &crm,
        "SELECT DISTINCT customer_id FROM crm WHERE marketing_opt_in ORDER BY customer_id",
    )
    .await;
    let suppressed: Vec<String> = opted_in.iter().step_by(3).cloned().collect();
    assert!(suppressed.len() > 20, "{}", suppressed.len());
    std::fs::create_dir_all(inp.path().join("suppressions")).unwrap();
    write_parquet(
        &inp.path().join("suppressions/part-0.parquet"),
        &batch_of(&suppressed),
    );

    let predicates = random_predicates(8);
    let mut text = String::from("[privacy]\nexport_hashed_emails = true\n");
    for (i, p) in predicates.iter().enumerate() {
        let channel = ["email", "push", "ads", "any"][i % 4];
        text.push_str(&format!(
            "[[audiences]]\nname = \"a{i}\"\nwhere = \"{p}\"\nchannel = \"{channel}\"\n"
        ));
    }
    // And one with everyone, ranked and cut, to compare with a count of our own.
    text.push_str(
        "[[audiences]]\nname = \"everyone\"\nwhere = \"true\"\norder_by = \"probability DESC\"\n\
         limit = 50\nholdout_share = 0.2\nchannel = \"email\"\n",
    );
    let config = write_config(conf.path(), &text);
    let (input, output) = (inp.path().to_str().unwrap(), out.path().to_str().unwrap());
    ok(&run_at(input, output, DATE, &["--config", &config], &[]));

    let ctx = SessionContext::new();
    for table in ["audiences", "audience_summary", "user_profiles"] {
        register_partition(&ctx, table, out.path(), table, DATE).await;
    }
    ctx.register_batch("supp", batch_of(&suppressed)).unwrap();
    let leaked = scalar_i64(
        &ctx,
        "SELECT COUNT(*) FROM audiences a JOIN user_profiles p ON p.customer_id = a.customer_id \
         WHERE NOT COALESCE(p.marketing_opt_in, false) \
            OR a.customer_id IN (SELECT customer_id FROM supp)",
    )
    .await;
    assert_eq!(
        leaked, 0,
        "opted-out or suppressed customers in an audience"
    );
    let total = scalar_i64(&ctx, "SELECT COUNT(*) FROM audiences").await;
    assert!(total > 100, "the random audiences hold {total} customers");
    // Every audience's counts add up, and the exclusions were at work.
    let inconsistent = scalar_i64(
        &ctx,
        "SELECT COUNT(*) FROM audience_summary \
         WHERE matched - excluded_opt_out - excluded_suppressed - beyond_limit <> size \
            OR holdout + contacted <> size",
    )
    .await;
    assert_eq!(inconsistent, 0);
    let excluded = scalar_i64(
        &ctx,
        "SELECT SUM(excluded_opt_out) * SUM(excluded_suppressed) FROM audience_summary",
    )
    .await;
    assert!(excluded > 0, "both exclusions must have removed someone");
    // `everyone`: the 50 most likely contactable customers, whom we count ourselves.
    let contactable = scalar_i64(
        &ctx,
        "SELECT COUNT(*) FROM user_profiles WHERE COALESCE(marketing_opt_in, false) \
         AND customer_id NOT IN (SELECT customer_id FROM supp)",
    )
    .await;
    let everyone = scalar_i64(
        &ctx,
        "SELECT size * 1000000 + beyond_limit FROM audience_summary WHERE audience = 'everyone'",
    )
    .await;
    assert_eq!(everyone, 50 * 1_000_000 + (contactable - 50));

    // The activation files: the contacted customers in rank order; e-mail hashes except for
    // the push audiences.
    let exports = published_folder(out.path(), "exports", DATE);
    for (i, _) in predicates.iter().enumerate().chain([(8, &String::new())]) {
        let name = if i == 8 {
            "everyone".to_string()
        } else {
            format!("a{i}")
        };
        let expected = texts(
            &ctx,
            &format!(
                "SELECT customer_id FROM audiences WHERE audience = '{name}' AND NOT in_holdout \
                 ORDER BY rank"
            ),
        )
        .await;
        let file = std::fs::read_to_string(exports.join(format!("{name}.csv"))).unwrap();
        let mut lines = file.lines();
        assert_eq!(lines.next(), Some("customer_id"), "{name}.csv header");
        assert_eq!(lines.map(str::to_string).collect::<Vec<_>>(), expected);
        let hashes = exports.join(format!("{name}.email_sha256.csv"));
        let push = i < 8 && i % 4 == 1;
        assert_eq!(
            hashes.exists(),
            !push,
            "{name}: e-mail hashes for push audiences only when not push"
        );
        if !push {
            let text = std::fs::read_to_string(hashes).unwrap();
            let rows: Vec<&str> = text.lines().skip(1).collect();
            assert!(rows.len() <= expected.len());
            assert!(
                rows.iter()
                    .all(|h| h.len() == 64 && h.chars().all(|c| c.is_ascii_hexdigit())),
                "{name}: not SHA-256 hex"
            );
        }
    }
}

/// A one-column batch of customer ids: the suppression list.
fn batch_of(ids: &[String]) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![Field::new(
        "customer_id",
        DataType::Utf8,
        true,
    )]));
    RecordBatch::try_new(schema, vec![Arc::new(StringArray::from(ids.to_vec()))]).unwrap()
}

#[tokio::test]
async fn the_holdout_is_stable_and_the_changes_are_the_difference_of_two_nights() {
    let (out, conf) = (temp(), temp());
    let config = write_config(
        conf.path(),
        &format!(
            "[[experiments]]\nkey = \"recent_test\"\nstart = \"{YESTERDAY}\"\n\
             arms = [{{ name = \"control\", weight = 0.4 }}, {{ name = \"push\", weight = 0.6 }}]\n\
             [[audiences]]\nname = \"everyone\"\nwhere = \"true\"\nholdout_share = 0.3\n\
             [[audiences]]\nname = \"recent\"\nwhere = \"recency_days < 3\"\n\
             experiment = \"recent_test\"\nchannel = \"push\"\n"
        ),
    );
    let (input, output) = (tiny_input().to_str().unwrap(), out.path().to_str().unwrap());
    for date in [YESTERDAY, DATE] {
        ok(&run_at(input, output, date, &["--config", &config], &[]));
    }
    let (before, after) = (
        members(out.path(), "everyone", YESTERDAY).await,
        members(out.path(), "everyone", DATE).await,
    );
    // Binomial: within 4 standard deviations of 30%, and exactly GrowthBook's hash.
    let (n, held) = (
        after.len() as f64,
        after.values().filter(|h| **h).count() as f64,
    );
    assert!(n > 200.0, "{n}");
    let sd = (n * 0.3 * 0.7).sqrt();
    assert!((held - 0.3 * n).abs() < 4.0 * sd, "{held} of {n} held out");
    for (id, h) in &after {
        assert_eq!(*h, experiment_bucket("audience_everyone", id) < 0.3, "{id}");
        if let Some(b) = before.get(id) {
            assert_eq!(b, h, "{id} changed holdout between nights");
        }
    }

    // audience_changes of tonight = tonight's members - yesterday's, and back.
    let (recent_before, recent_after) = (
        members(out.path(), "recent", YESTERDAY).await,
        members(out.path(), "recent", DATE).await,
    );
    let ctx = SessionContext::new();
    register_partition(&ctx, "c", out.path(), "audience_changes", DATE).await;
    for (audience, b, a) in [
        ("everyone", &before, &after),
        ("recent", &recent_before, &recent_after),
    ] {
        let keys = |m: &BTreeMap<String, bool>| m.keys().cloned().collect::<BTreeSet<_>>();
        let (b, a) = (keys(b), keys(a));
        let change = |what: &str| {
            let sql = format!(
                "SELECT customer_id FROM c WHERE audience = '{audience}' AND change = '{what}'"
            );
            let ctx = &ctx;
            async move { texts(ctx, &sql).await.into_iter().collect::<BTreeSet<_>>() }
        };
        assert_eq!(change("entered").await, &a - &b, "{audience}: entered");
        assert_eq!(change("left").await, &b - &a, "{audience}: left");
    }
    assert!(
        recent_before.keys().ne(recent_after.keys()),
        "the recent audience should change between the nights"
    );

    // The linked experiment takes the audience's customers; its control arm is the holdout.
    let ctx = SessionContext::new();
    register_partition(&ctx, "e", out.path(), "experiment_assignments", DATE).await;
    let mut arms = BTreeMap::new();
    for b in query(
        &ctx,
        "SELECT customer_id, arm FROM e WHERE experiment = 'recent_test'",
    )
    .await
    {
        let ids = datafusion::arrow::compute::cast(b.column(0), &DataType::Utf8).unwrap();
        let a = datafusion::arrow::compute::cast(b.column(1), &DataType::Utf8).unwrap();
        for r in 0..b.num_rows() {
            arms.insert(
                ids.as_string::<i32>().value(r).to_string(),
                a.as_string::<i32>().value(r).to_string(),
            );
        }
    }
    assert!(!recent_after.is_empty());
    for (id, held) in &recent_after {
        let arm = arms
            .get(id)
            .unwrap_or_else(|| panic!("{id} not in the experiment"));
        assert_eq!(
            *held,
            arm == "control",
            "{id}: holdout and control arm differ"
        );
    }
    let everyone_ever: BTreeSet<&String> =
        recent_before.keys().chain(recent_after.keys()).collect();
    assert!(
        arms.keys().all(|id| everyone_ever.contains(id)),
        "the experiment took customers outside the audience"
    );
}

#[test]
fn a_predicate_that_does_not_plan_fails_before_anything_is_computed() {
    let conf = temp();
    let input = tiny_input().to_str().unwrap();
    for (audience, needle) in [
        (
            "name = \"bad\"\nwhere = \"no_such_column > 1\"\n",
            "no_such_column",
        ),
        (
            "name = \"bad\"\nwhere = \"true\"\norder_by = \"probability DESC,,\"\n",
            "order_by",
        ),
        ("name = \"bad\"\nwhere = \"lifecycle = \"\n", "where"),
    ] {
        let out = temp();
        let config = write_config(conf.path(), &format!("[[audiences]]\n{audience}"));
        let output = out.path().to_str().unwrap();
        let line = error_line(&run_at(input, output, DATE, &["--config", &config], &[]), 4);
        assert!(
            line.contains("audience 'bad'") && line.contains(needle),
            "{line}"
        );
        // Nothing computed: no stage wrote a table, no night was committed.
        let written: Vec<String> = std::fs::read_dir(out.path())
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| !n.starts_with('_'))
                    .collect()
            })
            .unwrap_or_default();
        assert!(written.is_empty(), "{written:?}");
        assert!(!out.path().join("_runs").exists());
        let check = persona(
            &[
                "check", "--input", input, "--date", DATE, "--config", &config,
            ],
            &[],
        );
        assert!(error_line(&check, 4).contains("audience 'bad'"));
    }
    // The propensity columns on a night without the model.
    let out = temp();
    let config = write_config(
        conf.path(),
        "[propensity]\nenabled = false\n[[audiences]]\nname = \"buyers\"\nwhere = \"decile <= 2\"\n",
    );
    let output = out.path().to_str().unwrap();
    let line = error_line(&run_at(input, output, DATE, &["--config", &config], &[]), 4);
    assert!(
        line.contains("'buyers'") && line.contains("propensity"),
        "{line}"
    );
}

#[tokio::test]
async fn the_preview_is_the_nights_selection() {
    let (out, conf) = (temp(), temp());
    let config = write_config(
        conf.path(),
        "[[audiences]]\nname = \"likely\"\nwhere = \"decile <= 3\"\norder_by = \"probability DESC\"\n\
         limit = 40\nholdout_share = 0.25\n\
         [[audiences]]\nname = \"loyal\"\nwhere = \"loyalty_tier <> 'none'\"\n",
    );
    let (input, output) = (tiny_input().to_str().unwrap(), out.path().to_str().unwrap());
    ok(&run_at(input, output, DATE, &["--config", &config], &[]));
    let json = ok(&persona(
        &[
            "audience", "preview", "likely", "--output", output, "--config", &config, "--json",
        ],
        &[],
    ));
    let preview: serde_json::Value = serde_json::from_str(&json).unwrap();
    let ctx = SessionContext::new();
    register_partition(&ctx, "s", out.path(), "audience_summary", DATE).await;
    for field in [
        "matched",
        "excluded_opt_out",
        "size",
        "holdout",
        "beyond_limit",
    ] {
        let night = scalar_i64(
            &ctx,
            &format!("SELECT {field} FROM s WHERE audience = 'likely'"),
        )
        .await;
        assert_eq!(preview[field].as_i64(), Some(night), "{field}");
    }
    let overlap = scalar_i64(
        &ctx,
        "SELECT o['customers'] FROM (SELECT unnest(overlap) AS o FROM s WHERE audience = 'likely') \
         WHERE o['audience'] = 'loyal'",
    )
    .await;
    assert_eq!(preview["overlap"][0], serde_json::json!(["loyal", overlap]));
    // A new definition, tried before it is declared.
    let text = ok(&persona(
        &[
            "audience",
            "preview",
            "gold",
            "--where",
            "loyalty_tier = 'gold'",
            "--output",
            output,
        ],
        &[],
    ));
    assert!(
        text.starts_with("Audience gold over the night of 2026-11-22: "),
        "{text}"
    );
    let line = error_line(
        &persona(&["audience", "preview", "nobody", "--output", output], &[]),
        4,
    );
    assert!(line.contains("no audience 'nobody'"), "{line}");
}
