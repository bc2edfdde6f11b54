//! PostgreSQL backend of `SalesDb`, on tokio-postgres with one pipelined connection that is
//! re-opened after it drops.
//!
//! Row claims are session-level advisory locks on that connection: if the connection (or the
//! whole sidecar) dies, PostgreSQL releases them, so a crash never leaves a row locked.

use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::Mutex;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, NoTls, Row};

use super::{
    DbError, DbErrorKind, RecordOutcome, RecordRequest, RowCounts, SalesDb, SchemaLimits, Statements,
    VentaRow,
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
    client: Mutex<Option<Arc<Client>>>,
}

impl PostgresSalesDb {
    pub async fn connect(url: &str, statements: Statements) -> Result<Self, DbError> {
        let db = PostgresSalesDb { url: url.to_owned(), statements, client: Mutex::new(None) };
        db.client().await?;
        Ok(db)
    }

    /// The live connection, opening a new one if there is none or the last one closed.
    async fn client(&self) -> Result<Arc<Client>, DbError> {
        let mut guard = self.client.lock().await;
        if let Some(client) = guard.as_ref() {
            if !client.is_closed() {
                return Ok(client.clone());
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
        let client = Arc::new(client);
        *guard = Some(client.clone());
        Ok(client)
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
        let client = self.client().await?;
        let rows = client
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
        let client = self.client().await?;
        let rows = client
            .query(&self.statements.select_by_confronta, &[&path])
            .await
            .map_err(|e| map_error(&format!("finding the row of {path}"), e))?;
        Ok(rows.iter().map(venta_row).collect())
    }

    async fn get(&self, venta_id: i64) -> Result<Option<VentaRow>, DbError> {
        let client = self.client().await?;
        let row = client
            .query_opt(&self.statements.select_by_id, &[&venta_id])
            .await
            .map_err(|e| map_error(&format!("reading venta {venta_id}"), e))?;
        Ok(row.as_ref().map(venta_row))
    }

    async fn record(&self, request: &RecordRequest<'_>) -> Result<RecordOutcome, DbError> {
        let client = self.client().await?;
        let changed = client
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
            )
            .await
            .map_err(|e| map_error(&format!("recording venta {}", request.venta_id), e))?;
        Ok(if changed == 1 { RecordOutcome::Recorded } else { RecordOutcome::RowChanged })
    }

    async fn rows_with_local_file(&self, dir_prefix: &str, limit: i64) -> Result<Vec<VentaRow>, DbError> {
        let client = self.client().await?;
        let rows = client
            .query(&self.statements.select_local, &[&dir_prefix, &limit])
            .await
            .map_err(|e| map_error("listing rows with a local confronta", e))?;
        Ok(rows.iter().map(venta_row).collect())
    }

    async fn rows_in_minio(&self, limit: i64) -> Result<Vec<VentaRow>, DbError> {
        let client = self.client().await?;
        let rows = client
            .query(&self.statements.select_in_minio, &[&limit])
            .await
            .map_err(|e| map_error("listing rows stored in MinIO", e))?;
        Ok(rows.iter().map(venta_row).collect())
    }

    async fn referenced_objects(&self) -> Result<Vec<String>, DbError> {
        let client = self.client().await?;
        let rows = client
            .query(&self.statements.select_referenced, &[])
            .await
            .map_err(|e| map_error("listing referenced objects", e))?;
        Ok(rows.iter().map(|row| row.get::<_, String>(0)).collect())
    }

    async fn try_claim(&self, venta_id: i64) -> Result<bool, DbError> {
        let client = self.client().await?;
        let row = client
            .query_one(CLAIM_SQL, &[&self.claim_key(venta_id)])
            .await
            .map_err(|e| map_error(&format!("claiming venta {venta_id}"), e))?;
        Ok(row.get(0))
    }

    async fn release_claim(&self, venta_id: i64) {
        // A failed unlock only matters while this connection lives, and a lost connection
        // released the lock already.
        if let Ok(client) = self.client().await {
            let _ = client.execute(UNCLAIM_SQL, &[&self.claim_key(venta_id)]).await;
        }
    }

    fn supports_claims(&self) -> bool {
        true
    }

    async fn count_rows(&self, dir_prefix: &str) -> Result<RowCounts, DbError> {
        let client = self.client().await?;
        let row = client
            .query_one(&self.statements.count_rows, &[&dir_prefix])
            .await
            .map_err(|e| map_error("counting rows", e))?;
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
