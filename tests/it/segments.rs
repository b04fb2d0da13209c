//! Segment ids that keep their meaning: two nights over data that shift slightly (the window
//! moves by a day) keep every segment's id and label, and most customers keep their segment.

use datafusion::prelude::SessionContext;

use crate::support::{
    DATE, ok, register_partition as register, rows_as_text, run_at, scalar_i64, temp, tiny_input,
};

const YESTERDAY: &str = "2026-11-21";

#[tokio::test]
async fn two_nights_keep_every_segment_id_and_label() {
    two_nights_keep_their_segments(None).await;
}

/// With feature groups the fit's coordinates are block-weighted z-scores while the published
/// centroids stay plain z-scores: the warm start and the matching must convert between them.
#[tokio::test]
async fn two_nights_with_weighted_feature_groups_keep_their_segments() {
    let config = "[segments]\n\
        [segments.feature_groups.behaviour]\n\
        features = [\"recency_days\", \"sessions\", \"purchases\", \"avg_order_value\"]\n\
        [segments.feature_groups.channel]\n\
        features = [\"share_web\", \"share_ios\"]\n\
        weight = 0.5\n\
        [segments.feature_groups.crm]\n\
        features = [\"age\", \"annual_income\"]\n\
        categorical = [\"loyalty_tier\"]\n";
    let out = two_nights_keep_their_segments(Some(config)).await;
    let ctx = SessionContext::new();
    register(&ctx, "segments", out.path(), "segments", DATE).await;
    let rows = scalar_i64(&ctx, "SELECT COUNT(*) FROM segments").await;
    let described = scalar_i64(
        &ctx,
        "SELECT COUNT(*) FROM segments WHERE features_by_group LIKE 'behaviour: %; channel: %; crm: %'",
    )
    .await;
    assert!(
        rows > 1 && described == rows,
        "{described} of {rows} described by group"
    );
}

/// Runs two nights (with `config`, if any) and checks that the second keeps every segment's id
/// and label and that the segments say how much to trust them; returns the output folder.
async fn two_nights_keep_their_segments(config: Option<&str>) -> tempfile::TempDir {
    let out = temp();
    let (input, output) = (tiny_input().to_str().unwrap(), out.path().to_str().unwrap());
    let config_dir = temp();
    let file = config_dir.path().join("persona.toml");
    let mut extra = vec![];
    if let Some(text) = config {
        std::fs::write(&file, text).unwrap();
        extra = vec!["--config", file.to_str().unwrap()];
    }
    ok(&run_at(input, output, YESTERDAY, &extra, &[]));
    ok(&run_at(input, output, DATE, &extra, &[]));

    let manifest: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            out.path()
                .join("_runs")
                .join(format!("dt={DATE}"))
                .join("manifest.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let continuity = &manifest["segments"]["continuity"];
    assert_eq!(continuity["previous_date"], YESTERDAY, "{continuity}");
    assert_eq!(continuity["warm_start"], true, "{continuity}");
    assert_eq!(
        continuity["appeared"],
        serde_json::json!([]),
        "{continuity}"
    );
    assert_eq!(
        continuity["vanished"],
        serde_json::json!([]),
        "{continuity}"
    );
    for segment in continuity["segments"].as_array().unwrap() {
        assert_eq!(segment["segment_id"], segment["previous_segment_id"]);
        assert!(segment["drift"].as_f64().unwrap() < 0.5, "{segment}");
    }

    let ctx = SessionContext::new();
    register(&ctx, "before", out.path(), "segments", YESTERDAY).await;
    register(&ctx, "after", out.path(), "segments", DATE).await;
    let labels = |t: &str| format!("SELECT segment_id, segment_label FROM {t}");
    assert_eq!(
        rows_as_text(&ctx, &labels("before")).await,
        rows_as_text(&ctx, &labels("after")).await,
        "segment ids and labels"
    );

    register(
        &ctx,
        "profiles_before",
        out.path(),
        "user_profiles",
        YESTERDAY,
    )
    .await;
    register(&ctx, "profiles_after", out.path(), "user_profiles", DATE).await;
    let both = scalar_i64(
        &ctx,
        "SELECT COUNT(*) FROM profiles_before b JOIN profiles_after a USING (customer_id)",
    )
    .await;
    let kept = scalar_i64(
        &ctx,
        "SELECT COUNT(*) FROM profiles_before b JOIN profiles_after a USING (customer_id) \
         WHERE a.segment_id = b.segment_id",
    )
    .await;
    assert!(
        kept as f64 >= 0.8 * both as f64,
        "{kept} of {both} customers kept their segment"
    );

    // How much to trust them: per segment, and for the night.
    let out_of_range = scalar_i64(
        &ctx,
        "SELECT COUNT(*) FROM after WHERE silhouette < -1 OR silhouette > 1 \
         OR stability IS NULL OR stability < 0 OR stability > 1",
    )
    .await;
    assert_eq!(out_of_range, 0, "silhouette and stability per segment");
    let stability = &manifest["segments"]["fit"]["stability"];
    let ari = stability["ari"].as_f64().unwrap();
    assert!((-1.0..=1.0).contains(&ari), "{stability}");
    assert_eq!(
        manifest["segments"]["unstable"].is_null(),
        ari >= 0.6,
        "flagged exactly when below min_stability: {}",
        manifest["segments"]
    );
    out
}
