//! The journal's file on disk: its lock, its tables and their migration to schema 2, how an
//! entry maps to a row and back (by column name), and setting a corrupt one aside.

use std::fs::File;
use std::path::{Path, PathBuf};

use rusqlite::config::DbConfig;
use rusqlite::{named_params, params, Connection, OptionalExtension};

use super::{now_ms, FileState, JournalEntry, JournalError, StoredHash, SCHEMA_VERSION};
use crate::error::{ErrorClass, Reason};
use crate::hash::{FileIdentity, Sha256Digest};
use crate::media_path::RelativeMediaPath;

pub(super) fn upsert(c: &Connection, entry: &JournalEntry) -> rusqlite::Result<()> {
    let hash = entry.hash.as_ref();
    let identity = entry.identity.as_ref();
    c.prepare_cached(&format!(
        "INSERT INTO files ({COLUMNS}) VALUES ({placeholders}) ON CONFLICT(path) DO UPDATE SET {updates}",
        placeholders = named(COLUMN_NAMES, ":"),
        updates = COLUMN_NAMES
            .iter()
            .filter(|column| **column != "path")
            .map(|column| format!("{column} = excluded.{column}"))
            .collect::<Vec<_>>()
            .join(", "),
    ))?
    .execute(named_params! {
        ":path": entry.path.as_str(),
        ":state": entry.state.as_str(),
        ":venta_id": entry.venta_id,
        ":previous_object": entry.previous_object,
        ":sha256": hash.map(|h| h.sha256.to_hex()),
        ":size": identity.map(|i| i.size as i64),
        ":dev": identity.map(|i| i.dev as i64),
        ":inode": identity.map(|i| i.inode as i64),
        ":mtime_ns": identity.map(|i| i.mtime_ns),
        ":part_digests": hash.map(|h| h.part_digests.iter().map(|d| d.to_hex()).collect::<Vec<_>>().join(",")),
        ":content_type": hash.map(|h| h.content_type.clone()),
        ":object_name": entry.object_name,
        ":attempts": entry.attempts,
        ":error_class": entry.error_class.map(ErrorClass::as_str),
        ":reason": entry.reason.map(Reason::as_str),
        ":last_error": entry.last_error,
        ":first_seen_ms": entry.first_seen_ms,
        // Every write stamps its own time: `updated_ms` says when the state last changed.
        ":updated_ms": now_ms(),
        ":upload_ms": entry.upload_ms,
        ":ctime_ns": identity.map(|i| i.ctime_ns),
        ":btime_ns": identity.and_then(|i| i.btime_ns),
        ":validated_with": entry.validated_with,
        ":row_assigned": entry.row_assigned,
    })?;
    Ok(())
}

/// `columns` as named placeholders (`:path, :state, …`).
fn named(columns: &[&str], sigil: &str) -> String {
    columns.iter().map(|column| format!("{sigil}{column}")).collect::<Vec<_>>().join(", ")
}

/// Keeps the history of recorded objects (`recorded_objects`) in step with an entry entering
/// `recorded`, in the same transaction: the object is remembered as this venta's, and every
/// other object remembered for the venta as superseded (the sale moved on from it).
pub(super) fn note_recorded(c: &Connection, entry: &JournalEntry) -> rusqlite::Result<()> {
    let (Some(venta_id), Some(object), Some(hash)) = (entry.venta_id, &entry.object_name, &entry.hash) else {
        return Ok(());
    };
    let now = now_ms();
    c.prepare_cached(
        "INSERT INTO recorded_objects (object_name, venta_id, path, sha256, size, recorded_ms, superseded_ms) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, NULL) \
         ON CONFLICT(object_name) DO UPDATE SET venta_id = excluded.venta_id, path = excluded.path, \
         sha256 = excluded.sha256, size = excluded.size, recorded_ms = excluded.recorded_ms, superseded_ms = NULL",
    )?
    .execute(params![
        object,
        venta_id,
        entry.path.as_str(),
        hash.sha256.to_hex(),
        entry.identity.map(|i| i.size as i64),
        now
    ])?;
    c.prepare_cached(
        "UPDATE recorded_objects SET superseded_ms = ?3 \
         WHERE venta_id = ?1 AND object_name <> ?2 AND superseded_ms IS NULL",
    )?
    .execute(params![venta_id, object, now])?;
    Ok(())
}

/// Entries whose file may still need work; the `files_unfinished` index holds exactly these.
pub(super) const UNFINISHED: &str = "state NOT IN ('removed', 'rejected', 'row_changed')";

/// The `files` columns an entry is written to and read from, by name.
pub(super) const COLUMN_NAMES: &[&str] = &[
    "path",
    "state",
    "venta_id",
    "previous_object",
    "sha256",
    "size",
    "dev",
    "inode",
    "mtime_ns",
    "part_digests",
    "content_type",
    "object_name",
    "attempts",
    "error_class",
    "reason",
    "last_error",
    "first_seen_ms",
    "updated_ms",
    "upload_ms",
    "ctime_ns",
    "btime_ns",
    "validated_with",
    "row_assigned",
];

/// `COLUMN_NAMES` as a select list.
pub(super) const COLUMNS: &str =
    "path, state, venta_id, previous_object, sha256, size, dev, inode, mtime_ns, \
     part_digests, content_type, object_name, attempts, error_class, reason, last_error, first_seen_ms, \
     updated_ms, upload_ms, ctime_ns, btime_ns, validated_with, row_assigned";

pub(super) fn read_entry(row: &rusqlite::Row<'_>) -> rusqlite::Result<JournalEntry> {
    let bad = |column: &str, what: &str| {
        let index = row.as_ref().column_index(column).unwrap_or(0);
        rusqlite::Error::FromSqlConversionFailure(index, rusqlite::types::Type::Text, what.to_owned().into())
    };
    let path: String = row.get("path")?;
    let path = RelativeMediaPath::parse(&path).map_err(|_| bad("path", "bad path"))?;
    let state: String = row.get("state")?;
    let state = FileState::parse(&state).ok_or_else(|| bad("state", "unknown state"))?;
    let sha: Option<String> = row.get("sha256")?;
    let hash = match sha {
        None => None,
        Some(hex_text) => {
            let parts: String = row.get::<_, Option<String>>("part_digests")?.unwrap_or_default();
            let part_digests = parts
                .split(',')
                .filter(|p| !p.is_empty())
                .map(|p| Sha256Digest::from_hex(p).ok_or_else(|| bad("part_digests", "bad part digest")))
                .collect::<Result<Vec<_>, _>>()?;
            Some(StoredHash {
                sha256: Sha256Digest::from_hex(&hex_text).ok_or_else(|| bad("sha256", "bad digest"))?,
                part_digests,
                content_type: row.get::<_, Option<String>>("content_type")?.unwrap_or_default(),
            })
        }
    };
    let identity = match row.get::<_, Option<i64>>("size")? {
        None => None,
        Some(size) => Some(FileIdentity {
            size: size as u64,
            dev: row.get::<_, i64>("dev")? as u64,
            inode: row.get::<_, i64>("inode")? as u64,
            mtime_ns: row.get("mtime_ns")?,
            // Written by a version without it: no file matches, so the entry starts over.
            ctime_ns: row.get::<_, Option<i64>>("ctime_ns")?.unwrap_or(i64::MIN),
            btime_ns: row.get("btime_ns")?,
        }),
    };
    Ok(JournalEntry {
        path,
        state,
        identity,
        venta_id: row.get("venta_id")?,
        previous_object: row.get("previous_object")?,
        hash,
        object_name: row.get("object_name")?,
        attempts: row.get("attempts")?,
        error_class: match row.get::<_, Option<String>>("error_class")? {
            None => None,
            Some(class) => {
                Some(ErrorClass::parse(&class).ok_or_else(|| bad("error_class", "unknown error class"))?)
            }
        },
        reason: match row.get::<_, Option<String>>("reason")? {
            None => None,
            Some(code) => Some(Reason::parse(&code).ok_or_else(|| bad("reason", "unknown reason"))?),
        },
        last_error: row.get("last_error")?,
        first_seen_ms: row.get("first_seen_ms")?,
        updated_ms: row.get("updated_ms")?,
        upload_ms: row.get("upload_ms")?,
        validated_with: row.get("validated_with")?,
        row_assigned: row.get("row_assigned")?,
    })
}

/// Schema 1 to 2, in one transaction: the columns version 1 added by probing (a journal
/// written before them gains them empty: its identities then match no file, so those entries
/// start over); the reason's code moved out of `last_error` (`"s3_unavailable: …"`, and a
/// refusal's `"quarantined: …"`) into `reason`, the sentence left in `last_error` (a text
/// without a known code stays whole, with no code); and `uploaded`, a state only early versions
/// wrote between the upload and `verified`, becomes `verified`, which resumes the same way
/// (the row asked for by id, then the object found holding the bytes and checked again).
fn migrate_from_1(connection: &Connection) -> rusqlite::Result<()> {
    let transaction = connection.unchecked_transaction()?;
    for (column, declaration) in [
        ("ctime_ns", "INTEGER"),
        ("btime_ns", "INTEGER"),
        ("validated_with", "TEXT"),
        ("row_assigned", "TEXT"),
        ("reason", "TEXT"),
    ] {
        let present: bool = transaction
            .prepare("SELECT 1 FROM pragma_table_info('files') WHERE name = ?1")?
            .exists(params![column])?;
        if !present {
            transaction.execute_batch(&format!("ALTER TABLE files ADD COLUMN {column} {declaration}"))?;
        }
    }
    let said: Vec<(String, String)> = transaction
        .prepare("SELECT path, last_error FROM files WHERE last_error IS NOT NULL AND reason IS NULL")?
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    for (path, text) in said {
        let Some((code, sentence)) = text.split_once(": ") else { continue };
        let Some(reason) = Reason::parse(code) else { continue };
        transaction.execute(
            "UPDATE files SET reason = ?2, last_error = ?3 WHERE path = ?1",
            params![path, reason.as_str(), sentence],
        )?;
    }
    transaction.execute("UPDATE files SET state = 'verified' WHERE state = 'uploaded'", [])?;
    transaction.execute(
        "UPDATE meta SET value = ?1 WHERE key = 'schema_version'",
        params![SCHEMA_VERSION.to_string()],
    )?;
    transaction.commit()
}

pub(super) fn take_lock(path: &Path) -> Result<File, JournalError> {
    let lock_path = PathBuf::from(format!("{}.lock", path.display()));
    let file =
        std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&lock_path).map_err(
            |e| JournalError::Io {
                path: path.to_owned(),
                message: format!("opening {}: {e}", lock_path.display()),
            },
        )?;
    // An exclusive flock (std's lock on Linux), tied to this open file: it lasts as long as the
    // returned `File`, which the journal keeps for the process's lifetime, and the kernel drops
    // it when the process dies, however it dies.
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => {
            Err(JournalError::Locked { path: path.to_owned(), lock: lock_path })
        }
        // Not another holder (locks unsupported on this file system, say): saying so would
        // send a rescan to a sibling journal that cannot be locked either.
        Err(std::fs::TryLockError::Error(e)) => Err(JournalError::Io {
            path: path.to_owned(),
            message: format!("locking {}: {e}", lock_path.display()),
        }),
    }
}

/// Moves a corrupt journal to `aside`, its `-wal` and `-shm` to `aside-wal` and `aside-shm`:
/// nothing is deleted, so it can be inspected (SQLite opens the three together, as they were),
/// and the world is the truth, so a fresh journal only costs re-work. The `-wal` goes first:
/// left beside a fresh journal it would be replayed into it.
pub(super) fn move_aside(path: &Path, aside: &Path) -> Result<(), String> {
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

pub(super) fn open_connection(path: &Path) -> Result<Connection, JournalError> {
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
    // A journal a newer version wrote is refused before anything here changes it (a rollback
    // must find it as that version left it).
    let has_meta: bool = connection
        .prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'")
        .and_then(|mut query| query.exists([]))
        .map_err(open_error)?;
    if has_meta {
        let found: Option<String> = connection
            .query_row("SELECT value FROM meta WHERE key = 'schema_version'", [], |row| row.get(0))
            .optional()
            .map_err(open_error)?;
        if let Some(version) = found.and_then(|v| v.parse::<i64>().ok()).filter(|v| *v > SCHEMA_VERSION) {
            return Err(JournalError::TooNew { path: path.to_owned(), found: version });
        }
    }
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
                 upload_ms INTEGER,
                 ctime_ns INTEGER,
                 btime_ns INTEGER,
                 validated_with TEXT,
                 row_assigned TEXT,
                 reason TEXT
             );
             CREATE INDEX IF NOT EXISTS files_state ON files(state);
             CREATE INDEX IF NOT EXISTS files_unfinished ON files(first_seen_ms) WHERE state NOT IN ('removed', 'rejected', 'row_changed');
             CREATE INDEX IF NOT EXISTS files_object ON files(object_name);
             CREATE TABLE IF NOT EXISTS missing_rows (
                 path TEXT NOT NULL,
                 venta_id INTEGER NOT NULL,
                 assigned TEXT NOT NULL,
                 seen_ms INTEGER NOT NULL,
                 PRIMARY KEY (path, venta_id, assigned)
             );
             CREATE TABLE IF NOT EXISTS operator_log (
                 at_ms INTEGER NOT NULL,
                 command TEXT NOT NULL,
                 path TEXT,
                 venta_id INTEGER,
                 detail TEXT NOT NULL
             );",
        )
        .map_err(open_error)?;
    // The history of recorded objects, kept past the pruning of `files`: what a restored
    // database lost, `repair` re-points from it, and `orphans` never deletes an object in it
    // unless the venta was seen moving on. A journal from before it gains it filled from its
    // `recorded` and `removed` entries (the latest of each venta current, the rest superseded).
    let history_exists: bool = connection
        .prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'recorded_objects'")
        .and_then(|mut query| query.exists([]))
        .map_err(open_error)?;
    if !history_exists {
        connection
            .execute_batch(
                "BEGIN;
                 CREATE TABLE recorded_objects (
                     object_name TEXT PRIMARY KEY,
                     venta_id INTEGER NOT NULL,
                     path TEXT NOT NULL,
                     sha256 TEXT NOT NULL,
                     size INTEGER,
                     recorded_ms INTEGER NOT NULL,
                     superseded_ms INTEGER
                 );
                 CREATE INDEX recorded_objects_venta ON recorded_objects(venta_id);
                 INSERT OR IGNORE INTO recorded_objects (object_name, venta_id, path, sha256, size, recorded_ms)
                     SELECT object_name, venta_id, path, sha256, size, updated_ms FROM files
                     WHERE state IN ('recorded', 'removed') AND object_name IS NOT NULL
                       AND venta_id IS NOT NULL AND sha256 IS NOT NULL;
                 UPDATE recorded_objects SET superseded_ms = recorded_ms WHERE EXISTS (
                     SELECT 1 FROM recorded_objects later WHERE later.venta_id = recorded_objects.venta_id
                       AND later.recorded_ms > recorded_objects.recorded_ms);
                 COMMIT;",
            )
            .map_err(open_error)?;
    }
    // Marks written by earlier versions hold PostgreSQL's `xmin` (which any write changes) and
    // one mark per row and path; compared with a stamp they would read as "assigned since".
    // They are dropped: the start-up scan notes every row still naming a missing file again.
    let old_marks: bool = connection
        .prepare("SELECT 1 FROM pragma_table_info('missing_rows') WHERE name = 'assigned' AND pk = 0")
        .and_then(|mut query| query.exists([]))
        .map_err(open_error)?;
    if old_marks {
        connection
            .execute_batch(
                "DROP TABLE missing_rows;
                 CREATE TABLE missing_rows (
                     path TEXT NOT NULL,
                     venta_id INTEGER NOT NULL,
                     assigned TEXT NOT NULL,
                     seen_ms INTEGER NOT NULL,
                     PRIMARY KEY (path, venta_id, assigned)
                 );",
            )
            .map_err(open_error)?;
    }
    let found: Option<String> = connection
        .query_row("SELECT value FROM meta WHERE key = 'schema_version'", [], |row| row.get(0))
        .optional()
        .map_err(open_error)?;
    match found.and_then(|v| v.parse::<i64>().ok()) {
        None => {
            // Made by the statements above, or by a version before the `meta` table kept one:
            // the column probes bring the latter up to date too.
            migrate_from_1(&connection).map_err(open_error)?;
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
        Some(version) if version < 2 => migrate_from_1(&connection).map_err(open_error)?,
        Some(_) => {}
    }
    connection.set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, false).map_err(open_error)?;
    Ok(connection)
}
