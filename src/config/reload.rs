//! What a SIGHUP does with each key. Every key of the file is classified in `KEYS` as applied
//! live, read only at start-up, or retired, and a reload compares configs key by key. The keys
//! are not listed by hand where they are compared: `changes` walks the config serialized as a
//! tree, so a key added to the schema is compared the day it is added, and until `KEYS` gives
//! it a class the test `every_key_is_classified` fails (and a reload takes it for a key that
//! needs a restart, which is never wrong about what is running).

use std::collections::BTreeMap;

use serde_json::Value;

use super::{redact_url, Config};

/// What a reload does with a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyClass {
    /// The running daemon takes the new value at once (`LiveSettings`, the log level).
    Live,
    /// Read once at start-up (connections, folders, the journal, the listeners): the running
    /// value stays until a restart.
    Restart,
    /// Accepted and ignored (`Config::retired_keys`).
    Retired,
}

/// Every key of the config file by its dotted path, and its class. A key is live when the
/// daemon can take its new value between two files without reopening anything: the timers, the
/// retry backoff, the validation rules, the watcher's mode (the watcher is started again and
/// the folder walked). It needs a restart when connections, folders, file handles or listeners
/// were made from it, or when it names the objects and rows already written.
pub const KEYS: &[(&str, KeyClass)] = {
    use KeyClass::{Live, Restart, Retired};
    &[
        ("watch.media_root", Restart),
        ("watch.dir", Restart),
        ("watch.settle_ms", Live),
        ("watch.reconcile_interval_s", Live),
        ("watch.orphan_after_s", Live),
        ("watch.owner_wait_s", Live),
        ("watch.missing_after_s", Retired),
        ("watch.poll_interval_ms", Live),
        ("database.url", Restart),
        ("database.table", Restart),
        ("database.columns.id", Restart),
        ("database.columns.numero", Restart),
        ("database.columns.confronta", Restart),
        ("database.columns.minio_url", Restart),
        ("database.columns.minio_object_name", Restart),
        ("database.columns.subido_a_minio", Restart),
        ("database.columns.sha256", Restart),
        ("database.columns.sync_error", Restart),
        ("database.columns.assigned_at", Restart),
        ("database.connect_timeout_s", Restart),
        ("database.statement_timeout_ms", Restart),
        ("database.lock_timeout_ms", Restart),
        ("database.keepalive_idle_s", Restart),
        ("database.pool_size", Restart),
        ("minio.endpoint", Restart),
        ("minio.region", Restart),
        ("minio.bucket", Restart),
        ("minio.access_key", Restart),
        ("minio.secret_key_file", Restart),
        ("minio.public_base_url", Restart),
        ("minio.object_name", Restart),
        ("minio.multipart_threshold_bytes", Restart),
        ("minio.part_size_bytes", Restart),
        ("minio.conditional_writes", Restart),
        ("minio.ca_file", Restart),
        ("minio.proxy", Restart),
        ("minio.connect_timeout_s", Restart),
        ("minio.min_upload_bytes_per_s", Restart),
        ("minio.server_side_encryption", Restart),
        ("minio.kms_key_id", Restart),
        ("minio.retention_mode", Restart),
        ("minio.retention_days", Restart),
        ("minio.keep_previous_objects", Restart),
        ("journal.path", Restart),
        ("pipeline.max_in_flight", Live),
        ("pipeline.retry_initial_ms", Live),
        ("pipeline.retry_max_s", Live),
        ("log.level", Live),
        ("log.format", Restart),
        ("log.dir", Restart),
        ("log.max_files", Restart),
        ("service.shutdown_timeout_s", Live),
        ("service.stall_timeout_s", Live),
        ("validation.allowed_types", Live),
        ("validation.max_bytes", Live),
        ("validation.clamd_socket", Live),
        // The start-up probe checked that this folder takes files; a file refused in the
        // meantime would otherwise go to a folder nobody checked.
        ("validation.quarantine_dir", Restart),
        ("metrics.listen", Restart),
    ]
};

/// Keys whose value may hold a secret: shown through `redact_url`, which keeps everything but
/// the password.
const URL_KEYS: &[&str] = &["database.url"];

/// One key whose value differs between the config in effect and the file just read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub key: String,
    pub class: KeyClass,
    /// The values as an operator reads them: `unset` for an absent optional key, a URL
    /// without its password.
    pub old: String,
    pub new: String,
}

/// The class of `key`; `None` for a key `KEYS` forgot, which the caller treats as `Restart`.
pub fn class_of(key: &str) -> Option<KeyClass> {
    KEYS.iter().find(|(known, _)| *known == key).map(|&(_, class)| class)
}

/// The keys `new` changes. A live key is compared with `applied`, the last config the daemon
/// took live; the others with `started`, the config it started with, so that a key waiting for
/// a restart is named again at each reload until the restart, or until the file says the
/// running value again.
pub fn changes(started: &Config, applied: &Config, new: &Config) -> Result<Vec<Change>, String> {
    Ok(compare(&leaves(started)?, &leaves(applied)?, &leaves(new)?))
}

pub(crate) type Leaves = BTreeMap<String, Value>;

fn compare(started: &Leaves, applied: &Leaves, new: &Leaves) -> Vec<Change> {
    new.iter()
        .filter_map(|(key, value)| {
            let class = class_of(key).unwrap_or(KeyClass::Restart);
            let before = if class == KeyClass::Live { applied } else { started };
            let old = before.get(key).unwrap_or(&Value::Null);
            (old != value).then(|| Change {
                key: key.clone(),
                class,
                old: shown(key, old),
                new: shown(key, value),
            })
        })
        .collect()
}

/// Every key of `config` by dotted path, with its value; an unset optional key is `null`. The
/// schema skips no field when serializing, so every key is here whatever the file says.
pub(crate) fn leaves(config: &Config) -> Result<Leaves, String> {
    // Every value came from TOML text, so paths are UTF-8 and serialize.
    let tree = serde_json::to_value(config).map_err(|e| format!("cannot compare the configs: {e}"))?;
    let mut leaves = BTreeMap::new();
    flatten(String::new(), tree, &mut leaves);
    Ok(leaves)
}

fn flatten(prefix: String, value: Value, into: &mut Leaves) {
    match value {
        Value::Object(table) => {
            for (key, value) in table {
                let path = if prefix.is_empty() { key } else { format!("{prefix}.{key}") };
                flatten(path, value, into);
            }
        }
        leaf => {
            into.insert(prefix, leaf);
        }
    }
}

fn shown(key: &str, value: &Value) -> String {
    match value {
        Value::Null => "unset".to_owned(),
        Value::String(text) if URL_KEYS.contains(&key) => redact_url(text),
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::LiveSettings;

    /// Every optional key set, so that a key serialized only when set would be seen too.
    const EVERY_KEY_SET: &str = r#"
        [watch]
        media_root = "/srv/media"
        missing_after_s = 60
        poll_interval_ms = 1000
        [database]
        url = "postgres://app:s3cret@db.example/ventas"
        [minio]
        endpoint = "https://s3.example"
        access_key = "AKIA"
        secret_key_file = "/etc/confronta-sync/secret"
        public_base_url = "https://files.example"
        ca_file = "/etc/ssl/private-ca.pem"
        proxy = "http://proxy.example:3128"
        server_side_encryption = "aws:kms"
        kms_key_id = "confrontas"
        retention_mode = "COMPLIANCE"
        retention_days = 3650
        [journal]
        path = "/var/lib/confronta-sync/journal.sqlite3"
        [log]
        dir = "/var/log/confronta-sync"
        [validation]
        clamd_socket = "/run/clamav/clamd.ctl"
        quarantine_dir = "/var/lib/confronta-sync/quarantine"
        [metrics]
        listen = "127.0.0.1:9464"
    "#;

    fn every_key_set() -> Config {
        Config::parse(EVERY_KEY_SET, Path::new("every-key.toml")).unwrap()
    }

    /// A value of the same type that differs from `value`.
    fn other(value: &Value) -> Value {
        match value {
            Value::Bool(b) => Value::Bool(!b),
            Value::Number(n) => Value::from(n.as_u64().expect("config numbers are unsigned") + 1),
            Value::String(text) => Value::String(format!("{text}x")),
            Value::Array(items) => Value::Array(items.iter().skip(1).cloned().collect()),
            Value::Null | Value::Object(_) => panic!("not a set leaf: {value}"),
        }
    }

    /// `config` as a tree, with the value at `key` changed.
    fn with_changed(config: &Config, key: &str) -> Value {
        let mut tree = serde_json::to_value(config).unwrap();
        let leaf = key.split('.').fold(&mut tree, |node, part| &mut node[part]);
        *leaf = other(leaf);
        tree
    }

    #[test]
    fn every_key_is_classified_and_every_class_names_a_key() {
        let keys: Vec<String> = leaves(&every_key_set()).unwrap().into_keys().collect();
        let unclassified: Vec<&String> = keys.iter().filter(|key| class_of(key).is_none()).collect();
        assert!(unclassified.is_empty(), "give these keys a class in config::reload::KEYS: {unclassified:?}");
        let stale: Vec<&str> =
            KEYS.iter().map(|(key, _)| *key).filter(|key| !keys.iter().any(|k| k == key)).collect();
        assert!(stale.is_empty(), "KEYS names keys the config does not have: {stale:?}");
        assert_eq!(KEYS.len(), keys.len(), "a key classified twice");
    }

    /// Each key changed alone is the one change a reload sees, with its class, whether the
    /// daemon started with the old value or took it live.
    #[test]
    fn a_change_to_any_one_key_is_seen_with_its_class() {
        let config = every_key_set();
        let before = leaves(&config).unwrap();
        for (key, class) in KEYS {
            let mut after = Leaves::new();
            flatten(String::new(), with_changed(&config, key), &mut after);
            let seen = compare(&before, &before, &after);
            let seen: Vec<(&str, KeyClass)> = seen.iter().map(|c| (c.key.as_str(), c.class)).collect();
            assert_eq!(seen, [(*key, *class)], "{key}");
        }
    }

    /// A key called live reaches what the daemon applies (the log level goes to the logger).
    #[test]
    fn every_live_key_reaches_the_live_settings() {
        let config = every_key_set();
        for (key, _) in KEYS.iter().filter(|(key, class)| *class == KeyClass::Live && *key != "log.level") {
            let tree = with_changed(&config, key);
            let changed: Config = serde_json::from_value(tree).unwrap();
            assert_ne!(LiveSettings::of(&changed), LiveSettings::of(&config), "{key} is not applied live");
        }
    }

    #[test]
    fn restart_keys_are_compared_with_the_started_config_and_passwords_never_shown() {
        let started = every_key_set();
        let mut new = started.clone();
        new.database.url = "postgres://app:other-s3cret@db2.example/ventas".into();
        new.validation.max_bytes = 1000;
        let seen = changes(&started, &started, &new).unwrap();
        let keys: Vec<(&str, KeyClass)> = seen.iter().map(|c| (c.key.as_str(), c.class)).collect();
        assert_eq!(keys, [("database.url", KeyClass::Restart), ("validation.max_bytes", KeyClass::Live)]);
        assert!(!format!("{seen:?}").contains("s3cret"), "{seen:?}");
        // Applied since: the live key is no news, the restart key still is.
        let again = changes(&started, &new, &new).unwrap();
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].key, "database.url");
        assert_eq!(again[0].old, redact_url("postgres://app:s3cret@db.example/ventas"));
    }
}
