//! Validation and what follows a refusal: the row stops naming the file, then the file moves to
//! quarantine (`refusing`, resumed in that order after a crash).

use std::path::Path;

use tracing::info;

use super::{fail, give_up, Failure, Outcome, Pipeline, Run, Stage, Step};
use crate::db::{RecordOutcome, RejectRequest};
use crate::error::Reason;
use crate::hash::FileIdentity;
use crate::journal::{FileState, JournalEntry};
use crate::validation::Verdict;

impl Pipeline {
    /// Runs the validation (type, size, virus scan). `None` lets the file go on; otherwise what
    /// the driver does instead. A refused file goes to `refusing`, its row (`venta_id`, when one
    /// owns it) untouched so far.
    pub(super) async fn validate(
        &self,
        run: &mut Run,
        identity: FileIdentity,
        venta_id: Option<i64>,
    ) -> Option<Step> {
        let entry = &mut run.entry;
        match run.validator.check(&run.absolute, entry.path(), identity).await {
            Verdict::Accept { .. } => None,
            Verdict::Retry(message) => Some(fail(Failure::new(Reason::ValidationPending, message))),
            Verdict::Keep(message) => Some(give_up(Failure::new(Reason::Unscannable, message))),
            Verdict::Quarantine(refusal) => {
                // `<code>: <detail>`: the code is what the companion reads.
                let reason = refusal.to_string();
                entry.note_refused(venta_id, reason.clone());
                Some(Step::To(Stage::Refusing(Some(reason))))
            }
        }
    }

    /// `refusing`: the file refused during this run, or before the last stop, is carried out;
    /// one that is gone was moved to quarantine before the last stop (its row was cleared
    /// before the move).
    pub(super) async fn resume_refusal(&self, run: &mut Run, refusal: Option<String>) -> Step {
        let Some(identity) = run.on_disk else {
            // Moved before the stop: both folders made durable (the stop may have come between
            // the move and its fsyncs) before `rejected` says it is done.
            // (A quarantine folder that is not there means the file went some other way.)
            let quarantined = self.validator().quarantine_dir().join(run.entry.path().as_str());
            for file in [quarantined.as_path(), run.absolute.as_path()] {
                match super::remove::sync_folder_off_the_workers(file).await {
                    Err(e) if !e.is_not_found() => {
                        return Step::Settle(Outcome::Retry(Failure::new(
                            Reason::QuarantineFailed,
                            e.to_string(),
                        )))
                    }
                    _ => {}
                }
            }
            return Step::End(FileState::Rejected, Outcome::Nothing);
        };
        let reason = match refusal {
            Some(reason) => reason,
            // Refused before the last stop: carry the journaled decision out.
            None => match run.validator.check(&run.absolute, run.entry.path(), identity).await {
                Verdict::Quarantine(refusal) => refusal.to_string(),
                // The settings changed since: the refusal journaled then is carried out.
                _ => match (run.entry.reason(), run.entry.last_error()) {
                    (Some(Reason::Quarantined), Some(refusal)) => refusal.clone(),
                    _ => "refused by validation before a restart".to_owned(),
                },
            },
        };
        self.refuse(&run.entry, &run.absolute, reason).await
    }

    /// Refuses the file for `reason`: first the row stops naming its path (a compare-and-set
    /// that also writes the reason for Django to show), then the file goes to quarantine. In that
    /// order, no row ever names a free path: while the file is still there Django cannot reuse
    /// the name, and once it is gone the row no longer points at it. The journal says
    /// `refusing` before either happens, so a crash in between resumes here.
    async fn refuse(&self, entry: &JournalEntry, absolute: &Path, reason: String) -> Step {
        if let Some(venta_id) = entry.venta_id() {
            let row = match self.db.get(venta_id).await {
                Ok(row) => row,
                Err(e) => return Step::Settle(self.db_failure(e)),
            };
            if let Some(row) = row.filter(|row| row.confronta.as_deref() == Some(entry.path().as_str())) {
                let request = RejectRequest {
                    venta_id,
                    expected_confronta: entry.path().as_str(),
                    expected_object_name: row.minio_object_name.as_deref(),
                    reason: &reason,
                };
                match self.db.reject(&request).await {
                    Ok(RecordOutcome::Recorded) => {
                        info!(reason = %reason, "refused file: the venta no longer names it, and says why")
                    }
                    Ok(RecordOutcome::RowChanged) => {
                        let failure = Failure::new(
                            Reason::RowMoved,
                            format!(
                                "venta {venta_id} changed while its file was being refused; trying again"
                            ),
                        );
                        return Step::Settle(Outcome::Retry(failure));
                    }
                    Err(e) => return Step::Settle(self.db_failure(e)),
                }
            }
        }
        match self.validator().quarantine(absolute, entry.path(), &reason).await {
            Ok(target) => {
                give_up(Failure::new(Reason::Quarantined, format!("{reason}; moved to {}", target.display())))
            }
            // The row no longer names the file, so it must not stay in MEDIA_ROOT (Django
            // serves it, and nothing else will ever move it): the entry stays `refusing` and
            // the move is tried again, with backoff, until the quarantine folder takes it.
            Err(e) => {
                let message = format!(
                    "{reason}; could not move it to quarantine ({e}); it stays in place until the move succeeds, tried again with backoff"
                );
                tracing::warn!(reason = %reason, error = %e, "refused file not yet moved to quarantine; trying again");
                Step::Settle(Outcome::Retry(Failure::new(Reason::QuarantineFailed, message)))
            }
        }
    }
}
