//! SQLite backend of `SalesRows` and `SalesReports` (Django's default database), on rusqlite.
//!
//! rusqlite is blocking, so every call runs on tokio's blocking pool. SQLite has no
//! cross-process row locks; `try_claim` always succeeds and the compare-and-set in `record`
//! is what keeps two writers from recording one row twice.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension};

use super::{
    column_error, AdoptRequest, ColumnKind, DbError, DbErrorKind, NeededIndex, PresentColumn, PresentIndex,
    RecordOutcome, RecordRequest, RejectRequest, RepointRequest, RowCounts, SalesReports, SalesRows,
    SchemaLimits, Statements, VentaRow,
};

pub struct SqliteSalesDb {
    connection: Arc<Mutex<Connection>>,
    statements: Arc<Statements>,
}

impl SqliteSalesDb {
    pub fn open(path: &Path, statements: Statements) -> Result<Self, DbError> {
        // Never create the database: a missing file means a wrong path, not an empty CRM.
        let connection = Connection::open_with_flags(
            path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| DbError::new(DbErrorKind::Schema, format!("opening {}: {e}", path.display())))?;
        // Django writes to the same file; wait for its locks instead of failing at once.
        connection.busy_timeout(Duration::from_secs(10)).map_err(|e| map_error("setting busy_timeout", e))?;
        // Django leaves the file in rollback-journal mode, where a commit is the journal's
        // unlink: at FULL (the default) that unlink is not fsynced, so a power cut can roll a
        // record back after the daemon unlinked the local file. EXTRA fsyncs the folder after
        // it. A per-connection setting: Django's own connections are untouched.
        connection
            .pragma_update(None, "synchronous", "EXTRA")
            .map_err(|e| map_error("setting synchronous", e))?;
        Ok(SqliteSalesDb {
            connection: Arc::new(Mutex::new(connection)),
            statements: Arc::new(sqlite_placeholders(statements)),
        })
    }

    /// The file's journal mode and this connection's `synchronous` level (3 is EXTRA), which
    /// start-up and `check` log.
    pub async fn durability(&self) -> Result<(String, i64), DbError> {
        self.with(|connection, _| {
            let mode: String = connection
                .query_row("PRAGMA journal_mode", [], |row| row.get(0))
                .map_err(|e| map_error("reading journal_mode", e))?;
            let synchronous: i64 = connection
                .query_row("PRAGMA synchronous", [], |row| row.get(0))
                .map_err(|e| map_error("reading synchronous", e))?;
            Ok((mode, synchronous))
        })
        .await
    }

    async fn with<T, F>(&self, work: F) -> Result<T, DbError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection, &Statements) -> Result<T, DbError> + Send + 'static,
    {
        let connection = self.connection.clone();
        let statements = self.statements.clone();
        tokio::task::spawn_blocking(move || {
            let guard = connection.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            work(&guard, &statements)
        })
        .await
        .map_err(|e| DbError::new(DbErrorKind::Unavailable, format!("sqlite worker failed: {e}")))?
    }
}

/// SQLite reads `$1` as a named parameter; `?1` is its positional form.
fn sqlite_placeholders(mut statements: Statements) -> Statements {
    for sql in [
        &mut statements.select_by_confronta,
        &mut statements.select_by_id,
        &mut statements.record,
        &mut statements.select_local,
        &mut statements.select_in_minio,
        &mut statements.count_rows,
        &mut statements.select_referenced,
        &mut statements.select_object_referenced,
        &mut statements.reject,
        &mut statements.repoint,
        &mut statements.adopt,
    ] {
        *sql = sql.replace('$', "?");
    }
    statements.adopt = statements.adopt.replace(super::NOW_STAMP, "strftime('%Y-%m-%d %H:%M:%f', 'now')");
    // SQLite has no arrays: the batch comes as one JSON array, read back with json_each.
    statements.select_referenced_among = format!(
        "SELECT DISTINCT {object} FROM {table} WHERE {object} IN (SELECT value FROM json_each(?1))",
        object = statements.columns.minio_object_name,
        table = statements.table,
    );
    statements
}

#[async_trait]
impl SalesRows for SqliteSalesDb {
    async fn find_by_confronta(&self, path: &str) -> Result<Vec<VentaRow>, DbError> {
        let path = path.to_owned();
        self.with(move |connection, statements| {
            let mut query = connection
                .prepare_cached(&statements.select_by_confronta)
                .map_err(|e| map_error("preparing the row lookup", e))?;
            query
                .query_map(params![path], venta_row)
                .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
                .map_err(|e| map_read_error(statements, &format!("finding the row of {path}"), e))
        })
        .await
    }

    async fn get(&self, venta_id: i64) -> Result<Option<VentaRow>, DbError> {
        self.with(move |connection, statements| {
            connection
                .query_row(&statements.select_by_id, params![venta_id], venta_row)
                .optional()
                .map_err(|e| map_read_error(statements, &format!("reading venta {venta_id}"), e))
        })
        .await
    }

    async fn record(&self, request: &RecordRequest<'_>) -> Result<RecordOutcome, DbError> {
        let values = (
            request.url.to_owned(),
            request.object_name.to_owned(),
            request.sha256_hex.to_owned(),
            request.venta_id,
            request.expected_confronta.to_owned(),
            request.expected_object_name.map(str::to_owned),
        );
        self.with(move |connection, statements| {
            let (url, object, sha, id, confronta, previous) = values;
            let changed = connection
                .execute(&statements.record, params![url, object, sha, id, confronta, previous])
                .map_err(|e| map_error(&format!("recording venta {id}"), e))?;
            Ok(if changed == 1 { RecordOutcome::Recorded } else { RecordOutcome::RowChanged })
        })
        .await
    }

    async fn reject(&self, request: &RejectRequest<'_>) -> Result<RecordOutcome, DbError> {
        let values = (
            request.reason.to_owned(),
            request.venta_id,
            request.expected_confronta.to_owned(),
            request.expected_object_name.map(str::to_owned),
        );
        self.with(move |connection, statements| {
            let (reason, id, confronta, previous) = values;
            let changed = connection
                .execute(&statements.reject, params![reason, id, confronta, previous])
                .map_err(|e| map_error(&format!("recording the refusal of venta {id}'s file"), e))?;
            Ok(if changed == 1 { RecordOutcome::Recorded } else { RecordOutcome::RowChanged })
        })
        .await
    }

    async fn object_referenced(&self, object_name: &str) -> Result<bool, DbError> {
        let name = object_name.to_owned();
        self.with(move |connection, statements| {
            connection
                .query_row(&statements.select_object_referenced, params![name], |row| row.get::<_, i64>(0))
                .map(|count| count > 0)
                .map_err(|e| map_error(&format!("asking whether a row references {name}"), e))
        })
        .await
    }

    async fn rows_with_local_file(
        &self,
        dir_prefix: &str,
        after_id: i64,
        limit: i64,
    ) -> Result<Vec<VentaRow>, DbError> {
        let prefix = dir_prefix.to_owned();
        self.with(move |connection, statements| {
            let mut query = connection
                .prepare_cached(&statements.select_local)
                .map_err(|e| map_error("preparing the local-file listing", e))?;
            query
                .query_map(params![prefix, after_id, limit], venta_row)
                .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
                .map_err(|e| map_read_error(statements, "listing rows with a local confronta", e))
        })
        .await
    }

    async fn try_claim(&self, _venta_id: i64) -> Result<bool, DbError> {
        Ok(true)
    }

    async fn release_claim(&self, _venta_id: i64) {}

    fn supports_claims(&self) -> bool {
        false
    }
}

#[async_trait]
impl SalesReports for SqliteSalesDb {
    async fn check_schema(&self) -> Result<SchemaLimits, DbError> {
        self.with(|connection, statements| {
            let mut query = connection
                .prepare("SELECT name, type FROM pragma_table_info(?1)")
                .map_err(|e| map_error("reading the table's columns", e))?;
            let present = query
                .query_map(params![statements.table], |row| {
                    let name: String = row.get(0)?;
                    let declared: String = row.get(1)?;
                    Ok(PresentColumn {
                        name,
                        kind: affinity(&declared),
                        max_len: declared_length(&declared),
                        declared: if declared.is_empty() { "of no declared type".into() } else { declared },
                    })
                })
                .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
                .map_err(|e| map_error("reading the table's columns", e))?;
            // SQLite has no boolean type: Django's `bool` columns hold 0 and 1.
            statements.check_columns(&present, true)
        })
        .await
    }

    async fn missing_indexes(&self) -> Result<Vec<NeededIndex>, DbError> {
        self.with(|connection, statements| {
            let failed = |e| map_error(&format!("reading the indexes of {}", statements.table), e);
            let mut list = connection
                .prepare(
                    "SELECT il.name, il.partial, m.sql FROM pragma_index_list(?1) AS il \
                          LEFT JOIN sqlite_master AS m ON m.type = 'index' AND m.name = il.name",
                )
                .map_err(failed)?;
            let indexes = list
                .query_map(params![statements.table], |row| {
                    Ok((row.get::<_, String>(0)?, row.get::<_, bool>(1)?, row.get::<_, Option<String>>(2)?))
                })
                .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
                .map_err(failed)?;
            let mut columns = connection
                .prepare("SELECT coalesce(name, '') FROM pragma_index_info(?1) ORDER BY seqno")
                .map_err(failed)?;
            let mut present = Vec::with_capacity(indexes.len());
            for (name, partial, sql) in indexes {
                let key = columns
                    .query_map(params![name], |row| row.get::<_, String>(0))
                    .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
                    .map_err(failed)?;
                // SQLite keeps a partial index's predicate only in its CREATE statement.
                let predicate = partial.then(|| {
                    let sql = sql.unwrap_or_default();
                    let at = sql.to_ascii_uppercase().rfind(" WHERE ").map_or(0, |at| at + 7);
                    sql[at..].to_owned()
                });
                present.push(PresentIndex { columns: key, predicate });
            }
            Ok(statements.missing_indexes(&present))
        })
        .await
    }

    async fn rows_in_minio(&self, after_id: i64, limit: i64) -> Result<Vec<VentaRow>, DbError> {
        self.with(move |connection, statements| {
            let mut query = connection
                .prepare_cached(&statements.select_in_minio)
                .map_err(|e| map_error("preparing the MinIO listing", e))?;
            query
                .query_map(params![after_id, limit], venta_row)
                .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
                .map_err(|e| map_read_error(statements, "listing rows stored in MinIO", e))
        })
        .await
    }

    async fn referenced_objects(&self, after_id: i64, limit: i64) -> Result<Vec<(i64, String)>, DbError> {
        self.with(move |connection, statements| {
            let mut query = connection
                .prepare_cached(&statements.select_referenced)
                .map_err(|e| map_error("listing referenced objects", e))?;
            query
                .query_map(params![after_id, limit], |row| {
                    Ok((row.get::<_, i64>(0)?, row.get::<_, String>(1)?))
                })
                .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
                .map_err(|e| map_error("listing referenced objects", e))
        })
        .await
    }

    async fn referenced_among(&self, object_names: &[String]) -> Result<Vec<String>, DbError> {
        let names = serde_json::to_string(object_names).unwrap_or_else(|_| "[]".to_owned());
        let count = object_names.len();
        self.with(move |connection, statements| {
            let what = || format!("asking which of {count} objects a row references");
            let mut query = connection
                .prepare_cached(&statements.select_referenced_among)
                .map_err(|e| map_error(&what(), e))?;
            query
                .query_map(params![names], |row| row.get::<_, String>(0))
                .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
                .map_err(|e| map_error(&what(), e))
        })
        .await
    }

    async fn count_rows(&self, dir_prefix: &str) -> Result<RowCounts, DbError> {
        let prefix = dir_prefix.to_owned();
        self.with(move |connection, statements| {
            connection
                .query_row(&statements.count_rows, params![prefix], |row| {
                    Ok(RowCounts { in_minio: row.get(0)?, local: row.get(1)? })
                })
                .map_err(|e| map_error("counting rows", e))
        })
        .await
    }

    async fn sync_error(&self, venta_id: i64) -> Result<Option<String>, DbError> {
        self.with(move |connection, statements| {
            connection
                .query_row(&statements.select_sync_error, params![venta_id], |row| row.get(0))
                .optional()
                .map(Option::flatten)
                .map_err(|e| map_error(&format!("reading the sync error of venta {venta_id}"), e))
        })
        .await
    }

    async fn repoint(&self, request: &RepointRequest<'_>) -> Result<RecordOutcome, DbError> {
        let values = (
            request.url.to_owned(),
            request.object_name.to_owned(),
            request.sha256_hex.to_owned(),
            request.venta_id,
            request.expected_confronta.map(str::to_owned),
            request.expected_object_name.map(str::to_owned),
        );
        self.with(move |connection, statements| {
            let (url, object, sha, id, confronta, previous) = values;
            let changed = connection
                .execute(&statements.repoint, params![url, object, sha, id, confronta, previous])
                .map_err(|e| map_error(&format!("re-pointing venta {id}"), e))?;
            Ok(if changed == 1 { RecordOutcome::Recorded } else { RecordOutcome::RowChanged })
        })
        .await
    }

    async fn adopt(&self, request: &AdoptRequest<'_>) -> Result<RecordOutcome, DbError> {
        let values = (
            request.path.to_owned(),
            request.venta_id,
            request.expected_confronta.map(str::to_owned),
            request.expected_object_name.map(str::to_owned),
        );
        self.with(move |connection, statements| {
            let (path, id, confronta, object) = values;
            let changed = connection
                .execute(&statements.adopt, params![path, id, confronta, object])
                .map_err(|e| map_error(&format!("giving venta {id} its file"), e))?;
            Ok(if changed == 1 { RecordOutcome::Recorded } else { RecordOutcome::RowChanged })
        })
        .await
    }
}

fn venta_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<VentaRow> {
    Ok(VentaRow {
        id: row.get(0)?,
        numero: row.get::<_, Option<String>>(1)?.unwrap_or_default(),
        confronta: row.get(2)?,
        minio_object_name: row.get(3)?,
        sha256: row.get(4)?,
        subido_a_minio: row.get::<_, Option<bool>>(5)?.unwrap_or(false),
        assigned: row.get(6)?,
    })
}

/// The kind of a declared type, by SQLite's affinity rules (section 3.1 of "Datatypes In
/// SQLite"), with Django's `bool` (NUMERIC affinity) told apart as a boolean.
fn affinity(declared: &str) -> ColumnKind {
    let declared = declared.to_ascii_uppercase();
    if declared.contains("INT") {
        ColumnKind::Integer
    } else if ["CHAR", "CLOB", "TEXT"].iter().any(|t| declared.contains(t)) {
        ColumnKind::Text
    } else if declared.starts_with("BOOL") {
        ColumnKind::Boolean
    } else {
        ColumnKind::Other
    }
}

/// `map_error` for the queries that read rows: a value the column's Rust type cannot hold
/// (SQLite keeps whatever type each value came with) names the column and its config key.
fn map_read_error(statements: &Statements, what: &str, error: rusqlite::Error) -> DbError {
    match &error {
        rusqlite::Error::InvalidColumnType(index, ..)
        | rusqlite::Error::FromSqlConversionFailure(index, ..)
        | rusqlite::Error::IntegralValueOutOfRange(index, _) => {
            column_error(statements, *index, format_args!("{what}: {error}"))
        }
        _ => map_error(what, error),
    }
}

/// `varchar(200)` → `Some(200)`: Django declares lengths even though SQLite does not enforce
/// them, and the daemon enforces them itself so a move to PostgreSQL cannot break.
fn declared_length(declared: &str) -> Option<usize> {
    let open = declared.find('(')?;
    let close = declared[open..].find(')')? + open;
    declared[open + 1..close].trim().parse().ok()
}

fn map_error(what: &str, error: rusqlite::Error) -> DbError {
    let kind = match &error {
        rusqlite::Error::SqliteFailure(e, _)
            if matches!(e.code, rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) =>
        {
            DbErrorKind::Unavailable
        }
        rusqlite::Error::SqliteFailure(e, Some(message))
            if e.code == rusqlite::ErrorCode::Unknown
                && (message.contains("no such column") || message.contains("no such table")) =>
        {
            DbErrorKind::Schema
        }
        rusqlite::Error::SqliteFailure(e, _)
            if matches!(e.code, rusqlite::ErrorCode::CannotOpen | rusqlite::ErrorCode::SystemIoFailure) =>
        {
            DbErrorKind::Unavailable
        }
        _ => DbErrorKind::Refused,
    };
    DbError::new(kind, format!("{what}: {error}"))
}

#[cfg(test)]
mod tests {
    use super::{affinity, declared_length, ColumnKind, SqliteSalesDb};
    use crate::db::Statements;

    /// Issue 24 item 9: Django's SQLite file runs in rollback-journal mode, where a commit is
    /// the journal's unlink and only `synchronous = EXTRA` fsyncs the folder after it: at FULL
    /// a power cut can roll back a record after the local file was unlinked. The daemon's
    /// connection runs at EXTRA, whatever mode the file is in.
    #[tokio::test]
    async fn the_record_connection_fsyncs_the_commit_at_synchronous_extra() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite3");
        rusqlite::Connection::open(&path).unwrap().execute_batch("CREATE TABLE ventas (id INTEGER)").unwrap();
        let statements = Statements::new("ventas", &crate::config::ColumnNames::default());
        let db = SqliteSalesDb::open(&path, statements).unwrap();
        let (mode, synchronous) = db.durability().await.unwrap();
        assert_eq!(mode, "delete", "Django's default journal mode, left as it is");
        assert_eq!(synchronous, 3, "EXTRA");
    }

    #[test]
    fn affinity_reads_django_types() {
        assert_eq!(affinity("integer"), ColumnKind::Integer);
        assert_eq!(affinity("bigint"), ColumnKind::Integer);
        assert_eq!(affinity("varchar(100)"), ColumnKind::Text);
        assert_eq!(affinity("text"), ColumnKind::Text);
        assert_eq!(affinity("bool"), ColumnKind::Boolean);
        assert_eq!(affinity("real"), ColumnKind::Other);
    }

    #[test]
    fn declared_length_reads_django_types() {
        assert_eq!(declared_length("varchar(200)"), Some(200));
        assert_eq!(declared_length("VARCHAR( 64 )"), Some(64));
        assert_eq!(declared_length("text"), None);
        assert_eq!(declared_length("bool"), None);
    }
}
