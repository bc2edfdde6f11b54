//! Which row owns a file: the match by path (minding rows that named the path while no file
//! stood there), the row asked for by id on resume, and what a failed compare-and-set means.

use std::sync::atomic::Ordering;

use tracing::{debug, info, warn};

use super::{give_up, Failure, Outcome, Pipeline, RowCheck, Run, Stage, Step, Unowned, Work};
use crate::db::VentaRow;
use crate::error::Reason;
use crate::hash::FileIdentity;
use crate::journal::{FileState, JournalEntry, JournalError};
use crate::media_path::RelativeMediaPath;

/// The rows naming a path, sorted by whether they may own the file there now.
pub(super) struct Owners {
    /// Rows that may own it.
    pub(super) rows: Vec<VentaRow>,
    /// Rows seen naming the path while no file stood there, whose saves assigned no file since.
    pub(super) stale: Vec<i64>,
}

impl Pipeline {
    /// The one row among `rows` (those whose `confronta` is this path) that may own the file
    /// there; otherwise what the driver does instead (`waiting_for_row` and `orphan` are
    /// journaled only when they are news).
    pub(super) async fn match_row(
        &self,
        run: &mut Run,
        identity: FileIdentity,
        rows: Vec<VentaRow>,
    ) -> Result<Result<VentaRow, Step>, JournalError> {
        self.db_health.up();
        let Owners { rows, stale } = self.owners(run.entry.path(), rows).await?;
        // A `verified` entry's row was asked for by id just before (`resume`); a compare-and-set
        // that committed late (a lagging connection delivering it after its answer was given up
        // on) can land between that look and this match, leaving a row that neither pointed at
        // our object then nor names the path now. Asked by id once more, the record is seen;
        // otherwise the file would wait for a row that never comes, its copy kept for good.
        if rows.is_empty() && run.entry.state() == FileState::Verified {
            if let Some(step) = self.recorded_before_stop(run).await {
                return Ok(Err(step));
            }
        }
        let (entry, now) = (&mut run.entry, run.now_ms);
        match rows.len() {
            0 => Ok(Err(self.unowned(entry, now, stale).await?)),
            1 => Ok(Ok(rows.into_iter().next().expect("one row"))),
            n => {
                let ids: Vec<String> = rows.iter().map(|r| r.id.to_string()).collect();
                let failure = Failure::new(
                    Reason::SeveralRows,
                    format!(
                        "{n} rows point at this file (ventas {}); an operator must decide which owns it",
                        ids.join(", ")
                    ),
                );
                // No sale gets a file several rows name, but one validation refuses still
                // leaves MEDIA_ROOT, which Django serves: to quarantine, the rows left as they
                // are (which of them to clear is the operator's call).
                if let Some(step @ Step::To(Stage::Refusing(_))) = self.validate(run, identity, None).await {
                    return Ok(Err(step));
                }
                Ok(Err(give_up(failure)))
            }
        }
    }

    /// No row may own the file: it waits for one (Django commits the row moments after the
    /// file), and is reported as an orphan once it has waited `orphan_after_s`, or
    /// `owner_wait_s` when only stale rows name it (the new sale's INSERT would have come).
    async fn unowned(
        &self,
        entry: &mut JournalEntry,
        now: i64,
        stale: Vec<i64>,
    ) -> Result<Step, JournalError> {
        let waited = now - entry.first_seen_ms();
        let why = if stale.is_empty() { Unowned::NoRow } else { Unowned::StaleRows(stale) };
        let orphan = match why {
            Unowned::NoRow => waited >= self.orphan_after_ms.load(Ordering::Relaxed),
            Unowned::StaleRows(_) => waited >= self.owner_wait_ms.load(Ordering::Relaxed),
        };
        let state = if orphan { FileState::Orphan } else { FileState::WaitingForRow };
        // Why it waits, for `status` and `explain`: journaled whenever it changes.
        let said = match &why {
            Unowned::NoRow => None,
            Unowned::StaleRows(_) => Some(why.failure(entry.path())),
        };
        let news = entry.state() != state
            || entry.reason() != said.as_ref().map(|failure| failure.reason)
            || entry.last_error().as_deref() != said.as_ref().map(|failure| failure.message.as_str());
        if news {
            match (&why, orphan) {
                (Unowned::StaleRows(ids), false) => warn!(
                    stale_ventas = ?ids,
                    "only a row that named this path while no file was there points at it; waiting for the row \
                     written for this file (the new sale's); a row whose save assigns a file here takes it"
                ),
                (Unowned::StaleRows(_), true) => {
                    warn!(waited_s = waited / 1000, "{}", why.failure(entry.path()).message)
                }
                (Unowned::NoRow, true) => warn!(
                    waited_s = waited / 1000,
                    "orphan: no row points at this file; it is kept, never deleted"
                ),
                (Unowned::NoRow, false) => {
                    debug!("no row points at this file yet; waiting for Django to commit it")
                }
            }
            match said {
                Some(failure) => entry.note_failure(failure.reason, failure.message),
                None => entry.clear_reason(),
            }
            if entry.state() == state {
                // Same state, new reason: the driver journals a state change only.
                self.journal.put(entry).await?;
            }
        }
        Ok(Step::End(state, if orphan { Outcome::Orphan(why) } else { Outcome::WaitingForRow(why) }))
    }

    /// Splits the rows naming the file's path into those that may own it and the stale ones.
    ///
    /// The rule (ARCHITECTURE.md, "a file belongs to the sale that claimed it after it
    /// appeared"): a row the daemon saw naming this path while no file stood there (a mark in
    /// the journal's `missing_rows`) owns a file that appears there later only if its save
    /// assigned a file since, which its assignment stamp shows (the companion's `save()` sets
    /// `confronta_asignada_en` with every new file, and with nothing else). A bare write (a
    /// state change, the same form saved again) leaves the stamp as it was. A row with no mark
    /// did not name the path while it was free, as far as the daemon ever saw: it is the file's
    /// row, as a backlog's rows are. Every stamp a row was seen stale with stays stale: a
    /// database restore can bring an old stamp back.
    pub(super) async fn owners(
        &self,
        path: &RelativeMediaPath,
        rows: Vec<VentaRow>,
    ) -> Result<Owners, JournalError> {
        let marks = self.journal.missing_marks(path).await?;
        let mut owners = Owners { rows: Vec::with_capacity(rows.len()), stale: Vec::new() };
        for row in rows {
            if marks.iter().any(|mark| mark.venta_id == row.id && mark.assigned == row.assigned) {
                owners.stale.push(row.id);
            } else {
                owners.rows.push(row);
            }
        }
        Ok(owners)
    }

    /// See `resume`: the row of a `verified` entry, asked for by id. `recorded`
    /// follows when it already points at our object.
    pub(super) async fn recorded_before_stop(&self, run: &mut Run) -> Option<Step> {
        let (Some(venta_id), Some(object)) = (run.entry.venta_id(), run.entry.object_name().clone()) else {
            return None;
        };
        match self.db.get(venta_id).await {
            Ok(Some(row)) if row.minio_object_name.as_deref() == Some(object.as_str()) => {
                let span = tracing::Span::current();
                span.record("venta_id", venta_id);
                span.record("object", object.as_str());
                info!("the row was recorded before the last stop; finishing the removal");
                // Not this run's PUT: the object is stat'ed before the local copy goes.
                Some(Step::To(Stage::Recorded(RowCheck::JustRecorded { answer_verified_at: None })))
            }
            Ok(_) => None,
            Err(e) => Some(self.db_refusal(&run.entry, e)),
        }
    }

    /// The compare-and-set matched nothing: find out why and decide.
    pub(super) async fn row_changed(&self, run: &mut Run, work: &Work) -> Step {
        let (row, object) = (&work.row, &work.object);
        let now = match self.db.get(row.id).await {
            Ok(now) => now,
            Err(e) => return Step::Settle(self.db_failure(e)),
        };
        let entry = &mut run.entry;
        match now {
            // Someone (another sidecar) recorded this very object: only the removal is left.
            Some(current) if current.minio_object_name.as_deref() == Some(object.as_str()) => {
                entry.note_previous_object(None);
                Step::To(Stage::Recorded(RowCheck::JustRecorded {
                    answer_verified_at: work.answer_verified_at,
                }))
            }
            // Still our path, only the object changed underneath: match again on the next pass.
            Some(current) if current.confronta.as_deref() == Some(entry.path().as_str()) => {
                let failure = Failure::new(
                    Reason::RowMoved,
                    format!("venta {} changed its object meanwhile; matching again", row.id),
                );
                Step::Settle(Outcome::Retry(failure))
            }
            // The row is gone or names another file: the file is matched again from the start,
            // so it waits for (or goes to) whichever row names it next (a new save, `adopt`)
            // instead of staying kept until a restart.
            _ => {
                let message = format!(
                    "venta {} was deleted or its confronta replaced while the file was in flight; \
                     local file kept, object {object} left for the orphan report; matching the file again",
                    row.id
                );
                warn!(reason = Reason::RowChanged.as_str(), error = %message, "file kept");
                Step::Rehash(Outcome::Retry(Failure::new(Reason::RowChanged, message)))
            }
        }
    }
}
