//! The object-store edge: the `ObjectStore` trait the pipeline and the operator commands use,
//! its types and error kinds, and the part size of a file within S3's size limits (`s3_limits`,
//! re-exported here). The backend is in `s3`.
//!
//! Only `upload` (and the start-up `probe`) writes to the bucket and only `delete` removes from
//! it; the pipeline decides when either may run. What every upload asks of the bucket
//! (encryption, retention) and whether a corrected venta's old object may go is the store's
//! `ObjectPolicy`, from `minio.*`; how the bucket is set up (versioning, object lock, default
//! encryption) is read by the probe (`BucketSetup`).

use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use crate::config::{MinioConfig, RetentionMode, ServerSideEncryption};
use crate::error::{Classify, ErrorClass, Reason};
use crate::hash::{FileHash, Sha256Digest};
use crate::object_name::ObjectName;

mod s3;

pub use s3::{put_deadline, settle_proxy_environment, S3Store};

pub use crate::s3_limits::{MAX_OBJECT_BYTES, MAX_PARTS, MAX_PART_BYTES};

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

/// What the store says about an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    pub size: u64,
    /// `x-amz-checksum-sha256` as the server reports it (base64, `-N` suffix for multipart).
    pub checksum_sha256: Option<String>,
    /// The content's hex SHA-256 we attached as user metadata at upload.
    pub meta_sha256: Option<String>,
    /// `x-amz-server-side-encryption` as the server reports it (`AES256`, `aws:kms`); `None`
    /// for an object stored unencrypted.
    pub encryption: Option<String>,
    /// `x-amz-server-side-encryption-aws-kms-key-id`, for an object under SSE-KMS.
    pub kms_key_id: Option<String>,
}

/// One object as a listing reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectEntry {
    pub name: String,
    pub size: u64,
    /// Last modification, seconds since the Unix epoch.
    pub modified_unix_s: Option<i64>,
}

/// One version of an object, or a delete marker, as a listing of versions reports it
/// (`ObjectStore::object_versions`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectVersion {
    pub name: String,
    /// The server's version id (`null` for one written while versioning was off).
    pub version_id: Option<String>,
    /// A delete marker holds no bytes: it hides the versions before it.
    pub delete_marker: bool,
    /// The current version of the name (a delete marker when the object reads as deleted).
    pub latest: bool,
    pub size: u64,
    /// When the version was written, seconds since the Unix epoch.
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

/// What the server's answer to an upload said about the bytes it stored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stored {
    /// The `x-amz-checksum-sha256` the answer carried (base64), if it carried one: the
    /// SHA-256 the server computed over the body and found equal to ours (MinIO, SeaweedFS;
    /// garage carries none). `None` for a multipart upload, which is verified by a stat.
    pub checksum_sha256: Option<String>,
}

/// The server-side encryption every upload asks for (`minio.server_side_encryption`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Encryption {
    /// SSE-S3 (`AES256`): keys the server manages.
    SseS3,
    /// SSE-KMS (`aws:kms`) with this key of the server's KMS.
    SseKms { key_id: String },
}

impl Encryption {
    /// What `config` asks for; `None` when it asks for nothing.
    pub fn from_config(config: &MinioConfig) -> Option<Encryption> {
        match config.server_side_encryption? {
            ServerSideEncryption::Aes256 => Some(Encryption::SseS3),
            ServerSideEncryption::AwsKms => {
                Some(Encryption::SseKms { key_id: config.kms_key_id.clone().unwrap_or_default() })
            }
        }
    }

    /// The `x-amz-server-side-encryption` value.
    pub fn algorithm(&self) -> &'static str {
        match self {
            Encryption::SseS3 => ServerSideEncryption::Aes256.as_str(),
            Encryption::SseKms { .. } => ServerSideEncryption::AwsKms.as_str(),
        }
    }

    /// Whether an object the server reports with `algorithm` (and `key_id`) is stored as this
    /// asks. A KMS key is compared where the server names one: MinIO answers `arn:aws:kms:<key>`,
    /// AWS the key's full ARN, so a name that ends the reported one after `:` or `/` is it.
    pub fn satisfied_by(&self, algorithm: Option<&str>, key_id: Option<&str>) -> bool {
        if algorithm != Some(self.algorithm()) {
            return false;
        }
        match (self, key_id) {
            (Encryption::SseKms { key_id: wanted }, Some(reported)) => {
                reported == wanted
                    || reported.strip_suffix(wanted.as_str()).is_some_and(|head| head.ends_with([':', '/']))
            }
            _ => true,
        }
    }
}

impl std::fmt::Display for Encryption {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Encryption::SseS3 => f.write_str("AES256"),
            Encryption::SseKms { key_id } => write!(f, "aws:kms (key {key_id})"),
        }
    }
}

/// The object-lock retention every upload asks for (`minio.retention_mode`, `retention_days`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    pub mode: RetentionMode,
    pub days: u32,
}

impl Retention {
    /// `x-amz-object-lock-retain-until-date` for an upload starting at `now`: RFC 3339 in UTC,
    /// to the second.
    pub fn until(&self, now: std::time::SystemTime) -> String {
        let until = now + Duration::from_secs(u64::from(self.days) * 86_400);
        humantime::format_rfc3339_seconds(until).to_string()
    }
}

/// What the store asks of the bucket for every object, and what it may delete, from `minio.*`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObjectPolicy {
    pub encryption: Option<Encryption>,
    pub retention: Option<Retention>,
    /// `minio.keep_previous_objects`: a corrected venta's old object is never deleted.
    pub keep_previous_objects: bool,
}

impl ObjectPolicy {
    /// The encryption asked for as a probe's result is kept with (`KeptProbe::encryption`);
    /// empty for none.
    pub fn encryption_text(&self) -> String {
        self.encryption.as_ref().map(ToString::to_string).unwrap_or_default()
    }

    /// What is wrong with `info` when it is stored without the server-side encryption every
    /// upload asks for (`minio.server_side_encryption`): uploaded before that was set, by another
    /// client, or kept by a server that ignored it. `None` when it is as asked, or none is.
    /// `verify` reports it; the pipeline never takes such an object as an upload.
    pub fn unencrypted(&self, info: &ObjectInfo) -> Option<String> {
        let wanted = self.encryption.as_ref()?;
        if wanted.satisfied_by(info.encryption.as_deref(), info.kms_key_id.as_deref()) {
            return None;
        }
        let stored = match (&info.encryption, &info.kms_key_id) {
            (None, _) => "unencrypted".to_owned(),
            (Some(algorithm), None) => format!("with {algorithm}"),
            (Some(algorithm), Some(key)) => format!("with {algorithm} (key {key})"),
        };
        Some(format!("stored {stored}, not with the server-side encryption asked for ({wanted})"))
    }

    pub fn from_config(config: &MinioConfig) -> ObjectPolicy {
        ObjectPolicy {
            encryption: Encryption::from_config(config),
            retention: config
                .retention_mode
                .zip(config.retention_days)
                .map(|(mode, days)| Retention { mode, days }),
            keep_previous_objects: config.keep_previous_objects,
        }
    }
}

/// What a delete did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Deleted {
    /// The object is gone: the bucket keeps no versions.
    Removed,
    /// The bucket keeps versions: a delete marker (this version id, where the server gave one)
    /// now hides the object, and every version of it stays, a retained one until its date.
    Marked { marker: Option<String> },
}

/// Whether the bucket keeps versions (`GetBucketVersioning`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Versioning {
    Unversioned,
    Enabled,
    /// Was enabled: the versions then written stay; new writes replace the `null` version.
    Suspended,
}

/// A bucket's default object-lock retention (`GetObjectLockConfiguration`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefaultRetention {
    pub mode: RetentionMode,
    /// As the bucket states it: `30 days`, `10 years`.
    pub period: String,
}

/// Whether the bucket has object lock (`GetObjectLockConfiguration`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ObjectLock {
    Off,
    /// With the bucket's default retention, if it has one.
    On {
        default_retention: Option<DefaultRetention>,
    },
}

/// How the bucket is set up, as the probe read it. A setting the server would not tell (it
/// does not implement the call, or the credentials may not read it) is `None`, and `unknown`
/// says why.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BucketSetup {
    pub versioning: Option<Versioning>,
    pub object_lock: Option<ObjectLock>,
    /// The bucket's default encryption (`AES256`, `aws:kms (key …)`), `Some(None)` for none.
    pub default_encryption: Option<Option<String>>,
    /// What the server would not answer, one line each (`GetObjectLockConfiguration: …`).
    pub unknown: Vec<String>,
}

impl BucketSetup {
    /// Whether a write leaves something behind that a delete does not take: the bucket has
    /// versioning enabled or object lock, or would not say (then it is taken as keeping
    /// versions, the side on which the probe leaves least). A suspended versioning replaces
    /// the `null` version at each write: nothing piles up.
    pub fn keeps_versions(&self) -> bool {
        !matches!(self.versioning, Some(Versioning::Unversioned | Versioning::Suspended))
            || !matches!(self.object_lock, Some(ObjectLock::Off))
    }

    /// Whether the bucket is known to have no object lock.
    pub fn lacks_object_lock(&self) -> bool {
        self.object_lock == Some(ObjectLock::Off)
    }
}

/// What the start-up probe learnt about the server (see `ObjectStore::probe`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// A PUT whose `x-amz-checksum-sha256` does not match its body is refused. Without this,
    /// verifying an upload by its checksum proves nothing.
    pub checksum_enforced: bool,
    /// A PUT with `If-None-Match: *` on an existing key is refused with 412.
    pub conditional_put: bool,
    /// A PUT's answer carries the `x-amz-checksum-sha256` it checked (MinIO, SeaweedFS), which
    /// `check` reports. It is not needed to verify by the answer: the header is signed, so
    /// with `checksum_enforced` any 200 shows the server checked it.
    pub checksum_answered: bool,
}

/// Where the probe writes its scratch objects; nothing the daemon names starts with a dot.
pub const PROBE_PREFIX: &str = ".confronta-sync-probe/";

/// The one scratch object the probe writes on a bucket that keeps versions, and keeps there:
/// every later probe without a kept result finds it standing and stores nothing.
pub const PROBE_SCRATCH: &str = ".confronta-sync-probe/scratch";

/// Where the probe sends the PUT whose checksum is wrong on a bucket that keeps versions: a
/// server that enforces the checksum never stores anything here.
pub const PROBE_REFUSED: &str = ".confronta-sync-probe/refused";

/// A probe's result as the journal keeps it between starts (`journal::probes`), per endpoint
/// and bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeptProbe {
    pub capabilities: Capabilities,
    /// The encryption its PUTs asked for (`Encryption`'s text, empty for none): a result learnt
    /// under other settings says nothing about whether the server takes these.
    pub encryption: String,
    /// When it ran, in ms since the Unix epoch.
    pub probed_ms: i64,
}

/// What a probe learnt, and what it wrote to the bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probe {
    pub capabilities: Capabilities,
    pub writes: ProbeWrites,
}

/// What the probe wrote to the bucket: `check` and the start-up log say which.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeWrites {
    /// A bucket that keeps no versions: a scratch object under `PROBE_PREFIX`, deleted again.
    ScratchDeleted,
    /// Nothing: the result kept from the probe at `probed_ms` stands.
    Nothing { probed_ms: i64 },
    /// Only PUTs the server refused (a wrong checksum, stored nowhere), to try the encryption
    /// settings that changed since the probe at `probed_ms`, whose other findings stand.
    RefusedOnly { probed_ms: i64 },
    /// `PROBE_SCRATCH` was written now and kept; `twice` when the server ignored
    /// `If-None-Match: *` and a second version of it was stored.
    ScratchWritten { twice: bool },
    /// `PROBE_SCRATCH` stood already (an earlier probe's); nothing was stored.
    ScratchStood,
    /// The PUT with a wrong checksum (at `PROBE_REFUSED`) was not refused for it: the server
    /// does not enforce it (and may have stored it), and nothing more was tried.
    ChecksumNotEnforced,
}

impl std::fmt::Display for ProbeWrites {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let at = |ms: &i64| {
            let when = std::time::UNIX_EPOCH + Duration::from_millis((*ms).max(0) as u64);
            humantime::format_rfc3339_seconds(when)
        };
        match self {
            ProbeWrites::ScratchDeleted => write!(
                f,
                "a scratch object written under {PROBE_PREFIX} and deleted again (the bucket keeps no versions)"
            ),
            ProbeWrites::Nothing { probed_ms } => write!(
                f,
                "nothing written: the result of the probe of {} kept in the journal stands",
                at(probed_ms)
            ),
            ProbeWrites::RefusedOnly { probed_ms } => write!(
                f,
                "only PUTs the server refused (a wrong checksum, stored nowhere), to try the encryption asked \
                 for since the probe of {}, whose other findings stand",
                at(probed_ms)
            ),
            ProbeWrites::ScratchWritten { twice: false } => write!(
                f,
                "the bucket's one scratch object {PROBE_SCRATCH} written and kept (the bucket keeps versions: \
                 every later probe reuses it or the journal's result)"
            ),
            ProbeWrites::ScratchWritten { twice: true } => write!(
                f,
                "the bucket's scratch object {PROBE_SCRATCH} written and kept, twice: the server ignores \
                 If-None-Match: *, so it stored a second version"
            ),
            ProbeWrites::ScratchStood => {
                write!(f, "nothing stored: the bucket's scratch object {PROBE_SCRATCH} stood already")
            }
            ProbeWrites::ChecksumNotEnforced => write!(
                f,
                "a PUT with a wrong checksum to {PROBE_REFUSED} was not refused for it (the server may have \
                 stored it): nothing more was tried"
            ),
        }
    }
}

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
    /// The server stored an object without the server-side encryption asked for
    /// (`minio.server_side_encryption`): the object was deleted again, and the store takes no
    /// other upload until a restart, since the server would store every one so.
    NotEncrypted,
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
    pub(crate) fn new(kind: StoreErrorKind, message: impl Into<String>) -> Self {
        StoreError { kind, message: message.into() }
    }
    pub fn is_unavailable(&self) -> bool {
        self.kind == StoreErrorKind::Unavailable
    }
}

/// One classification: the reason decides (`Reason::class`), so an error and its reason cannot
/// disagree. A missing bucket or refused credentials stop the daemon at start-up (checked there);
/// mid-run their reasons are transient, an outage files wait out.
impl Classify for StoreError {
    fn class(&self) -> ErrorClass {
        Reason::from(self).class()
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
            // Before it had a kind of its own, a missing object was one more refusal; an object
            // stored unencrypted is the server refusing what was asked.
            StoreErrorKind::NotFound | StoreErrorKind::Refused | StoreErrorKind::NotEncrypted => {
                Reason::S3Refused
            }
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
    /// How the bucket is set up: versioning, object lock, default encryption.
    async fn bucket_setup(&self) -> Result<BucketSetup, StoreError>;
    /// Learns whether the server enforces `x-amz-checksum-sha256` (and takes the encryption
    /// asked for) and honours `If-None-Match: *`. On a bucket that keeps no versions (as
    /// `bucket` says), with a few requests on a scratch key under `PROBE_PREFIX`, deleted
    /// again. On one that keeps versions (where a delete leaves the version, retained under
    /// object lock) `kept`, the last result for this bucket, stands if it was learnt with the
    /// same encryption; otherwise the only object ever stored is `PROBE_SCRATCH`, once, and kept.
    async fn probe(&self, bucket: &BucketSetup, kept: Option<&KeptProbe>) -> Result<Probe, StoreError>;
    /// Deletes the object; on a bucket that keeps versions that leaves a delete marker.
    async fn delete(&self, name: &ObjectName) -> Result<Deleted, StoreError>;
    /// What every upload asks of the bucket and what may be deleted.
    fn policy(&self) -> &ObjectPolicy;
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
    /// Every version and delete marker of the objects under `prefix` (`ListObjectVersions`),
    /// in key order, newest first within a key: what a bucket that keeps versions still holds
    /// of a venta's earlier documents (`explain --venta`). On a bucket that keeps none, the
    /// current objects, each as its one version.
    async fn object_versions(&self, prefix: &str) -> Result<Vec<ObjectVersion>, StoreError>;
}

/// Listing pages, as `ObjectStore::list_pages` yields them.
pub type ObjectPages =
    std::pin::Pin<Box<dyn futures_util::Stream<Item = Result<Vec<ObjectEntry>, StoreError>> + Send>>;

#[cfg(test)]
mod tests {
    use super::*;

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

    /// Issue 29: an object is stored as asked only with the algorithm asked for, and under
    /// SSE-KMS with the key asked for, however the server spells the key (MinIO
    /// `arn:aws:kms:<key>`, AWS the full ARN); an object stored with none is not.
    #[test]
    fn encryption_is_satisfied_only_by_what_was_asked_for() {
        let kms = Encryption::SseKms { key_id: "confrontas".into() };
        let cases: [(&Encryption, Option<&str>, Option<&str>, bool); 9] = [
            (&Encryption::SseS3, Some("AES256"), None, true),
            (&Encryption::SseS3, None, None, false),
            (&Encryption::SseS3, Some("aws:kms"), Some("confrontas"), false),
            (&kms, Some("aws:kms"), Some("confrontas"), true),
            (&kms, Some("aws:kms"), Some("arn:aws:kms:confrontas"), true),
            (&kms, Some("aws:kms"), Some("arn:aws:kms:eu-west-1:123:key/confrontas"), true),
            (&kms, Some("aws:kms"), None, true),
            (&kms, Some("aws:kms"), Some("arn:aws:kms:otras-confrontas"), false),
            (&kms, Some("AES256"), None, false),
        ];
        for (wanted, algorithm, key, expected) in cases {
            assert_eq!(wanted.satisfied_by(algorithm, key), expected, "{wanted} by {algorithm:?} {key:?}");
        }
    }

    /// Issue 29: the retain-until date is the upload's time plus the days asked for, in the
    /// form S3 takes (RFC 3339, UTC, to the second).
    #[test]
    fn the_retention_runs_from_the_upload() {
        let retention = Retention { mode: RetentionMode::Compliance, days: 3650 };
        let upload = std::time::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(retention.until(upload), "2033-11-11T22:13:20Z");
    }

    /// Issue 29: the probe leaves its scratch object behind only where a delete would not take
    /// it: versioning enabled, object lock, or a setting it could not read.
    #[test]
    fn a_bucket_keeps_versions_unless_it_says_it_keeps_none() {
        let setup = |versioning, object_lock| BucketSetup {
            versioning,
            object_lock,
            default_encryption: Some(None),
            unknown: Vec::new(),
        };
        let on = Some(ObjectLock::On { default_retention: None });
        let off = Some(ObjectLock::Off);
        assert!(!setup(Some(Versioning::Unversioned), off.clone()).keeps_versions());
        assert!(!setup(Some(Versioning::Suspended), off.clone()).keeps_versions());
        assert!(setup(Some(Versioning::Enabled), off.clone()).keeps_versions());
        assert!(setup(Some(Versioning::Enabled), on).keeps_versions());
        assert!(setup(None, off).keeps_versions(), "versioning unknown");
        assert!(setup(Some(Versioning::Unversioned), None).keeps_versions(), "object lock unknown");
    }
}
