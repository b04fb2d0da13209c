//! `als_gram(idx, factors)`: the Gram matrix `XᵀX` of one block of factor rows.

use std::sync::{Arc, LazyLock};

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::{DataType, Field, FieldRef, Float32Type, Int32Type};
use datafusion::common::{Result, ScalarValue, exec_err};
use datafusion::logical_expr::Documentation;
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::format_state_name;
use datafusion::logical_expr::{Accumulator, AggregateUDFImpl, Signature, Volatility};

use crate::lists::{f32_list_scalar, i32_list_scalar, list_type};
use crate::ml::Factors;

/// `als_gram(idx int, factors list<float> | als_solve's result struct) -> list<float>`: `XᵀX` (`rank × rank`, row-major)
/// of the rows of a group, computed over the rows in `idx` order so that it does not depend on
/// how they were split. The distributed ALS fit groups the customer factors by
/// `idx / GRAM_BLOCK` and adds the blocks' matrices in block order on the client
/// ([`crate::ml::sum_block_grams`]): the same bits as [`crate::ml::blocked_gram`] in one
/// process, and only `rank²` values per block leave the executors.
///
/// ```sql
/// SELECT idx / 65536 AS block, als_gram(idx, factors) FROM user_factors GROUP BY idx / 65536;
/// ```
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct AlsGram {
    signature: Signature,
}

impl Default for AlsGram {
    fn default() -> Self {
        Self {
            signature: Signature::any(2, Volatility::Immutable),
        }
    }
}

impl AggregateUDFImpl for AlsGram {
    fn documentation(&self) -> Option<&Documentation> {
        static DOC: LazyLock<Documentation> = LazyLock::new(|| {
            crate::docs::documentation(
                "`als_gram(idx int, factors list<float> | als_solve's result struct) -> list<float>`: `XᵀX` (`rank × rank`, row-major) of the rows of a group, computed over the rows in `idx` order so that it does not depend on how they were split. The distributed ALS fit groups the customer factors by `idx / GRAM_BLOCK` and adds the blocks' matrices in block order on the client (`crate::ml::sum_block_grams`): the same bits as `crate::ml::blocked_gram` in one process, and only `rank²` values per block leave the executors.",
                "als_gram(idx int, factors list<float> | als_solve's result struct)",
                "SELECT idx / 65536 AS block, als_gram(idx, factors) FROM user_factors GROUP BY idx / 65536;",
            )
        });
        Some(&DOC)
    }

    fn name(&self) -> &str {
        "als_gram"
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
                format_state_name(args.name, "idx"),
                list_type(DataType::Int32),
                true,
            )),
            Arc::new(Field::new(
                format_state_name(args.name, "factors"),
                list_type(DataType::Float32),
                true,
            )),
        ])
    }
    fn accumulator(&self, _args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::<GramAccumulator>::default())
    }
}

/// The rows of one block, gathered.
#[derive(Debug, Default)]
struct GramAccumulator {
    rank: usize,
    idx: Vec<i32>,
    values: Vec<f32>,
}

impl GramAccumulator {
    fn append(&mut self, idx: &[i32], values: &[f32], rank: usize) -> Result<()> {
        if rank == 0 {
            return Ok(());
        }
        if self.rank != 0 && self.rank != rank {
            return exec_err!("als_gram: factor vectors of rank {} and {rank}", self.rank);
        }
        if values.len() != idx.len() * rank {
            return exec_err!("als_gram: factor vectors of different lengths");
        }
        self.rank = rank;
        self.idx.extend_from_slice(idx);
        self.values.extend_from_slice(values);
        Ok(())
    }
}

/// The rank of a list of equally long vectors (0 when empty); an error when lengths differ.
fn uniform_rank(list: &arrow::array::ListArray) -> Result<usize> {
    let offsets = list.value_offsets();
    let rank = offsets
        .windows(2)
        .map(|w| (w[1] - w[0]) as usize)
        .next()
        .unwrap_or(0);
    if offsets.windows(2).any(|w| (w[1] - w[0]) as usize != rank) {
        return exec_err!("als_gram: factor vectors of different lengths");
    }
    Ok(rank)
}

impl Accumulator for GramAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let [idx, factors] = values else {
            return exec_err!("als_gram: expected 2 arguments, got {}", values.len());
        };
        let idx = crate::args::int32("als_gram", idx)?;
        let factors = crate::args::factor_list("als_gram", factors)?;
        if idx.null_count() > 0 || factors.null_count() > 0 {
            return exec_err!("als_gram: null index or factors");
        }
        let rank = uniform_rank(&factors)?;
        let (o0, o1) = (
            factors.value_offsets()[0] as usize,
            factors.value_offsets()[factors.len()] as usize,
        );
        let values = &factors.values().as_primitive::<Float32Type>().values()[o0..o1];
        self.append(idx.values(), values, rank)
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let k = self.rank;
        let mut order: Vec<usize> = (0..self.idx.len()).collect();
        order.sort_unstable_by_key(|&i| self.idx[i]);
        let mut rows = Vec::with_capacity(self.values.len());
        for &i in &order {
            rows.extend_from_slice(&self.values[i * k..(i + 1) * k]);
        }
        let gram = Factors::new(order.len(), k, rows).map_or_else(Vec::new, |f| f.gram());
        Ok(f32_list_scalar(gram))
    }

    fn size(&self) -> usize {
        std::mem::size_of::<Self>() + self.idx.capacity() * 4 + self.values.capacity() * 4
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(vec![
            i32_list_scalar(self.idx.clone()),
            f32_list_scalar(self.values.clone()),
        ])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let [idx, factors] = states else {
            return exec_err!("als_gram: expected 2 state columns, got {}", states.len());
        };
        let (Some(idx), Some(factors)) = (idx.as_list_opt::<i32>(), factors.as_list_opt::<i32>())
        else {
            return exec_err!("als_gram: unexpected partial state types");
        };
        for row in 0..idx.len() {
            let ids = idx.value(row);
            let ids = ids.as_primitive::<Int32Type>().values();
            let values = factors.value(row);
            let values = values.as_primitive::<Float32Type>().values();
            let rank = if ids.is_empty() {
                0
            } else {
                values.len() / ids.len()
            };
            self.append(ids, values, rank)?;
        }
        Ok(())
    }
}

#[cfg(test)]
#[expect(clippy::unwrap_used, clippy::panic, reason = "tests fail by panicking")]
mod tests {
    use super::*;
    use crate::lists::uniform_list;
    use crate::ml::{GRAM_BLOCK, blocked_gram};
    use arrow::array::{Float32Array, Int32Array};

    /// Rows split over two partial states, in shuffled order, give `blocked_gram`'s bits.
    #[test]
    fn split_blocks_match_the_in_memory_gram() {
        let (rows, rank) = (40, 3);
        let values: Vec<f32> = (0..rows * rank)
            .map(|v| ((v * 13 % 17) as f32 - 8.0) / 7.0)
            .collect();
        let x = Factors::new(rows, rank, values).unwrap();
        let mut present = vec![true; rows];
        present[5] = false;
        let batch = |ids: &[i32]| -> Vec<ArrayRef> {
            let v: Vec<f32> = ids
                .iter()
                .flat_map(|&i| x.row(i as usize).to_vec())
                .collect();
            vec![
                Arc::new(Int32Array::from(ids.to_vec())),
                Arc::new(uniform_list(
                    Arc::new(Float32Array::from(v)),
                    rank,
                    ids.len(),
                )),
            ]
        };
        let ids: Vec<i32> = (0..rows as i32).rev().filter(|&i| i != 5).collect();
        let (first, second) = ids.split_at(17);
        let (mut a, mut b, mut total) = (
            GramAccumulator::default(),
            GramAccumulator::default(),
            GramAccumulator::default(),
        );
        a.update_batch(&batch(first)).unwrap();
        b.update_batch(&batch(second)).unwrap();
        for acc in [&mut a, &mut b] {
            let state: Vec<ArrayRef> = acc
                .state()
                .unwrap()
                .iter()
                .map(|s| s.to_array().unwrap())
                .collect();
            total.merge_batch(&state).unwrap();
        }
        let ScalarValue::List(list) = total.evaluate().unwrap() else {
            panic!("a list")
        };
        let got: Vec<u32> = list
            .value(0)
            .as_primitive::<Float32Type>()
            .values()
            .iter()
            .map(|v| v.to_bits())
            .collect();
        assert!(rows < GRAM_BLOCK as usize, "one block");
        let expected: Vec<u32> = blocked_gram(&x, &present)
            .iter()
            .map(|v| v.to_bits())
            .collect();
        assert_eq!(got, expected);
    }
}
