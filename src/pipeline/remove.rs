//! The end of a file's journey, `recorded` to `removed`: the row read again, the object checked
//! (uploaded again if it vanished), the old object retired, the local file unlinked; and what a
//! local file gone before its record means.

use std::path::Path;

use tracing::{debug, info, warn};

use super::{
    give_up, local_identity, object_matches, Failure, Outcome, Pipeline, RowCheck, Run, Stage, Step,
    RECHECK_AFTER,
};
use crate::error::{pause_point, Reason};
use crate::hash::FileHash;
use crate::journal::{now_ms, FileState, JournalEntry, JournalError};
use crate::media_path::{NoFollowError, SetAside};
use crate::object_name::ObjectName;
use crate::store::{Deleted, UploadRequest};

/// What became of the recorded file at the path (`Pipeline::unlink_recorded`).
enum Unlinked {
    Removed,
    /// Nothing stood at the path (already removed, by us before a stop, or by someone).
    NotThere,
    /// Another file stands there; it is kept.
    NotTheHashedFile,
}

impl Pipeline {
    /// `recorded`: after the row points at our object, retire the old object and unlink the
    /// local file.
    pub(super) async fn finish_recorded(
        &self,
        run: &mut Run,
        row_check: RowCheck,
    ) -> Result<Step, JournalError> {
        let entry = &mut run.entry;
        let venta_id = entry.venta_id().unwrap_or_default();
        let object = entry.object_name().clone().unwrap_or_default();
        let span = tracing::Span::current();
        span.record("venta_id", venta_id);
        span.record("object", object.as_str());

        // After a restart the row is re-read: only a row that still points at our object lets
        // the local copy go.
        if row_check == RowCheck::ReadAgain {
            match self.db.get(venta_id).await {
                Ok(Some(row)) if row.minio_object_name.as_deref() == Some(object.as_str()) => {}
                Ok(_) => {
                    let local = match local_identity(&run.absolute) {
                        Ok(None) => "the local file is already gone",
                        _ => "the local file is kept",
                    };
                    // The journal keeps the object as this venta's (`recorded_objects`): orphans
                    // will not delete it, and `repair` points a restored row back at it.
                    let message = format!(
                        "venta {venta_id} no longer points at object {object} (a database restore?); {local}; \
                         the object is kept: confronta-sync repair points a restored row back at it"
                    );
                    entry.note_failure(Reason::RowChanged, message.clone());
                    return Ok(Step::End(
                        FileState::RowChanged,
                        Outcome::Kept(Failure::new(Reason::RowChanged, message)),
                    ));
                }
                Err(e) => return Ok(self.db_refusal(entry, e)),
            }
        }

        // The object must still be there before the local copy goes: anyone with the keys may
        // have removed it since it was verified. Skipped only when this run's own PUT verified
        // it less than `RECHECK_AFTER` ago and the row was recorded in between: neither
        // `orphans --delete-objects` (it asks the journal, where the entry holds the object
        // until after the row commits) nor the daemon (it retires only objects no row
        // references, and never under the name it records) can have deleted it. Against
        // anyone else the stat only narrows the window (it leaves the one between itself and
        // the unlink open), from a few seconds at most to about a millisecond; it costs MinIO
        // one request of the file's two.
        let fresh = matches!(
            row_check,
            RowCheck::JustRecorded { answer_verified_at: Some(verified) } if verified.elapsed() < RECHECK_AFTER
        );
        if !fresh {
            if let Some(step) = self.recheck_object(entry).await {
                return Ok(step);
            }
        }

        if let Some(previous) = entry.previous_object().clone() {
            self.retire_previous_object(&previous).await;
        }

        let bytes = entry.identity().map(|i| i.size).unwrap_or_default();
        pause_point("before_remove").await;
        match self.unlink_recorded(&run.absolute, entry).await {
            Ok(Unlinked::Removed) => pause_point("after_remove").await,
            // Gone already: unlinked before a stop, whose folder fsync may not have happened.
            // Made durable before `removed` says so, or a power cut could bring it back.
            Ok(Unlinked::NotThere) => {
                match sync_folder_off_the_workers(&run.absolute).await {
                    // The folder itself gone (moved away, unmounted): nothing of ours to make durable.
                    Err(e) if !e.is_not_found() => {
                        return Ok(Step::Stop(Outcome::Retry(Failure::new(Reason::LocalIo, e.to_string()))))
                    }
                    _ => {}
                }
            }
            // A different file now stands at the path; it is not the one we recorded.
            Ok(Unlinked::NotTheHashedFile) => {
                warn!("a new file replaced the recorded one before removal; it is kept")
            }
            Err(step) => return Ok(step),
        }
        entry.clear_failure();
        entry.touch(now_ms());
        Ok(Step::End(FileState::Removed, Outcome::Moved { venta_id, object, bytes }))
    }

    /// Unlinks the recorded file at `absolute` if it is still the file that was hashed, and
    /// only that file. It is checked at its name (identity, and its bytes where only the ctime
    /// moved), then moved aside to a private name in the same folder and its inode checked
    /// again there: Django may delete a file and save another sale's under the freed name at
    /// any moment, and an unlink by name would take whichever file stood there by then. A file
    /// an earlier run left aside (it stopped between the move and the unlink) is finished first.
    async fn unlink_recorded(&self, absolute: &Path, entry: &JournalEntry) -> Result<Unlinked, Step> {
        let keep = |failure: Failure| match failure.reason {
            // Recorded, but the path now crosses a symlink: whatever is behind it stays.
            Reason::SymlinkedFolder => Step::Stop(Outcome::Kept(failure)),
            _ => Step::Stop(Outcome::Retry(failure)),
        };
        let io = |e: NoFollowError| match e {
            e @ NoFollowError::SymlinkedFolder { .. } => Failure::new(Reason::SymlinkedFolder, e.to_string()),
            e => Failure::new(Reason::LocalIo, e.to_string()),
        };
        let (Some(recorded), Some(sha256)) = (entry.identity(), entry.hash().as_ref().map(|h| h.sha256))
        else {
            return Ok(Unlinked::NotTheHashedFile);
        };
        let mut removed_leftover = false;
        if let Some(leftover) = SetAside::leftover(absolute).map_err(|e| keep(io(e)))? {
            let ours = match local_identity(leftover.aside_path()) {
                Ok(Some(now)) => self.same_file(leftover.aside_path(), &recorded, &sha256, now).await,
                _ => false,
            };
            if ours {
                unlink_off_the_workers(leftover).await.map_err(|e| keep(io(e)))?;
                removed_leftover = true;
            } else {
                // Not the recorded file: it goes back to its name, never over another.
                leftover.put_back().map_err(|e| Step::Stop(Outcome::Kept(io(e))))?;
            }
        }
        // Stat right before the move: what matters is the file there now.
        let checked = match local_identity(absolute).map_err(keep)? {
            None => return Ok(if removed_leftover { Unlinked::Removed } else { Unlinked::NotThere }),
            Some(now) if self.same_file(absolute, &recorded, &sha256, now).await => now,
            Some(_) => return Ok(Unlinked::NotTheHashedFile),
        };
        pause_point("before_unlink").await;
        let Some(aside) = SetAside::take(absolute).map_err(|e| keep(io(e)))? else {
            return Ok(Unlinked::NotThere);
        };
        // The move keeps the inode and sets the ctime: the same inode, size, mtime and birth
        // time is the file just checked.
        let same =
            matches!(local_identity(aside.aside_path()), Ok(Some(now)) if now.same_but_ctime(&checked));
        if same {
            // Unlinked without following a symlink, and the folder fsynced, so the removal
            // itself survives a power cut.
            unlink_off_the_workers(aside).await.map_err(|e| keep(io(e)))?;
            Ok(Unlinked::Removed)
        } else {
            aside.put_back().map_err(|e| Step::Stop(Outcome::Kept(io(e))))?;
            Ok(Unlinked::NotTheHashedFile)
        }
    }

    /// Deletes the object the corrected venta pointed at before, unless a row still references
    /// it (a duplicated sale, a data fix): asked right before the delete, as `orphans
    /// --delete-objects` does. Never worth holding the local file for; `orphans` reports what
    /// is left behind. Only a name this daemon's template could have made is ever deleted: a
    /// row may hold any text (a name typed by hand, another system's object), and that object
    /// is not ours to delete.
    async fn retire_previous_object(&self, previous: &str) {
        // Issue 29: with `minio.keep_previous_objects` every document a sale has had stays.
        if self.store.policy().keep_previous_objects {
            info!(previous_object = %previous, "old object of the corrected venta kept (minio.keep_previous_objects)");
            return;
        }
        if !self.template.could_have_rendered(previous) || previous.starts_with(crate::store::PROBE_PREFIX) {
            warn!(previous_object = %previous, "old object of the corrected venta is not a name minio.object_name makes; kept");
            return;
        }
        match self.db.object_referenced(previous).await {
            Ok(false) => {}
            Ok(true) => {
                info!(previous_object = %previous, "old object of the corrected venta is still referenced by another row; kept");
                return;
            }
            Err(e) => {
                warn!(previous_object = %previous, error = %e, "cannot ask whether another row references the old object; kept for the orphan report");
                return;
            }
        }
        match self.store.delete(&ObjectName::from_stored(previous.to_owned())).await {
            Ok(Deleted::Removed) => {
                info!(previous_object = %previous, "old object of the corrected venta deleted")
            }
            // Issue 29: on a bucket that keeps versions the old document stays, as a version.
            Ok(Deleted::Marked { marker }) => info!(
                previous_object = %previous,
                marker = marker.as_deref().unwrap_or("-"),
                "old object of the corrected venta deleted: a delete marker hides it and its version stays in the bucket"
            ),
            Err(e) => {
                warn!(previous_object = %previous, error = %e, "could not delete the old object; left for the orphan report")
            }
        }
    }

    /// Checks, after the row points at our object and before the local copy goes, that the
    /// object still holds the hashed bytes; uploads them again from the local file if it is
    /// gone. `None` lets the removal go on; otherwise what the driver does instead (the file is
    /// kept).
    async fn recheck_object(&self, entry: &JournalEntry) -> Option<Step> {
        let (Some(stored), Some(identity), Some(object)) =
            (entry.hash().clone(), entry.identity(), entry.object_name().clone())
        else {
            return None;
        };
        let hash = FileHash {
            sha256: stored.sha256,
            identity,
            part_digests: stored.part_digests.clone(),
            head: Vec::new(),
        };
        let expected = hash.expected_s3_checksum();
        let name = ObjectName::from_stored(object.clone());
        match self.store.stat(&name).await {
            Ok(Some(info)) if object_matches(&info, &hash, &expected) => return None,
            Ok(Some(info)) => {
                let message = format!(
                    "object {object} changed after it was recorded (size {}, checksum {:?}); the local file is kept",
                    info.size, info.checksum_sha256
                );
                return Some(give_up(Failure::new(Reason::ObjectChanged, message)));
            }
            Ok(None) => {}
            Err(e) => return Some(Step::Settle(self.store_failure(e))),
        }
        let absolute = self.media_root.to_absolute(entry.path());
        match local_identity(&absolute) {
            Ok(Some(now)) if self.same_file(&absolute, &identity, &hash.sha256, now).await => {}
            _ => {
                let message = format!(
                    "object {object} disappeared after it was recorded and the local file is no longer the one hashed"
                );
                tracing::error!("{message}");
                return Some(give_up(Failure::new(Reason::ObjectMissing, message)));
            }
        }
        warn!("object disappeared after it was recorded (deleted by `orphans --delete-objects`?); uploading it again");
        let request = UploadRequest {
            path: &absolute,
            hash: &hash,
            content_type: &stored.content_type,
            multipart_threshold: self.multipart_threshold,
            part_size: self.part_size,
            if_absent: false,
        };
        if let Err(e) = self.store.upload(&name, request).await {
            return Some(Step::Settle(self.store_failure(e)));
        }
        match self.store.stat(&name).await {
            Ok(Some(info)) if object_matches(&info, &hash, &expected) => None,
            Ok(_) => Some(Step::Stop(Outcome::Retry(Failure::new(
                Reason::VerifyMismatch,
                format!("object {object} does not match after uploading it again"),
            )))),
            Err(e) => Some(Step::Settle(self.store_failure(e))),
        }
    }

    /// Any state before `recorded`, the local file gone.
    pub(super) async fn local_file_gone(&self, entry: &mut JournalEntry) -> Result<Step, JournalError> {
        // Another sidecar (or an earlier life of this one) may have finished it.
        if let Some(venta_id) = entry.venta_id() {
            match self.db.get(venta_id).await {
                // This process verified the object and the row points at it: recorded, and the
                // `recorded` entry lost (a power cut takes back its unsynced commit) after the
                // unlink, or after the move aside that precedes it. The rest of the removal is
                // carried out: the previous object retired, a file left aside unlinked.
                Ok(Some(row))
                    if entry.state() == FileState::Verified
                        && entry.object_name().is_some()
                        && row.minio_object_name == *entry.object_name() =>
                {
                    return Ok(Step::To(Stage::Recorded(RowCheck::JustRecorded {
                        answer_verified_at: None,
                    })));
                }
                Ok(Some(row))
                    if entry.object_name().is_some() && row.minio_object_name == *entry.object_name() =>
                {
                    return Ok(Step::End(FileState::Removed, Outcome::Nothing));
                }
                // The row this file was claimed for still names the path, now free: it owns no
                // file that appears there later unless its save assigns one (`owners`).
                Ok(Some(row)) if row.confronta.as_deref() == Some(entry.path().as_str()) => {
                    self.journal.note_missing(entry.path(), venta_id, row.assigned.clone()).await?;
                }
                Ok(_) => {}
                // Without the row there is no telling whether it was recorded: ask again
                // later rather than report a loss that may not have happened.
                Err(e) => return Ok(self.db_refusal(entry, e)),
            }
        }
        if matches!(entry.state(), FileState::Seen | FileState::WaitingForRow)
            || entry.object_name().is_none()
        {
            // Nothing was sent anywhere for it: Django deleted it, or another sidecar moved it
            // before this one got to it. There is nothing to remember.
            debug!(state = entry.state().as_str(), "local file gone before any work on it");
            self.journal.forget(entry.path()).await?;
            return Ok(Step::Stop(Outcome::Nothing));
        }
        let message = format!(
            "local file disappeared after its upload but before it was recorded; object {} left for the orphan report",
            entry.object_name().as_deref().unwrap_or_default()
        );
        warn!(state = entry.state().as_str(), "{message}");
        entry.note_kept(Reason::LocalMissing, message);
        Ok(Step::End(FileState::Rejected, Outcome::Nothing))
    }
}

/// `SetAside::unlink_durably` on a blocking thread: the unlink and the folder's fsync wait on
/// the disk, which must not hold a runtime worker (and the files other tasks move) meanwhile.
async fn unlink_off_the_workers(aside: SetAside) -> Result<(), NoFollowError> {
    let path = aside.aside_path().display().to_string();
    tokio::task::spawn_blocking(move || aside.unlink_durably()).await.unwrap_or_else(|e| {
        Err(NoFollowError::Io {
            path,
            source: std::io::Error::other(format!("the unlink did not finish: {e}")),
        })
    })
}

/// Fsyncs the folder holding `absolute`, on a blocking thread.
pub(super) async fn sync_folder_off_the_workers(absolute: &Path) -> Result<(), NoFollowError> {
    let Some(folder) = absolute.parent().map(Path::to_path_buf) else { return Ok(()) };
    let shown = folder.display().to_string();
    tokio::task::spawn_blocking(move || crate::media_path::sync_folder_at_path(&folder)).await.unwrap_or_else(
        |e| {
            Err(NoFollowError::Io {
                path: shown,
                source: std::io::Error::other(format!("the fsync did not finish: {e}")),
            })
        },
    )
}
