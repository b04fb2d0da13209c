//! What the stages of a night report and hand each other, kept by type so that a new stage
//! adds no field to the night or the manifest.
//!
//! - [`Reports`]: each Rust stage's report for the manifest (one section per [`Report::KEY`],
//!   `segments`, `recommendations`, …) and for the run's summary on the terminal.
//! - [`Handoffs`]: values one stage computes for a later one (the evaluation fit's item
//!   factors for the published fit's warm start, its parameters for the `evaluation` SQL).

use std::any::{Any, TypeId};
use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

use crate::error::{PipelineError, Result};

/// A stage's report: a section of the manifest, and lines of the run's summary.
pub trait Report: Serialize + fmt::Debug + Send + Sync + 'static {
    /// Its key in the manifest (`"segments"`).
    const KEY: &'static str;

    /// Its lines in the summary `persona run` prints (none by default).
    fn summary(&self, _f: &mut fmt::Formatter<'_>) -> fmt::Result {
        Ok(())
    }
}

/// A [`Report`] of any type, as the night keeps it.
trait AnyReport: fmt::Debug + Send + Sync {
    fn key(&self) -> &'static str;
    fn json(&self) -> serde_json::Result<serde_json::Value>;
    fn summary(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result;
    fn as_any(&self) -> &dyn Any;
    fn as_any_mut(&mut self) -> &mut dyn Any;
}

impl<T: Report> AnyReport for T {
    fn key(&self) -> &'static str {
        T::KEY
    }
    fn json(&self) -> serde_json::Result<serde_json::Value> {
        serde_json::to_value(self)
    }
    fn summary(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        Report::summary(self, f)
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

/// The reports of a night's stages, in the order they were made.
#[derive(Debug, Default)]
pub struct Reports(Vec<Box<dyn AnyReport>>);

impl Reports {
    /// Records `report`, replacing an earlier one of its type.
    pub fn put<T: Report>(&mut self, report: T) {
        self.0.retain(|r| r.key() != T::KEY);
        self.0.push(Box::new(report));
    }

    /// The report of type `T`, if its stage ran.
    pub fn get<T: Report>(&self) -> Option<&T> {
        self.0.iter().find_map(|r| r.as_any().downcast_ref())
    }

    /// The report of type `T`, to complete it.
    pub fn get_mut<T: Report>(&mut self) -> Option<&mut T> {
        self.0
            .iter_mut()
            .find_map(|r| r.as_any_mut().downcast_mut())
    }

    /// The manifest's sections: each report as JSON under its key.
    pub fn sections(&self) -> Result<BTreeMap<String, serde_json::Value>> {
        self.0
            .iter()
            .map(|r| {
                let json = r.json().map_err(|e| {
                    PipelineError::Internal(format!("manifest section {}: {e}", r.key()))
                })?;
                Ok((r.key().to_string(), json))
            })
            .collect()
    }

    /// Their summaries, as `persona run` prints them.
    pub fn summary(&self) -> String {
        struct Lines<'a>(&'a dyn AnyReport);
        impl fmt::Display for Lines<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.summary(f)
            }
        }
        self.0
            .iter()
            .map(|r| Lines(r.as_ref()).to_string())
            .collect()
    }
}

/// Values that one stage leaves for a later one, one per type.
#[derive(Default)]
pub struct Handoffs(BTreeMap<TypeId, Box<dyn Any + Send + Sync>>);

impl fmt::Debug for Handoffs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Handoffs({} values)", self.0.len())
    }
}

impl Handoffs {
    /// Leaves `value` for a later stage, replacing one of its type.
    pub fn put<T: Any + Send + Sync>(&mut self, value: T) {
        self.0.insert(TypeId::of::<T>(), Box::new(value));
    }

    /// The value of type `T`, if an earlier stage left one.
    pub fn get<T: Any + Send + Sync>(&self) -> Option<&T> {
        self.0.get(&TypeId::of::<T>())?.downcast_ref()
    }

    /// Takes the value of type `T` out, if an earlier stage left one.
    pub fn take<T: Any + Send + Sync>(&mut self) -> Option<T> {
        let value = self.0.remove(&TypeId::of::<T>())?;
        value.downcast().ok().map(|v| *v)
    }
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "tests fail by panicking")]
mod tests {
    use super::*;

    #[derive(Debug, Serialize)]
    struct Fit {
        loss: f64,
    }
    impl Report for Fit {
        const KEY: &'static str = "fit";
        fn summary(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            writeln!(f, "loss {}", self.loss)
        }
    }

    #[test]
    fn reports_are_kept_by_type_and_become_sections() {
        let mut reports = Reports::default();
        assert!(reports.get::<Fit>().is_none());
        reports.put(Fit { loss: 1.0 });
        reports.get_mut::<Fit>().unwrap().loss = 0.5;
        reports.put(Fit { loss: 0.25 });
        assert_eq!(reports.get::<Fit>().unwrap().loss, 0.25);
        let sections = reports.sections().unwrap();
        assert_eq!(sections.len(), 1);
        assert_eq!(sections["fit"]["loss"], 0.25);
        assert_eq!(reports.summary(), "loss 0.25\n");
    }

    #[test]
    fn handoffs_are_taken_once() {
        let mut handoffs = Handoffs::default();
        handoffs.put(7_u32);
        assert_eq!(handoffs.get::<u32>(), Some(&7));
        assert_eq!(handoffs.take::<u32>(), Some(7));
        assert_eq!(handoffs.take::<u32>(), None);
    }
}
