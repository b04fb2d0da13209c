//! `als_half_step(own_idx, other_idx, weight)`: one side of one implicit-ALS iteration, grouped
//! by the side being solved.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, Float32Array, Int32Array};
use arrow::datatypes::{DataType, Field, FieldRef, Float32Type, Int32Type};
use datafusion::common::{Result, ScalarValue, exec_err};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::format_state_name;
use datafusion::logical_expr::{
    Accumulator, AggregateUDFImpl, EmitTo, GroupsAccumulator, Signature, Volatility,
};

use crate::lists::{f32_list_scalar, i32_list_scalar, list_of_rows, list_type};
use crate::ml::AlsModelSide;

/// `als_half_step(own_idx, other_idx, weight) -> list<float>`: used as
/// `GROUP BY own_idx`, it collects the group's interactions and solves the group's new factor
/// vector against the other side's factors carried by this instance (conjugate gradient, warm
/// started from the previous factors).
///
/// The state is the interaction list itself (indices and weights), which merges by
/// concatenation, so partial aggregates on different executors combine exactly.
///
/// ```sql
/// SELECT user_idx, als_half_step(user_idx, item_idx, weight) FROM interactions GROUP BY user_idx;
/// ```
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct AlsHalfStep {
    signature: Signature,
    side: Arc<AlsModelSide>,
}

impl Default for AlsHalfStep {
    fn default() -> Self {
        Self::new(AlsModelSide::default())
    }
}

impl AlsHalfStep {
    /// A half-step that solves against `side`.
    pub fn new(side: AlsModelSide) -> Self {
        Self {
            signature: Signature::any(3, Volatility::Immutable),
            side: Arc::new(side),
        }
    }
}

impl AlsHalfStep {
    /// The fixed side and hyper-parameters this instance solves against.
    pub fn side(&self) -> &AlsModelSide {
        &self.side
    }
}

impl AggregateUDFImpl for AlsHalfStep {
    fn name(&self) -> &str {
        "als_half_step"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(list_type(DataType::Float32))
    }
    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(vec![
            Arc::new(Field::new(
                format_state_name(args.name, "own"),
                DataType::Int32,
                true,
            )),
            Arc::new(Field::new(
                format_state_name(args.name, "items"),
                list_type(DataType::Int32),
                true,
            )),
            Arc::new(Field::new(
                format_state_name(args.name, "weights"),
                list_type(DataType::Float32),
                true,
            )),
        ])
    }
    fn groups_accumulator_supported(&self, _args: AccumulatorArgs) -> bool {
        true
    }

    fn create_groups_accumulator(
        &self,
        _args: AccumulatorArgs,
    ) -> Result<Box<dyn GroupsAccumulator>> {
        if self.side.other.rank() == 0 {
            return exec_err!(
                "als_half_step has no factors: it is built by the recommendations stage, not called from SQL"
            );
        }
        Ok(Box::new(AlsGroups {
            side: Arc::clone(&self.side),
            own: vec![],
            pairs: vec![],
        }))
    }

    fn accumulator(&self, _args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        if self.side.other.rank() == 0 {
            return exec_err!(
                "als_half_step has no factors: it is built by the recommendations stage, not called from SQL"
            );
        }
        Ok(Box::new(AlsHalfStepAccumulator {
            side: Arc::clone(&self.side),
            own: None,
            items: vec![],
            weights: vec![],
        }))
    }
}

/// Solves one row: warm-started from its previous factors, over its interactions sorted by index.
/// Partial states arrive in any order; sorting makes every floating-point sum, and so the
/// factors, independent of that order (local and distributed runs agree bit for bit).
fn solve_row(side: &AlsModelSide, own: Option<i32>, mut pairs: Vec<(i32, f32)>) -> Vec<f32> {
    let rank = side.other.rank();
    let previous = own
        .and_then(|o| usize::try_from(o).ok())
        .map(|o| side.previous.row(o));
    let mut x = match previous {
        Some(p) if p.len() == rank => p.to_vec(),
        _ => vec![0.0; rank],
    };
    pairs.sort_unstable_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)));
    let (items, weights): (Vec<i32>, Vec<f32>) = pairs.into_iter().unzip();
    side.solve(&mut x, &items, &weights);
    x
}

/// The interactions of one group, collected until the solve.
#[derive(Debug)]
struct AlsHalfStepAccumulator {
    side: Arc<AlsModelSide>,
    own: Option<i32>,
    items: Vec<i32>,
    weights: Vec<f32>,
}

impl Accumulator for AlsHalfStepAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let [own, items, weights] = values else {
            return exec_err!("als_half_step: expected 3 arguments, got {}", values.len());
        };
        let own = crate::args::int32("als_half_step", own)?;
        let items = crate::args::int32("als_half_step", items)?;
        let weights = crate::args::float64("als_half_step", weights)?;
        for row in 0..items.len() {
            if self.own.is_none() && own.is_valid(row) {
                self.own = Some(own.value(row));
            }
            if items.is_valid(row) && weights.is_valid(row) {
                self.items.push(items.value(row));
                self.weights.push(weights.value(row) as f32);
            }
        }
        Ok(())
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let pairs: Vec<(i32, f32)> = self
            .items
            .iter()
            .copied()
            .zip(self.weights.iter().copied())
            .collect();
        Ok(f32_list_scalar(solve_row(&self.side, self.own, pairs)))
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self) + self.items.capacity() * 4 + self.weights.capacity() * 4
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(vec![
            ScalarValue::Int32(self.own),
            i32_list_scalar(std::mem::take(&mut self.items)),
            f32_list_scalar(std::mem::take(&mut self.weights)),
        ])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let [own, items, weights] = states else {
            return exec_err!(
                "als_half_step: expected 3 state columns, got {}",
                states.len()
            );
        };
        let own = own.as_primitive::<Int32Type>();
        let (items, weights) = (items.as_list::<i32>(), weights.as_list::<i32>());
        for row in 0..items.len() {
            if self.own.is_none() && own.is_valid(row) {
                self.own = Some(own.value(row));
            }
            if items.is_null(row) || weights.is_null(row) {
                continue;
            }
            let (i, w) = (items.value(row), weights.value(row));
            self.items
                .extend_from_slice(i.as_primitive::<Int32Type>().values());
            self.weights
                .extend_from_slice(w.as_primitive::<Float32Type>().values());
        }
        Ok(())
    }
}

/// All groups of one partition at once: DataFusion's fast path for grouped aggregation. Each
/// group's interactions are kept as plain vectors; states are built as whole list arrays.
struct AlsGroups {
    side: Arc<AlsModelSide>,
    own: Vec<Option<i32>>,
    pairs: Vec<Vec<(i32, f32)>>,
}

impl AlsGroups {
    fn resize(&mut self, groups: usize) {
        if self.own.len() < groups {
            self.own.resize(groups, None);
            self.pairs.resize_with(groups, Vec::new);
        }
    }
}

impl GroupsAccumulator for AlsGroups {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        let [own, items, weights] = values else {
            return exec_err!("als_half_step: expected 3 arguments, got {}", values.len());
        };
        self.resize(total_num_groups);
        let own = crate::args::int32("als_half_step", own)?;
        let items = crate::args::int32("als_half_step", items)?;
        let weights = crate::args::float64("als_half_step", weights)?;
        for (row, &g) in group_indices.iter().enumerate() {
            if opt_filter.is_some_and(|f| !f.value(row)) {
                continue;
            }
            if self.own[g].is_none() && own.is_valid(row) {
                self.own[g] = Some(own.value(row));
            }
            if items.is_valid(row) && weights.is_valid(row) {
                self.pairs[g].push((items.value(row), weights.value(row) as f32));
            }
        }
        Ok(())
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        let own = emit_to.take_needed(&mut self.own);
        let pairs = emit_to.take_needed(&mut self.pairs);
        let solved: Vec<Vec<f32>> = own
            .into_iter()
            .zip(pairs)
            .map(|(o, p)| solve_row(&self.side, o, p))
            .collect();
        Ok(Arc::new(list_of_rows(&solved, DataType::Float32, |v| {
            Arc::new(Float32Array::from(v))
        })))
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        let own = emit_to.take_needed(&mut self.own);
        let pairs = emit_to.take_needed(&mut self.pairs);
        let items: Vec<Vec<i32>> = pairs
            .iter()
            .map(|p| p.iter().map(|x| x.0).collect())
            .collect();
        let weights: Vec<Vec<f32>> = pairs
            .iter()
            .map(|p| p.iter().map(|x| x.1).collect())
            .collect();
        Ok(vec![
            Arc::new(Int32Array::from(own)),
            Arc::new(list_of_rows(&items, DataType::Int32, |v| {
                Arc::new(Int32Array::from(v))
            })),
            Arc::new(list_of_rows(&weights, DataType::Float32, |v| {
                Arc::new(Float32Array::from(v))
            })),
        ])
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> Result<()> {
        let [own, items, weights] = values else {
            return exec_err!(
                "als_half_step: expected 3 state columns, got {}",
                values.len()
            );
        };
        self.resize(total_num_groups);
        let own = own.as_primitive::<Int32Type>();
        let (items, weights) = (items.as_list::<i32>(), weights.as_list::<i32>());
        let item_values = items.values().as_primitive::<Int32Type>();
        let weight_values = weights.values().as_primitive::<Float32Type>();
        for (row, &g) in group_indices.iter().enumerate() {
            if self.own[g].is_none() && own.is_valid(row) {
                self.own[g] = Some(own.value(row));
            }
            if items.is_null(row) || weights.is_null(row) {
                continue;
            }
            let (a, b) = (
                items.value_offsets()[row] as usize,
                items.value_offsets()[row + 1] as usize,
            );
            let (c, d) = (
                weights.value_offsets()[row] as usize,
                weights.value_offsets()[row + 1] as usize,
            );
            if b - a != d - c {
                return exec_err!(
                    "als_half_step: state row with {} items but {} weights",
                    b - a,
                    d - c
                );
            }
            let pairs = item_values.values()[a..b]
                .iter()
                .copied()
                .zip(weight_values.values()[c..d].iter().copied());
            self.pairs[g].extend(pairs);
        }
        Ok(())
    }

    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> Result<Vec<ArrayRef>> {
        let [own, items, weights] = values else {
            return exec_err!("als_half_step: expected 3 arguments, got {}", values.len());
        };
        let own = crate::args::int32("als_half_step", own)?;
        let items = crate::args::int32("als_half_step", items)?;
        let weights = crate::args::float64("als_half_step", weights)?;
        let keep = |row: usize| {
            opt_filter.is_none_or(|f| f.value(row)) && items.is_valid(row) && weights.is_valid(row)
        };
        let item_rows: Vec<Vec<i32>> = (0..items.len())
            .map(|r| {
                if keep(r) {
                    vec![items.value(r)]
                } else {
                    vec![]
                }
            })
            .collect();
        let weight_rows: Vec<Vec<f32>> = (0..items.len())
            .map(|r| {
                if keep(r) {
                    vec![weights.value(r) as f32]
                } else {
                    vec![]
                }
            })
            .collect();
        Ok(vec![
            Arc::new(own),
            Arc::new(list_of_rows(&item_rows, DataType::Int32, |v| {
                Arc::new(Int32Array::from(v))
            })),
            Arc::new(list_of_rows(&weight_rows, DataType::Float32, |v| {
                Arc::new(Float32Array::from(v))
            })),
        ])
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self)
            + self.own.capacity() * 8
            + self
                .pairs
                .iter()
                .map(|p| p.capacity() * 8 + 24)
                .sum::<usize>()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic, reason = "tests fail by panicking")]
mod tests {
    use arrow::array::{Float64Array, Int32Array};

    use super::*;
    use crate::ml::Factors;

    fn side() -> AlsModelSide {
        let other = Factors::new(3, 2, vec![1.0, 0.0, 0.0, 1.0, 0.5, 0.5]).unwrap();
        let gram = Factors::new(2, 2, other.gram()).unwrap();
        AlsModelSide {
            other: Arc::new(other),
            gram: Arc::new(gram),
            previous: Arc::new(Factors::zeros(1, 2)),
            alpha_bits: 1.0f32.to_bits(),
            lambda_bits: 0.1f32.to_bits(),
            weighted_lambda: false,
            cg_steps: 2,
        }
    }

    #[test]
    fn split_then_merge_equals_one_pass() {
        let own: ArrayRef = Arc::new(Int32Array::from(vec![0, 0, 0]));
        let items: ArrayRef = Arc::new(Int32Array::from(vec![0, 2, 1]));
        let weights: ArrayRef = Arc::new(Float64Array::from(vec![1.0, 5.0, 3.0]));
        let new = || AlsHalfStepAccumulator {
            side: Arc::new(side()),
            own: None,
            items: vec![],
            weights: vec![],
        };
        let mut one = new();
        one.update_batch(&[Arc::clone(&own), Arc::clone(&items), Arc::clone(&weights)])
            .unwrap();
        let (mut a, mut b) = (new(), new());
        a.update_batch(&[own.slice(0, 1), items.slice(0, 1), weights.slice(0, 1)])
            .unwrap();
        b.update_batch(&[own.slice(1, 2), items.slice(1, 2), weights.slice(1, 2)])
            .unwrap();
        let (sa, sb) = (a.state().unwrap(), b.state().unwrap());
        let states: Vec<ArrayRef> = (0..3)
            .map(|c| ScalarValue::iter_to_array(vec![sa[c].clone(), sb[c].clone()]).unwrap())
            .collect();
        let mut merged = new();
        merged.merge_batch(&states).unwrap();
        let expected = one.evaluate().unwrap();
        assert_eq!(merged.evaluate().unwrap(), expected);

        // The grouped path, split across two partial accumulators (one through
        // convert_to_state, as skipped partial aggregation does), gives the same factors.
        let groups = || AlsGroups {
            side: Arc::new(side()),
            own: vec![],
            pairs: vec![],
        };
        let mut a = groups();
        a.update_batch(
            &[own.slice(0, 2), items.slice(0, 2), weights.slice(0, 2)],
            &[0, 0],
            None,
            1,
        )
        .unwrap();
        let state_a = a.state(EmitTo::All).unwrap();
        let state_b = groups()
            .convert_to_state(
                &[own.slice(2, 1), items.slice(2, 1), weights.slice(2, 1)],
                None,
            )
            .unwrap();
        let mut final_acc = groups();
        final_acc.merge_batch(&state_b, &[0], 1).unwrap();
        final_acc.merge_batch(&state_a, &[0], 1).unwrap();
        let out = final_acc.evaluate(EmitTo::All).unwrap();
        assert_eq!(ScalarValue::try_from_array(&out, 0).unwrap(), expected);
    }
}
