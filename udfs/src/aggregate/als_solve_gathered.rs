//! `als_solve_gathered(own_idx, other_idx, weight, other_factors)`: one row of an ALS
//! half-iteration whose fixed side arrives as a column, for fits whose fixed side is too big
//! to travel inside the plan.

use std::sync::{Arc, LazyLock};

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Float32Array, Float64Array, Int32Array, ListArray,
    StructArray,
};
use arrow::buffer::OffsetBuffer;
use arrow::datatypes::{DataType, Field, FieldRef, Float32Type};
use datafusion::common::{Result, exec_err};
use datafusion::logical_expr::Documentation;
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::format_state_name;
use datafusion::logical_expr::{
    Accumulator, AggregateUDFImpl, EmitTo, GroupsAccumulator, Signature, Volatility,
};

use super::{GrowGroups, SingleGroup};
use crate::lists::{list_type, uniform_list};
use crate::ml::{AlsModelSide, Factors, SolveScratch};
use crate::scalar::AlsSolve;

/// `als_solve_gathered(own_idx int, other_idx int, weight float, other_factors list<float>)
/// -> struct<factors list<float>, loss double>` (`other_factors` may also be a result struct
/// of `als_solve`), grouped by `own_idx`: the same solve as
/// [`AlsSolve`], but the other side's factor of each interaction comes in its row (from a join
/// with a factor table) instead of from a matrix the function carries.
///
/// The distributed fit uses it for the item half-iteration, so the customer factors stay in a
/// work table on shared storage and are never collected by the client nor shipped in a plan:
///
/// ```sql
/// SELECT i.item_idx, als_solve_gathered(i.item_idx, i.user_idx, i.weight, x.factors)
/// FROM interactions i JOIN user_factors x ON i.user_idx = x.idx GROUP BY i.item_idx;
/// ```
///
/// Each group's interactions are gathered (partial states merge by appending) and solved in
/// `other_idx` order, so the result does not depend on how the rows were split, and equals
/// `als_solve` over the same interactions bit for bit. The instance carries the Gram matrix of
/// the other side, the previous factors of this side (the warm start, indexed by `own_idx`)
/// and the hyper-parameters; its `other` factors are unused.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct AlsSolveGathered {
    signature: Signature,
    side: Arc<AlsModelSide>,
}

impl Default for AlsSolveGathered {
    fn default() -> Self {
        Self::new(AlsModelSide::default())
    }
}

impl AlsSolveGathered {
    /// Solves with `side`'s Gram matrix, warm start and hyper-parameters.
    pub fn new(side: AlsModelSide) -> Self {
        Self {
            signature: Signature::any(4, Volatility::Immutable),
            side: Arc::new(side),
        }
    }

    /// The Gram matrix, warm start and hyper-parameters this instance solves with.
    pub fn side(&self) -> &AlsModelSide {
        &self.side
    }

    fn accumulator_for(&self) -> Result<GatheredAccumulator> {
        let rank = self.side.gram.rank();
        if rank == 0 {
            return exec_err!(
                "als_solve_gathered has no Gram matrix: it is built by the ALS fit, not called from SQL"
            );
        }
        Ok(GatheredAccumulator {
            side: Arc::clone(&self.side),
            rank,
            groups: Vec::new(),
        })
    }
}

impl AggregateUDFImpl for AlsSolveGathered {
    fn documentation(&self) -> Option<&Documentation> {
        static DOC: LazyLock<Documentation> = LazyLock::new(|| {
            crate::docs::documentation(
                "`als_solve_gathered(own_idx int, other_idx int, weight float, other_factors list<float>) -> struct<factors list<float>, loss double>` (`other_factors` may also be a result struct of `als_solve`), grouped by `own_idx`: the same solve as `AlsSolve`, but the other side's factor of each interaction comes in its row (from a join with a factor table) instead of from a matrix the function carries.  The distributed fit uses it for the item half-iteration, so the customer factors stay in a work table on shared storage and are never collected by the client nor shipped in a plan:",
                "als_solve_gathered(own_idx int, other_idx int, weight float, other_factors list<float>)",
                "SELECT i.item_idx, als_solve_gathered(i.item_idx, i.user_idx, i.weight, x.factors)
FROM interactions i JOIN user_factors x ON i.user_idx = x.idx GROUP BY i.item_idx;",
            )
        });
        Some(&DOC)
    }

    fn name(&self) -> &str {
        "als_solve_gathered"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Struct(AlsSolve::fields()))
    }
    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        let field = |name: &str, t: DataType| {
            Arc::new(Field::new(format_state_name(args.name, name), t, true))
        };
        Ok(vec![
            field("own", DataType::Int32),
            field("others", list_type(DataType::Int32)),
            field("weights", list_type(DataType::Float32)),
            field("factors", list_type(DataType::Float32)),
        ])
    }
    fn accumulator(&self, _args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(SingleGroup(self.accumulator_for()?)))
    }
    fn groups_accumulator_supported(&self, _args: AccumulatorArgs) -> bool {
        true
    }
    fn create_groups_accumulator(
        &self,
        _args: AccumulatorArgs,
    ) -> Result<Box<dyn GroupsAccumulator>> {
        Ok(Box::new(self.accumulator_for()?))
    }
}

/// One group's interactions as gathered so far.
#[derive(Debug, Default)]
struct Gathered {
    own: Option<i32>,
    others: Vec<i32>,
    weights: Vec<f32>,
    /// The other side's factors, `rank` per interaction.
    factors: Vec<f32>,
}

impl Gathered {
    fn size(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.others.capacity() * 4
            + self.weights.capacity() * 4
            + self.factors.capacity() * 4
    }
}

/// The state of every group of one partition.
#[derive(Debug)]
struct GatheredAccumulator {
    side: Arc<AlsModelSide>,
    rank: usize,
    groups: Vec<Gathered>,
}

/// The columns of one batch of interactions (or of partial states), borrowed.
struct Columns<'a> {
    own: &'a Int32Array,
    others: &'a ListArray,
    weights: &'a ListArray,
    factors: &'a ListArray,
}

impl GrowGroups for GatheredAccumulator {
    fn grow(&mut self, total_num_groups: usize) {
        if self.groups.len() < total_num_groups {
            self.groups.resize_with(total_num_groups, Gathered::default);
        }
    }
}

impl GatheredAccumulator {
    /// Appends the interactions of input rows (one each) to their groups.
    fn gather(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
    ) -> Result<()> {
        let [own, other, weight, factors] = values else {
            return exec_err!(
                "als_solve_gathered: expected 4 arguments, got {}",
                values.len()
            );
        };
        let own = crate::args::int32("als_solve_gathered", own)?;
        let other = crate::args::int32("als_solve_gathered", other)?;
        let weight = arrow::compute::cast(weight, &DataType::Float32)?;
        let weight = weight.as_primitive::<Float32Type>();
        let factors = crate::args::factor_list("als_solve_gathered", factors)?;
        let values = factors.values().as_primitive::<Float32Type>().values();
        let offsets = factors.value_offsets();
        for (row, &g) in group_indices.iter().enumerate() {
            if opt_filter.is_some_and(|f| !f.is_valid(row) || !f.value(row))
                || other.is_null(row)
                || weight.is_null(row)
                || factors.is_null(row)
            {
                continue;
            }
            let (f0, f1) = (offsets[row] as usize, offsets[row + 1] as usize);
            if f1 - f0 != self.rank {
                return exec_err!(
                    "als_solve_gathered: a factor vector of length {} where the model has rank {}",
                    f1 - f0,
                    self.rank
                );
            }
            let group = &mut self.groups[g];
            if own.is_valid(row) {
                group.own = Some(own.value(row));
            }
            group.others.push(other.value(row));
            group.weights.push(weight.value(row));
            group.factors.extend_from_slice(&values[f0..f1]);
        }
        Ok(())
    }

    /// Appends partial states (one group's lists per row) to their groups.
    fn merge(&mut self, states: &Columns<'_>, group_indices: &[usize]) -> Result<()> {
        let ints = states
            .others
            .values()
            .as_primitive::<arrow::datatypes::Int32Type>();
        let weights = states.weights.values().as_primitive::<Float32Type>();
        let factors = states.factors.values().as_primitive::<Float32Type>();
        for (row, &g) in group_indices.iter().enumerate() {
            let group = &mut self.groups[g];
            if states.own.is_valid(row) {
                group.own = Some(states.own.value(row));
            }
            let range = |l: &ListArray| {
                let o = l.value_offsets();
                o[row] as usize..o[row + 1] as usize
            };
            let (ri, rw, rf) = (
                range(states.others),
                range(states.weights),
                range(states.factors),
            );
            if ri.len() != rw.len() || rf.len() != ri.len() * self.rank {
                return exec_err!("als_solve_gathered: inconsistent partial state");
            }
            group.others.extend_from_slice(&ints.values()[ri]);
            group.weights.extend_from_slice(&weights.values()[rw]);
            group.factors.extend_from_slice(&factors.values()[rf]);
        }
        Ok(())
    }

    /// Solves each group: its interactions in `other_idx` order (then weight), warm-started
    /// from the carried previous factors of `own`.
    fn solve(&self, groups: Vec<Gathered>) -> ArrayRef {
        let k = self.rank;
        let mut out = vec![0.0f32; groups.len() * k];
        let mut losses = vec![0.0f64; groups.len()];
        let mut scratch = SolveScratch::default();
        for ((group, x), loss) in groups.iter().zip(out.chunks_exact_mut(k)).zip(&mut losses) {
            if let Some(previous) = group
                .own
                .and_then(|o| usize::try_from(o).ok())
                .map(|o| self.side.previous.row(o))
                .filter(|p| p.len() == k)
            {
                x.copy_from_slice(previous);
            }
            let mut order: Vec<usize> = (0..group.others.len()).collect();
            order.sort_unstable_by(|&a, &b| {
                group.others[a]
                    .cmp(&group.others[b])
                    .then(group.weights[a].total_cmp(&group.weights[b]))
            });
            let mut rows = Vec::with_capacity(order.len() * k);
            for &i in &order {
                rows.extend_from_slice(&group.factors[i * k..(i + 1) * k]);
            }
            let weights: Vec<f32> = order.iter().map(|&i| group.weights[i]).collect();
            let Some(other) = Factors::new(order.len(), k, rows) else {
                continue;
            };
            let local = AlsModelSide {
                other: Arc::new(other),
                ..(*self.side).clone()
            };
            let items: Vec<i32> = (0..order.len() as i32).collect();
            *loss = local.solve(x, &items, &weights, &mut scratch);
        }
        let rows = groups.len();
        let factors = uniform_list(Arc::new(Float32Array::from(out)), k, rows);
        let columns: Vec<ArrayRef> = vec![Arc::new(factors), Arc::new(Float64Array::from(losses))];
        Arc::new(StructArray::new(AlsSolve::fields(), columns, None))
    }

    /// The partial states of `groups`, one row each.
    fn states(groups: &[Gathered]) -> Vec<ArrayRef> {
        let own: Int32Array = groups.iter().map(|g| g.own).collect();
        let list = |item: DataType, lengths: Vec<usize>, values: ArrayRef| -> ArrayRef {
            Arc::new(ListArray::new(
                Arc::new(Field::new_list_field(item, true)),
                OffsetBuffer::from_lengths(lengths),
                values,
                None,
            ))
        };
        let lengths: Vec<usize> = groups.iter().map(|g| g.others.len()).collect();
        let others =
            Int32Array::from_iter_values(groups.iter().flat_map(|g| g.others.iter().copied()));
        let weights =
            Float32Array::from_iter_values(groups.iter().flat_map(|g| g.weights.iter().copied()));
        let factors =
            Float32Array::from_iter_values(groups.iter().flat_map(|g| g.factors.iter().copied()));
        let factor_lengths = groups.iter().map(|g| g.factors.len()).collect();
        vec![
            Arc::new(own),
            list(DataType::Int32, lengths.clone(), Arc::new(others)),
            list(DataType::Float32, lengths, Arc::new(weights)),
            list(DataType::Float32, factor_lengths, Arc::new(factors)),
        ]
    }
}

fn state_columns(values: &[ArrayRef]) -> Result<Columns<'_>> {
    let [own, others, weights, factors] = values else {
        return exec_err!(
            "als_solve_gathered: expected 4 state columns, got {}",
            values.len()
        );
    };
    let (Some(own), Some(others), Some(weights), Some(factors)) = (
        own.as_primitive_opt::<arrow::datatypes::Int32Type>(),
        others.as_list_opt::<i32>(),
        weights.as_list_opt::<i32>(),
        factors.as_list_opt::<i32>(),
    ) else {
        return exec_err!("als_solve_gathered: unexpected partial state types");
    };
    Ok(Columns {
        own,
        others,
        weights,
        factors,
    })
}

impl GroupsAccumulator for GatheredAccumulator {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        self.grow(total_num_groups);
        self.gather(values, group_indices, opt_filter)
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        let groups = emit_to.take_needed(&mut self.groups);
        Ok(self.solve(groups))
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        let groups = emit_to.take_needed(&mut self.groups);
        Ok(Self::states(&groups))
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> Result<()> {
        self.grow(total_num_groups);
        self.merge(&state_columns(values)?, group_indices)
    }

    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> Result<Vec<ArrayRef>> {
        let rows = values.first().map_or(0, |v| v.len());
        let mut each = GatheredAccumulator {
            side: Arc::clone(&self.side),
            rank: self.rank,
            groups: Vec::new(),
        };
        each.grow(rows);
        each.gather(values, &(0..rows).collect::<Vec<_>>(), opt_filter)?;
        Ok(Self::states(&each.groups))
    }

    fn size(&self) -> usize {
        self.groups.iter().map(Gathered::size).sum::<usize>() + std::mem::size_of::<Self>()
    }
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "tests fail by panicking")]
mod tests {
    use super::*;
    use crate::ml::Solver;
    use arrow::array::Int32Array;

    fn side(previous: Factors, other: Factors) -> AlsModelSide {
        let rank = other.rank();
        AlsModelSide {
            gram: Arc::new(Factors::new(rank, rank, other.gram()).unwrap()),
            other: Arc::new(other),
            previous: Arc::new(previous),
            alpha_bits: 10.0f32.to_bits(),
            lambda_bits: 0.1f32.to_bits(),
            weighted_lambda: false,
            solver: Solver::ConjugateGradient { steps: 3 },
            explicit: false,
        }
    }

    fn factor_lists(f: &Factors, rows: &[i32]) -> ArrayRef {
        let values: Vec<f32> = rows
            .iter()
            .flat_map(|&r| f.row(r as usize).to_vec())
            .collect();
        Arc::new(uniform_list(
            Arc::new(Float32Array::from(values)),
            f.rank(),
            rows.len(),
        ))
    }

    /// Gathering the rows of one item in any split and order, then solving, gives the bits
    /// `als_solve` gives from the item's sorted lists and the whole matrix.
    #[test]
    fn split_gathered_solve_equals_the_scalar_solve() {
        let rank = 4;
        let values: Vec<f32> = (0..6 * rank)
            .map(|v| ((v * 7 % 11) as f32 - 5.0) / 10.0)
            .collect();
        let users = Factors::new(6, rank, values).unwrap();
        let previous = Factors::new(2, rank, vec![0.01; 2 * rank]).unwrap();
        let side = side(previous, users.clone());
        let (user_ids, weights) = (vec![4, 0, 5, 2], vec![1.0f32, 3.0, 2.0, 0.5]);

        // Scalar: item 1 with its users in index order, against the whole user matrix.
        let mut expected = previous_row(&side, 1);
        let mut order: Vec<usize> = (0..4).collect();
        order.sort_by_key(|&i| user_ids[i]);
        let sorted_ids: Vec<i32> = order.iter().map(|&i| user_ids[i]).collect();
        let sorted_w: Vec<f32> = order.iter().map(|&i| weights[i]).collect();
        let expected_loss = side.solve(
            &mut expected,
            &sorted_ids,
            &sorted_w,
            &mut SolveScratch::default(),
        );

        // Gathered: two partial accumulators, each seeing half the rows, merged.
        let udaf = AlsSolveGathered::new(side);
        let batch = |rows: std::ops::Range<usize>| -> Vec<ArrayRef> {
            vec![
                Arc::new(Int32Array::from(vec![1; rows.len()])),
                Arc::new(Int32Array::from(user_ids[rows.clone()].to_vec())),
                Arc::new(Float32Array::from(weights[rows.clone()].to_vec())),
                factor_lists(&users, &user_ids[rows]),
            ]
        };
        let mut a = udaf.accumulator_for().unwrap();
        let mut b = udaf.accumulator_for().unwrap();
        a.update_batch(&batch(2..4), &[0, 0], None, 1).unwrap();
        b.update_batch(&batch(0..2), &[0, 0], None, 1).unwrap();
        let mut merged = udaf.accumulator_for().unwrap();
        merged
            .merge_batch(&a.state(EmitTo::All).unwrap(), &[0], 1)
            .unwrap();
        merged
            .merge_batch(&b.state(EmitTo::All).unwrap(), &[0], 1)
            .unwrap();
        let result = merged.evaluate(EmitTo::All).unwrap();
        let result = result.as_struct();
        let factors = result.column(0).as_list::<i32>().value(0);
        let got: Vec<f32> = factors.as_primitive::<Float32Type>().values().to_vec();
        let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&got), bits(&expected));
        let loss = result
            .column(1)
            .as_primitive::<arrow::datatypes::Float64Type>()
            .value(0);
        assert_eq!(loss.to_bits(), expected_loss.to_bits());
    }

    fn previous_row(side: &AlsModelSide, r: usize) -> Vec<f32> {
        side.previous.row(r).to_vec()
    }

    #[test]
    fn a_model_less_instance_refuses_to_run() {
        let err = AlsSolveGathered::default().accumulator_for().unwrap_err();
        assert!(err.to_string().contains("built by the ALS fit"), "{err}");
    }
}
