//! The writer thread: group-commits the writes of files in flight together.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use rusqlite::Connection;

use super::schema::{note_recorded, upsert};
use super::{FileState, JournalEntry};

/// One entry waiting for the writer thread, and where to say it is written.
pub(super) struct WriteRequest {
    pub(super) entry: JournalEntry,
    /// Whether the caller must wait for the fsync (`Journal::put`) or only for the commit
    /// (`Journal::put_unsynced`).
    pub(super) fsync: bool,
    pub(super) done: tokio::sync::oneshot::Sender<Result<(), WriteFailure>>,
}

/// Why a batch was not written.
#[derive(Debug, Clone)]
pub(super) struct WriteFailure {
    pub(super) message: String,
    /// An fsync failed (SQLite's `SQLITE_IOERR_FSYNC` or `_DIR_FSYNC`): after one, the kernel may
    /// have dropped pages it reported written, so nothing the journal holds can be trusted to be
    /// on disk, and every later write fails the same way (see `run_writer`).
    pub(super) fsync_failed: bool,
}

/// The writer thread: takes every request waiting, writes them in one transaction, commits
/// (one fsync, unless no request in the batch needs one), then answers each. Ends when every
/// `Journal` handle is gone.
pub(super) fn run_writer(
    connection: Arc<Mutex<Connection>>,
    requests: std::sync::mpsc::Receiver<WriteRequest>,
    unusable: Arc<AtomicBool>,
) {
    const MAX_BATCH: usize = 256;
    // `unusable` is set by the first failed fsync (here, or on a direct write), for good:
    // retrying a commit after one would report as durable what the kernel may already have
    // thrown away ("fsyncgate"). The daemon stops on it, and a restart reopens the journal,
    // which SQLite then recovers from what is on disk.
    while let Ok(first) = requests.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match requests.try_recv() {
                Ok(request) => batch.push(request),
                Err(_) => break,
            }
        }
        let result = if unusable.load(Ordering::SeqCst) {
            Err(WriteFailure {
                message: "an earlier fsync of the journal failed; it is not written to again until a restart"
                    .into(),
                fsync_failed: true,
            })
        } else {
            let guard = connection.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            let fsync = batch.iter().any(|r| r.fsync);
            write_batch(&guard, batch.iter().map(|r| &r.entry), fsync).map_err(|e| {
                let fsync_failed = fsync_failed(&e);
                if fsync_failed {
                    unusable.store(true, Ordering::SeqCst);
                }
                WriteFailure { message: e.to_string(), fsync_failed }
            })
        };
        if result.is_ok() {
            // Each entry is a file's step done: what the watchdog wants to see.
            crate::telemetry::progressed();
        }
        for request in batch {
            let _ = request.done.send(result.clone());
        }
    }
}

/// Whether SQLite says an fsync (of the file or of its folder) failed.
pub(super) fn fsync_failed(error: &rusqlite::Error) -> bool {
    const SQLITE_IOERR_FSYNC: std::ffi::c_int = 1034;
    const SQLITE_IOERR_DIR_FSYNC: std::ffi::c_int = 1290;
    matches!(error.sqlite_error(), Some(e) if matches!(e.extended_code, SQLITE_IOERR_FSYNC | SQLITE_IOERR_DIR_FSYNC))
}

fn write_batch<'a>(
    c: &Connection,
    entries: impl Iterator<Item = &'a JournalEntry>,
    fsync: bool,
) -> rusqlite::Result<()> {
    // In WAL mode `synchronous = NORMAL` commits without the fsync; the WAL is appended in
    // order, so the next `FULL` commit's fsync makes this one durable too. Each batch sets
    // the level it needs before it begins, rather than trusting that an earlier batch put it
    // back: a batch whose restore failed (SQLite refuses the pragma inside a transaction a
    // failed ROLLBACK left open) must not leave later commits unsynced.
    c.pragma_update(None, "synchronous", if fsync { "FULL" } else { "NORMAL" })?;
    c.execute_batch("BEGIN IMMEDIATE")?;
    let written = entries.into_iter().try_for_each(|entry| {
        upsert(c, entry)?;
        if entry.state == FileState::Recorded {
            note_recorded(c, entry)?;
        }
        Ok(())
    });
    // Where the crash tests make the commit's fsync fail, as a dying disk does.
    #[cfg(feature = "failpoints")]
    if fsync && fail::eval("journal_fsync", |_| ()).is_some() {
        let _ = c.execute_batch("ROLLBACK");
        return Err(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error { code: rusqlite::ErrorCode::SystemIoFailure, extended_code: 1034 },
            Some("fsync failed (failpoint journal_fsync)".into()),
        ));
    }
    match written.and_then(|()| c.execute_batch("COMMIT")) {
        Ok(()) => Ok(()),
        Err(e) => {
            let _ = c.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}
