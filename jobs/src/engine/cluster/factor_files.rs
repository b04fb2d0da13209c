//! The factor matrices that distributed plans name by location instead of carrying.
//!
//! Item factors travel with the model functions of every ALS pass and of the top-N (see
//! [`persona_udfs::codec`]). Inside a plan they are sent to every task, and past Ballista's
//! 16 MiB gRPC messages (about 65k items at rank 64) the plan cannot be sent at all. So on a
//! cluster the driver writes each such matrix once to the run's work area
//! ([`crate::engine::work::WorkArea::share_factors`]), the plan names the file, and each scheduler or
//! executor process reads it once: [`StoredFactors`] keeps the last few matrices it read, so
//! the tasks of one pass share one copy, as a Spark broadcast variable would.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use datafusion::common::{DataFusionError, Result};
use datafusion::datasource::listing::ListingTableUrl;
use datafusion::execution::runtime_env::RuntimeEnv;
use futures::future::BoxFuture;
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

impl StoredFactors {
    /// [`FactorFiles::read`] on a thread that may block, with `run` to wait for a future.
    fn read_blocking(
        &self,
        location: &str,
        run: impl FnOnce(BoxFuture<'_, Result<bytes::Bytes>>) -> Result<bytes::Bytes>,
    ) -> Result<Arc<Factors>> {
        // Held while reading: tasks of the same pass arriving together wait for one read
        // instead of each reading the file.
        let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(f) = recent.iter().find(|f| f.stored_at() == Some(location)) {
            return Ok(Arc::clone(f));
        }
        let bytes = run(Box::pin(self.fetch(location)))?;
        let factors = Arc::new(parse_factors_file(&bytes, location)?);
        recent.push_front(Arc::clone(&factors));
        recent.truncate(KEPT);
        Ok(factors)
    }
}

impl FactorFiles for StoredFactors {
    /// Plan decoding is synchronous, and reading is not. On a multi-threaded runtime (the
    /// scheduler's, the executors', the client's) the whole read, waiting for the lock
    /// included, runs in `block_in_place`: every waiting worker hands its core over, so the
    /// runtime keeps driving the I/O of the one that reads (a worker blocked on the lock
    /// outside it could leave no core to do so), and the object stores stay on the runtime
    /// their connections belong to. Elsewhere a short-lived runtime on a scoped thread reads.
    fn read(&self, location: &str) -> Result<Arc<Factors>> {
        use tokio::runtime::{Builder, Handle, RuntimeFlavor};
        match Handle::try_current() {
            Ok(handle) if handle.runtime_flavor() == RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(|| {
                    self.read_blocking(location, |read| handle.block_on(read))
                })
            }
            _ => std::thread::scope(|scope| {
                scope
                    .spawn(|| {
                        let runtime = Builder::new_current_thread().enable_all().build()?;
                        self.read_blocking(location, |read| runtime.block_on(read))
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
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "tests fail by panicking")]
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

    /// Many tasks decoding plans at once on a runtime with fewer workers than tasks: they all
    /// get the one copy. (Local files are read on tokio's blocking pool, so this does not
    /// show the hang that waiting for the lock outside `block_in_place` could cause with S3,
    /// whose reads need a worker to drive the I/O; the cluster tests on S3 run that path.)
    #[test]
    fn concurrent_readers_on_a_small_runtime_share_one_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("items.factors");
        let items = Factors::new(1000, 8, vec![0.5; 8000]).unwrap();
        std::fs::write(&path, factors_file(&items)).unwrap();
        let location = path.to_str().unwrap().to_string();
        let files = Arc::new(StoredFactors::new(Arc::new(RuntimeEnv::default())));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let read = runtime.block_on(async {
            let tasks: Vec<_> = (0..16)
                .map(|_| {
                    let (files, location) = (Arc::clone(&files), location.clone());
                    tokio::spawn(async move { files.read(&location).unwrap() })
                })
                .collect();
            let mut read = Vec::new();
            for t in tasks {
                read.push(tokio::time::timeout(std::time::Duration::from_secs(30), t).await);
            }
            read
        });
        let first = read[0].as_ref().unwrap().as_ref().unwrap();
        assert_eq!(**first, items);
        for r in &read {
            assert!(Arc::ptr_eq(first, r.as_ref().unwrap().as_ref().unwrap()));
        }
    }
}
