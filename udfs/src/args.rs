//! Small helpers to read UDF arguments with errors that name the function and argument.

use arrow::array::{
    Array, ArrayRef, AsArray, Float32Array, Float64Array, Int32Array, ListArray, PrimitiveArray,
    StringArray,
};
use arrow::compute::cast;
use arrow::datatypes::{ArrowPrimitiveType, DataType, Float32Type};
use datafusion::common::{Result, exec_err};

/// Casts an argument to Float64 (accepting any numeric input) and returns it as a typed array.
pub(crate) fn float64(func: &str, arg: &ArrayRef) -> Result<Float64Array> {
    match cast(arg, &DataType::Float64) {
        Ok(a) => Ok(a.as_primitive::<arrow::datatypes::Float64Type>().clone()),
        Err(e) => exec_err!(
            "{func}: expected a numeric argument, found {}: {e}",
            arg.data_type()
        ),
    }
}

/// The values of primitive columns with nulls replaced by 0: borrowed from the array when it
/// has no nulls (the usual case: callers impute before), copied otherwise.
pub(crate) fn nulls_as_zero<T: ArrowPrimitiveType>(
    columns: &[PrimitiveArray<T>],
) -> Vec<std::borrow::Cow<'_, [T::Native]>> {
    columns
        .iter()
        .map(|col| {
            if col.null_count() == 0 {
                std::borrow::Cow::Borrowed(col.values().as_ref())
            } else {
                std::borrow::Cow::Owned(
                    (0..col.len())
                        .map(|i| {
                            if col.is_null(i) {
                                T::Native::default()
                            } else {
                                col.value(i)
                            }
                        })
                        .collect(),
                )
            }
        })
        .collect()
}

/// Coordinate arguments as the K-Means kernels read them: `Float32` when every one is (points
/// stored in single precision), otherwise each cast to `Float64`.
pub(crate) enum FloatColumns {
    /// Single-precision columns, as given.
    F32(Vec<Float32Array>),
    /// Columns cast to double precision.
    F64(Vec<Float64Array>),
}

/// Reads `args` as [`FloatColumns`].
pub(crate) fn float_columns(func: &str, args: &[ArrayRef]) -> Result<FloatColumns> {
    if !args.is_empty() && args.iter().all(|a| a.data_type() == &DataType::Float32) {
        return Ok(FloatColumns::F32(
            args.iter()
                .map(|a| a.as_primitive::<Float32Type>().clone())
                .collect(),
        ));
    }
    Ok(FloatColumns::F64(
        args.iter()
            .map(|a| float64(func, a))
            .collect::<Result<_>>()?,
    ))
}

/// Casts an argument to Int64 and returns it as a typed array.
pub(crate) fn int64(func: &str, arg: &ArrayRef) -> Result<arrow::array::Int64Array> {
    match cast(arg, &DataType::Int64) {
        Ok(a) => Ok(a.as_primitive::<arrow::datatypes::Int64Type>().clone()),
        Err(e) => exec_err!(
            "{func}: expected an integer argument, found {}: {e}",
            arg.data_type()
        ),
    }
}

/// Casts an argument to Int32 and returns it as a typed array.
pub(crate) fn int32(func: &str, arg: &ArrayRef) -> Result<Int32Array> {
    match cast(arg, &DataType::Int32) {
        Ok(a) => Ok(a.as_primitive::<arrow::datatypes::Int32Type>().clone()),
        Err(e) => exec_err!(
            "{func}: expected an integer argument, found {}: {e}",
            arg.data_type()
        ),
    }
}

/// Casts an argument to Utf8 and returns it as a typed array.
pub(crate) fn utf8(func: &str, arg: &ArrayRef) -> Result<StringArray> {
    match cast(arg, &DataType::Utf8) {
        Ok(a) => Ok(a.as_string::<i32>().clone()),
        Err(e) => exec_err!(
            "{func}: expected a string argument, found {}: {e}",
            arg.data_type()
        ),
    }
}

/// Casts a list argument to `List<item>` ([`crate::lists::list_type`]); `what` names the
/// expected list in the error (`"a list of floats"`).
fn list_of(func: &str, arg: &ArrayRef, item: DataType, what: &str) -> Result<ListArray> {
    match cast(arg, &crate::lists::list_type(item)) {
        Ok(a) => Ok(a.as_list::<i32>().clone()),
        Err(e) => exec_err!("{func}: expected {what}, found {}: {e}", arg.data_type()),
    }
}

/// Reads a `List<Float32>` argument (casting other float lists).
pub(crate) fn float32_list(func: &str, arg: &ArrayRef) -> Result<ListArray> {
    list_of(func, arg, DataType::Float32, "a list of floats")
}

/// Reads a `List<Float64>` argument (casting other numeric lists).
pub(crate) fn float64_list(func: &str, arg: &ArrayRef) -> Result<ListArray> {
    list_of(func, arg, DataType::Float64, "a list of numbers")
}

/// Reads a factor-vector argument: a `List<Float32>`, or the result struct of `als_solve`
/// (its `factors` field, with the struct's nulls), so that a fit can keep that struct in a work
/// table and pass it on whole. (Reading the field in SQL instead, `solved['factors']`, makes
/// DataFusion evaluate the solve once per field it reads, and Ballista's plan serialisation
/// loses such a field's qualifier when it is pushed below a join.)
pub(crate) fn factor_list(func: &str, arg: &ArrayRef) -> Result<ListArray> {
    if let Some(s) = arg.as_struct_opt() {
        let Some(factors) = s.column_by_name("factors") else {
            return exec_err!("{func}: expected factors, found a struct without a 'factors' field");
        };
        let list = float32_list(func, factors)?;
        let nulls = arrow::buffer::NullBuffer::union(list.nulls(), s.nulls());
        let (field, offsets, values, _) = list.into_parts();
        return Ok(ListArray::new(field, offsets, values, nulls));
    }
    float32_list(func, arg)
}

/// Reads a `List<Int32>` argument (casting other integer lists).
pub(crate) fn int32_list(func: &str, arg: &ArrayRef) -> Result<ListArray> {
    list_of(func, arg, DataType::Int32, "a list of integers")
}

/// The values of row `i` of a `List<Float32>` as a slice (empty when null).
pub(crate) fn f32_row(list: &ListArray, i: usize) -> Vec<f32> {
    if list.is_null(i) {
        return Vec::new();
    }
    let offsets = list.value_offsets();
    let (start, end) = (offsets[i] as usize, offsets[i + 1] as usize);
    let values = list.values().as_primitive::<Float32Type>();
    (start..end).map(|j| values.value(j)).collect()
}
