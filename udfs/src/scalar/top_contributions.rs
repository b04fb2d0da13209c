//! `top_contributions(k, name1, value1, …)`: a score's largest parts, readably.

use std::sync::{Arc, LazyLock};

use arrow::array::{Array, ListBuilder, StringBuilder};
use arrow::datatypes::DataType;
use datafusion::common::{Result, exec_err};
use datafusion::logical_expr::Documentation;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

use crate::lists::list_type;

/// `top_contributions(k, name1, value1, …, nameN, valueN) -> list<string>`: the names of the
/// (at most) `k` values largest in magnitude, largest first, each followed by ` ↑` when its
/// value is positive and ` ↓` when negative; zero and null values are left out, ties keep the
/// argument order. For a linear score, the values are each feature's part of it (coefficient ×
/// standardised value), so the list says what pushes a customer's score up or down from the
/// average customer's.
///
/// ```sql
/// SELECT top_contributions(2, 'recency_days', -0.8, 'purchases', 1.2, 'age', 0.1);
/// -- ['purchases ↑', 'recency_days ↓']
/// ```
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct TopContributions {
    signature: Signature,
}

impl Default for TopContributions {
    fn default() -> Self {
        Self::new()
    }
}

impl TopContributions {
    /// Creates the function.
    pub fn new() -> Self {
        Self {
            signature: Signature::variadic_any(Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for TopContributions {
    fn documentation(&self) -> Option<&Documentation> {
        static DOC: LazyLock<Documentation> = LazyLock::new(|| {
            crate::docs::documentation(
                "`top_contributions(k, name1, value1, …, nameN, valueN) -> list<string>`: the names of the (at most) `k` values largest in magnitude, largest first, each followed by ` ↑` when its value is positive and ` ↓` when negative; zero and null values are left out, ties keep the argument order. For a linear score the values are each feature's part of it (coefficient × standardised value): what pushes a customer's score up or down from the average customer's.",
                "top_contributions(k, name1, value1, …)",
                "SELECT top_contributions(2, 'recency_days', -0.8, 'purchases', 1.2, 'age', 0.1); -- ['purchases ↑', 'recency_days ↓']",
            )
        });
        Some(&DOC)
    }

    fn name(&self) -> &str {
        "top_contributions"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(list_type(DataType::Utf8))
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        if arrays.len() < 3 || arrays.len() % 2 == 0 {
            return exec_err!(
                "top_contributions: expected k and (name, value) pairs, got {} arguments",
                arrays.len()
            );
        }
        let k = crate::args::int64("top_contributions", &arrays[0])?;
        let pairs: Vec<_> = arrays[1..]
            .chunks_exact(2)
            .map(|p| {
                Ok((
                    crate::args::utf8("top_contributions", &p[0])?,
                    crate::args::float64("top_contributions", &p[1])?,
                ))
            })
            .collect::<Result<_>>()?;
        let rows = args.number_rows;
        let mut out = ListBuilder::new(StringBuilder::new());
        let mut parts: Vec<(usize, f64)> = Vec::with_capacity(pairs.len());
        for row in 0..rows {
            parts.clear();
            for (i, (names, values)) in pairs.iter().enumerate() {
                if values.is_valid(row) && !names.is_null(row) {
                    let v = values.value(row);
                    if v != 0.0 && v.is_finite() {
                        parts.push((i, v));
                    }
                }
            }
            // Stable: equal magnitudes keep the argument order.
            parts.sort_by(|a, b| b.1.abs().total_cmp(&a.1.abs()));
            let take = if k.is_valid(row) {
                usize::try_from(k.value(row).max(0)).unwrap_or(0)
            } else {
                0
            };
            for &(i, v) in parts.iter().take(take) {
                let arrow = if v > 0.0 { "↑" } else { "↓" };
                out.values()
                    .append_value(format!("{} {arrow}", pairs[i].0.value(row)));
            }
            out.append(true);
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
    }
}
