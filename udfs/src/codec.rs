//! Serialising the model functions with their models, for distributed plans.
//!
//! Ballista sends plans between the client, the scheduler and the executors as protobuf, where a
//! UDF is its name plus an optional byte payload that an extension codec fills and reads. The
//! model functions put their model (centroids, factors) in that payload; the other functions
//! travel by name and are found in the receiver's registry ([`crate::register_all`]).
//!
//! The format is little-endian, length-prefixed and versioned by a leading tag byte per model.
//!
//! A factor matrix that the driver has stored on shared storage ([`Factors::stored_at`]: item
//! factors beyond a few megabytes would not fit in a gRPC message, and would be sent again
//! with every task) is written as its location only; the receiving process reads it through
//! its [`FactorFiles`], which knows the storage and keeps recent matrices in memory.

use std::sync::Arc;

use datafusion::common::{Result, exec_datafusion_err, exec_err};
use datafusion::logical_expr::{AggregateUDF, ScalarUDF};

use crate::aggregate::{AlsSolveGathered, KMeansStep, LogisticStep};
use crate::ml::logistic::LogisticModel;
use crate::ml::{AlsModelSide, Centroids, Factors, Solver};
use crate::scalar::{AlsSolve, AlsTopN, KMeansAssign, TopNModel};

/// Reads the factor matrices that plans name by location instead of carrying them. The
/// processes that decode plans (Ballista's scheduler and executors) implement it over their
/// object stores; this crate does no I/O.
pub trait FactorFiles: std::fmt::Debug + Send + Sync {
    /// The matrix stored at `location` by [`factors_file`], marked as stored there.
    fn read(&self, location: &str) -> Result<Arc<Factors>>;
}

/// The contents of a factors file: the same bytes as a matrix carried in a plan.
pub fn factors_file(f: &Factors) -> Vec<u8> {
    let mut buf = Vec::with_capacity(16 + f.values().len() * 4);
    write_factor_values(&mut buf, f);
    buf
}

/// Parses what [`factors_file`] wrote, read from `location`; the matrix is marked as stored
/// there, so that a process passing it on sends the location again.
pub fn parse_factors_file(bytes: &[u8], location: &str) -> Result<Factors> {
    let mut r = Reader {
        buf: bytes,
        pos: 0,
        files: None,
    };
    let f = r.factor_values()?;
    if r.pos != bytes.len() {
        return exec_err!(
            "factors file {location}: {} bytes after the matrix",
            bytes.len() - r.pos
        );
    }
    Ok(f.with_stored_at(location))
}

/// Writes the payload of a scalar model UDF; nothing for other functions.
pub fn encode_udf(udf: &ScalarUDF, buf: &mut Vec<u8>) {
    let any: &dyn std::any::Any = udf.inner().as_ref();
    if let Some(f) = any.downcast_ref::<KMeansAssign>() {
        write_centroids(buf, f.centroids());
    } else if let Some(f) = any.downcast_ref::<AlsTopN>() {
        let m = f.model();
        write_factors(buf, &m.items);
        write_u64(buf, m.n as u64);
        write_u64(buf, m.allowed.len() as u64);
        buf.extend(m.allowed.iter().map(|&a| u8::from(a)));
    } else if let Some(f) = any.downcast_ref::<AlsSolve>() {
        write_side(buf, f.side());
    }
}

/// Writes an ALS half-iteration's fixed side and hyper-parameters.
fn write_side(buf: &mut Vec<u8>, s: &AlsModelSide) {
    write_factors(buf, &s.other);
    write_factors(buf, &s.gram);
    write_factors(buf, &s.previous);
    buf.extend(s.alpha_bits.to_le_bytes());
    buf.extend(s.lambda_bits.to_le_bytes());
    buf.push(u8::from(s.weighted_lambda));
    // Solver: 0 = Cholesky, else conjugate gradient with (value − 1) steps.
    write_u64(
        buf,
        match s.solver {
            Solver::Cholesky => 0,
            Solver::ConjugateGradient { steps } => steps as u64 + 1,
        },
    );
    buf.push(u8::from(s.explicit));
}

/// Rebuilds a scalar model UDF from its payload; `None` when `name` is not a model function.
/// Factor matrices named by location are read through `files` (an error without one).
pub fn decode_udf(
    name: &str,
    buf: &[u8],
    files: Option<&dyn FactorFiles>,
) -> Result<Option<Arc<ScalarUDF>>> {
    let mut r = Reader { buf, pos: 0, files };
    let udf = match name {
        "kmeans_assign" => ScalarUDF::from(KMeansAssign::new(r.centroids()?)),
        "als_top_n" | "als_similar" => {
            let items = r.factors()?;
            let n = r.u64()? as usize;
            let len = r.u64()? as usize;
            let allowed = Arc::new(r.take(len)?.iter().map(|&b| b != 0).collect());
            let model = TopNModel { items, allowed, n };
            ScalarUDF::from(AlsTopN::from_parts(model, name == "als_similar"))
        }
        "als_solve" => ScalarUDF::from(AlsSolve::new(r.side()?)),
        _ => return Ok(None),
    };
    Ok(Some(Arc::new(udf)))
}

impl Reader<'_> {
    /// Reads what [`write_side`] wrote.
    fn side(&mut self) -> Result<AlsModelSide> {
        let other = self.factors()?;
        let gram = self.factors()?;
        let previous = self.factors()?;
        let alpha_bits = self.u32()?;
        let lambda_bits = self.u32()?;
        let weighted_lambda = self.take(1)?[0] != 0;
        let solver = match self.u64()? {
            0 => Solver::Cholesky,
            n => Solver::ConjugateGradient {
                steps: (n - 1) as usize,
            },
        };
        let explicit = self.take(1)?[0] != 0;
        Ok(AlsModelSide {
            other,
            gram,
            previous,
            alpha_bits,
            lambda_bits,
            weighted_lambda,
            solver,
            explicit,
        })
    }
}

/// Writes the payload of an aggregate model UDF; nothing for other functions.
pub fn encode_udaf(udaf: &AggregateUDF, buf: &mut Vec<u8>) {
    let any: &dyn std::any::Any = udaf.inner().as_ref();
    if let Some(f) = any.downcast_ref::<KMeansStep>() {
        write_centroids(buf, f.centroids());
        buf.push(u8::from(f.is_weighted()));
    } else if let Some(f) = any.downcast_ref::<AlsSolveGathered>() {
        write_side(buf, f.side());
    } else if let Some(f) = any.downcast_ref::<LogisticStep>() {
        let m = f.model();
        write_u64(buf, m.coefficients.len() as u64);
        for v in m.coefficients.iter().chain([&m.intercept]) {
            buf.extend(v.to_le_bytes());
        }
        buf.push(u8::from(f.is_weighted()));
    }
}

/// Rebuilds an aggregate model UDF from its payload; `None` when `name` is not a model function.
/// Factor matrices named by location are read through `files` (an error without one).
pub fn decode_udaf(
    name: &str,
    buf: &[u8],
    files: Option<&dyn FactorFiles>,
) -> Result<Option<Arc<AggregateUDF>>> {
    let mut r = Reader { buf, pos: 0, files };
    let udaf = match name {
        "kmeans_step" => {
            let centroids = r.centroids()?;
            if r.take(1)?[0] != 0 {
                AggregateUDF::from(KMeansStep::weighted(centroids))
            } else {
                AggregateUDF::from(KMeansStep::new(centroids))
            }
        }
        "als_solve_gathered" => AggregateUDF::from(AlsSolveGathered::new(r.side()?)),
        "logistic_step" => {
            let d = r.u64()? as usize;
            let mut values = Vec::with_capacity(d + 1);
            for _ in 0..=d {
                values.push(r.f64()?);
            }
            let intercept = values.pop().unwrap_or(0.0);
            let model = LogisticModel {
                coefficients: values,
                intercept,
            };
            AggregateUDF::from(LogisticStep::new(model, r.take(1)?[0] != 0))
        }
        _ => return Ok(None),
    };
    Ok(Some(Arc::new(udaf)))
}

fn write_u64(buf: &mut Vec<u8>, v: u64) {
    buf.extend(v.to_le_bytes());
}

fn write_centroids(buf: &mut Vec<u8>, c: &Centroids) {
    write_u64(buf, c.k() as u64);
    write_u64(buf, c.d() as u64);
    for v in c.values() {
        buf.extend(v.to_le_bytes());
    }
}

/// Factors in a plan: tag 0 and the values, or tag 1 and where they are stored.
fn write_factors(buf: &mut Vec<u8>, f: &Factors) {
    match f.stored_at() {
        Some(location) => {
            buf.push(1);
            write_u64(buf, location.len() as u64);
            buf.extend(location.as_bytes());
        }
        None => {
            buf.push(0);
            write_factor_values(buf, f);
        }
    }
}

fn write_factor_values(buf: &mut Vec<u8>, f: &Factors) {
    write_u64(buf, f.rows() as u64);
    write_u64(buf, f.rank() as u64);
    for v in f.values() {
        buf.extend(v.to_le_bytes());
    }
}

/// Reads the payload back, failing cleanly on truncated input.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    files: Option<&'a dyn FactorFiles>,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8]> {
        match self.buf.get(self.pos..self.pos.saturating_add(n)) {
            Some(s) => {
                self.pos += n;
                Ok(s)
            }
            None => exec_err!(
                "model payload truncated at byte {} (wanted {n} more)",
                self.pos
            ),
        }
    }

    fn u64(&mut self) -> Result<u64> {
        let mut b = [0u8; 8];
        b.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(b))
    }

    fn f64(&mut self) -> Result<f64> {
        Ok(f64::from_bits(self.u64()?))
    }

    fn u32(&mut self) -> Result<u32> {
        let mut b = [0u8; 4];
        b.copy_from_slice(self.take(4)?);
        Ok(u32::from_le_bytes(b))
    }

    fn centroids(&mut self) -> Result<Centroids> {
        let (k, d) = (self.u64()? as usize, self.u64()? as usize);
        if k == 0 {
            return Ok(Centroids::default());
        }
        let bytes = self.take(k.saturating_mul(d).saturating_mul(8))?;
        let values = bytes
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
            .collect();
        match Centroids::new(k, d, values) {
            Some(c) => Ok(c),
            None => exec_err!("bad centroids payload ({k}×{d})"),
        }
    }

    /// Reads what [`write_factors`] wrote: the values, or the stored matrix they name.
    fn factors(&mut self) -> Result<Arc<Factors>> {
        match self.take(1)?[0] {
            0 => Ok(Arc::new(self.factor_values()?)),
            1 => {
                let len = self.u64()? as usize;
                let files = self.files;
                let location = std::str::from_utf8(self.take(len)?)
                    .map_err(|e| exec_datafusion_err!("bad factors location in a plan: {e}"))?;
                match files {
                    Some(files) => files.read(location),
                    None => exec_err!(
                        "the plan names model factors stored at {location}, and this process \
                         has no storage to read them from (it must be Persona's scheduler or \
                         executor)"
                    ),
                }
            }
            tag => exec_err!("bad factors tag {tag} in a plan"),
        }
    }

    fn factor_values(&mut self) -> Result<Factors> {
        let (rows, rank) = (self.u64()? as usize, self.u64()? as usize);
        if rank == 0 {
            return Ok(Factors::default());
        }
        let bytes = self.take(rows.saturating_mul(rank).saturating_mul(4))?;
        let values = bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap_or([0; 4])))
            .collect();
        match Factors::new(rows, rank, values) {
            Some(f) => Ok(f),
            None => exec_err!("bad factors payload ({rows}×{rank})"),
        }
    }
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "tests fail by panicking")]
mod tests {
    use super::*;

    #[test]
    fn model_functions_round_trip_and_others_are_not_encoded() {
        let udaf = AggregateUDF::from(KMeansStep::new(
            Centroids::new(2, 1, vec![0.5, -3.0]).unwrap(),
        ));
        let mut buf = Vec::new();
        encode_udaf(&udaf, &mut buf);
        let back = decode_udaf("kmeans_step", &buf, None).unwrap().unwrap();
        assert_eq!(back.as_ref(), &udaf);
        let logistic = AggregateUDF::from(LogisticStep::new(
            LogisticModel {
                coefficients: vec![0.25, -1.5e-300],
                intercept: -0.1,
            },
            true,
        ));
        buf.clear();
        encode_udaf(&logistic, &mut buf);
        let back = decode_udaf("logistic_step", &buf, None).unwrap().unwrap();
        assert_eq!(back.as_ref(), &logistic);
        let weighted = AggregateUDF::from(KMeansStep::weighted(
            Centroids::new(1, 2, vec![0.5, -3.0]).unwrap(),
        ));
        buf.clear();
        encode_udaf(&weighted, &mut buf);
        let back = decode_udaf("kmeans_step", &buf, None).unwrap().unwrap();
        assert_eq!(back.as_ref(), &weighted);
        assert_ne!(back.as_ref(), &udaf);

        let f = Arc::new(Factors::new(2, 2, vec![1.0, 2.0, 3.0, 4.0]).unwrap());
        let side = AlsModelSide {
            other: Arc::clone(&f),
            gram: Arc::clone(&f),
            previous: f,
            alpha_bits: 3.0f32.to_bits(),
            lambda_bits: 0.1f32.to_bits(),
            weighted_lambda: true,
            solver: Solver::ConjugateGradient { steps: 4 },
            explicit: true,
        };
        for solver in [Solver::Cholesky, Solver::ConjugateGradient { steps: 0 }] {
            let other = AlsModelSide {
                solver,
                ..side.clone()
            };
            let udf = ScalarUDF::from(AlsSolve::new(other));
            buf.clear();
            encode_udf(&udf, &mut buf);
            assert_eq!(
                decode_udf("als_solve", &buf, None)
                    .unwrap()
                    .unwrap()
                    .as_ref(),
                &udf
            );
        }
        let udf = ScalarUDF::from(AlsSolve::new(side));
        buf.clear();
        encode_udf(&udf, &mut buf);
        assert_eq!(
            decode_udf("als_solve", &buf, None)
                .unwrap()
                .unwrap()
                .as_ref(),
            &udf
        );
        assert!(decode_udf("als_solve", &buf[..buf.len() - 3], None).is_err());

        let model = TopNModel {
            items: Arc::new(Factors::new(1, 2, vec![1.0, 0.0]).unwrap()),
            allowed: Arc::new(vec![true]),
            n: 5,
        };
        let udf = ScalarUDF::from(AlsTopN::new(model));
        buf.clear();
        encode_udf(&udf, &mut buf);
        assert_eq!(
            decode_udf("als_top_n", &buf, None)
                .unwrap()
                .unwrap()
                .as_ref(),
            &udf
        );
        let similar = ScalarUDF::from(AlsTopN::similar(TopNModel {
            items: Arc::new(Factors::new(2, 2, vec![3.0, 4.0, 1.0, 0.0]).unwrap()),
            allowed: Arc::new(vec![true, true]),
            n: 1,
        }));
        buf.clear();
        encode_udf(&similar, &mut buf);
        assert_eq!(
            decode_udf("als_similar", &buf, None)
                .unwrap()
                .unwrap()
                .as_ref(),
            &similar
        );

        buf.clear();
        encode_udf(&ScalarUDF::from(crate::scalar::IsCrawler::new()), &mut buf);
        assert!(buf.is_empty());
        assert!(decode_udf("is_crawler", &[], None).unwrap().is_none());
    }

    /// Files kept in memory, by location.
    #[derive(Debug, Default)]
    struct InMemory(std::sync::Mutex<std::collections::HashMap<String, Vec<u8>>>);

    impl FactorFiles for InMemory {
        fn read(&self, location: &str) -> Result<Arc<Factors>> {
            let files = self.0.lock().unwrap();
            let bytes = files.get(location).unwrap();
            Ok(Arc::new(parse_factors_file(bytes, location)?))
        }
    }

    #[test]
    fn stored_factors_travel_as_their_location() {
        let items = Factors::new(3, 2, vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]).unwrap();
        let files = InMemory::default();
        files
            .0
            .lock()
            .unwrap()
            .insert("s3://b/items".into(), factors_file(&items));
        let stored = items.clone().with_stored_at("s3://b/items");
        let model = |items: Factors| TopNModel {
            items: Arc::new(items),
            allowed: Arc::new(vec![true; 3]),
            n: 2,
        };
        let (mut inline, mut by_location) = (Vec::new(), Vec::new());
        encode_udf(
            &ScalarUDF::from(AlsTopN::new(model(items.clone()))),
            &mut inline,
        );
        let udf = ScalarUDF::from(AlsTopN::new(model(stored)));
        encode_udf(&udf, &mut by_location);
        assert!(by_location.len() < inline.len());

        let back = decode_udf("als_top_n", &by_location, Some(&files))
            .unwrap()
            .unwrap();
        assert_eq!(back.as_ref(), &udf);
        // Passed on (the scheduler re-encodes what the client sent): still the location.
        let mut again = Vec::new();
        encode_udf(&back, &mut again);
        assert_eq!(again, by_location);

        let error = decode_udf("als_top_n", &by_location, None).unwrap_err();
        assert!(error.to_string().contains("s3://b/items"), "{error}");
        let mut file = factors_file(&items);
        file.push(0);
        assert!(parse_factors_file(&file, "x").is_err());
        assert!(parse_factors_file(&file[..20], "x").is_err());
    }
}
