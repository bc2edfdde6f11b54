//! The daemon's config as a test writes it: `tests/fixtures/config.template.toml` (the template
//! the Python harnesses fill too) with its placeholders filled, then keys set by dotted name,
//! so no test writes TOML by hand.

use std::path::{Path, PathBuf};

use super::S3Env;

const TEMPLATE: &str = include_str!("../fixtures/config.template.toml");

/// A config file being built: `TestConfig::from_template(..).set("pipeline.max_in_flight", 4)
/// .set("database.lock_timeout_ms", 500).write()`.
#[derive(Debug, Clone)]
pub struct TestConfig {
    table: toml::Table,
    path: PathBuf,
}

/// Where one daemon's files and servers are: what the template's placeholders stand for.
pub struct Placement<'a> {
    pub media_root: &'a Path,
    pub database_url: String,
    pub s3: &'a S3Env,
    /// Written with the S3 secret key (mode 0600) by `TestConfig::placed`.
    pub secret_key_file: &'a Path,
    /// The object-name prefix that keeps a test's objects apart in the shared bucket.
    pub prefix: &'a str,
    pub journal: &'a Path,
}

impl TestConfig {
    /// A daemon's config at test speeds (`quick`) for `placement`, to be written at `path`; also
    /// writes the secret key file it names.
    pub fn placed(path: PathBuf, placement: &Placement) -> TestConfig {
        // The daemon refuses a secret key file other users can read.
        super::write_private(placement.secret_key_file, &placement.s3.secret_key);
        quick(TestConfig::from_template(
            path,
            &[
                ("MEDIA_ROOT", placement.media_root.display().to_string()),
                ("DATABASE_URL", placement.database_url.clone()),
                ("S3_ENDPOINT", placement.s3.endpoint.clone()),
                ("S3_BUCKET", placement.s3.bucket.clone()),
                ("S3_ACCESS_KEY", placement.s3.access_key.clone()),
                ("SECRET_KEY_FILE", placement.secret_key_file.display().to_string()),
                ("PREFIX", placement.prefix.to_owned()),
                ("JOURNAL", placement.journal.display().to_string()),
            ],
        ))
    }

    /// The template with each `@NAME@` replaced by its value in `fill`, to be written at `path`.
    /// A placeholder left unfilled is a bug in the caller, not a config the daemon should see.
    pub fn from_template(path: PathBuf, fill: &[(&str, String)]) -> TestConfig {
        let mut table: toml::Table =
            toml::from_str(TEMPLATE).expect("tests/fixtures/config.template.toml parses");
        for (name, value) in table.iter_mut().flat_map(|(_, keys)| keys.as_table_mut().unwrap().iter_mut()) {
            if let toml::Value::String(text) = value {
                for (placeholder, filler) in fill {
                    *text = text.replace(&format!("@{placeholder}@"), filler);
                }
                assert!(
                    !has_placeholder(text),
                    "config template key {name}: placeholder left unfilled in {text:?}"
                );
            }
        }
        TestConfig { table, path }
    }

    /// Sets `table.key` (the table is made if the template has none), replacing any value.
    pub fn set(mut self, dotted: &str, value: impl Into<toml::Value>) -> TestConfig {
        let (table, key) = dotted.rsplit_once('.').unwrap_or_else(|| panic!("{dotted:?} is not table.key"));
        let section = self.table.entry(table).or_insert_with(|| toml::Value::Table(toml::Table::new()));
        section.as_table_mut().unwrap().insert(key.to_owned(), value.into());
        self
    }

    /// Removes `table.key`, so the daemon's default (or its absence) applies.
    pub fn remove(mut self, dotted: &str) -> TestConfig {
        let (table, key) = dotted.rsplit_once('.').unwrap_or_else(|| panic!("{dotted:?} is not table.key"));
        if let Some(section) = self.table.get_mut(table).and_then(toml::Value::as_table_mut) {
            section.remove(key);
        }
        self
    }

    /// The daemon's shipped timers: `quick`'s settings removed, for the tests whose guarantee
    /// must hold at the defaults (in the first minutes after start, too).
    pub fn at_defaults(self) -> TestConfig {
        QUICK_KEYS.iter().fold(self, |config, key| config.remove(key))
    }

    /// The value at `table.key`, if set.
    pub fn get(&self, dotted: &str) -> Option<&toml::Value> {
        let (table, key) = dotted.rsplit_once('.')?;
        self.table.get(table)?.get(key)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn toml(&self) -> String {
        toml::to_string(&self.table).expect("a test config serialises")
    }

    /// Writes the file with mode 0600 (the daemon refuses credentials other users can read)
    /// and returns its path.
    pub fn write(&self) -> PathBuf {
        super::write_private(&self.path, &self.toml());
        self.path.clone()
    }
}

/// Whether `text` still holds an `@NAME@` (a database URL's `user@host` is not one).
fn has_placeholder(text: &str) -> bool {
    text.split('@').skip(1).collect::<Vec<_>>().split_last().is_some_and(|(_, inner)| {
        inner.iter().any(|part| !part.is_empty() && part.chars().all(|c| c.is_ascii_uppercase() || c == '_'))
    })
}

/// Test speeds every harness's daemon runs with unless a test sets its own: files settle in
/// 100 ms, a reconcile pass every 2 s, and retries start at 200 ms and stop growing at 2 s.
pub fn quick(config: TestConfig) -> TestConfig {
    config
        .set("watch.settle_ms", 100)
        .set("watch.reconcile_interval_s", 2)
        .set("pipeline.retry_initial_ms", 200)
        .set("pipeline.retry_max_s", 2)
}

/// The keys `quick` sets.
const QUICK_KEYS: [&str; 4] =
    ["watch.settle_ms", "watch.reconcile_interval_s", "pipeline.retry_initial_ms", "pipeline.retry_max_s"];
