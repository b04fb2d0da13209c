//! Building `List` scalars and arrays from plain vectors, for UDF results and UDAF states.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, Float32Array, Float64Array, Int32Array, ListArray, PrimitiveArray,
};
use arrow::buffer::OffsetBuffer;
use arrow::datatypes::{ArrowPrimitiveType, DataType, Field};
use datafusion::common::ScalarValue;

/// The `List<item>` data type with nullable items, as DataFusion's own list functions produce.
pub fn list_type(item: DataType) -> DataType {
    DataType::List(Arc::new(Field::new_list_field(item, true)))
}

/// One-row list array wrapping `values`.
fn one_row<T: ArrowPrimitiveType>(values: PrimitiveArray<T>) -> ListArray {
    let len = values.len();
    uniform_list(Arc::new(values), len, 1)
}

/// A list array of `rows` rows, each holding the next `width` of `values` (a row-major matrix as
/// one vector per row).
pub fn uniform_list(values: ArrayRef, width: usize, rows: usize) -> ListArray {
    let field = Arc::new(Field::new_list_field(values.data_type().clone(), true));
    ListArray::new(
        field,
        OffsetBuffer::from_lengths(vec![width; rows]),
        values,
        None,
    )
}

/// A `List<Float64>` scalar.
pub fn f64_list_scalar(values: Vec<f64>) -> ScalarValue {
    ScalarValue::List(Arc::new(one_row(Float64Array::from(values))))
}

/// A `List<Float32>` scalar.
pub fn f32_list_scalar(values: Vec<f32>) -> ScalarValue {
    ScalarValue::List(Arc::new(one_row(Float32Array::from(values))))
}

/// A `List<Int32>` scalar.
pub fn i32_list_scalar(values: Vec<i32>) -> ScalarValue {
    ScalarValue::List(Arc::new(one_row(Int32Array::from(values))))
}
