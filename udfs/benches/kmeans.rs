//! One K-Means pass over one 8192-row batch of 30 standardised features with k = 8: the
//! assignment (`kmeans_assign`, the segments output) and the Lloyd step (`kmeans_step`, one
//! iteration of the fit), with the batch's columns laid out as the local engine materialises
//! a fit's points (`stagger_float_columns`). The batch (1.9 MB) is in cache: `kmeans_pass`
//! measures a whole pass from memory.
//!
//! ```sh
//! cargo bench -p persona-udfs --bench kmeans
//! ```

#![expect(missing_docs, clippy::unwrap_used, reason = "a bench harness")]

mod support;

use std::hint::black_box;
use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array, RecordBatch};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use persona_udfs::aggregate::KMeansStep;
use persona_udfs::ml::Centroids;
use persona_udfs::ml::layout::stagger_float_columns;
use persona_udfs::scalar::KMeansAssign;
use support::{AggregateInputs, Numbers, ROWS, accumulate, invoke};

const FEATURES: usize = 30;
const K: usize = 8;

fn kmeans_functions(c: &mut Criterion) {
    let mut n = Numbers(2);
    let columns: Vec<(String, ArrayRef)> = (0..FEATURES)
        .map(|j| {
            let values = Float64Array::from_iter_values((0..ROWS).map(|_| n.unit() * 4.0 - 2.0));
            (format!("f{j}"), Arc::new(values) as ArrayRef)
        })
        .collect();
    // Laid out as the local engine materialises a fit's points.
    let batch = stagger_float_columns(&RecordBatch::try_from_iter(columns).unwrap()).unwrap();
    let points: Vec<ArrayRef> = batch.columns().to_vec();
    let values = (0..K * FEATURES).map(|_| n.unit() * 2.0 - 1.0).collect();
    let centroids = Centroids::new(K, FEATURES, values).unwrap();

    let mut group = c.benchmark_group("kmeans");
    group.throughput(Throughput::Elements(ROWS as u64));
    let assign = KMeansAssign::new(centroids.clone());
    group.bench_function("kmeans_assign", |b| {
        b.iter(|| invoke(&assign, black_box(&points)))
    });
    let step = KMeansStep::new(centroids);
    let inputs = AggregateInputs::new(&step, &points);
    group.bench_function("kmeans_step", |b| {
        b.iter(|| accumulate(&step, &inputs, black_box(&points)))
    });
    group.finish();
}

criterion_group!(benches, kmeans_functions);
criterion_main!(benches);
