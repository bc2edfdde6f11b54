//! The configuration file's sections, their defaults, and what each key means.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// What a file must be before it is uploaded (seed plan, section 8.1).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ValidationConfig {
    /// Allowed types, by extension and by magic bytes; empty accepts any type.
    pub allowed_types: Vec<String>,
    /// Largest file accepted, in bytes; 0 means no limit.
    pub max_bytes: u64,
    /// clamd's Unix socket; when set, every file is scanned (INSTREAM) before upload.
    pub clamd_socket: Option<PathBuf>,
    /// Where refused files go; default `quarantine` beside the journal, in the daemon's state
    /// folder. Never under `media_root`, which Django serves.
    pub quarantine_dir: Option<PathBuf>,
}

impl Default for ValidationConfig {
    fn default() -> Self {
        ValidationConfig {
            allowed_types: ["pdf", "jpg", "jpeg", "png", "tif", "tiff", "heic"].map(String::from).to_vec(),
            max_bytes: 50 * 1024 * 1024,
            clamd_socket: None,
            quarantine_dir: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServiceConfig {
    /// After SIGTERM, how long in-flight files get to reach a journaled state.
    pub shutdown_timeout_s: u64,
    /// How long files may be due while nothing progresses (no pipeline run ends, no journal
    /// step, no uploaded part) before systemd's watchdog is no longer fed.
    pub stall_timeout_s: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Address of the Prometheus text endpoint (`/metrics`); off when unset.
    pub listen: Option<std::net::SocketAddr>,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        ServiceConfig { shutdown_timeout_s: 10, stall_timeout_s: 600 }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct WatchConfig {
    /// Django's MEDIA_ROOT; row paths are relative to it.
    pub media_root: PathBuf,
    /// The FileField's `upload_to`, relative to `media_root`.
    #[serde(default = "default_dir")]
    pub dir: String,
    /// How long size and mtime must hold still before a file found without a close event (a
    /// walk, the poller, a reconcile pass) counts as complete.
    #[serde(default = "default_settle_ms")]
    pub settle_ms: u64,
    /// How often the database is asked for rows that still point at a local file.
    #[serde(default = "default_reconcile_interval_s")]
    pub reconcile_interval_s: u64,
    /// After this long without a row, a file is reported as an orphan (never deleted).
    #[serde(default = "default_orphan_after_s")]
    pub orphan_after_s: u64,
    /// A file that only rows seen naming its path while no file stood there point at (stale
    /// rows, which never own a file that appears later) waits this long for a row written after
    /// it appeared (the new sale's INSERT), then is reported as an orphan with the reason
    /// `ambiguous_owner`, still looked at again every `retry_max_s`.
    #[serde(default = "default_owner_wait_s")]
    pub owner_wait_s: u64,
    /// Retired (issue 23): a row seen naming a missing file never owns a file that appears at
    /// its path later unless its save assigned one since, whatever the time. Still accepted, so
    /// that an upgrade keeps old configs loading; ignored, with a warning at start-up.
    #[serde(default)]
    pub missing_after_s: Option<u64>,
    /// Scan the folder at this interval instead of using inotify (for NFS and shared mounts).
    #[serde(default)]
    pub poll_interval_ms: Option<u64>,
}

#[derive(Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `postgres://…` or `sqlite:///abs/path`.
    pub url: String,
    #[serde(default = "default_table")]
    pub table: String,
    #[serde(default)]
    pub columns: ColumnNames,
    /// PostgreSQL: how long opening a connection may take before the database counts as down.
    #[serde(default = "default_connect_timeout_s")]
    pub connect_timeout_s: u64,
    /// PostgreSQL: the server cancels a statement running longer than this; a call with no
    /// answer by then plus `CLIENT_MARGIN` (a frozen peer) drops its connection and counts as
    /// the database being down.
    #[serde(default = "default_statement_timeout_ms")]
    pub statement_timeout_ms: u64,
    /// PostgreSQL: how long the compare-and-set waits for a row another transaction holds
    /// locked; then only that file is retried later, with backoff.
    #[serde(default = "default_lock_timeout_ms")]
    pub lock_timeout_ms: u64,
    /// PostgreSQL: idle seconds before TCP keepalive probes start (then every third of it,
    /// three probes), so a dead peer is noticed on an idle connection too.
    #[serde(default = "default_keepalive_idle_s")]
    pub keepalive_idle_s: u64,
    /// PostgreSQL: connections for the compare-and-sets, each used by one write at a time, so
    /// that a write waiting for a locked row holds up no other file.
    #[serde(default = "default_pool_size")]
    pub pool_size: usize,
}

/// Column names of the sales table; the defaults are the Django model's.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ColumnNames {
    pub id: String,
    pub numero: String,
    pub confronta: String,
    pub minio_url: String,
    pub minio_object_name: String,
    pub subido_a_minio: String,
    pub sha256: String,
    /// Why the daemon refused the row's file (quarantined); written with the row's
    /// `confronta` cleared, so the path can never reach this row again. NULL once a file moves.
    pub sync_error: String,
    /// When the row was last given a new file (the companion's `save()` sets it in the same
    /// write as `confronta`): the evidence that a row seen naming a path while no file stood
    /// there owns a file that appears there later. Only `adopt` writes it here.
    pub assigned_at: String,
}

#[derive(Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MinioConfig {
    pub endpoint: String,
    #[serde(default = "default_region")]
    pub region: String,
    #[serde(default = "default_bucket")]
    pub bucket: String,
    pub access_key: String,
    /// File holding the secret key; `CONFRONTA_SYNC_SECRET_KEY` is the alternative.
    #[serde(default)]
    pub secret_key_file: Option<PathBuf>,
    /// Base of the URL stored in `confronta_minio_url`; defaults to `endpoint`.
    #[serde(default)]
    pub public_base_url: Option<String>,
    #[serde(default = "default_object_name")]
    pub object_name: String,
    /// Files larger than this are uploaded in parts of `part_size_bytes`.
    #[serde(default = "default_part_size")]
    pub multipart_threshold_bytes: u64,
    #[serde(default = "default_part_size")]
    pub part_size_bytes: u64,
    /// Whether small files go up with `If-None-Match: *` where the server honours it.
    #[serde(default)]
    pub conditional_writes: ConditionalWrites,
    /// PEM file of the certificate authorities to trust for an `https://` endpoint, besides the
    /// system's store (a private CA); both HTTP clients use it.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// HTTP proxy to reach the endpoint through (`http://host:port`). Unset, no proxy is used,
    /// whatever `HTTP_PROXY`, `HTTPS_PROXY` or `ALL_PROXY` say.
    #[serde(default)]
    pub proxy: Option<String>,
    /// How long opening a connection to the endpoint may take before the store counts as down.
    #[serde(default = "default_minio_connect_timeout_s")]
    pub connect_timeout_s: u64,
    /// The slowest upload rate taken for a working link: a PUT of `n` bytes gets 20 s plus `n`
    /// divided by this to be answered, so a blackholed server is noticed in seconds, a slow
    /// link's large part still gets its time.
    #[serde(default = "default_min_upload_bytes_per_s")]
    pub min_upload_bytes_per_s: u64,
    /// What every upload (a single PUT, a multipart upload) asks the server to encrypt the
    /// object with; an answer that does not say the object was stored so is a failure. Unset,
    /// nothing is asked and the bucket's default encryption (if any) applies.
    #[serde(default)]
    pub server_side_encryption: Option<ServerSideEncryption>,
    /// The KMS key of `server_side_encryption = "aws:kms"`; required with it, refused without.
    #[serde(default)]
    pub kms_key_id: Option<String>,
    /// The object-lock mode every upload asks for, with `retention_days`; the bucket must have
    /// object lock (`check` and start-up refuse otherwise, naming it). Unset, the bucket's
    /// default retention (if any) applies.
    #[serde(default)]
    pub retention_mode: Option<RetentionMode>,
    /// How long each uploaded object is retained, counted from its upload.
    #[serde(default)]
    pub retention_days: Option<u32>,
    /// Never delete the object a corrected venta pointed at before: every document a sale has
    /// had stays in the bucket (on a versioned bucket a deleted one stays as a version anyway).
    #[serde(default)]
    pub keep_previous_objects: bool,
}

/// `minio.server_side_encryption`: S3's `x-amz-server-side-encryption` values.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
pub enum ServerSideEncryption {
    /// SSE-S3: the server encrypts with keys it manages (MinIO needs a KMS configured for it
    /// too, `MINIO_KMS_SECRET_KEY` or KES).
    #[serde(rename = "AES256")]
    Aes256,
    /// SSE-KMS: the server encrypts with `minio.kms_key_id` from its KMS.
    #[serde(rename = "aws:kms")]
    AwsKms,
}

impl ServerSideEncryption {
    /// The header value, as S3 spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            ServerSideEncryption::Aes256 => "AES256",
            ServerSideEncryption::AwsKms => "aws:kms",
        }
    }
}

/// `minio.retention_mode`: S3's object-lock modes. Under `COMPLIANCE` nobody, root included,
/// can delete a version or shorten its retention before it ends; under `GOVERNANCE` a user with
/// `s3:BypassGovernanceRetention` can.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "UPPERCASE")]
pub enum RetentionMode {
    Compliance,
    Governance,
}

impl RetentionMode {
    /// The `x-amz-object-lock-mode` value.
    pub fn as_str(self) -> &'static str {
        match self {
            RetentionMode::Compliance => "COMPLIANCE",
            RetentionMode::Governance => "GOVERNANCE",
        }
    }
}

/// `minio.conditional_writes`: `auto` probes the server at start-up and, where it refuses an
/// `If-None-Match: *` PUT on an existing key (MinIO, SeaweedFS, AWS), lets it refuse overwrites
/// itself; `off` always stats the name first (for a proxy that drops the header).
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ConditionalWrites {
    #[default]
    Auto,
    Off,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct JournalConfig {
    pub path: PathBuf,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PipelineConfig {
    /// Files processed at once.
    pub max_in_flight: usize,
    /// First retry delay after a transient failure; it doubles up to `retry_max_s`.
    pub retry_initial_ms: u64,
    pub retry_max_s: u64,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `error`, `warn`, `info`, `debug`, `trace` or a full filter; `RUST_LOG` wins when set.
    pub level: String,
    /// `text` or `json`.
    pub format: LogFormat,
    /// When set, logs are also written to daily-rotated files in this folder.
    pub dir: Option<PathBuf>,
    /// How many rotated files to keep.
    pub max_files: usize,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

impl MinioConfig {
    pub fn public_base_url(&self) -> &str {
        self.public_base_url.as_deref().unwrap_or(&self.endpoint).trim_end_matches('/')
    }
}

impl Default for ColumnNames {
    fn default() -> Self {
        ColumnNames {
            id: "id".into(),
            numero: "numero".into(),
            confronta: "confronta".into(),
            minio_url: "confronta_minio_url".into(),
            minio_object_name: "confronta_minio_object_name".into(),
            subido_a_minio: "confronta_subido_a_minio".into(),
            sha256: "confronta_sha256".into(),
            sync_error: "confronta_sync_error".into(),
            assigned_at: "confronta_asignada_en".into(),
        }
    }
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig { max_in_flight: 16, retry_initial_ms: 1000, retry_max_s: 300 }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig { level: "info".into(), format: LogFormat::Text, dir: None, max_files: 14 }
    }
}

fn default_dir() -> String {
    "confrontas".into()
}
fn default_settle_ms() -> u64 {
    500
}
fn default_reconcile_interval_s() -> u64 {
    60
}
/// Far longer than a new sale's INSERT takes to commit after its file (under a second; seconds
/// behind a slow transaction), short enough that an operator hears of a file nobody may own
/// within minutes.
fn default_owner_wait_s() -> u64 {
    600
}
fn default_orphan_after_s() -> u64 {
    86_400
}
fn default_connect_timeout_s() -> u64 {
    10
}
fn default_statement_timeout_ms() -> u64 {
    30_000
}
fn default_lock_timeout_ms() -> u64 {
    2_000
}
fn default_keepalive_idle_s() -> u64 {
    30
}
fn default_pool_size() -> usize {
    4
}
fn default_minio_connect_timeout_s() -> u64 {
    10
}
/// 128 KiB/s, about 1 Mbit/s: a 5 MiB part gets 60 s.
fn default_min_upload_bytes_per_s() -> u64 {
    128 * 1024
}
fn default_table() -> String {
    "telefonica_ventaportabilidad".into()
}
fn default_region() -> String {
    "us-east-1".into()
}
fn default_bucket() -> String {
    "telefonica-crea-online".into()
}
fn default_object_name() -> String {
    crate::object_name::DEFAULT_TEMPLATE.into()
}
/// S3's minimum part size. A part is held in memory several times over while the SDK signs and
/// sends it (the benchmark's 2 GiB file peaks at 42 MiB of RSS with 8 MiB parts and 28 MiB with
/// 5 MiB, at the same speed), so the smallest part is the default.
fn default_part_size() -> u64 {
    5 * 1024 * 1024
}
