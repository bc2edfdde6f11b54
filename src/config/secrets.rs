//! Credentials in the configuration: the S3 secret key, the database URL's password, and the
//! file modes that keep both from other local users.

use std::fmt;
use std::path::{Path, PathBuf};

use super::{ConfigError, DatabaseConfig, MinioConfig};

/// Environment variable that may carry the S3 secret key instead of `secret_key_file`.
pub const SECRET_KEY_ENV: &str = "CONFRONTA_SYNC_SECRET_KEY";

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
            .field("server_side_encryption", &self.server_side_encryption)
            .field("retention_mode", &self.retention_mode)
            .field("retention_days", &self.retention_days)
            .field("keep_previous_objects", &self.keep_previous_objects)
            .finish_non_exhaustive()
    }
}

/// A config or secret file that group or others can write could be swapped under the daemon
/// (pointing it at another bucket, or at files to delete): refuse to start.
pub(super) fn refuse_writable_by_others(path: &Path) -> Result<(), ConfigError> {
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
pub(super) fn refuse_readable_by_others(path: &Path, what: &'static str) -> Result<(), ConfigError> {
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
