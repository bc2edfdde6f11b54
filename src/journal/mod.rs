//! The local SQLite journal: each file's progress, written (and fsynced) before the side
//! effect it guards, so a crash at any instant resumes instead of losing or repeating work.
//!
//! # Format
//! Schema version 2 (`meta.schema_version`; a version-1 journal is migrated at open,
//! `schema::migrate_from_1`). One row per relative media path in `files`.
//! WAL mode with `synchronous=FULL`: a state is on disk when `put` returns. The one exception
//! is `removed` after a file's move (`put_unsynced`): committed, not fsynced, since a power cut
//! that loses it leaves `recorded` with the file gone, which a restart finishes the same way.
//!
//! # What a restart does in each state
//! The journal is a hint, never the truth: on restart every unfinished entry is re-checked
//! against the world (the local file, the object, the row) before anything is done. A file that
//! is not the version an entry describes (device, inode, size, mtime, ctime, birth time) starts
//! a new entry, unless the entry is `recorded`, or `refusing` and the file is the refused one
//! with only its ctime moved (by its rename to quarantine, whose removal a power cut took
//! back). The first six lines below are where the pipeline starts a run (`Stage::at_open`, one
//! arm each, in this order; `pipeline::tests` holds the two together); the three lines starting
//! with `…` are the stages a resumed run then goes through (`Pipeline::drive`):
//! - `recorded`: the row is read again; only if it still points at the object is the object
//!   stat'ed (uploaded again from the local file if it vanished), the old object of a corrected
//!   venta deleted, and the local file unlinked, if it is still the file that was hashed.
//! - `refusing`: validation refused the file. If it is still there, the row's `confronta` is
//!   cleared with the reason (a compare-and-set, harmless to repeat), then the file is moved to
//!   quarantine; if it is gone, the move already happened (`rejected`).
//! - `removed`, `rejected`, `row_changed`: terminal for that file version. A new file at the
//!   same path starts a new entry; a version kept by an earlier run is tried once more from the
//!   start.
//! - any other state, the local file gone: if the row (asked by id) points at the object, a
//!   `verified` entry goes on as `recorded` (its `recorded` write, committed without waiting for
//!   an fsync, was taken back by a power cut after the unlink), and a `hashed` one was finished
//!   elsewhere (`removed`); if nothing was sent anywhere, the entry is forgotten; otherwise the
//!   object is left for the orphan report (`rejected`).
//! - `seen`, `waiting_for_row`, `failed`, `orphan`: start over at match and hash; nothing was
//!   written anywhere yet, or what was written is re-checked by the steps themselves.
//! - `hashed`, `verified`: `verified` first asks for the row by id (a crash after its
//!   compare-and-set leaves a row that no longer names the path) and goes on as `recorded` if
//!   it points at the object. Then the row is matched and claimed again and the journaled hash
//!   reused (the file validated again if the validation settings changed), …
//!   (The `uploaded` state of early versions became `verified` in schema 2: a crash between the
//!   upload and `verified` resumes from `hashed`.)
//! - … the object is stat'ed: if it holds exactly the hashed bytes the upload is skipped,
//!   otherwise it is repeated, …
//! - … the object is verified again (the local file must still be the hashed one), …
//! - … and the row is recorded with the compare-and-set, which is harmless to repeat.
//!
//! # Rows that named a missing file
//! `missing_rows` remembers each row seen naming a path while no file stood there, with the
//! row's assignment stamp then (`confronta_asignada_en`) and since when, one mark per stamp. A
//! file that appears at that path later is not matched to that row while its stamp is one it
//! was seen stale with (only a save that assigns a file gives it a new one): Django reuses a free
//! name, and the new file belongs to the sale whose INSERT is about to commit, not to the old
//! row (`Pipeline::owners`). Marks are kept, not replaced: a restored database can bring an old
//! stamp back. Journals from before this kept the
//! row's `xmin` instead; those marks are dropped on open, and the start-up scan notes again
//! every row still naming a missing file.
//!
//! # What was recorded
//! `recorded_objects` keeps, for every object the daemon recorded, the venta, the path, the
//! checksum and the size, in the same transaction as the `recorded` state; recording another
//! object for the venta marks it superseded. It is never pruned: `orphans --delete-objects`
//! keeps what it holds as current, and `repair` points a restored row back at it. A journal
//! from before it fills it at open from its `recorded` and `removed` entries. `operator_log`
//! notes what `adopt` did. `probes` keeps the last start-up probe's result per endpoint and
//! bucket (`probes.rs`), so that a bucket that keeps versions is probed once, not at every start.
//!
//! If the journal is deleted, a new empty one is made. If SQLite reports it corrupt
//! (`SQLITE_CORRUPT`, `SQLITE_NOTADB`) at open, it is moved aside with its `-wal` and `-shm`
//! (`<name>.corrupt-<ms>`, `-wal`, `-shm`; never deleted) and rebuilt empty: every local file
//! goes through the pipeline again, and rows already pointing at MinIO are left alone, so the
//! cost is re-work, never a file. Any other failure to open it (locked by another program,
//! busy, unreadable) leaves it exactly as it is and is an error naming it: the daemon exits 5.

mod probes;
mod schema;
#[cfg(test)]
mod tests;
mod upkeep;
mod writer;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rusqlite::{params, Connection, OptionalExtension};

use crate::error::{Classify, ErrorClass, Reason};
use crate::hash::{FileIdentity, Sha256Digest};
use crate::media_path::RelativeMediaPath;
use schema::{move_aside, open_connection, read_entry, take_lock, COLUMNS, UNFINISHED};
use writer::{run_writer, WriteRequest};

/// Version 2: the failure reason's code in its own column (`reason`, beside the text in
/// `last_error`), columns read and written by name, and the legacy `uploaded` state retired
/// (`schema::migrate`).
pub const SCHEMA_VERSION: i64 = 2;

/// Where a file is in its journey. The labels (what the journal's `state` column holds) come from
/// the variant names.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    strum::EnumIter,
    strum::IntoStaticStr,
    strum::EnumString,
    strum::Display,
)]
#[strum(serialize_all = "snake_case")]
pub enum FileState {
    Seen,
    WaitingForRow,
    Hashed,
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
    /// Every state.
    pub fn all() -> impl Iterator<Item = FileState> {
        <FileState as strum::IntoEnumIterator>::iter()
    }

    pub fn as_str(self) -> &'static str {
        self.into()
    }

    pub fn parse(text: &str) -> Option<FileState> {
        text.parse().ok()
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

/// A row seen naming a path while no file stood there: it owns no file that appears there
/// later unless its save assigned one since (its `assigned` stamp changed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingMark {
    pub venta_id: i64,
    /// The row's assignment stamp when it was seen (`VentaRow::assigned`).
    pub assigned: Option<String>,
    /// When the row was first seen naming the missing path with that stamp.
    pub since_ms: i64,
}

/// One file's journal entry. Its fields are private: the pipeline reads them through the
/// getters below and changes them only through the named transitions, crate-private (`enter`
/// for the state, which only `Pipeline::drive` calls; `plan_upload`, `note_failure`, … for
/// what goes with it),
/// so that what a state means (`hashed` holds the object name and the hash, `refusing` the
/// reason) is kept by the few methods that set it, not by every caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalEntry {
    path: RelativeMediaPath,
    state: FileState,
    /// The file version this entry describes; a different identity at the path is a new file.
    identity: Option<FileIdentity>,
    venta_id: Option<i64>,
    /// The object the row referenced before ours (a corrected venta), deleted after recording.
    previous_object: Option<String>,
    hash: Option<StoredHash>,
    object_name: Option<String>,
    attempts: u32,
    error_class: Option<ErrorClass>,
    /// Why the file last did not move (the code `status`, `explain` and the metrics group by);
    /// `last_error` holds the sentence beside it.
    reason: Option<Reason>,
    last_error: Option<String>,
    first_seen_ms: i64,
    updated_ms: i64,
    /// How long the upload took, for `status`.
    upload_ms: Option<i64>,
    /// The validation settings (`Validator::fingerprint`) this version passed; a resumed entry
    /// is validated again when they changed since.
    validated_with: Option<String>,
    /// The assignment stamp of `venta_id`'s row when this version was matched to it: should
    /// another file appear at the path, the row named the path while its own file vanished,
    /// at this stamp (`Pipeline::open`).
    row_assigned: Option<String>,
}

/// What `hashed` records before the upload it guards: the row the file was matched to, the
/// object it is named, its hash and the validation settings it passed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadPlan {
    pub venta_id: i64,
    /// The row's assignment stamp when it was matched (`VentaRow::assigned`).
    pub row_assigned: Option<String>,
    pub object_name: String,
    pub hash: StoredHash,
    /// `Validator::fingerprint` of the rules the file passed.
    pub validated_with: String,
}

impl JournalEntry {
    /// A new entry in `seen`, for a path first seen at `now_ms`.
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
            reason: None,
            last_error: None,
            first_seen_ms: now_ms,
            updated_ms: now_ms,
            upload_ms: None,
            validated_with: None,
            row_assigned: None,
        }
    }

    /// A new entry in `seen` for the file version `identity` (`None`: none stands there).
    pub fn for_file(path: RelativeMediaPath, first_seen_ms: i64, identity: Option<FileIdentity>) -> Self {
        JournalEntry { identity, ..JournalEntry::new(path, first_seen_ms) }
    }

    pub fn path(&self) -> &RelativeMediaPath {
        &self.path
    }
    pub fn into_path(self) -> RelativeMediaPath {
        self.path
    }
    pub fn state(&self) -> FileState {
        self.state
    }
    pub fn identity(&self) -> Option<FileIdentity> {
        self.identity
    }
    pub fn venta_id(&self) -> Option<i64> {
        self.venta_id
    }
    pub fn previous_object(&self) -> &Option<String> {
        &self.previous_object
    }
    pub fn hash(&self) -> &Option<StoredHash> {
        &self.hash
    }
    pub fn object_name(&self) -> &Option<String> {
        &self.object_name
    }
    pub fn attempts(&self) -> u32 {
        self.attempts
    }
    pub fn error_class(&self) -> Option<ErrorClass> {
        self.error_class
    }
    pub fn reason(&self) -> Option<Reason> {
        self.reason
    }
    pub fn last_error(&self) -> &Option<String> {
        &self.last_error
    }
    pub fn first_seen_ms(&self) -> i64 {
        self.first_seen_ms
    }
    pub fn updated_ms(&self) -> i64 {
        self.updated_ms
    }
    pub fn upload_ms(&self) -> Option<i64> {
        self.upload_ms
    }
    pub fn validated_with(&self) -> &Option<String> {
        &self.validated_with
    }
    pub fn row_assigned(&self) -> &Option<String> {
        &self.row_assigned
    }

    /// Moves the entry to `state`. Only the pipeline's driver calls it (`Pipeline::drive`,
    /// and `settle` on its behalf), each time from the stage a step returned.
    pub(crate) fn enter(&mut self, state: FileState) {
        self.state = state;
    }

    /// What `hashed` records: the row, the object name, the hash and the rules passed.
    pub(crate) fn plan_upload(&mut self, plan: UploadPlan) {
        self.venta_id = Some(plan.venta_id);
        self.row_assigned = plan.row_assigned;
        self.object_name = Some(plan.object_name);
        self.hash = Some(plan.hash);
        self.validated_with = Some(plan.validated_with);
    }

    /// Whether the journal already records exactly this plan (a resumed entry): then nothing
    /// need be written before the upload.
    pub(crate) fn has_plan(&self, plan: &UploadPlan) -> bool {
        matches!(self.state, FileState::Hashed | FileState::Verified)
            && self.venta_id == Some(plan.venta_id)
            && self.row_assigned == plan.row_assigned
            && self.object_name.as_deref() == Some(plan.object_name.as_str())
            && self.validated_with.as_deref() == Some(plan.validated_with.as_str())
    }

    /// The file on disk is not the one hashed: the hash is dropped (the file is read again).
    pub(crate) fn forget_hash(&mut self) {
        self.hash = None;
    }

    /// The object the row pointed at before ours, retired once ours is recorded (`None`: none,
    /// or it is ours already).
    pub(crate) fn note_previous_object(&mut self, previous: Option<String>) {
        self.previous_object = previous;
    }

    /// How long the upload took, for `status`.
    pub(crate) fn note_upload_time(&mut self, ms: i64) {
        self.upload_ms = Some(ms);
    }

    /// Validation refused the file: the row that owns it (if one does) and the refusal, which
    /// `refusing` carries out after a crash.
    pub(crate) fn note_refused(&mut self, venta_id: Option<i64>, refusal: String) {
        self.venta_id = venta_id;
        self.note_failure(Reason::Quarantined, refusal);
    }

    /// Notes why the file did not move: the code and the sentence, each in its own column.
    pub(crate) fn note_failure(&mut self, reason: Reason, message: impl Into<String>) {
        self.reason = Some(reason);
        self.last_error = Some(message.into());
    }

    /// A failed run of this class: counted, with its reason (`note_failure`), at `now_ms`.
    pub(crate) fn count_failure(
        &mut self,
        class: ErrorClass,
        reason: Reason,
        message: impl Into<String>,
        now_ms: i64,
    ) {
        self.attempts += 1;
        self.error_class = Some(class);
        self.note_failure(reason, message);
        self.updated_ms = now_ms;
    }

    /// The file is kept for this reason, without a run's failure to count (its local copy
    /// vanished before its record).
    pub(crate) fn note_kept(&mut self, reason: Reason, message: impl Into<String>) {
        self.error_class = Some(ErrorClass::Rejected);
        self.note_failure(reason, message);
    }

    /// No reason stands any more (a wait for a row that is no longer a stale row's), the
    /// class of the last failure kept.
    pub(crate) fn clear_reason(&mut self) {
        self.reason = None;
        self.last_error = None;
    }

    /// The file moved on: no failure stands.
    pub(crate) fn clear_failure(&mut self) {
        self.clear_reason();
        self.error_class = None;
    }

    /// The entry was changed at `now_ms`.
    pub(crate) fn touch(&mut self, now_ms: i64) {
        self.updated_ms = now_ms;
    }

    /// `reason: sentence`, as logs and reports print a failure.
    pub fn failure_text(&self) -> Option<String> {
        match (self.reason, &self.last_error) {
            (Some(reason), Some(message)) => Some(format!("{reason}: {message}")),
            (Some(reason), None) => Some(reason.to_string()),
            (None, message) => message.clone(),
        }
    }
}

/// An entry as an earlier run could have left it, field by field: tests set up the journal a
/// crash leaves behind with it (the restart matrix), which the pipeline's transitions never
/// write directly. Not built into the daemon.
#[cfg(any(test, feature = "fakes"))]
#[derive(Debug, Clone)]
pub struct EntryFixture {
    pub path: RelativeMediaPath,
    pub state: FileState,
    pub identity: Option<FileIdentity>,
    pub venta_id: Option<i64>,
    pub previous_object: Option<String>,
    pub hash: Option<StoredHash>,
    pub object_name: Option<String>,
    pub attempts: u32,
    pub error_class: Option<ErrorClass>,
    pub reason: Option<Reason>,
    pub last_error: Option<String>,
    pub first_seen_ms: i64,
    pub updated_ms: i64,
    pub upload_ms: Option<i64>,
    pub validated_with: Option<String>,
    pub row_assigned: Option<String>,
}

#[cfg(any(test, feature = "fakes"))]
impl EntryFixture {
    /// A `seen` entry for `path`, first seen and updated at `now_ms`.
    pub fn new(path: RelativeMediaPath, now_ms: i64) -> EntryFixture {
        JournalEntry::new(path, now_ms).fixture()
    }

    pub fn entry(self) -> JournalEntry {
        let EntryFixture {
            path,
            state,
            identity,
            venta_id,
            previous_object,
            hash,
            object_name,
            attempts,
            error_class,
            reason,
            last_error,
            first_seen_ms,
            updated_ms,
            upload_ms,
            validated_with,
            row_assigned,
        } = self;
        JournalEntry {
            path,
            state,
            identity,
            venta_id,
            previous_object,
            hash,
            object_name,
            attempts,
            error_class,
            reason,
            last_error,
            first_seen_ms,
            updated_ms,
            upload_ms,
            validated_with,
            row_assigned,
        }
    }
}

#[cfg(any(test, feature = "fakes"))]
impl JournalEntry {
    /// This entry's fields, to change one for a test's set-up (`EntryFixture::entry` back).
    pub fn fixture(self) -> EntryFixture {
        let JournalEntry {
            path,
            state,
            identity,
            venta_id,
            previous_object,
            hash,
            object_name,
            attempts,
            error_class,
            reason,
            last_error,
            first_seen_ms,
            updated_ms,
            upload_ms,
            validated_with,
            row_assigned,
        } = self;
        EntryFixture {
            path,
            state,
            identity,
            venta_id,
            previous_object,
            hash,
            object_name,
            attempts,
            error_class,
            reason,
            last_error,
            first_seen_ms,
            updated_ms,
            upload_ms,
            validated_with,
            row_assigned,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("journal {path}: another confronta-sync holds its lock {lock}")]
    Locked { path: PathBuf, lock: PathBuf },
    #[error("journal {path}: {message}")]
    Io { path: PathBuf, message: String },
    /// An fsync of the journal failed: what it holds may not be on disk, so it takes no more
    /// writes and the daemon stops (a restart reopens it).
    #[error("journal {path}: an fsync failed ({message}); the journal takes no more writes until a restart")]
    Unusable { path: PathBuf, message: String },
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
            | JournalError::Unusable { .. }
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
    /// Set by the first failed fsync, the writer thread's or a direct write's (`run_writer`):
    /// the journal then takes no more writes.
    unusable: Arc<std::sync::atomic::AtomicBool>,
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
        // Only the daemon migrates; a reader of an older journal (the package upgraded, the
        // daemon not started since) says so instead of failing on a missing column.
        let version: Option<String> = connection
            .query_row("SELECT value FROM meta WHERE key = 'schema_version'", [], |row| row.get(0))
            .optional()
            .unwrap_or(None);
        match version.and_then(|v| v.parse::<i64>().ok()) {
            Some(found) if found < SCHEMA_VERSION => {
                return Err(JournalError::Io {
                    path: path.to_owned(),
                    message: format!(
                        "schema version {found}, older than this binary's {SCHEMA_VERSION}: start the daemon once (it migrates the journal), then run this again"
                    ),
                })
            }
            Some(found) if found > SCHEMA_VERSION => {
                return Err(JournalError::TooNew { path: path.to_owned(), found })
            }
            _ => {}
        }
        Ok(Journal {
            path: path.to_owned(),
            connection: Arc::new(Mutex::new(connection)),
            writer: None,
            _lock: None,
            unusable: Arc::default(),
        })
    }

    /// A journal that keeps nothing past the process: for `--dry-run`, which must not write the
    /// real one.
    pub fn in_memory() -> Result<Journal, JournalError> {
        let path = PathBuf::from(":memory:");
        let connection = open_connection(&path)?;
        Ok(Journal::with_writer(path, connection, None))
    }

    /// An in-memory copy of the journal at `path` (where there is one): for `--dry-run`, which
    /// must decide as the real run would (the real run reads what this journal remembers, such
    /// as the rows once seen naming a path while no file was there) and write nothing. The
    /// file is opened read-only and never locked; every table both schemas have is copied,
    /// column by column, so an older journal's rows come across too.
    pub fn in_memory_copy_of(path: &Path) -> Result<Journal, JournalError> {
        let journal = Journal::in_memory()?;
        if !path.exists() {
            return Ok(journal);
        }
        let copy_error =
            |e: rusqlite::Error| JournalError::CannotOpen { path: path.to_owned(), message: e.to_string() };
        let connection = journal.connection.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        // A URI, so that `mode=ro` holds: `%`, `?` and `#` in the path would otherwise end it
        // early (and attach some other file read-write).
        let escaped: String = path
            .display()
            .to_string()
            .chars()
            .map(|c| match c {
                '%' => "%25".to_owned(),
                '?' => "%3f".to_owned(),
                '#' => "%23".to_owned(),
                c => c.to_string(),
            })
            .collect();
        let uri = format!("file:{escaped}?mode=ro");
        connection.execute("ATTACH DATABASE ?1 AS real", [uri]).map_err(copy_error)?;
        let columns = |schema: &str, table: &str| -> rusqlite::Result<Vec<String>> {
            let mut statement = connection.prepare(&format!("PRAGMA {schema}.table_info(\"{table}\")"))?;
            let names = statement.query_map([], |row| row.get::<_, String>(1))?;
            names.collect()
        };
        let tables: Vec<String> = connection
            .prepare("SELECT name FROM main.sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name <> 'meta'")
            .and_then(|mut statement| statement.query_map([], |row| row.get(0))?.collect())
            .map_err(copy_error)?;
        for table in tables {
            let theirs = columns("real", &table).map_err(copy_error)?;
            let shared: Vec<String> = columns("main", &table)
                .map_err(copy_error)?
                .into_iter()
                .filter(|column| theirs.contains(column))
                .map(|column| format!("\"{column}\""))
                .collect();
            if shared.is_empty() {
                continue;
            }
            let list = shared.join(", ");
            connection
                .execute(&format!("INSERT OR REPLACE INTO main.\"{table}\" ({list}) SELECT {list} FROM real.\"{table}\""), [])
                .map_err(copy_error)?;
        }
        connection.execute("DETACH DATABASE real", []).map_err(copy_error)?;
        drop(connection);
        Ok(journal)
    }

    fn with_writer(path: PathBuf, connection: Connection, lock: Option<Arc<File>>) -> Journal {
        let unusable: Arc<std::sync::atomic::AtomicBool> = Arc::default();
        let connection = Arc::new(Mutex::new(connection));
        let (writer, requests) = std::sync::mpsc::channel();
        let shared = connection.clone();
        std::thread::Builder::new()
            .name("journal-writer".into())
            .spawn({
                let unusable = unusable.clone();
                move || run_writer(shared, requests, unusable)
            })
            .expect("spawn the journal writer thread");
        Journal { path, connection, writer: Some(writer), _lock: lock, unusable }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    async fn with<T, F>(&self, work: F) -> Result<T, JournalError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        on_blocking_thread(&self.connection, &self.path, &self.unusable, "journal worker", work).await
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
        self.write(entry, true).await
    }

    /// Writes the entry and commits it without waiting for an fsync: it survives the process
    /// dying (SIGKILL, a panic) as soon as this returns, and a power cut once any later `put`
    /// returns (the WAL is appended in order). Only for a state whose loss in a power cut a
    /// restart repairs on its own: `removed`, whose loss leaves `recorded` with the file gone,
    /// which finishes the same way.
    pub async fn put_unsynced(&self, entry: &JournalEntry) -> Result<(), JournalError> {
        self.write(entry, false).await
    }

    async fn write(&self, entry: &JournalEntry, fsync: bool) -> Result<(), JournalError> {
        let io = |message: String| JournalError::Io { path: self.path.clone(), message };
        let Some(writer) = &self.writer else {
            return Err(io("the journal is open read-only".into()));
        };
        let (done, wait) = tokio::sync::oneshot::channel();
        writer
            .send(WriteRequest { entry: entry.clone(), fsync, done })
            .map_err(|_| io("the journal writer stopped".into()))?;
        wait.await.map_err(|_| io("the journal writer stopped".into()))?.map_err(|failure| {
            if failure.fsync_failed {
                JournalError::Unusable { path: self.path.clone(), message: failure.message }
            } else {
                io(failure.message)
            }
        })
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

    /// Remembers that venta `venta_id` named `path` while no file was there, with assignment
    /// stamp `assigned`. Every stamp seen so is kept, not only the last: a database restored
    /// from a backup can bring an older stamp back, and it is as stale as when it was seen.
    /// Returns true the first time for this path and row (to log it once).
    pub async fn note_missing(
        &self,
        path: &RelativeMediaPath,
        venta_id: i64,
        assigned: Option<String>,
    ) -> Result<bool, JournalError> {
        let key = path.as_str().to_owned();
        self.with(move |c| {
            // The mark is what keeps a stale row from owning a reused name: committed with its
            // fsync, whatever level the writer's last batch left on this shared connection (an
            // unsynced `removed` leaves NORMAL, whose commit a power cut can undo).
            c.pragma_update(None, "synchronous", "FULL")?;
            let known: bool = c
                .prepare_cached("SELECT 1 FROM missing_rows WHERE path = ?1 AND venta_id = ?2")?
                .exists(params![key, venta_id])?;
            // Where the crash tests make the mark's fsync fail, as a dying disk does.
            #[cfg(feature = "failpoints")]
            if fail::eval("journal_mark_fsync", |_| ()).is_some() {
                return Err(rusqlite::Error::SqliteFailure(
                    rusqlite::ffi::Error { code: rusqlite::ErrorCode::SystemIoFailure, extended_code: 1034 },
                    Some("fsync failed (failpoint journal_mark_fsync)".into()),
                ));
            }
            c.prepare_cached(
                "INSERT INTO missing_rows (path, venta_id, assigned, seen_ms) VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT(path, venta_id, assigned) DO NOTHING",
            )?
            .execute(params![key, venta_id, stamp_key(&assigned), now_ms()])?;
            Ok(!known)
        })
        .await
    }

    /// The rows remembered as naming `path` while its file was missing.
    pub async fn missing_marks(&self, path: &RelativeMediaPath) -> Result<Vec<MissingMark>, JournalError> {
        let key = path.as_str().to_owned();
        self.with(move |c| {
            let mut query =
                c.prepare_cached("SELECT venta_id, assigned, seen_ms FROM missing_rows WHERE path = ?1")?;
            let rows = query.query_map(params![key], |row| {
                let stamp: String = row.get(1)?;
                Ok(MissingMark {
                    venta_id: row.get(0)?,
                    assigned: (!stamp.is_empty()).then_some(stamp),
                    since_ms: row.get(2)?,
                })
            })?;
            rows.collect()
        })
        .await
    }

    /// Whether the journal holds `object_name`, so `orphans --delete-objects` must leave it
    /// alone: an unfinished entry names it (the daemon may be uploading, verifying or recording
    /// it), or it is the object last recorded for its venta (`recorded_objects`), which only the
    /// venta moving on to another object releases: a restored database may have forgotten it.
    pub async fn holds_object(&self, object_name: &str) -> Result<bool, JournalError> {
        let name = object_name.to_owned();
        self.with(move |c| {
            let in_flight = c
                .prepare_cached(
                    "SELECT 1 FROM files WHERE object_name = ?1 AND state NOT IN ('removed', 'rejected', 'row_changed')",
                )?
                .exists(params![&name])?;
            Ok(in_flight || current_object(c, &name)?)
        })
        .await
    }

    /// The objects this journal recorded that no later record for the same venta superseded,
    /// by venta id (`repair` walks them).
    pub async fn current_objects(&self) -> Result<Vec<RecordedObject>, JournalError> {
        self.with(|c| {
            let mut query = c.prepare(&format!(
                "SELECT {RECORDED_COLUMNS} FROM recorded_objects WHERE superseded_ms IS NULL ORDER BY venta_id, recorded_ms"
            ))?;
            let rows = query.query_map([], read_recorded)?;
            rows.collect()
        })
        .await
    }

    /// Every object recorded for venta `venta_id`, oldest first, superseded ones included.
    pub async fn objects_of(&self, venta_id: i64) -> Result<Vec<RecordedObject>, JournalError> {
        self.with(move |c| {
            let mut query = c.prepare_cached(&format!(
                "SELECT {RECORDED_COLUMNS} FROM recorded_objects WHERE venta_id = ?1 ORDER BY recorded_ms"
            ))?;
            let rows = query.query_map(params![venta_id], read_recorded)?;
            rows.collect()
        })
        .await
    }

    /// The entries matched to venta `venta_id`, oldest first (`explain --venta`). The column
    /// has no index: one scan, which an operator command can afford and the daemon never asks.
    pub async fn entries_of_venta(&self, venta_id: i64) -> Result<Vec<JournalEntry>, JournalError> {
        self.with(move |c| {
            let mut query = c.prepare(&format!(
                "SELECT {COLUMNS} FROM files WHERE venta_id = ?1 ORDER BY first_seen_ms"
            ))?;
            let rows = query.query_map(params![venta_id], read_entry)?;
            rows.collect()
        })
        .await
    }

    /// Every object recorded from a file at `path`, oldest first (`explain PATH` of a file
    /// long moved: the venta it went to).
    pub async fn objects_from_path(
        &self,
        path: &RelativeMediaPath,
    ) -> Result<Vec<RecordedObject>, JournalError> {
        let key = path.as_str().to_owned();
        self.with(move |c| {
            let sql = format!(
                "SELECT {RECORDED_COLUMNS} FROM recorded_objects WHERE path = ?1 ORDER BY recorded_ms"
            );
            or_no_table(
                c.prepare(&sql).and_then(|mut query| query.query_map(params![key], read_recorded)?.collect()),
            )
        })
        .await
    }

    /// What operators did (`operator_log`) to `path` or to venta `venta_id`, oldest first.
    pub async fn operator_actions(
        &self,
        path: Option<&RelativeMediaPath>,
        venta_id: Option<i64>,
    ) -> Result<Vec<OperatorAction>, JournalError> {
        let key = path.map(|path| path.as_str().to_owned());
        self.with(move |c| {
            let sql = "SELECT at_ms, command, path, venta_id, detail FROM operator_log \
                       WHERE path = ?1 OR venta_id = ?2 ORDER BY at_ms";
            or_no_table(c.prepare(sql).and_then(|mut query| {
                query
                    .query_map(params![key, venta_id], |row| {
                        Ok(OperatorAction {
                            at_ms: row.get(0)?,
                            command: row.get(1)?,
                            path: row.get(2)?,
                            venta_id: row.get(3)?,
                            detail: row.get(4)?,
                        })
                    })?
                    .collect()
            }))
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
/// Notes what an operator did (`adopt`) in the journal at `path`, beside a running daemon
/// (SQLite's own locking, no journal lock), for `explain` and anyone reading the journal later.
pub fn log_operator_action(
    path: &Path,
    command: &str,
    media_path: &RelativeMediaPath,
    venta_id: i64,
    detail: &str,
) -> Result<(), JournalError> {
    let connection = open_connection(path)?;
    connection
        .execute(
            "INSERT INTO operator_log (at_ms, command, path, venta_id, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![now_ms(), command, media_path.as_str(), venta_id, detail],
        )
        .map(|_| ())
        .map_err(|e| JournalError::Io { path: path.to_owned(), message: e.to_string() })
}

/// One line of `operator_log`: what an operator command did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorAction {
    pub at_ms: i64,
    pub command: String,
    pub path: Option<String>,
    pub venta_id: Option<i64>,
    pub detail: String,
}

/// An object the daemon recorded on a venta's row (`recorded_objects`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedObject {
    pub object_name: String,
    pub venta_id: i64,
    /// The local path the file had.
    pub path: String,
    pub sha256: Sha256Digest,
    pub size: Option<u64>,
    pub recorded_ms: i64,
    /// When the daemon recorded another object for the same venta; `None` while this is the
    /// venta's document as far as the journal knows.
    pub superseded_ms: Option<i64>,
}

const RECORDED_COLUMNS: &str = "object_name, venta_id, path, sha256, size, recorded_ms, superseded_ms";

fn read_recorded(row: &rusqlite::Row<'_>) -> rusqlite::Result<RecordedObject> {
    let sha: String = row.get(3)?;
    Ok(RecordedObject {
        object_name: row.get(0)?,
        venta_id: row.get(1)?,
        path: row.get(2)?,
        sha256: Sha256Digest::from_hex(&sha).ok_or_else(|| {
            rusqlite::Error::FromSqlConversionFailure(3, rusqlite::types::Type::Text, "bad digest".into())
        })?,
        size: row.get::<_, Option<i64>>(4)?.map(|s| s as u64),
        recorded_ms: row.get(5)?,
        superseded_ms: row.get(6)?,
    })
}

/// A row's assignment stamp as `missing_rows` keys it: a row no save stamped (older rows,
/// writers that bypass the companion) is the empty text, so that it is one key like any other.
fn stamp_key(assigned: &Option<String>) -> String {
    assigned.clone().unwrap_or_default()
}

/// A read of a table a journal opened read-only may not have yet (one an older version
/// wrote): it holds nothing, which is what that journal knows.
fn or_no_table<T>(read: rusqlite::Result<Vec<T>>) -> rusqlite::Result<Vec<T>> {
    match read {
        Err(rusqlite::Error::SqliteFailure(_, Some(message))) if message.contains("no such table") => {
            Ok(Vec::new())
        }
        other => other,
    }
}

/// Whether `name` is the current object of the venta it was recorded for.
fn current_object(c: &Connection, name: &str) -> rusqlite::Result<bool> {
    // A journal opened read-only from an older version may not have the table yet.
    match c.prepare_cached("SELECT 1 FROM recorded_objects WHERE object_name = ?1 AND superseded_ms IS NULL")
    {
        Ok(mut query) => query.exists(params![name]),
        Err(rusqlite::Error::SqliteFailure(_, Some(message))) if message.contains("no such table") => {
            Ok(false)
        }
        Err(e) => Err(e),
    }
}

/// Runs `work` on `connection` on tokio's blocking pool (SQLite calls block), holding the
/// connection's lock for the call; `what` names the caller in the error if the task dies.
async fn on_blocking_thread<T, F>(
    connection: &Arc<Mutex<Connection>>,
    path: &Path,
    unusable: &Arc<std::sync::atomic::AtomicBool>,
    what: &str,
    work: F,
) -> Result<T, JournalError>
where
    T: Send + 'static,
    F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
{
    let connection = connection.clone();
    let owned_path = path.to_owned();
    let unusable = unusable.clone();
    tokio::task::spawn_blocking(move || {
        let guard = connection.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        work(&guard).map_err(|e| {
            // A failed fsync on these direct writes (a stale-row mark, a prune) means what the
            // writer's own would: nothing the journal says can be trusted to be on disk.
            if writer::fsync_failed(&e) {
                unusable.store(true, std::sync::atomic::Ordering::SeqCst);
                JournalError::Unusable { path: owned_path, message: e.to_string() }
            } else {
                JournalError::Io { path: owned_path, message: e.to_string() }
            }
        })
    })
    .await
    .map_err(|e| JournalError::Io { path: path.to_owned(), message: format!("{what} failed: {e}") })?
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
