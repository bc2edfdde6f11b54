//! Multipart uploads for files over `multipart_threshold_bytes`, and the interrupted ones
//! kept so that the next attempt resumes from the part that failed.

use std::time::Duration;

use minio::s3::multimap_ext::{Multimap, MultimapExt};
use minio::s3::types::{ETag, ObjectKey, PartInfo, S3Api};
use minio::s3::utils::ChecksumAlgorithm;

use super::errors::map_validation;
use super::signed::SignedPut;
use super::{deadline, read_exact_range, S3Store, PART_TIMEOUT, SMALL_REQUEST_TIMEOUT};
use crate::store::{part_size_for, StoreError, StoreErrorKind, UploadRequest, MAX_OBJECT_BYTES, MAX_PARTS};

/// A multipart upload that lost a part to an outage: kept so that the next attempt at the same
/// object, with the same bytes, sends only the parts the server does not hold yet.
pub(super) struct OpenUpload {
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

impl S3Store {
    pub(super) async fn put_multipart(
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
                Ok(()) => return self.check_completed_encryption(&key).await,
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
            // The encryption and retention asked for go with the upload's creation; its parts
            // and completion carry none (SSE-S3 and SSE-KMS need none there).
            .extra_headers(Some(self.object_headers()))
            .checksum_algorithm(Some(ChecksumAlgorithm::SHA256))
            .build();
        let created = deadline(SMALL_REQUEST_TIMEOUT, &key, created.send()).await?;
        let upload_id = created.upload_id().await.map_err(|e| map_validation(&key, e))?;
        let mut parts = Vec::with_capacity(request.hash.part_digests.len());
        match self.put_parts(&key, &upload_id, request, part_size, &mut parts).await {
            Ok(()) => self.check_completed_encryption(&key).await,
            Err(e) => {
                let open =
                    OpenUpload { upload_id, expected, part_size, parts, opened: std::time::Instant::now() };
                self.keep_or_abort(&key, open, e).await
            }
        }
    }

    /// Fails (the object deleted again) unless the object a multipart upload completed is
    /// stored with the encryption asked for. The completion's answer does not always say
    /// (SeaweedFS's carries no encryption header), so the object is stat'ed.
    async fn check_completed_encryption(&self, key: &ObjectKey) -> Result<(), StoreError> {
        if self.policy.encryption.is_none() {
            return Ok(());
        }
        let request = self
            .client
            .stat_object(self.bucket.clone(), key.clone())
            .map_err(|e| map_validation(key, e))?
            .region(Some(self.region.clone()))
            .build();
        let answer = deadline(SMALL_REQUEST_TIMEOUT, key, request.send()).await?;
        match self.check_encryption(key, minio::s3::response_traits::HasS3Fields::headers(&answer)) {
            Ok(()) => Ok(()),
            Err(e) => Err(self.undo_unencrypted(key, e).await),
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
            let mut query = Multimap::new();
            query.add("uploadId", upload_id.as_str());
            query.add("partNumber", number.to_string());
            let part = SignedPut { key, query, headers, body: data, sha256: digest };
            let limit = super::put_deadline(length, self.min_upload_bytes_per_s);
            let answer = deadline(limit, key, self.signer.put(&self.bucket, &self.region, part)).await?;
            // A large file's parts are its only sign of progress for minutes (the watchdog's).
            crate::telemetry::progressed();
            let etag = answer.get("etag").and_then(|v| v.to_str().ok()).unwrap_or_default().trim_matches('"');
            let etag = ETag::new(etag).map_err(|e| map_validation(key, e))?;
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
