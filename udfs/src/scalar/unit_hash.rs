//! `unit_hash(seed, v1, …)`: a deterministic pseudo-random number in [0, 1) per row.

use std::sync::{Arc, LazyLock};

use arrow::array::{Array, ArrayRef, Float64Array};
use arrow::datatypes::DataType;
use datafusion::common::{Result, exec_err};
use datafusion::logical_expr::Documentation;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

/// `unit_hash(seed, v1, …, vn) -> double`: a number in [0, 1) that depends only on the seed and
/// the row's values (numbers by their `f64` bit pattern, strings by their bytes; null is a value
/// of its own). Sampling with `WHERE unit_hash(seed, …) < p` keeps the same rows however the
/// table is split into partitions or files, which `random()` cannot: the k-means‖
/// initialisation and the k-means++ sample use it so a rerun picks the same points.
///
/// ```sql
/// SELECT * FROM points WHERE unit_hash(42, x, y) < 0.01; -- a reproducible 1% sample
/// ```
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct UnitHash {
    signature: Signature,
}

impl Default for UnitHash {
    fn default() -> Self {
        Self::new()
    }
}

impl UnitHash {
    /// Creates the function.
    pub fn new() -> Self {
        Self {
            signature: Signature::variadic_any(Volatility::Immutable),
        }
    }
}

/// SplitMix64's finaliser: a bijective mix of 64 bits.
#[inline]
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Folds one column into every row's running hash.
fn fold_column(func: &str, column: &ArrayRef, hashes: &mut [u64]) -> Result<()> {
    const NULL: u64 = 0x6E75_6C6C_6E75_6C6C;
    if matches!(
        column.data_type(),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
    ) {
        let strings = crate::args::utf8(func, column)?;
        for (i, h) in hashes.iter_mut().enumerate() {
            let value = if strings.is_null(i) {
                NULL
            } else {
                strings
                    .value(i)
                    .bytes()
                    .fold(0xCBF2_9CE4_8422_2325u64, |acc, b| {
                        (acc ^ u64::from(b)).wrapping_mul(0x0100_0000_01B3)
                    })
            };
            *h = mix(*h ^ value);
        }
        return Ok(());
    }
    let numbers = crate::args::float64(func, column)?;
    for (i, h) in hashes.iter_mut().enumerate() {
        let value = if numbers.is_null(i) {
            NULL
        } else {
            // +0.0 and −0.0 are the same point.
            (numbers.value(i) + 0.0).to_bits()
        };
        *h = mix(*h ^ value);
    }
    Ok(())
}

/// The hashes of `rows` rows of `values` under `seed`, as numbers in [0, 1).
pub fn unit_hashes(func: &str, seed: u64, values: &[ArrayRef], rows: usize) -> Result<Vec<f64>> {
    let mut hashes = vec![mix(seed); rows];
    for column in values {
        fold_column(func, column, &mut hashes)?;
    }
    Ok(hashes
        .into_iter()
        .map(|h| (h >> 11) as f64 / (1u64 << 53) as f64)
        .collect())
}

impl ScalarUDFImpl for UnitHash {
    fn documentation(&self) -> Option<&Documentation> {
        static DOC: LazyLock<Documentation> = LazyLock::new(|| {
            crate::docs::documentation(
                "`unit_hash(seed, v1, …, vn) -> double`: a number in [0, 1) that depends only on the seed and the row's values (numbers by their `f64` bit pattern, strings by their bytes; null is a value of its own). Sampling with `WHERE unit_hash(seed, …) < p` keeps the same rows however the table is split into partitions or files, which `random()` cannot: the k-means‖ initialisation and the k-means++ sample use it so a rerun picks the same points.",
                "unit_hash(seed, v1, …, vn)",
                "SELECT * FROM points WHERE unit_hash(42, x, y) < 0.01; -- a reproducible 1% sample",
            )
        });
        Some(&DOC)
    }

    fn name(&self) -> &str {
        "unit_hash"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Float64)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let Some((seed, values)) = arrays.split_first() else {
            return exec_err!("unit_hash: expected a seed and at least one value");
        };
        let seed = crate::args::int64(self.name(), seed)?;
        if seed.null_count() > 0 {
            return exec_err!("unit_hash: the seed must not be null");
        }
        // The seed is normally a literal; a per-row seed hashes like any other value.
        let seed_column: ArrayRef = Arc::new(seed);
        let mut all = vec![seed_column];
        all.extend(values.iter().cloned());
        let out = unit_hashes(self.name(), 0, &all, rows)?;
        Ok(ColumnarValue::Array(Arc::new(Float64Array::from(out))))
    }
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "tests fail by panicking")]
mod tests {
    use arrow::array::{Int64Array, StringArray};

    use super::*;

    #[test]
    fn hashes_depend_on_seed_and_values_only() {
        let xs: ArrayRef = Arc::new(Float64Array::from(vec![
            Some(1.0),
            Some(2.0),
            None,
            Some(-0.0),
        ]));
        let ids: ArrayRef = Arc::new(StringArray::from(vec!["a", "b", "c", "d"]));
        let seed: ArrayRef = Arc::new(Int64Array::from(vec![7; 4]));
        let all = unit_hashes(
            "t",
            0,
            &[Arc::clone(&seed), Arc::clone(&xs), Arc::clone(&ids)],
            4,
        )
        .unwrap();
        assert!(all.iter().all(|h| (0.0..1.0).contains(h)));
        // A slice hashes its rows exactly as the whole column did.
        let tail = unit_hashes(
            "t",
            0,
            &[seed.slice(2, 2), xs.slice(2, 2), ids.slice(2, 2)],
            2,
        )
        .unwrap();
        assert_eq!(tail, all[2..].to_vec());
        let other_seed: ArrayRef = Arc::new(Int64Array::from(vec![8; 4]));
        let moved = unit_hashes("t", 0, &[other_seed, xs, ids], 4).unwrap();
        assert!(moved.iter().zip(&all).all(|(a, b)| a != b));
    }

    #[test]
    fn hashes_look_uniform() {
        let xs: ArrayRef = Arc::new(Float64Array::from_iter_values((0..20_000).map(f64::from)));
        let h = unit_hashes("t", 3, &[xs], 20_000).unwrap();
        let below: usize = h.iter().filter(|&&v| v < 0.25).count();
        assert!(
            (4_600..5_400).contains(&below),
            "{below} of 20000 below 0.25"
        );
    }
}
