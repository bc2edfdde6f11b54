//! The object-store edge: the `ObjectStore` trait the pipeline and the operator commands use,
//! its types and error kinds, and S3's size limits. The backend is in `s3`.
//!
//! Only `upload` writes to the bucket and only `delete` removes from it; the pipeline decides
//! when either may run.

use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use crate::error::{Classify, ErrorClass, Reason};
use crate::hash::{FileHash, Sha256Digest};
use crate::object_name::ObjectName;

mod s3;

pub use s3::{put_deadline, settle_proxy_environment, S3Store};

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

/// What the server's answer to an upload said about the bytes it stored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stored {
    /// The `x-amz-checksum-sha256` the answer carried (base64), if it carried one: the
    /// SHA-256 the server computed over the body and found equal to ours (MinIO, SeaweedFS;
    /// garage carries none). `None` for a multipart upload, which is verified by a stat.
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
    /// A PUT's answer carries the `x-amz-checksum-sha256` it checked (MinIO, SeaweedFS), which
    /// `check` reports. It is not needed to verify by the answer: the header is signed, so
    /// with `checksum_enforced` any 200 shows the server checked it.
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
    pub(crate) fn new(kind: StoreErrorKind, message: impl Into<String>) -> Self {
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
}
