//! How a run ends: the exit codes (documented in the README and in `--help`), and `Exit`,
//! the causes of a failed run, which get their codes in one match.

use crate::commands::CommandError;
use crate::config::ConfigError;
use crate::error::Reason;
use crate::pipeline::Failure;

/// Everything done.
pub const OK: i32 = 0;
/// The run finished but some files failed (rescan), or a fatal error stopped the daemon.
pub const FAILURES: i32 = 1;
/// Bad command line or configuration.
pub const CONFIG: i32 = 2;
/// The database is unreachable, refuses the credentials, lacks the table or a column, or has a
/// column of a type the daemon cannot read or write.
pub const DATABASE: i32 = 3;
/// The object store is unreachable, refuses the credentials, or lacks the bucket.
pub const OBJECT_STORE: i32 = 4;
/// The journal is locked by another daemon or cannot be opened, or an fsync of it failed.
pub const JOURNAL: i32 = 5;
/// The log destination cannot be set up.
pub const LOGGING: i32 = 6;

/// Every exit code with what it means to an operator, in code order: `docs/exit-codes.md` and
/// `--help`'s closing line are made from it (a test checks both).
pub const CODES: &[(i32, &str)] = &[
    (OK, "done: the daemon stopped cleanly; a rescan, check or verify found nothing wrong"),
    (
        FAILURES,
        "some files failed or were kept (rescan), objects mismatched (verify), an operator command refused (adopt, repair, explain), or a fatal error stopped the daemon",
    ),
    (
        CONFIG,
        "bad command line or configuration, a problem `check` found on the host, a config or secret file that group or others can write, or a database password or secret key file that others can read",
    ),
    (DATABASE, "the database is unreachable, refuses the credentials, or lacks the table or a column (or has one of the wrong type)"),
    (OBJECT_STORE, "the object store is unreachable, refuses the credentials, lacks the bucket, or failed the start-up probe"),
    (
        JOURNAL,
        "the journal is locked by another process or cannot be opened (it is left untouched), or an fsync of it failed",
    ),
    (LOGGING, "the log folder cannot be used"),
];

/// Why a run ends with an error, by cause; each message names what failed.
#[derive(Debug, thiserror::Error)]
pub enum Exit {
    /// The configuration, or something it names (the watched folder, the metrics address), is
    /// unusable.
    #[error("{0}")]
    Config(String),
    #[error("{0}")]
    Logging(String),
    /// Connecting to the database or checking its table failed.
    #[error("{0}")]
    Database(String),
    /// Connecting to the object store, its bucket or the start-up probe failed.
    #[error("{0}")]
    ObjectStore(String),
    #[error("{0}")]
    Journal(String),
    #[error(transparent)]
    Command(#[from] CommandError),
    /// A fatal failure stopped the daemon or the rescan.
    #[error("{}: {}", .0.reason, .0.message)]
    Fatal(Failure),
    /// Anything else: the runtime, the signal handlers, writing the output.
    #[error("{0}")]
    Failed(String),
}

impl Exit {
    /// The one place a cause gets its exit code (documented in `exit` and the README).
    pub fn code(&self) -> i32 {
        match self {
            Exit::Config(_) => CONFIG,
            Exit::Logging(_) => LOGGING,
            Exit::Database(_)
            | Exit::Command(CommandError::Database(_))
            | Exit::Fatal(Failure {
                reason: Reason::DbUnavailable | Reason::DbRefused | Reason::DbSchema | Reason::DbRowLocked,
                ..
            }) => DATABASE,
            Exit::ObjectStore(_) | Exit::Command(CommandError::Store(_)) => OBJECT_STORE,
            Exit::Journal(_)
            | Exit::Command(CommandError::Journal(_))
            | Exit::Fatal(Failure { reason: Reason::Journal, .. }) => JOURNAL,
            Exit::Command(CommandError::Invalid(_)) | Exit::Fatal(_) | Exit::Failed(_) => FAILURES,
        }
    }
}

impl From<ConfigError> for Exit {
    fn from(e: ConfigError) -> Self {
        Exit::Config(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::Config;
    use crate::db::{DbError, DbErrorKind};
    use crate::journal::JournalError;
    use crate::store::{StoreError, StoreErrorKind};

    /// Issue 15: the exit code follows the cause, never the text of a reason.
    #[test]
    fn each_cause_exits_with_its_documented_code() {
        let store_error = || StoreError { kind: StoreErrorKind::Unavailable, message: "down".into() };
        let journal_error = || JournalError::Io { path: "/j".into(), message: "disk full".into() };
        let fatal = |reason| Exit::Fatal(Failure::new(reason, "stopped"));
        let cases = [
            (Exit::from(Config::parse("[nope]", Path::new("t.toml")).unwrap_err()), CONFIG),
            (Exit::Config("cannot watch /m".into()), CONFIG),
            (Exit::Logging("cannot set up logging".into()), LOGGING),
            (Exit::Database("no column".into()), DATABASE),
            (Exit::ObjectStore("bucket missing".into()), OBJECT_STORE),
            (Exit::Journal("locked".into()), JOURNAL),
            (CommandError::from(DbError::new(DbErrorKind::Unavailable, "down")).into(), DATABASE),
            (CommandError::from(store_error()).into(), OBJECT_STORE),
            (CommandError::from(journal_error()).into(), JOURNAL),
            (CommandError::Invalid("venta 9 does not exist".into()).into(), FAILURES),
            (fatal(Reason::DbSchema), DATABASE),
            (fatal(Reason::DbUnavailable), DATABASE),
            (fatal(Reason::S3Refused), FAILURES),
            (fatal(Reason::Journal), JOURNAL),
            (Exit::Failed("cannot install signal handlers".into()), FAILURES),
        ];
        for (cause, code) in cases {
            assert_eq!(cause.code(), code, "{cause:?}");
        }
        assert_eq!(fatal(Reason::DbSchema).to_string(), "db_schema: stopped");
        let documented: Vec<i32> = CODES.iter().map(|&(code, _)| code).collect();
        assert_eq!(
            documented,
            [OK, FAILURES, CONFIG, DATABASE, OBJECT_STORE, JOURNAL, LOGGING],
            "CODES lists every code once, in order"
        );
    }

    /// `--help` ends with every code `CODES` documents, so the two say the same.
    #[test]
    fn the_help_names_every_exit_code() {
        use clap::CommandFactory;
        let help =
            crate::app::Cli::command().get_after_help().map(|text| text.to_string()).unwrap_or_default();
        for (code, _) in CODES {
            assert!(help.contains(&format!(" {code} ")), "--help does not name exit code {code}: {help}");
        }
    }
}
