//! The factor matrices that distributed plans name by location instead of carrying.
//!
//! Item factors travel with the model functions of every ALS pass and of the top-N (see
//! [`persona_udfs::codec`]). Inside a plan they are sent to every task, and past Ballista's
//! 16 MiB gRPC messages (about 65k items at rank 64) the plan cannot be sent at all. So on a
//! cluster the driver writes each such matrix once to the run's work area
//! ([`crate::work::WorkArea::share_factors`]), the plan names the file, and each scheduler or
//! executor process reads it once: [`StoredFactors`] keeps the last few matrices it read, so
//! the tasks of one pass share one copy, as a Spark broadcast variable would.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use datafusion::common::{DataFusionError, Result};
use datafusion::datasource::listing::ListingTableUrl;
use datafusion::execution::runtime_env::RuntimeEnv;
use object_store::ObjectStoreExt;
use persona_udfs::codec::{FactorFiles, parse_factors_file};
use persona_udfs::ml::Factors;

/// Matrices kept per process: a pass names at most two (the customer half's item factors and
/// the item half's warm start; the top-N's items and their normalised copy), and one more
/// pass may overlap while the last pass's tasks finish.
const KEPT: usize = 4;

/// Reads stored factor matrices through a process's object stores, keeping the last [`KEPT`].
#[derive(Debug)]
pub struct StoredFactors {
    env: Arc<RuntimeEnv>,
    recent: Mutex<VecDeque<Arc<Factors>>>,
}

impl StoredFactors {
    /// Reads through the object stores of `env` (local files, and `s3://` as configured).
    pub fn new(env: Arc<RuntimeEnv>) -> Self {
        Self {
            env,
            recent: Mutex::new(VecDeque::new()),
        }
    }

    async fn fetch(&self, location: &str) -> Result<bytes::Bytes> {
        let url = ListingTableUrl::parse(location)?;
        let store = self.env.object_store(url.object_store())?;
        let got = store.get(url.prefix()).await.map_err(|e| {
            DataFusionError::Execution(format!(
                "cannot read the model factors at {location} (written by the driver to its \
                 work area; every executor must reach the output storage): {e}"
            ))
        })?;
        Ok(got.bytes().await?)
    }
}

impl FactorFiles for StoredFactors {
    fn read(&self, location: &str) -> Result<Arc<Factors>> {
        // Held while reading: tasks of the same pass arriving together wait for one read
        // instead of each reading the file.
        let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(f) = recent.iter().find(|f| f.stored_at() == Some(location)) {
            return Ok(Arc::clone(f));
        }
        let bytes = block_on(self.fetch(location))??;
        let factors = Arc::new(parse_factors_file(&bytes, location)?);
        recent.push_front(Arc::clone(&factors));
        recent.truncate(KEPT);
        Ok(factors)
    }
}

/// Runs `future` to completion from synchronous code (plan decoding is synchronous). On a
/// multi-threaded runtime (the scheduler's, the executors', the client's) the current worker
/// blocks in place, so the object stores keep the runtime their connections belong to;
/// elsewhere a short-lived runtime on a scoped thread runs it.
fn block_on<F>(future: F) -> Result<F::Output>
where
    F: std::future::Future + Send,
    F::Output: Send,
{
    use tokio::runtime::{Builder, Handle, RuntimeFlavor};
    match Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == RuntimeFlavor::MultiThread => {
            Ok(tokio::task::block_in_place(|| handle.block_on(future)))
        }
        _ => std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    let runtime = Builder::new_current_thread().enable_all().build()?;
                    Ok(runtime.block_on(future))
                })
                .join()
                .unwrap_or_else(|_| {
                    Err(DataFusionError::Internal(
                        "reading model factors panicked".into(),
                    ))
                })
        }),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic, reason = "tests fail by panicking")]
mod tests {
    use super::*;
    use persona_udfs::codec::factors_file;

    #[test]
    fn a_stored_matrix_is_read_once_and_missing_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("items.factors");
        let items = Factors::new(2, 3, vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]).unwrap();
        std::fs::write(&path, factors_file(&items)).unwrap();
        let location = path.to_str().unwrap();
        let files = StoredFactors::new(Arc::new(RuntimeEnv::default()));

        let first = files.read(location).unwrap();
        assert_eq!(*first, items);
        assert_eq!(first.stored_at(), Some(location));
        // A second task of the same pass gets the same copy, without reading the file again.
        std::fs::remove_file(&path).unwrap();
        assert!(Arc::ptr_eq(&first, &files.read(location).unwrap()));

        let missing = dir.path().join("gone.factors");
        let error = files.read(missing.to_str().unwrap()).unwrap_err();
        assert!(
            error.to_string().contains("gone.factors")
                && error.to_string().contains("every executor must reach"),
            "{error}"
        );
    }
}
