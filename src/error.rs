//! How a failure is handled: the one classification every edge's error maps onto.

/// What the pipeline does after a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    /// Try again later with backoff: the network, a 5xx, a lost database connection.
    Transient,
    /// Give up on this file and keep it where it is: unreadable, invalid, refused for good.
    Rejected,
    /// Stop the daemon: the configuration or the environment is wrong for every file.
    Fatal,
}

impl ErrorClass {
    /// The label in logs, metrics and the journal's `error_class` column.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::Transient => "transient",
            ErrorClass::Rejected => "rejected",
            ErrorClass::Fatal => "fatal",
        }
    }

    /// The class `as_str` wrote, `None` for any other text.
    pub fn parse(text: &str) -> Option<ErrorClass> {
        match text {
            "transient" => Some(ErrorClass::Transient),
            "rejected" => Some(ErrorClass::Rejected),
            "fatal" => Some(ErrorClass::Fatal),
            _ => None,
        }
    }
}

/// Implemented by each edge's error type so callers decide without matching on strings.
pub trait Classify {
    fn class(&self) -> ErrorClass;
}

/// Why a file did not move: the stable label that logs, the `reason` metric label, the
/// journal's `last_error` and the rescan summary carry. Code decides on the variant, never on
/// its text, so renaming a label cannot change what happens to a file or an exit code.
///
/// The labels come from the variant names (`strum`, snake case), so a new variant has its label
/// and is in `Reason::iter()` without a table to keep in step.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    strum::EnumIter,
    strum::IntoStaticStr,
    strum::EnumString,
    strum::Display,
)]
#[strum(serialize_all = "snake_case")]
pub enum Reason {
    /// A journal write failed (disk full?): the file waits and the scheduler takes no new one.
    Journal,
    /// The path crosses a symlinked folder: whatever is behind it is never touched.
    SymlinkedFolder,
    /// A symlink, FIFO or device where a file was expected.
    NotRegular,
    LocalIo,
    /// The file changed while or after it was hashed.
    LocalChanged,
    /// The file vanished while it was being uploaded.
    LocalMissing,
    /// A row names a local file that does not exist (rescan, reconcile).
    LocalFileMissing,
    /// No row names the file (rescan).
    NoRow,
    /// Only a row that named the path while its file was missing could own it, and this
    /// database cannot tell whether that row was written since.
    AmbiguousOwner,
    SeveralRows,
    /// The row was deleted or its confronta replaced while the file was in flight.
    RowChanged,
    /// The row changed under a compare-and-set but still names the path: match again.
    RowMoved,
    UrlTooLong,
    ObjectNameTooLong,
    /// The validation could not run yet (clamd unreachable).
    ValidationPending,
    Unscannable,
    Quarantined,
    /// A refused file could not be moved to quarantine yet (a read-only or full folder): its
    /// refusal is tried again until it is.
    QuarantineFailed,
    /// Another object with other content already stands at the name.
    ObjectConflict,
    /// The recorded object now holds other bytes.
    ObjectChanged,
    /// The recorded object is gone and the local file cannot restore it.
    ObjectMissing,
    VerifyMismatch,
    VerifyMissing,
    S3Unavailable,
    S3NoBucket,
    S3AccessDenied,
    S3ChecksumRejected,
    S3Refused,
    DbUnavailable,
    DbRefused,
    DbSchema,
    /// Another transaction holds the row: this file alone waits.
    DbRowLocked,
    /// The file's run panicked (a bug): contained, counted and retried later.
    TaskPanicked,
}

impl Reason {
    /// The label; these strings are what dashboards, alerts and journal rows know.
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// The reason whose label is `text`, `None` for any other text.
    pub fn parse(text: &str) -> Option<Reason> {
        text.parse().ok()
    }

    /// Every reason.
    pub fn all() -> impl Iterator<Item = Reason> {
        <Reason as strum::IntoEnumIterator>::iter()
    }

    /// What the label tells an operator, in one line: the reference table in `docs/reasons.md`
    /// is generated from it (`reference`), and the match has no catch-all, so a new reason does
    /// not compile until it says what it means.
    pub fn meaning(self) -> &'static str {
        match self {
            Reason::Journal => "a journal write failed (a full disk?): the file waits and no new file is taken until the journal can be written",
            Reason::SymlinkedFolder => "the path crosses a symlinked folder inside the watched one: nothing behind the link is read, moved or deleted",
            Reason::NotRegular => "a symlink, FIFO or device stands where a file was expected: it is never followed or read",
            Reason::LocalIo => "reading, hashing or unlinking the local file failed (permissions, an I/O error): retried with backoff",
            Reason::LocalChanged => "the file changed while or after it was hashed: it is hashed again",
            Reason::LocalMissing => "the file vanished while it was being uploaded",
            Reason::LocalFileMissing => "a row names a local file that does not exist (rescan, reconcile): the row is left untouched",
            Reason::NoRow => "no row names the file (rescan): it is kept, and reported as an orphan after `watch.orphan_after_s`",
            Reason::AmbiguousOwner => "only rows seen naming the path while no file stood there name it: it waits for its own row, then `confronta-sync adopt` settles it",
            Reason::SeveralRows => "more than one venta names the file: no sale gets it until only one does",
            Reason::RowChanged => "the row was deleted or given another file while this one was in flight: the file is kept, the object left for the orphan report",
            Reason::RowMoved => "the row changed under the compare-and-set but still names the path: the file is matched again",
            Reason::UrlTooLong => "the object's URL does not fit the `confronta_minio_url` column",
            Reason::ObjectNameTooLong => "the object's name does not fit the `confronta_minio_object_name` column",
            Reason::ValidationPending => "the validation cannot run yet (clamd unreachable): the file waits, nothing goes up unscanned",
            Reason::Unscannable => "clamd cannot scan the file (larger than its `StreamMaxLength`, say): it is kept in place",
            Reason::Quarantined => "the file failed `[validation]` (type, size, clamd): its row stops naming it and it moved to the quarantine folder",
            Reason::QuarantineFailed => "a refused file could not be moved to quarantine yet (a full or read-only folder): tried again until it is",
            Reason::ObjectConflict => "an object with other content already stands at the name: it is never overwritten",
            Reason::ObjectChanged => "the recorded object now holds other bytes",
            Reason::ObjectMissing => "the recorded object is gone and the local file cannot restore it",
            Reason::VerifyMismatch => "the uploaded object's size or SHA-256 differs from the file's: uploaded again",
            Reason::VerifyMissing => "the uploaded object was not found when verified: uploaded again",
            Reason::S3Unavailable => "the object store did not answer (network, timeout, 5xx): retried with backoff",
            Reason::S3NoBucket => "the bucket does not exist",
            Reason::S3AccessDenied => "the object store refused the credentials or the request (403)",
            Reason::S3ChecksumRejected => "the object store refused the upload's SHA-256: the bytes changed on the way or on disk",
            Reason::S3Refused => "the object store refused the request for good (another 4xx)",
            Reason::DbUnavailable => "the database did not answer (connection lost, timeout): retried with backoff",
            Reason::DbRefused => "the database refused the request (a permission revoked, 42501): logged and journaled once per file version",
            Reason::DbSchema => "the table or a column is missing or of a type the daemon cannot use: the daemon stops (exit 3)",
            Reason::DbRowLocked => "another transaction holds the row past `database.lock_timeout_ms`: this file alone waits",
            Reason::TaskPanicked => "the file's run panicked (a bug): contained, counted in `confronta_task_panics_total` and retried later",
        }
    }

    /// How the pipeline treats a failure for this reason where the reason alone decides
    /// (`Pipeline::fail`): *rejected* keeps the file, *transient* retries it, *fatal* stops.
    /// A call site that knows more (a database refusal with an upload under way) may retry a
    /// rejected reason; each edge's `From` gives the same class as the edge's error.
    pub fn class(self) -> ErrorClass {
        match self {
            Reason::Journal
            | Reason::LocalIo
            | Reason::LocalChanged
            | Reason::LocalMissing
            | Reason::LocalFileMissing
            | Reason::RowMoved
            | Reason::ValidationPending
            | Reason::QuarantineFailed
            | Reason::VerifyMismatch
            | Reason::VerifyMissing
            | Reason::S3Unavailable
            | Reason::S3NoBucket
            | Reason::S3AccessDenied
            | Reason::S3ChecksumRejected
            | Reason::DbUnavailable
            | Reason::DbRowLocked
            | Reason::TaskPanicked => ErrorClass::Transient,
            Reason::SymlinkedFolder
            | Reason::NotRegular
            | Reason::NoRow
            | Reason::AmbiguousOwner
            | Reason::SeveralRows
            | Reason::RowChanged
            | Reason::UrlTooLong
            | Reason::ObjectNameTooLong
            | Reason::Unscannable
            | Reason::Quarantined
            | Reason::ObjectConflict
            | Reason::ObjectChanged
            | Reason::ObjectMissing
            | Reason::S3Refused
            | Reason::DbRefused => ErrorClass::Rejected,
            Reason::DbSchema => ErrorClass::Fatal,
        }
    }
}

/// A named point where the crash and race tests can intervene. With the `failpoints` feature,
/// `FAILPOINTS=before_record=return(3000)` pauses 3000 ms there and
/// `FAILPOINTS=after_upload=return(kill)` kills the process on the spot with SIGKILL, exactly as
/// `kill -9` would, and `FAILPOINTS=before_upload=1*return(panic)` panics there once. Compiles to
/// nothing without the feature.
pub async fn pause_point(name: &str) {
    if let Some(pause) = failpoint_action(name) {
        tokio::time::sleep(pause).await;
    }
}

/// `pause_point` for code on a blocking thread, with the same actions: a pause, as
/// `FAILPOINTS=walk_entry=return(200)`, which stands in for a slow disk, a kill, as
/// `quarantine_moved=return(kill)`, or a panic.
pub fn pause_point_blocking(name: &str) {
    if let Some(pause) = failpoint_action(name) {
        std::thread::sleep(pause);
    }
}

/// Carries out the failpoint `name`'s kill or panic; a pause is returned for the caller to
/// wait out its own way (a task sleeps, a blocking thread blocks).
fn failpoint_action(name: &str) -> Option<std::time::Duration> {
    #[cfg(feature = "failpoints")]
    {
        let action: Option<String> = fail::eval(name, |arg| arg.unwrap_or_default());
        match action.as_deref() {
            None => None,
            Some("panic") => panic!("panicked by failpoint {name}"),
            Some("kill") => {
                tracing::warn!(failpoint = name, "killed by failpoint");
                use rustix::process::{getpid, kill_process, Signal};
                let _ = kill_process(getpid(), Signal::KILL);
                None
            }
            Some(ms) => {
                let ms: u64 = ms.parse().unwrap_or(0);
                tracing::debug!(failpoint = name, ms, "paused by failpoint");
                Some(std::time::Duration::from_millis(ms))
            }
        }
    }
    #[cfg(not(feature = "failpoints"))]
    {
        let _ = name;
        None
    }
}

/// Checks that each edge error gives its reason (its class is the reason's, by construction).
#[cfg(test)]
pub(crate) fn check_reasons<E>(cases: impl IntoIterator<Item = (E, Reason)>)
where
    E: Classify + std::fmt::Debug,
    for<'a> Reason: From<&'a E>,
{
    for (error, reason) in cases {
        assert_eq!(Reason::from(&error), reason, "{error:?}");
        assert_eq!(reason.class(), error.class(), "{error:?}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each label reads back as its reason, and no two reasons share one: the strings are what
    /// metrics, logs and journal rows already hold.
    #[test]
    fn every_reason_has_its_own_label_and_reads_back() {
        let mut seen = std::collections::HashSet::new();
        for reason in Reason::all() {
            assert!(seen.insert(reason.as_str()), "{reason:?} shares the label {}", reason.as_str());
            assert_eq!(Reason::parse(reason.as_str()), Some(reason));
            assert_eq!(reason.to_string(), reason.as_str());
        }
        assert_eq!(Reason::parse("db"), None);
    }

    #[test]
    fn every_class_reads_back() {
        for class in [ErrorClass::Transient, ErrorClass::Rejected, ErrorClass::Fatal] {
            assert_eq!(ErrorClass::parse(class.as_str()), Some(class));
        }
        assert_eq!(ErrorClass::parse("Transient"), None);
    }
}
