//! PostgreSQL backend of `SalesRows` and `SalesReports`, on tokio-postgres.
//!
//! Three kinds of connection, so that nothing one file or one pass waits for holds up another:
//! - `main`, one pipelined connection for the statements that never wait for a row lock (row
//!   lookups and the claims). Row claims are session-level advisory locks on it: if the
//!   connection (or the whole sidecar) dies, PostgreSQL releases them, so a crash never leaves
//!   a row locked.
//! - `bulk`, one connection for the reads of many rows (the reconcile pass, the operator
//!   commands), so a long read delays no file.
//! - `writers`, a small pool for the compare-and-sets, each used by one write at a time: an
//!   UPDATE waits for a row another transaction holds locked, and on a pipelined connection
//!   every statement queued behind it would wait too. `lock_timeout` bounds that wait; the file
//!   is then retried alone, with backoff.
//!
//! Every call has a deadline: the server cancels a statement after `statement_timeout`, and a
//! call with no answer by then plus `CLIENT_MARGIN` (a frozen peer: a hung pooler, a paused VM,
//! which neither answers nor closes) drops its connection and fails as "unavailable", which
//! the pipeline reports as the database being down. Keepalives notice a dead peer on an idle
//! connection.
//!
//! Each statement is prepared once per connection and reused: a statement sent as text costs a
//! second round trip (Parse/Describe before Bind/Execute) and a fresh plan every time, and the
//! pipeline runs four of them per file.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::{Mutex, Semaphore};
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, NoTls, Row, Statement};

use super::{
    DbError, DbErrorKind, RecordOutcome, RecordRequest, RejectRequest, RowCounts, SalesReports, SalesRows,
    SchemaLimits, Statements, VentaRow,
};
use crate::config::{redact_url, DatabaseConfig};

/// Row claims: session-level advisory locks keyed by the table's OID and the row id.
const CLAIM_SQL: &str = "SELECT pg_try_advisory_lock(('x' || substr(md5(\
     to_regclass(split_part($1, ':', 1))::oid::text || ':' || split_part($1, ':', 2)), 1, 16))::bit(64)::bigint)";
const UNCLAIM_SQL: &str = "SELECT pg_advisory_unlock(('x' || substr(md5(\
     to_regclass(split_part($1, ':', 1))::oid::text || ':' || split_part($1, ':', 2)), 1, 16))::bit(64)::bigint)";

/// How long past `statement_timeout` the client waits for an answer before it gives the
/// connection up: the server's own cancel comes first whenever the server is alive.
pub const CLIENT_MARGIN: Duration = Duration::from_secs(2);

/// The deadlines and pool size, from the `[database]` section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PgSettings {
    pub connect_timeout: Duration,
    pub statement_timeout: Duration,
    pub lock_timeout: Duration,
    pub keepalive_idle: Duration,
    pub pool_size: usize,
}

impl PgSettings {
    pub fn of(config: &DatabaseConfig) -> PgSettings {
        PgSettings {
            connect_timeout: Duration::from_secs(config.connect_timeout_s),
            statement_timeout: Duration::from_millis(config.statement_timeout_ms),
            lock_timeout: Duration::from_millis(config.lock_timeout_ms),
            keepalive_idle: Duration::from_secs(config.keepalive_idle_s),
            pool_size: config.pool_size,
        }
    }

    /// How long a call may go unanswered before its connection is given up.
    fn call_deadline(&self) -> Duration {
        self.statement_timeout + CLIENT_MARGIN
    }
}

impl Default for PgSettings {
    /// The config's defaults.
    fn default() -> PgSettings {
        PgSettings {
            connect_timeout: Duration::from_secs(10),
            statement_timeout: Duration::from_secs(30),
            lock_timeout: Duration::from_secs(2),
            keepalive_idle: Duration::from_secs(30),
            pool_size: 4,
        }
    }
}

pub struct PostgresSalesDb {
    url: String,
    config: tokio_postgres::Config,
    settings: PgSettings,
    statements: Statements,
    main: Mutex<Slot>,
    bulk: Mutex<Slot>,
    writers: Writers,
}

/// A lane's connection, and the last failure to open one.
#[derive(Default)]
struct Slot {
    session: Option<Arc<Session>>,
    /// When the last open failed, and why: the calls that queued behind that attempt fail at
    /// once instead of each waiting out a connect timeout of its own, one after the other.
    failed: Option<(std::time::Instant, String)>,
}

/// How long a failed open answers for the calls queued behind it.
const FAILED_OPEN_HOLDS: Duration = Duration::from_secs(1);

/// One connection and the statements prepared on it (a prepared statement belongs to the
/// connection it was prepared on, so a reconnect starts with an empty cache).
struct Session {
    client: Client,
    prepared: std::sync::Mutex<HashMap<String, Statement>>,
    /// The task driving the connection: aborted when the session is given up or dropped, so a
    /// frozen peer's socket is closed and every call queued on it fails at once.
    connection: tokio::task::AbortHandle,
}

impl Drop for Session {
    fn drop(&mut self) {
        self.connection.abort();
    }
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

    fn usable(&self) -> bool {
        !self.client.is_closed() && !self.connection.is_finished()
    }

    /// Runs one query through its prepared statement (prepared again once if its plan went
    /// stale).
    async fn query(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<Row>, tokio_postgres::Error> {
        let mut attempt = 0;
        loop {
            let result = match self.statement(sql).await {
                Ok(statement) => self.client.query(&statement, params).await,
                Err(e) => Err(e),
            };
            match result {
                Err(e) if attempt == 0 && self.stale_plan(&e) => attempt += 1,
                other => return other,
            }
        }
    }

    /// Runs one statement through its prepared statement; returns the rows it changed.
    async fn execute(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<u64, tokio_postgres::Error> {
        let mut attempt = 0;
        loop {
            let result = match self.statement(sql).await {
                Ok(statement) => self.client.execute(&statement, params).await,
                Err(e) => Err(e),
            };
            match result {
                Err(e) if attempt == 0 && self.stale_plan(&e) => attempt += 1,
                other => return other,
            }
        }
    }
}

/// The compare-and-set connections: idle ones wait in `idle`, `permits` bounds how many exist.
struct Writers {
    idle: std::sync::Mutex<Vec<Arc<Session>>>,
    permits: Semaphore,
}

/// A writer connection lent to one call; it goes back to the pool when dropped, unless it broke.
struct Lent<'a> {
    session: Arc<Session>,
    writers: &'a Writers,
    _permit: tokio::sync::SemaphorePermit<'a>,
}

impl Drop for Lent<'_> {
    fn drop(&mut self) {
        if self.session.usable() {
            self.writers.idle.lock().unwrap_or_else(|e| e.into_inner()).push(self.session.clone());
        }
    }
}

/// Which connection a call runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lane {
    Main,
    Bulk,
}

impl PostgresSalesDb {
    /// Connects with the config's default deadlines.
    pub async fn connect(url: &str, statements: Statements) -> Result<Self, DbError> {
        PostgresSalesDb::connect_with(url, statements, PgSettings::default()).await
    }

    pub async fn connect_with(
        url: &str,
        statements: Statements,
        settings: PgSettings,
    ) -> Result<Self, DbError> {
        // `xmin` changes with every write of the row: it tells a row written since we last
        // looked from one that was not (see `Pipeline::match_row`).
        let statements =
            Statements::with_row_version(&statements.table, &statements.columns, "CAST(xmin AS text)");
        let mut config: tokio_postgres::Config = url.parse().map_err(|e| {
            DbError::new(DbErrorKind::Schema, format!("database url {}: {e}", redact_url(url)))
        })?;
        let probe_every = (settings.keepalive_idle / 3).max(Duration::from_secs(1));
        config
            .connect_timeout(settings.connect_timeout)
            .keepalives(true)
            .keepalives_idle(settings.keepalive_idle)
            .keepalives_interval(probe_every)
            .keepalives_retries(3)
            // Data the peer never acknowledges (a host gone from the network) fails the
            // connection after as long as the keepalives would take.
            .tcp_user_timeout(settings.keepalive_idle + probe_every * 3);
        let db = PostgresSalesDb {
            url: url.to_owned(),
            config,
            settings,
            statements,
            main: Mutex::new(Slot::default()),
            bulk: Mutex::new(Slot::default()),
            writers: Writers {
                idle: std::sync::Mutex::new(Vec::new()),
                permits: Semaphore::new(settings.pool_size.max(1)),
            },
        };
        db.session(Lane::Main).await?;
        Ok(db)
    }

    /// Opens a connection and sets what the daemon relies on, within the connect timeout.
    async fn open(&self) -> Result<Arc<Session>, DbError> {
        let what = || format!("connecting to {}", redact_url(&self.url));
        let connecting = async {
            let (client, connection) = self.config.connect(NoTls).await?;
            let connection = tokio::spawn(async move {
                // The connection future ends when the server closes it; the next call reconnects.
                if let Err(e) = connection.await {
                    tracing::debug!(error = %e, "postgres connection closed");
                }
            })
            .abort_handle();
            let session =
                Arc::new(Session { client, prepared: std::sync::Mutex::new(HashMap::new()), connection });
            // The daemon deletes local files on the strength of a commit: it must be durable on
            // the server when acknowledged, whatever the server, database or role sets as
            // default. The timeouts make the server cancel what would otherwise wait forever.
            session
                .client
                .batch_execute(&format!(
                    "SET synchronous_commit = on; SET statement_timeout = {}; SET lock_timeout = {}",
                    self.settings.statement_timeout.as_millis(),
                    self.settings.lock_timeout.as_millis()
                ))
                .await?;
            Ok::<_, tokio_postgres::Error>(session)
        };
        match tokio::time::timeout(self.settings.connect_timeout + CLIENT_MARGIN, connecting).await {
            Ok(result) => result.map_err(|e| map_error(&what(), e)),
            Err(_) => Err(DbError::new(
                DbErrorKind::Unavailable,
                format!("{}: no answer within {:?}", what(), self.settings.connect_timeout + CLIENT_MARGIN),
            )),
        }
    }

    /// The live connection of `lane`, opening a new one if there is none or the last one closed.
    async fn session(&self, lane: Lane) -> Result<Arc<Session>, DbError> {
        let slot = match lane {
            Lane::Main => &self.main,
            Lane::Bulk => &self.bulk,
        };
        let mut slot = slot.lock().await;
        if let Some(session) = slot.session.as_ref() {
            if session.usable() {
                return Ok(session.clone());
            }
        }
        slot.session = None;
        if let Some((when, message)) = &slot.failed {
            if when.elapsed() < FAILED_OPEN_HOLDS {
                return Err(DbError::new(DbErrorKind::Unavailable, message.clone()));
            }
        }
        let session = match self.open().await {
            Ok(session) => session,
            Err(e) => {
                if e.is_unavailable() {
                    slot.failed = Some((std::time::Instant::now(), e.message.clone()));
                }
                return Err(e);
            }
        };
        slot.failed = None;
        slot.session = Some(session.clone());
        Ok(session)
    }

    /// A writer connection for one compare-and-set: an idle one, or a new one while the pool
    /// has room; else the call waits for one to come back (each is busy for at most
    /// `lock_timeout` on a locked row).
    async fn writer(&self) -> Result<Lent<'_>, DbError> {
        let permit = self
            .writers
            .permits
            .acquire()
            .await
            .map_err(|_| DbError::new(DbErrorKind::Unavailable, "the writer pool is closed"))?;
        let idle = {
            let mut idle = self.writers.idle.lock().unwrap_or_else(|e| e.into_inner());
            idle.retain(|session| session.usable());
            idle.pop()
        };
        let session = match idle {
            Some(session) => session,
            None => self.open().await?,
        };
        Ok(Lent { session, writers: &self.writers, _permit: permit })
    }

    /// Awaits `call` on `session` within the call deadline. Past it the peer is taken for
    /// frozen: the connection is dropped (failing whatever else waits on it) and the call
    /// fails as unavailable.
    async fn within<T>(
        &self,
        session: &Session,
        what: impl FnOnce() -> String,
        call: impl Future<Output = Result<T, tokio_postgres::Error>>,
    ) -> Result<T, DbError> {
        let deadline = self.settings.call_deadline();
        match tokio::time::timeout(deadline, call).await {
            Ok(result) => result.map_err(|e| map_error(&what(), e)),
            Err(_) => {
                session.connection.abort();
                Err(DbError::new(
                    DbErrorKind::Unavailable,
                    format!("{}: no answer within {deadline:?}; connection dropped", what()),
                ))
            }
        }
    }

    /// Runs one query on `lane`'s connection.
    async fn query(
        &self,
        lane: Lane,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
        what: impl FnOnce() -> String,
    ) -> Result<Vec<Row>, DbError> {
        let session = self.session(lane).await?;
        self.within(&session, what, session.query(sql, params)).await
    }

    /// Runs one statement on `lane`'s connection; returns the rows it changed.
    async fn execute(
        &self,
        lane: Lane,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
        what: impl FnOnce() -> String,
    ) -> Result<u64, DbError> {
        let session = self.session(lane).await?;
        self.within(&session, what, session.execute(sql, params)).await
    }

    /// Runs one compare-and-set on a writer connection of its own.
    async fn write(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
        what: impl FnOnce() -> String,
    ) -> Result<u64, DbError> {
        let lent = self.writer().await?;
        self.within(&lent.session, what, lent.session.execute(sql, params)).await
    }

    /// A setting as this daemon's own session sees it (`SHOW name`): the tests check that the
    /// session's `synchronous_commit` is `on` whatever the server's default.
    pub async fn session_setting(&self, name: &str) -> Result<String, DbError> {
        let session = self.session(Lane::Main).await?;
        let name = name.replace(|c: char| !(c.is_ascii_alphanumeric() || c == '_'), "");
        let sql = format!("SHOW {name}");
        let rows = self
            .within(&session, || format!("reading setting {name}"), session.client.simple_query(&sql))
            .await?;
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
impl SalesRows for PostgresSalesDb {
    async fn find_by_confronta(&self, path: &str) -> Result<Vec<VentaRow>, DbError> {
        let rows = self
            .query(Lane::Main, &self.statements.select_by_confronta, &[&path], || {
                format!("finding the row of {path}")
            })
            .await?;
        Ok(rows.iter().map(venta_row).collect())
    }

    async fn get(&self, venta_id: i64) -> Result<Option<VentaRow>, DbError> {
        let rows = self
            .query(Lane::Main, &self.statements.select_by_id, &[&venta_id], || {
                format!("reading venta {venta_id}")
            })
            .await?;
        Ok(rows.first().map(venta_row))
    }

    async fn record(&self, request: &RecordRequest<'_>) -> Result<RecordOutcome, DbError> {
        let changed = self
            .write(
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
            .write(
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
            .query(Lane::Main, &self.statements.select_object_referenced, &[&object_name], || {
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
            .query(Lane::Bulk, &self.statements.select_local, &[&dir_prefix, &after_id, &limit], || {
                "listing rows with a local confronta".to_owned()
            })
            .await?;
        Ok(rows.iter().map(venta_row).collect())
    }

    async fn try_claim(&self, venta_id: i64) -> Result<bool, DbError> {
        let rows = self
            .query(Lane::Main, CLAIM_SQL, &[&self.claim_key(venta_id)], || {
                format!("claiming venta {venta_id}")
            })
            .await?;
        Ok(rows.first().is_some_and(|row| row.get(0)))
    }

    async fn release_claim(&self, venta_id: i64) {
        // A failed unlock only matters while this connection lives, and a lost connection
        // released the lock already.
        let _ = self.execute(Lane::Main, UNCLAIM_SQL, &[&self.claim_key(venta_id)], String::new).await;
    }

    fn supports_claims(&self) -> bool {
        true
    }
}

#[async_trait]
impl SalesReports for PostgresSalesDb {
    async fn check_schema(&self) -> Result<SchemaLimits, DbError> {
        let session = self.session(Lane::Main).await?;
        let table: &(dyn tokio_postgres::types::ToSql + Sync) = &self.statements.table;
        let params = [table];
        let columns = session.client.query(
            "SELECT column_name::text, character_maximum_length::bigint FROM information_schema.columns \
             WHERE table_name = $1 AND table_schema = ANY(current_schemas(false))",
            &params,
        );
        let rows = self.within(&session, || "reading the table's columns".to_owned(), columns).await?;
        let present: Vec<(String, Option<usize>)> = rows
            .iter()
            .map(|row| (row.get::<_, String>(0), row.get::<_, Option<i64>>(1).map(|n| n as usize)))
            .collect();
        self.statements.check_columns(&present)
    }

    async fn rows_in_minio(&self, after_id: i64, limit: i64) -> Result<Vec<VentaRow>, DbError> {
        let rows = self
            .query(Lane::Bulk, &self.statements.select_in_minio, &[&after_id, &limit], || {
                "listing rows stored in MinIO".to_owned()
            })
            .await?;
        Ok(rows.iter().map(venta_row).collect())
    }

    async fn referenced_objects(&self, after_id: i64, limit: i64) -> Result<Vec<(i64, String)>, DbError> {
        let rows = self
            .query(Lane::Bulk, &self.statements.select_referenced, &[&after_id, &limit], || {
                "listing referenced objects".to_owned()
            })
            .await?;
        Ok(rows.iter().map(|row| (row.get::<_, i64>(0), row.get::<_, String>(1))).collect())
    }

    async fn referenced_among(&self, object_names: &[String]) -> Result<Vec<String>, DbError> {
        let names = object_names.to_vec();
        let rows = self
            .query(Lane::Bulk, &self.statements.select_referenced_among, &[&names], || {
                format!("asking which of {} objects a row references", names.len())
            })
            .await?;
        Ok(rows.iter().map(|row| row.get::<_, String>(0)).collect())
    }

    async fn count_rows(&self, dir_prefix: &str) -> Result<RowCounts, DbError> {
        let rows = self
            .query(Lane::Bulk, &self.statements.count_rows, &[&dir_prefix], || "counting rows".to_owned())
            .await?;
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
    {
        DbErrorKind::Unavailable
    } else if *code == SqlState::LOCK_NOT_AVAILABLE || *code == SqlState::T_R_DEADLOCK_DETECTED {
        // `lock_timeout` ran out on a row another transaction holds (or the two deadlocked):
        // this row is busy, the database is fine.
        DbErrorKind::RowLocked
    } else if text.starts_with("3D") // invalid catalog name: no such database
        || *code == SqlState::UNDEFINED_TABLE
        || *code == SqlState::UNDEFINED_COLUMN
    {
        DbErrorKind::Schema
    } else {
        DbErrorKind::Refused
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{Classify, ErrorClass};

    /// A row held past `lock_timeout` is that file's wait, not an outage: the pipeline marks the
    /// database down only for `Unavailable`. A statement the server cancelled at
    /// `statement_timeout` means the database is too slow for anything, so it is an outage.
    #[test]
    fn a_lock_timeout_is_a_busy_row_and_a_statement_timeout_an_outage() {
        assert_eq!(classify_state(&SqlState::LOCK_NOT_AVAILABLE), DbErrorKind::RowLocked);
        assert_eq!(classify_state(&SqlState::T_R_DEADLOCK_DETECTED), DbErrorKind::RowLocked);
        assert_eq!(classify_state(&SqlState::QUERY_CANCELED), DbErrorKind::Unavailable);
        let locked = DbError::new(DbErrorKind::RowLocked, "recording venta 1: lock timeout");
        assert!(!locked.is_unavailable());
        assert_eq!(locked.class(), ErrorClass::Transient);
    }
}
