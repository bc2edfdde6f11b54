//! What a failed call means for the file: the outcome by error class and reason, and the
//! outages announced once (`Health`).

use tracing::warn;

use super::{Failure, Outcome, Pipeline, Step};
use crate::db::DbError;
use crate::error::{Classify, ErrorClass, Reason};
use crate::journal::{FileState, JournalEntry};
use crate::store::{StoreError, StoreErrorKind};

impl Pipeline {
    /// The outcome of a failed store call; an outage is logged once (`Health`).
    pub(super) fn store_failure(&self, error: StoreError) -> Outcome {
        if matches!(
            error.kind,
            StoreErrorKind::Unavailable | StoreErrorKind::NoSuchBucket | StoreErrorKind::AccessDenied
        ) {
            self.store_health.down(&error.message);
        }
        by_class(error.class(), Failure::new(Reason::from(&error), error.message.clone()))
    }

    /// The outcome of a failed database call; an outage is logged once (`Health`).
    pub(super) fn db_failure(&self, error: DbError) -> Outcome {
        if error.is_unavailable() {
            self.db_health.down(&error.message);
        }
        by_class(error.class(), Failure::new(Reason::from(&error), error.message.clone()))
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
        let in_progress =
            matches!(entry.state(), FileState::Hashed | FileState::Verified | FileState::Recorded);
        if !in_progress {
            return Step::Settle(Outcome::Kept(failure));
        }
        if entry.reason() != Some(failure.reason)
            || entry.last_error().as_deref() != Some(failure.message.as_str())
        {
            warn!(
                state = entry.state().as_str(),
                reason = failure.reason.as_str(),
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

/// A failure ends the run with the outcome its reason's class gives.
pub(super) fn fail(failure: Failure) -> Step {
    Step::Settle(by_class(failure.reason.class(), failure))
}

/// Gives up on this file version; it is kept where it is.
pub(super) fn give_up(failure: Failure) -> Step {
    Step::Settle(Outcome::Kept(failure))
}
