//! The object-store edge: a small trait, its error type, and the MinIO (S3) backend.
//!
//! Only `upload` writes to the bucket and only `delete` removes from it; the pipeline decides
//! when either may run. Every call has a deadline, since the SDK's HTTP client has none.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::StreamExt;
use minio::s3::builders::{ObjectToDelete, UploadPart};
use minio::s3::creds::StaticProvider;
use minio::s3::error::{Error as MinioError, NetworkError, S3ServerError, ValidationErr};
use minio::s3::http::BaseUrl;
use minio::s3::multimap_ext::{Multimap, MultimapExt};
use minio::s3::response_traits::{HasChecksumHeaders, HasEtagFromHeaders};
use minio::s3::segmented_bytes::SegmentedBytes;
use minio::s3::types::{BucketName, ObjectKey, PartInfo, Region, S3Api, ToStream};
use minio::s3::utils::ChecksumAlgorithm;
use minio::s3::{MinioClient, MinioClientBuilder};

use crate::config::{MinioConfig, Secret};
use crate::error::{Classify, ErrorClass, Reason};
use crate::hash::{open_regular, FileHash, FileIdentity, ReadError, Sha256Digest, Sha256Stream};
use crate::object_name::ObjectName;

/// Deadline for small requests (stat, delete, bucket check).
const SMALL_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Deadline for one PUT of up to a part: generous, since a part may be large and the link slow.
const PART_TIMEOUT: Duration = Duration::from_secs(300);

/// S3's most parts in one multipart upload.
pub const MAX_PARTS: u64 = 10_000;
/// S3's largest part.
pub const MAX_PART_BYTES: u64 = 5 << 30;
/// S3's largest object.
pub const MAX_OBJECT_BYTES: u64 = 5 << 40;

/// The part size a file of `file_size` bytes goes up in: `configured`, or for a file that
/// would need more than [`MAX_PARTS`] of them, the smallest whole number of MiB that fits it in
/// that many. The hash (its part digests) and the upload both use it, so both must ask here.
pub fn part_size_for(file_size: u64, configured: u64) -> u64 {
    const MIB: u64 = 1 << 20;
    let needed = file_size.div_ceil(MAX_PARTS);
    if needed <= configured {
        configured
    } else {
        needed.next_multiple_of(MIB)
    }
}

/// A multipart upload that lost a part to an outage: kept so that the next attempt at the same
/// object, with the same bytes, sends only the parts the server does not hold yet.
struct OpenUpload {
    upload_id: minio::s3::types::UploadId,
    /// What the parts add up to (`FileHash::expected_s3_checksum`): other bytes start over.
    expected: String,
    part_size: u64,
    /// The parts the server acknowledged, in order from part 1.
    parts: Vec<PartInfo>,
    opened: std::time::Instant,
}

/// How many interrupted uploads are kept for resumption at most; past that the oldest is
/// aborted. Each costs a few bytes per part here and its parts' bytes at the server.
const OPEN_UPLOADS: usize = 16;
/// An interrupted upload older than this starts over: the lifecycle rule the README asks for
/// aborts incomplete uploads after a day, and parts would vanish under a resumption.
const OPEN_UPLOAD_MAX_AGE: Duration = Duration::from_secs(12 * 3600);

/// What the store says about an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    pub size: u64,
    /// `x-amz-checksum-sha256` as the server reports it (base64, `-N` suffix for multipart).
    pub checksum_sha256: Option<String>,
    /// The content's hex SHA-256 we attached as user metadata at upload.
    pub meta_sha256: Option<String>,
}

/// One object as a listing reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectEntry {
    pub name: String,
    pub size: u64,
    /// Last modification, seconds since the Unix epoch.
    pub modified_unix_s: Option<i64>,
}

/// One local file to upload, with what was learnt when it was hashed.
pub struct UploadRequest<'a> {
    pub path: &'a Path,
    pub hash: &'a FileHash,
    pub content_type: &'a str,
    /// Files larger than this go up in parts of `part_size` (the hash must have part digests).
    pub multipart_threshold: u64,
    pub part_size: u64,
    /// Send a single PUT with `If-None-Match: *`, so that the server itself refuses to replace
    /// an object that exists (`AlreadyExists`). Only for servers whose probe showed they honour
    /// it; multipart uploads never use it (they are preceded by a stat instead).
    pub if_absent: bool,
}

/// How one single-request PUT is sent (see `S3Store::put_bytes`).
struct Put {
    /// User metadata headers (`x-amz-meta-*`).
    meta: Multimap,
    sha256_base64: String,
    if_absent: bool,
    content_type: Option<String>,
    limit: Duration,
}

/// What the server's answer to an upload said about the bytes it stored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stored {
    /// The `x-amz-checksum-sha256` the answer carried (base64), if it carried one. A server
    /// that enforces the checksum (see [`Capabilities::checksum_enforced`]) answers a single
    /// PUT with the SHA-256 it computed over the body and found equal to ours. `None` for a
    /// multipart upload, which is verified by a stat instead.
    pub checksum_sha256: Option<String>,
}

/// What the start-up probe learnt about the server (see `ObjectStore::probe`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// A PUT whose `x-amz-checksum-sha256` does not match its body is refused. Without this,
    /// verifying an upload by its checksum proves nothing.
    pub checksum_enforced: bool,
    /// A PUT with `If-None-Match: *` on an existing key is refused with 412.
    pub conditional_put: bool,
    /// A PUT's answer carries the `x-amz-checksum-sha256` it checked (MinIO, SeaweedFS). With
    /// `checksum_enforced`, that answer alone verifies a small file's upload.
    pub checksum_answered: bool,
}

/// Where the probe writes its scratch objects; nothing the daemon names starts with a dot.
pub const PROBE_PREFIX: &str = ".confronta-sync-probe/";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreErrorKind {
    /// Could not talk to the server: refused, reset, timed out, 5xx.
    Unavailable,
    NoSuchBucket,
    /// Credentials refused.
    AccessDenied,
    /// The server rejected the bytes' checksum: they are not what was hashed.
    ChecksumMismatch,
    /// The local file could not be read, or changed under us.
    LocalFile,
    /// The local file is gone.
    LocalFileMissing,
    /// A conditional PUT (`If-None-Match: *`) found the key taken: nothing was written.
    AlreadyExists,
    /// The object does not exist (`NoSuchKey`); `stat` answers it as `None`.
    NotFound,
    /// Anything else the server refused.
    Refused,
}

#[derive(Debug, thiserror::Error)]
#[error("object store: {message}")]
pub struct StoreError {
    pub kind: StoreErrorKind,
    pub message: String,
}

impl StoreError {
    fn new(kind: StoreErrorKind, message: impl Into<String>) -> Self {
        StoreError { kind, message: message.into() }
    }
    pub fn is_unavailable(&self) -> bool {
        self.kind == StoreErrorKind::Unavailable
    }
}

impl Classify for StoreError {
    fn class(&self) -> ErrorClass {
        match self.kind {
            // A missing bucket or refused credentials stop the daemon at start-up (checked
            // there); mid-run they are treated as an outage so files wait rather than fail.
            StoreErrorKind::Unavailable
            | StoreErrorKind::NoSuchBucket
            | StoreErrorKind::AccessDenied
            | StoreErrorKind::ChecksumMismatch
            | StoreErrorKind::LocalFile
            | StoreErrorKind::LocalFileMissing => ErrorClass::Transient,
            StoreErrorKind::AlreadyExists | StoreErrorKind::NotFound | StoreErrorKind::Refused => {
                ErrorClass::Rejected
            }
        }
    }
}

impl From<&StoreError> for Reason {
    fn from(error: &StoreError) -> Reason {
        match error.kind {
            StoreErrorKind::Unavailable => Reason::S3Unavailable,
            StoreErrorKind::NoSuchBucket => Reason::S3NoBucket,
            StoreErrorKind::AccessDenied => Reason::S3AccessDenied,
            StoreErrorKind::ChecksumMismatch => Reason::S3ChecksumRejected,
            StoreErrorKind::LocalFile => Reason::LocalChanged,
            StoreErrorKind::LocalFileMissing => Reason::LocalMissing,
            StoreErrorKind::AlreadyExists => Reason::ObjectConflict,
            // Before it had a kind of its own, a missing object was one more refusal.
            StoreErrorKind::NotFound | StoreErrorKind::Refused => Reason::S3Refused,
        }
    }
}

/// The operations the pipeline and the operator commands need from an object store.
#[async_trait]
pub trait ObjectStore: Send + Sync {
    /// Fails unless the bucket exists and the credentials can use it.
    async fn check_bucket(&self) -> Result<(), StoreError>;
    /// `None` when the object does not exist.
    async fn stat(&self, name: &ObjectName) -> Result<Option<ObjectInfo>, StoreError>;
    /// Uploads the file, sending the SHA-256 computed at hash time so that the server refuses
    /// any byte that differs from what was hashed; returns what the server's answer confirmed.
    async fn upload(&self, name: &ObjectName, request: UploadRequest<'_>) -> Result<Stored, StoreError>;
    /// Learns, with a few requests on scratch keys under `PROBE_PREFIX` (deleted again),
    /// whether the server enforces `x-amz-checksum-sha256` and honours `If-None-Match: *`.
    async fn probe(&self) -> Result<Capabilities, StoreError>;
    async fn delete(&self, name: &ObjectName) -> Result<(), StoreError>;
    /// Every object under `prefix`.
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectEntry>, StoreError>;
    /// A URL that lets anyone holding it GET the object until `expiry` has passed.
    async fn presign_get(&self, name: &ObjectName, expiry: Duration) -> Result<String, StoreError>;
    /// The object's bytes (for tests; small objects only).
    async fn get(&self, name: &ObjectName) -> Result<Bytes, StoreError>;
    /// The object's length and SHA-256, hashed as it downloads (`verify --deep`): memory stays
    /// at one network chunk whatever the object's size.
    async fn sha256_of(&self, name: &ObjectName) -> Result<(u64, Sha256Digest), StoreError>;
    /// The objects under `prefix` in key order, one listing page of at most `page_size` at a
    /// time; the next page is only asked for when the stream is polled again, so a caller that
    /// handles each page before taking the next never holds the whole listing.
    async fn list_pages(&self, prefix: &str, page_size: u16) -> Result<ObjectPages, StoreError>;
}

/// Listing pages, as `ObjectStore::list_pages` yields them.
pub type ObjectPages =
    std::pin::Pin<Box<dyn futures_util::Stream<Item = Result<Vec<ObjectEntry>, StoreError>> + Send>>;

/// How many upload buffers (a whole small file, or one part of a large one) may be held in
/// memory at once, across every file in flight. Small files take a fraction of a buffer each,
/// so this limits memory without limiting how many of them upload at once.
const UPLOAD_BUFFERS: u64 = 4;

/// The MinIO / S3 backend, on the official `minio` SDK.
pub struct S3Store {
    client: MinioClient,
    bucket: BucketName,
    region: Region,
    /// File bytes read into memory for uploads, in KiB; see [`UPLOAD_BUFFERS`].
    upload_memory: Arc<tokio::sync::Semaphore>,
    upload_memory_kib: u32,
    /// Interrupted multipart uploads by object key, see [`OpenUpload`].
    open_uploads: std::sync::Mutex<std::collections::HashMap<String, OpenUpload>>,
}

impl S3Store {
    pub fn new(config: &MinioConfig, secret_key: &Secret) -> Result<S3Store, StoreError> {
        let invalid = |what: &str, e: &dyn std::fmt::Display| {
            StoreError::new(StoreErrorKind::Refused, format!("invalid {what}: {e}"))
        };
        let base_url: BaseUrl = config.endpoint.parse().map_err(|e| invalid("minio.endpoint", &e))?;
        let provider = StaticProvider::new(&config.access_key, secret_key.expose(), None);
        let client = MinioClientBuilder::new(base_url)
            .provider(Some(provider))
            .skip_region_lookup(true)
            .app_info(Some(("confronta-sync".into(), env!("CARGO_PKG_VERSION").into())))
            .build()
            .map_err(|e| invalid("minio client settings", &e))?;
        let bucket = BucketName::new(&config.bucket).map_err(|e| invalid("minio.bucket", &e))?;
        let region = Region::new(&config.region).map_err(|e| invalid("minio.region", &e))?;
        let buffer = config.part_size_bytes.max(config.multipart_threshold_bytes);
        let upload_memory_kib = u32::try_from((UPLOAD_BUFFERS * buffer).div_ceil(1024)).unwrap_or(u32::MAX);
        let upload_memory = Arc::new(tokio::sync::Semaphore::new(upload_memory_kib as usize));
        Ok(S3Store {
            client,
            bucket,
            region,
            upload_memory,
            upload_memory_kib,
            open_uploads: Default::default(),
        })
    }

    /// Waits until `bytes` more may be held in memory for uploads; the bytes count as held
    /// until the permit is dropped. A request larger than the whole budget waits for all of it.
    async fn reserve_memory(&self, bytes: u64) -> tokio::sync::OwnedSemaphorePermit {
        let kib = u32::try_from(bytes.div_ceil(1024)).unwrap_or(u32::MAX).clamp(1, self.upload_memory_kib);
        self.upload_memory.clone().acquire_many_owned(kib).await.expect("the semaphore is never closed")
    }

    fn key(&self, name: &ObjectName) -> Result<ObjectKey, StoreError> {
        ObjectKey::new(name.as_str())
            .map_err(|e| StoreError::new(StoreErrorKind::Refused, format!("invalid object name {name}: {e}")))
    }

    async fn put_single(
        &self,
        key: ObjectKey,
        request: &UploadRequest<'_>,
        meta: Multimap,
    ) -> Result<Stored, StoreError> {
        let _held = self.reserve_memory(request.hash.identity.size).await;
        let data = read_exact_range(request.path, &request.hash.identity, 0, request.hash.identity.size)?;
        let put = Put {
            meta,
            sha256_base64: request.hash.sha256.to_base64(),
            if_absent: request.if_absent,
            content_type: Some(request.content_type.to_owned()),
            limit: PART_TIMEOUT,
        };
        self.put_bytes(&key, data, put).await
    }

    async fn put_multipart(
        &self,
        key: ObjectKey,
        request: &UploadRequest<'_>,
        meta: Multimap,
    ) -> Result<(), StoreError> {
        let size = request.hash.identity.size;
        if size > MAX_OBJECT_BYTES {
            return Err(StoreError::new(
                StoreErrorKind::Refused,
                format!("object {key}: {size} bytes is over S3's largest object ({MAX_OBJECT_BYTES} bytes)"),
            ));
        }
        let part_size = part_size_for(size, request.part_size);
        if size.div_ceil(part_size) != request.hash.part_digests.len() as u64 {
            // Hashed under other part settings (a restart with a new part_size_bytes): the
            // digests do not cut the file where these parts would. Hashing again fixes it.
            return Err(StoreError::new(
                StoreErrorKind::LocalFile,
                format!(
                    "object {key}: {} part digests were computed, {} parts of {part_size} bytes are needed; hashing again",
                    request.hash.part_digests.len(),
                    size.div_ceil(part_size)
                ),
            ));
        }
        let expected = request.hash.expected_s3_checksum();
        if let Some(open) = self.take_open_upload(&key, &expected, part_size).await {
            tracing::info!(object = %key, from_part = open.parts.len() + 1, "resuming the multipart upload from the part that failed");
            let mut parts = open.parts;
            match self.put_parts(&key, &open.upload_id, request, part_size, &mut parts).await {
                Ok(()) => return Ok(()),
                Err(e) => {
                    let keep = OpenUpload { parts, ..open };
                    match self.keep_or_abort(&key, keep, e).await {
                        // The server no longer knows the upload (aborted by a lifecycle rule,
                        // say): one fresh start in the same attempt.
                        Err(e) if matches!(e.kind, StoreErrorKind::Refused | StoreErrorKind::NotFound) => {
                            tracing::warn!(object = %key, error = %e, "the interrupted upload cannot be resumed; starting it over")
                        }
                        other => return other,
                    }
                }
            }
        }
        let created = self
            .client
            .create_multipart_upload(self.bucket.clone(), key.clone())
            .map_err(|e| map_validation(&key, e))?
            .region(Some(self.region.clone()))
            .content_type(Some(request.content_type.to_owned()))
            .user_metadata(Some(meta))
            .checksum_algorithm(Some(ChecksumAlgorithm::SHA256))
            .build();
        let created = deadline(SMALL_REQUEST_TIMEOUT, &key, created.send()).await?;
        let upload_id = created.upload_id().await.map_err(|e| map_validation(&key, e))?;
        let mut parts = Vec::with_capacity(request.hash.part_digests.len());
        match self.put_parts(&key, &upload_id, request, part_size, &mut parts).await {
            Ok(()) => Ok(()),
            Err(e) => {
                let open =
                    OpenUpload { upload_id, expected, part_size, parts, opened: std::time::Instant::now() };
                self.keep_or_abort(&key, open, e).await
            }
        }
    }

    /// The interrupted upload of `key`, if one is kept for these bytes cut into these parts; an
    /// unusable one is aborted.
    async fn take_open_upload(&self, key: &ObjectKey, expected: &str, part_size: u64) -> Option<OpenUpload> {
        let open = self.open_uploads.lock().expect("never poisoned").remove(key.as_str())?;
        if open.expected == expected
            && open.part_size == part_size
            && open.opened.elapsed() < OPEN_UPLOAD_MAX_AGE
        {
            return Some(open);
        }
        self.abort(key, open.upload_id).await;
        None
    }

    /// After a failed part: an outage keeps the upload for the next attempt to resume (its
    /// parts stay at the server); anything else (the file changed, the server refused) aborts
    /// it. Returns `error` either way.
    async fn keep_or_abort(
        &self,
        key: &ObjectKey,
        open: OpenUpload,
        error: StoreError,
    ) -> Result<(), StoreError> {
        if !error.is_unavailable() {
            // Leave no half-finished upload behind; if the abort fails too, the bucket's
            // lifecycle rules (or `orphans`) clean it up, and the file is still local.
            self.abort(key, open.upload_id).await;
            return Err(error);
        }
        tracing::debug!(object = %key, parts_done = open.parts.len(), "multipart upload interrupted; kept for the next attempt");
        let evicted = {
            let mut uploads = self.open_uploads.lock().expect("never poisoned");
            let evicted = if uploads.len() >= OPEN_UPLOADS {
                let oldest = uploads.iter().min_by_key(|(_, u)| u.opened).map(|(k, _)| k.clone());
                oldest.and_then(|k| uploads.remove(&k).map(|u| (k, u)))
            } else {
                None
            };
            uploads.insert(key.to_string(), open);
            evicted
        };
        if let Some((name, old)) = evicted {
            if let Ok(old_key) = ObjectKey::new(name) {
                self.abort(&old_key, old.upload_id).await;
            }
        }
        Err(error)
    }

    async fn abort(&self, key: &ObjectKey, upload_id: minio::s3::types::UploadId) {
        if let Ok(abort) = self.client.abort_multipart_upload(self.bucket.clone(), key.clone(), upload_id) {
            let _ = tokio::time::timeout(SMALL_REQUEST_TIMEOUT, abort.build().send()).await;
        }
    }

    /// Sends the parts after those in `parts` (which the server holds already), then completes
    /// the upload. `parts` grows as each is acknowledged, so a failure leaves it saying where
    /// to resume.
    async fn put_parts(
        &self,
        key: &ObjectKey,
        upload_id: &minio::s3::types::UploadId,
        request: &UploadRequest<'_>,
        part_size: u64,
        parts: &mut Vec<PartInfo>,
    ) -> Result<(), StoreError> {
        let size = request.hash.identity.size;
        for (index, digest) in request.hash.part_digests.iter().enumerate().skip(parts.len()) {
            let offset = index as u64 * part_size;
            let length = part_size.min(size - offset);
            let _held = self.reserve_memory(length).await;
            let data = read_exact_range(request.path, &request.hash.identity, offset, length)?;
            let number =
                u16::try_from(index + 1).ok().filter(|n| u64::from(*n) <= MAX_PARTS).ok_or_else(|| {
                    StoreError::new(StoreErrorKind::Refused, format!("{key}: more than {MAX_PARTS} parts"))
                })?;
            // The resumption tests fail one part here, as a lost connection would.
            #[cfg(feature = "failpoints")]
            if fail::eval("upload_part", |_| ()).is_some() {
                return Err(StoreError::new(
                    StoreErrorKind::Unavailable,
                    format!("object {key}: part {number} failed (failpoint upload_part)"),
                ));
            }
            let mut headers = Multimap::new();
            headers.add("x-amz-checksum-sha256", digest.to_base64());
            let part = self
                .client
                .upload_part(
                    self.bucket.clone(),
                    key.clone(),
                    upload_id.clone(),
                    number,
                    SegmentedBytes::from(data),
                )
                .map_err(|e| map_validation(key, e))?
                .region(Some(self.region.clone()))
                .extra_headers(Some(headers))
                .build();
            let response = deadline(PART_TIMEOUT, key, part.send()).await?;
            // A large file's parts are its only sign of progress for minutes (the watchdog's).
            crate::telemetry::progressed();
            let etag = response.etag().map_err(|e| map_validation(key, e))?;
            tracing::debug!(object = %key, part = number, bytes = length, "part uploaded");
            parts.push(PartInfo::new(
                number,
                etag,
                length,
                Some((ChecksumAlgorithm::SHA256, digest.to_base64())),
            ));
        }
        let complete = self
            .client
            .complete_multipart_upload(self.bucket.clone(), key.clone(), upload_id.clone(), parts.clone())
            .map_err(|e| map_validation(key, e))?
            .region(Some(self.region.clone()))
            .checksum_algorithm(Some(ChecksumAlgorithm::SHA256))
            .build();
        deadline(PART_TIMEOUT, key, complete.send()).await?;
        Ok(())
    }
}

#[async_trait]
impl ObjectStore for S3Store {
    async fn check_bucket(&self) -> Result<(), StoreError> {
        let bucket = &self.bucket;
        let request = self
            .client
            .bucket_exists(bucket.clone())
            .map_err(|e| StoreError::new(StoreErrorKind::Refused, e.to_string()))?
            .region(Some(self.region.clone()))
            .build();
        let response = tokio::time::timeout(SMALL_REQUEST_TIMEOUT, request.send())
            .await
            .map_err(|_| StoreError::new(StoreErrorKind::Unavailable, format!("bucket {bucket}: timed out")))?
            .map_err(|e| classify_minio(&format!("bucket {bucket}"), e))?;
        if !response.exists() {
            return Err(StoreError::new(
                StoreErrorKind::NoSuchBucket,
                format!("bucket {bucket} does not exist"),
            ));
        }
        // bucket_exists may answer without checking credentials on some servers; a listing
        // of one key proves the key can read the bucket.
        self.list_limited("", Some(1)).await?;
        Ok(())
    }

    async fn stat(&self, name: &ObjectName) -> Result<Option<ObjectInfo>, StoreError> {
        let key = self.key(name)?;
        let mut headers = Multimap::new();
        headers.add("x-amz-checksum-mode", "ENABLED");
        let request = self
            .client
            .stat_object(self.bucket.clone(), key.clone())
            .map_err(|e| map_validation(&key, e))?
            .region(Some(self.region.clone()))
            .extra_headers(Some(headers))
            .build();
        match deadline(SMALL_REQUEST_TIMEOUT, &key, request.send()).await {
            Ok(response) => {
                let size = response.size().map_err(|e| map_validation(&key, e))?;
                let meta_sha256 = response.user_metadata().ok().and_then(|meta| meta.get("sha256").cloned());
                Ok(Some(ObjectInfo {
                    size,
                    checksum_sha256: response.get_checksum(ChecksumAlgorithm::SHA256),
                    meta_sha256,
                }))
            }
            Err(StoreError { kind: StoreErrorKind::NotFound, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn upload(&self, name: &ObjectName, request: UploadRequest<'_>) -> Result<Stored, StoreError> {
        let key = self.key(name)?;
        let mut meta = Multimap::new();
        meta.add("x-amz-meta-sha256", request.hash.sha256.to_hex());
        if request.hash.identity.size > request.multipart_threshold && !request.hash.part_digests.is_empty() {
            self.put_multipart(key, &request, meta).await.map(|()| Stored::default())
        } else {
            self.put_single(key, &request, meta).await
        }
    }

    async fn probe(&self) -> Result<Capabilities, StoreError> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let key = ObjectKey::new(format!("{PROBE_PREFIX}{}-{nanos:x}", std::process::id()))
            .map_err(|e| StoreError::new(StoreErrorKind::Refused, format!("probe key: {e}")))?;
        let body = Bytes::from_static(b"confronta-sync capability probe\n");
        let right = crate::hash::Sha256Digest::of_bytes(&body).to_base64();
        let wrong = crate::hash::Sha256Digest::of_bytes(b"other bytes").to_base64();

        let probe = |sha256_base64: &str, if_absent: bool| Put {
            meta: Multimap::new(),
            sha256_base64: sha256_base64.to_owned(),
            if_absent,
            content_type: None,
            limit: SMALL_REQUEST_TIMEOUT,
        };
        let wrong_put = self.put_bytes(&key, body.clone(), probe(&wrong, false)).await;
        let checksum_enforced = match wrong_put {
            Err(e) if e.kind == StoreErrorKind::ChecksumMismatch => true,
            // Any other refusal (a 400 whose body names no checksum) stored nothing either,
            // but it does not show that the checksum was looked at.
            Err(e) if e.is_unavailable() => return Err(e),
            Err(_) | Ok(_) => false,
        };
        let stat = self.stat(&ObjectName::from_stored(key.to_string())).await?;
        // A server that refused the body but kept it anyway is as bad as one that ignored it.
        let checksum_enforced = checksum_enforced && stat.is_none();

        let stored = self.put_bytes(&key, body.clone(), probe(&right, false)).await?;
        let checksum_answered = stored.checksum_sha256.as_deref() == Some(right.as_str());
        let conditional_put = match self.put_bytes(&key, body, probe(&right, true)).await {
            Err(e) if e.kind == StoreErrorKind::AlreadyExists => true,
            Err(e) if e.is_unavailable() => {
                let _ = self.delete(&ObjectName::from_stored(key.to_string())).await;
                return Err(e);
            }
            Err(_) | Ok(_) => false,
        };
        self.delete(&ObjectName::from_stored(key.to_string())).await?;
        Ok(Capabilities { checksum_enforced, conditional_put, checksum_answered })
    }

    async fn delete(&self, name: &ObjectName) -> Result<(), StoreError> {
        let key = self.key(name)?;
        let target = ObjectToDelete::from(key.clone());
        let request = self
            .client
            .delete_object(self.bucket.clone(), target)
            .map_err(|e| map_validation(&key, e))?
            .region(Some(self.region.clone()))
            .build();
        deadline(SMALL_REQUEST_TIMEOUT, &key, request.send()).await?;
        Ok(())
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectEntry>, StoreError> {
        self.list_limited(prefix, None).await
    }

    async fn presign_get(&self, name: &ObjectName, expiry: Duration) -> Result<String, StoreError> {
        let key = self.key(name)?;
        let seconds = u32::try_from(expiry.as_secs()).unwrap_or(u32::MAX);
        let request = self
            .client
            .get_presigned_object_url(self.bucket.clone(), key.clone(), http::Method::GET)
            .map_err(|e| map_validation(&key, e))?
            .region(Some(self.region.clone()))
            .expiry_seconds(Some(seconds))
            .build();
        let response = deadline(SMALL_REQUEST_TIMEOUT, &key, request.send()).await?;
        Ok(response.url)
    }

    async fn get(&self, name: &ObjectName) -> Result<Bytes, StoreError> {
        let key = self.key(name)?;
        let content = self.object_content(&key).await?;
        let segmented = content
            .to_segmented_bytes()
            .await
            .map_err(|e| StoreError::new(StoreErrorKind::Unavailable, format!("{key}: {e}")))?;
        Ok(segmented.to_bytes())
    }

    async fn sha256_of(&self, name: &ObjectName) -> Result<(u64, Sha256Digest), StoreError> {
        let key = self.key(name)?;
        let content = self.object_content(&key).await?;
        let broken = |e: std::io::Error| StoreError::new(StoreErrorKind::Unavailable, format!("{key}: {e}"));
        let (mut chunks, _) = content.to_stream().await.map_err(broken)?;
        let mut hasher = Sha256Stream::default();
        // A deadline per chunk rather than for the whole object: a large object on a slow link
        // may take long, but a peer that stops sending must not hang the command.
        loop {
            match tokio::time::timeout(SMALL_REQUEST_TIMEOUT, chunks.next()).await {
                Ok(Some(chunk)) => hasher.update(&chunk.map_err(broken)?),
                Ok(None) => break,
                Err(_) => {
                    return Err(StoreError::new(
                        StoreErrorKind::Unavailable,
                        format!("object {key}: no data within {}s", SMALL_REQUEST_TIMEOUT.as_secs()),
                    ))
                }
            }
        }
        let (digest, length) = hasher.finish();
        Ok((length, digest))
    }

    async fn list_pages(&self, prefix: &str, page_size: u16) -> Result<ObjectPages, StoreError> {
        let prefix_filter = (!prefix.is_empty()).then(|| prefix.to_owned());
        let shown = prefix.to_owned();
        let pages = self
            .client
            .list_objects(self.bucket.clone())
            .map_err(|e| StoreError::new(StoreErrorKind::Refused, e.to_string()))?
            .region(Some(self.region.clone()))
            .recursive(true)
            .prefix(prefix_filter)
            .max_keys(Some(page_size.max(1)))
            .build()
            .to_stream()
            .await;
        Ok(Box::pin(pages.map(move |page| {
            let page = page.map_err(|e| classify_minio(&format!("listing {shown:?}"), e))?;
            Ok(page
                .contents
                .into_iter()
                .filter(|entry| !entry.is_prefix)
                .map(|entry| ObjectEntry {
                    name: entry.name,
                    size: entry.size.unwrap_or(0),
                    modified_unix_s: entry.last_modified.map(|t| t.timestamp()),
                })
                .collect())
        })))
    }
}

impl S3Store {
    /// A GET of the object `key`: its body, still to be read (whole by `get`, as a stream by
    /// `sha256_of`).
    async fn object_content(
        &self,
        key: &ObjectKey,
    ) -> Result<minio::s3::builders::ObjectContent, StoreError> {
        let request = self
            .client
            .get_object(self.bucket.clone(), key.clone())
            .map_err(|e| map_validation(key, e))?
            .region(Some(self.region.clone()))
            .build();
        let response = deadline(PART_TIMEOUT, key, request.send()).await?;
        response.content().map_err(|e| classify_minio(&format!("object {key}"), e))
    }

    /// One PUT of `body`, carrying its SHA-256 for the server to check and, with `if_absent`,
    /// `If-None-Match: *`.
    async fn put_bytes(&self, key: &ObjectKey, body: Bytes, put: Put) -> Result<Stored, StoreError> {
        let mut headers = put.meta;
        headers.add("x-amz-checksum-sha256", put.sha256_base64);
        if put.if_absent {
            headers.add("If-None-Match", "*");
        }
        let request = UploadPart::builder()
            .client(self.client.clone())
            .bucket(self.bucket.clone())
            .object(key.clone())
            .region(Some(self.region.clone()))
            .data(Arc::new(SegmentedBytes::from(body)))
            .content_type(put.content_type)
            .extra_headers(Some(headers))
            .build();
        let response = deadline(put.limit, key, request.send()).await?;
        Ok(Stored { checksum_sha256: response.get_checksum(ChecksumAlgorithm::SHA256) })
    }

    async fn list_limited(&self, prefix: &str, limit: Option<usize>) -> Result<Vec<ObjectEntry>, StoreError> {
        let prefix_filter = (!prefix.is_empty()).then(|| prefix.to_owned());
        let mut stream = self
            .client
            .list_objects(self.bucket.clone())
            .map_err(|e| StoreError::new(StoreErrorKind::Refused, e.to_string()))?
            .region(Some(self.region.clone()))
            .recursive(true)
            .prefix(prefix_filter)
            .build()
            .to_stream()
            .await;
        let mut names = Vec::new();
        while let Some(page) = stream.next().await {
            let page = page.map_err(|e| classify_minio(&format!("listing {prefix:?}"), e))?;
            for entry in page.contents {
                if !entry.is_prefix {
                    names.push(ObjectEntry {
                        name: entry.name,
                        size: entry.size.unwrap_or(0),
                        modified_unix_s: entry.last_modified.map(|t| t.timestamp()),
                    });
                }
            }
            if limit.is_some_and(|limit| names.len() >= limit) {
                break;
            }
        }
        Ok(names)
    }
}

/// Reads `length` bytes at `offset` of the file that was hashed, refusing if it is no longer
/// the same file (the server would refuse the checksum anyway; this says why).
fn read_exact_range(
    path: &Path,
    expected: &FileIdentity,
    offset: u64,
    length: u64,
) -> Result<Bytes, StoreError> {
    use std::os::unix::fs::FileExt;
    let local = |e: ReadError| {
        let kind =
            if e.is_not_found() { StoreErrorKind::LocalFileMissing } else { StoreErrorKind::LocalFile };
        StoreError::new(kind, e.to_string())
    };
    let (file, identity) = open_regular(path).map_err(local)?;
    if identity != *expected {
        return Err(StoreError::new(
            StoreErrorKind::LocalFile,
            format!("{} changed since it was hashed", path.display()),
        ));
    }
    let mut buffer = vec![0u8; length as usize];
    file.read_exact_at(&mut buffer, offset)
        .map_err(|source| local(ReadError::Io { path: path.display().to_string(), source }))?;
    Ok(Bytes::from(buffer))
}

async fn deadline<T>(
    limit: Duration,
    key: &ObjectKey,
    request: impl std::future::Future<Output = Result<T, MinioError>>,
) -> Result<T, StoreError> {
    match tokio::time::timeout(limit, request).await {
        Ok(result) => result.map_err(|e| classify_minio(&format!("object {key}"), e)),
        Err(_) => Err(StoreError::new(
            StoreErrorKind::Unavailable,
            format!("object {key}: no answer within {}s", limit.as_secs()),
        )),
    }
}

fn map_validation(key: &ObjectKey, e: ValidationErr) -> StoreError {
    classify_minio(&format!("object {key}"), MinioError::Validation(e))
}

/// Maps an SDK error onto our kinds, naming `what` (the object or bucket) in the message.
fn classify_minio(what: &str, error: MinioError) -> StoreError {
    let (kind, detail) = match &error {
        MinioError::Network(NetworkError::ServerError(status)) => {
            (StoreErrorKind::Unavailable, format!("server answered HTTP {status}"))
        }
        MinioError::Network(NetworkError::ReqwestError(e)) => {
            (StoreErrorKind::Unavailable, describe_reqwest(e))
        }
        MinioError::Validation(ValidationErr::HttpError(e)) => {
            (StoreErrorKind::Unavailable, describe_reqwest(e))
        }
        MinioError::S3Server(S3ServerError::S3Error(response)) => {
            let code = response.code().to_string();
            let message = response.message().clone().unwrap_or_default();
            (classify_s3_code(&code, &message), format!("{code}: {message}"))
        }
        MinioError::S3Server(S3ServerError::HttpError(status, body))
        | MinioError::S3Server(S3ServerError::InvalidServerResponse {
            http_status_code: status,
            message: body,
            ..
        }) => {
            let kind = if *status >= 500 {
                StoreErrorKind::Unavailable
            } else if *status == 412 {
                StoreErrorKind::AlreadyExists
            } else if body.to_ascii_lowercase().contains("checksum") {
                StoreErrorKind::ChecksumMismatch
            } else {
                StoreErrorKind::Refused
            };
            (kind, format!("HTTP {status}: {body}"))
        }
        MinioError::DriveIo(e) => (StoreErrorKind::LocalFile, e.to_string()),
        MinioError::Validation(e) => (StoreErrorKind::Refused, e.to_string()),
    };
    StoreError::new(kind, format!("{what}: {detail}"))
}

/// The kind of an S3 error response by its code. Compared lowercased: the SDK keeps the case of
/// the few codes it knows and lowercases every other one (`InternalError` arrives as
/// `internalerror`), which once made a server's "try again" look like a refusal.
fn classify_s3_code(code: &str, message: &str) -> StoreErrorKind {
    let code = code.to_ascii_lowercase();
    match code.as_str() {
        "nosuchbucket" => StoreErrorKind::NoSuchBucket,
        // The SDK also gives a HEAD's bodiless 404 this code.
        "nosuchkey" => StoreErrorKind::NotFound,
        // The answer to `If-None-Match: *` on a key that exists (MinIO, SeaweedFS, AWS).
        "preconditionfailed" | "http 412" => StoreErrorKind::AlreadyExists,
        "accessdenied" | "invalidaccesskeyid" | "signaturedoesnotmatch" => StoreErrorKind::AccessDenied,
        "baddigest"
        | "invaliddigest"
        | "xamzcontentchecksummismatch"
        | "xamzcontentsha256mismatch"
        | "invalidchecksum" => StoreErrorKind::ChecksumMismatch,
        // S3's and MinIO's "try again": overload, restarts, lost quorum.
        "internalerror"
        | "serviceunavailable"
        | "slowdown"
        | "requesttimeout"
        | "xminioservernotinitialized"
        | "xminioreadquorum"
        | "xminiowritequorum" => StoreErrorKind::Unavailable,
        // The SDK's code for an error answer without a body: "HTTP <status>".
        _ if code.starts_with("http 5") => StoreErrorKind::Unavailable,
        _ if message.to_ascii_lowercase().contains("checksum") => StoreErrorKind::ChecksumMismatch,
        _ => StoreErrorKind::Refused,
    }
}

/// An error with its source chain, so "error sending request" says "connection refused".
fn describe_reqwest(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn store(part_size: u64) -> S3Store {
        let text = format!(
            "[watch]\nmedia_root = \"/m\"\n[database]\nurl = \"sqlite:///db\"\n[minio]\nendpoint = \"http://127.0.0.1:9\"\n\
             access_key = \"k\"\nmultipart_threshold_bytes = {part_size}\npart_size_bytes = {part_size}\n\
             [journal]\npath = \"/j\"\n"
        );
        let config = crate::config::Config::parse(&text, Path::new("t.toml")).unwrap();
        S3Store::new(&config.minio, &Secret::new("s")).unwrap()
    }

    /// Regression: garage answered a PUT with `ServiceUnavailable` ("Could not reach quorum",
    /// its metadata database briefly locked) and the file was kept as refused, because the SDK
    /// hands unknown codes over lowercased.
    #[test]
    fn server_side_try_again_codes_are_transient_whatever_their_case() {
        use minio::s3::minio_error_response::{MinioErrorCode, MinioErrorResponse};
        use std::str::FromStr;
        let kind_of = |code: &str| {
            let response = MinioErrorResponse::new(
                Default::default(),
                MinioErrorCode::from_str(code).unwrap(),
                Some("Internal error: Could not reach quorum of 1".into()),
                String::new(),
                String::new(),
                String::new(),
                None,
                None,
            );
            classify_minio("object o", MinioError::S3Server(S3ServerError::S3Error(Box::new(response)))).kind
        };
        for code in [
            "ServiceUnavailable",
            "InternalError",
            "SlowDown",
            "RequestTimeout",
            "XMinioServerNotInitialized",
        ] {
            assert_eq!(kind_of(code), StoreErrorKind::Unavailable, "{code}");
        }
        assert_eq!(kind_of("XAmzContentSHA256Mismatch"), StoreErrorKind::ChecksumMismatch);
        assert_eq!(kind_of("AccessDenied"), StoreErrorKind::AccessDenied);
        assert_eq!(kind_of("NoSuchBucket"), StoreErrorKind::NoSuchBucket);
        assert_eq!(kind_of("InvalidArgument"), StoreErrorKind::Refused);
        assert_eq!(kind_of("NoSuchKey"), StoreErrorKind::NotFound);
        let bodiless = MinioErrorResponse::from_status_and_message(503, "Service Unavailable".into());
        let kind =
            classify_minio("object o", MinioError::S3Server(S3ServerError::S3Error(Box::new(bodiless)))).kind;
        assert_eq!(kind, StoreErrorKind::Unavailable);
    }

    /// Issue 15: a missing object is a kind of its own (no longer found by "NoSuchKey" in the
    /// message), and each kind's reason is handled as the error's own class says.
    #[test]
    fn each_kind_has_its_reason_and_a_missing_object_is_not_found() {
        crate::error::check_reasons(
            [
                (StoreErrorKind::Unavailable, Reason::S3Unavailable),
                (StoreErrorKind::NoSuchBucket, Reason::S3NoBucket),
                (StoreErrorKind::AccessDenied, Reason::S3AccessDenied),
                (StoreErrorKind::ChecksumMismatch, Reason::S3ChecksumRejected),
                (StoreErrorKind::LocalFile, Reason::LocalChanged),
                (StoreErrorKind::LocalFileMissing, Reason::LocalMissing),
                (StoreErrorKind::AlreadyExists, Reason::ObjectConflict),
                (StoreErrorKind::NotFound, Reason::S3Refused),
                (StoreErrorKind::Refused, Reason::S3Refused),
            ]
            .map(|(kind, reason)| (StoreError::new(kind, "object o"), reason)),
        );
        use minio::s3::minio_error_response::MinioErrorResponse;
        let head_404 = MinioErrorResponse::from_status_and_message(404, String::new());
        let error =
            classify_minio("object o", MinioError::S3Server(S3ServerError::S3Error(Box::new(head_404))));
        assert_eq!(error.kind, StoreErrorKind::NotFound, "{error}");
    }

    /// Issue 17, item 7: the part-count guard checked 65,535 while S3 allows 10,000, so a file
    /// over 10,000 parts of `part_size_bytes` failed at the server on every attempt.
    #[test]
    fn the_part_size_grows_to_keep_a_file_within_ten_thousand_parts() {
        const MIB: u64 = 1 << 20;
        let check = |size: u64, configured: u64, expected: u64| {
            let part = part_size_for(size, configured);
            assert_eq!(part, expected, "file of {size} bytes, parts of {configured}");
            assert!(size.div_ceil(part) <= MAX_PARTS, "{size} bytes in parts of {part}");
            assert!(part <= MAX_PART_BYTES, "{size} bytes: part of {part}");
        };
        // Within the limit: the configured size, to the last byte.
        check(12 * MIB, 5 * MIB, 5 * MIB);
        check(MAX_PARTS * 5 * MIB, 5 * MIB, 5 * MIB);
        // One byte more, and parts grow to the next whole MiB that fits.
        check(MAX_PARTS * 5 * MIB + 1, 5 * MIB, 6 * MIB);
        check(100 << 30, 5 * MIB, 11 * MIB);
        check(100 << 30, 64 * MIB, 64 * MIB);
        // S3's largest object still fits in 10,000 parts each under S3's largest part.
        check(MAX_OBJECT_BYTES, 5 * MIB, 525 * MIB);
    }

    #[tokio::test]
    async fn upload_memory_holds_four_buffers_and_many_small_files() {
        const PART: u64 = 8 * 1024 * 1024;
        let store = store(PART);
        let held: Vec<_> = futures_util::future::join_all((0..4).map(|_| store.reserve_memory(PART))).await;
        let fifth = tokio::time::timeout(Duration::from_millis(50), store.reserve_memory(PART)).await;
        assert!(fifth.is_err(), "a fifth buffer must wait while four are held");
        drop(held);

        // 200 KB files: a hundred of them fit in the budget at once.
        let small: Vec<_> =
            futures_util::future::join_all((0..100).map(|_| store.reserve_memory(204_800))).await;
        assert_eq!(small.len(), 100);
        drop(small);

        // A request larger than the whole budget waits for all of it, and does not deadlock.
        let huge = tokio::time::timeout(Duration::from_secs(1), store.reserve_memory(10 * PART)).await;
        assert!(huge.is_ok(), "an oversized buffer must still be served");
    }
}
