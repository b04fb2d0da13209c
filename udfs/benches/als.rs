//! The ALS functions at the issue's configuration (rank 64, conjugate gradient with 3 steps,
//! alpha 10, λ 0.1), each on one 8192-row batch: a customer half-iteration (`als_solve`), an
//! item half-iteration as a cluster runs it (`als_solve_gathered`), `XᵀX` of a block of
//! customers (`als_gram`) and top-10 scoring over a 10k-item catalogue (`als_top_n`).
//!
//! ```sh
//! cargo bench -p persona-udfs --bench als
//! ```

#![expect(missing_docs, clippy::unwrap_used, reason = "a bench harness")]

mod support;

use std::hint::black_box;
use std::sync::Arc;

use arrow::array::{ArrayRef, Float32Array, Int32Array};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use datafusion::logical_expr::{AggregateUDFImpl, EmitTo};
use persona_udfs::aggregate::{AlsGram, AlsSolveGathered};
use persona_udfs::ml::{AlsModelSide, Factors, Solver};
use persona_udfs::scalar::{AlsSolve, AlsTopN, TopNModel};
use support::{AggregateInputs, Numbers, ROWS, accumulate, invoke, list_of};

const RANK: usize = 64;
/// Mean interactions per customer (uniform in 1..2·PER_USER).
const PER_USER: usize = 25;
const ITEMS: usize = 10_000;

fn factors(n: &mut Numbers, rows: usize) -> Factors {
    let values = (0..rows * RANK)
        .map(|_| (n.unit() as f32 - 0.5) * 0.2)
        .collect();
    Factors::new(rows, RANK, values).unwrap()
}

/// One batch of customers as the customer half-iteration reads them: own index, items (sorted),
/// weights.
fn customer_rows(n: &mut Numbers) -> Vec<ArrayRef> {
    let lengths: Vec<usize> = (0..ROWS).map(|_| 1 + n.below(2 * PER_USER - 1)).collect();
    let total: usize = lengths.iter().sum();
    let mut items = Vec::with_capacity(total);
    for &len in &lengths {
        let mut row: Vec<i32> = (0..len).map(|_| n.below(ITEMS) as i32).collect();
        row.sort_unstable();
        items.extend(row);
    }
    let weights = Float32Array::from_iter_values((0..total).map(|_| 1.0 + n.below(5) as f32));
    vec![
        Arc::new(Int32Array::from_iter_values(0..ROWS as i32)),
        list_of(Int32Array::from(items), &lengths),
        list_of(weights, &lengths),
    ]
}

fn side(other: Factors, previous: Factors) -> AlsModelSide {
    AlsModelSide {
        gram: Arc::new(Factors::new(RANK, RANK, other.gram()).unwrap()),
        other: Arc::new(other),
        previous: Arc::new(previous),
        alpha_bits: 10.0f32.to_bits(),
        lambda_bits: 0.1f32.to_bits(),
        weighted_lambda: false,
        solver: Solver::ConjugateGradient { steps: 3 },
        explicit: false,
    }
}

fn als_functions(c: &mut Criterion) {
    let mut n = Numbers(3);
    let items = factors(&mut n, ITEMS);
    let users = factors(&mut n, ROWS);
    let rows = customer_rows(&mut n);
    let mut group = c.benchmark_group("als");
    group.throughput(Throughput::Elements(ROWS as u64));

    let solve = AlsSolve::new(side(items.clone(), users.clone()));
    group.bench_function("als_solve", |b| b.iter(|| invoke(&solve, black_box(&rows))));

    // The batch's interactions gathered into their items' groups, each row carrying its
    // customer's factors (from the join), then every group solved.
    let own: Vec<i32> = (0..ROWS).map(|_| n.below(ITEMS) as i32).collect();
    let other: Vec<i32> = (0..ROWS).map(|_| n.below(ROWS) as i32).collect();
    let user_factors: Vec<f32> = other
        .iter()
        .flat_map(|&u| users.row(u as usize).to_vec())
        .collect();
    let gathered_rows: Vec<ArrayRef> = vec![
        Arc::new(Int32Array::from(own.clone())),
        Arc::new(Int32Array::from(other)),
        Arc::new(Float32Array::from_iter_values(
            (0..ROWS).map(|_| 1.0 + n.below(5) as f32),
        )),
        list_of(Float32Array::from(user_factors), &[RANK; ROWS]),
    ];
    let group_indices: Vec<usize> = own.iter().map(|&i| i as usize).collect();
    let gathered = AlsSolveGathered::new(side(users.clone(), items.clone()));
    let inputs = AggregateInputs::new(&gathered, &gathered_rows);
    group.bench_function("als_solve_gathered", |b| {
        b.iter(|| {
            let mut acc = gathered.create_groups_accumulator(inputs.args()).unwrap();
            acc.update_batch(black_box(&gathered_rows), &group_indices, None, ITEMS)
                .unwrap();
            acc.evaluate(EmitTo::All).unwrap()
        })
    });

    let gram_rows: Vec<ArrayRef> = vec![
        Arc::new(Int32Array::from_iter_values(0..ROWS as i32)),
        list_of(Float32Array::from(users.values().to_vec()), &[RANK; ROWS]),
    ];
    let gram = AlsGram::default();
    let inputs = AggregateInputs::new(&gram, &gram_rows);
    group.bench_function("als_gram", |b| {
        b.iter(|| accumulate(&gram, &inputs, black_box(&gram_rows)))
    });

    let top_n = AlsTopN::new(TopNModel {
        items: Arc::new(items),
        allowed: Arc::new(vec![true; ITEMS]),
        n: 10,
    });
    let top_n_rows = [Arc::clone(&gram_rows[1]), Arc::clone(&rows[1])];
    group.sample_size(10);
    group.bench_function("als_top_n", |b| {
        b.iter(|| invoke(&top_n, black_box(&top_n_rows)))
    });
    group.finish();
}

criterion_group!(benches, als_functions);
criterion_main!(benches);
