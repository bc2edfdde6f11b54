//! S3's size limits, in a module of their own because both sides need them: `config` refuses
//! a part size or `max_bytes` that could never be uploaded, and `store` sizes the parts. Kept
//! out of `store`, which reads its policy from `config`, so neither imports the other.

/// S3's most parts in one multipart upload.
pub const MAX_PARTS: u64 = 10_000;
/// S3's smallest part (but the last).
pub const MIN_PART_BYTES: u64 = 5 << 20;
/// S3's largest part.
pub const MAX_PART_BYTES: u64 = 5 << 30;
/// S3's largest object.
pub const MAX_OBJECT_BYTES: u64 = 5 << 40;
