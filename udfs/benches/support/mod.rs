//! What every bench of `udfs/benches/` shares: the batch size, deterministic data, and calling
//! a function the way DataFusion does (`ScalarUDFImpl::invoke_with_args` on whole columns, an
//! accumulator built from `AccumulatorArgs`).

#![expect(
    dead_code,
    clippy::unwrap_used,
    reason = "each bench binary uses a part of this module; a failure should stop the bench loudly"
)]

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, ListArray};
use arrow::buffer::OffsetBuffer;
use arrow::datatypes::{DataType, Field, FieldRef, Schema};
use datafusion::common::ScalarValue;
use datafusion::config::ConfigOptions;
use datafusion::logical_expr::function::AccumulatorArgs;
use datafusion::logical_expr::{
    AggregateUDFImpl, ColumnarValue, EmitTo, ScalarFunctionArgs, ScalarUDFImpl,
};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::{Column, Literal};

/// Rows per call: DataFusion's default `batch_size`, so one call here is one call in a query.
pub const ROWS: usize = 8192;

/// A small deterministic generator (SplitMix64), so every run benches the same data.
pub struct Numbers(pub u64);

impl Numbers {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in 0..n.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn field(name: &str, array: &ArrayRef) -> FieldRef {
    Arc::new(Field::new(name, array.data_type().clone(), true))
}

/// Calls a scalar function on whole columns, as DataFusion's projection does.
pub fn invoke(udf: &dyn ScalarUDFImpl, columns: &[ArrayRef]) -> ArrayRef {
    let types: Vec<DataType> = columns.iter().map(|c| c.data_type().clone()).collect();
    let rows = columns[0].len();
    let args = ScalarFunctionArgs {
        args: columns.iter().cloned().map(ColumnarValue::Array).collect(),
        arg_fields: columns.iter().map(|c| field("arg", c)).collect(),
        number_rows: rows,
        return_field: Arc::new(Field::new("out", udf.return_type(&types).unwrap(), true)),
        config_options: Arc::new(ConfigOptions::default()),
    };
    udf.invoke_with_args(args)
        .unwrap()
        .into_array(rows)
        .unwrap()
}

/// What DataFusion hands an aggregate's accumulator factory for these columns.
pub struct AggregateInputs {
    schema: Schema,
    exprs: Vec<Arc<dyn PhysicalExpr>>,
    fields: Vec<FieldRef>,
    return_field: FieldRef,
}

impl AggregateInputs {
    pub fn new(udaf: &dyn AggregateUDFImpl, columns: &[ArrayRef]) -> Self {
        let fields: Vec<FieldRef> = columns
            .iter()
            .enumerate()
            .map(|(i, c)| field(&format!("c{i}"), c))
            .collect();
        let exprs = (0..columns.len())
            .map(|i| Arc::new(Column::new(&format!("c{i}"), i)) as Arc<dyn PhysicalExpr>)
            .collect();
        let types: Vec<DataType> = columns.iter().map(|c| c.data_type().clone()).collect();
        let return_field = Arc::new(Field::new("out", udaf.return_type(&types).unwrap(), true));
        Self {
            schema: Schema::new(fields.clone()),
            exprs,
            fields,
            return_field,
        }
    }

    /// Argument `index` as the constant `value` (a literal in the query), not a column.
    pub fn with_constant(mut self, index: usize, value: ScalarValue) -> Self {
        self.exprs[index] = Arc::new(Literal::new(value));
        self
    }

    pub fn args(&self) -> AccumulatorArgs<'_> {
        AccumulatorArgs {
            return_field: Arc::clone(&self.return_field),
            schema: &self.schema,
            ignore_nulls: false,
            order_bys: &[],
            is_reversed: false,
            name: "bench",
            is_distinct: false,
            exprs: &self.exprs,
            expr_fields: &self.fields,
        }
    }
}

/// One partial aggregate over one batch, as DataFusion runs it: a fresh accumulator from
/// `inputs`, updated with `columns`, evaluated.
pub fn accumulate(
    udaf: &dyn AggregateUDFImpl,
    inputs: &AggregateInputs,
    columns: &[ArrayRef],
) -> ScalarValue {
    let mut acc = udaf.accumulator(inputs.args()).unwrap();
    acc.update_batch(columns).unwrap();
    acc.evaluate().unwrap()
}

/// One grouped partial aggregate over one batch, as DataFusion's hash aggregate runs it: a
/// fresh groups accumulator from `inputs`, updated with `columns` (row `i` in group
/// `groups[i]`), evaluated for all groups.
pub fn accumulate_groups(
    udaf: &dyn AggregateUDFImpl,
    inputs: &AggregateInputs,
    columns: &[ArrayRef],
    groups: &[usize],
) -> ArrayRef {
    let total = groups.iter().max().map_or(0, |g| g + 1);
    let mut acc = udaf.create_groups_accumulator(inputs.args()).unwrap();
    acc.update_batch(columns, groups, None, total).unwrap();
    acc.evaluate(EmitTo::All).unwrap()
}

/// A list column: `values` cut into rows of the given lengths.
pub fn list_of(values: impl Array + 'static, lengths: &[usize]) -> ArrayRef {
    let item = Arc::new(Field::new("item", values.data_type().clone(), true));
    Arc::new(ListArray::new(
        item,
        OffsetBuffer::from_lengths(lengths.iter().copied()),
        Arc::new(values),
        None,
    ))
}
