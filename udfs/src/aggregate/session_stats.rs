//! `session_stats(time_seconds, gap_seconds)`: how many sessions and distinct days a group's
//! events span.

use std::sync::{Arc, LazyLock};

use arrow::array::StructArray;
use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, Int64Array, ListArray};
use arrow::buffer::OffsetBuffer;
use arrow::datatypes::{DataType, Field, FieldRef, Fields, Float64Type, Int64Type};
use datafusion::common::{Result, ScalarValue, exec_err};
use datafusion::logical_expr::Documentation;
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::format_state_name;
use datafusion::logical_expr::{
    Accumulator, AggregateUDFImpl, EmitTo, GroupsAccumulator, Signature, Volatility,
};
use datafusion::physical_plan::expressions::Literal;

use super::{GrowGroups, SingleGroup};

/// `session_stats(time_seconds double, gap_seconds double constant) -> struct<sessions bigint,
/// active_days bigint>`, over a group's events (times in seconds since the Unix epoch):
/// - `sessions`: a new session starts at the first event and after every pause longer than
///   `gap_seconds`; an event without a time is a session of its own;
/// - `active_days`: distinct UTC days with an event (events without a time count for none).
///
/// It is what `SUM(CASE WHEN t - LAG(t) OVER (PARTITION BY c ORDER BY t) <= gap THEN 0 ELSE 1
/// END)` and `COUNT(DISTINCT date_trunc('day', ts))` grouped by `c` compute, without their
/// costs: the window sorts every event of the night by customer (a string) and time, which took
/// most of the features stage, and a second COUNT(DISTINCT) in the same unsorted aggregate keeps
/// a hash set per customer. This sorts each customer's few times on its own. Partial states are
/// the times gathered so far, which merge by appending, so any split of the rows gives the same
/// result.
///
/// ```sql
/// SELECT customer_id, session_stats(date_part('epoch', ts), 1800) FROM events GROUP BY customer_id;
/// ```
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct SessionStats {
    signature: Signature,
}

impl Default for SessionStats {
    fn default() -> Self {
        Self {
            signature: Signature::any(2, Volatility::Immutable),
        }
    }
}

impl SessionStats {
    /// The fields of the result.
    pub fn fields() -> Fields {
        Fields::from(vec![
            Field::new("sessions", DataType::Int64, false),
            Field::new("active_days", DataType::Int64, false),
        ])
    }

    /// The gap from the second argument, which must be a constant.
    fn gap(args: &AccumulatorArgs) -> Result<f64> {
        let gap = args
            .exprs
            .get(1)
            .and_then(|e| e.downcast_ref::<Literal>())
            .map(|l| l.value().cast_to(&DataType::Float64));
        match gap {
            Some(Ok(ScalarValue::Float64(Some(g)))) if g >= 0.0 => Ok(g),
            _ => exec_err!(
                "session_stats: the gap (second argument) must be a constant number of seconds ≥ 0"
            ),
        }
    }
}

impl AggregateUDFImpl for SessionStats {
    fn documentation(&self) -> Option<&Documentation> {
        static DOC: LazyLock<Documentation> = LazyLock::new(|| {
            crate::docs::documentation(
                "`session_stats(time_seconds double, gap_seconds double constant) -> struct<sessions bigint, active_days bigint>`, over a group's events (times in seconds since the Unix epoch): - `sessions`: a new session starts at the first event and after every pause longer than `gap_seconds`; an event without a time is a session of its own; - `active_days`: distinct UTC days with an event (events without a time count for none).  It is what `SUM(CASE WHEN t - LAG(t) OVER (PARTITION BY c ORDER BY t) <= gap THEN 0 ELSE 1 END)` and `COUNT(DISTINCT date_trunc('day', ts))` grouped by `c` compute, without their costs: the window sorts every event of the night by customer (a string) and time, which took most of the features stage, and a second COUNT(DISTINCT) in the same unsorted aggregate keeps a hash set per customer. This sorts each customer's few times on its own. Partial states are the times gathered so far, which merge by appending, so any split of the rows gives the same result.",
                "session_stats(time_seconds double, gap_seconds double constant)",
                "SELECT customer_id, session_stats(date_part('epoch', ts), 1800) FROM events GROUP BY customer_id;",
            )
        });
        Some(&DOC)
    }

    fn name(&self) -> &str {
        "session_stats"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Struct(Self::fields()))
    }
    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        let item = Arc::new(Field::new_list_field(DataType::Float64, false));
        Ok(vec![
            Arc::new(Field::new(
                format_state_name(args.name, "times"),
                DataType::List(item),
                true,
            )),
            Arc::new(Field::new(
                format_state_name(args.name, "untimed"),
                DataType::Int64,
                true,
            )),
        ])
    }
    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(SingleGroup(Sessions::new(Self::gap(&args)?))))
    }
    fn groups_accumulator_supported(&self, _args: AccumulatorArgs) -> bool {
        true
    }
    fn create_groups_accumulator(
        &self,
        args: AccumulatorArgs,
    ) -> Result<Box<dyn GroupsAccumulator>> {
        Ok(Box::new(Sessions::new(Self::gap(&args)?)))
    }
}

/// The times gathered so far, per group.
#[derive(Debug)]
struct Sessions {
    gap: f64,
    times: Vec<Vec<f64>>,
    untimed: Vec<i64>,
}

impl Sessions {
    fn new(gap: f64) -> Self {
        Self {
            gap,
            times: Vec::new(),
            untimed: Vec::new(),
        }
    }

    fn gather(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        filter: Option<&BooleanArray>,
    ) -> Result<()> {
        let Some(times) = values.first() else {
            return exec_err!("session_stats: no arguments");
        };
        let times = crate::args::float64("session_stats", times)?;
        for (row, &g) in group_indices.iter().enumerate() {
            if filter.is_some_and(|f| !f.is_valid(row) || !f.value(row)) {
                continue;
            }
            if times.is_valid(row) {
                self.times[g].push(times.value(row));
            } else {
                self.untimed[g] += 1;
            }
        }
        Ok(())
    }

    fn merge(&mut self, states: &[ArrayRef], group_indices: &[usize]) -> Result<()> {
        let (Some(times), Some(untimed)) = (
            states.first().and_then(|a| a.as_list_opt::<i32>()),
            states
                .get(1)
                .and_then(|a| a.as_primitive_opt::<Int64Type>()),
        ) else {
            return exec_err!("session_stats: unexpected partial state types");
        };
        for (row, &g) in group_indices.iter().enumerate() {
            if times.is_valid(row) {
                let values = times.value(row);
                self.times[g].extend_from_slice(values.as_primitive::<Float64Type>().values());
            }
            self.untimed[g] += untimed.value(row);
        }
        Ok(())
    }

    /// Sessions and active days of one group (its times are sorted in place).
    fn stats(gap: f64, times: &mut [f64], untimed: i64) -> (i64, i64) {
        const DAY: f64 = 86_400.0;
        times.sort_unstable_by(f64::total_cmp);
        let pauses = times.windows(2).filter(|w| w[1] - w[0] > gap).count();
        let new_days = times
            .windows(2)
            .filter(|w| (w[1] / DAY).floor() != (w[0] / DAY).floor())
            .count();
        let first = usize::from(!times.is_empty());
        (untimed + (first + pauses) as i64, (first + new_days) as i64)
    }

    fn results(&self, mut times: Vec<Vec<f64>>, untimed: Vec<i64>) -> ArrayRef {
        let (sessions, days): (Vec<i64>, Vec<i64>) = times
            .iter_mut()
            .zip(untimed)
            .map(|(t, u)| Self::stats(self.gap, t, u))
            .unzip();
        Arc::new(StructArray::new(
            SessionStats::fields(),
            vec![
                Arc::new(Int64Array::from(sessions)),
                Arc::new(Int64Array::from(days)),
            ],
            None,
        ))
    }

    fn states(times: Vec<Vec<f64>>, untimed: Vec<i64>) -> Vec<ArrayRef> {
        let lengths: Vec<usize> = times.iter().map(Vec::len).collect();
        state_arrays(lengths, times.into_iter().flatten().collect(), untimed)
    }
}

/// Partial state columns: each row's times (`lengths[i]` of `times`, in order) and its count of
/// events without a time.
fn state_arrays(lengths: Vec<usize>, times: Vec<f64>, untimed: Vec<i64>) -> Vec<ArrayRef> {
    let list = ListArray::new(
        Arc::new(Field::new_list_field(DataType::Float64, false)),
        OffsetBuffer::from_lengths(lengths),
        Arc::new(arrow::array::Float64Array::from(times)),
        None,
    );
    vec![Arc::new(list), Arc::new(Int64Array::from(untimed))]
}

impl GrowGroups for Sessions {
    fn grow(&mut self, groups: usize) {
        if self.times.len() < groups {
            self.times.resize_with(groups, Vec::new);
            self.untimed.resize(groups, 0);
        }
    }
}

impl GroupsAccumulator for Sessions {
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
        let times = emit_to.take_needed(&mut self.times);
        let untimed = emit_to.take_needed(&mut self.untimed);
        Ok(self.results(times, untimed))
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        let times = emit_to.take_needed(&mut self.times);
        let untimed = emit_to.take_needed(&mut self.untimed);
        Ok(Self::states(times, untimed))
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> Result<()> {
        self.grow(total_num_groups);
        self.merge(values, group_indices)
    }

    /// Each row as a partial state of its own (DataFusion skips the partial aggregation when
    /// it barely reduces the rows): built directly as arrays, one list of at most one time.
    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> Result<Vec<ArrayRef>> {
        let Some(times) = values.first() else {
            return exec_err!("session_stats: no arguments");
        };
        let times = crate::args::float64("session_stats", times)?;
        let rows = times.len();
        let kept = |row: usize| opt_filter.is_none_or(|f| f.is_valid(row) && f.value(row));
        let mut lengths = Vec::with_capacity(rows);
        let mut timed = Vec::with_capacity(rows);
        let mut untimed = Vec::with_capacity(rows);
        for row in 0..rows {
            let counted = kept(row);
            let has_time = counted && times.is_valid(row);
            lengths.push(usize::from(has_time));
            if has_time {
                timed.push(times.value(row));
            }
            untimed.push(i64::from(counted && !has_time));
        }
        Ok(state_arrays(lengths, timed, untimed))
    }

    fn size(&self) -> usize {
        std::mem::size_of::<Self>()
            + self
                .times
                .iter()
                .map(|t| t.capacity() * 8 + 24)
                .sum::<usize>()
            + self.untimed.capacity() * 8
    }
}

#[cfg(test)]
#[expect(clippy::unwrap_used, clippy::panic, reason = "tests fail by panicking")]
mod tests {
    use arrow::array::Float64Array;

    use super::*;

    fn times(values: &[Option<f64>]) -> ArrayRef {
        Arc::new(Float64Array::from(values.to_vec()))
    }

    /// The `sessions` and `active_days` columns of a result.
    fn columns(result: &ArrayRef) -> (Vec<i64>, Vec<i64>) {
        let s = result.as_struct();
        let column = |i: usize| s.column(i).as_primitive::<Int64Type>().values().to_vec();
        (column(0), column(1))
    }

    #[test]
    fn pauses_longer_than_the_gap_start_sessions() {
        // Group 0: 0, 100, 1900 (a 1800 s pause is not longer than the gap), 4000 → 2 sessions.
        // Group 1: one event, and one without a time → 2. Group 2: nothing → 0.
        let mut acc = Sessions::new(1800.0);
        let values = times(&[
            Some(4000.0),
            Some(0.0),
            Some(7.0),
            Some(1900.0),
            None,
            Some(100.0),
        ]);
        acc.update_batch(&[values], &[0, 0, 1, 0, 1, 0], None, 3)
            .unwrap();
        let (sessions, days) = columns(&acc.evaluate(EmitTo::All).unwrap());
        assert_eq!(sessions, [2, 2, 0]);
        assert_eq!(days, [1, 1, 0]);
    }

    #[test]
    fn active_days_are_distinct_utc_days_with_a_time() {
        // 23:59:59.999999 and midnight of the next day are two days; a day may hold several
        // sessions, and a session may cross midnight.
        let day = 86_400.0;
        let values = times(&[
            Some(3.0 * day - 0.000_001),
            Some(3.0 * day),
            Some(3.0 * day + 36_000.0),
            None,
            Some(10.0 * day + 5.0),
        ]);
        let mut acc = Sessions::new(1800.0);
        acc.update_batch(&[values], &[0; 5], None, 1).unwrap();
        let (sessions, days) = columns(&acc.evaluate(EmitTo::All).unwrap());
        assert_eq!(days, [3]);
        assert_eq!(sessions, [4]);
    }

    #[test]
    fn split_then_merged_equals_one_pass() {
        let all: Vec<Option<f64>> = (0..200)
            .map(|i| (i % 17 != 0).then_some(((i * 7919) % 10_007) as f64))
            .collect();
        let groups: Vec<usize> = (0..200).map(|i| i % 3).collect();
        let mut whole = Sessions::new(150.0);
        whole
            .update_batch(&[times(&all)], &groups, None, 3)
            .unwrap();
        let expected = whole.evaluate(EmitTo::All).unwrap();

        let mut merged = Sessions::new(150.0);
        for part in [0..70, 70..200] {
            let mut partial = Sessions::new(150.0);
            partial
                .update_batch(&[times(&all[part.clone()])], &groups[part], None, 3)
                .unwrap();
            let state = partial.state(EmitTo::All).unwrap();
            merged.merge_batch(&state, &[0, 1, 2], 3).unwrap();
        }
        assert_eq!(&merged.evaluate(EmitTo::All).unwrap(), &expected);
    }

    #[test]
    fn rows_converted_to_states_merge_to_the_same_counts() {
        let all = [Some(0.0), None, Some(100.0), Some(5.0), Some(40.0)];
        let groups = [0, 0, 1, 0, 1];
        let mut whole = Sessions::new(10.0);
        whole
            .update_batch(&[times(&all)], &groups, None, 2)
            .unwrap();
        let states = whole.convert_to_state(&[times(&all)], None).unwrap();
        let mut merged = Sessions::new(10.0);
        merged.merge_batch(&states, &groups, 2).unwrap();
        let merged = merged.evaluate(EmitTo::All).unwrap();
        assert_eq!(columns(&merged).0, [2, 2]);
        assert_eq!(&merged, &whole.evaluate(EmitTo::All).unwrap());
    }

    #[test]
    fn without_group_by_evaluating_keeps_the_state() {
        // A window frame growing row by row evaluates after every batch.
        let mut acc = SingleGroup(Sessions::new(10.0));
        acc.update_batch(&[times(&[Some(0.0), Some(100.0)])])
            .unwrap();
        let first = acc.evaluate().unwrap();
        assert_eq!(acc.evaluate().unwrap(), first);
        acc.update_batch(&[times(&[Some(200.0)])]).unwrap();
        let ScalarValue::Struct(result) = acc.evaluate().unwrap() else {
            panic!("a struct")
        };
        assert_eq!(
            columns(&(Arc::new(result.as_ref().clone()) as ArrayRef)),
            (vec![3], vec![1])
        );
    }

    #[test]
    fn filtered_rows_are_left_out() {
        let mut acc = Sessions::new(10.0);
        let filter = BooleanArray::from(vec![true, false, true]);
        acc.update_batch(
            &[times(&[Some(0.0), Some(100.0), Some(5.0)])],
            &[0, 0, 0],
            Some(&filter),
            1,
        )
        .unwrap();
        assert_eq!(columns(&acc.evaluate(EmitTo::All).unwrap()).0, [1]);
    }
}
