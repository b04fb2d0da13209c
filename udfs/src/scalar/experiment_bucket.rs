//! `experiment_bucket(experiment_key, customer_id)`: where a customer falls in [0, 1) for an
//! experiment, the number its arm is cut from. It is GrowthBook's hash (version 2: FNV-1a 32-bit
//! of the key followed by the id, FNV-1a again of that number's decimal digits, modulo 10,000,
//! divided by 10,000), so GrowthBook's SDKs, or any system that follows the same three lines,
//! put every customer in the same arm as Persona does.

use std::sync::{Arc, LazyLock};

use arrow::array::{Array, Float64Array};
use arrow::datatypes::DataType;
use datafusion::common::{Result, exec_err};
use datafusion::logical_expr::Documentation;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

/// FNV-1a, 32 bits, over the UTF-16 code units of `s` (as JavaScript's `charCodeAt` reads a
/// string: GrowthBook's reference SDK).
fn fnv1a32(s: &str) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    for unit in s.encode_utf16() {
        hash ^= u32::from(unit);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash
}

/// The bucket of `id` in experiment `key`: in [0, 1), in steps of 1/10,000.
pub fn experiment_bucket(key: &str, id: &str) -> f64 {
    let first = fnv1a32(&format!("{key}{id}"));
    f64::from(fnv1a32(&first.to_string()) % 10_000) / 10_000.0
}

/// `experiment_bucket(experiment_key, customer_id) -> double` (null when either is null).
///
/// ```sql
/// SELECT experiment_bucket('spring_email', 'C000042');
/// ```
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct ExperimentBucket {
    signature: Signature,
}

impl Default for ExperimentBucket {
    fn default() -> Self {
        Self::new()
    }
}

impl ExperimentBucket {
    /// Creates the function.
    pub fn new() -> Self {
        Self {
            signature: Signature::string(2, Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for ExperimentBucket {
    fn documentation(&self) -> Option<&Documentation> {
        static DOC: LazyLock<Documentation> = LazyLock::new(|| {
            crate::docs::documentation(
                "`experiment_bucket(experiment_key, customer_id) -> double`: the customer's place in [0, 1) for the experiment, GrowthBook's hash (version 2), from which the arm is cut by the arms' weights.",
                "experiment_bucket(experiment_key, customer_id)",
                "SELECT experiment_bucket('spring_email', 'C000042');",
            )
        });
        Some(&DOC)
    }

    fn name(&self) -> &str {
        "experiment_bucket"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Float64)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let [keys, ids] = arrays.as_slice() else {
            return exec_err!(
                "experiment_bucket: expected two arguments, got {}",
                arrays.len()
            );
        };
        let (keys, ids) = (
            crate::args::utf8(self.name(), keys)?,
            crate::args::utf8(self.name(), ids)?,
        );
        let out: Float64Array = (0..ids.len())
            .map(|i| {
                (!keys.is_null(i) && !ids.is_null(i))
                    .then(|| experiment_bucket(keys.value(i), ids.value(i)))
            })
            .collect();
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// GrowthBook's published test vectors for its version-2 hash (sdk-js test/cases.json).
    #[test]
    fn matches_growthbooks_hash() {
        for (seed, value, expected) in [
            ("seed", "a", 0.0505),
            ("seed", "b", 0.2696),
            ("foo", "ab", 0.2575),
            ("foo", "def", 0.2019),
            ("89123klj", "8952klfjas09ujkasdf", 0.124),
            ("90850943850283058242805", "123", 0.7516),
            ("()**(%$##$%#$#", "___)((*\":&", 0.0128),
        ] {
            assert_eq!(experiment_bucket(seed, value), expected, "{seed} {value}");
        }
    }
}
