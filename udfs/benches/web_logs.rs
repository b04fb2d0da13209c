//! The web-log functions (`is_crawler`, `url_page_type`, `url_item_id`) and `unit_hash`, on
//! one 8192-row batch of realistic user agents and URLs.
//!
//! ```sh
//! cargo bench -p persona-udfs --bench web_logs
//! ```

#![expect(missing_docs, reason = "a bench harness")]

mod support;

use std::hint::black_box;
use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Array, StringArray};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use persona_udfs::scalar::{IsCrawler, UnitHash, UrlItemId, UrlPageType};
use support::{Numbers, ROWS, invoke};

fn user_agents(n: &mut Numbers) -> ArrayRef {
    const AGENTS: [&str; 6] = [
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
        "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
        "Mozilla/5.0 (X11; Linux x86_64; rv:127.0) Gecko/20100101 Firefox/127.0",
        "python-requests/2.32.3",
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15",
    ];
    Arc::new(StringArray::from_iter_values(
        (0..ROWS).map(|_| AGENTS[n.below(AGENTS.len())]),
    ))
}

fn urls(n: &mut Numbers) -> ArrayRef {
    Arc::new(StringArray::from_iter_values((0..ROWS).map(|_| {
        let item = n.below(10_000);
        match n.below(6) {
            0 => format!("/product/I{item:06}?utm_source=email&utm_medium=newsletter"),
            1 => format!("https://shop.example/product/I{item:06}"),
            2 => format!("/cart/add?item=I{item:06}&qty=1"),
            3 => "/category/shoes?page=2".to_string(),
            4 => "/search?q=red+shoes".to_string(),
            _ => "/".to_string(),
        }
    })))
}

fn web_log_functions(c: &mut Criterion) {
    let mut n = Numbers(1);
    let agents = [user_agents(&mut n)];
    let urls = [urls(&mut n)];
    let mut group = c.benchmark_group("web_logs");
    group.throughput(Throughput::Elements(ROWS as u64));
    group.bench_function("is_crawler", |b| {
        b.iter(|| invoke(&IsCrawler::new(), black_box(&agents)))
    });
    group.bench_function("url_page_type", |b| {
        b.iter(|| invoke(&UrlPageType::new(), black_box(&urls)))
    });
    group.bench_function("url_item_id", |b| {
        b.iter(|| invoke(&UrlItemId::new(), black_box(&urls)))
    });
    let hashed = [
        Arc::new(Int64Array::from(vec![42i64; ROWS])) as ArrayRef,
        Arc::clone(&urls[0]),
    ];
    group.bench_function("unit_hash", |b| {
        b.iter(|| invoke(&UnitHash::new(), black_box(&hashed)))
    });
    group.finish();
}

criterion_group!(benches, web_log_functions);
criterion_main!(benches);
