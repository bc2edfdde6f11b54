//! PostgreSQL connections: the three lanes (`main`, `bulk`, the `writers` pool), opening a
//! session with the settings the daemon relies on, the deadline on every call, and the mapping
//! of SQLSTATEs to `DbErrorKind`.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, NoTls, Row, Statement};

use super::tls::Tls;
use super::{PostgresSalesDb, CLIENT_MARGIN};
use crate::config::redact_url;
use crate::db::{DbError, DbErrorKind};

/// A lane's connection, and the last failure to open one.
#[derive(Default)]
pub(super) struct Slot {
    session: Option<Arc<Session>>,
    /// When the last open failed, and why: the calls that queued behind that attempt fail at
    /// once instead of each waiting out a connect timeout of its own, one after the other.
    failed: Option<(std::time::Instant, String)>,
}

/// How long a failed open answers for the calls queued behind it.
const FAILED_OPEN_HOLDS: Duration = Duration::from_secs(1);

/// One connection and the statements prepared on it (a prepared statement belongs to the
/// connection it was prepared on, so a reconnect starts with an empty cache).
pub(super) struct Session {
    pub(super) client: Client,
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
pub(super) struct Writers {
    pub(super) idle: std::sync::Mutex<Vec<Arc<Session>>>,
    pub(super) permits: Semaphore,
}

/// A writer connection lent to one call; it goes back to the pool when dropped, unless it broke.
pub(super) struct Lent<'a> {
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
pub(super) enum Lane {
    Main,
    Bulk,
}

impl PostgresSalesDb {
    /// Opens a connection and sets what the daemon relies on, within the connect timeout.
    pub(super) async fn open(&self) -> Result<Arc<Session>, DbError> {
        let what = || format!("connecting to {}", redact_url(&self.url));
        let connecting = async {
            // The connection future ends when the server closes it; the next call reconnects.
            let closed = |e: tokio_postgres::Error| tracing::debug!(error = %e, "postgres connection closed");
            let (client, connection) = match &self.tls {
                Tls::Plain => {
                    let (client, connection) = self.config.connect(NoTls).await?;
                    (client, tokio::spawn(async move { connection.await.unwrap_or_else(closed) }))
                }
                Tls::Rustls(tls) => {
                    let (client, connection) = self.config.connect(tls.clone()).await?;
                    (client, tokio::spawn(async move { connection.await.unwrap_or_else(closed) }))
                }
            };
            let connection = connection.abort_handle();
            let session =
                Arc::new(Session { client, prepared: std::sync::Mutex::new(HashMap::new()), connection });
            // The daemon deletes local files on the strength of a commit: it must be durable on
            // the server when acknowledged, whatever the server, database or role sets as
            // default. The timeouts make the server cancel what would otherwise wait forever.
            // A timestamp read as text (a row's `confronta_asignada_en`, compared with what an
            // earlier session read) must not change with the server's or role's time zone.
            session
                .client
                .batch_execute(&format!(
                    "SET synchronous_commit = on; SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'; \
                     SET statement_timeout = {}; SET lock_timeout = {}",
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
    pub(super) async fn session(&self, lane: Lane) -> Result<Arc<Session>, DbError> {
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
    pub(super) async fn writer(&self) -> Result<Lent<'_>, DbError> {
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
    pub(super) async fn within<T>(
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
    pub(super) async fn query(
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
    pub(super) async fn execute(
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
    pub(super) async fn write(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
        what: impl FnOnce() -> String,
    ) -> Result<u64, DbError> {
        let lent = self.writer().await?;
        self.within(&lent.session, what, lent.session.execute(sql, params)).await
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
