//! Storage roots: a local folder or an `s3://bucket/prefix`, behind one type.
//!
//! Every file operation of a run (listing the input partitions, reading footers, the work area,
//! publishing, markers, locks) goes through [`Root`], backed by object_store: the local file
//! system for folders, S3 for `s3://` (MinIO, s3s-fs, AWS). Queries read and write the same
//! locations through [`Root::url`], resolved by the session's object-store registry
//! ([`s3::PersonaStoreRegistry`]).

pub mod s3;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};

use crate::config::StorageConfig;
use crate::error::{PipelineError, Result, first_line};

/// An input or output root.
#[derive(Debug, Clone)]
pub struct Root {
    kind: Kind,
    store: Arc<dyn ObjectStore>,
    prefix: String,
}

#[derive(Debug, Clone)]
enum Kind {
    /// An absolute local folder.
    Local(PathBuf),
    /// A bucket, and the endpoint for messages.
    S3 { bucket: String, endpoint: String },
}

impl Root {
    /// Parses `s3://bucket/prefix` or a local path (made absolute).
    pub fn parse(text: &str, storage: &StorageConfig) -> Result<Self> {
        if let Some(rest) = text.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(PipelineError::Config(format!(
                    "'{text}' names no bucket: expected s3://BUCKET/PREFIX"
                )));
            }
            return Ok(Self {
                kind: Kind::S3 {
                    bucket: bucket.to_string(),
                    endpoint: s3::endpoint(storage),
                },
                store: s3::build_store(bucket, storage)?,
                prefix: prefix.trim_matches('/').to_string(),
            });
        }
        if let Some((scheme, _)) = text.split_once("://") {
            return Err(PipelineError::Config(format!(
                "'{text}': {scheme}:// is not supported; use a local folder or s3://BUCKET/PREFIX"
            )));
        }
        let path = std::path::absolute(text)
            .map_err(|e| PipelineError::Config(format!("bad path '{text}': {e}")))?;
        let prefix = path.to_string_lossy().trim_matches('/').to_string();
        Ok(Self {
            kind: Kind::Local(path),
            store: Arc::new(LocalFileSystem::new()),
            prefix,
        })
    }

    /// The local folder, when this root is one.
    pub fn local_path(&self) -> Option<&Path> {
        match &self.kind {
            Kind::Local(p) => Some(p),
            Kind::S3 { .. } => None,
        }
    }

    /// Whether this root is in object storage (no directory renames: see `publish`).
    pub fn is_object_store(&self) -> bool {
        matches!(self.kind, Kind::S3 { .. })
    }

    /// The root as the user would write it (no credentials).
    pub fn display(&self) -> String {
        self.location("")
    }

    /// `rel` under this root, for messages.
    pub fn location(&self, rel: &str) -> String {
        let rel = rel.trim_matches('/');
        match &self.kind {
            Kind::Local(p) if rel.is_empty() => p.display().to_string(),
            Kind::Local(p) => p.join(rel).display().to_string(),
            Kind::S3 { bucket, .. } => {
                let key = join(&self.prefix, rel);
                if key.is_empty() {
                    format!("s3://{bucket}")
                } else {
                    format!("s3://{bucket}/{key}")
                }
            }
        }
    }

    /// The folder `rel` as a URL for DataFusion (with the trailing `/` of a directory).
    pub fn url(&self, rel: &str) -> String {
        format!("{}/", self.location(rel))
    }

    /// A root for the sub-folder `rel`.
    pub fn child(&self, rel: &str) -> Root {
        let mut child = self.clone();
        child.prefix = join(&self.prefix, rel.trim_matches('/'));
        if let Kind::Local(p) = &self.kind {
            child.kind = Kind::Local(p.join(rel.trim_matches('/')));
        }
        child
    }

    fn object_path(&self, rel: &str) -> Result<ObjectPath> {
        let key = join(&self.prefix, rel.trim_matches('/'));
        ObjectPath::parse(&key)
            .map_err(|e| PipelineError::Config(format!("bad path {}: {e}", self.location(rel))))
    }

    /// The path of `meta` relative to this root.
    pub fn relative(&self, meta: &ObjectMeta) -> String {
        let full = meta.location.as_ref();
        full.strip_prefix(&self.prefix)
            .unwrap_or(full)
            .trim_start_matches('/')
            .to_string()
    }

    /// The names of the sub-folders of `rel` (empty when `rel` does not exist).
    pub async fn list_dirs(&self, rel: &str) -> Result<Vec<String>> {
        let listing = self.list_level(rel).await?;
        let mut names: Vec<String> = listing
            .common_prefixes
            .iter()
            .filter_map(|p| p.filename().map(str::to_string))
            .collect();
        names.sort();
        Ok(names)
    }

    /// The objects directly in `rel`, sorted by path (empty when `rel` does not exist).
    pub async fn list_files(&self, rel: &str) -> Result<Vec<ObjectMeta>> {
        let mut objects = self.list_level(rel).await?.objects;
        objects.sort_by(|a, b| a.location.cmp(&b.location));
        Ok(objects)
    }

    async fn list_level(&self, rel: &str) -> Result<object_store::ListResult> {
        if self.missing_local_dir(rel) {
            return Ok(object_store::ListResult {
                common_prefixes: Vec::new(),
                objects: Vec::new(),
            });
        }
        let path = self.object_path(rel)?;
        self.store
            .list_with_delimiter(Some(&path))
            .await
            .map_err(|e| self.error(rel, e))
    }

    /// Whether `rel` is a local folder that does not exist (object_store's local listing
    /// errors on those where S3 simply lists nothing).
    fn missing_local_dir(&self, rel: &str) -> bool {
        self.local_path().is_some_and(|p| !p.join(rel).is_dir())
    }

    /// Every object under `rel`, at any depth.
    pub async fn list_all(&self, rel: &str) -> Result<Vec<ObjectMeta>> {
        if self.missing_local_dir(rel) {
            return Ok(Vec::new());
        }
        let path = self.object_path(rel)?;
        self.store
            .list(Some(&path))
            .try_collect()
            .await
            .map_err(|e| self.error(rel, e))
    }

    /// Whether `rel` holds anything.
    pub async fn exists_dir(&self, rel: &str) -> Result<bool> {
        let level = self.list_level(rel).await?;
        Ok(!level.objects.is_empty() || !level.common_prefixes.is_empty())
    }

    /// The object `rel`, or `None` when there is none.
    pub async fn read(&self, rel: &str) -> Result<Option<Bytes>> {
        let path = self.object_path(rel)?;
        match self.store.get(&path).await {
            Ok(got) => Ok(Some(got.bytes().await.map_err(|e| self.error(rel, e))?)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.error(rel, e)),
        }
    }

    /// Writes the object `rel` (replacing it).
    pub async fn write(&self, rel: &str, data: impl Into<Bytes>) -> Result<()> {
        let path = self.object_path(rel)?;
        self.store
            .put(&path, PutPayload::from(data.into()))
            .await
            .map_err(|e| self.error(rel, e))?;
        Ok(())
    }

    /// Writes the object `rel` only if there is none yet (a conditional PUT on S3). Returns
    /// false when it already existed.
    pub async fn create_new(&self, rel: &str, data: impl Into<Bytes>) -> Result<bool> {
        let path = self.object_path(rel)?;
        let opts = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        match self
            .store
            .put_opts(&path, PutPayload::from(data.into()), opts)
            .await
        {
            Ok(_) => Ok(true),
            Err(object_store::Error::AlreadyExists { .. })
            | Err(object_store::Error::Precondition { .. }) => Ok(false),
            Err(e) => Err(self.error(rel, e)),
        }
    }

    /// Removes the object `rel` (no error when it is already gone).
    pub async fn delete(&self, rel: &str) -> Result<()> {
        let path = self.object_path(rel)?;
        match self.store.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.error(rel, e)),
        }
    }

    /// Removes everything under `rel`.
    pub async fn delete_tree(&self, rel: &str) -> Result<()> {
        if let Some(dir) = self.local_path().map(|p| p.join(rel)) {
            return match std::fs::remove_dir_all(&dir) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    Err(PipelineError::io(&dir, e))
                }
                _ => Ok(()),
            };
        }
        let objects = self.list_all(rel).await?;
        let locations = futures::stream::iter(objects.into_iter().map(|m| Ok(m.location))).boxed();
        self.store
            .delete_stream(locations)
            .try_collect::<Vec<_>>()
            .await
            .map_err(|e| self.error(rel, e))?;
        Ok(())
    }

    /// Copies the object `from` to `to` under `dest`, a root in the same store (server-side on
    /// S3).
    pub async fn copy_to(&self, from: &str, dest: &Root, to: &str) -> Result<()> {
        let (src, dst) = (self.object_path(from)?, dest.object_path(to)?);
        self.store
            .copy(&src, &dst)
            .await
            .map_err(|e| dest.error(to, e))
    }

    /// The store and the object path of `rel`, for readers that take them (Parquet footers).
    pub fn object(&self, rel: &str) -> Result<(Arc<dyn ObjectStore>, ObjectPath)> {
        Ok((Arc::clone(&self.store), self.object_path(rel)?))
    }

    /// One readable line for a failed storage operation on `rel`: what went wrong, where, and
    /// what to check. Never contains credentials.
    pub fn error(&self, rel: &str, e: object_store::Error) -> PipelineError {
        let at = self.location(rel);
        let Kind::S3 { bucket, endpoint } = &self.kind else {
            return PipelineError::Storage(format!("{at}: {e}"));
        };
        let chain = error_chain(&e);
        let message = if chain.contains("NoSuchBucket") {
            format!(
                "{at}: bucket '{bucket}' does not exist at {endpoint} (create it, or check the URL)"
            )
        } else if matches!(
            e,
            object_store::Error::PermissionDenied { .. }
                | object_store::Error::Unauthenticated { .. }
        ) || [
            "InvalidAccessKeyId",
            "SignatureDoesNotMatch",
            "AccessDenied",
        ]
        .iter()
        .any(|code| chain.contains(code))
        {
            format!(
                "{at}: access denied by {endpoint} (check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or [storage] in persona.toml)"
            )
        } else if matches!(e, object_store::Error::NotFound { .. }) {
            format!("{at}: not found")
        } else if ["connect", "Connection refused", "dns error", "timed out"]
            .iter()
            .any(|s| chain.contains(s))
        {
            format!(
                "{at}: cannot reach the S3 endpoint {endpoint} (is the server running? check AWS_ENDPOINT_URL or [storage].endpoint)"
            )
        } else {
            format!("{at}: {}", first_line(&chain))
        };
        PipelineError::Storage(message)
    }
}

fn join(a: &str, b: &str) -> String {
    match (a.is_empty(), b.is_empty()) {
        (true, _) => b.to_string(),
        (_, true) => a.to_string(),
        _ => format!("{a}/{b}"),
    }
}

/// An error and all its causes, on one line.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let more = cause.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = cause.source();
    }
    text
}

/// The date of a hive partition folder named `dt=YYYY-MM-DD` (inputs and outputs alike).
pub fn partition_date(folder: &str) -> Option<chrono::NaiveDate> {
    folder
        .strip_prefix("dt=")
        .and_then(|d| chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "tests fail by panicking")]
mod tests {
    use super::*;

    #[test]
    fn roots_parse_and_name_their_locations() {
        let cfg = StorageConfig::default();
        let s3 = Root::parse("s3://bucket/some/prefix/", &cfg).unwrap();
        assert!(s3.is_object_store());
        assert_eq!(s3.display(), "s3://bucket/some/prefix");
        assert_eq!(
            s3.url("web_logs/dt=2024-01-01"),
            "s3://bucket/some/prefix/web_logs/dt=2024-01-01/"
        );
        assert_eq!(
            s3.child("_work").location("x"),
            "s3://bucket/some/prefix/_work/x"
        );
        let bare = Root::parse("s3://bucket", &cfg).unwrap();
        assert_eq!(bare.url("t"), "s3://bucket/t/");
        assert!(Root::parse("s3:///x", &cfg).is_err());
        assert!(Root::parse("gs://b/x", &cfg).is_err());
        let local = Root::parse("/tmp/out", &cfg).unwrap();
        assert_eq!(local.url("segments"), "/tmp/out/segments/");
        assert_eq!(local.local_path(), Some(Path::new("/tmp/out")));
    }

    #[tokio::test]
    async fn local_roots_list_write_and_create_once() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::parse(dir.path().to_str().unwrap(), &StorageConfig::default()).unwrap();
        assert!(root.list_dirs("missing").await.unwrap().is_empty());
        root.write("t/dt=1/a.parquet", Bytes::from_static(b"x"))
            .await
            .unwrap();
        assert_eq!(root.list_dirs("t").await.unwrap(), vec!["dt=1"]);
        let files = root.list_files("t/dt=1").await.unwrap();
        assert_eq!(root.relative(&files[0]), "t/dt=1/a.parquet");
        assert!(root.create_new("lock", Bytes::new()).await.unwrap());
        assert!(!root.create_new("lock", Bytes::new()).await.unwrap());
        root.copy_to("t/dt=1/a.parquet", &root, "u/a.parquet")
            .await
            .unwrap();
        assert_eq!(
            root.read("u/a.parquet").await.unwrap().unwrap().as_ref(),
            b"x"
        );
        root.delete_tree("t").await.unwrap();
        assert!(!root.exists_dir("t").await.unwrap());
        assert!(root.read("nothing").await.unwrap().is_none());
    }
}
