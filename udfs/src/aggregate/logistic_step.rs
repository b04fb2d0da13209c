//! `logistic_step(x1, …, xd, label [, weight])`: one Newton pass of a logistic regression.

use std::sync::{Arc, LazyLock};

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::{DataType, Field, FieldRef, Float64Type};
use datafusion::common::{Result, ScalarValue, exec_err};
use datafusion::logical_expr::Documentation;
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::format_state_name;
use datafusion::logical_expr::{Accumulator, AggregateUDFImpl, Signature, Volatility};

use crate::args::FloatColumns;
use crate::lists::{f64_list_scalar, list_type};
use crate::ml::logistic::{LogisticModel, NewtonStats};

/// `logistic_step(x1, …, xd, label [, weight]) -> list<double>`: the log loss, gradient and
/// Hessian of the logistic regression this instance carries, summed over the rows
/// ([`NewtonStats::to_flat`]). The driver adds the L2 term and takes the Newton step
/// ([`crate::ml::logistic::newton_step`]); only the coefficients travel to the data.
///
/// A row whose label is null is skipped; a label counts as positive when it is above 0.5. A
/// null feature counts as 0 (callers standardise and impute before, so 0 is the mean). With a
/// weighted instance the last argument is the row's weight (null or negative: 0).
///
/// ```sql
/// SELECT logistic_step(recency_z, purchases_z, purchased) FROM training_rows;
/// ```
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct LogisticStep {
    signature: Signature,
    model: Arc<ModelBits>,
    weighted: bool,
}

/// A model compared and hashed bitwise, as plan comparison needs.
#[derive(Debug)]
struct ModelBits(LogisticModel);

impl PartialEq for ModelBits {
    fn eq(&self, other: &Self) -> bool {
        self.0.intercept.to_bits() == other.0.intercept.to_bits()
            && self.0.coefficients.len() == other.0.coefficients.len()
            && self
                .0
                .coefficients
                .iter()
                .zip(&other.0.coefficients)
                .all(|(a, b)| a.to_bits() == b.to_bits())
    }
}

impl Eq for ModelBits {}

impl std::hash::Hash for ModelBits {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.intercept.to_bits().hash(state);
        for c in &self.0.coefficients {
            c.to_bits().hash(state);
        }
    }
}

impl Default for LogisticStep {
    fn default() -> Self {
        Self::new(LogisticModel::zeros(0), false)
    }
}

impl LogisticStep {
    /// A pass at `model`; with `weighted`, the last argument is each row's weight.
    pub fn new(model: LogisticModel, weighted: bool) -> Self {
        Self {
            signature: Signature::variadic_any(Volatility::Immutable),
            model: Arc::new(ModelBits(model)),
            weighted,
        }
    }

    /// The model the sums are taken at.
    pub fn model(&self) -> &LogisticModel {
        &self.model.0
    }

    /// Whether the last argument is a weight.
    pub fn is_weighted(&self) -> bool {
        self.weighted
    }
}

impl AggregateUDFImpl for LogisticStep {
    fn documentation(&self) -> Option<&Documentation> {
        static DOC: LazyLock<Documentation> = LazyLock::new(|| {
            crate::docs::documentation(
                "`logistic_step(x1, …, xd, label [, weight]) -> list<double>`: the log loss, gradient and Hessian of the logistic regression this instance carries, summed over the rows, flattened as `[rows, weight, loss, gradient (d + 1), Hessian ((d + 1)²)]`. The driver adds the L2 term and takes the Newton step; partial sums from any split of the rows add up to the same bits. Null labels are skipped, null features count as 0; with a weighted instance the last argument is the row's weight.",
                "logistic_step(x1, …, xd, label [, weight])",
                "SELECT logistic_step(recency_z, purchases_z, purchased) FROM training_rows;",
            )
        });
        Some(&DOC)
    }

    fn name(&self) -> &str {
        "logistic_step"
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
        let d = self.model.0.coefficients.len();
        if d == 0 {
            return exec_err!(
                "logistic_step has no model: it is built by the propensity stage, not called from SQL"
            );
        }
        let expected = d + 1 + usize::from(self.weighted);
        if args.exprs.len() != expected {
            return exec_err!(
                "logistic_step: {} arguments given, expected {expected} ({d} features, a label{})",
                args.exprs.len(),
                if self.weighted { " and a weight" } else { "" }
            );
        }
        Ok(Box::new(LogisticStepAccumulator {
            model: Arc::clone(&self.model),
            weighted: self.weighted,
            stats: NewtonStats::new(d),
        }))
    }
}

#[derive(Debug)]
struct LogisticStepAccumulator {
    model: Arc<ModelBits>,
    weighted: bool,
    stats: NewtonStats,
}

impl LogisticStepAccumulator {
    fn add<C: Copy + Into<f64>>(
        &mut self,
        columns: &[&[C]],
        labels: &[Option<f64>],
        weights: &[f64],
    ) {
        let mut x = vec![0.0; columns.len()];
        for (i, label) in labels.iter().enumerate() {
            let Some(label) = label else { continue };
            for (v, col) in x.iter_mut().zip(columns) {
                *v = col[i].into();
            }
            let y = if *label > 0.5 { 1.0 } else { 0.0 };
            self.stats.add(&self.model.0, &x, y, weights[i]);
        }
    }
}

impl Accumulator for LogisticStepAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let d = self.stats.features;
        if values.len() < d + 1 {
            return exec_err!(
                "logistic_step: {} arguments, expected at least {}",
                values.len(),
                d + 1
            );
        }
        let rows = values[0].len();
        let label = crate::args::float64("logistic_step", &values[d])?;
        let labels: Vec<Option<f64>> = (0..rows)
            .map(|i| label.is_valid(i).then(|| label.value(i)))
            .collect();
        let weights: Vec<f64> = match values.get(d + 1).filter(|_| self.weighted) {
            None => vec![1.0; rows],
            Some(w) => {
                let w = crate::args::float64("logistic_step", w)?;
                (0..rows)
                    .map(|i| {
                        if w.is_valid(i) {
                            w.value(i).max(0.0)
                        } else {
                            0.0
                        }
                    })
                    .collect()
            }
        };
        match crate::args::float_columns("logistic_step", &values[..d])? {
            FloatColumns::F32(arrays) => {
                let dense = crate::args::nulls_as_zero(&arrays);
                let columns: Vec<&[f32]> = dense.iter().map(|c| c.as_ref()).collect();
                self.add(&columns, &labels, &weights);
            }
            FloatColumns::F64(arrays) => {
                let dense = crate::args::nulls_as_zero(&arrays);
                let columns: Vec<&[f64]> = dense.iter().map(|c| c.as_ref()).collect();
                self.add(&columns, &labels, &weights);
            }
        }
        Ok(())
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        Ok(f64_list_scalar(self.stats.to_flat()))
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self) + NewtonStats::flat_len(self.stats.features) * 8
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(vec![self.evaluate()?])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let Some(partials) = states.first() else {
            return exec_err!("logistic_step: merge without state");
        };
        let d = self.stats.features;
        let partials = partials.as_list::<i32>();
        for row in 0..partials.len() {
            if partials.is_null(row) {
                continue;
            }
            let part = partials.value(row);
            let part = part.as_primitive::<Float64Type>();
            let Some(other) = NewtonStats::from_flat(part.values(), d) else {
                return exec_err!(
                    "logistic_step: partial state of {} values, expected {}",
                    part.len(),
                    NewtonStats::flat_len(d)
                );
            };
            self.stats.merge(&other);
        }
        Ok(())
    }
}

#[cfg(test)]
#[expect(clippy::unwrap_used, clippy::panic, reason = "tests fail by panicking")]
mod tests {
    use arrow::array::{Float32Array, Float64Array};

    use super::*;
    use crate::ml::logistic::newton_step;

    /// Rows split over three partial accumulators, their states merged as DataFusion merges
    /// partitions: the fit is the kernel's on one slice of rows, bit for bit.
    #[test]
    fn partial_states_merge_into_the_kernels_fit_bit_for_bit() {
        let n = 2_000;
        let x1: Vec<f32> = (0..n)
            .map(|i| ((i * 37 % 101) as f32) / 50.0 - 1.0)
            .collect();
        let x2: Vec<f32> = (0..n)
            .map(|i| ((i * 53 % 97) as f32) / 48.0 - 1.0)
            .collect();
        let y: Vec<Option<f64>> = (0..n)
            .map(|i| {
                let noise = (i * 7 % 13) as f32 / 13.0 - 0.5;
                (i % 50 != 0).then(|| f64::from(u8::from(x1[i] - 0.5 * x2[i] + noise > 0.0)))
            })
            .collect();
        let columns = |r: std::ops::Range<usize>| -> Vec<ArrayRef> {
            vec![
                Arc::new(Float32Array::from(x1[r.clone()].to_vec())),
                Arc::new(Float32Array::from(x2[r.clone()].to_vec())),
                Arc::new(Float64Array::from(y[r].to_vec())),
            ]
        };
        let accumulator = |model: &LogisticModel| LogisticStepAccumulator {
            model: Arc::new(ModelBits(model.clone())),
            weighted: false,
            stats: NewtonStats::new(2),
        };
        let mut model = LogisticModel::zeros(2);
        let mut kernel = LogisticModel::zeros(2);
        for _ in 0..6 {
            let mut merged = accumulator(&model);
            for part in [0..700, 700..1_300, 1_300..n] {
                let mut partial = accumulator(&model);
                partial.update_batch(&columns(part)).unwrap();
                let state = partial.state().unwrap();
                merged.merge_batch(&[state[0].to_array().unwrap()]).unwrap();
            }
            let ScalarValue::List(list) = merged.evaluate().unwrap() else {
                panic!("a list");
            };
            let flat = list
                .value(0)
                .as_primitive::<Float64Type>()
                .values()
                .to_vec();
            let stats = NewtonStats::from_flat(&flat, 2).unwrap();
            assert_eq!(stats.rows, 1_960, "rows without a label are skipped");
            model = newton_step(&model, &stats, 1.0).unwrap().model;

            let mut one = NewtonStats::new(2);
            for i in (0..n).rev() {
                if let Some(label) = y[i] {
                    one.add(&kernel, &[f64::from(x1[i]), f64::from(x2[i])], label, 1.0);
                }
            }
            kernel = newton_step(&kernel, &one, 1.0).unwrap().model;
        }
        assert_eq!(model, kernel);
        assert!(model.coefficients[0] > 1.0 && model.coefficients[1] < 0.0);
    }

    #[test]
    fn a_model_less_instance_refuses_to_run() {
        let udaf = datafusion::logical_expr::AggregateUDF::from(LogisticStep::default());
        assert_eq!(udaf.name(), "logistic_step");
        assert!(LogisticStep::default().model().coefficients.is_empty());
    }
}
