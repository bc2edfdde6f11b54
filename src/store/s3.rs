//! The MinIO / S3 backend of `ObjectStore`, on the official `minio` SDK.
//!
//! Every call has a deadline, since the SDK's HTTP client has none.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::StreamExt;
use minio::s3::builders::ObjectToDelete;
use minio::s3::creds::StaticProvider;
use minio::s3::error::Error as MinioError;
use minio::s3::http::BaseUrl;
use minio::s3::multimap_ext::{Multimap, MultimapExt};
use minio::s3::response_traits::{HasChecksumHeaders, HasIsDeleteMarker, HasS3Fields, HasVersion};
use minio::s3::types::{BucketName, ObjectKey, Region, S3Api, ToStream};
use minio::s3::utils::ChecksumAlgorithm;
use minio::s3::{MinioClient, MinioClientBuilder};

use super::{
    BucketSetup, Deleted, Encryption, KeptProbe, ObjectEntry, ObjectInfo, ObjectPages, ObjectPolicy,
    ObjectStore, ObjectVersion, Probe, StoreError, StoreErrorKind, Stored, UploadRequest,
};
use crate::config::{MinioConfig, Secret};
use crate::hash::{open_regular, FileIdentity, ReadError, Sha256Digest, Sha256Stream};
use crate::object_name::ObjectName;

mod errors;
mod multipart;
mod probe;
mod signed;

use errors::{answered, classify_answer, classify_minio, map_validation, AnsweredStream, StatusHook};
use multipart::OpenUpload;
use signed::{SignedPut, Signer};

/// Deadline for small requests (stat, delete, bucket check).
const SMALL_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Deadline for the requests whose answer may take long for other reasons than their body: the
/// completion of a multipart upload (the server assembles the parts), a GET's headers.
const PART_TIMEOUT: Duration = Duration::from_secs(300);
/// What a PUT gets to be answered besides the time its body takes at the slowest rate: the
/// connection, the server's checksum and write.
const PUT_ANSWER_MARGIN: Duration = Duration::from_secs(20);

/// The deadline of a PUT of `bytes`: `PUT_ANSWER_MARGIN` plus the body's time at
/// `min_bytes_per_s`. A flat deadline long enough for the largest part let a blackholed server
/// hold every small file for minutes before anything noticed.
pub fn put_deadline(bytes: u64, min_bytes_per_s: u64) -> Duration {
    PUT_ANSWER_MARGIN + Duration::from_secs(bytes.div_ceil(min_bytes_per_s.max(1)))
}

/// Makes the process environment say what `minio.proxy` says, for the SDK's HTTP client, which
/// takes its proxy from `HTTP_PROXY`, `HTTPS_PROXY` and `ALL_PROXY` and cannot be told
/// otherwise: with no proxy configured they are removed (a proxy meant for a shell session or
/// another program must not carry the bucket's traffic), with one they name it. Must run
/// before any other thread starts: changing the environment races with threads reading it.
pub fn settle_proxy_environment(config: &MinioConfig) {
    const NAMES: [&str; 8] = [
        "HTTP_PROXY",
        "http_proxy",
        "HTTPS_PROXY",
        "https_proxy",
        "ALL_PROXY",
        "all_proxy",
        "NO_PROXY",
        "no_proxy",
    ];
    for name in NAMES {
        std::env::remove_var(name);
    }
    if let Some(proxy) = &config.proxy {
        std::env::set_var("HTTP_PROXY", proxy);
        std::env::set_var("HTTPS_PROXY", proxy);
    }
}

/// How one single-request PUT is sent (see `S3Store::put_bytes`).
#[derive(Clone)]
struct Put {
    /// User metadata headers (`x-amz-meta-*`).
    meta: Multimap,
    /// What the object is stored with: the encryption and retention asked for (see
    /// `ObjectPolicy`).
    headers: Multimap,
    /// The body's SHA-256: the payload hash the request is signed with.
    payload: Sha256Digest,
    /// The `x-amz-checksum-sha256` to send: the payload's, except in the probe's wrong PUT.
    sha256_base64: String,
    if_absent: bool,
    content_type: Option<String>,
    limit: Duration,
}

/// How many upload buffers (a whole small file, or one part of a large one) may be held in
/// memory at once, across every file in flight. Small files take a fraction of a buffer each,
/// so this limits memory without limiting how many of them upload at once.
const UPLOAD_BUFFERS: u64 = 4;

/// The MinIO / S3 backend, on the official `minio` SDK.
pub struct S3Store {
    client: MinioClient,
    /// Sends the requests that carry file bytes, see `signed`.
    signer: Signer,
    bucket: BucketName,
    region: Region,
    /// File bytes read into memory for uploads, in KiB; see [`UPLOAD_BUFFERS`].
    upload_memory: Arc<tokio::sync::Semaphore>,
    upload_memory_kib: u32,
    /// Interrupted multipart uploads by object key, see [`OpenUpload`].
    open_uploads: std::sync::Mutex<std::collections::HashMap<String, OpenUpload>>,
    /// `minio.min_upload_bytes_per_s`, see [`put_deadline`].
    min_upload_bytes_per_s: u64,
    /// The encryption and retention every upload asks for, and whether old objects stay.
    policy: ObjectPolicy,
    /// Set once the server stored an upload without the encryption asked for: why. Every
    /// later upload is refused before it is sent, so a server that ignores the header gets one
    /// identity document in the clear (deleted again at once), not every one of them.
    unencrypted: std::sync::Mutex<Option<String>>,
}

impl S3Store {
    pub fn new(config: &MinioConfig, secret_key: &Secret) -> Result<S3Store, StoreError> {
        let invalid = |what: &str, e: &dyn std::fmt::Display| {
            StoreError::new(StoreErrorKind::Refused, format!("invalid {what}: {e}"))
        };
        let base_url: BaseUrl = config.endpoint.parse().map_err(|e| invalid("minio.endpoint", &e))?;
        let provider = StaticProvider::new(&config.access_key, secret_key.expose(), None);
        if let Some(ca_file) = &config.ca_file {
            // The SDK reads it too, and would name neither the key nor the file.
            std::fs::metadata(ca_file)
                .map_err(|e| invalid(&format!("minio.ca_file {}", ca_file.display()), &e))?;
        }
        let transport = signed::Transport {
            ca_file: config.ca_file.as_deref(),
            proxy: config.proxy.as_deref(),
            connect_timeout: Duration::from_secs(config.connect_timeout_s),
        };
        let signer = Signer::new(base_url.clone(), &config.access_key, secret_key.expose(), &transport)
            .map_err(|e| invalid("minio client settings", &e))?;
        // The SDK's client trusts `ca_file` besides the system's store and webpki's roots, and
        // takes its proxy from the environment (`settle_proxy_environment`). It has no connect
        // timeout of its own: each of its requests is bounded by its deadline here.
        let client = MinioClientBuilder::new(base_url)
            .provider(Some(provider))
            .ssl_cert_file(config.ca_file.as_deref())
            .skip_region_lookup(true)
            .app_info(Some(("confronta-sync".into(), env!("CARGO_PKG_VERSION").into())))
            .hook(Arc::new(StatusHook))
            .build()
            .map_err(|e| invalid("minio client settings", &e))?;
        let bucket = BucketName::new(&config.bucket).map_err(|e| invalid("minio.bucket", &e))?;
        let region = Region::new(&config.region).map_err(|e| invalid("minio.region", &e))?;
        let buffer = config.part_size_bytes.max(config.multipart_threshold_bytes);
        let upload_memory_kib = u32::try_from((UPLOAD_BUFFERS * buffer).div_ceil(1024)).unwrap_or(u32::MAX);
        let upload_memory = Arc::new(tokio::sync::Semaphore::new(upload_memory_kib as usize));
        Ok(S3Store {
            client,
            signer,
            bucket,
            region,
            upload_memory,
            upload_memory_kib,
            open_uploads: Default::default(),
            min_upload_bytes_per_s: config.min_upload_bytes_per_s,
            policy: ObjectPolicy::from_config(config),
            unencrypted: std::sync::Mutex::new(None),
        })
    }

    /// Adds the server-side encryption asked for to a request's headers.
    fn add_encryption_headers(&self, headers: &mut Multimap) {
        match &self.policy.encryption {
            None => {}
            Some(encryption @ Encryption::SseS3) => {
                headers.add("x-amz-server-side-encryption", encryption.algorithm())
            }
            Some(encryption @ Encryption::SseKms { key_id }) => {
                headers.add("x-amz-server-side-encryption", encryption.algorithm());
                headers.add("x-amz-server-side-encryption-aws-kms-key-id", key_id.as_str());
            }
        }
    }

    /// The headers an uploaded object is stored with: the encryption and the retention asked
    /// for, the retention counted from now.
    fn object_headers(&self) -> Multimap {
        let mut headers = Multimap::new();
        self.add_encryption_headers(&mut headers);
        if let Some(retention) = self.policy.retention {
            headers.add("x-amz-object-lock-mode", retention.mode.as_str());
            headers.add("x-amz-object-lock-retain-until-date", retention.until(std::time::SystemTime::now()));
        }
        headers
    }

    /// Fails unless `headers`, the answer to a write of `key` (or a HEAD of it), say the
    /// object is stored with the encryption asked for. Without this a server (or a proxy)
    /// that ignored `x-amz-server-side-encryption` would hold identity documents in the clear
    /// while every upload looked fine.
    fn check_encryption(
        &self,
        key: &ObjectKey,
        headers: &reqwest::header::HeaderMap,
    ) -> Result<(), StoreError> {
        let Some(wanted) = &self.policy.encryption else { return Ok(()) };
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let algorithm = header("x-amz-server-side-encryption");
        let key_id = header("x-amz-server-side-encryption-aws-kms-key-id");
        if wanted.satisfied_by(algorithm, key_id) {
            return Ok(());
        }
        let reported = match (algorithm, key_id) {
            (None, _) => "none".to_owned(),
            (Some(algorithm), None) => algorithm.to_owned(),
            (Some(algorithm), Some(key)) => format!("{algorithm} (key {key})"),
        };
        Err(StoreError::new(
            StoreErrorKind::NotEncrypted,
            format!(
                "object {key} in bucket {} was stored without the server-side encryption asked for ({wanted}; \
                 the server says {reported}): the server, or a proxy before it, does not apply \
                 x-amz-server-side-encryption",
                self.bucket
            ),
        ))
    }

    /// After an upload the server stored without the encryption asked for: the object is
    /// deleted again (on a bucket that keeps versions that hides it behind a delete marker;
    /// its version stays), and the error says so.
    async fn undo_unencrypted(&self, key: &ObjectKey, error: StoreError) -> StoreError {
        let undone = match ObjectStore::delete(self, &ObjectName::from_stored(key.to_string())).await {
            Ok(Deleted::Removed) => "deleted again".to_owned(),
            Ok(Deleted::Marked { .. }) => {
                "hidden again behind a delete marker (its version stays)".to_owned()
            }
            Err(e) => format!("and could not be deleted again ({e})"),
        };
        let message = format!("{}; {undone}; no other upload is sent until a restart", error.message);
        *self.unencrypted.lock().unwrap_or_else(|e| e.into_inner()) = Some(message.clone());
        tracing::error!(object = %key, "{message}");
        StoreError::new(error.kind, message)
    }

    /// Refuses an upload once the server stored one without the encryption asked for.
    fn refuse_if_unencrypted(&self, key: &ObjectKey) -> Result<(), StoreError> {
        match &*self.unencrypted.lock().unwrap_or_else(|e| e.into_inner()) {
            None => Ok(()),
            Some(why) => Err(StoreError::new(
                StoreErrorKind::NotEncrypted,
                format!(
                    "object {key} not sent: an earlier upload of this run was stored unencrypted ({why})"
                ),
            )),
        }
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
            headers: self.object_headers(),
            payload: request.hash.sha256,
            sha256_base64: request.hash.sha256.to_base64(),
            if_absent: request.if_absent,
            content_type: Some(request.content_type.to_owned()),
            limit: put_deadline(request.hash.identity.size, self.min_upload_bytes_per_s),
        };
        let (stored, answer) = self.put_bytes(&key, data, put).await?;
        if let Err(e) = self.check_encryption(&key, &answer) {
            return Err(self.undo_unencrypted(&key, e).await);
        }
        Ok(stored)
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
        let (response, status) =
            tokio::time::timeout(SMALL_REQUEST_TIMEOUT, answered(request.send())).await.map_err(|_| {
                StoreError::new(StoreErrorKind::Unavailable, format!("bucket {bucket}: timed out"))
            })?;
        let response = response.map_err(|e| classify_answer(&format!("bucket {bucket}"), e, status))?;
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
                let header = |name: &str| {
                    response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
                };
                Ok(Some(ObjectInfo {
                    size,
                    checksum_sha256: response.get_checksum(ChecksumAlgorithm::SHA256),
                    meta_sha256,
                    encryption: header("x-amz-server-side-encryption"),
                    kms_key_id: header("x-amz-server-side-encryption-aws-kms-key-id"),
                }))
            }
            Err(StoreError { kind: StoreErrorKind::NotFound, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn upload(&self, name: &ObjectName, request: UploadRequest<'_>) -> Result<Stored, StoreError> {
        let key = self.key(name)?;
        self.refuse_if_unencrypted(&key)?;
        let mut meta = Multimap::new();
        meta.add("x-amz-meta-sha256", request.hash.sha256.to_hex());
        if request.hash.identity.size > request.multipart_threshold && !request.hash.part_digests.is_empty() {
            self.put_multipart(key, &request, meta).await.map(|()| Stored::default())
        } else {
            self.put_single(key, &request, meta).await
        }
    }

    async fn bucket_setup(&self) -> Result<BucketSetup, StoreError> {
        self.read_bucket_setup().await
    }

    async fn probe(&self, bucket: &BucketSetup, kept: Option<&KeptProbe>) -> Result<Probe, StoreError> {
        self.run_probe(bucket, kept).await
    }

    async fn delete(&self, name: &ObjectName) -> Result<Deleted, StoreError> {
        let key = self.key(name)?;
        let target = ObjectToDelete::from(key.clone());
        let request = self
            .client
            .delete_object(self.bucket.clone(), target)
            .map_err(|e| map_validation(&key, e))?
            .region(Some(self.region.clone()))
            .build();
        let answer = deadline(SMALL_REQUEST_TIMEOUT, &key, request.send()).await?;
        // S3 answers a delete on a bucket that keeps versions with `x-amz-delete-marker: true`
        // and the marker's version id.
        if answer.is_delete_marker().unwrap_or(false) {
            return Ok(Deleted::Marked { marker: answer.version_id().map(|v| v.to_string()) });
        }
        Ok(Deleted::Removed)
    }

    fn policy(&self) -> &ObjectPolicy {
        &self.policy
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
        Ok(Box::pin(AnsweredStream::new(pages).map(move |(page, status)| {
            let page = page.map_err(|e| classify_answer(&format!("listing {shown:?}"), e, status))?;
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

    async fn object_versions(&self, prefix: &str) -> Result<Vec<ObjectVersion>, StoreError> {
        let shown = prefix.to_owned();
        let pages = self
            .client
            .list_objects(self.bucket.clone())
            .map_err(|e| StoreError::new(StoreErrorKind::Refused, e.to_string()))?
            .region(Some(self.region.clone()))
            .recursive(true)
            .include_versions(true)
            .prefix((!prefix.is_empty()).then(|| prefix.to_owned()))
            .build()
            .to_stream()
            .await;
        let mut pages = AnsweredStream::new(pages);
        let mut versions = Vec::new();
        while let Some((page, status)) = pages.next().await {
            let page = page
                .map_err(|e| classify_answer(&format!("listing the versions under {shown:?}"), e, status))?;
            versions.extend(page.contents.into_iter().filter(|entry| !entry.is_prefix).map(|entry| {
                ObjectVersion {
                    name: entry.name,
                    version_id: entry.version_id,
                    delete_marker: entry.is_delete_marker,
                    latest: entry.is_latest,
                    size: entry.size.unwrap_or(0),
                    modified_unix_s: entry.last_modified.map(|t| t.timestamp()),
                }
            }));
        }
        Ok(versions)
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

    /// One PUT of `body`, signed with its SHA-256 as computed at hash time, carrying it for
    /// the server to check and, with `if_absent`, `If-None-Match: *`; what the answer
    /// confirmed, and its headers.
    async fn put_bytes(
        &self,
        key: &ObjectKey,
        body: Bytes,
        put: Put,
    ) -> Result<(Stored, reqwest::header::HeaderMap), StoreError> {
        let mut headers = put.meta;
        for (name, values) in put.headers.iter_all() {
            for value in values {
                headers.add(name.as_str(), value.as_str());
            }
        }
        headers.add("x-amz-checksum-sha256", put.sha256_base64);
        if put.if_absent {
            headers.add("if-none-match", "*");
        }
        if let Some(content_type) = put.content_type {
            headers.add("content-type", content_type);
        }
        let request = SignedPut { key, query: Multimap::new(), headers, body, sha256: &put.payload };
        let answer = deadline(put.limit, key, self.signer.put(&self.bucket, &self.region, request)).await?;
        let checksum = answer.get("x-amz-checksum-sha256").and_then(|v| v.to_str().ok());
        Ok((Stored { checksum_sha256: checksum.map(str::to_owned) }, answer))
    }

    /// Every object under `prefix`, or the first pages that hold at least `limit` of them.
    async fn list_limited(&self, prefix: &str, limit: Option<usize>) -> Result<Vec<ObjectEntry>, StoreError> {
        // S3's largest listing page, which is also what a listing without `max-keys` gets.
        let mut pages = self.list_pages(prefix, 1000).await?;
        let mut names = Vec::new();
        while let Some(page) = pages.next().await {
            names.extend(page?);
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
    match tokio::time::timeout(limit, answered(request)).await {
        Ok((result, status)) => result.map_err(|e| classify_answer(&format!("object {key}"), e, status)),
        Err(_) => Err(StoreError::new(
            StoreErrorKind::Unavailable,
            format!("object {key}: no answer within {}s", limit.as_secs()),
        )),
    }
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
