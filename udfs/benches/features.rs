//! The features stage's aggregate, `session_stats` (sessions and active days per customer), on
//! one 8192-row batch of event times spread over 400 customers (about 20 events each, as in
//! the medium data) in one grouped pass.
//!
//! ```sh
//! cargo bench -p persona-udfs --bench features
//! ```

#![expect(missing_docs, reason = "a bench harness")]

mod support;

use std::hint::black_box;
use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use datafusion::common::ScalarValue;
use persona_udfs::aggregate::SessionStats;
use support::{AggregateInputs, Numbers, ROWS, accumulate_groups};

const CUSTOMERS: usize = 400;

fn session_stats(c: &mut Criterion) {
    let mut n = Numbers(3);
    // A week of seconds, in no particular order (as a hash aggregate sees them).
    let times: ArrayRef = Arc::new(Float64Array::from_iter_values(
        (0..ROWS).map(|_| 1.76e9 + n.unit() * 7.0 * 86_400.0),
    ));
    let groups: Vec<usize> = (0..ROWS).map(|_| n.below(CUSTOMERS)).collect();
    let gap: ArrayRef = Arc::new(Float64Array::from(vec![1800.0; ROWS]));
    let columns = vec![times, gap];

    let stats = SessionStats::default();
    let inputs =
        AggregateInputs::new(&stats, &columns).with_constant(1, ScalarValue::Float64(Some(1800.0)));
    let mut group = c.benchmark_group("features");
    group.throughput(Throughput::Elements(ROWS as u64));
    group.bench_function("session_stats", |b| {
        b.iter(|| accumulate_groups(&stats, &inputs, black_box(&columns), &groups))
    });
    group.finish();
}

criterion_group!(benches, session_stats);
criterion_main!(benches);
