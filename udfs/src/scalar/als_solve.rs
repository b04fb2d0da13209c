//! `als_solve(own_idx, items, weights [, previous])`: one row of one implicit-ALS
//! half-iteration.

use std::sync::{Arc, LazyLock};

use arrow::array::{Array, ArrayRef, AsArray, Float32Array, Float64Array, StructArray};
use arrow::datatypes::{DataType, Field, Fields, Float32Type, Int32Type};
use datafusion::common::{Result, exec_err};
use datafusion::logical_expr::Documentation;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, TypeSignature, Volatility,
};

use crate::lists::{list_type, uniform_list};
use crate::ml::{AlsModelSide, SolveScratch};

/// `als_solve(own_idx int, items list<int>, weights list<float>) -> struct<factors list<float>,
/// loss double>`: the new factor vector of one row (a customer, or an item) given all of its interactions, solved against the
/// other side's factors that this instance carries, warm-started from the row's previous
/// factors, and the row's share of the loss at the new factors
/// ([`AlsModelSide::row_loss`]), so the fit can report the loss without another pass.
///
/// The interactions are grouped once per fit (one row per customer and one per item, with the
/// other side's indices and the weights as lists, sorted by index), so every half-iteration is a
/// plain projection over partitions: no shuffle, no aggregation state, and the same result
/// however the rows are partitioned, on one machine or across executors.
///
/// ```sql
/// SELECT user_idx, als_solve(user_idx, items, weights) AS factors FROM als_by_user;
/// ```
///
/// With a fourth argument, `previous list<float>` (or a previous result struct), the warm
/// start comes from that column instead of the factors the instance carries: the distributed
/// fit joins the previous customer factors from a work table, so that nothing the size of the
/// customer base travels inside the plan. A null or missing `previous` starts from zeros.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct AlsSolve {
    signature: Signature,
    side: Arc<AlsModelSide>,
}

impl Default for AlsSolve {
    fn default() -> Self {
        Self::new(AlsModelSide::default())
    }
}

impl AlsSolve {
    /// Solves against `side`.
    pub fn new(side: AlsModelSide) -> Self {
        Self {
            signature: Signature::one_of(
                vec![TypeSignature::Any(3), TypeSignature::Any(4)],
                Volatility::Immutable,
            ),
            side: Arc::new(side),
        }
    }

    /// The fields of the result struct (`factors`, `loss`), shared with `als_solve_gathered`.
    pub(crate) fn fields() -> Fields {
        Fields::from(vec![
            Field::new("factors", list_type(DataType::Float32), false),
            Field::new("loss", DataType::Float64, false),
        ])
    }

    /// The fixed side and hyper-parameters this instance solves against.
    pub fn side(&self) -> &AlsModelSide {
        &self.side
    }
}

impl ScalarUDFImpl for AlsSolve {
    fn documentation(&self) -> Option<&Documentation> {
        static DOC: LazyLock<Documentation> = LazyLock::new(|| {
            crate::docs::documentation(
                "`als_solve(own_idx int, items list<int>, weights list<float>) -> struct<factors list<float>, loss double>`: the new factor vector of one row (a customer, or an item) given all of its interactions, solved against the other side's factors that this instance carries, warm-started from the row's previous factors, and the row's share of the loss at the new factors (`AlsModelSide::row_loss`), so the fit can report the loss without another pass.  The interactions are grouped once per fit (one row per customer and one per item, with the other side's indices and the weights as lists, sorted by index), so every half-iteration is a plain projection over partitions: no shuffle, no aggregation state, and the same result however the rows are partitioned, on one machine or across executors.",
                "als_solve(own_idx int, items list<int>, weights list<float>)",
                "SELECT user_idx, als_solve(user_idx, items, weights) AS factors FROM als_by_user;",
            )
        });
        Some(&DOC)
    }

    fn name(&self) -> &str {
        "als_solve"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Struct(Self::fields()))
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rank = self.side.gram.rank();
        if rank == 0 {
            return exec_err!(
                "als_solve has no factors: it is built by the ALS fit, not called from SQL"
            );
        }
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let (own, items, weights, previous) = match arrays.as_slice() {
            [own, items, weights] => (own, items, weights, None),
            [own, items, weights, previous] => (own, items, weights, Some(previous)),
            _ => return exec_err!("als_solve: expected 3 or 4 arguments, got {}", arrays.len()),
        };
        let previous = previous
            .map(|p| crate::args::factor_list(self.name(), p))
            .transpose()?;
        let previous_values = previous
            .as_ref()
            .map(|p| p.values().as_primitive::<Float32Type>().values());
        let own = crate::args::int32(self.name(), own)?;
        let items = crate::args::int32_list(self.name(), items)?;
        let weights = crate::args::float32_list(self.name(), weights)?;
        let (item_values, weight_values) = (
            items.values().as_primitive::<Int32Type>().values(),
            weights.values().as_primitive::<Float32Type>().values(),
        );
        let mut out = vec![0.0f32; own.len() * rank];
        let mut losses = vec![0.0f64; own.len()];
        let mut scratch = SolveScratch::default();
        let mut sorted = SortedPairs::default();
        for (row, x) in out.chunks_exact_mut(rank).enumerate() {
            let previous = match (&previous, previous_values) {
                (Some(list), Some(values)) => Some(list).filter(|l| l.is_valid(row)).map(|l| {
                    let (p0, p1) = (l.value_offsets()[row], l.value_offsets()[row + 1]);
                    &values[p0 as usize..p1 as usize]
                }),
                _ => usize::try_from(own.value(row))
                    .ok()
                    .filter(|_| own.is_valid(row))
                    .map(|o| self.side.previous.row(o)),
            }
            .filter(|p| p.len() == rank);
            if let Some(p) = previous {
                x.copy_from_slice(p);
            }
            if items.is_null(row) || weights.is_null(row) {
                continue;
            }
            let (i0, i1) = (items.value_offsets()[row], items.value_offsets()[row + 1]);
            let (w0, w1) = (
                weights.value_offsets()[row],
                weights.value_offsets()[row + 1],
            );
            if i1 - i0 != w1 - w0 {
                return exec_err!(
                    "als_solve: row {row} has {} items but {} weights",
                    i1 - i0,
                    w1 - w0
                );
            }
            let (items, weights) = (
                &item_values[i0 as usize..i1 as usize],
                &weight_values[w0 as usize..w1 as usize],
            );
            let (items, weights) = sorted.by_index(items, weights);
            losses[row] = self.side.solve(x, items, weights, &mut scratch);
        }
        let rows = own.len();
        let factors = uniform_list(Arc::new(Float32Array::from(out)), rank, rows);
        let columns: Vec<ArrayRef> = vec![Arc::new(factors), Arc::new(Float64Array::from(losses))];
        Ok(ColumnarValue::Array(Arc::new(StructArray::new(
            Self::fields(),
            columns,
            None,
        ))))
    }
}

/// A row's interactions in index order. The lists arrive in whatever order the grouping saw
/// the rows (it depends on partitioning and timing); solving in index order makes every
/// floating-point sum, and so the factors, the same on every run, local or distributed.
#[derive(Debug, Default)]
struct SortedPairs {
    pairs: Vec<(i32, f32)>,
    items: Vec<i32>,
    weights: Vec<f32>,
}

impl SortedPairs {
    /// The pairs sorted by index (then weight), borrowed as they are when already sorted.
    fn by_index<'a>(&'a mut self, items: &'a [i32], weights: &'a [f32]) -> (&'a [i32], &'a [f32]) {
        let in_order = items
            .windows(2)
            .zip(weights.windows(2))
            .all(|(i, w)| i[0] < i[1] || (i[0] == i[1] && w[0].total_cmp(&w[1]).is_le()));
        if in_order {
            return (items, weights);
        }
        self.pairs.clear();
        self.pairs
            .extend(items.iter().copied().zip(weights.iter().copied()));
        self.pairs
            .sort_unstable_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)));
        self.items.clear();
        self.weights.clear();
        self.items.extend(self.pairs.iter().map(|p| p.0));
        self.weights.extend(self.pairs.iter().map(|p| p.1));
        (&self.items, &self.weights)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_are_solved_in_index_order_whatever_order_they_arrive_in() {
        let mut s = SortedPairs::default();
        let (items, weights) = s.by_index(&[3, 1, 2], &[0.3, 0.1, 0.2]);
        assert_eq!((items, weights), (&[1, 2, 3][..], &[0.1, 0.2, 0.3][..]));
        let (items, _) = s.by_index(&[1, 5], &[1.0, 1.0]);
        assert_eq!(items, &[1, 5]);
    }
}
