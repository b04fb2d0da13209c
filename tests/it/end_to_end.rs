//! The whole job on tiny data: real properties of the outputs, idempotent reruns, and failed
//! runs that leave the previous outputs untouched.

use std::path::Path;

use crate::support::{
    DATE, copy_dir, list_files, ok, outputs, published_tables, query, rows_as_text, run_job,
    run_job_with, scalar_i64, temp, tiny_input,
};

/// The run manifest of [`DATE`] under `output`.
pub fn manifest(output: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(output.join(format!("_runs/dt={DATE}/manifest.json")))
        .expect("manifest");
    serde_json::from_str(&text).expect("manifest json")
}

#[tokio::test(flavor = "multi_thread")]
async fn run_publishes_complete_consistent_tables() {
    let input = tiny_input();
    let out = temp();
    let stdout = ok(&run_job(input, out.path(), &[]));
    assert!(
        stdout.contains("Published tables"),
        "summary missing:\n{stdout}"
    );
    assert!(
        stdout.contains("Segments ("),
        "summary lacks segment sizes:\n{stdout}"
    );

    // The manifest names every table's folder, each complete (data files and the _SUCCESS
    // marker) and of this run; no work area left.
    let run_id = manifest(out.path())["run_id"].as_str().unwrap().to_string();
    for table in published_tables() {
        let dir = crate::support::published_folder(out.path(), table, DATE);
        assert!(dir.join("_SUCCESS").exists(), "{table} has no _SUCCESS");
        assert!(
            dir.ends_with(format!("{table}/dt={DATE}/run={run_id}")),
            "{}",
            dir.display()
        );
    }
    let leftovers: Vec<String> = list_files(&out.path().join("_work"));
    assert!(leftovers.is_empty(), "work area not cleaned: {leftovers:?}");

    let ctx = outputs(out.path(), input).await;
    let m = manifest(out.path());

    // Counts in the manifest match the files.
    assert_manifest_matches_files(out.path(), input, "first run").await;

    // Every customer with activity has a profile: any known (CRM) customer with a kept app
    // event in the window.
    let missing = scalar_i64(
        &ctx,
        &format!(
            "SELECT COUNT(DISTINCT e.customer_id) FROM in_app_events e JOIN in_crm c ON e.customer_id = c.customer_id
             WHERE e.dt BETWEEN '2026-10-26' AND '{DATE}'
               AND e.event_time >= TIMESTAMP '2026-10-26T00:00:00Z' AND e.event_time < TIMESTAMP '2026-11-23T00:00:00Z'
               AND e.customer_id NOT IN (SELECT customer_id FROM user_profiles)"
        ),
    )
    .await;
    assert_eq!(missing, 0, "active customers without a profile");
    // Every customer of the CRM export has a profile, active or not; dormant ones are there
    // with no event, and customers with events missing from the export are there too.
    let crm_without_profile = scalar_i64(
        &ctx,
        "SELECT COUNT(DISTINCT customer_id) FROM in_crm \
         WHERE customer_id IS NOT NULL AND customer_id NOT IN (SELECT customer_id FROM user_profiles)",
    )
    .await;
    assert_eq!(crm_without_profile, 0, "CRM customers without a profile");
    let dormant = scalar_i64(
        &ctx,
        "SELECT COUNT(*) FROM user_profiles WHERE lifecycle = 'dormant' AND events = 0 \
         AND last_seen IS NULL AND in_crm AND segment_id IS NOT NULL",
    )
    .await;
    assert!(dormant > 100, "{dormant} dormant profiles");
    let outside_crm = scalar_i64(
        &ctx,
        "SELECT COUNT(*) FROM user_profiles WHERE NOT in_crm AND events > 0 \
         AND customer_id NOT IN (SELECT customer_id FROM in_crm WHERE customer_id IS NOT NULL)",
    )
    .await;
    assert!(
        outside_crm > 0,
        "no profile of a customer missing from the CRM"
    );
    assert_eq!(
        scalar_i64(
            &ctx,
            "SELECT COUNT(*) FROM recommendations r JOIN user_profiles p USING (customer_id) \
             WHERE NOT p.in_crm",
        )
        .await,
        0,
        "no consent on record, no recommendation"
    );
    let profiles = scalar_i64(&ctx, "SELECT COUNT(*) FROM user_profiles").await;
    let distinct = scalar_i64(
        &ctx,
        "SELECT COUNT(DISTINCT customer_id) FROM user_profiles",
    )
    .await;
    assert_eq!(profiles, distinct, "one profile per customer");
    assert_eq!(
        profiles,
        scalar_i64(&ctx, "SELECT COUNT(*) FROM user_features").await
    );

    // Segments cover every profile; sizes add up; labels are non-empty and distinct.
    assert_eq!(
        scalar_i64(&ctx, "SELECT SUM(size) FROM segments").await,
        profiles
    );
    assert_eq!(scalar_i64(&ctx, "SELECT COUNT(*) FROM segments").await, 6);
    assert_eq!(
        scalar_i64(&ctx, "SELECT COUNT(DISTINCT segment_label) FROM segments").await,
        6
    );
    let unlabelled = scalar_i64(
        &ctx,
        "SELECT COUNT(*) FROM user_profiles WHERE segment_label IS NULL OR segment_id IS NULL",
    )
    .await;
    assert_eq!(unlabelled, 0);

    // Recommendations: no duplicate (customer, item) or (customer, rank); ranks 1..N; scores finite.
    assert_eq!(
        scalar_i64(&ctx, "SELECT COUNT(*) FROM (SELECT customer_id, item_id FROM recommendations GROUP BY 1, 2 HAVING COUNT(*) > 1)").await,
        0,
        "duplicate recommendation"
    );
    assert_eq!(
        scalar_i64(&ctx, "SELECT COUNT(*) FROM (SELECT customer_id, rank FROM recommendations GROUP BY 1, 2 HAVING COUNT(*) > 1)").await,
        0,
        "duplicate rank"
    );
    assert_eq!(
        scalar_i64(
            &ctx,
            "SELECT COUNT(*) FROM recommendations WHERE rank < 1 OR rank > 10"
        )
        .await,
        0
    );
    assert_eq!(
        scalar_i64(
            &ctx,
            "SELECT COUNT(*) FROM recommendations WHERE isnan(score) OR score IS NULL"
        )
        .await,
        0
    );
    // Every customer who agreed to marketing, dormant or not, gets recommendations: ten, from one
    // source; the customers the model hardly knows get their segment's favourites. The others
    // get none (privacy by default).
    assert_eq!(
        scalar_i64(&ctx, "SELECT COUNT(*) FROM user_profiles WHERE marketing_opt_in AND customer_id NOT IN (SELECT customer_id FROM recommendations)").await,
        0,
        "active opted-in customer without recommendations"
    );
    assert_eq!(
        scalar_i64(&ctx, "SELECT COUNT(*) FROM recommendations r JOIN user_profiles p ON r.customer_id = p.customer_id WHERE NOT COALESCE(p.marketing_opt_in, false)").await,
        0,
        "recommendations for a customer without marketing_opt_in"
    );
    assert!(
        scalar_i64(
            &ctx,
            "SELECT COUNT(*) FROM user_profiles WHERE NOT COALESCE(marketing_opt_in, false)"
        )
        .await
            > 0,
        "the generated data has customers who did not opt in"
    );

    // No email address, IP address or cookie id in any string column of any output.
    for table in published_tables() {
        let schema = ctx.table(table).await.unwrap().schema().as_arrow().clone();
        for field in schema.fields() {
            if field.data_type() != &datafusion::arrow::datatypes::DataType::Utf8
                && field.data_type() != &datafusion::arrow::datatypes::DataType::Utf8View
            {
                continue;
            }
            let col = field.name();
            let leaks = scalar_i64(
                &ctx,
                &format!(
                    "SELECT COUNT(*) FROM {table} WHERE \"{col}\" ~ '[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\\.[A-Za-z]+' \
                     OR \"{col}\" ~ '(^|[^0-9])[0-9]{{1,3}}(\\.[0-9]{{1,3}}){{3}}([^0-9]|$)' \
                     OR \"{col}\" IN (SELECT cookie_id FROM in_web_logs)"
                ),
            )
            .await;
            assert_eq!(
                leaks, 0,
                "{table}.{col} holds an email, IP address or cookie id"
            );
        }
    }
    assert_eq!(
        scalar_i64(&ctx, "SELECT COUNT(*) FROM (SELECT customer_id FROM recommendations GROUP BY customer_id HAVING COUNT(*) <> 10 OR COUNT(DISTINCT source = 'als') <> 1)").await,
        0,
        "a customer without exactly ten recommendations from the model or from the fallback"
    );
    assert!(
        scalar_i64(
            &ctx,
            "SELECT COUNT(*) FROM recommendations WHERE source = 'segment_popular'"
        )
        .await
            > 0
    );
    assert!(
        scalar_i64(
            &ctx,
            "SELECT COUNT(*) FROM recommendations WHERE source = 'als'"
        )
        .await
            > 0
    );

    // No item the customer bought in the window is recommended (the default exclusion).
    let bought_again = scalar_i64(
        &ctx,
        &format!(
            "SELECT COUNT(*) FROM recommendations r JOIN in_app_events e
               ON r.customer_id = e.customer_id AND r.item_id = e.item_id
             WHERE e.event_type = 'purchase' AND e.dt BETWEEN '2026-10-26' AND '{DATE}'
               AND e.event_time >= TIMESTAMP '2026-10-26T00:00:00Z' AND e.event_time < TIMESTAMP '2026-11-23T00:00:00Z'"
        ),
    )
    .await;
    assert_eq!(bought_again, 0, "already-purchased items recommended");

    // The manifest records the data-quality counters, and they add up to the input rows.
    let dq = m["data_quality"].as_array().expect("data_quality");
    let reasons: Vec<&str> = dq.iter().filter_map(|d| d["reason"].as_str()).collect();
    for reason in [
        "crawler",
        "duplicate",
        "kept",
        "future_dated",
        "unknown_customer",
        "anonymous",
    ] {
        assert!(
            reasons.contains(&reason),
            "no '{reason}' counter in {reasons:?}"
        );
    }
    let web_counted: i64 = dq
        .iter()
        .filter(|d| d["source"] == "web_logs")
        .filter_map(|d| d["rows"].as_i64())
        .sum();
    let web_read = scalar_i64(
        &ctx,
        &format!("SELECT COUNT(*) FROM in_web_logs WHERE dt BETWEEN '2026-10-26' AND '{DATE}'"),
    )
    .await;
    assert_eq!(
        web_counted, web_read,
        "every web-log row is kept or counted as dropped"
    );
    // The published data_quality table has the same counts, split by event day.
    let published = scalar_i64(
        &ctx,
        "SELECT CAST(SUM(rows) AS BIGINT) FROM data_quality WHERE source = 'web_logs'",
    )
    .await;
    assert_eq!(published, web_read, "data_quality adds up to the rows read");
    assert!(
        scalar_i64(&ctx, "SELECT COUNT(DISTINCT event_date) FROM data_quality").await >= 28,
        "data_quality is split by event day"
    );
    // Every SQL stage that reads Parquet reports the bytes its scans read; the model stages,
    // whose passes are not materialised queries, report none.
    let stage = |name: &str| {
        m["stages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .unwrap_or_else(|| panic!("no stage {name}"))
            .clone()
    };
    // Stages that scan Parquet: the inputs, or the items beside work tables. (A stage that
    // reads only work tables held in memory, as `recommendations` does, scans no Parquet.)
    for name in ["web_logs_flagged", "events", "user_features"] {
        assert!(
            stage(name)["bytes_read"].as_u64().is_some_and(|b| b > 0),
            "{name}: {}",
            stage(name)
        );
    }
    assert!(stage("kmeans").get("bytes_read").is_none());
    // Rows read are counted too, from Parquet and from the tables held in memory: staging
    // reads each raw web-log row of the window once, and the night as a whole reads its input
    // several times over (the manifest's `passes`).
    assert_eq!(
        stage("web_logs_flagged")["rows_read"].as_i64(),
        Some(web_read),
        "{}",
        stage("web_logs_flagged")
    );
    assert!(
        stage("recommendations")["rows_read"]
            .as_u64()
            .is_some_and(|r| r > 0)
    );
    let passes = &m["passes"];
    assert!(
        passes["input_rows"].as_i64().is_some_and(|r| r > web_read),
        "{passes}"
    );
    assert!(
        passes["per_input_row"].as_f64().is_some_and(|p| p > 2.0),
        "{passes}"
    );
    assert!(
        m["segments"]["fit"]["inertia"]
            .as_array()
            .is_some_and(|a| !a.is_empty())
    );
    // How much to trust the segments: the demo shop's types are real groups, so the sampled
    // silhouette is positive (and a silhouette is at most 1).
    let silhouette = m["segments"]["fit"]["silhouette"].as_f64().unwrap();
    assert!(silhouette > 0.0 && silhouette <= 1.0, "{silhouette}");

    // The model is published and consistent: the evaluation's fit runs the configured 10
    // iterations and its loss never rises, the published fit continues it for one iteration
    // (`warm_start_iterations`), similar items are other catalog items, and the nightly
    // evaluation scores ALS well above popularity.
    let losses = |fit: &serde_json::Value| -> Vec<f64> {
        fit["loss"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect()
    };
    let loss = losses(&m["evaluation"]["fit"]);
    assert_eq!(loss.len(), 10);
    assert!(
        loss.windows(2).all(|w| w[1] <= w[0] * (1.0 + 1e-6)),
        "ALS loss rose: {loss:?}"
    );
    assert_eq!(losses(&m["recommendations"]).len(), 1, "a warm start");
    let bad_similar = scalar_i64(
        &ctx,
        "SELECT COUNT(*) FROM similar_items s LEFT JOIN item_factors f ON s.similar_item_id = f.item_id
         WHERE s.item_id = s.similar_item_id OR f.item_id IS NULL OR NOT f.in_catalog OR s.score > 1.0001",
    )
    .await;
    assert_eq!(
        bad_similar, 0,
        "similar items must be other catalog items, cosine <= 1"
    );
    let factor_rows = scalar_i64(
        &ctx,
        "SELECT COUNT(*) FROM user_factors WHERE cardinality(factors) = 32",
    )
    .await;
    assert_eq!(
        factor_rows as u64,
        m["recommendations"]["users"].as_u64().unwrap()
    );
    let eval = &m["evaluation"];
    assert!(eval["skipped"].is_null(), "evaluation skipped: {eval}");
    let ndcg = |model: &str| {
        eval["models"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["model"] == model)
            .and_then(|s| s["ndcg_at_k"].as_f64())
            .unwrap()
    };
    assert!(
        ndcg("als") > 2.0 * ndcg("popular"),
        "ALS must beat popularity clearly: {eval}"
    );
    let scored = scalar_i64(
        &ctx,
        "SELECT COUNT(*) FROM evaluation WHERE model IN ('als', 'popular') AND users > 0 AND k = 10",
    )
    .await;
    assert_eq!(scored, 2, "the evaluation table has one row per model");
    assert!(stdout.contains("Evaluation (trained before"), "{stdout}");
    assert!(stdout.contains("Gates: all 12 passed"), "{stdout}");
    assert_eq!(
        m["gates"].as_array().map(Vec::len),
        Some(12),
        "{}",
        m["gates"]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn rerun_of_a_date_is_idempotent() {
    let input = tiny_input();
    let out = temp();
    ok(&run_job(input, out.path(), &[]));
    let first = snapshot(out.path(), input).await;
    ok(&run_job(input, out.path(), &[]));
    let second = snapshot(out.path(), input).await;
    assert_same(&first, &second, "a rerun changed the outputs");
    // The rerun replaced the partitions: what the files hold is exactly what the manifest says
    // (files left over from the first run would double the counts).
    assert_manifest_matches_files(out.path(), input, "after a rerun").await;
}

#[test]
fn every_published_number_is_the_same_however_the_rows_are_partitioned() {
    // One partition and three partitions add the same values in different orders: every number
    // of the manifest (ALS loss, K-Means inertia, the evaluation's metrics) must agree to the
    // last bit, as the tables do.
    let dir = temp();
    let mut manifests = Vec::new();
    for partitions in [1, 3] {
        let config = dir.path().join(format!("p{partitions}.toml"));
        std::fs::write(
            &config,
            format!("[execution]\ntarget_partitions = {partitions}\n"),
        )
        .unwrap();
        let out = dir.path().join(format!("out{partitions}"));
        ok(&run_job_with(
            tiny_input(),
            &out,
            &["--config", config.to_str().unwrap()],
            &[],
        ));
        manifests.push(manifest(&out));
    }
    let (a, b) = (&manifests[0], &manifests[1]);
    for path in [
        "/recommendations/loss",
        "/segments/fit/inertia",
        "/segments/fit/final_inertia",
        "/evaluation/models",
        "/evaluation/fit/loss",
    ] {
        assert!(
            a.pointer(path).is_some(),
            "{path} missing from the manifest"
        );
        assert_eq!(a.pointer(path), b.pointer(path), "{path}");
    }
}

/// Every published table holds exactly the rows its manifest entry says, and is not empty.
async fn assert_manifest_matches_files(output: &Path, input: &Path, when: &str) {
    let ctx = outputs(output, input).await;
    let m = manifest(output);
    for table in [
        "user_features",
        "user_profiles",
        "segments",
        "recommendations",
    ] {
        let rows = scalar_i64(&ctx, &format!("SELECT COUNT(*) FROM {table}")).await;
        assert_eq!(
            m["tables"][table].as_i64(),
            Some(rows),
            "manifest count of {table} ({when})"
        );
        assert!(rows > 0, "{table} is empty ({when})");
    }
}

/// Compares two snapshots, reporting the first differing row rather than both tables.
pub fn assert_same(a: &[Vec<String>], b: &[Vec<String>], what: &str) {
    for (query, (x, y)) in a.iter().zip(b).enumerate() {
        if let Some(i) = (0..x.len().max(y.len())).find(|&i| x.get(i) != y.get(i)) {
            panic!(
                "{what}: query {query}, sorted row {i}:\n  {:?}\nvs\n  {:?}",
                x.get(i),
                y.get(i)
            );
        }
    }
    assert_eq!(a.len(), b.len(), "{what}");
}

/// The published content, order-independent.
pub async fn snapshot(output: &Path, input: &Path) -> Vec<Vec<String>> {
    let ctx = outputs(output, input).await;
    let mut all = Vec::new();
    for sql in [
        "SELECT customer_id, segment_id, segment_label, round(distance_to_centroid, 9) FROM user_profiles",
        "SELECT segment_id, segment_label, size FROM segments",
        "SELECT customer_id, rank, item_id, round(score, 4), source FROM recommendations",
        "SELECT * FROM user_features",
        "SELECT customer_id, factors FROM user_factors",
        "SELECT item_id, rank, similar_item_id, round(score, 4) FROM similar_items",
        "SELECT model, users, round(ndcg_at_k, 9), round(map_at_k, 9), round(coverage, 9) FROM evaluation",
        "SELECT customer_id, round(probability, 12), decile, top_features FROM propensity",
        "SELECT term, round(coefficient, 12), round(standardized_coefficient, 12) FROM propensity_model",
        "SELECT model, metric, decile, round(value, 9) FROM propensity_evaluation",
    ] {
        all.push(rows_as_text(&ctx, sql).await);
    }
    all
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_run_leaves_the_previous_outputs_intact() {
    let input = tiny_input();
    let out = temp();
    ok(&run_job(input, out.path(), &[]));
    let before = snapshot(out.path(), input).await;
    let files_before = list_files(out.path());
    let manifest_before = manifest(out.path());

    // Fail in the middle of the stages, then in the middle of publishing (after two of the four
    // tables were swapped in: they must be rolled back).
    for point in ["user_features", "als", "commit:segments", "commit:_runs"] {
        let failed = run_job(input, out.path(), &[("PERSONA_FAIL_AT", point)]);
        assert_eq!(
            failed.status.code(),
            Some(1),
            "failure at {point} must exit 1"
        );
        let stderr = String::from_utf8_lossy(&failed.stderr);
        assert!(
            stderr.contains("injected failure"),
            "stderr for {point}: {stderr}"
        );
        assert_eq!(
            list_files(out.path()),
            files_before,
            "files changed after a failure at {point}"
        );
        assert_eq!(
            snapshot(out.path(), input).await,
            before,
            "outputs changed after a failure at {point}"
        );
        assert_eq!(manifest(out.path())["run_id"], manifest_before["run_id"]);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_catalog_falls_back_to_items_seen_in_events() {
    let input = temp();
    copy_dir(tiny_input(), input.path());
    std::fs::remove_dir_all(input.path().join("items")).expect("remove items");
    let out = temp();
    ok(&run_job(input.path(), out.path(), &[]));
    let ctx = outputs(out.path(), input.path()).await;
    assert!(scalar_i64(&ctx, "SELECT COUNT(*) FROM recommendations").await > 0);
    let batches = query(
        &ctx,
        "SELECT COUNT(*) FROM user_features WHERE top_category IS NOT NULL",
    )
    .await;
    assert_eq!(batches.len(), 1);
    // Without a catalog there are no categories nor prices: segmentation leaves those features
    // out and says so in the manifest, rather than failing the night.
    let m = manifest(out.path());
    assert_eq!(
        m["segments"]["dropped_features"],
        serde_json::json!(["top_category_share", "price_index"])
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_catalog_listing_items_twice_doubles_no_event() {
    // A real catalog export can list an item twice: every catalog row is here a second time, in
    // a second file. Events, features, recommendations and the data-quality counters must be
    // those of the catalog without the copies.
    let input = temp();
    copy_dir(tiny_input(), input.path());
    let items = input.path().join("items");
    for entry in std::fs::read_dir(&items).expect("items folder") {
        let path = entry.expect("entry").path();
        let copy = items.join(format!(
            "again-{}",
            path.file_name().expect("name").to_string_lossy()
        ));
        std::fs::copy(&path, copy).expect("copy catalog file");
    }
    let (plain, doubled) = (temp(), temp());
    ok(&run_job(tiny_input(), plain.path(), &[]));
    ok(&run_job(input.path(), doubled.path(), &[]));
    assert_same(
        &snapshot(plain.path(), tiny_input()).await,
        &snapshot(doubled.path(), input.path()).await,
        "outputs with every catalog row listed twice",
    );
    let counters = "SELECT * FROM data_quality";
    assert_eq!(
        rows_as_text(&outputs(plain.path(), tiny_input()).await, counters).await,
        rows_as_text(&outputs(doubled.path(), input.path()).await, counters).await,
        "data-quality counters"
    );
}
