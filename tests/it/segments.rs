//! Segment ids that keep their meaning: two nights over data that shift slightly (the window
//! moves by a day) keep every segment's id and label, and most customers keep their segment.

use datafusion::prelude::SessionContext;

use crate::support::{
    DATE, ok, register_partition as register, rows_as_text, run_at, scalar_i64, temp, tiny_input,
};

const YESTERDAY: &str = "2026-11-21";

#[tokio::test]
async fn two_nights_keep_every_segment_id_and_label() {
    let out = temp();
    let (input, output) = (tiny_input().to_str().unwrap(), out.path().to_str().unwrap());
    ok(&run_at(input, output, YESTERDAY, &[], &[]));
    ok(&run_at(input, output, DATE, &[], &[]));

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
}
