//! The nightly report: published with the night, well-formed, every chart present, rendered by
//! a real browser (headless Chromium) into a screenshot that is not blank, no personal data in
//! it, and `persona report` rebuilds the same page from what the night published.

use std::path::{Path, PathBuf};
use std::process::Command;

use datafusion::prelude::SessionContext;

use crate::support::{
    DATE, ok, persona, published_folder, register_partition, run_at, temp, tiny_input,
};

/// The headless browser: `PERSONA_BROWSER`, or Debian's `chromium-headless-shell` or
/// `chromium` on the PATH (scripts/test.sh installs one). Without one the test fails rather
/// than pretending to pass.
fn browser() -> PathBuf {
    if let Ok(b) = std::env::var("PERSONA_BROWSER") {
        return PathBuf::from(b);
    }
    for name in ["chromium-headless-shell", "chromium"] {
        for dir in std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()) {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return candidate;
            }
        }
    }
    panic!(
        "no headless Chromium: run the tests with scripts/test.sh (it installs chromium-headless-shell)"
    )
}

/// Renders `url` in the browser at 1100 × `height` and returns the screenshot's bytes.
fn screenshot(url: &str, height: u32, dir: &Path, name: &str) -> Vec<u8> {
    let png = dir.join(name);
    let out = Command::new(browser())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            &format!("--window-size=1100,{height}"),
            &format!("--screenshot={}", png.display()),
            url,
        ])
        .output()
        .expect("run the browser");
    assert!(
        png.exists(),
        "no screenshot: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read(png).unwrap()
}

/// The document as the browser parsed it (`--dump-dom`).
fn dom(url: &str) -> String {
    let out = Command::new(browser())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--dump-dom",
            url,
        ])
        .output()
        .expect("run the browser");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Checks that every element is closed in order (void elements and `/>` aside).
fn assert_well_formed(html: &str) {
    const VOID: [&str; 6] = ["meta", "br", "img", "input", "link", "hr"];
    let mut open: Vec<String> = Vec::new();
    let mut rest = html;
    while let Some(start) = rest.find('<') {
        let end = rest[start..].find('>').expect("a tag that never closes") + start;
        let tag = &rest[start + 1..end];
        rest = &rest[end + 1..];
        if tag.starts_with('!') || tag.starts_with('?') {
            continue;
        }
        let name: String = tag
            .trim_start_matches('/')
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
            .collect::<String>()
            .to_ascii_lowercase();
        if let Some(closing) = tag.strip_prefix('/') {
            let closing = closing.trim().to_ascii_lowercase();
            assert_eq!(
                open.pop().as_deref(),
                Some(closing.as_str()),
                "mismatched </{closing}>"
            );
        } else if !tag.ends_with('/') && !VOID.contains(&name.as_str()) {
            open.push(name);
        }
    }
    assert!(open.is_empty(), "unclosed: {open:?}");
}

/// The first column of a query over the input as text.
async fn column(ctx: &SessionContext, sql: &str) -> Vec<String> {
    let mut out = Vec::new();
    for b in crate::support::query(ctx, sql).await {
        use datafusion::arrow::array::{Array, AsArray};
        let c = datafusion::arrow::compute::cast(
            b.column(0),
            &datafusion::arrow::datatypes::DataType::Utf8,
        )
        .unwrap();
        let c = c.as_string::<i32>();
        out.extend(
            (0..b.num_rows())
                .filter(|r| c.is_valid(*r))
                .map(|r| c.value(r).to_string()),
        );
    }
    out
}

#[tokio::test]
async fn the_night_publishes_a_report_a_browser_renders_without_personal_data() {
    let (out, conf, shots) = (temp(), temp(), temp());
    let config = conf.path().join("persona.toml");
    std::fs::write(
        &config,
        "[[experiments]]\nkey = \"winback\"\nstart = \"2026-11-10\"\n\
         arms = [{ name = \"control\", weight = 0.5 }, { name = \"offer\", weight = 0.5 }]\n\
         [[audiences]]\nname = \"likely\"\nwhere = \"decile <= 3\"\nholdout_share = 0.1\n",
    )
    .unwrap();
    let (input, output) = (tiny_input().to_str().unwrap(), out.path().to_str().unwrap());
    let config = config.to_str().unwrap();
    // Two nights: the second compares its segments with the first's and draws two nights of
    // evaluation.
    ok(&run_at(
        input,
        output,
        "2026-11-21",
        &["--config", config],
        &[],
    ));
    let stdout = ok(&run_at(input, output, DATE, &["--config", config], &[]));
    let folder = published_folder(out.path(), "report", DATE);
    let page = folder.join("index.html");
    assert!(
        stdout.contains(&format!("Report: {}", page.display())),
        "the summary names the report:\n{stdout}"
    );
    assert!(folder.join("_SUCCESS").exists());
    let html = std::fs::read_to_string(&page).unwrap();

    assert_well_formed(&html);
    for chart in persona_jobs::report_page::CHARTS {
        assert!(
            html.contains(&format!("<figure id=\"{chart}\"")),
            "{chart} missing"
        );
    }
    assert!(html.contains("Where last night&#39;s customers are tonight"));
    // Nothing fetched when it is opened: no script, no stylesheet or image by address (SVG's
    // namespace names aside, which are names, not requests).
    let addresses = html
        .replace("xmlns=\"http://www.w3.org/2000/svg\"", "")
        .replace("xmlns:xlink=\"http://www.w3.org/1999/xlink\"", "");
    for fetch in ["<script", "<link", "src=", "url(", "http://", "https://"] {
        assert!(
            !addresses.contains(fetch),
            "the report fetches something: {fetch}"
        );
    }

    // Aggregates only: no customer id, e-mail, IP or cookie of the data is in the page.
    let ctx = SessionContext::new();
    register_partition(&ctx, "profiles", out.path(), "user_profiles", DATE).await;
    for source in ["crm_customers", "web_logs"] {
        ctx.register_parquet(
            source,
            &format!("{}/{source}/", tiny_input().display()),
            Default::default(),
        )
        .await
        .unwrap();
    }
    let mut personal = column(&ctx, "SELECT customer_id FROM profiles").await;
    personal.extend(column(&ctx, "SELECT email FROM crm_customers").await);
    personal.extend(column(&ctx, "SELECT DISTINCT ip FROM web_logs").await);
    personal.extend(column(&ctx, "SELECT DISTINCT cookie_id FROM web_logs").await);
    assert!(personal.len() > 1000, "{}", personal.len());
    let leaked: Vec<&String> = personal
        .iter()
        .filter(|p| html.contains(p.as_str()))
        .collect();
    assert!(leaked.is_empty(), "personal data in the report: {leaked:?}");
    // Nothing shaped like an address either (`NDCG@10` and CSS's `@media` are not).
    for (at, _) in html.match_indices('@') {
        let domain: String = html[at + 1..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '.' || *c == '-')
            .collect();
        assert!(
            !domain.trim_end_matches('.').contains('.'),
            "an e-mail address in the report: …@{domain}"
        );
    }

    // A real browser parses every chart and paints the page: its screenshot is far larger than
    // a blank page's at the same size (PNG compresses a blank page to almost nothing).
    let url = format!("file://{}", page.display());
    let parsed = dom(&url);
    for chart in persona_jobs::report_page::CHARTS {
        assert!(
            parsed.contains(&format!("id=\"{chart}\"")),
            "the browser lacks {chart}"
        );
    }
    assert!(parsed.matches("<svg").count() >= persona_jobs::report_page::CHARTS.len());
    let painted = screenshot(&url, 3000, shots.path(), "report.png");
    let blank = screenshot("about:blank", 3000, shots.path(), "blank.png");
    assert!(
        painted.len() > 10 * blank.len(),
        "the report's screenshot ({} bytes) looks blank (a blank page: {} bytes)",
        painted.len(),
        blank.len()
    );

    // `persona report` rebuilds the same page from what the night published.
    let rebuilt = shots.path().join("rebuilt.html");
    let printed = ok(&persona(
        &[
            "report",
            "--output",
            output,
            "--to",
            rebuilt.to_str().unwrap(),
        ],
        &[],
    ));
    assert_eq!(printed.trim(), rebuilt.display().to_string());
    assert_eq!(std::fs::read_to_string(&rebuilt).unwrap(), html);
}
