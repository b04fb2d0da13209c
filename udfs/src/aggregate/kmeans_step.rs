//! `kmeans_step(x1, …, xd)`: one Lloyd iteration as an aggregate.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::{DataType, Field, FieldRef, Float64Type};
use datafusion::common::{Result, ScalarValue, exec_err};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::format_state_name;
use datafusion::logical_expr::{Accumulator, AggregateUDFImpl, Signature, Volatility};

use crate::lists::{f64_list_scalar, list_type};
use crate::ml::Centroids;

/// `kmeans_step(x1, …, xd) -> list<double>`: assigns every point to its nearest centroid (of the
/// centroids this instance carries) and returns, flattened, the per-cluster coordinate sums
/// (`k·d`), the per-cluster counts (`k`) and the total squared distance (inertia, 1 value).
///
/// The state is that same vector, so partial results from any split of the data add up to the
/// one-pass result: each Lloyd iteration is one aggregation over the points, and only the `k×d`
/// centroids travel. Null coordinates count as 0 (callers impute before).
///
/// ```sql
/// SELECT kmeans_step(recency_z, frequency_z, monetary_z) FROM prepared_features;
/// ```
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct KMeansStep {
    signature: Signature,
    centroids: Arc<Centroids>,
}

impl Default for KMeansStep {
    fn default() -> Self {
        Self::new(Centroids::default())
    }
}

impl KMeansStep {
    /// A step against these centroids.
    pub fn new(centroids: Centroids) -> Self {
        Self {
            signature: Signature::variadic_any(Volatility::Immutable),
            centroids: Arc::new(centroids),
        }
    }
}

impl KMeansStep {
    /// The centroids points are assigned to.
    pub fn centroids(&self) -> &Centroids {
        &self.centroids
    }
}

/// The decoded result of one `kmeans_step`.
#[derive(Debug, Clone, PartialEq)]
pub struct KMeansStepResult {
    /// Per-cluster coordinate sums, `k × d` row-major.
    pub sums: Vec<f64>,
    /// Per-cluster point counts.
    pub counts: Vec<f64>,
    /// Sum of squared distances to the assigned centroids.
    pub inertia: f64,
}

impl KMeansStepResult {
    /// Splits the flat vector `kmeans_step` returns; `None` when its length does not fit `k`, `d`.
    pub fn from_flat(flat: &[f64], k: usize, d: usize) -> Option<Self> {
        (flat.len() == k * d + k + 1).then(|| Self {
            sums: flat[..k * d].to_vec(),
            counts: flat[k * d..k * d + k].to_vec(),
            inertia: flat[k * d + k],
        })
    }
}

impl AggregateUDFImpl for KMeansStep {
    fn name(&self) -> &str {
        "kmeans_step"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(list_type(DataType::Float64))
    }
    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(vec![Arc::new(Field::new(
            format_state_name(args.name, "partial"),
            list_type(DataType::Float64),
            true,
        ))])
    }
    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        if self.centroids.is_empty() {
            return exec_err!(
                "kmeans_step has no centroids: it is built by the segments stage, not called from SQL"
            );
        }
        if args.exprs.len() != self.centroids.d() {
            return exec_err!(
                "kmeans_step: {} features given, centroids have {}",
                args.exprs.len(),
                self.centroids.d()
            );
        }
        Ok(Box::new(KMeansStepAccumulator::new(Arc::clone(
            &self.centroids,
        ))))
    }
}

/// Every contribution is rounded to a multiple of 2⁻²⁴ before it is added. Sums of such numbers
/// are exact in f64 while they stay below 2²⁹ in magnitude (far above any standardised feature
/// sum), so the result does not depend on how rows were split or in which order partial states
/// merge: local runs, reruns and Ballista runs give bit-identical centroids. The rounding error
/// (6·10⁻⁸ per coordinate) is far below any meaningful centroid movement.
const GRAIN: f64 = (1u64 << 24) as f64;

/// `x` rounded to the accumulation grain.
#[inline]
fn quantize(x: f64) -> f64 {
    (x * GRAIN).round() / GRAIN
}

/// Per-partition running sums of one Lloyd step.
#[derive(Debug)]
struct KMeansStepAccumulator {
    centroids: Arc<Centroids>,
    /// `[sums (k·d), counts (k), inertia]`
    totals: Vec<f64>,
}

impl KMeansStepAccumulator {
    fn new(centroids: Arc<Centroids>) -> Self {
        let (k, d) = (centroids.k(), centroids.d());
        Self {
            centroids,
            totals: vec![0.0; k * d + k + 1],
        }
    }
}

impl Accumulator for KMeansStepAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let columns = values
            .iter()
            .map(|a| crate::args::float64("kmeans_step", a))
            .collect::<Result<Vec<_>>>()?;
        let (k, d) = (self.centroids.k(), self.centroids.d());
        let rows = columns.first().map_or(0, Array::len);
        let mut point = vec![0.0; d];
        for row in 0..rows {
            for (p, col) in point.iter_mut().zip(&columns) {
                *p = if col.is_null(row) {
                    0.0
                } else {
                    col.value(row)
                };
            }
            let (c, dist) = self.centroids.nearest(&point);
            for (s, p) in self.totals[c * d..(c + 1) * d].iter_mut().zip(&point) {
                *s += quantize(*p);
            }
            self.totals[k * d + c] += 1.0;
            self.totals[k * d + k] += quantize(dist);
        }
        Ok(())
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        Ok(f64_list_scalar(self.totals.clone()))
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self) + self.totals.capacity() * 8
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(vec![self.evaluate()?])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let Some(partials) = states.first() else {
            return exec_err!("kmeans_step: merge without state");
        };
        let partials = partials.as_list::<i32>();
        for row in 0..partials.len() {
            if partials.is_null(row) {
                continue;
            }
            let part = partials.value(row);
            let part = part.as_primitive::<Float64Type>();
            if part.len() != self.totals.len() {
                return exec_err!(
                    "kmeans_step: partial state of {} values, expected {}",
                    part.len(),
                    self.totals.len()
                );
            }
            for (t, v) in self.totals.iter_mut().zip(part.values()) {
                *t += v;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic, reason = "tests fail by panicking")]
mod tests {
    use arrow::array::Float64Array;

    use super::*;

    fn flat(acc: &mut KMeansStepAccumulator) -> Vec<f64> {
        match acc.evaluate().unwrap() {
            ScalarValue::List(l) => l.value(0).as_primitive::<Float64Type>().values().to_vec(),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn split_then_merge_equals_one_pass() {
        let centroids = Arc::new(Centroids::new(2, 1, vec![0.0, 10.0]).unwrap());
        let xs: ArrayRef = Arc::new(Float64Array::from(vec![1.0, 2.0, 9.0, 12.0, -1.0]));
        let mut one = KMeansStepAccumulator::new(Arc::clone(&centroids));
        one.update_batch(&[Arc::clone(&xs)]).unwrap();

        let mut a = KMeansStepAccumulator::new(Arc::clone(&centroids));
        a.update_batch(&[xs.slice(0, 2)]).unwrap();
        let mut b = KMeansStepAccumulator::new(Arc::clone(&centroids));
        b.update_batch(&[xs.slice(2, 3)]).unwrap();
        let mut merged = KMeansStepAccumulator::new(centroids);
        let states: Vec<ArrayRef> = vec![
            ScalarValue::iter_to_array(vec![
                a.state().unwrap().remove(0),
                b.state().unwrap().remove(0),
            ])
            .unwrap(),
        ];
        merged.merge_batch(&states).unwrap();
        assert_eq!(flat(&mut merged), flat(&mut one));
        let r = KMeansStepResult::from_flat(&flat(&mut one), 2, 1).unwrap();
        assert_eq!(r.sums, vec![2.0, 21.0]);
        assert_eq!(r.counts, vec![3.0, 2.0]);
        assert_eq!(r.inertia, 1.0 + 4.0 + 1.0 + 1.0 + 4.0);
    }
}
