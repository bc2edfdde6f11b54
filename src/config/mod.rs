//! The TOML configuration: its schema (`schema`), defaults, validation, the settings a SIGHUP
//! changes live, and secret loading (`secrets`).
//!
//! Every table and struct denies unknown keys, so a typo such as `setle_ms` is an error that
//! names the key instead of a silently ignored setting.

pub mod reload;
mod schema;
mod secrets;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::object_name::ObjectNameTemplate;
use crate::s3_limits::{MAX_OBJECT_BYTES, MAX_PART_BYTES, MIN_PART_BYTES};
pub use schema::*;
pub use secrets::{redact_url, Secret, SECRET_KEY_ENV};
use secrets::{refuse_readable_by_others, refuse_writable_by_others};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    /// TOML syntax, a wrong type or an unknown key: `toml` names the line, the column and the
    /// key, and shows the line.
    #[error("invalid config {path}: {}", source.to_string().trim_end())]
    Parse { path: PathBuf, source: toml::de::Error },
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

/// The longest any duration key may be: ten years. The daemon adds durations to `Instant`s
/// (timers, backoff, deadlines), which panics past the monotonic clock's range, and nothing it
/// waits for is sensibly longer.
pub const LONGEST_DURATION: Duration = Duration::from_secs(10 * 365 * 86_400);

/// The longest `minio.retention_days`: a hundred years, past any legal retention. A retention
/// in COMPLIANCE mode can never be shortened, so a typo of a few zeros would be for ever.
pub const MAX_RETENTION_DAYS: u32 = 36_500;

/// The smallest config that loads: only the keys without a default (the tests start from it,
/// and `reference` shows these keys as required).
pub(crate) const MINIMAL: &str = r#"
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

/// The whole configuration file. `Serialize` is for `reload`, which compares two configs key
/// by key; nothing writes a config out.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
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

/// The settings a SIGHUP can change while the daemon runs (the keys `reload::KEYS` calls live,
/// but the log level): the scheduler applies them between dispatches, and hands the pipeline
/// its part (`Pipeline::apply_live`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveSettings {
    pub max_in_flight: usize,
    pub settle: Duration,
    pub retry_initial: Duration,
    pub retry_max: Duration,
    pub reconcile_interval: Duration,
    pub orphan_after: Duration,
    pub owner_wait: Duration,
    /// `None` watches with inotify.
    pub poll_interval: Option<Duration>,
    pub stall_timeout: Duration,
    pub shutdown_timeout: Duration,
    /// Without `quarantine_dir`, which needs a restart (the start-up probe checked the folder).
    pub validation: ValidationConfig,
}

impl LiveSettings {
    pub fn of(config: &Config) -> LiveSettings {
        LiveSettings {
            max_in_flight: config.pipeline.max_in_flight,
            settle: config.settle(),
            retry_initial: Duration::from_millis(config.pipeline.retry_initial_ms),
            retry_max: Duration::from_secs(config.pipeline.retry_max_s),
            reconcile_interval: Duration::from_secs(config.watch.reconcile_interval_s.max(1)),
            orphan_after: Duration::from_secs(config.watch.orphan_after_s),
            owner_wait: Duration::from_secs(config.watch.owner_wait_s),
            poll_interval: config.watch.poll_interval_ms.map(Duration::from_millis),
            stall_timeout: Duration::from_secs(config.service.stall_timeout_s),
            shutdown_timeout: Duration::from_secs(config.service.shutdown_timeout_s),
            validation: ValidationConfig { quarantine_dir: None, ..config.validation.clone() },
        }
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
        let config: Config =
            toml::from_str(text).map_err(|source| ConfigError::Parse { path: path.to_owned(), source })?;
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
            ("database.columns.assigned_at", &self.database.columns.assigned_at),
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
        if self.minio.connect_timeout_s == 0 {
            return Err("minio.connect_timeout_s must be at least 1".into());
        }
        if self.minio.min_upload_bytes_per_s < 1024 {
            return Err(format!(
                "minio.min_upload_bytes_per_s must be at least 1024, got {}",
                self.minio.min_upload_bytes_per_s
            ));
        }
        if let Some(proxy) = &self.minio.proxy {
            let parsed = url::Url::parse(proxy).map_err(|e| format!("minio.proxy: {e}"))?;
            if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
                return Err(format!(
                    "minio.proxy must be an http:// or https:// URL with a host, got {proxy:?}"
                ));
            }
        }
        self.validate_object_policy()?;
        if self.minio.part_size_bytes < MIN_PART_BYTES {
            return Err(format!(
                "minio.part_size_bytes must be at least {MIN_PART_BYTES} (the S3 minimum), got {}",
                self.minio.part_size_bytes
            ));
        }
        // Larger parts or files could never be uploaded: say so now, not at the first such file.
        if self.minio.part_size_bytes > MAX_PART_BYTES {
            return Err(format!(
                "minio.part_size_bytes must be at most {} (the S3 maximum), got {}",
                MAX_PART_BYTES, self.minio.part_size_bytes
            ));
        }
        if self.validation.max_bytes > MAX_OBJECT_BYTES {
            return Err(format!(
                "validation.max_bytes must be at most {} (S3's largest object), got {}",
                MAX_OBJECT_BYTES, self.validation.max_bytes
            ));
        }
        self.validate_durations()?;
        // Checked here, not only when the logger starts, so that a reload with a bad level
        // changes nothing, as any other bad value.
        tracing_subscriber::EnvFilter::try_new(&self.log.level)
            .map_err(|e| format!("log.level {:?}: {e}", self.log.level))?;
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

    /// Keys this version accepts but ignores, each with what to do instead: logged at start-up
    /// so an upgrade never fails on an old config, and never passes silently either.
    pub fn retired_keys(&self) -> Vec<String> {
        let mut retired = Vec::new();
        if self.watch.missing_after_s.is_some() {
            retired.push(
                "watch.missing_after_s no longer has any effect: a row seen naming a missing file never owns a \
                 file that appears at its path later unless its save assigned one since (see watch.owner_wait_s); \
                 remove the key"
                    .to_owned(),
            );
        }
        retired
    }

    /// The encryption and retention keys: each needs its companion and nothing else.
    fn validate_object_policy(&self) -> Result<(), String> {
        let minio = &self.minio;
        match (minio.server_side_encryption, minio.kms_key_id.as_deref()) {
            (Some(ServerSideEncryption::AwsKms), None) => {
                return Err("minio.server_side_encryption = \"aws:kms\" needs minio.kms_key_id".into())
            }
            (Some(ServerSideEncryption::AwsKms), Some(key)) => {
                // It goes out as a header value: nothing a header cannot carry.
                if key.is_empty() || !key.chars().all(|c| c.is_ascii_graphic()) {
                    return Err(format!(
                        "minio.kms_key_id must be a key name of printable ASCII without spaces, got {key:?}"
                    ));
                }
            }
            (_, Some(_)) => {
                return Err(
                    "minio.kms_key_id is only used with minio.server_side_encryption = \"aws:kms\"; remove it or set that"
                        .into(),
                )
            }
            (_, None) => {}
        }
        match (minio.retention_mode, minio.retention_days) {
            (Some(_), Some(days)) if !(1..=MAX_RETENTION_DAYS).contains(&days) => {
                Err(format!("minio.retention_days must be between 1 and {MAX_RETENTION_DAYS}, got {days}"))
            }
            (Some(_), Some(_)) | (None, None) => Ok(()),
            (Some(mode), None) => Err(format!(
                "minio.retention_mode = \"{}\" needs minio.retention_days (how long each object is retained)",
                mode.as_str()
            )),
            (None, Some(_)) => {
                Err("minio.retention_days needs minio.retention_mode (\"COMPLIANCE\" or \"GOVERNANCE\")"
                    .into())
            }
        }
    }

    /// Every duration key within `LONGEST_DURATION`, and the retry backoff neither zero (the
    /// scheduler would retry at once, for ever) nor starting above its own ceiling.
    fn validate_durations(&self) -> Result<(), String> {
        let (watch, db, pipeline, service) = (&self.watch, &self.database, &self.pipeline, &self.service);
        let ms = Duration::from_millis;
        let s = Duration::from_secs;
        let durations = [
            ("watch.settle_ms", ms(watch.settle_ms)),
            ("watch.reconcile_interval_s", s(watch.reconcile_interval_s)),
            ("watch.orphan_after_s", s(watch.orphan_after_s)),
            ("watch.owner_wait_s", s(watch.owner_wait_s)),
            ("watch.poll_interval_ms", ms(watch.poll_interval_ms.unwrap_or(0))),
            ("database.connect_timeout_s", s(db.connect_timeout_s)),
            ("database.statement_timeout_ms", ms(db.statement_timeout_ms)),
            ("database.lock_timeout_ms", ms(db.lock_timeout_ms)),
            ("database.keepalive_idle_s", s(db.keepalive_idle_s)),
            ("minio.connect_timeout_s", s(self.minio.connect_timeout_s)),
            ("pipeline.retry_initial_ms", ms(pipeline.retry_initial_ms)),
            ("pipeline.retry_max_s", s(pipeline.retry_max_s)),
            ("service.shutdown_timeout_s", s(service.shutdown_timeout_s)),
            ("service.stall_timeout_s", s(service.stall_timeout_s)),
        ];
        for (key, value) in durations {
            if value > LONGEST_DURATION {
                return Err(format!(
                    "{key} must be at most {} days, got {}",
                    LONGEST_DURATION.as_secs() / 86_400,
                    humantime::format_duration(value)
                ));
            }
        }
        if watch.poll_interval_ms == Some(0) {
            return Err("watch.poll_interval_ms must be at least 1 (or left unset for inotify)".into());
        }
        if pipeline.retry_initial_ms == 0 {
            return Err("pipeline.retry_initial_ms must be at least 1".into());
        }
        if pipeline.retry_max_s == 0 {
            return Err("pipeline.retry_max_s must be at least 1".into());
        }
        if ms(pipeline.retry_initial_ms) > s(pipeline.retry_max_s) {
            return Err(format!(
                "pipeline.retry_initial_ms ({}) must not exceed pipeline.retry_max_s ({} s)",
                pipeline.retry_initial_ms, pipeline.retry_max_s
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
