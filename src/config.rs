//! The TOML configuration: its schema, defaults, validation and secret loading.
//!
//! Every table and struct denies unknown keys, so a typo such as `setle_ms` is an error that
//! names the key instead of a silently ignored setting.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::object_name::ObjectNameTemplate;

/// Environment variable that may carry the S3 secret key instead of `secret_key_file`.
pub const SECRET_KEY_ENV: &str = "CONFRONTA_SYNC_SECRET_KEY";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("invalid config {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid config {path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("cannot read secret key file {path}: {source}")]
    SecretFile { path: PathBuf, source: std::io::Error },
    #[error(
        "{path} holds {what} and its mode {mode:03o} lets every local user read it; \
         run `chmod 640 {path}` (owner root, group the service's) and start again"
    )]
    ReadableByOthers { path: PathBuf, mode: u32, what: &'static str },
}

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub watch: WatchConfig,
    pub database: DatabaseConfig,
    pub minio: MinioConfig,
    pub journal: JournalConfig,
    #[serde(default)]
    pub pipeline: PipelineConfig,
    #[serde(default)]
    pub log: LogConfig,
    #[serde(default)]
    pub service: ServiceConfig,
    #[serde(default)]
    pub validation: ValidationConfig,
    #[serde(default)]
    pub metrics: MetricsConfig,
}

/// What a file must be before it is uploaded (seed plan, section 8.1).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
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

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServiceConfig {
    /// After SIGTERM, how long in-flight files get to reach a journaled state.
    pub shutdown_timeout_s: u64,
    /// How long files may be due while nothing progresses (no pipeline run ends, no journal
    /// step, no uploaded part) before systemd's watchdog is no longer fed.
    pub stall_timeout_s: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
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

#[derive(Debug, Clone, Deserialize, PartialEq)]
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
    /// A row that has named a missing file for this long no longer claims a file that appears
    /// at its path later, unless the row is written again (Django reuses free names).
    #[serde(default = "default_missing_after_s")]
    pub missing_after_s: u64,
    /// Scan the folder at this interval instead of using inotify (for NFS and shared mounts).
    #[serde(default)]
    pub poll_interval_ms: Option<u64>,
}

#[derive(Clone, Deserialize, PartialEq)]
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
#[derive(Debug, Clone, Deserialize, PartialEq)]
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
}

#[derive(Clone, Deserialize, PartialEq)]
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
}

/// `minio.conditional_writes`: `auto` probes the server at start-up and, where it refuses an
/// `If-None-Match: *` PUT on an existing key (MinIO, SeaweedFS, AWS), lets it refuse overwrites
/// itself; `off` always stats the name first (for a proxy that drops the header).
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ConditionalWrites {
    #[default]
    Auto,
    Off,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct JournalConfig {
    pub path: PathBuf,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PipelineConfig {
    /// Files processed at once.
    pub max_in_flight: usize,
    /// First retry delay after a transient failure; it doubles up to `retry_max_s`.
    pub retry_initial_ms: u64,
    pub retry_max_s: u64,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
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

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// A secret string whose `Debug` and `Display` never show the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl Config {
    /// Reads, parses and validates the file at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
        refuse_writable_by_others(path)?;
        let config = Config::parse(&text, path)?;
        if config.database.holds_password() {
            refuse_readable_by_others(path, "the database password")?;
        }
        Ok(config)
    }

    /// Where refused files go: `validation.quarantine_dir`, else `quarantine` in the journal's
    /// folder. The default is the daemon's own state folder because MEDIA_ROOT is what Django
    /// serves at `/media/`: a refused executable kept there would stay downloadable.
    pub fn quarantine_dir(&self) -> PathBuf {
        self.validation
            .quarantine_dir
            .clone()
            .unwrap_or_else(|| self.journal.path.parent().unwrap_or(&self.journal.path).join("quarantine"))
    }

    /// Parses and validates `text`; `path` only names the source in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| {
            let line = e.span().map(|span| text[..span.start].matches('\n').count() + 1);
            ConfigError::Parse {
                path: path.to_owned(),
                message: match line {
                    Some(line) => format!("line {line}: {}", e.message()),
                    None => e.message().to_owned(),
                },
            }
        })?;
        config.validate().map_err(|message| ConfigError::Invalid { path: path.to_owned(), message })?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), String> {
        if !self.watch.media_root.is_absolute() {
            return Err(format!(
                "watch.media_root must be an absolute path, got {}",
                self.watch.media_root.display()
            ));
        }
        crate::media_path::RelativeMediaPath::parse(&self.watch.dir)
            .map_err(|e| format!("watch.dir: {e}"))?;
        if !self.database.url.starts_with("postgres://")
            && !self.database.url.starts_with("postgresql://")
            && !self.database.url.starts_with("sqlite://")
        {
            return Err("database.url must start with postgres:// or sqlite:///".into());
        }
        let identifiers = [
            ("database.table", &self.database.table),
            ("database.columns.id", &self.database.columns.id),
            ("database.columns.numero", &self.database.columns.numero),
            ("database.columns.confronta", &self.database.columns.confronta),
            ("database.columns.minio_url", &self.database.columns.minio_url),
            ("database.columns.minio_object_name", &self.database.columns.minio_object_name),
            ("database.columns.subido_a_minio", &self.database.columns.subido_a_minio),
            ("database.columns.sha256", &self.database.columns.sha256),
            ("database.columns.sync_error", &self.database.columns.sync_error),
        ];
        for (key, value) in identifiers {
            // Table and column names are spliced into SQL, so only plain identifiers pass.
            let plain = !value.is_empty()
                && value.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !value.starts_with(|c: char| c.is_ascii_digit());
            if !plain {
                return Err(format!("{key} must be a plain SQL identifier, got {value:?}"));
            }
        }
        let db = &self.database;
        if db.connect_timeout_s == 0 {
            return Err("database.connect_timeout_s must be at least 1".into());
        }
        if db.statement_timeout_ms < 100 {
            return Err(format!(
                "database.statement_timeout_ms must be at least 100, got {}",
                db.statement_timeout_ms
            ));
        }
        if db.lock_timeout_ms == 0 || db.lock_timeout_ms > db.statement_timeout_ms {
            return Err(format!(
                "database.lock_timeout_ms must be between 1 and database.statement_timeout_ms ({}), got {}",
                db.statement_timeout_ms, db.lock_timeout_ms
            ));
        }
        if db.keepalive_idle_s == 0 {
            return Err("database.keepalive_idle_s must be at least 1".into());
        }
        if !(1..=64).contains(&db.pool_size) {
            return Err(format!("database.pool_size must be between 1 and 64, got {}", db.pool_size));
        }
        ObjectNameTemplate::parse(&self.minio.object_name).map_err(|e| format!("minio.object_name: {e}"))?;
        const MIN_PART: u64 = 5 * 1024 * 1024;
        if self.minio.part_size_bytes < MIN_PART {
            return Err(format!(
                "minio.part_size_bytes must be at least {MIN_PART} (the S3 minimum), got {}",
                self.minio.part_size_bytes
            ));
        }
        // Larger parts or files could never be uploaded: say so now, not at the first such file.
        if self.minio.part_size_bytes > crate::store::MAX_PART_BYTES {
            return Err(format!(
                "minio.part_size_bytes must be at most {} (the S3 maximum), got {}",
                crate::store::MAX_PART_BYTES,
                self.minio.part_size_bytes
            ));
        }
        if self.validation.max_bytes > crate::store::MAX_OBJECT_BYTES {
            return Err(format!(
                "validation.max_bytes must be at most {} (S3's largest object), got {}",
                crate::store::MAX_OBJECT_BYTES,
                self.validation.max_bytes
            ));
        }
        if self.pipeline.max_in_flight == 0 {
            return Err("pipeline.max_in_flight must be at least 1".into());
        }
        // One part's PUT may take minutes on a slow link without any other sign of progress.
        if self.service.stall_timeout_s < 30 {
            return Err(format!(
                "service.stall_timeout_s must be at least 30, got {}",
                self.service.stall_timeout_s
            ));
        }
        if !self.journal.path.is_absolute() {
            return Err(format!(
                "journal.path must be an absolute path, got {}",
                self.journal.path.display()
            ));
        }
        // MEDIA_ROOT holds the watched folder, so this also keeps refused files from being
        // picked up again; and Django serves it, so nothing refused may be kept there.
        let quarantine = self.quarantine_dir();
        let defaulted =
            if self.validation.quarantine_dir.is_none() { " (the default, beside journal.path)" } else { "" };
        if !quarantine.is_absolute() || quarantine.starts_with(&self.watch.media_root) {
            return Err(format!(
                "validation.quarantine_dir must be an absolute path outside watch.media_root ({}), \
                 which Django serves; got {}{defaulted}",
                self.watch.media_root.display(),
                quarantine.display()
            ));
        }
        Ok(())
    }

    /// The folder being watched: `media_root/dir`.
    pub fn watched_dir(&self) -> PathBuf {
        self.watch.media_root.join(&self.watch.dir)
    }

    pub fn settle(&self) -> Duration {
        Duration::from_millis(self.watch.settle_ms)
    }
}

impl MinioConfig {
    /// The secret key, from `CONFRONTA_SYNC_SECRET_KEY` when set, else from `secret_key_file`.
    pub fn secret_key(&self) -> Result<Secret, ConfigError> {
        if let Ok(value) = std::env::var(SECRET_KEY_ENV) {
            if !value.is_empty() {
                return Ok(Secret(value));
            }
        }
        let path = self.secret_key_file.clone().ok_or_else(|| ConfigError::Invalid {
            path: PathBuf::from("<config>"),
            message: format!("minio.secret_key_file is not set and {SECRET_KEY_ENV} is empty"),
        })?;
        let text = std::fs::read_to_string(&path)
            .map_err(|source| ConfigError::SecretFile { path: path.clone(), source })?;
        refuse_writable_by_others(&path)?;
        refuse_readable_by_others(&path, "the S3 secret key")?;
        Ok(Secret(text.trim().to_owned()))
    }

    pub fn public_base_url(&self) -> &str {
        self.public_base_url.as_deref().unwrap_or(&self.endpoint).trim_end_matches('/')
    }
}

impl DatabaseConfig {
    /// Whether `url` carries a password, in any form `redact_url` hides.
    pub fn holds_password(&self) -> bool {
        redact_url(&self.url) != self.url
    }
}

impl fmt::Debug for DatabaseConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatabaseConfig")
            .field("url", &redact_url(&self.url))
            .field("table", &self.table)
            .field("columns", &self.columns)
            .field("connect_timeout_s", &self.connect_timeout_s)
            .field("statement_timeout_ms", &self.statement_timeout_ms)
            .field("lock_timeout_ms", &self.lock_timeout_ms)
            .field("keepalive_idle_s", &self.keepalive_idle_s)
            .field("pool_size", &self.pool_size)
            .finish()
    }
}

impl fmt::Debug for MinioConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MinioConfig")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("bucket", &self.bucket)
            .field("access_key", &self.access_key)
            .field("secret_key_file", &self.secret_key_file)
            .field("object_name", &self.object_name)
            .finish_non_exhaustive()
    }
}

/// A config or secret file that group or others can write could be swapped under the daemon
/// (pointing it at another bucket, or at files to delete): refuse to start.
fn refuse_writable_by_others(path: &Path) -> Result<(), ConfigError> {
    let mode = file_mode(path)?;
    if mode & 0o022 != 0 {
        return Err(ConfigError::Invalid {
            path: path.to_owned(),
            message: format!("mode {:o} lets group or others write it; chmod go-w it", mode & 0o777),
        });
    }
    Ok(())
}

/// A file holding a credential that every local user can read hands that credential to any
/// compromised process on the machine (a web app, a cron job): refuse to start, naming the file.
/// Group read stays allowed, because the package installs the config root-owned, 0640, with the
/// service's group, so the daemon can read it without owning (and being able to rewrite) it.
fn refuse_readable_by_others(path: &Path, what: &'static str) -> Result<(), ConfigError> {
    let mode = file_mode(path)?;
    if mode & 0o004 != 0 {
        return Err(ConfigError::ReadableByOthers { path: path.to_owned(), mode: mode & 0o777, what });
    }
    Ok(())
}

fn file_mode(path: &Path) -> Result<u32, ConfigError> {
    use std::os::unix::fs::PermissionsExt;
    Ok(std::fs::metadata(path)
        .map_err(|source| ConfigError::Read { path: path.to_owned(), source })?
        .permissions()
        .mode())
}

/// Hides the password of a database URL, wherever libpq and tokio-postgres take it from: the
/// `user:password@` part and a `password=` query parameter (any case, percent-encoded or not).
///
/// The URL is edited as text rather than through `url::Url`, which refuses the UNIX-socket form
/// `postgres://user:password@/db?host=/run/postgresql` and would then show it whole; everything
/// but the password is kept exactly as written, so the operator still recognises it.
pub fn redact_url(url: &str) -> String {
    const HIDDEN: &str = "redacted";
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.to_owned();
    };
    let (head, rest) = url.split_at(scheme_end);
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, rest) = rest.split_at(authority_end);
    let mut redacted = head.to_owned();
    // The password may itself hold `@`, so the host starts after the last one.
    match authority.rfind('@').map(|at| authority.split_at(at)) {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _password)) => redacted.push_str(&format!("{user}:{HIDDEN}{host}")),
            None => redacted.push_str(authority),
        },
        None => redacted.push_str(authority),
    }
    let (before_fragment, fragment) = rest.split_at(rest.find('#').unwrap_or(rest.len()));
    let Some((path, query)) = before_fragment.split_once('?') else {
        redacted.push_str(rest);
        return redacted;
    };
    redacted.push_str(path);
    redacted.push('?');
    let pairs: Vec<String> = query
        .split('&')
        .map(|pair| {
            let raw_key = pair.split_once('=').map_or(pair, |(key, _)| key);
            let key = url::form_urlencoded::parse(raw_key.as_bytes()).next().map(|(key, _)| key);
            match key {
                Some(key) if key.eq_ignore_ascii_case("password") => format!("{raw_key}={HIDDEN}"),
                _ => pair.to_owned(),
            }
        })
        .collect();
    redacted.push_str(&pairs.join("&"));
    redacted.push_str(fragment);
    redacted
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
/// Longer than a row can come before its file in any ordinary flow (a script that inserts the
/// row first, NFS attribute caching), shorter than the time before a freed name is reused.
fn default_missing_after_s() -> u64 {
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

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
[watch]
media_root = "/srv/crm/media"
[database]
url = "sqlite:///srv/crm/db.sqlite3"
[minio]
endpoint = "http://127.0.0.1:9000"
access_key = "k"
[journal]
path = "/var/lib/confronta-sync/journal.sqlite3"
"#;

    fn parse(text: &str) -> Result<Config, String> {
        Config::parse(text, Path::new("test.toml")).map_err(|e| e.to_string())
    }

    #[test]
    fn minimal_config_gets_the_documented_defaults() {
        let config = parse(MINIMAL).unwrap();
        assert_eq!(config.watch.dir, "confrontas");
        assert_eq!(config.watch.settle_ms, 500);
        assert_eq!(config.watch.orphan_after_s, 86_400);
        assert_eq!(config.database.table, "telefonica_ventaportabilidad");
        assert_eq!(config.minio.bucket, "telefonica-crea-online");
        assert_eq!(config.pipeline.max_in_flight, 16);
        assert_eq!(config.minio.public_base_url(), "http://127.0.0.1:9000");
    }

    #[test]
    fn the_documented_sample_config_parses() {
        let config = Config::parse(include_str!("../config.toml"), Path::new("config.toml")).unwrap();
        assert_eq!(config.minio.object_name, crate::object_name::DEFAULT_TEMPLATE);
        assert_eq!(config.database.columns.sha256, "confronta_sha256");
    }

    /// Issue 17, item 7: sizes S3 can never take are refused when the config is read.
    #[test]
    fn part_sizes_and_max_bytes_beyond_s3_s_limits_are_refused() {
        let big_part = MINIMAL.replace("[minio]", "[minio]\npart_size_bytes = 6442450944");
        let err = parse(&big_part).unwrap_err();
        assert!(err.contains("minio.part_size_bytes") && err.contains("maximum"), "{err}");
        let huge = MINIMAL.replace("[journal]", "[validation]\nmax_bytes = 6597069766657\n[journal]");
        let err = parse(&huge).unwrap_err();
        assert!(err.contains("validation.max_bytes") && err.contains("largest object"), "{err}");
    }

    /// Issue 17 item 8: the watchdog's stall bound has a default, and one too short to outlast
    /// a slow part upload is refused.
    #[test]
    fn the_stall_timeout_defaults_to_ten_minutes_and_has_a_floor() {
        assert_eq!(parse(MINIMAL).unwrap().service.stall_timeout_s, 600);
        let err = parse(&format!("{MINIMAL}\n[service]\nstall_timeout_s = 5\n")).unwrap_err();
        assert!(err.contains("service.stall_timeout_s") && err.contains("30"), "{err}");
        let config = parse(&format!("{MINIMAL}\n[service]\nstall_timeout_s = 30\n")).unwrap();
        assert_eq!(config.service.stall_timeout_s, 30);
    }

    #[test]
    fn unknown_key_is_named_in_the_error() {
        let text = MINIMAL.replace("[watch]", "[watch]\nsetle_ms = 3");
        let err = parse(&text).unwrap_err();
        assert!(err.contains("setle_ms"), "{err}");
    }

    #[test]
    fn unknown_table_is_named_in_the_error() {
        let err = parse(&format!("{MINIMAL}\n[extra]\nx = 1")).unwrap_err();
        assert!(err.contains("extra"), "{err}");
    }

    #[test]
    fn table_name_must_be_an_identifier() {
        let text = MINIMAL.replace("[database]", "[database]\ntable = \"x; drop table y\"");
        let err = parse(&text).unwrap_err();
        assert!(err.contains("database.table"), "{err}");
    }

    #[test]
    fn database_deadlines_have_defaults_and_are_checked() {
        let config = parse(MINIMAL).unwrap();
        assert_eq!(config.database.statement_timeout_ms, 30_000);
        assert_eq!(config.database.lock_timeout_ms, 2_000);
        assert_eq!(config.database.pool_size, 4);
        for (line, key) in [
            ("lock_timeout_ms = 60000", "database.lock_timeout_ms"),
            ("statement_timeout_ms = 0", "database.statement_timeout_ms"),
            ("pool_size = 0", "database.pool_size"),
            ("connect_timeout_s = 0", "database.connect_timeout_s"),
        ] {
            let err = parse(&MINIMAL.replace("[database]", &format!("[database]\n{line}"))).unwrap_err();
            assert!(err.contains(key), "{line}: {err}");
        }
    }

    /// Issue 12 item 5: MEDIA_ROOT is served at /media/, so a refused file kept under it would
    /// stay downloadable.
    #[test]
    fn the_default_quarantine_is_beside_the_journal_outside_media_root() {
        let config = parse(MINIMAL).unwrap();
        assert_eq!(config.quarantine_dir(), PathBuf::from("/var/lib/confronta-sync/quarantine"));
    }

    #[test]
    fn a_quarantine_dir_inside_media_root_is_refused() {
        let configured = MINIMAL
            .replace("[journal]", "[validation]\nquarantine_dir = \"/srv/crm/media/cuarentena\"\n[journal]");
        // The default follows the journal, so a journal under MEDIA_ROOT is refused the same way.
        let defaulted = MINIMAL.replace("/var/lib/confronta-sync/", "/srv/crm/media/state/");
        for text in [configured, defaulted] {
            let err = parse(&text).unwrap_err();
            assert!(err.contains("validation.quarantine_dir") && err.contains("media_root"), "{err}");
        }
    }

    #[test]
    fn database_password_is_redacted_in_debug_output() {
        let text =
            MINIMAL.replace("sqlite:///srv/crm/db.sqlite3", "postgres://crm:hunter2@127.0.0.1:5432/crm");
        let config = parse(&text).unwrap();
        let shown = format!("{config:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("redacted"), "{shown}");
    }

    #[test]
    fn secret_debug_hides_the_value() {
        assert_eq!(format!("{:?}", Secret::new("s3cr3t")), "Secret(<redacted>)");
    }

    #[test]
    fn redact_url_hides_every_form_of_password() {
        let cases = [
            ("postgres://crm:hunter2@db:5432/crm", "postgres://crm:redacted@db:5432/crm"),
            ("postgres://crm@db/crm?password=hunter2", "postgres://crm@db/crm?password=redacted"),
            (
                "postgres://crm@db/crm?sslmode=require&password=hunter2",
                "postgres://crm@db/crm?sslmode=require&password=redacted",
            ),
            (
                "postgres://crm@db/crm?PassWord=hunter2&application_name=sync",
                "postgres://crm@db/crm?PassWord=redacted&application_name=sync",
            ),
            ("postgresql://crm@db/crm?PASSWORD=hunter2", "postgresql://crm@db/crm?PASSWORD=redacted"),
            // A percent-encoded key is still the password parameter once decoded.
            ("postgres://crm@db/crm?pass%77ord=hunter2", "postgres://crm@db/crm?pass%77ord=redacted"),
            ("postgres://crm:a@db/crm?password=b", "postgres://crm:redacted@db/crm?password=redacted"),
            // The UNIX-socket form has no host, which `url::Url` refuses to parse.
            (
                "postgres://crm:hunter2@/crm?host=/var/run/postgresql",
                "postgres://crm:redacted@/crm?host=/var/run/postgresql",
            ),
            // A password holding `@` is cut at the last `@` of the authority, as libpq does.
            ("postgres://crm:p@ss@db/crm", "postgres://crm:redacted@db/crm"),
            ("postgres://crm@db/crm?sslmode=require", "postgres://crm@db/crm?sslmode=require"),
            ("postgres://crm@db/crm?passwordless=1", "postgres://crm@db/crm?passwordless=1"),
            ("sqlite:///srv/crm/db.sqlite3", "sqlite:///srv/crm/db.sqlite3"),
        ];
        for (url, expected) in cases {
            assert_eq!(redact_url(url), expected, "redact_url({url:?})");
        }
    }

    /// Writes `text` as a config file with `mode` and loads it.
    fn load_with_mode(text: &str, mode: u32) -> (Result<Config, String>, PathBuf, tempfile::TempDir) {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        (Config::load(&path).map_err(|e| e.to_string()), path, dir)
    }

    #[test]
    fn a_config_holding_a_password_is_refused_when_others_can_read_it() {
        let with_url = |url: &str| MINIMAL.replace("sqlite:///srv/crm/db.sqlite3", url);
        let userinfo = with_url("postgres://crm:hunter2@127.0.0.1:5432/crm");
        let query = with_url("postgres://crm@127.0.0.1:5432/crm?sslmode=disable&password=hunter2");
        for (case, text) in [("user:password@", &userinfo), ("&password=", &query)] {
            let (result, path, _dir) = load_with_mode(text, 0o644);
            let err = result.expect_err(case);
            assert!(err.contains(&path.display().to_string()), "{case}: {err}");
            assert!(err.contains("644"), "{case}: {err}");
            assert!(err.contains(&format!("chmod 640 {}", path.display())), "{case}: {err}");
            assert!(!err.contains("hunter2"), "{case}: {err}");
            let (result, _, _dir) = load_with_mode(text, 0o640);
            assert!(result.is_ok(), "{case}: group-readable is how the package installs it: {result:?}");
        }
        let (result, _, _dir) = load_with_mode(MINIMAL, 0o644);
        assert!(result.is_ok(), "a config without a password may be world-readable: {result:?}");
    }

    #[test]
    fn a_secret_key_file_others_can_read_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("minio-secret");
        std::fs::write(&path, "s3cr3t\n").unwrap();
        let text = MINIMAL
            .replace("access_key = \"k\"", &format!("access_key = \"k\"\nsecret_key_file = {:?}", path));
        let config = parse(&text).unwrap();

        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = config.minio.secret_key().unwrap_err().to_string();
        assert!(err.contains(&path.display().to_string()), "{err}");
        assert!(err.contains("644") && err.contains("chmod 640"), "{err}");
        assert!(!err.contains("s3cr3t"), "{err}");

        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        assert_eq!(config.minio.secret_key().unwrap().expose(), "s3cr3t");
    }
}
