//! S3 stores, built from the standard AWS environment variables and the `[storage]` section, and
//! the object-store registry that every Persona session uses (local runs, Ballista clients,
//! schedulers and executors alike): it builds the store of an `s3://bucket` the first time a
//! query touches it, so nothing has to be registered by hand in any process.

use std::sync::Arc;
use std::time::Duration;

use datafusion::error::DataFusionError;
use datafusion::execution::object_store::{DefaultObjectStoreRegistry, ObjectStoreRegistry};
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::{BackoffConfig, ClientConfigKey, ObjectStore, RetryConfig};
use url::Url;

use crate::config::StorageConfig;
use crate::error::{PipelineError, Result};

/// The default region: MinIO and s3s-fs accept any, AWS needs the bucket's.
const DEFAULT_REGION: &str = "us-east-1";

/// The endpoint requests go to, for messages (never contains credentials).
pub fn endpoint(cfg: &StorageConfig) -> String {
    cfg.endpoint
        .clone()
        .or_else(|| std::env::var("AWS_ENDPOINT_URL").ok())
        .unwrap_or_else(|| "AWS S3".to_string())
}

/// An S3 store for `bucket`: the environment first, then `[storage]` on top.
pub fn build_store(bucket: &str, cfg: &StorageConfig) -> Result<Arc<dyn ObjectStore>> {
    let mut builder = AmazonS3Builder::from_env()
        .with_bucket_name(bucket)
        .with_virtual_hosted_style_request(cfg.virtual_hosted_style)
        .with_retry(RetryConfig {
            backoff: BackoffConfig {
                init_backoff: Duration::from_millis(100),
                max_backoff: Duration::from_secs(5),
                base: 2.0,
            },
            max_retries: cfg.max_retries,
            retry_timeout: Duration::from_secs(cfg.retry_timeout_secs),
        })
        // (Not `with_client_options`: that would drop AWS_ALLOW_HTTP read from the environment.)
        .with_config(
            AmazonS3ConfigKey::Client(ClientConfigKey::ConnectTimeout),
            "5 seconds",
        );
    if std::env::var_os("AWS_REGION").is_none() && std::env::var_os("AWS_DEFAULT_REGION").is_none()
    {
        builder = builder.with_region(DEFAULT_REGION);
    }
    let overrides = [
        (AmazonS3ConfigKey::Endpoint, cfg.endpoint.clone()),
        (AmazonS3ConfigKey::Region, cfg.region.clone()),
        (AmazonS3ConfigKey::AccessKeyId, cfg.access_key_id.clone()),
        (
            AmazonS3ConfigKey::SecretAccessKey,
            cfg.secret_access_key.clone(),
        ),
    ];
    for (key, value) in overrides {
        if let Some(value) = value {
            builder = builder.with_config(key, value);
        }
    }
    if let Some(allow) = cfg.allow_http {
        builder = builder.with_allow_http(allow);
    }
    let store = builder.build().map_err(|e| {
        PipelineError::Config(format!(
            "cannot configure S3 for bucket '{bucket}' at {}: {e}",
            endpoint(cfg)
        ))
    })?;
    Ok(Arc::new(store))
}

/// DataFusion's registry, plus S3 stores built on first use.
#[derive(Debug)]
pub struct PersonaStoreRegistry {
    inner: DefaultObjectStoreRegistry,
    storage: StorageConfig,
}

impl PersonaStoreRegistry {
    /// A registry that builds S3 stores with `storage`.
    pub fn new(storage: StorageConfig) -> Self {
        Self {
            inner: DefaultObjectStoreRegistry::new(),
            storage,
        }
    }
}

impl ObjectStoreRegistry for PersonaStoreRegistry {
    fn register_store(
        &self,
        url: &Url,
        store: Arc<dyn ObjectStore>,
    ) -> Option<Arc<dyn ObjectStore>> {
        self.inner.register_store(url, store)
    }

    fn deregister_store(&self, url: &Url) -> datafusion::error::Result<Arc<dyn ObjectStore>> {
        self.inner.deregister_store(url)
    }

    fn get_store(&self, url: &Url) -> datafusion::error::Result<Arc<dyn ObjectStore>> {
        match self.inner.get_store(url) {
            Ok(store) => Ok(store),
            Err(_) if url.scheme() == "s3" && url.host_str().is_some() => {
                let bucket = url.host_str().unwrap_or_default();
                let store = build_store(bucket, &self.storage)
                    .map_err(|e| DataFusionError::External(Box::new(e)))?;
                self.inner.register_store(url, Arc::clone(&store));
                Ok(store)
            }
            Err(e) => Err(e),
        }
    }
}

/// The object-store registry of Persona's sessions: `s3://` URLs resolved with `storage`.
pub fn object_store_registry(storage: &StorageConfig) -> Arc<dyn ObjectStoreRegistry> {
    Arc::new(PersonaStoreRegistry::new(storage.clone()))
}
