//! `als_top_n(user_factors, excluded_items)`: a customer's best items under fitted item factors.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, Float32Array, Int32Array, ListArray, StructArray};
use arrow::buffer::OffsetBuffer;
use arrow::datatypes::{DataType, Field, Fields};
use datafusion::common::{Result, exec_err};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

use crate::ml::{Factors, dot};

/// The item factors and rules `als_top_n` scores against.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct TopNModel {
    /// Item factors, indexed by item integer id.
    pub items: Arc<Factors>,
    /// Items that may be recommended (in the catalog), indexed by item integer id.
    pub allowed: Arc<Vec<bool>>,
    /// How many items to return.
    pub n: usize,
}

/// `als_top_n(user_factors list<float>, excluded list<int>) -> list<struct<rank int, item_idx int,
/// score float>>`: the `n` allowed items with the highest dot product with the user's factors, best
/// first, skipping the excluded item ids. Null or empty user factors give an empty list.
///
/// ```sql
/// SELECT customer_id, unnest(als_top_n(factors, purchased)) FROM user_factors;
/// ```
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct AlsTopN {
    signature: Signature,
    model: Arc<TopNModel>,
}

impl Default for AlsTopN {
    fn default() -> Self {
        Self::new(TopNModel::default())
    }
}

impl AlsTopN {
    /// Top-N against this model.
    pub fn new(model: TopNModel) -> Self {
        Self {
            signature: Signature::any(2, Volatility::Immutable),
            model: Arc::new(model),
        }
    }

    /// The model this instance scores with.
    pub fn model(&self) -> &TopNModel {
        &self.model
    }

    fn item_fields() -> Fields {
        Fields::from(vec![
            Field::new("rank", DataType::Int32, false),
            Field::new("item_idx", DataType::Int32, false),
            Field::new("score", DataType::Float32, false),
        ])
    }

    /// The best `n` (index, score) pairs for one user.
    fn top_n(&self, user: &[f32], excluded: &[i32], scores: &mut Vec<(i32, f32)>) {
        scores.clear();
        let items = &self.model.items;
        if user.len() != items.rank() {
            return;
        }
        for i in 0..items.rows() {
            if self.model.allowed.get(i).copied().unwrap_or(false)
                && !excluded.contains(&(i as i32))
            {
                scores.push((i as i32, dot(user, items.row(i))));
            }
        }
        let n = self.model.n.min(scores.len());
        if n < scores.len() {
            scores.select_nth_unstable_by(n, |a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            scores.truncate(n);
        }
        scores.sort_unstable_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    }
}

impl ScalarUDFImpl for AlsTopN {
    fn name(&self) -> &str {
        "als_top_n"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::List(Arc::new(Field::new_list_field(
            DataType::Struct(Self::item_fields()),
            true,
        ))))
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        if self.model.items.rank() == 0 {
            return exec_err!(
                "als_top_n has no item factors: it is built by the recommendations stage, not called from SQL"
            );
        }
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let [users, excluded] = arrays.as_slice() else {
            return exec_err!("als_top_n: expected 2 arguments, got {}", arrays.len());
        };
        let users = crate::args::float32_list(self.name(), users)?;
        let excluded = crate::args::int32_list(self.name(), excluded)?;
        let (mut rank, mut idx, mut score) = (vec![], vec![], vec![]);
        let mut lengths = Vec::with_capacity(users.len());
        let mut scratch = Vec::new();
        for row in 0..users.len() {
            let user = crate::args::f32_row(&users, row);
            let skip: Vec<i32> = if excluded.is_null(row) {
                vec![]
            } else {
                excluded
                    .value(row)
                    .as_any()
                    .downcast_ref::<Int32Array>()
                    .map(|a| a.iter().flatten().collect())
                    .unwrap_or_default()
            };
            self.top_n(&user, &skip, &mut scratch);
            lengths.push(scratch.len());
            rank.extend(1..=scratch.len() as i32);
            idx.extend(scratch.iter().map(|s| s.0));
            score.extend(scratch.iter().map(|s| s.1));
        }
        let values: Vec<ArrayRef> = vec![
            Arc::new(Int32Array::from(rank)),
            Arc::new(Int32Array::from(idx)),
            Arc::new(Float32Array::from(score)),
        ];
        let structs = StructArray::new(Self::item_fields(), values, None);
        let field = Arc::new(Field::new_list_field(
            DataType::Struct(Self::item_fields()),
            true,
        ));
        let list = ListArray::new(
            field,
            OffsetBuffer::from_lengths(lengths),
            Arc::new(structs),
            None,
        );
        Ok(ColumnarValue::Array(Arc::new(list)))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic, reason = "tests fail by panicking")]
mod tests {
    use super::*;

    #[test]
    fn top_n_skips_excluded_and_disallowed_items_and_sorts() {
        let items = Factors::new(4, 1, vec![1.0, 4.0, 3.0, 2.0]).unwrap();
        let f = AlsTopN::new(TopNModel {
            items: Arc::new(items),
            allowed: Arc::new(vec![true, true, true, false]),
            n: 2,
        });
        let mut out = vec![];
        f.top_n(&[1.0], &[1], &mut out);
        assert_eq!(out, vec![(2, 3.0), (0, 1.0)]);
        f.top_n(&[], &[], &mut out);
        assert!(out.is_empty());
    }
}
