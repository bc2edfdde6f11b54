//! The writer thread: group-commits the writes of files in flight together.

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
    pub(super) done: tokio::sync::oneshot::Sender<Result<(), String>>,
}

/// The writer thread: takes every request waiting, writes them in one transaction, commits
/// (one fsync, unless no request in the batch needs one), then answers each. Ends when every
/// `Journal` handle is gone.
pub(super) fn run_writer(
    connection: Arc<Mutex<Connection>>,
    requests: std::sync::mpsc::Receiver<WriteRequest>,
) {
    const MAX_BATCH: usize = 256;
    while let Ok(first) = requests.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match requests.try_recv() {
                Ok(request) => batch.push(request),
                Err(_) => break,
            }
        }
        let result = {
            let guard = connection.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            let fsync = batch.iter().any(|r| r.fsync);
            write_batch(&guard, batch.iter().map(|r| &r.entry), fsync).map_err(|e| e.to_string())
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
    match written.and_then(|()| c.execute_batch("COMMIT")) {
        Ok(()) => Ok(()),
        Err(e) => {
            let _ = c.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}
