//! `sparse_dot(items_a, weights_a, items_b, weights_b)`: the dot product of two sparse vectors.

use std::sync::{Arc, LazyLock};

use arrow::array::{Array, AsArray, Float64Array, Float64Builder, ListArray};
use arrow::datatypes::{DataType, Float64Type, Int32Type};
use datafusion::common::{Result, exec_err};
use datafusion::logical_expr::Documentation;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

/// `sparse_dot(items_a, weights_a, items_b, weights_b) -> double`: Σ over the items both lists
/// hold of weight_a × weight_b, each vector given as its item indices (ascending, as
/// `array_agg(item ORDER BY item)` gives them) and its weights in the same order. The sum is
/// taken in item order, so it is the same on every engine; null when either vector is null.
///
/// The customer-to-customer model (`sql/16_customer_neighbour_rows.sql`) computes the exact
/// similarity of its candidate pairs with it: one row per pair, instead of one per pair and
/// shared item as a join would.
///
/// ```sql
/// SELECT sparse_dot([1, 4, 7], [2.0, 1.0, 3.0], [4, 7, 9], [5.0, 1.0, 1.0]); -- 8.0
/// ```
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct SparseDot {
    signature: Signature,
}

impl Default for SparseDot {
    fn default() -> Self {
        Self::new()
    }
}

impl SparseDot {
    /// Creates the function.
    pub fn new() -> Self {
        Self {
            signature: Signature::any(4, Volatility::Immutable),
        }
    }
}

/// The dot product of two sparse vectors whose indices ascend: a merge of the two lists.
pub fn sparse_dot(items_a: &[i32], weights_a: &[f64], items_b: &[i32], weights_b: &[f64]) -> f64 {
    let (mut i, mut j, mut sum) = (0, 0, 0.0);
    while i < items_a.len() && j < items_b.len() {
        match items_a[i].cmp(&items_b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                sum += weights_a[i] * weights_b[j];
                i += 1;
                j += 1;
            }
        }
    }
    sum
}

/// One row's vector: its indices and weights, checked to be as long as each other and
/// ascending.
fn vector<'a>(
    items: &'a ListArray,
    weights: &'a ListArray,
    row: usize,
) -> Result<Option<(&'a [i32], &'a [f64])>> {
    if items.is_null(row) || weights.is_null(row) {
        return Ok(None);
    }
    let (io, wo) = (items.value_offsets(), weights.value_offsets());
    let idx = &items.values().as_primitive::<Int32Type>().values()
        [io[row] as usize..io[row + 1] as usize];
    let w = &weights.values().as_primitive::<Float64Type>().values()
        [wo[row] as usize..wo[row + 1] as usize];
    if idx.len() != w.len() {
        return exec_err!(
            "sparse_dot: a vector has {} items but {} weights",
            idx.len(),
            w.len()
        );
    }
    if idx.windows(2).any(|p| p[0] >= p[1]) {
        return exec_err!(
            "sparse_dot: a vector's items must ascend without repeats (array_agg(item ORDER BY item))"
        );
    }
    Ok(Some((idx, w)))
}

impl ScalarUDFImpl for SparseDot {
    fn documentation(&self) -> Option<&Documentation> {
        static DOC: LazyLock<Documentation> = LazyLock::new(|| {
            crate::docs::documentation(
                "`sparse_dot(items_a, weights_a, items_b, weights_b) -> double`: Σ over the items both lists hold of weight_a × weight_b, each vector given as its item indices (ascending, as `array_agg(item ORDER BY item)` gives them) and its weights in the same order; summed in item order, so the same on every engine; null when either vector is null.",
                "sparse_dot(items_a, weights_a, items_b, weights_b)",
                "SELECT sparse_dot([1, 4, 7], [2.0, 1.0, 3.0], [4, 7, 9], [5.0, 1.0, 1.0]); -- 8.0",
            )
        });
        Some(&DOC)
    }

    fn name(&self) -> &str {
        "sparse_dot"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Float64)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let f = "sparse_dot";
        let items_a = crate::args::int32_list(f, &arrays[0])?;
        let weights_a = crate::args::float64_list(f, &arrays[1])?;
        let items_b = crate::args::int32_list(f, &arrays[2])?;
        let weights_b = crate::args::float64_list(f, &arrays[3])?;
        let mut out = Float64Builder::with_capacity(args.number_rows);
        for row in 0..args.number_rows {
            match (
                vector(&items_a, &weights_a, row)?,
                vector(&items_b, &weights_b, row)?,
            ) {
                (Some((ia, wa)), Some((ib, wb))) => out.append_value(sparse_dot(ia, wa, ib, wb)),
                _ => out.append_null(),
            }
        }
        let result: Float64Array = out.finish();
        Ok(ColumnarValue::Array(Arc::new(result)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_the_shared_items_only() {
        assert_eq!(
            sparse_dot(&[1, 4, 7], &[2.0, 1.0, 3.0], &[4, 7, 9], &[5.0, 1.0, 1.0]),
            8.0
        );
        assert_eq!(sparse_dot(&[1, 2], &[1.0, 1.0], &[3, 4], &[1.0, 1.0]), 0.0);
        assert_eq!(sparse_dot(&[], &[], &[3], &[1.0]), 0.0);
    }
}
