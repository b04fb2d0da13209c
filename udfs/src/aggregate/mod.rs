//! Aggregate UDFs, one file per function; [`functions`] lists them all.
//!
//! Most are one distributed pass of a model fit (`kmeans_step`, `als_solve_gathered`,
//! `als_gram`, `logistic_step`); `session_stats` counts a customer's sessions and active days for the features stage. Their
//! states merge associatively, so DataFusion
//! (and Ballista, across executors) may split the input anywhere: partial aggregates per
//! partition, merged after the shuffle.

mod als_gram;
mod als_solve_gathered;
mod kmeans_step;
mod logistic_step;
mod session_stats;

use std::sync::Arc;

use arrow::array::ArrayRef;
use datafusion::common::{Result, ScalarValue};
use datafusion::logical_expr::{Accumulator, AggregateUDF, EmitTo, GroupsAccumulator};

pub use als_gram::AlsGram;
pub use als_solve_gathered::AlsSolveGathered;
pub use kmeans_step::{KMeansStep, KMeansStepResult};
pub use logistic_step::LogisticStep;
pub use session_stats::SessionStats;

/// Every aggregate UDF, with its default (model-less) instance.
pub fn functions() -> Vec<Arc<AggregateUDF>> {
    vec![
        Arc::new(AggregateUDF::from(KMeansStep::default())),
        Arc::new(AggregateUDF::from(AlsSolveGathered::default())),
        Arc::new(AggregateUDF::from(AlsGram::default())),
        Arc::new(AggregateUDF::from(SessionStats::default())),
        Arc::new(AggregateUDF::from(LogisticStep::default())),
    ]
}

/// A groups accumulator that can be asked to hold at least `groups` groups, empty ones included
/// (an aggregate without GROUP BY has one group even when no row reached it).
pub(crate) trait GrowGroups: GroupsAccumulator {
    fn grow(&mut self, groups: usize);
}

/// A groups accumulator serving an aggregate without GROUP BY: every row is in group 0. One
/// adapter for all of Persona's grouped UDAFs, so the two paths cannot drift apart.
#[derive(Debug)]
pub(crate) struct SingleGroup<G>(pub(crate) G);

impl<G: GrowGroups + std::fmt::Debug + Sync> Accumulator for SingleGroup<G> {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let rows = values.first().map_or(0, |v| v.len());
        self.0.update_batch(values, &vec![0; rows], None, 1)
    }

    /// Evaluates a copy: DataFusion may evaluate again after more rows (a window frame
    /// growing row by row), so the state must survive. The grouped accumulators hand their
    /// state out on `evaluate`, so it is taken as partial state and merged back around it.
    fn evaluate(&mut self) -> Result<ScalarValue> {
        self.0.grow(1);
        let state = self.0.state(EmitTo::All)?;
        self.0.merge_batch(&state, &[0], 1)?;
        let result = self.0.evaluate(EmitTo::All)?;
        self.0.merge_batch(&state, &[0], 1)?;
        ScalarValue::try_from_array(&result, 0)
    }

    fn size(&self) -> usize {
        self.0.size()
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        self.0.grow(1);
        self.0
            .state(EmitTo::All)?
            .iter()
            .map(|a| ScalarValue::try_from_array(a, 0))
            .collect()
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let rows = states.first().map_or(0, |v| v.len());
        self.0.merge_batch(states, &vec![0; rows], 1)
    }
}
