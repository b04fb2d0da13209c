//! `als_half_step(own_idx, other_idx, weight)`: one side of one implicit-ALS iteration, grouped
//! by the side being solved.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::{DataType, Field, FieldRef, Float32Type, Int32Type};
use datafusion::common::{Result, ScalarValue, exec_err};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::format_state_name;
use datafusion::logical_expr::{Accumulator, AggregateUDFImpl, Signature, Volatility};

use crate::lists::{f32_list_scalar, i32_list_scalar, list_type};
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
        let rank = self.side.other.rank();
        let previous = self
            .own
            .and_then(|o| usize::try_from(o).ok())
            .map(|o| self.side.previous.row(o));
        let mut x = match previous {
            Some(p) if p.len() == rank => p.to_vec(),
            _ => vec![0.0; rank],
        };
        // Partial states arrive in any order; solving over the interactions sorted by index makes
        // every floating-point sum, and so the factors, independent of that order.
        let mut pairs: Vec<(i32, f32)> = self
            .items
            .iter()
            .copied()
            .zip(self.weights.iter().copied())
            .collect();
        pairs.sort_unstable_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)));
        let (items, weights): (Vec<i32>, Vec<f32>) = pairs.into_iter().unzip();
        self.side.solve(&mut x, &items, &weights);
        Ok(f32_list_scalar(x))
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
        assert_eq!(merged.evaluate().unwrap(), one.evaluate().unwrap());
    }
}
