//! What a failed call means for the file: the outcome by error class and reason, and the
//! outages announced once (`Health`).

use tracing::warn;

use super::{Failure, Outcome, Pipeline, Step, SYMLINKED_FOLDER};
use crate::db::{DbError, DbErrorKind};
use crate::error::{Classify, ErrorClass};
use crate::journal::{FileState, JournalEntry};
use crate::store::{StoreError, StoreErrorKind};

impl Pipeline {
    /// The outcome of a failed store call; an outage is logged once (`Health`).
    pub(super) fn store_failure(&self, error: StoreError) -> Outcome {
        let reason = match error.kind {
            StoreErrorKind::Unavailable => {
                self.store_health.down(&error.message);
                "s3_unavailable"
            }
            StoreErrorKind::NoSuchBucket => {
                self.store_health.down(&error.message);
                "s3_no_bucket"
            }
            StoreErrorKind::AccessDenied => {
                self.store_health.down(&error.message);
                "s3_access_denied"
            }
            StoreErrorKind::ChecksumMismatch => "s3_checksum_rejected",
            StoreErrorKind::LocalFile => "local_changed",
            StoreErrorKind::LocalFileMissing => "local_missing",
            StoreErrorKind::AlreadyExists => "object_conflict",
            StoreErrorKind::Refused => "s3_refused",
        };
        let failure = Failure::new(reason, error.message.clone());
        by_class(error.class(), failure)
    }

    /// The outcome of a failed database call; an outage is logged once (`Health`).
    pub(super) fn db_failure(&self, error: DbError) -> Outcome {
        if error.is_unavailable() {
            self.db_health.down(&error.message);
        }
        let failure = Failure::new(
            match error.class() {
                // Another transaction holds the row: this file alone waits and is retried.
                _ if error.kind == DbErrorKind::RowLocked => "db_row_locked",
                ErrorClass::Transient => "db_unavailable",
                ErrorClass::Rejected => "db_refused",
                ErrorClass::Fatal => "db_schema",
            },
            error.message.clone(),
        );
        by_class(error.class(), failure)
    }

    /// A failed database call, where a refused answer (`db_refused`: a permission revoked,
    /// 42501) is journaled so that it is logged once per file version and not run again on
    /// every reconcile pass. A file nothing was sent anywhere for is kept (`rejected`; every
    /// start tries it once more). One with an upload under way keeps that progress: it is
    /// retried with backoff up to `retry_max_s`, warned about the first time only. An outage
    /// or a locked row ends the run with nothing journaled.
    pub(super) fn db_refusal(&self, entry: &JournalEntry, error: DbError) -> Step {
        let failure = match self.db_failure(error) {
            Outcome::Kept(failure) => failure,
            other => return Step::Stop(other),
        };
        let in_progress = matches!(
            entry.state,
            FileState::Hashed | FileState::Uploaded | FileState::Verified | FileState::Recorded
        );
        if !in_progress {
            return Step::Settle(Outcome::Kept(failure));
        }
        let said = format!("{}: {}", failure.reason, failure.message);
        if entry.last_error.as_deref() != Some(said.as_str()) {
            warn!(
                state = entry.state.as_str(),
                reason = failure.reason,
                error = %failure.message,
                "the database refused a request for this file; it keeps its progress and is tried again with backoff"
            );
        }
        Step::Settle(Outcome::Retry(failure))
    }
}

/// The outcome for a failure of this class.
pub(super) fn by_class(class: ErrorClass, failure: Failure) -> Outcome {
    match class {
        ErrorClass::Transient => Outcome::Retry(failure),
        ErrorClass::Rejected => Outcome::Kept(failure),
        ErrorClass::Fatal => Outcome::Fatal(failure),
    }
}

/// A local failure ends the run: kept for good when the path is not a regular file or crosses
/// a symlinked folder, retried otherwise.
pub(super) fn fail(failure: Failure) -> Step {
    if matches!(failure.reason, "not_regular" | SYMLINKED_FOLDER) {
        Step::Settle(Outcome::Kept(failure))
    } else {
        Step::Settle(Outcome::Retry(failure))
    }
}

/// Gives up on this file version; it is kept where it is.
pub(super) fn give_up(failure: Failure) -> Step {
    Step::Settle(Outcome::Kept(failure))
}
