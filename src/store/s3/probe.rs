//! The start-up probe (what the server enforces) and the bucket's setup (versioning, object
//! lock, default encryption) it reads first.
//!
//! On a bucket that keeps no versions the probe writes a scratch object of its own and deletes
//! it: nothing stays. On one that keeps versions a delete only hides an object behind a delete
//! marker, and under object lock the version it hides cannot be removed until its retention
//! ends (years, in COMPLIANCE mode), so there a probe stores at most one object per bucket,
//! ever: `PROBE_SCRATCH`, written by the first probe and kept; its PUT with a wrong checksum
//! goes to `PROBE_REFUSED`, where a server that enforces the checksum stores nothing; and a
//! result the journal kept from an earlier start with the same encryption settings is reused
//! without any request that writes.

use bytes::Bytes;
use minio::s3::error::{Error as MinioError, S3ServerError};
use minio::s3::multimap_ext::Multimap;
use minio::s3::response_traits::HasS3Fields;
use minio::s3::types::{ObjectKey, S3Api};

use super::errors::{answered, classify_answer};
use super::{Put, S3Store, SMALL_REQUEST_TIMEOUT};
use crate::config::RetentionMode;
use crate::hash::Sha256Digest;
use crate::object_name::ObjectName;
use crate::store::{
    BucketSetup, Capabilities, DefaultRetention, KeptProbe, ObjectLock, ObjectStore, Probe, ProbeWrites,
    StoreError, StoreErrorKind, Versioning, PROBE_PREFIX, PROBE_REFUSED, PROBE_SCRATCH,
};

/// The scratch objects' bytes.
const BODY: &[u8] = b"confronta-sync capability probe\n";

impl S3Store {
    pub(super) async fn run_probe(
        &self,
        bucket: &BucketSetup,
        kept: Option<&KeptProbe>,
    ) -> Result<Probe, StoreError> {
        if !bucket.keeps_versions() {
            let capabilities = self.probe_on_scratch_deleted().await?;
            return Ok(Probe { capabilities, writes: ProbeWrites::ScratchDeleted });
        }
        let kept = kept.filter(|kept| kept.capabilities.checksum_enforced);
        let same_encryption = |kept: &&KeptProbe| kept.encryption == self.policy.encryption_text();
        if let Some(kept) = kept.filter(same_encryption) {
            return Ok(Probe {
                capabilities: kept.capabilities,
                writes: ProbeWrites::Nothing { probed_ms: kept.probed_ms },
            });
        }
        // The wrong PUT carries the encryption asked for, and a server sets that up before it
        // reads the body: it tries the new settings without storing anything.
        let checksum_enforced = self.refuses_wrong_checksum(&key(PROBE_REFUSED)?).await?;
        if !checksum_enforced {
            // The daemon will not start on it: what else the server does is not worth a write.
            let capabilities =
                Capabilities { checksum_enforced, conditional_put: false, checksum_answered: false };
            return Ok(Probe { capabilities, writes: ProbeWrites::ChecksumNotEnforced });
        }
        if let Some(kept) = kept {
            return Ok(Probe {
                capabilities: kept.capabilities,
                writes: ProbeWrites::RefusedOnly { probed_ms: kept.probed_ms },
            });
        }
        let scratch = key(PROBE_SCRATCH)?;
        let payload = Sha256Digest::of_bytes(BODY);
        let right = payload.to_base64();
        let first =
            self.put_bytes(&scratch, Bytes::from_static(BODY), self.probe_put(&payload, &right, true)).await;
        let (capabilities, writes) = match first {
            // An earlier probe's scratch object stands, and the server refused to store another
            // version over it: `If-None-Match: *` is honoured. Whether an answer carries the
            // checksum is not learnt without a PUT that stores; it is taken as carried (MinIO
            // and SeaweedFS do), so that an answer without it is stat'ed: the safe side.
            Err(e) if e.kind == StoreErrorKind::AlreadyExists => (
                Capabilities { checksum_enforced, conditional_put: true, checksum_answered: true },
                ProbeWrites::ScratchStood,
            ),
            Err(e) => return Err(e),
            Ok((stored, headers)) => {
                self.check_encryption(&scratch, &headers)?;
                let checksum_answered = stored.checksum_sha256.as_deref() == Some(right.as_str());
                let again = self
                    .put_bytes(&scratch, Bytes::from_static(BODY), self.probe_put(&payload, &right, true))
                    .await;
                let conditional_put = match again {
                    Err(e) if e.kind == StoreErrorKind::AlreadyExists => true,
                    Err(e) if e.is_unavailable() => return Err(e),
                    Err(_) | Ok(_) => false,
                };
                (
                    Capabilities { checksum_enforced, conditional_put, checksum_answered },
                    ProbeWrites::ScratchWritten { twice: !conditional_put },
                )
            }
        };
        Ok(Probe { capabilities, writes })
    }

    /// The probe on a bucket that keeps no versions: a scratch key of this process's own
    /// (two daemons probing at once never see each other's), deleted again.
    async fn probe_on_scratch_deleted(&self) -> Result<Capabilities, StoreError> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let key = key(&format!("{PROBE_PREFIX}{}-{nanos:x}", std::process::id()))?;
        let name = ObjectName::from_stored(key.to_string());
        let checksum_enforced = self.refuses_wrong_checksum(&key).await?;
        let payload = Sha256Digest::of_bytes(BODY);
        let right = payload.to_base64();
        let (stored, headers) =
            self.put_bytes(&key, Bytes::from_static(BODY), self.probe_put(&payload, &right, false)).await?;
        let encrypted = self.check_encryption(&key, &headers);
        let checksum_answered = stored.checksum_sha256.as_deref() == Some(right.as_str());
        let conditional_put = match self
            .put_bytes(&key, Bytes::from_static(BODY), self.probe_put(&payload, &right, true))
            .await
        {
            Err(e) if e.kind == StoreErrorKind::AlreadyExists => true,
            Err(e) if e.is_unavailable() => {
                let _ = ObjectStore::delete(self, &name).await;
                return Err(e);
            }
            Err(_) | Ok(_) => false,
        };
        ObjectStore::delete(self, &name).await?;
        encrypted?;
        Ok(Capabilities { checksum_enforced, conditional_put, checksum_answered })
    }

    /// Whether a PUT of the scratch bytes to `key` with a wrong `x-amz-checksum-sha256` (and
    /// the encryption asked for) is refused for its checksum, storing nothing. The PUT is
    /// signed with the body's true hash: what it tests is whether the server checks
    /// `x-amz-checksum-sha256`, not the signature's payload hash.
    async fn refuses_wrong_checksum(&self, key: &ObjectKey) -> Result<bool, StoreError> {
        let payload = Sha256Digest::of_bytes(BODY);
        let wrong = Sha256Digest::of_bytes(b"other bytes").to_base64();
        let mut put = self.probe_put(&payload, &wrong, false);
        let answer = self.put_bytes(key, Bytes::from_static(BODY), put.clone()).await;
        let enforced = match answer {
            Err(e) if e.kind == StoreErrorKind::ChecksumMismatch => true,
            // A server sets up the encryption before it reads the body: one that cannot
            // (SSE-KMS without a KMS: SeaweedFS answers 500, MinIO 501) fails the PUT before its
            // checksum is looked at. The same PUT without the encryption tells it apart from a
            // server that does not check the checksum, and from an outage.
            Err(e) if self.policy.encryption.is_some() => {
                put.headers = Multimap::new();
                match self.put_bytes(key, Bytes::from_static(BODY), put).await {
                    Err(plain) if plain.kind == StoreErrorKind::ChecksumMismatch => {
                        return Err(self.encryption_refused(&e))
                    }
                    Err(plain) if plain.is_unavailable() => return Err(plain),
                    Err(_) | Ok(_) => false,
                }
            }
            // Any other refusal (a 400 whose body names no checksum) stored nothing either,
            // but it does not show that the checksum was looked at.
            Err(e) if e.is_unavailable() => return Err(e),
            Err(_) | Ok(_) => false,
        };
        // A server that refused the body but kept it anyway is as bad as one that ignored it.
        let stored = self.stat(&ObjectName::from_stored(key.to_string())).await?;
        Ok(enforced && stored.is_none())
    }

    /// A probe PUT of the scratch bytes carrying `sha256_base64` and the encryption asked for
    /// (never a retention: a scratch object is no document).
    fn probe_put(&self, payload: &Sha256Digest, sha256_base64: &str, if_absent: bool) -> Put {
        let mut headers = Multimap::new();
        self.add_encryption_headers(&mut headers);
        Put {
            meta: Multimap::new(),
            headers,
            payload: *payload,
            sha256_base64: sha256_base64.to_owned(),
            if_absent,
            content_type: None,
            limit: SMALL_REQUEST_TIMEOUT,
        }
    }

    /// The error for a server that cannot store objects with the encryption asked for.
    fn encryption_refused(&self, error: &StoreError) -> StoreError {
        let encryption = self.policy.encryption_text();
        StoreError::new(
            StoreErrorKind::Refused,
            format!(
                "bucket {} refused the server-side encryption asked for (minio.server_side_encryption = {encryption}): \
                 {}; the same PUT without it was refused only for its (deliberately) wrong checksum, so it is \
                 the encryption the server cannot apply: SSE-KMS needs a KMS holding that key, and MinIO \
                 needs a KMS for SSE-S3 too (KES, or MINIO_KMS_SECRET_KEY); see docs/legal-retention.md",
                self.bucket, error.message
            ),
        )
    }

    /// Reads the bucket's versioning, object lock and default encryption. A server that does
    /// not implement a call has no such feature (garage answers 501 to the last two); one whose
    /// credentials may not make it leaves that setting unknown (and noted) rather than failing
    /// the start: the uploads themselves do not need it.
    pub(super) async fn read_bucket_setup(&self) -> Result<BucketSetup, StoreError> {
        let mut setup = BucketSetup {
            object_lock: Some(ObjectLock::Off),
            default_encryption: Some(None),
            ..BucketSetup::default()
        };
        let what = format!("bucket {}", self.bucket);

        let request = self
            .client
            .get_bucket_versioning(self.bucket.clone())
            .map_err(|e| StoreError::new(StoreErrorKind::Refused, e.to_string()))?
            .region(Some(self.region.clone()))
            .build();
        match self.bucket_answer(&what, request.send()).await? {
            Ok(answer) => {
                use minio::s3::builders::VersioningStatus;
                setup.versioning = Some(match answer.status() {
                    Ok(Some(VersioningStatus::Enabled)) => Versioning::Enabled,
                    Ok(Some(VersioningStatus::Suspended)) => Versioning::Suspended,
                    _ => Versioning::Unversioned,
                });
            }
            Err(Unanswered::NotImplemented) => setup.versioning = Some(Versioning::Unversioned),
            Err(Unanswered::Denied(why)) => setup.unknown.push(format!("GetBucketVersioning: {why}")),
        }

        let request = self
            .client
            .get_object_lock_config(self.bucket.clone())
            .map_err(|e| StoreError::new(StoreErrorKind::Refused, e.to_string()))?
            .region(Some(self.region.clone()))
            .build();
        match self.bucket_answer(&what, request.send()).await {
            Ok(Ok(answer)) => {
                let body = String::from_utf8_lossy(answer.body());
                // The SDK's parser reads the rule only; a configuration without
                // `ObjectLockEnabled` is a bucket without object lock.
                let enabled =
                    body.split_whitespace().collect::<String>().contains("<ObjectLockEnabled>Enabled<");
                if enabled {
                    let default_retention = answer.config().ok().and_then(|config| {
                        let mode = match config.retention_mode? {
                            minio::s3::types::RetentionMode::COMPLIANCE => RetentionMode::Compliance,
                            minio::s3::types::RetentionMode::GOVERNANCE => RetentionMode::Governance,
                        };
                        let period = match (config.retention_duration_days, config.retention_duration_years) {
                            (Some(1), _) => "1 day".to_owned(),
                            (Some(days), _) => format!("{days} days"),
                            (None, Some(1)) => "1 year".to_owned(),
                            (None, Some(years)) => format!("{years} years"),
                            (None, None) => return None,
                        };
                        Some(DefaultRetention { mode, period })
                    });
                    setup.object_lock = Some(ObjectLock::On { default_retention });
                }
            }
            Ok(Err(Unanswered::NotImplemented)) => {}
            Ok(Err(Unanswered::Denied(why))) => {
                setup.object_lock = None;
                setup.unknown.push(format!("GetObjectLockConfiguration: {why}"));
            }
            // S3's answer for a bucket without object lock.
            Err(e) if e.message.to_ascii_lowercase().contains("objectlockconfigurationnotfound") => {}
            Err(e) => return Err(e),
        }

        let request = self
            .client
            .get_bucket_encryption(self.bucket.clone())
            .map_err(|e| StoreError::new(StoreErrorKind::Refused, e.to_string()))?
            .region(Some(self.region.clone()))
            .build();
        match self.bucket_answer(&what, request.send()).await? {
            // The SDK answers "no configuration" with an empty algorithm.
            Ok(answer) => match answer.config() {
                Ok(config) if config.sse_algorithm.is_empty() => {}
                Ok(config) => {
                    setup.default_encryption = Some(Some(match config.kms_master_key_id {
                        Some(key) => format!("{} (key {key})", config.sse_algorithm),
                        None => config.sse_algorithm,
                    }))
                }
                Err(e) => {
                    setup.default_encryption = None;
                    setup.unknown.push(format!("GetBucketEncryption: unreadable answer: {e}"));
                }
            },
            Err(Unanswered::NotImplemented) => {}
            Err(Unanswered::Denied(why)) => {
                setup.default_encryption = None;
                setup.unknown.push(format!("GetBucketEncryption: {why}"));
            }
        }
        Ok(setup)
    }

    /// A bucket configuration's answer: `Ok(Ok)` read, `Ok(Err)` when the server does not
    /// implement the call or the credentials may not make it, `Err` for an outage or any other
    /// refusal.
    async fn bucket_answer<T>(
        &self,
        what: &str,
        request: impl std::future::Future<Output = Result<T, MinioError>>,
    ) -> Result<Result<T, Unanswered>, StoreError> {
        let (result, status) = match tokio::time::timeout(SMALL_REQUEST_TIMEOUT, answered(request)).await {
            Ok(answer) => answer,
            Err(_) => {
                return Err(StoreError::new(
                    StoreErrorKind::Unavailable,
                    format!("{what}: no answer within {}s", SMALL_REQUEST_TIMEOUT.as_secs()),
                ))
            }
        };
        let error = match result {
            Ok(answer) => return Ok(Ok(answer)),
            Err(error) => error,
        };
        let code = match &error {
            MinioError::S3Server(S3ServerError::S3Error(response)) => response.code().to_string(),
            _ => String::new(),
        };
        let not_implemented = status == Some(501) || code.eq_ignore_ascii_case("notimplemented");
        if not_implemented {
            return Ok(Err(Unanswered::NotImplemented));
        }
        let classified = classify_answer(what, error, status);
        if classified.kind == StoreErrorKind::AccessDenied {
            return Ok(Err(Unanswered::Denied(format!(
                "the credentials may not read it ({})",
                classified.message
            ))));
        }
        Err(classified)
    }
}

/// Why a bucket configuration was not read.
enum Unanswered {
    /// The server does not implement the call: it has no such feature.
    NotImplemented,
    /// The credentials may not make it; why, as the server said.
    Denied(String),
}

fn key(name: &str) -> Result<ObjectKey, StoreError> {
    ObjectKey::new(name)
        .map_err(|e| StoreError::new(StoreErrorKind::Refused, format!("probe key {name}: {e}")))
}
