//! The reference tables of the docs, made from the code they describe: the config keys (with
//! their defaults and what a reload does with each), the exit codes, the failure reasons and the
//! metrics. `tests/operator/docs_reference.rs` fails when a committed doc's generated region differs from
//! `render`, so the docs cannot drift from the code.

use std::fmt::Write;
use std::path::Path;

use serde_json::Value;

use crate::config::reload::{self, KeyClass};
use crate::config::{Config, MINIMAL};
use crate::error::Reason;
use crate::{exit, telemetry};

/// One generated table; its name is what the docs' markers say
/// (`<!-- generated: reasons -->` … `<!-- end generated -->`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Config,
    ExitCodes,
    Reasons,
    Metrics,
}

impl Section {
    pub const ALL: [Section; 4] = [Section::Config, Section::ExitCodes, Section::Reasons, Section::Metrics];

    /// The name in the markers.
    pub fn name(self) -> &'static str {
        match self {
            Section::Config => "config",
            Section::ExitCodes => "exit-codes",
            Section::Reasons => "reasons",
            Section::Metrics => "metrics",
        }
    }

    /// The section named `name`, `None` for any other text.
    pub fn parse(name: &str) -> Option<Section> {
        Section::ALL.into_iter().find(|section| section.name() == name)
    }
}

/// The table of `section`, as Markdown ending in a newline.
pub fn render(section: Section) -> String {
    match section {
        Section::Config => config_keys(),
        Section::ExitCodes => exit_codes(),
        Section::Reasons => reasons(),
        Section::Metrics => metrics(),
    }
}

/// The type and meaning of every key of `config::reload::KEYS`, in its order. A key added to the
/// schema fails `reload`'s test until `KEYS` classifies it, then this module's test until it is
/// described here.
const KEY_DOCS: &[(&str, &str, &str)] = &[
    ("watch.media_root", "path", "Django's `MEDIA_ROOT`; the `confronta` column is relative to it"),
    ("watch.dir", "string", "the FileField's `upload_to`, relative to `media_root`, watched recursively"),
    ("watch.settle_ms", "integer (ms)", "a file found without a close event (walk, poller, reconcile) is taken once its mtime is this old; one the watcher saw closed or renamed in is taken at once"),
    ("watch.reconcile_interval_s", "integer (s)", "how often the table is asked for rows still pointing at a local file"),
    ("watch.orphan_after_s", "integer (s)", "a file no row points at for this long is reported as an orphan (never deleted)"),
    ("watch.owner_wait_s", "integer (s)", "a file only stale rows name (rows seen naming its path while no file stood there) waits this long for its own row, then is reported as an orphan with reason `ambiguous_owner` (`confronta-sync adopt` settles it)"),
    ("watch.missing_after_s", "integer (s)", "retired (replaced by `owner_wait_s`): accepted and ignored, with a warning at start-up"),
    ("watch.poll_interval_ms", "integer (ms)", "scan the folder at this interval instead of inotify (NFS, shared mounts); unset: inotify"),
    ("database.url", "string", "`postgres://…` or `sqlite:///abs/path`; with a password in it (`user:password@` or `?password=`) the config file must not be readable by others; TLS with libpq's `?sslmode=require|verify-ca|verify-full&sslrootcert=/path/ca.pem`"),
    ("database.table", "string", "the sales table"),
    ("database.columns.id", "string", "the row's id column"),
    ("database.columns.numero", "string", "the sale's number, used in object names (`{numero}`)"),
    ("database.columns.confronta", "string", "the FileField: the file's path relative to `media_root`"),
    ("database.columns.minio_url", "string", "the object's URL, `{public_base_url}/{bucket}/{object}`"),
    ("database.columns.minio_object_name", "string", "the object's name in the bucket"),
    ("database.columns.subido_a_minio", "string", "true once the file is in the bucket"),
    ("database.columns.sha256", "string", "the file's SHA-256, hex"),
    ("database.columns.sync_error", "string", "why the daemon refused the row's file (written with `confronta` cleared); NULL once a file moves"),
    ("database.columns.assigned_at", "string", "when the venta was last given a new file (the companion's `save()` sets it): how the daemon tells a sale's own new upload from a name reused by another sale"),
    ("database.connect_timeout_s", "integer (s)", "PostgreSQL: opening a connection that takes longer counts as the database being down"),
    ("database.statement_timeout_ms", "integer (ms)", "PostgreSQL: the server cancels a longer statement; a call with no answer by then plus 2 s (a frozen peer, a hung pooler) drops its connection and marks the database down"),
    ("database.lock_timeout_ms", "integer (ms)", "PostgreSQL: how long a compare-and-set waits for a row another transaction holds locked; then only that file is retried, with backoff"),
    ("database.keepalive_idle_s", "integer (s)", "PostgreSQL: TCP keepalive probes after this long idle (then every third of it, three probes)"),
    ("database.pool_size", "integer", "PostgreSQL: connections for the compare-and-sets, one write each; the daemon opens two more (row lookups and claims; reconcile and operator reads)"),
    ("minio.endpoint", "URL", "the object store, `http://` or `https://`"),
    ("minio.region", "string", "the region requests are signed for"),
    ("minio.bucket", "string", "the bucket"),
    ("minio.access_key", "string", "the access key"),
    ("minio.secret_key_file", "path", "the secret key, in a file others cannot read (root:confronta-sync 0640); `CONFRONTA_SYNC_SECRET_KEY` wins when set"),
    ("minio.public_base_url", "URL", "base of the stored URL, `{public_base_url}/{bucket}/{object}`; unset: `endpoint`"),
    ("minio.object_name", "template", "the object name template"),
    ("minio.multipart_threshold_bytes", "integer (bytes)", "larger files go up in parts"),
    ("minio.part_size_bytes", "integer (bytes)", "the part size (5 MiB to 5 GiB); a file that would need more than S3's 10,000 parts goes up in larger ones"),
    ("minio.conditional_writes", "`auto` or `off`", "`auto`: where the start-up probe finds `If-None-Match: *` honoured (MinIO), small files go up with it instead of a stat before each PUT; `off`: always stat first"),
    ("minio.ca_file", "path", "PEM file of a private CA for an `https://` endpoint, trusted besides the system's store"),
    ("minio.proxy", "URL", "HTTP proxy to the endpoint; unset, none is used whatever `HTTP_PROXY`/`HTTPS_PROXY`/`ALL_PROXY` say"),
    ("minio.connect_timeout_s", "integer (s)", "opening a connection to the endpoint that takes longer counts as the store being down"),
    ("minio.min_upload_bytes_per_s", "integer (bytes/s)", "a PUT of n bytes gets 20 s plus n at this rate to be answered (at least 1024)"),
    ("minio.server_side_encryption", "`AES256` or `aws:kms`", "every upload asks for SSE-S3 or SSE-KMS, an answer without it is a failure, `verify` reports objects stored without it (legal-retention.md)"),
    ("minio.kms_key_id", "string", "the KMS key of `server_side_encryption = \"aws:kms\"`; required with it, refused without"),
    ("minio.retention_mode", "`COMPLIANCE` or `GOVERNANCE`", "the object-lock mode of every upload, with `retention_days`; the bucket must have object lock, or `check` and start-up refuse"),
    ("minio.retention_days", "integer (days)", "how long each object is retained from its upload (1 to 36500)"),
    ("minio.keep_previous_objects", "bool", "`true`: a corrected venta's earlier object is never deleted"),
    ("journal.path", "path", "the local SQLite journal"),
    ("pipeline.max_in_flight", "integer", "files processed at once"),
    ("pipeline.retry_initial_ms", "integer (ms)", "first backoff after a transient failure; it doubles up to `retry_max_s` (neither 0, the first at most the second)"),
    ("pipeline.retry_max_s", "integer (s)", "longest backoff; an orphan is looked at again this often"),
    ("log.level", "string", "`error`, `warn`, `info`, `debug`, `trace` or a full filter; `RUST_LOG` wins when set"),
    ("log.format", "`text` or `json`", "the log line format"),
    ("log.dir", "path", "also write daily-rotated files (`confronta-sync.<date>.log`) here; unset: stderr only"),
    ("log.max_files", "integer", "rotated files kept"),
    ("service.shutdown_timeout_s", "integer (s)", "after SIGTERM, how long in-flight files get to reach a journaled state"),
    ("service.stall_timeout_s", "integer (s)", "how long files may be due while nothing progresses before systemd's watchdog is no longer fed (at least 30)"),
    ("validation.allowed_types", "list of strings", "allowed types, checked by extension and magic bytes; `[]` accepts any"),
    ("validation.max_bytes", "integer (bytes)", "larger files are quarantined; `0` means no limit (S3's 5 TiB per object still applies)"),
    ("validation.clamd_socket", "path", "clamd's Unix socket: when set, every file is scanned before upload"),
    ("validation.quarantine_dir", "path", "where refused files go (folders 0700, files 0600); unset: `quarantine/` beside `journal.path`; must be outside `media_root`"),
    ("metrics.listen", "address", "address of the Prometheus `/metrics` endpoint; unset: off"),
];

/// The keys `config::MINIMAL` sets, which have no default.
const REQUIRED_KEYS: [&str; 5] =
    ["watch.media_root", "database.url", "minio.endpoint", "minio.access_key", "journal.path"];

fn config_keys() -> String {
    let config = Config::parse(MINIMAL, Path::new("required.toml")).expect("the required keys alone load");
    let defaults = reload::leaves(&config).expect("a parsed config serializes");
    let mut out = String::from("| key | type | default | on reload | meaning |\n|---|---|---|---|---|\n");
    for (key, class) in reload::KEYS {
        let (_, kind, meaning) = KEY_DOCS
            .iter()
            .find(|(documented, _, _)| documented == key)
            .unwrap_or_else(|| panic!("{key} has no entry in reference::KEY_DOCS"));
        let default = if REQUIRED_KEYS.contains(key) {
            "(required)".to_owned()
        } else {
            shown(defaults.get(*key).unwrap_or(&Value::Null))
        };
        let class = match class {
            KeyClass::Live => "live",
            KeyClass::Restart => "restart",
            KeyClass::Retired => "retired",
        };
        let _ = writeln!(out, "| `{key}` | {kind} | {default} | {class} | {} |", cell(meaning));
    }
    out
}

/// A default as TOML would say it.
fn shown(value: &Value) -> String {
    match value {
        Value::Null => "unset".to_owned(),
        Value::String(text) => format!("`\"{text}\"`"),
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(|item| item.to_string()).collect();
            format!("`[{}]`", items.join(", "))
        }
        other => format!("`{other}`"),
    }
}

/// Text safe inside a table cell: a `|` would end it.
fn cell(text: &str) -> String {
    text.replace('|', "\\|")
}

fn exit_codes() -> String {
    let mut out = String::from("| code | meaning |\n|---|---|\n");
    for (code, meaning) in exit::CODES {
        let _ = writeln!(out, "| {code} | {} |", cell(meaning));
    }
    out
}

fn reasons() -> String {
    let mut out = String::from("| reason | class | meaning |\n|---|---|---|\n");
    for reason in Reason::all() {
        let _ = writeln!(
            out,
            "| `{}` | {} | {} |",
            reason.as_str(),
            reason.class().as_str(),
            cell(reason.meaning())
        );
    }
    out
}

fn metrics() -> String {
    let mut out = String::from("| metric | type | labels | help |\n|---|---|---|---|\n");
    for metric in telemetry::METRICS {
        let labels: Vec<String> = metric
            .labels
            .iter()
            .map(|label| {
                let values: Vec<String> =
                    telemetry::label_values(label).iter().map(|value| format!("`{value}`")).collect();
                format!("`{label}`: {}", values.join(", "))
            })
            .collect();
        let labels = if labels.is_empty() { "none".to_owned() } else { labels.join("; ") };
        let kind = match metric.unit {
            Some(unit) => format!("{} ({})", metric.kind.as_str(), unit.as_str()),
            None => metric.kind.as_str().to_owned(),
        };
        let _ = writeln!(out, "| `{}` | {kind} | {labels} | {} |", metric.name, cell(metric.help));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every classified key is described, once, and nothing else is.
    #[test]
    fn every_config_key_is_described_once() {
        let described: Vec<&str> = KEY_DOCS.iter().map(|(key, _, _)| *key).collect();
        let classified: Vec<&str> = reload::KEYS.iter().map(|(key, _)| *key).collect();
        assert_eq!(described, classified, "KEY_DOCS must list config::reload::KEYS, in its order");
    }

    /// The required keys are exactly those the schema gives no default: dropping any one of
    /// them from the minimal config fails to load.
    #[test]
    fn the_required_keys_are_the_ones_without_a_default() {
        for key in REQUIRED_KEYS {
            let name = key.rsplit('.').next().unwrap();
            let without: String = MINIMAL
                .lines()
                .filter(|line| !line.trim_start().starts_with(&format!("{name} =")))
                .collect::<Vec<_>>()
                .join("\n");
            assert!(Config::parse(&without, Path::new("t.toml")).is_err(), "{key} has a default");
        }
    }

    #[test]
    fn every_section_renders_a_table_and_reads_back_by_name() {
        for section in Section::ALL {
            assert_eq!(Section::parse(section.name()), Some(section));
            assert!(render(section).starts_with("| "), "{section:?}");
        }
        let reasons = render(Section::Reasons);
        for reason in Reason::all() {
            assert!(reasons.contains(&format!("| `{}` |", reason.as_str())), "{reason:?}");
        }
    }
}
