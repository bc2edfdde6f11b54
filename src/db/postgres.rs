//! PostgreSQL backend of `SalesDb`, on tokio-postgres with one pipelined connection that is
//! re-opened after it drops.
//!
//! Row claims are session-level advisory locks on that connection: if the connection (or the
//! whole sidecar) dies, PostgreSQL releases them, so a crash never leaves a row locked.
//!
//! Each statement is prepared once per connection and reused: a statement sent as text costs a
//! second round trip (Parse/Describe before Bind/Execute) and a fresh plan every time, and the
//! pipeline runs four of them per file.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::Mutex;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, NoTls, Row, Statement};

use super::{
    DbError, DbErrorKind, RecordOutcome, RecordRequest, RejectRequest, RowCounts, SalesDb, SchemaLimits,
    Statements, VentaRow,
};
use crate::config::redact_url;

/// Row claims: session-level advisory locks keyed by the table's OID and the row id.
const CLAIM_SQL: &str = "SELECT pg_try_advisory_lock(('x' || substr(md5(\
     to_regclass(split_part($1, ':', 1))::oid::text || ':' || split_part($1, ':', 2)), 1, 16))::bit(64)::bigint)";
const UNCLAIM_SQL: &str = "SELECT pg_advisory_unlock(('x' || substr(md5(\
     to_regclass(split_part($1, ':', 1))::oid::text || ':' || split_part($1, ':', 2)), 1, 16))::bit(64)::bigint)";

pub struct PostgresSalesDb {
    url: String,
    statements: Statements,
    session: Mutex<Option<Arc<Session>>>,
}

/// One connection and the statements prepared on it (a prepared statement belongs to the
/// connection it was prepared on, so a reconnect starts with an empty cache).
struct Session {
    client: Client,
    prepared: std::sync::Mutex<HashMap<String, Statement>>,
}

impl Session {
    /// The statement for `sql`, prepared on first use.
    async fn statement(&self, sql: &str) -> Result<Statement, tokio_postgres::Error> {
        if let Some(statement) = self.prepared.lock().unwrap_or_else(|e| e.into_inner()).get(sql) {
            return Ok(statement.clone());
        }
        let statement = self.client.prepare(sql).await?;
        self.prepared.lock().unwrap_or_else(|e| e.into_inner()).insert(sql.to_owned(), statement.clone());
        Ok(statement)
    }

    /// Forgets every prepared statement.
    fn forget_statements(&self) {
        self.prepared.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    /// Whether `error` says a prepared plan went stale ("cached plan must not change result
    /// type", SQLSTATE 0A000, after a migration changed a selected column's type). The
    /// statements are forgotten so that the one retry prepares them afresh.
    fn stale_plan(&self, error: &tokio_postgres::Error) -> bool {
        let stale = error.code() == Some(&SqlState::FEATURE_NOT_SUPPORTED);
        if stale {
            self.forget_statements();
        }
        stale
    }
}

impl PostgresSalesDb {
    pub async fn connect(url: &str, statements: Statements) -> Result<Self, DbError> {
        // `xmin` changes with every write of the row: it tells a row written since we last
        // looked from one that was not (see `Pipeline::match_row`).
        let statements =
            Statements::with_row_version(&statements.table, &statements.columns, "CAST(xmin AS text)");
        let db = PostgresSalesDb { url: url.to_owned(), statements, session: Mutex::new(None) };
        db.session().await?;
        Ok(db)
    }

    /// The live connection, opening a new one if there is none or the last one closed.
    async fn session(&self) -> Result<Arc<Session>, DbError> {
        let mut guard = self.session.lock().await;
        if let Some(session) = guard.as_ref() {
            if !session.client.is_closed() {
                return Ok(session.clone());
            }
        }
        let (client, connection) = tokio_postgres::connect(&self.url, NoTls)
            .await
            .map_err(|e| map_error(&format!("connecting to {}", redact_url(&self.url)), e))?;
        tokio::spawn(async move {
            // The connection future ends when the server closes it; the next call reconnects.
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "postgres connection closed");
            }
        });
        // The daemon deletes local files on the strength of a commit: it must be durable on the
        // server when acknowledged, whatever the server, database or role sets as default.
        client
            .batch_execute("SET synchronous_commit = on")
            .await
            .map_err(|e| map_error("setting synchronous_commit = on", e))?;
        let session = Arc::new(Session { client, prepared: std::sync::Mutex::new(HashMap::new()) });
        *guard = Some(session.clone());
        Ok(session)
    }

    /// Runs one query through its prepared statement.
    async fn query(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
        what: impl FnOnce() -> String,
    ) -> Result<Vec<Row>, DbError> {
        let session = self.session().await?;
        let mut attempt = 0;
        loop {
            let result = match session.statement(sql).await {
                Ok(statement) => session.client.query(&statement, params).await,
                Err(e) => Err(e),
            };
            match result {
                Err(e) if attempt == 0 && session.stale_plan(&e) => attempt += 1,
                other => return other.map_err(|e| map_error(&what(), e)),
            }
        }
    }

    /// Runs one statement through its prepared statement; returns the rows it changed.
    async fn execute(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
        what: impl FnOnce() -> String,
    ) -> Result<u64, DbError> {
        let session = self.session().await?;
        let mut attempt = 0;
        loop {
            let result = match session.statement(sql).await {
                Ok(statement) => session.client.execute(&statement, params).await,
                Err(e) => Err(e),
            };
            match result {
                Err(e) if attempt == 0 && session.stale_plan(&e) => attempt += 1,
                other => return other.map_err(|e| map_error(&what(), e)),
            }
        }
    }

    /// A setting as this daemon's own session sees it (`SHOW name`): the tests check that the
    /// session's `synchronous_commit` is `on` whatever the server's default.
    pub async fn session_setting(&self, name: &str) -> Result<String, DbError> {
        let session = self.session().await?;
        let name = name.replace(|c: char| !(c.is_ascii_alphanumeric() || c == '_'), "");
        let rows = session
            .client
            .simple_query(&format!("SHOW {name}"))
            .await
            .map_err(|e| map_error(&format!("reading setting {name}"), e))?;
        rows.iter()
            .find_map(|message| match message {
                tokio_postgres::SimpleQueryMessage::Row(row) => row.get(0).map(str::to_owned),
                _ => None,
            })
            .ok_or_else(|| DbError::new(DbErrorKind::Refused, format!("SHOW {name}: no answer")))
    }

    /// The claim's key text: the table's OID (which tells apart same-named tables in other
    /// schemas; advisory locks are per database already) and the row id. SQL hashes it to 64 bits.
    fn claim_key(&self, venta_id: i64) -> String {
        format!("{}:{}", self.statements.table, venta_id)
    }
}

#[async_trait]
impl SalesDb for PostgresSalesDb {
    async fn check_schema(&self) -> Result<SchemaLimits, DbError> {
        let session = self.session().await?;
        let rows = session
            .client
            .query(
                "SELECT column_name::text, character_maximum_length::bigint FROM information_schema.columns \
                 WHERE table_name = $1 AND table_schema = ANY(current_schemas(false))",
                &[&self.statements.table],
            )
            .await
            .map_err(|e| map_error("reading the table's columns", e))?;
        let present: Vec<(String, Option<usize>)> = rows
            .iter()
            .map(|row| (row.get::<_, String>(0), row.get::<_, Option<i64>>(1).map(|n| n as usize)))
            .collect();
        self.statements.check_columns(&present)
    }

    async fn find_by_confronta(&self, path: &str) -> Result<Vec<VentaRow>, DbError> {
        let rows = self
            .query(&self.statements.select_by_confronta, &[&path], || format!("finding the row of {path}"))
            .await?;
        Ok(rows.iter().map(venta_row).collect())
    }

    async fn get(&self, venta_id: i64) -> Result<Option<VentaRow>, DbError> {
        let rows = self
            .query(&self.statements.select_by_id, &[&venta_id], || format!("reading venta {venta_id}"))
            .await?;
        Ok(rows.first().map(venta_row))
    }

    async fn record(&self, request: &RecordRequest<'_>) -> Result<RecordOutcome, DbError> {
        let changed = self
            .execute(
                &self.statements.record,
                &[
                    &request.url,
                    &request.object_name,
                    &request.sha256_hex,
                    &request.venta_id,
                    &request.expected_confronta,
                    &request.expected_object_name,
                ],
                || format!("recording venta {}", request.venta_id),
            )
            .await?;
        Ok(if changed == 1 { RecordOutcome::Recorded } else { RecordOutcome::RowChanged })
    }

    async fn reject(&self, request: &RejectRequest<'_>) -> Result<RecordOutcome, DbError> {
        let changed = self
            .execute(
                &self.statements.reject,
                &[
                    &request.reason,
                    &request.venta_id,
                    &request.expected_confronta,
                    &request.expected_object_name,
                ],
                || format!("recording the refusal of venta {}'s file", request.venta_id),
            )
            .await?;
        Ok(if changed == 1 { RecordOutcome::Recorded } else { RecordOutcome::RowChanged })
    }

    async fn object_referenced(&self, object_name: &str) -> Result<bool, DbError> {
        let rows = self
            .query(&self.statements.select_object_referenced, &[&object_name], || {
                format!("asking whether a row references {object_name}")
            })
            .await?;
        Ok(rows.first().is_some_and(|row| row.get::<_, i64>(0) > 0))
    }

    async fn rows_with_local_file(
        &self,
        dir_prefix: &str,
        after_id: i64,
        limit: i64,
    ) -> Result<Vec<VentaRow>, DbError> {
        let rows = self
            .query(&self.statements.select_local, &[&dir_prefix, &after_id, &limit], || {
                "listing rows with a local confronta".to_owned()
            })
            .await?;
        Ok(rows.iter().map(venta_row).collect())
    }

    async fn rows_in_minio(&self, after_id: i64, limit: i64) -> Result<Vec<VentaRow>, DbError> {
        let rows = self
            .query(&self.statements.select_in_minio, &[&after_id, &limit], || {
                "listing rows stored in MinIO".to_owned()
            })
            .await?;
        Ok(rows.iter().map(venta_row).collect())
    }

    async fn referenced_objects(&self, after_id: i64, limit: i64) -> Result<Vec<(i64, String)>, DbError> {
        let rows = self
            .query(&self.statements.select_referenced, &[&after_id, &limit], || {
                "listing referenced objects".to_owned()
            })
            .await?;
        Ok(rows.iter().map(|row| (row.get::<_, i64>(0), row.get::<_, String>(1))).collect())
    }

    async fn referenced_among(&self, object_names: &[String]) -> Result<Vec<String>, DbError> {
        let names = object_names.to_vec();
        let rows = self
            .query(&self.statements.select_referenced_among, &[&names], || {
                format!("asking which of {} objects a row references", names.len())
            })
            .await?;
        Ok(rows.iter().map(|row| row.get::<_, String>(0)).collect())
    }

    async fn try_claim(&self, venta_id: i64) -> Result<bool, DbError> {
        let rows = self
            .query(CLAIM_SQL, &[&self.claim_key(venta_id)], || format!("claiming venta {venta_id}"))
            .await?;
        Ok(rows.first().is_some_and(|row| row.get(0)))
    }

    async fn release_claim(&self, venta_id: i64) {
        // A failed unlock only matters while this connection lives, and a lost connection
        // released the lock already.
        let _ = self.execute(UNCLAIM_SQL, &[&self.claim_key(venta_id)], String::new).await;
    }

    fn supports_claims(&self) -> bool {
        true
    }

    async fn count_rows(&self, dir_prefix: &str) -> Result<RowCounts, DbError> {
        let rows =
            self.query(&self.statements.count_rows, &[&dir_prefix], || "counting rows".to_owned()).await?;
        let row =
            rows.first().ok_or_else(|| DbError::new(DbErrorKind::Refused, "counting rows: no result"))?;
        Ok(RowCounts { in_minio: row.get(0), local: row.get(1) })
    }
}

fn venta_row(row: &Row) -> VentaRow {
    VentaRow {
        id: row.get(0),
        numero: row.get::<_, Option<String>>(1).unwrap_or_default(),
        confronta: row.get(2),
        minio_object_name: row.get(3),
        sha256: row.get(4),
        subido_a_minio: row.get::<_, Option<bool>>(5).unwrap_or(false),
        version: row.get(6),
    }
}

/// Classifies a tokio-postgres error and names what was being done.
fn map_error(what: &str, error: tokio_postgres::Error) -> DbError {
    let kind = match error.code() {
        None => DbErrorKind::Unavailable,
        Some(code) => classify_state(code),
    };
    let detail = match error.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => {
            let mut text = error.to_string();
            if let Some(source) = std::error::Error::source(&error) {
                text.push_str(": ");
                text.push_str(&source.to_string());
            }
            text
        }
    };
    DbError::new(kind, format!("{what}: {detail}"))
}

fn classify_state(code: &SqlState) -> DbErrorKind {
    let text = code.code();
    if text.starts_with("08")  // connection exception
        || text.starts_with("57") // operator intervention: admin shutdown, pg_terminate_backend
        || text.starts_with("53") // insufficient resources: too many connections
        // Invalid authorization: a refused login mid-run (a role disabled, a password being
        // rotated) is an outage to wait out. At start-up every database error stops the
        // daemon anyway (exit code 3), so a wrong password is still reported at once.
        || text.starts_with("28")
        || *code == SqlState::T_R_SERIALIZATION_FAILURE
        || *code == SqlState::T_R_DEADLOCK_DETECTED
        || *code == SqlState::LOCK_NOT_AVAILABLE
    {
        DbErrorKind::Unavailable
    } else if text.starts_with("3D") // invalid catalog name: no such database
        || *code == SqlState::UNDEFINED_TABLE
        || *code == SqlState::UNDEFINED_COLUMN
    {
        DbErrorKind::Schema
    } else {
        DbErrorKind::Refused
    }
}
