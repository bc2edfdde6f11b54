//! The local SQLite journal: each file's progress, written (and fsynced) before the side
//! effect it guards, so a crash at any instant resumes instead of losing or repeating work.
//!
//! # Format
//! Schema version 1 (`meta.schema_version`). One row per relative media path in `files`.
//! WAL mode with `synchronous=FULL`: a state is on disk when `put` returns.
//!
//! # What a restart does in each state
//! The journal is a hint, never the truth: on restart every unfinished entry is re-checked
//! against the world (the local file, the object, the row) before anything is done. A file that
//! is not the version an entry describes (device, inode, size, mtime, ctime, birth time) starts
//! a new entry, unless the entry is `recorded` or `refusing`. The pipeline's driver
//! (`Pipeline::drive`) has one arm per line below, in the same order:
//! - `recorded`: the row is read again; only if it still points at the object is the object
//!   stat'ed (uploaded again from the local file if it vanished), the old object of a corrected
//!   venta deleted, and the local file unlinked, if it is still the file that was hashed.
//! - `refusing`: validation refused the file. If it is still there, the row's `confronta` is
//!   cleared with the reason (a compare-and-set, harmless to repeat), then the file is moved to
//!   quarantine; if it is gone, the move already happened (`rejected`).
//! - `removed`, `rejected`, `row_changed`: terminal for that file version. A new file at the
//!   same path starts a new entry; a version kept by an earlier run is tried once more from the
//!   start.
//! - any other state, the local file gone: if the row (asked by id) points at the object, the
//!   file was finished elsewhere (`removed`); if nothing was sent anywhere, the entry is
//!   forgotten; otherwise the object is left for the orphan report (`rejected`).
//! - `seen`, `waiting_for_row`, `failed`, `orphan`: start over at match and hash; nothing was
//!   written anywhere yet, or what was written is re-checked by the steps themselves.
//! - `hashed`, `uploaded`, `verified`: `uploaded` and `verified` first ask for the row by id (a
//!   crash after its compare-and-set leaves a row that no longer names the path) and go on as
//!   `recorded` if it points at the object. Then the row is matched and claimed again and the
//!   journaled hash reused (the file validated again if the validation settings changed), …
//! - … the object is stat'ed: if it holds exactly the hashed bytes the upload is skipped,
//!   otherwise it is repeated, …
//! - … the object is verified again (the local file must still be the hashed one), …
//! - … and the row is recorded with the compare-and-set, which is harmless to repeat.
//!
//! # Rows that named a missing file
//! `missing_rows` remembers each row seen naming a path whose file did not exist, with the row's
//! version (PostgreSQL's `xmin`) and since when. A file that appears at that path once the row
//! has named the missing file for `watch.missing_after_s` is not matched to that row unless the
//! row was written since (its version changed): Django reuses a free name, and the new file
//! belongs to the sale whose INSERT is about to commit, not to the old row.
//!
//! If the journal is deleted, a new empty one is made. If SQLite reports it corrupt
//! (`SQLITE_CORRUPT`, `SQLITE_NOTADB`) at open, it is moved aside with its `-wal` and `-shm`
//! (`<name>.corrupt-<ms>`, `-wal`, `-shm`; never deleted) and rebuilt empty: every local file
//! goes through the pipeline again, and rows already pointing at MinIO are left alone, so the
//! cost is re-work, never a file. Any other failure to open it (locked by another program,
//! busy, unreadable) leaves it exactly as it is and is an error naming it: the daemon exits 5.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rusqlite::config::DbConfig;
use rusqlite::{params, Connection, OptionalExtension};

use crate::error::{Classify, ErrorClass};
use crate::hash::{FileIdentity, Sha256Digest};
use crate::media_path::RelativeMediaPath;

pub const SCHEMA_VERSION: i64 = 1;

/// Where a file is in its journey.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileState {
    Seen,
    WaitingForRow,
    Hashed,
    Uploaded,
    Verified,
    Recorded,
    Removed,
    /// A transient failure; retried with backoff.
    Failed,
    /// Given up for this file version; the file is kept.
    Rejected,
    /// The row changed while the file was in flight; the file is kept.
    RowChanged,
    /// No row has pointed at the file for `orphan_after_s`; the file is kept.
    Orphan,
    /// Refused by validation: the row's `confronta` is being cleared (with the reason), then
    /// the file goes to quarantine. Resumed in that order after a crash.
    Refusing,
}

impl FileState {
    pub const ALL: [FileState; 12] = [
        FileState::Seen,
        FileState::WaitingForRow,
        FileState::Hashed,
        FileState::Uploaded,
        FileState::Verified,
        FileState::Recorded,
        FileState::Removed,
        FileState::Failed,
        FileState::Rejected,
        FileState::RowChanged,
        FileState::Orphan,
        FileState::Refusing,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FileState::Seen => "seen",
            FileState::WaitingForRow => "waiting_for_row",
            FileState::Hashed => "hashed",
            FileState::Uploaded => "uploaded",
            FileState::Verified => "verified",
            FileState::Recorded => "recorded",
            FileState::Removed => "removed",
            FileState::Failed => "failed",
            FileState::Rejected => "rejected",
            FileState::RowChanged => "row_changed",
            FileState::Orphan => "orphan",
            FileState::Refusing => "refusing",
        }
    }

    pub fn parse(text: &str) -> Option<FileState> {
        FileState::ALL.into_iter().find(|state| state.as_str() == text)
    }

    /// States after which nothing more happens to this file version.
    pub fn is_terminal(self) -> bool {
        matches!(self, FileState::Removed | FileState::Rejected | FileState::RowChanged)
    }
}

/// The hash facts that let a restart skip re-hashing an unchanged file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredHash {
    pub sha256: Sha256Digest,
    pub part_digests: Vec<Sha256Digest>,
    pub content_type: String,
}

/// A row seen naming a path whose file did not exist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingMark {
    pub venta_id: i64,
    /// The row's version when last seen (PostgreSQL's `xmin`), `None` where the backend has none.
    pub version: Option<String>,
    /// Since when the row has named the missing file at that version.
    pub since_ms: i64,
}

/// One file's journal entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalEntry {
    pub path: RelativeMediaPath,
    pub state: FileState,
    /// The file version this entry describes; a different identity at the path is a new file.
    pub identity: Option<FileIdentity>,
    pub venta_id: Option<i64>,
    /// The object the row referenced before ours (a corrected venta), deleted after recording.
    pub previous_object: Option<String>,
    pub hash: Option<StoredHash>,
    pub object_name: Option<String>,
    pub attempts: u32,
    pub error_class: Option<ErrorClass>,
    pub last_error: Option<String>,
    pub first_seen_ms: i64,
    pub updated_ms: i64,
    /// How long the upload took, for `status`.
    pub upload_ms: Option<i64>,
    /// The validation settings (`Validator::fingerprint`) this version passed; a resumed entry
    /// is validated again when they changed since.
    pub validated_with: Option<String>,
}

impl JournalEntry {
    pub fn new(path: RelativeMediaPath, now_ms: i64) -> Self {
        JournalEntry {
            path,
            state: FileState::Seen,
            identity: None,
            venta_id: None,
            previous_object: None,
            hash: None,
            object_name: None,
            attempts: 0,
            error_class: None,
            last_error: None,
            first_seen_ms: now_ms,
            updated_ms: now_ms,
            upload_ms: None,
            validated_with: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("journal {path}: another confronta-sync holds its lock {lock}")]
    Locked { path: PathBuf, lock: PathBuf },
    #[error("journal {path}: {message}")]
    Io { path: PathBuf, message: String },
    #[error("journal {path} has schema version {found}, newer than this binary's {SCHEMA_VERSION}")]
    TooNew { path: PathBuf, found: i64 },
    /// SQLite says the file is not a database, or a damaged one: the only case that justifies
    /// moving the journal aside.
    #[error("journal {path} is corrupt: {message}")]
    Corrupt { path: PathBuf, message: String },
    /// Any other reason SQLite cannot open it (locked, busy, unreadable): the journal may be
    /// fine, so it is left exactly as it is.
    #[error(
        "journal {path} cannot be opened ({message}) and was left as it is: check that no other \
         program holds it open and that this user may read and write it and its folder"
    )]
    CannotOpen { path: PathBuf, message: String },
}

impl Classify for JournalError {
    fn class(&self) -> ErrorClass {
        match self {
            // A write that failed (a full disk) may succeed later: the file waits.
            JournalError::Io { .. } => ErrorClass::Transient,
            // Nothing may move without a journal, and none of these mends itself.
            JournalError::Locked { .. }
            | JournalError::TooNew { .. }
            | JournalError::Corrupt { .. }
            | JournalError::CannotOpen { .. } => ErrorClass::Fatal,
        }
    }
}

/// The journal handle; cheap to clone, calls run on tokio's blocking pool.
#[derive(Clone)]
pub struct Journal {
    path: PathBuf,
    connection: Arc<Mutex<Connection>>,
    /// Feeds the writer thread; `None` for a read-only journal.
    writer: Option<std::sync::mpsc::Sender<WriteRequest>>,
    /// Held for the process's lifetime: the flock is what stops a second daemon. Read-only and
    /// in-memory journals hold none.
    _lock: Option<Arc<File>>,
}

impl Journal {
    /// Opens (creating if needed) the journal at `path` and takes its lock file.
    pub fn open(path: &Path) -> Result<Journal, JournalError> {
        let io = |message: String| JournalError::Io { path: path.to_owned(), message };
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| io(format!("creating {}: {e}", parent.display())))?;
        }
        let lock = take_lock(path)?;
        let connection = match open_connection(path) {
            Ok(connection) => connection,
            // Only a journal SQLite calls corrupt is set aside. A locked, busy or unreadable one
            // may hold every file's progress, so it is an error for the operator instead.
            Err(JournalError::Corrupt { message, .. }) => {
                let aside = path.with_extension(format!("corrupt-{}", now_ms()));
                tracing::error!(journal = %path.display(), moved_to = %aside.display(), error = %message,
                    "journal corrupt; moved aside with its -wal and -shm, rebuilding from the files, rows and objects");
                move_aside(path, &aside).map_err(io)?;
                open_connection(path)?
            }
            Err(e) => return Err(e),
        };
        Ok(Journal::with_writer(path.to_owned(), connection, Some(Arc::new(lock))))
    }

    /// Opens an existing journal for reading only, without its lock, so `status` can run
    /// beside a live daemon. Nothing is created or written.
    pub fn open_read_only(path: &Path) -> Result<Journal, JournalError> {
        let connection = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(|e| JournalError::Io { path: path.to_owned(), message: e.to_string() })?;
        Ok(Journal {
            path: path.to_owned(),
            connection: Arc::new(Mutex::new(connection)),
            writer: None,
            _lock: None,
        })
    }

    /// A journal that keeps nothing past the process: for `--dry-run`, which must not write the
    /// real one.
    pub fn in_memory() -> Result<Journal, JournalError> {
        let path = PathBuf::from(":memory:");
        let connection = open_connection(&path)?;
        Ok(Journal::with_writer(path, connection, None))
    }

    fn with_writer(path: PathBuf, connection: Connection, lock: Option<Arc<File>>) -> Journal {
        let connection = Arc::new(Mutex::new(connection));
        let (writer, requests) = std::sync::mpsc::channel();
        let shared = connection.clone();
        std::thread::Builder::new()
            .name("journal-writer".into())
            .spawn(move || run_writer(shared, requests))
            .expect("spawn the journal writer thread");
        Journal { path, connection, writer: Some(writer), _lock: lock }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    async fn with<T, F>(&self, work: F) -> Result<T, JournalError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        on_blocking_thread(&self.connection, &self.path, "journal worker", work).await
    }

    pub async fn get(&self, path: &RelativeMediaPath) -> Result<Option<JournalEntry>, JournalError> {
        let key = path.as_str().to_owned();
        self.with(move |c| {
            c.prepare_cached(&format!("SELECT {COLUMNS} FROM files WHERE path = ?1"))?
                .query_row(params![key], read_entry)
                .optional()
        })
        .await
    }

    /// Writes the entry; it is durable when this returns.
    ///
    /// Writes from files in flight at the same time share one transaction and one fsync (group
    /// commit): each caller still returns only once its own entry is on disk.
    pub async fn put(&self, entry: &JournalEntry) -> Result<(), JournalError> {
        let io = |message: String| JournalError::Io { path: self.path.clone(), message };
        let Some(writer) = &self.writer else {
            return Err(io("the journal is open read-only".into()));
        };
        let (done, wait) = tokio::sync::oneshot::channel();
        writer
            .send(WriteRequest { entry: entry.clone(), done })
            .map_err(|_| io("the journal writer stopped".into()))?;
        wait.await.map_err(|_| io("the journal writer stopped".into()))?.map_err(io)
    }

    /// Forgets at most `batch` files removed more than `older_than_ms` ago; their rows and
    /// objects are the record now. Returns how many went: fewer than `batch` means none is left.
    pub async fn prune_removed(&self, older_than_ms: i64, batch: usize) -> Result<usize, JournalError> {
        self.with(move |c| prune_batch(c, older_than_ms, batch)).await
    }

    /// Keeps the journal small for as long as the daemon runs: every `every`, entries of files
    /// removed more than `retention` ago are forgotten, then their space is given back and the
    /// WAL checkpointed. Ends when `shutdown` turns true.
    ///
    /// Off the pipeline's path: it works on a connection of its own, so the group-commit
    /// writer never waits for the shared connection's mutex, only (in SQLite's WAL mode, for
    /// one small transaction at most) for the write lock; each transaction deletes one batch,
    /// with a pause between them. Its commits skip the fsync (`synchronous = NORMAL`: a prune
    /// lost in a crash is only done again), and it checkpoints the WAL itself, passively, so
    /// that the writer's commits do not inherit the checkpoints its deletes would cause.
    pub async fn keep_small(
        self,
        retention: std::time::Duration,
        every: std::time::Duration,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        const BATCH: usize = 500;
        const PAGES: u32 = 256;
        const PAUSE: std::time::Duration = std::time::Duration::from_millis(25);
        let retention_ms = retention.as_millis() as i64;
        let upkeep = match Upkeep::open(&self.path).await {
            Ok(upkeep) => upkeep,
            Err(e) => {
                tracing::warn!(error = %e, "cannot open the journal for pruning; it is not pruned until a restart");
                return;
            }
        };
        loop {
            let mut pruned = 0usize;
            loop {
                let done = match upkeep.run(move |c| prune_batch(c, retention_ms, BATCH)).await {
                    Ok(n) => {
                        pruned += n;
                        n < BATCH
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "could not prune the journal; trying again later");
                        true
                    }
                };
                // Keeps the WAL from growing by a whole prune's worth of pages.
                let _ = upkeep.run(|c| c.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))).await;
                if done || *shutdown.borrow() {
                    break;
                }
                tokio::time::sleep(PAUSE).await;
            }
            if pruned > 0 {
                tracing::info!(
                    pruned,
                    retention_days = retention.as_secs() / 86_400,
                    "forgot journal entries of files removed before the retention"
                );
                while !*shutdown.borrow() {
                    match upkeep.run(move |c| give_back_pages(c, PAGES)).await {
                        Ok(left) if left > 0 => tokio::time::sleep(PAUSE).await,
                        Ok(_) => break,
                        Err(e) => {
                            tracing::warn!(error = %e, "could not give the journal's free pages back");
                            break;
                        }
                    }
                }
                if let Err(e) =
                    upkeep.run(|c| c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))).await
                {
                    tracing::warn!(error = %e, "could not checkpoint the journal");
                }
            }
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tokio::time::sleep(every) => {}
            }
            if *shutdown.borrow() {
                return;
            }
        }
    }

    /// Drops the entry for `path`: nothing about it is worth keeping.
    pub async fn forget(&self, path: &RelativeMediaPath) -> Result<(), JournalError> {
        let key = path.as_str().to_owned();
        self.with(move |c| c.execute("DELETE FROM files WHERE path = ?1", params![key]).map(|_| ())).await
    }

    /// Entries whose file may still need work, oldest first.
    pub async fn unfinished(&self) -> Result<Vec<JournalEntry>, JournalError> {
        self.with(|c| {
            // The same condition as the `files_unfinished` partial index, word for word, so that
            // SQLite reads the index (unfinished entries only, already in order) instead of
            // scanning every removed entry under the mutex the writer needs.
            let mut query = c.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM files WHERE {UNFINISHED} ORDER BY first_seen_ms"
            ))?;
            let rows = query.query_map([], read_entry)?;
            rows.collect()
        })
        .await
    }

    /// Remembers that venta `venta_id` named `path` while no file was there, at row version
    /// `version`. Returns true the first time for this path and row (to log it once).
    pub async fn note_missing(
        &self,
        path: &RelativeMediaPath,
        venta_id: i64,
        version: Option<String>,
    ) -> Result<bool, JournalError> {
        let key = path.as_str().to_owned();
        self.with(move |c| {
            let known: bool = c
                .prepare_cached("SELECT 1 FROM missing_rows WHERE path = ?1 AND venta_id = ?2")?
                .exists(params![key, venta_id])?;
            c.prepare_cached(
                "INSERT INTO missing_rows (path, venta_id, row_version, seen_ms) VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT(path, venta_id) DO UPDATE SET \
                 seen_ms = CASE WHEN row_version IS excluded.row_version THEN seen_ms ELSE excluded.seen_ms END, \
                 row_version = excluded.row_version",
            )?
            .execute(params![key, venta_id, version, now_ms()])?;
            Ok(!known)
        })
        .await
    }

    /// The rows remembered as naming `path` while its file was missing.
    pub async fn missing_marks(&self, path: &RelativeMediaPath) -> Result<Vec<MissingMark>, JournalError> {
        let key = path.as_str().to_owned();
        self.with(move |c| {
            let mut query =
                c.prepare_cached("SELECT venta_id, row_version, seen_ms FROM missing_rows WHERE path = ?1")?;
            let rows = query.query_map(params![key], |row| {
                Ok(MissingMark { venta_id: row.get(0)?, version: row.get(1)?, since_ms: row.get(2)? })
            })?;
            rows.collect()
        })
        .await
    }

    /// Forgets that venta `venta_id` named `path` while it was missing (the row was written since).
    pub async fn clear_missing(&self, path: &RelativeMediaPath, venta_id: i64) -> Result<(), JournalError> {
        let key = path.as_str().to_owned();
        self.with(move |c| {
            c.execute("DELETE FROM missing_rows WHERE path = ?1 AND venta_id = ?2", params![key, venta_id])
                .map(|_| ())
        })
        .await
    }

    /// Whether an unfinished entry holds `object_name`: the daemon may be uploading, verifying or
    /// recording it, so `orphans --delete-objects` must leave it alone.
    pub async fn holds_object(&self, object_name: &str) -> Result<bool, JournalError> {
        let name = object_name.to_owned();
        self.with(move |c| {
            c.prepare_cached(
                "SELECT 1 FROM files WHERE object_name = ?1 AND state NOT IN ('removed', 'rejected', 'row_changed')",
            )?
            .exists(params![name])
        })
        .await
    }

    /// Hands every entry in turn to `step`, never holding more than one: `status` on a journal
    /// of millions of entries stays small.
    pub async fn fold<T, F>(&self, init: T, mut step: F) -> Result<T, JournalError>
    where
        T: Send + 'static,
        F: FnMut(&mut T, JournalEntry) + Send + 'static,
    {
        self.with(move |c| {
            let mut acc = init;
            let mut query = c.prepare(&format!("SELECT {COLUMNS} FROM files"))?;
            let mut rows = query.query([])?;
            while let Some(row) = rows.next()? {
                step(&mut acc, read_entry(row)?);
            }
            Ok(acc)
        })
        .await
    }

    /// Upload times of removed entries: (how many, mean ms, p95 ms), computed by SQLite so that
    /// `status` never collects them.
    pub async fn upload_times(&self) -> Result<(u64, Option<f64>, Option<i64>), JournalError> {
        self.with(|c| {
            let (count, mean): (i64, Option<f64>) = c.query_row(
                "SELECT COUNT(upload_ms), AVG(upload_ms) FROM files WHERE state = 'removed' AND upload_ms IS NOT NULL",
                [],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )?;
            if count == 0 {
                return Ok((0, None, None));
            }
            // The nearest-rank p95: the ceil(0.95 n)-th smallest time.
            let rank = ((count as f64 * 0.95).ceil() as i64).clamp(1, count) - 1;
            let p95: i64 = c.query_row(
                "SELECT upload_ms FROM files WHERE state = 'removed' AND upload_ms IS NOT NULL \
                 ORDER BY upload_ms LIMIT 1 OFFSET ?1",
                params![rank],
                |row| row.get(0),
            )?;
            Ok((count as u64, mean, Some(p95)))
        })
        .await
    }

    /// Every entry (for tests; `status` folds over them instead).
    pub async fn all(&self) -> Result<Vec<JournalEntry>, JournalError> {
        self.with(|c| {
            let mut query = c.prepare(&format!("SELECT {COLUMNS} FROM files ORDER BY first_seen_ms"))?;
            let rows = query.query_map([], read_entry)?;
            rows.collect()
        })
        .await
    }
}

/// Deletes at most `batch` entries of files removed before `now - older_than_ms`, through the
/// `files_state` index, in one transaction.
fn prune_batch(c: &Connection, older_than_ms: i64, batch: usize) -> rusqlite::Result<usize> {
    let cutoff = now_ms() - older_than_ms;
    c.prepare_cached(
        "DELETE FROM files WHERE rowid IN \
         (SELECT rowid FROM files WHERE state = 'removed' AND updated_ms < ?1 LIMIT ?2)",
    )?
    .execute(params![cutoff, batch as i64])
}

/// Hands at most `pages` free pages back to the file system, where the journal allows it
/// (`auto_vacuum = INCREMENTAL`, journals created since issue 17; an older one keeps its free
/// pages and reuses them). Returns how many free pages are left to give back.
fn give_back_pages(c: &Connection, pages: u32) -> rusqlite::Result<i64> {
    let incremental: i64 = c.query_row("PRAGMA auto_vacuum", [], |row| row.get(0))?;
    if incremental != 2 {
        return Ok(0);
    }
    c.execute_batch(&format!("PRAGMA incremental_vacuum({pages})"))?;
    c.query_row("PRAGMA freelist_count", [], |row| row.get(0))
}

/// The pruning task's own connection to the journal (see `Journal::keep_small`).
struct Upkeep {
    path: PathBuf,
    connection: Arc<Mutex<Connection>>,
}

impl Upkeep {
    async fn open(path: &Path) -> Result<Upkeep, JournalError> {
        let owned = path.to_owned();
        let opened = tokio::task::spawn_blocking(move || {
            let c = Connection::open(&owned)?;
            c.busy_timeout(std::time::Duration::from_secs(5))?;
            c.pragma_update(None, "synchronous", "NORMAL")?;
            // This connection checkpoints by itself, passively, after each batch.
            c.pragma_update(None, "wal_autocheckpoint", 0)?;
            Ok::<_, rusqlite::Error>(c)
        })
        .await;
        let io = |message: String| JournalError::Io { path: path.to_owned(), message };
        let connection = opened.map_err(|e| io(e.to_string()))?.map_err(|e| io(e.to_string()))?;
        Ok(Upkeep { path: path.to_owned(), connection: Arc::new(Mutex::new(connection)) })
    }

    async fn run<T, F>(&self, work: F) -> Result<T, JournalError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        on_blocking_thread(&self.connection, &self.path, "journal upkeep", work).await
    }
}

/// Runs `work` on `connection` on tokio's blocking pool (SQLite calls block), holding the
/// connection's lock for the call; `what` names the caller in the error if the task dies.
async fn on_blocking_thread<T, F>(
    connection: &Arc<Mutex<Connection>>,
    path: &Path,
    what: &str,
    work: F,
) -> Result<T, JournalError>
where
    T: Send + 'static,
    F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
{
    let connection = connection.clone();
    let owned_path = path.to_owned();
    tokio::task::spawn_blocking(move || {
        let guard = connection.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        work(&guard).map_err(|e| JournalError::Io { path: owned_path, message: e.to_string() })
    })
    .await
    .map_err(|e| JournalError::Io { path: path.to_owned(), message: format!("{what} failed: {e}") })?
}

/// One entry waiting for the writer thread, and where to say it is durable.
struct WriteRequest {
    entry: JournalEntry,
    done: tokio::sync::oneshot::Sender<Result<(), String>>,
}

/// The writer thread: takes every request waiting, writes them in one transaction, commits
/// (one fsync), then answers each. Ends when every `Journal` handle is gone.
fn run_writer(connection: Arc<Mutex<Connection>>, requests: std::sync::mpsc::Receiver<WriteRequest>) {
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
            write_batch(&guard, batch.iter().map(|r| &r.entry)).map_err(|e| e.to_string())
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

fn write_batch<'a>(c: &Connection, entries: impl Iterator<Item = &'a JournalEntry>) -> rusqlite::Result<()> {
    c.execute_batch("BEGIN IMMEDIATE")?;
    let written = entries.into_iter().try_for_each(|entry| upsert(c, entry));
    match written.and_then(|()| c.execute_batch("COMMIT")) {
        Ok(()) => Ok(()),
        Err(e) => {
            let _ = c.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}

fn upsert(c: &Connection, entry: &JournalEntry) -> rusqlite::Result<()> {
    let hash = entry.hash.as_ref();
    let identity = entry.identity.as_ref();
    c.prepare_cached(
        "INSERT INTO files (path, state, venta_id, previous_object, sha256, size, dev, inode, mtime_ns, \
         part_digests, content_type, object_name, attempts, error_class, last_error, first_seen_ms, \
         updated_ms, upload_ms, ctime_ns, btime_ns, validated_with) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21) \
         ON CONFLICT(path) DO UPDATE SET state = excluded.state, venta_id = excluded.venta_id, \
         previous_object = excluded.previous_object, sha256 = excluded.sha256, size = excluded.size, \
         dev = excluded.dev, inode = excluded.inode, mtime_ns = excluded.mtime_ns, \
         part_digests = excluded.part_digests, content_type = excluded.content_type, \
         object_name = excluded.object_name, attempts = excluded.attempts, \
         error_class = excluded.error_class, last_error = excluded.last_error, \
         first_seen_ms = excluded.first_seen_ms, updated_ms = excluded.updated_ms, upload_ms = excluded.upload_ms, \
         ctime_ns = excluded.ctime_ns, btime_ns = excluded.btime_ns, validated_with = excluded.validated_with",
    )?
    .execute(params![
        entry.path.as_str(),
        entry.state.as_str(),
        entry.venta_id,
        entry.previous_object,
        hash.map(|h| h.sha256.to_hex()),
        identity.map(|i| i.size as i64),
        identity.map(|i| i.dev as i64),
        identity.map(|i| i.inode as i64),
        identity.map(|i| i.mtime_ns),
        hash.map(|h| h.part_digests.iter().map(|d| d.to_hex()).collect::<Vec<_>>().join(",")),
        hash.map(|h| h.content_type.clone()),
        entry.object_name,
        entry.attempts,
        entry.error_class.map(ErrorClass::as_str),
        entry.last_error,
        entry.first_seen_ms,
        // Every write stamps its own time: `updated_ms` says when the state last changed.
        now_ms(),
        entry.upload_ms,
        identity.map(|i| i.ctime_ns),
        identity.and_then(|i| i.btime_ns),
        entry.validated_with,
    ])?;
    Ok(())
}

/// Entries whose file may still need work; the `files_unfinished` index holds exactly these.
const UNFINISHED: &str = "state NOT IN ('removed', 'rejected', 'row_changed')";

const COLUMNS: &str =
    "path, state, venta_id, previous_object, sha256, size, dev, inode, mtime_ns, part_digests, \
     content_type, object_name, attempts, error_class, last_error, first_seen_ms, updated_ms, upload_ms, \
     ctime_ns, btime_ns, validated_with";

fn read_entry(row: &rusqlite::Row<'_>) -> rusqlite::Result<JournalEntry> {
    let bad = |index: usize, what: &str| {
        rusqlite::Error::FromSqlConversionFailure(index, rusqlite::types::Type::Text, what.to_owned().into())
    };
    let path: String = row.get(0)?;
    let path = RelativeMediaPath::parse(&path).map_err(|_| bad(0, "bad path"))?;
    let state: String = row.get(1)?;
    let state = FileState::parse(&state).ok_or_else(|| bad(1, "unknown state"))?;
    let sha: Option<String> = row.get(4)?;
    let hash = match sha {
        None => None,
        Some(hex_text) => {
            let parts: String = row.get::<_, Option<String>>(9)?.unwrap_or_default();
            let part_digests = parts
                .split(',')
                .filter(|p| !p.is_empty())
                .map(|p| Sha256Digest::from_hex(p).ok_or_else(|| bad(9, "bad part digest")))
                .collect::<Result<Vec<_>, _>>()?;
            Some(StoredHash {
                sha256: Sha256Digest::from_hex(&hex_text).ok_or_else(|| bad(4, "bad digest"))?,
                part_digests,
                content_type: row.get::<_, Option<String>>(10)?.unwrap_or_default(),
            })
        }
    };
    let identity = match row.get::<_, Option<i64>>(5)? {
        None => None,
        Some(size) => Some(FileIdentity {
            size: size as u64,
            dev: row.get::<_, i64>(6)? as u64,
            inode: row.get::<_, i64>(7)? as u64,
            mtime_ns: row.get(8)?,
            // Written by a version without it: no file matches, so the entry starts over.
            ctime_ns: row.get::<_, Option<i64>>(18)?.unwrap_or(i64::MIN),
            btime_ns: row.get(19)?,
        }),
    };
    Ok(JournalEntry {
        path,
        state,
        identity,
        venta_id: row.get(2)?,
        previous_object: row.get(3)?,
        hash,
        object_name: row.get(11)?,
        attempts: row.get(12)?,
        error_class: match row.get::<_, Option<String>>(13)? {
            None => None,
            Some(class) => Some(ErrorClass::parse(&class).ok_or_else(|| bad(13, "unknown error class"))?),
        },
        last_error: row.get(14)?,
        first_seen_ms: row.get(15)?,
        updated_ms: row.get(16)?,
        upload_ms: row.get(17)?,
        validated_with: row.get(20)?,
    })
}

fn take_lock(path: &Path) -> Result<File, JournalError> {
    use std::os::unix::io::AsRawFd;
    let lock_path = PathBuf::from(format!("{}.lock", path.display()));
    let file =
        std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&lock_path).map_err(
            |e| JournalError::Io {
                path: path.to_owned(),
                message: format!("opening {}: {e}", lock_path.display()),
            },
        )?;
    // SAFETY: flock on a valid, owned descriptor has no memory-safety preconditions.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        return Err(JournalError::Locked { path: path.to_owned(), lock: lock_path });
    }
    Ok(file)
}

/// Moves a corrupt journal to `aside`, its `-wal` and `-shm` to `aside-wal` and `aside-shm`:
/// nothing is deleted, so it can be inspected (SQLite opens the three together, as they were),
/// and the world is the truth, so a fresh journal only costs re-work. The `-wal` goes first:
/// left beside a fresh journal it would be replayed into it.
fn move_aside(path: &Path, aside: &Path) -> Result<(), String> {
    for suffix in ["-wal", "-shm"] {
        let (from, to) = (with_suffix(path, suffix), with_suffix(aside, suffix));
        match std::fs::rename(&from, &to) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("moving {} aside to {}: {e}", from.display(), to.display())),
        }
    }
    std::fs::rename(path, aside).map_err(|e| format!("moving aside to {}: {e}", aside.display()))
}

/// `path` with `suffix` appended to its file name, the way SQLite names a journal's `-wal`.
fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

fn open_connection(path: &Path) -> Result<Connection, JournalError> {
    let open_error = |e: rusqlite::Error| {
        let (path, message) = (path.to_owned(), e.to_string());
        match e.sqlite_error_code() {
            Some(rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase) => {
                JournalError::Corrupt { path, message }
            }
            _ => JournalError::CannotOpen { path, message },
        }
    };
    let connection = Connection::open(path).map_err(open_error)?;
    // Closing the last connection checkpoints the WAL into the database and deletes the -wal
    // and -shm. If this open fails (a corrupt journal) that close would destroy the very files
    // that are to be moved aside, so it is only allowed once the journal has opened cleanly.
    connection.set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true).map_err(open_error)?;
    connection.busy_timeout(std::time::Duration::from_secs(5)).map_err(open_error)?;
    // Only takes effect on a new, empty journal (before its first table): freed pages can then
    // be handed back after a prune (`checkpoint`). An older journal keeps and reuses them.
    connection.pragma_update(None, "auto_vacuum", "INCREMENTAL").map_err(open_error)?;
    connection.pragma_update(None, "journal_mode", "WAL").map_err(open_error)?;
    connection.pragma_update(None, "synchronous", "FULL").map_err(open_error)?;
    connection
        .execute_batch(
            "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
             CREATE TABLE IF NOT EXISTS files (
                 path TEXT PRIMARY KEY,
                 state TEXT NOT NULL,
                 venta_id INTEGER,
                 previous_object TEXT,
                 sha256 TEXT,
                 size INTEGER,
                 dev INTEGER,
                 inode INTEGER,
                 mtime_ns INTEGER,
                 part_digests TEXT,
                 content_type TEXT,
                 object_name TEXT,
                 attempts INTEGER NOT NULL DEFAULT 0,
                 error_class TEXT,
                 last_error TEXT,
                 first_seen_ms INTEGER NOT NULL,
                 updated_ms INTEGER NOT NULL,
                 upload_ms INTEGER
             );
             CREATE INDEX IF NOT EXISTS files_state ON files(state);
             CREATE INDEX IF NOT EXISTS files_unfinished ON files(first_seen_ms) WHERE state NOT IN ('removed', 'rejected', 'row_changed');
             CREATE INDEX IF NOT EXISTS files_object ON files(object_name);
             CREATE TABLE IF NOT EXISTS missing_rows (
                 path TEXT NOT NULL,
                 venta_id INTEGER NOT NULL,
                 row_version TEXT,
                 seen_ms INTEGER NOT NULL,
                 PRIMARY KEY (path, venta_id)
             );",
        )
        .map_err(open_error)?;
    // Columns added within schema version 1: a journal written before them gains them empty
    // (its identities then match no file, so those entries start over), and a binary without
    // them still reads the journal.
    for (column, declaration) in
        [("ctime_ns", "INTEGER"), ("btime_ns", "INTEGER"), ("validated_with", "TEXT")]
    {
        let present: bool = connection
            .prepare("SELECT 1 FROM pragma_table_info('files') WHERE name = ?1")
            .and_then(|mut query| query.exists(params![column]))
            .map_err(open_error)?;
        if !present {
            connection
                .execute_batch(&format!("ALTER TABLE files ADD COLUMN {column} {declaration}"))
                .map_err(open_error)?;
        }
    }
    let found: Option<String> = connection
        .query_row("SELECT value FROM meta WHERE key = 'schema_version'", [], |row| row.get(0))
        .optional()
        .map_err(open_error)?;
    match found.and_then(|v| v.parse::<i64>().ok()) {
        None => {
            connection
                .execute(
                    "INSERT INTO meta (key, value) VALUES ('schema_version', ?1)",
                    params![SCHEMA_VERSION.to_string()],
                )
                .map_err(open_error)?;
        }
        Some(version) if version > SCHEMA_VERSION => {
            return Err(JournalError::TooNew { path: path.to_owned(), found: version })
        }
        Some(_) => {}
    }
    connection.set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, false).map_err(open_error)?;
    Ok(connection)
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(path: &str) -> JournalEntry {
        let mut entry = JournalEntry {
            state: FileState::Hashed,
            ..JournalEntry::new(RelativeMediaPath::parse(path).unwrap(), 1000)
        };
        entry.venta_id = Some(7);
        entry.object_name = Some("confrontas/x.pdf".into());
        entry.identity =
            Some(FileIdentity { dev: 1, inode: 2, size: 3, mtime_ns: 4, ctime_ns: 5, btime_ns: Some(6) });
        entry.validated_with = Some("types=pdf".into());
        entry.hash = Some(StoredHash {
            sha256: Sha256Digest::of_bytes(b"x"),
            part_digests: vec![Sha256Digest::of_bytes(b"a"), Sha256Digest::of_bytes(b"b")],
            content_type: "application/pdf".into(),
        });
        entry
    }

    #[tokio::test]
    async fn entries_roundtrip_and_unfinished_skips_terminal_states() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::open(&dir.path().join("j.sqlite3")).unwrap();
        let first = entry("confrontas/a.pdf");
        journal.put(&first).await.unwrap();
        let mut done = entry("confrontas/b.pdf");
        done.state = FileState::Removed;
        journal.put(&done).await.unwrap();

        let stamped = |mut entry: JournalEntry| {
            entry.updated_ms = 0;
            entry
        };
        let read = journal.get(&first.path).await.unwrap().expect("written");
        assert!(read.updated_ms >= first.updated_ms, "writes stamp their time");
        assert_eq!(stamped(read), stamped(first.clone()));
        let unfinished: Vec<_> = journal.unfinished().await.unwrap().into_iter().map(stamped).collect();
        assert_eq!(unfinished, vec![stamped(first)]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_writes_share_commits_and_all_land() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::open(&dir.path().join("j.sqlite3")).unwrap();
        let writes = (0..200).map(|n| {
            let journal = journal.clone();
            tokio::spawn(async move { journal.put(&entry(&format!("confrontas/{n}.pdf"))).await })
        });
        for write in writes.collect::<Vec<_>>() {
            write.await.unwrap().unwrap();
        }
        assert_eq!(journal.all().await.unwrap().len(), 200);
    }

    /// `status` folds over the entries and lets SQLite compute the upload times, rather than
    /// loading the journal (issue 17 item 9): the same figures as before.
    #[tokio::test]
    async fn fold_visits_every_entry_and_upload_times_are_the_nearest_rank_p95() {
        let journal = Journal::in_memory().unwrap();
        assert_eq!(journal.upload_times().await.unwrap(), (0, None, None));
        for n in 1..=20i64 {
            let mut removed = entry(&format!("confrontas/{n}.pdf"));
            removed.state = FileState::Removed;
            removed.upload_ms = Some(n);
            journal.put(&removed).await.unwrap();
        }
        let mut pending = entry("confrontas/pendiente.pdf");
        pending.upload_ms = Some(1_000);
        journal.put(&pending).await.unwrap();
        assert_eq!(journal.upload_times().await.unwrap(), (20, Some(10.5), Some(19)));
        let (entries, removed) = journal
            .fold((0, 0), |(entries, removed), entry| {
                *entries += 1;
                *removed += u32::from(entry.state == FileState::Removed);
            })
            .await
            .unwrap();
        assert_eq!((entries, removed), (21, 20));
    }

    /// Issue 15: `error_class` is written and read as an `ErrorClass`, with the labels earlier
    /// versions stored, and an unknown label is an error rather than a guess.
    #[tokio::test]
    async fn error_class_is_stored_as_its_label() {
        let journal = Journal::in_memory().unwrap();
        for class in [ErrorClass::Transient, ErrorClass::Rejected, ErrorClass::Fatal] {
            let mut failed = entry("confrontas/a.pdf");
            failed.error_class = Some(class);
            journal.put(&failed).await.unwrap();
            let read = journal.get(&failed.path).await.unwrap().expect("written");
            assert_eq!(read.error_class, Some(class));
            let stored: String = journal
                .with(|c| c.query_row("SELECT error_class FROM files", [], |row| row.get(0)))
                .await
                .unwrap();
            assert_eq!(stored, class.as_str());
        }
    }

    #[test]
    fn a_journal_that_cannot_be_written_is_transient_and_one_that_cannot_be_opened_fatal() {
        let io = JournalError::Io { path: "/j".into(), message: "disk full".into() };
        assert_eq!(io.class(), ErrorClass::Transient);
        let locked = JournalError::Locked { path: "/j".into(), lock: "/j.lock".into() };
        assert_eq!(locked.class(), ErrorClass::Fatal);
    }

    #[test]
    fn a_second_open_of_the_same_journal_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.sqlite3");
        let _first = Journal::open(&path).unwrap();
        let err = Journal::open(&path).err().expect("second open must fail");
        assert!(matches!(err, JournalError::Locked { .. }), "{err}");
    }

    /// Names in `dir` that hold `corrupt-`, sorted.
    fn moved_aside(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| name.contains("corrupt-"))
            .collect();
        names.sort();
        names
    }

    /// Issue 12 item 6: the WAL may hold the last committed writes, so it goes aside with the
    /// journal it belongs to instead of being deleted.
    #[tokio::test]
    async fn a_corrupt_journal_moves_aside_with_its_wal_and_shm_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.sqlite3");
        std::fs::write(&path, b"this is not a sqlite database, just garbage bytes....").unwrap();
        std::fs::write(dir.path().join("j.sqlite3-wal"), b"the wal's bytes").unwrap();
        std::fs::write(dir.path().join("j.sqlite3-shm"), b"the shm's bytes").unwrap();
        let journal = Journal::open(&path).unwrap();
        assert!(journal.unfinished().await.unwrap().is_empty());

        let aside = moved_aside(dir.path());
        assert_eq!(aside.len(), 3, "{aside:?}");
        let main = &aside[0];
        assert!(main.starts_with("j.corrupt-"), "{aside:?}");
        assert_eq!(
            std::fs::read(dir.path().join(main)).unwrap(),
            b"this is not a sqlite database, just garbage bytes...."
        );
        assert_eq!(std::fs::read(dir.path().join(format!("{main}-wal"))).unwrap(), b"the wal's bytes");
        // The -shm is only an index SQLite rebuilds from the -wal at every open, so its bytes
        // are SQLite's; what matters is that it went aside with the rest.
        assert!(dir.path().join(format!("{main}-shm")).exists(), "{aside:?}");
    }

    /// Issue 12 item 6: a journal SQLite cannot lock (another program holds it) is not corrupt.
    /// It used to be moved aside and rebuilt empty, throwing away every entry.
    #[tokio::test]
    async fn a_locked_journal_is_left_alone_and_named_in_the_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.sqlite3");
        let journal = Journal::open(&path).unwrap();
        journal.put(&entry("confrontas/a.pdf")).await.unwrap();
        drop(journal);

        // Not our flock on j.sqlite3.lock: SQLite's own lock on the database file.
        let holder = Connection::open(&path).unwrap();
        holder.execute_batch("PRAGMA locking_mode = EXCLUSIVE; BEGIN EXCLUSIVE;").unwrap();
        holder.execute("UPDATE files SET attempts = attempts + 1", []).unwrap();
        let err = Journal::open(&path).err().expect("a locked journal cannot be opened");
        let shown = err.to_string();
        assert!(shown.contains(&path.display().to_string()) && shown.contains("locked"), "{shown}");
        assert!(moved_aside(dir.path()).is_empty(), "nothing moved aside");

        holder.execute_batch("ROLLBACK").unwrap();
        drop(holder);
        let reopened = Journal::open(&path).unwrap();
        let kept = reopened.get(&RelativeMediaPath::parse("confrontas/a.pdf").unwrap()).await.unwrap();
        assert!(kept.is_some(), "the entry survived");
    }

    /// Issue 17 item 4: `unfinished()` scanned every entry, removed ones included, under the
    /// mutex the writer needs; pruning was one DELETE of everything at start-up.
    #[tokio::test]
    async fn unfinished_reads_only_its_index_and_pruning_goes_a_batch_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::open(&dir.path().join("j.sqlite3")).unwrap();
        let plan: Vec<String> = journal
            .with(|c| {
                let mut query = c.prepare(&format!(
                    "EXPLAIN QUERY PLAN SELECT {COLUMNS} FROM files WHERE {UNFINISHED} ORDER BY first_seen_ms"
                ))?;
                let rows = query.query_map([], |row| row.get::<_, String>(3))?;
                rows.collect()
            })
            .await
            .unwrap();
        assert!(plan.iter().any(|step| step.contains("files_unfinished")), "{plan:?}");
        assert!(!plan.iter().any(|step| step.contains("TEMP B-TREE")), "no sort: {plan:?}");

        let old = now_ms() - 100_000;
        journal
            .with(move |c| {
                c.execute(
                    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 25) \
                     INSERT INTO files (path, state, first_seen_ms, updated_ms) \
                     SELECT 'confrontas/' || i || '.pdf', 'removed', ?1, ?1 FROM n",
                    params![old],
                )
            })
            .await
            .unwrap();
        let mut kept = entry("confrontas/kept.pdf");
        kept.state = FileState::Removed;
        journal.put(&kept).await.unwrap();
        journal.put(&entry("confrontas/unfinished.pdf")).await.unwrap();
        assert_eq!(journal.prune_removed(50_000, 10).await.unwrap(), 10);
        assert_eq!(journal.prune_removed(50_000, 10).await.unwrap(), 10);
        assert_eq!(journal.prune_removed(50_000, 10).await.unwrap(), 5);
        assert_eq!(journal.prune_removed(50_000, 10).await.unwrap(), 0);
        journal.with(|c| give_back_pages(c, 100)).await.unwrap();
        let left: Vec<String> =
            journal.all().await.unwrap().into_iter().map(|e| e.path.as_str().to_owned()).collect();
        assert_eq!(left.len(), 2, "recently removed and unfinished entries stay: {left:?}");
    }

    #[test]
    fn every_state_parses_back() {
        for state in FileState::ALL {
            assert_eq!(FileState::parse(state.as_str()), Some(state));
        }
    }
}
