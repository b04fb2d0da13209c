//! One whole Lloyd pass (`kmeans_step`) over 2M points × 30 features, k = 8, on one thread:
//! 480 MB of coordinates, far larger than the caches, as a fit's points are. The per-batch
//! `kmeans` bench measures the kernel with its batch in cache; this one adds the memory
//! traffic of a real pass (the figure to compare with `scripts/bench-kmeans.sh`).
//!
//! Two layouts of the same 8192-row batches: `aliased`, each column in its own allocation a
//! whole number of pages from the others (as Parquet decoding leaves them), and `staggered`,
//! as the local engine materialises a fit's points ([`stagger_float_columns`]); and the
//! staggered layout with the points stored in single precision (`staggered_f32`, 240 MB), as
//! the prepared points are.
//!
//! ```sh
//! cargo bench -p persona-udfs --bench kmeans_pass
//! ```

#![expect(missing_docs, clippy::unwrap_used, reason = "a bench harness")]

mod support;

use std::hint::black_box;
use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array, RecordBatch};
use arrow::buffer::{Buffer, ScalarBuffer};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use datafusion::logical_expr::AggregateUDFImpl;
use persona_udfs::aggregate::KMeansStep;
use persona_udfs::ml::Centroids;
use persona_udfs::ml::layout::stagger_float_columns;
use support::{AggregateInputs, Numbers, ROWS};

const FEATURES: usize = 30;
const K: usize = 8;
const BATCHES: usize = 244;

/// A column whose values start on a 64 KiB boundary, as the allocator places columns decoded
/// from Parquet (within a few bytes).
fn aliased_column(values: impl Iterator<Item = f64>) -> ArrayRef {
    const ALIGN: usize = 65536 / 8;
    let padded: Vec<f64> = std::iter::repeat_n(0.0, ALIGN).chain(values).collect();
    let buffer = Buffer::from_vec(padded);
    let skip = (ALIGN - (buffer.as_ptr() as usize % 65536) / 8) % ALIGN;
    Arc::new(Float64Array::new(
        ScalarBuffer::new(buffer, skip, ROWS),
        None,
    ))
}

fn kmeans_pass(c: &mut Criterion) {
    let mut n = Numbers(3);
    let aliased: Vec<RecordBatch> = (0..BATCHES)
        .map(|_| {
            let columns: Vec<(String, ArrayRef)> = (0..FEATURES)
                .map(|j| {
                    let values = (0..ROWS).map(|_| n.unit() * 4.0 - 2.0).collect::<Vec<_>>();
                    (format!("f{j}"), aliased_column(values.into_iter()))
                })
                .collect();
            RecordBatch::try_from_iter(columns).unwrap()
        })
        .collect();
    let staggered: Vec<RecordBatch> = aliased
        .iter()
        .map(|b| stagger_float_columns(b).unwrap())
        .collect();
    let single: Vec<RecordBatch> = aliased
        .iter()
        .map(|b| {
            let columns: Vec<(String, ArrayRef)> = b
                .schema()
                .fields()
                .iter()
                .zip(b.columns())
                .map(|(f, c)| {
                    let c = arrow::compute::cast(c, &arrow::datatypes::DataType::Float32);
                    (f.name().clone(), c.unwrap())
                })
                .collect();
            stagger_float_columns(&RecordBatch::try_from_iter(columns).unwrap()).unwrap()
        })
        .collect();
    let values = (0..K * FEATURES).map(|_| n.unit() * 2.0 - 1.0).collect();
    let step = KMeansStep::new(Centroids::new(K, FEATURES, values).unwrap());
    let inputs = AggregateInputs::new(&step, aliased[0].columns());
    let mut group = c.benchmark_group("kmeans_pass");
    group.sample_size(10);
    group.throughput(Throughput::Elements((BATCHES * ROWS) as u64));
    for (name, batches) in [
        ("aliased", &aliased),
        ("staggered", &staggered),
        ("staggered_f32", &single),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| {
                let mut acc = step.accumulator(inputs.args()).unwrap();
                for batch in batches {
                    acc.update_batch(black_box(batch.columns())).unwrap();
                }
                acc.evaluate().unwrap()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, kmeans_pass);
criterion_main!(benches);
