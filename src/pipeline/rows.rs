//! Which row owns a file: the match by path (minding rows that named the path while its file
//! was missing), the row asked for by id on resume, and what a failed compare-and-set means.

use tracing::{debug, info, warn};

use super::{give_up, Failure, Outcome, Pipeline, RowCheck, Run, Step};
use crate::db::VentaRow;
use crate::error::Reason;
use crate::journal::{now_ms, FileState, JournalEntry, JournalError};

/// The rows naming a path, sorted by whether they may own the file there now.
struct Owners {
    /// Rows that may own it.
    rows: Vec<VentaRow>,
    /// Rows that named the path while its file was missing and were not written since.
    stale: Vec<i64>,
    /// Rows that named the path while its file was missing, on a backend that cannot tell
    /// whether they were written since (SQLite).
    unknowable: Vec<i64>,
}

impl Pipeline {
    /// The one row whose `confronta` is this path; otherwise what the driver does instead
    /// (`waiting_for_row` and `orphan` are journaled only when they are news).
    pub(super) async fn match_row(
        &self,
        entry: &mut JournalEntry,
        now: i64,
    ) -> Result<Result<VentaRow, Step>, JournalError> {
        let rows = match self.db.find_by_confronta(entry.path.as_str()).await {
            Ok(rows) => rows,
            Err(e) => return Ok(Err(self.db_refusal(entry, e))),
        };
        self.db_health.up();
        let Owners { rows, stale, unknowable } = self.owners(entry, rows).await?;
        if rows.is_empty() && !unknowable.is_empty() {
            let failure = Failure::new(
                Reason::AmbiguousOwner,
                format!(
                    "venta {} named this path while its file was missing, and this database cannot tell \
                     whether the row was written since; the file is kept for an operator (save the venta \
                     again, or move the file)",
                    unknowable.iter().map(i64::to_string).collect::<Vec<_>>().join(", ")
                ),
            );
            return Ok(Err(give_up(failure)));
        }
        let stale_only = rows.is_empty() && !stale.is_empty();
        match rows.len() {
            0 => {
                let orphan = now - entry.first_seen_ms >= self.orphan_after_ms;
                let state = if orphan { FileState::Orphan } else { FileState::WaitingForRow };
                if entry.state != state {
                    if stale_only && !orphan {
                        warn!(
                            stale_ventas = ?stale,
                            "only a row that named this path while its file was missing points at it; waiting for \
                             the row written for this file (a file restored for that venta moves once the venta is saved again)"
                        );
                    } else if orphan {
                        warn!(
                            waited_s = (now - entry.first_seen_ms) / 1000,
                            "orphan: no row points at this file; it is kept, never deleted"
                        );
                    } else {
                        debug!("no row points at this file yet; waiting for Django to commit it");
                    }
                }
                Ok(Err(Step::End(state, if orphan { Outcome::Orphan } else { Outcome::WaitingForRow })))
            }
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
                Ok(Err(give_up(failure)))
            }
        }
    }

    /// Splits the rows naming `path` into those that may own the file there now and those
    /// that named it while it was missing and were not written since (see the journal's
    /// `missing_rows`). A row whose version changed is a fresh claim: its mark is dropped.
    ///
    /// A mark counts only once the row had named the missing file for `missing_after_ms` when
    /// this file was first seen: a row inserted a moment before its file (a script, NFS
    /// attribute caching) is still its owner.
    async fn owners(&self, entry: &JournalEntry, rows: Vec<VentaRow>) -> Result<Owners, JournalError> {
        let path = &entry.path;
        let marks = self.journal.missing_marks(path).await?;
        let mut owners =
            Owners { rows: Vec::with_capacity(rows.len()), stale: Vec::new(), unknowable: Vec::new() };
        for row in rows {
            let Some(mark) = marks.iter().find(|mark| {
                mark.venta_id == row.id && entry.first_seen_ms - mark.since_ms >= self.missing_after_ms
            }) else {
                owners.rows.push(row);
                continue;
            };
            match (&row.version, &mark.version) {
                (Some(now), Some(then)) if now == then => owners.stale.push(row.id),
                (Some(_), _) => {
                    self.journal.clear_missing(path, row.id).await?;
                    owners.rows.push(row);
                }
                (None, _) => owners.unknowable.push(row.id),
            }
        }
        Ok(owners)
    }

    /// See `resume`: the row of an `uploaded` or `verified` entry, asked for by id. `recorded`
    /// follows when it already points at our object.
    pub(super) async fn recorded_before_stop(&self, run: &mut Run) -> Option<Step> {
        let (Some(venta_id), Some(object)) = (run.entry.venta_id, run.entry.object_name.clone()) else {
            return None;
        };
        match self.db.get(venta_id).await {
            Ok(Some(row)) if row.minio_object_name.as_deref() == Some(object.as_str()) => {
                let span = tracing::Span::current();
                span.record("venta_id", venta_id);
                span.record("object", object.as_str());
                info!("the row was recorded before the last stop; finishing the removal");
                run.row_check = RowCheck::JustRecorded;
                Some(Step::To(FileState::Recorded))
            }
            Ok(_) => None,
            Err(e) => Some(self.db_refusal(&run.entry, e)),
        }
    }

    /// The compare-and-set matched nothing: find out why and decide.
    pub(super) async fn row_changed(&self, run: &mut Run) -> Step {
        let work = run.work.as_ref().expect("claimed before the record");
        let (row, object) = (&work.row, &work.object);
        let now = match self.db.get(row.id).await {
            Ok(now) => now,
            Err(e) => return Step::Settle(self.db_failure(e)),
        };
        let entry = &mut run.entry;
        match now {
            // Someone (another sidecar) recorded this very object: only the removal is left.
            Some(current) if current.minio_object_name.as_deref() == Some(object.as_str()) => {
                entry.previous_object = None;
                run.row_check = RowCheck::JustRecorded;
                Step::To(FileState::Recorded)
            }
            // Still our path, only the object changed underneath: match again on the next pass.
            Some(current) if current.confronta.as_deref() == Some(entry.path.as_str()) => {
                let failure = Failure::new(
                    Reason::RowMoved,
                    format!("venta {} changed its object meanwhile; matching again", row.id),
                );
                Step::Settle(Outcome::Retry(failure))
            }
            _ => {
                let message = format!(
                    "venta {} was deleted or its confronta replaced while the file was in flight; \
                     local file kept, object {object} left for the orphan report",
                    row.id
                );
                entry.last_error = Some(message.clone());
                entry.updated_ms = now_ms();
                Step::End(FileState::RowChanged, Outcome::Kept(Failure::new(Reason::RowChanged, message)))
            }
        }
    }
}
