//! The blob seam: where model files live. A local folder in embedded mode, an
//! S3 bucket (path-style, so MinIO and SeaweedFS work) in production.
//!
//! Models are stored under their id, which follows from their owner and their
//! bytes, so a key is written once and never changes; a reader never sees a half-written model because the local
//! store renames into place and S3 puts are atomic.

use std::path::PathBuf;
use std::time::Duration;

use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region, timeout::TimeoutConfig};
use aws_sdk_s3::primitives::ByteStream;
use bytes::Bytes;

/// How long one check (or creation) of the bucket at start may take.
const BUCKET_CHECK_TIMEOUT: Duration = Duration::from_secs(10);
/// How many checks are made before the store counts as unavailable.
const BUCKET_CHECK_ATTEMPTS: u32 = 4;

/// Where a model's bytes are kept.
pub fn model_key(model_id: &str) -> String {
    format!("models/{model_id}.stl")
}

#[derive(Debug, Clone)]
pub enum BlobSettings {
    Local { dir: PathBuf },
    S3 { endpoint: String, bucket: String, region: String, access_key_id: String, secret_access_key: String },
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BlobError {
    #[error("no blob at `{key}`")]
    NotFound { key: String },
    /// Worth retrying: the store was unreachable or answered with an error.
    #[error("blob store failed on `{key}`: {message}")]
    Unavailable { key: String, message: String },
}

/// A stored object's bytes, read from the store as they are sent on, so a
/// download of a large model never holds it whole.
pub type BlobStream = std::pin::Pin<Box<dyn futures_util::Stream<Item = std::io::Result<Bytes>> + Send>>;

/// Bytes a local read hands on at a time.
const STREAM_CHUNK: usize = 256 * 1024;

#[derive(Debug, Clone)]
pub enum BlobStore {
    Local(PathBuf),
    S3 { client: aws_sdk_s3::Client, bucket: String },
}

impl BlobStore {
    /// Opens the store, creating the folder or bucket when it is missing.
    pub async fn open(settings: &BlobSettings) -> Result<Self, BlobError> {
        match settings {
            BlobSettings::Local { dir } => {
                tokio::fs::create_dir_all(dir.join("models"))
                    .await
                    .map_err(|e| unavailable(&dir.display().to_string(), e))?;
                Ok(Self::Local(dir.clone()))
            }
            BlobSettings::S3 { endpoint, bucket, region, access_key_id, secret_access_key } => {
                let config = aws_sdk_s3::Config::builder()
                    .behavior_version(BehaviorVersion::latest())
                    .endpoint_url(endpoint)
                    .region(Region::new(region.clone()))
                    .credentials_provider(Credentials::new(access_key_id, secret_access_key, None, None, "farm"))
                    .force_path_style(true)
                    .timeout_config(
                        TimeoutConfig::builder()
                            .connect_timeout(Duration::from_secs(5))
                            .operation_attempt_timeout(Duration::from_secs(120))
                            .build(),
                    )
                    .build();
                let client = aws_sdk_s3::Client::from_conf(config);
                let store = Self::S3 { client, bucket: bucket.clone() };
                // A store that does not answer at start is retried a few
                // times, each attempt bounded, and each failure logged, so a
                // stalled S3 server shows in the log instead of a silent hang.
                let mut attempt = 1;
                loop {
                    let failure = match tokio::time::timeout(BUCKET_CHECK_TIMEOUT, store.ensure_bucket()).await {
                        Ok(Ok(())) => return Ok(store),
                        Ok(Err(e)) => e,
                        Err(_) => unavailable(bucket, "no answer from the S3 server"),
                    };
                    if attempt == BUCKET_CHECK_ATTEMPTS {
                        return Err(failure);
                    }
                    tracing::warn!(error = %failure, attempt, "the model store is not answering yet; retrying");
                    tokio::time::sleep(Duration::from_millis(500) * attempt).await;
                    attempt += 1;
                }
            }
        }
    }

    async fn ensure_bucket(&self) -> Result<(), BlobError> {
        let Self::S3 { client, bucket } = self else { return Ok(()) };
        if client.head_bucket().bucket(bucket).send().await.is_ok() {
            return Ok(());
        }
        match client.create_bucket().bucket(bucket).send().await {
            Ok(_) => Ok(()),
            Err(e) => {
                let service = e.as_service_error();
                if service.is_some_and(|s| s.is_bucket_already_owned_by_you() || s.is_bucket_already_exists()) {
                    Ok(())
                } else {
                    Err(unavailable(bucket, aws_sdk_s3::error::DisplayErrorContext(e)))
                }
            }
        }
    }

    pub async fn put(&self, key: &str, bytes: Bytes) -> Result<(), BlobError> {
        self.store(key, Source::Bytes(bytes)).await
    }

    /// Stores the file at `path` under `key`, read as it is sent: an upload
    /// spooled to disk reaches the store without being held in memory.
    pub async fn put_file(&self, key: &str, path: &std::path::Path) -> Result<(), BlobError> {
        self.store(key, Source::File(path)).await
    }

    async fn store(&self, key: &str, source: Source<'_>) -> Result<(), BlobError> {
        match self {
            Self::Local(dir) => {
                let target = dir.join(key);
                // Write beside the target, then rename: readers never see a
                // partial file (a spooled file may be on another file system).
                let partial = target.with_extension(format!("partial-{}", uuid::Uuid::new_v4()));
                if let Some(parent) = target.parent() {
                    tokio::fs::create_dir_all(parent).await.map_err(|e| unavailable(key, e))?;
                }
                let written = match source {
                    Source::Bytes(bytes) => tokio::fs::write(&partial, &bytes).await,
                    Source::File(path) => tokio::fs::copy(path, &partial).await.map(drop),
                };
                if let Err(e) = written {
                    let _ = tokio::fs::remove_file(&partial).await;
                    return Err(unavailable(key, e));
                }
                tokio::fs::rename(&partial, &target).await.map_err(|e| unavailable(key, e))
            }
            Self::S3 { client, bucket } => {
                let body = match source {
                    Source::Bytes(bytes) => ByteStream::from(bytes),
                    Source::File(path) => ByteStream::from_path(path).await.map_err(|e| unavailable(key, e))?,
                };
                client
                    .put_object()
                    .bucket(bucket)
                    .key(key)
                    .body(body)
                    .send()
                    .await
                    .map(drop)
                    .map_err(|e| unavailable(key, aws_sdk_s3::error::DisplayErrorContext(e)))
            }
        }
    }

    pub async fn get(&self, key: &str) -> Result<Bytes, BlobError> {
        match self {
            Self::Local(dir) => match tokio::fs::read(dir.join(key)).await {
                Ok(bytes) => Ok(Bytes::from(bytes)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(BlobError::NotFound { key: key.into() }),
                Err(e) => Err(unavailable(key, e)),
            },
            Self::S3 { client, bucket } => {
                let object = match client.get_object().bucket(bucket).key(key).send().await {
                    Ok(object) => object,
                    Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => {
                        return Err(BlobError::NotFound { key: key.into() });
                    }
                    Err(e) => return Err(unavailable(key, aws_sdk_s3::error::DisplayErrorContext(e))),
                };
                let body = object.body.collect().await.map_err(|e| unavailable(key, e))?;
                Ok(body.into_bytes())
            }
        }
    }

    /// The object at `key`, read a chunk at a time as the caller consumes it.
    pub async fn stream(&self, key: &str) -> Result<BlobStream, BlobError> {
        match self {
            Self::Local(dir) => match tokio::fs::File::open(dir.join(key)).await {
                Ok(file) => Ok(Box::pin(tokio_util::io::ReaderStream::with_capacity(file, STREAM_CHUNK))),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(BlobError::NotFound { key: key.into() }),
                Err(e) => Err(unavailable(key, e)),
            },
            Self::S3 { client, bucket } => match client.get_object().bucket(bucket).key(key).send().await {
                Ok(object) => Ok(Box::pin(tokio_util::io::ReaderStream::with_capacity(
                    object.body.into_async_read(),
                    STREAM_CHUNK,
                ))),
                Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => {
                    Err(BlobError::NotFound { key: key.into() })
                }
                Err(e) => Err(unavailable(key, aws_sdk_s3::error::DisplayErrorContext(e))),
            },
        }
    }

    /// Whether the store answers; for readiness probes.
    pub async fn is_ready(&self) -> bool {
        match self {
            Self::Local(dir) => tokio::fs::metadata(dir).await.is_ok(),
            Self::S3 { client, bucket } => client.head_bucket().bucket(bucket).send().await.is_ok(),
        }
    }
}

/// What a put stores: bytes in memory, or a file read as it is sent.
enum Source<'a> {
    Bytes(Bytes),
    File(&'a std::path::Path),
}

fn unavailable(key: &str, error: impl std::fmt::Display) -> BlobError {
    BlobError::Unavailable { key: key.into(), message: error.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn local_store_round_trips_and_reports_missing_keys() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(&BlobSettings::Local { dir: dir.path().into() }).await.unwrap();
        store.put(&model_key("abc"), Bytes::from_static(b"solid")).await.unwrap();
        assert_eq!(store.get(&model_key("abc")).await.unwrap(), Bytes::from_static(b"solid"));
        assert!(matches!(store.get(&model_key("nope")).await, Err(BlobError::NotFound { .. })));
        assert!(store.is_ready().await);
    }

    #[tokio::test]
    async fn a_file_is_stored_whole_and_no_partial_is_left() {
        let (dir, spool) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let store = BlobStore::open(&BlobSettings::Local { dir: dir.path().into() }).await.unwrap();
        let file = spool.path().join("upload");
        let content: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&file, &content).unwrap();
        store.put_file(&model_key("big"), &file).await.unwrap();
        assert_eq!(store.get(&model_key("big")).await.unwrap(), Bytes::from(content.clone()));
        let chunks: Vec<Bytes> =
            futures_util::TryStreamExt::try_collect(store.stream(&model_key("big")).await.unwrap()).await.unwrap();
        assert_eq!(chunks.concat(), content);
        assert!(matches!(store.stream(&model_key("nope")).await, Err(BlobError::NotFound { .. })));
        let missing = spool.path().join("gone");
        assert!(matches!(store.put_file(&model_key("gone"), &missing).await, Err(BlobError::Unavailable { .. })));
        let names: Vec<String> = walk(dir.path()).iter().map(|p| p.to_string_lossy().into_owned()).collect();
        assert!(names.iter().all(|n| !n.contains("partial")), "{names:?}");
        assert!(matches!(store.get(&model_key("gone")).await, Err(BlobError::NotFound { .. })));
    }

    fn walk(dir: &std::path::Path) -> Vec<PathBuf> {
        let mut found = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() { found.extend(walk(&path)) } else { found.push(path) }
        }
        found
    }
}
