//! PostgreSQL backend of `SalesRows` and `SalesReports`, on tokio-postgres.
//!
//! Three kinds of connection, so that nothing one file or one pass waits for holds up another:
//! - `main`, one pipelined connection for the statements that never wait for a row lock: row
//!   lookups, the claims, and the batched compare-and-sets (`batch`), which skip a row another
//!   transaction holds. Row claims are session-level advisory locks on it: if the connection
//!   (or the whole sidecar) dies, PostgreSQL releases them, so a crash never leaves a row
//!   locked.
//! - `bulk`, one connection for the reads of many rows (the reconcile pass, the operator
//!   commands), so a long read delays no file.
//! - `writers`, a small pool for the single-row compare-and-sets (a row its batch skipped, a
//!   refusal, the operator's `repoint` and `adopt`), each used by one write at a time: an
//!   UPDATE waits for a row another transaction holds locked, and on a pipelined connection
//!   every statement queued behind it would wait too. `lock_timeout` bounds that wait; the file
//!   is then retried alone, with backoff.
//!
//! A file costs at most two round trips: the lookup, which takes the row's claim in the same
//! statement (`find_and_claim`), and its share of a batch, whose statement records up to 16
//! rows in one commit and releases their claims.
//!
//! Every call has a deadline: the server cancels a statement after `statement_timeout`, and a
//! call with no answer by then plus `CLIENT_MARGIN` (a frozen peer: a hung pooler, a paused VM,
//! which neither answers nor closes) drops its connection and fails as "unavailable", which
//! the pipeline reports as the database being down. Keepalives notice a dead peer on an idle
//! connection.
//!
//! Each statement is prepared once per connection and reused: a statement sent as text costs a
//! second round trip (Parse/Describe before Bind/Execute) and a fresh plan every time. The
//! connections themselves live in `connection`.

mod batch;
mod connection;
mod tls;

use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::{Mutex, Semaphore};
use tokio_postgres::Row;

use self::connection::{Lane, Slot, Writers};
use super::{
    column_error, AdoptRequest, ColumnKind, DbError, DbErrorKind, FoundRow, NeededIndex, PresentColumn,
    PresentIndex, RecordOutcome, RecordRequest, RejectRequest, RepointRequest, RowCounts, SalesReports,
    SalesRows, SchemaLimits, Statements, VentaRow,
};
use crate::config::{redact_url, DatabaseConfig};

/// A row claim's advisory-lock key, as SQL: the row's table (`table`, an expression giving its
/// name, so that same-named tables in other schemas are told apart by OID; advisory locks are
/// per database already) and id (`id`, a bigint expression), hashed to 64 bits.
fn claim_key(table: &str, id: &str) -> String {
    format!("('x' || substr(md5(to_regclass({table})::oid::text || ':' || ({id})::text), 1, 16))::bit(64)::bigint")
}

/// The claim statements, built once per table: row claims are session-level advisory locks on
/// the `main` connection.
struct ClaimSql {
    /// `$1` the table, `$2` the id.
    claim: String,
    unclaim: String,
    /// The path lookup (`Statements::select_by_confronta`, `$1` the path) with each row's claim
    /// tried in the same statement (`$2` the table). The lookup sits in a subquery with its
    /// LIMIT, so the lock is tried only on the rows it returns.
    find_and_claim: String,
}

impl ClaimSql {
    fn new(statements: &Statements) -> ClaimSql {
        let id = "CAST($2 AS bigint)";
        ClaimSql {
            claim: format!("SELECT pg_try_advisory_lock({})", claim_key("$1", id)),
            unclaim: format!("SELECT pg_advisory_unlock({})", claim_key("$1", id)),
            find_and_claim: format!(
                "SELECT f.*, pg_try_advisory_lock({}) FROM ({}) AS f(venta_id, numero, confronta, object_name, \
                 sha256, subido, assigned)",
                claim_key("CAST($2 AS text)", "f.venta_id"),
                statements.select_by_confronta
            ),
        }
    }
}

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
    tls: tls::Tls,
    settings: PgSettings,
    statements: Statements,
    claims: ClaimSql,
    /// `batch::record_sql` for this table.
    batch_record: String,
    /// The compare-and-sets waiting to share a statement.
    records: batch::RecordQueue,
    main: Mutex<Slot>,
    bulk: Mutex<Slot>,
    writers: Writers,
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
        let invalid = |e: &dyn std::fmt::Display| {
            DbError::new(DbErrorKind::Schema, format!("database url {}: {e}", redact_url(url)))
        };
        let (driver_url, tls) = tls::settings(url).map_err(|e| invalid(&e))?;
        let mut config: tokio_postgres::Config = driver_url.parse().map_err(|e| invalid(&e))?;
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
            tls,
            settings,
            claims: ClaimSql::new(&statements),
            batch_record: batch::record_sql(
                &statements.table,
                &statements.columns,
                &format!("pg_advisory_unlock({})", claim_key("CAST($7 AS text)", "venta_id")),
            ),
            records: batch::RecordQueue::default(),
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

    /// Sends one batch of compare-and-sets (`batch`) on the `main` connection, which holds the
    /// claims its statement releases, and answers every file of it.
    async fn send_batch(&self, waiting: Vec<batch::Waiting>) {
        let columns = batch::Columns::of(&waiting);
        let what = || format!("recording {} ventas in one statement", columns.ids.len());
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 7] = [
            &columns.ids,
            &columns.confrontas,
            &columns.previous_objects,
            &columns.urls,
            &columns.object_names,
            &columns.sha256s,
            &self.statements.table,
        ];
        let sent = self.query(Lane::Main, &self.batch_record, &params, what).await.and_then(|rows| {
            rows.iter().map(|row| value::<i64>(row, 0, "the recorded ids")).collect::<Result<Vec<_>, _>>()
        });
        batch::answer(waiting, sent);
    }

    /// One single-row compare-and-set on a writer connection: `Recorded` when it changed the row.
    async fn compare_and_set(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
        what: impl FnOnce() -> String,
    ) -> Result<RecordOutcome, DbError> {
        let changed = self.write(sql, params, what).await?;
        Ok(if changed == 1 { RecordOutcome::Recorded } else { RecordOutcome::RowChanged })
    }

    /// The single-row compare-and-set, for a row its batch did not record.
    async fn record_alone(&self, request: &RecordRequest<'_>) -> Result<RecordOutcome, DbError> {
        self.compare_and_set(
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
        .await
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
        self.venta_rows(&rows)
    }

    async fn get(&self, venta_id: i64) -> Result<Option<VentaRow>, DbError> {
        let rows = self
            .query(Lane::Main, &self.statements.select_by_id, &[&venta_id], || {
                format!("reading venta {venta_id}")
            })
            .await?;
        rows.first().map(|row| self.venta_row(row)).transpose()
    }

    async fn find_and_claim(&self, path: &str) -> Result<Vec<FoundRow>, DbError> {
        let rows = self
            .query(Lane::Main, &self.claims.find_and_claim, &[&path, &self.statements.table], || {
                format!("finding and claiming the row of {path}")
            })
            .await?;
        rows.iter()
            .map(|row| {
                Ok(FoundRow { row: self.venta_row(row)?, claimed: value::<bool>(row, 7, "the claim")? })
            })
            .collect()
    }

    async fn record(&self, request: &RecordRequest<'_>) -> Result<RecordOutcome, DbError> {
        let mut answer = self.records.push(batch::OwnedRecord::of(request));
        let answer = loop {
            tokio::select! {
                biased;
                answer = &mut answer => break answer.map_err(|_| batch::abandoned(request.venta_id))?,
                _sending = self.records.sending.lock() => {
                    // This caller gathers and sends the next batch; its own file may be in it,
                    // or (behind a full batch of earlier ones) in the one after.
                    let waiting = self.records.gather().await;
                    if !waiting.is_empty() {
                        self.send_batch(waiting).await;
                    }
                }
            }
        };
        match answer {
            batch::Answer::Done(outcome) => outcome,
            batch::Answer::Alone => {
                let outcome = self.record_alone(request).await;
                if outcome.is_ok() {
                    self.release_claim(request.venta_id).await;
                }
                outcome
            }
        }
    }

    async fn reject(&self, request: &RejectRequest<'_>) -> Result<RecordOutcome, DbError> {
        self.compare_and_set(
            &self.statements.reject,
            &[&request.reason, &request.venta_id, &request.expected_confronta, &request.expected_object_name],
            || format!("recording the refusal of venta {}'s file", request.venta_id),
        )
        .await
    }

    async fn object_referenced(&self, object_name: &str) -> Result<bool, DbError> {
        let rows = self
            .query(Lane::Main, &self.statements.select_object_referenced, &[&object_name], || {
                format!("asking whether a row references {object_name}")
            })
            .await?;
        Ok(rows
            .first()
            .map(|row| value::<i64>(row, 0, "the reference count"))
            .transpose()?
            .is_some_and(|n| n > 0))
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
        self.venta_rows(&rows)
    }

    async fn try_claim(&self, venta_id: i64) -> Result<bool, DbError> {
        let rows = self
            .query(Lane::Main, &self.claims.claim, &[&self.statements.table, &venta_id], || {
                format!("claiming venta {venta_id}")
            })
            .await?;
        Ok(rows.first().map(|row| value::<bool>(row, 0, "the claim")).transpose()?.unwrap_or(false))
    }

    async fn release_claim(&self, venta_id: i64) {
        // A failed unlock only matters while this connection lives, and a lost connection
        // released the lock already.
        let _ = self
            .execute(Lane::Main, &self.claims.unclaim, &[&self.statements.table, &venta_id], String::new)
            .await;
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
        // The first schema on the search path that has the table, as an unqualified name finds it.
        let columns = session.client.query(
            "SELECT column_name::text, data_type::text, character_maximum_length::bigint \
             FROM information_schema.columns WHERE table_name = $1 AND table_schema = ( \
               SELECT s FROM unnest(current_schemas(false)) WITH ORDINALITY AS p(s, n) \
               WHERE EXISTS (SELECT 1 FROM information_schema.columns c WHERE c.table_name = $1 AND c.table_schema = p.s) \
               ORDER BY n LIMIT 1)",
            &params,
        );
        let rows = self.within(&session, || "reading the table's columns".to_owned(), columns).await?;
        let present = rows
            .iter()
            .map(|row| {
                let data_type: String = value(row, 1, "the table's columns")?;
                let max_len = value::<Option<i64>>(row, 2, "the table's columns")?.map(|n| n as usize);
                Ok(PresentColumn {
                    name: value(row, 0, "the table's columns")?,
                    kind: kind_of(&data_type),
                    declared: match max_len {
                        Some(len) => format!("{data_type}({len})"),
                        None => data_type,
                    },
                    max_len,
                })
            })
            .collect::<Result<Vec<_>, DbError>>()?;
        self.statements.check_columns(&present, false)
    }

    async fn missing_indexes(&self) -> Result<Vec<NeededIndex>, DbError> {
        let what = || format!("reading the indexes of {}", self.statements.table);
        // Key columns in order (an expression's as ''), and the predicate of a partial index.
        // An index left invalid by a failed CREATE INDEX CONCURRENTLY serves no query.
        let rows = self
            .query(
                Lane::Bulk,
                "SELECT ARRAY(SELECT coalesce(a.attname::text, '') \
                   FROM unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, n) \
                   LEFT JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum \
                   ORDER BY k.n), pg_get_expr(i.indpred, i.indrelid) \
                 FROM pg_index i WHERE i.indrelid = to_regclass($1) AND i.indisvalid",
                &[&self.statements.table],
                what,
            )
            .await?;
        let present = rows
            .iter()
            .map(|row| {
                Ok(PresentIndex {
                    columns: value(row, 0, "the indexes")?,
                    predicate: value(row, 1, "the indexes")?,
                })
            })
            .collect::<Result<Vec<_>, DbError>>()?;
        Ok(self.statements.missing_indexes(&present))
    }

    async fn rows_in_minio(&self, after_id: i64, limit: i64) -> Result<Vec<VentaRow>, DbError> {
        let rows = self
            .query(Lane::Bulk, &self.statements.select_in_minio, &[&after_id, &limit], || {
                "listing rows stored in MinIO".to_owned()
            })
            .await?;
        self.venta_rows(&rows)
    }

    async fn referenced_objects(&self, after_id: i64, limit: i64) -> Result<Vec<(i64, String)>, DbError> {
        let rows = self
            .query(Lane::Bulk, &self.statements.select_referenced, &[&after_id, &limit], || {
                "listing referenced objects".to_owned()
            })
            .await?;
        rows.iter()
            .map(|row| {
                Ok((
                    value(row, 0, "referenced objects")?,
                    value(row, 1, &self.statements.columns.minio_object_name)?,
                ))
            })
            .collect()
    }

    async fn referenced_among(&self, object_names: &[String]) -> Result<Vec<String>, DbError> {
        let names = object_names.to_vec();
        let rows = self
            .query(Lane::Bulk, &self.statements.select_referenced_among, &[&names], || {
                format!("asking which of {} objects a row references", names.len())
            })
            .await?;
        rows.iter().map(|row| value(row, 0, "referenced objects")).collect()
    }

    async fn count_rows(&self, dir_prefix: &str) -> Result<RowCounts, DbError> {
        let rows = self
            .query(Lane::Bulk, &self.statements.count_rows, &[&dir_prefix], || "counting rows".to_owned())
            .await?;
        let row =
            rows.first().ok_or_else(|| DbError::new(DbErrorKind::Refused, "counting rows: no result"))?;
        Ok(RowCounts { in_minio: value(row, 0, "counting rows")?, local: value(row, 1, "counting rows")? })
    }

    async fn sync_error(&self, venta_id: i64) -> Result<Option<String>, DbError> {
        let what = || format!("reading the sync error of venta {venta_id}");
        let rows = self.query(Lane::Bulk, &self.statements.select_sync_error, &[&venta_id], what).await?;
        match rows.first() {
            Some(row) => value(row, 0, &what()),
            None => Ok(None),
        }
    }

    async fn repoint(&self, request: &RepointRequest<'_>) -> Result<RecordOutcome, DbError> {
        self.compare_and_set(
            &self.statements.repoint,
            &[
                &request.url,
                &request.object_name,
                &request.sha256_hex,
                &request.venta_id,
                &request.expected_confronta,
                &request.expected_object_name,
            ],
            || format!("re-pointing venta {}", request.venta_id),
        )
        .await
    }

    async fn adopt(&self, request: &AdoptRequest<'_>) -> Result<RecordOutcome, DbError> {
        self.compare_and_set(
            &self.statements.adopt,
            &[&request.path, &request.venta_id, &request.expected_confronta, &request.expected_object_name],
            || format!("giving venta {} its file", request.venta_id),
        )
        .await
    }
}

impl PostgresSalesDb {
    /// One row of the row statements (`Statements::new`'s `SELECT`). Read with
    /// `try_get`: a column whose type changed under the daemon is an error naming it.
    fn venta_row(&self, row: &Row) -> Result<VentaRow, DbError> {
        Ok(VentaRow {
            id: self.column(row, 0)?,
            numero: self.column::<Option<String>>(row, 1)?.unwrap_or_default(),
            confronta: self.column(row, 2)?,
            minio_object_name: self.column(row, 3)?,
            sha256: self.column(row, 4)?,
            subido_a_minio: self.column::<Option<bool>>(row, 5)?.unwrap_or(false),
            assigned: self.column(row, 6)?,
        })
    }

    fn venta_rows(&self, rows: &[Row]) -> Result<Vec<VentaRow>, DbError> {
        rows.iter().map(|row| self.venta_row(row)).collect()
    }

    /// Column `index` of a row of the row statements, or an error naming that column.
    fn column<'a, T: tokio_postgres::types::FromSql<'a>>(
        &self,
        row: &'a Row,
        index: usize,
    ) -> Result<T, DbError> {
        row.try_get(index).map_err(|e| column_error(&self.statements, index, e))
    }
}

/// Column `index` of a row of any other statement, or an error saying what was being read.
fn value<'a, T: tokio_postgres::types::FromSql<'a>>(
    row: &'a Row,
    index: usize,
    what: &str,
) -> Result<T, DbError> {
    row.try_get(index).map_err(|e| DbError::new(DbErrorKind::Schema, format!("reading {what}: {e}")))
}

/// The kind of an `information_schema.columns.data_type`.
fn kind_of(data_type: &str) -> ColumnKind {
    match data_type {
        "smallint" | "integer" | "bigint" => ColumnKind::Integer,
        "character varying" | "text" => ColumnKind::Text,
        "boolean" => ColumnKind::Boolean,
        _ => ColumnKind::Other,
    }
}
