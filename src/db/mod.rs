//! The SQL edge: two small traits over the Django sales table (`SalesRows`, what a file's
//! journey needs; `SalesReports`, the schema check and the operator commands' queries), with a
//! PostgreSQL and a SQLite backend chosen by the URL scheme.
//!
//! Both backends run the same SQL text (built once in `Statements`), so the conformance suite
//! in `tests/matching/db_conformance.rs` exercises one behaviour twice. The daemon only ever writes
//! the four MinIO columns and clears `confronta`; every other column is left alone.

mod postgres;
mod sqlite;

use std::sync::Arc;

use async_trait::async_trait;

use crate::config::{redact_url, ColumnNames, DatabaseConfig};
use crate::error::{Classify, ErrorClass, Reason};

pub use self::postgres::{PgSettings, PostgresSalesDb};
pub use self::sqlite::SqliteSalesDb;

/// One sale as far as the daemon cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VentaRow {
    pub id: i64,
    pub numero: String,
    /// The local path Django stored, relative to MEDIA_ROOT; `None` or `""` when there is none.
    pub confronta: Option<String>,
    pub minio_object_name: Option<String>,
    pub sha256: Option<String>,
    pub subido_a_minio: bool,
    /// When the row was last given a new file (`confronta_asignada_en`, as text): it changes
    /// only when a save assigns a file, never with writes of other columns. `None` for rows no
    /// such save has written (older rows, writers that bypass the companion).
    pub assigned: Option<String>,
}

/// A row found by path, and whether the lookup took this process's claim on it
/// (`SalesRows::find_and_claim`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundRow {
    pub row: VentaRow,
    /// This process now holds the row's claim; `false`: another process holds it.
    pub claimed: bool,
}

/// The compare-and-set that records an upload.
#[derive(Debug, Clone)]
pub struct RecordRequest<'a> {
    pub venta_id: i64,
    /// The row must still point at this local path...
    pub expected_confronta: &'a str,
    /// ...and at this object (or none), else someone changed it since we read it.
    pub expected_object_name: Option<&'a str>,
    pub url: &'a str,
    pub object_name: &'a str,
    pub sha256_hex: &'a str,
}

/// The compare-and-set that refuses a row's file: the row stops naming the path (so a file
/// Django later saves under the same name can never reach it) and says why.
#[derive(Debug, Clone)]
pub struct RejectRequest<'a> {
    pub venta_id: i64,
    pub expected_confronta: &'a str,
    pub expected_object_name: Option<&'a str>,
    /// Shown by the Django companion ("Confronta rechazada: …").
    pub reason: &'a str,
}

/// The compare-and-set that points a row back at an object the journal recorded for it
/// (`repair`, after a database restore): as the record, but expecting the row as `repair` read
/// it, whatever its path.
#[derive(Debug, Clone)]
pub struct RepointRequest<'a> {
    pub venta_id: i64,
    pub expected_confronta: Option<&'a str>,
    pub expected_object_name: Option<&'a str>,
    pub url: &'a str,
    pub object_name: &'a str,
    pub sha256_hex: &'a str,
}

/// The compare-and-set that gives a row a file an operator vouches for (`adopt`): the path,
/// the assignment stamp as the companion's save writes it, the flag back to false.
#[derive(Debug, Clone)]
pub struct AdoptRequest<'a> {
    pub venta_id: i64,
    pub path: &'a str,
    pub expected_confronta: Option<&'a str>,
    pub expected_object_name: Option<&'a str>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordOutcome {
    /// The row now points at the object and its local path is cleared.
    Recorded,
    /// No row matched: it was deleted, or its confronta or object changed meanwhile.
    RowChanged,
}

/// What the schema check learnt that later writes need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchemaLimits {
    /// Declared length of the URL column (`varchar(200)` in Django's URLField), if any.
    pub url_max_len: Option<usize>,
    pub object_name_max_len: Option<usize>,
}

/// A column of the sales table as the catalogue declares it, for the schema check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresentColumn {
    pub name: String,
    /// The type as declared (`character varying`, `varchar(100)`, `integer`), for messages.
    pub declared: String,
    pub kind: ColumnKind,
    /// Declared length (`varchar(200)` in Django's URLField), if any.
    pub max_len: Option<usize>,
}

/// What a column's declared type holds, as far as the daemon's reads and writes care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnKind {
    Integer,
    /// Variable-length text: PostgreSQL's `varchar` and `text`, SQLite's TEXT affinity.
    Text,
    Boolean,
    /// Anything else (`char(n)`, which pads what it holds with spaces; `numeric`; a date).
    Other,
}

impl ColumnKind {
    fn expected(self) -> &'static str {
        match self {
            ColumnKind::Integer => "an integer type (integer, bigint)",
            ColumnKind::Text => "a text type (varchar or text)",
            ColumnKind::Boolean => "boolean",
            ColumnKind::Other => "",
        }
    }
}

/// An index the daemon's queries rely on (`packaging/sql/` ships each); `check` and start-up
/// warn of a missing one, which costs a scan of the whole table per query, not correctness.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NeededIndex {
    /// On `confronta`: each file's row lookup.
    Confronta,
    /// On `id`, of rows whose `confronta` is set: the reconcile pass.
    Pending,
    /// On the object-name column: the reference check before an object is deleted.
    ObjectName,
}

impl NeededIndex {
    pub const ALL: [NeededIndex; 3] = [NeededIndex::Confronta, NeededIndex::Pending, NeededIndex::ObjectName];

    /// The shipped SQL that adds it.
    pub fn sql_file(self) -> &'static str {
        match self {
            NeededIndex::Confronta => "add_confronta_index.sql",
            NeededIndex::Pending => "add_confronta_pending_index.sql",
            NeededIndex::ObjectName => "add_confronta_object_name_index.sql",
        }
    }

    /// What goes slow without it.
    pub fn needed_by(self) -> &'static str {
        match self {
            NeededIndex::Confronta => "each file's row lookup reads the whole table",
            NeededIndex::Pending => "each reconcile pass reads the whole table",
            NeededIndex::ObjectName => "each check before an object is deleted reads the whole table",
        }
    }
}

/// One index of the sales table: its key columns in order (an expression as `""`) and its
/// predicate, if partial.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresentIndex {
    pub columns: Vec<String>,
    pub predicate: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbErrorKind {
    /// Connection refused, lost or terminated; the database is busy or locked.
    Unavailable,
    /// The table or a column is missing, or the credentials are refused.
    Schema,
    /// The database refused this particular write (a value too long, a constraint).
    Refused,
    /// The row is locked by another transaction past `lock_timeout`: only this file waits and
    /// is retried; the database is not down.
    RowLocked,
}

#[derive(Debug, thiserror::Error)]
#[error("database: {message}")]
pub struct DbError {
    pub kind: DbErrorKind,
    pub message: String,
}

impl DbError {
    pub fn new(kind: DbErrorKind, message: impl Into<String>) -> Self {
        DbError { kind, message: message.into() }
    }
    pub fn is_unavailable(&self) -> bool {
        self.kind == DbErrorKind::Unavailable
    }
}

/// One classification: the reason decides (`Reason::class`).
impl Classify for DbError {
    fn class(&self) -> ErrorClass {
        Reason::from(self).class()
    }
}

impl From<&DbError> for Reason {
    fn from(error: &DbError) -> Reason {
        match error.kind {
            DbErrorKind::Unavailable => Reason::DbUnavailable,
            DbErrorKind::Schema => Reason::DbSchema,
            DbErrorKind::Refused => Reason::DbRefused,
            DbErrorKind::RowLocked => Reason::DbRowLocked,
        }
    }
}

/// What one file's journey needs from the sales table: the row naming a path or an id, the two
/// compare-and-sets, the reference check before an object is deleted, the row claims, and the
/// walk over rows still naming a local file that feeds the scheduler. The pipeline holds only
/// this, so a fake of it (`testing::FakeSalesTable`) is enough to drive a file through every step.
#[async_trait]
pub trait SalesRows: Send + Sync {
    /// Rows whose `confronta` equals `path` (normally zero or one), lowest id first.
    async fn find_by_confronta(&self, path: &str) -> Result<Vec<VentaRow>, DbError>;
    async fn get(&self, venta_id: i64) -> Result<Option<VentaRow>, DbError>;
    /// The rows `find_by_confronta` finds, each claimed for this process as `try_claim` would
    /// (PostgreSQL takes the claims in the lookup's own statement: one round trip, not two).
    /// The caller releases every claim it does not keep.
    async fn find_and_claim(&self, path: &str) -> Result<Vec<FoundRow>, DbError> {
        let mut found = Vec::new();
        for row in self.find_by_confronta(path).await? {
            let claimed = self.try_claim(row.id).await?;
            found.push(FoundRow { row, claimed });
        }
        Ok(found)
    }
    /// Applies the compare-and-set; it also clears the row's sync error, and ends this
    /// process's claim on the row whichever outcome it returns (the row no longer names the
    /// path once recorded, and a file whose compare-and-set failed is matched again by a later
    /// run, which claims again). On an error the claim stays with the caller, whose run
    /// releases it as it ends.
    /// PostgreSQL shares one statement and one commit among the files recording at the same
    /// moment, each row judged on its own.
    async fn record(&self, request: &RecordRequest<'_>) -> Result<RecordOutcome, DbError>;
    /// Clears the row's `confronta` and writes the reason, in one compare-and-set.
    async fn reject(&self, request: &RejectRequest<'_>) -> Result<RecordOutcome, DbError>;
    /// Whether any row references the object (asked before deleting one).
    async fn object_referenced(&self, object_name: &str) -> Result<bool, DbError>;
    /// Rows still pointing at a local file under `dir_prefix` (e.g. `confrontas/`) whose id is
    /// above `after_id`, lowest id first: one page of a walk over every such row.
    async fn rows_with_local_file(
        &self,
        dir_prefix: &str,
        after_id: i64,
        limit: i64,
    ) -> Result<Vec<VentaRow>, DbError>;
    /// Tries to take this process's claim on a row, so two sidecars never work on it at once.
    /// Backends without cross-process locks return `true`; the compare-and-set still keeps
    /// the row consistent.
    async fn try_claim(&self, venta_id: i64) -> Result<bool, DbError>;
    async fn release_claim(&self, venta_id: i64);
    /// Whether `try_claim` keeps other processes off a row (PostgreSQL) or only this one.
    fn supports_claims(&self) -> bool;
}

/// The start-up schema check and the queries of the operator commands (`verify`, `status`,
/// `orphans`), which read many rows and write none.
#[async_trait]
pub trait SalesReports: Send + Sync {
    /// Checks that the table and every configured column exist with a type the daemon can
    /// read and write; the error names the missing or wrongly typed column.
    async fn check_schema(&self) -> Result<SchemaLimits, DbError>;
    /// The indexes the daemon's queries rely on that the table lacks. (The fakes have no
    /// indexes to miss.)
    async fn missing_indexes(&self) -> Result<Vec<NeededIndex>, DbError> {
        Ok(Vec::new())
    }
    /// Rows marked as stored in MinIO whose id is above `after_id`, lowest id first: one page
    /// of `verify`'s walk, so that a table of millions of rows is never held whole.
    async fn rows_in_minio(&self, after_id: i64, limit: i64) -> Result<Vec<VentaRow>, DbError>;
    /// (id, object name) of rows that reference an object, id above `after_id`, lowest id
    /// first: one page of `orphans`' walk over every reference.
    async fn referenced_objects(&self, after_id: i64, limit: i64) -> Result<Vec<(i64, String)>, DbError>;
    /// Which of `object_names` some row references, asked in one statement: `orphans
    /// --delete-objects` re-checks a batch of candidates right before deleting them, and one
    /// query per batch reads the table once where one per object would read it once each.
    async fn referenced_among(&self, object_names: &[String]) -> Result<Vec<String>, DbError>;
    /// How many rows are in MinIO and how many still point at a local file under `dir_prefix`.
    async fn count_rows(&self, dir_prefix: &str) -> Result<RowCounts, DbError>;
    /// Points a row back at an object the journal recorded for it, in one compare-and-set.
    async fn repoint(&self, request: &RepointRequest<'_>) -> Result<RecordOutcome, DbError>;
    /// Gives a row a file, with a new assignment stamp, in one compare-and-set.
    async fn adopt(&self, request: &AdoptRequest<'_>) -> Result<RecordOutcome, DbError>;
    /// Why the daemon refused venta `venta_id`'s file (`confronta_sync_error`), for `explain`;
    /// `None` when the row has none or does not exist.
    async fn sync_error(&self, venta_id: i64) -> Result<Option<String>, DbError>;
}

/// A whole backend, as `connect` opens it: the operator commands use both halves, and an
/// `Arc<dyn SalesDb>` coerces to the `Arc<dyn SalesRows>` the pipeline takes.
pub trait SalesDb: SalesRows + SalesReports {}

impl<T: SalesRows + SalesReports + ?Sized> SalesDb for T {}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct RowCounts {
    pub in_minio: i64,
    pub local: i64,
}

/// Opens the backend named by `config.url`.
pub async fn connect(config: &DatabaseConfig) -> Result<Arc<dyn SalesDb>, DbError> {
    let statements = Statements::new(&config.table, &config.columns);
    if let Some(path) = config.url.strip_prefix("sqlite://") {
        let db = SqliteSalesDb::open(std::path::Path::new(path), statements)?;
        // What decides whether a record survives a power cut (start-up and `check` say it).
        match db.durability().await {
            Ok((mode, synchronous)) => tracing::info!(
                database = path,
                journal_mode = %mode,
                synchronous,
                "SQLite database: each record's commit is fsynced with its folder (synchronous = 3, EXTRA)"
            ),
            Err(e) => {
                tracing::warn!(database = path, error = %e, "cannot read the SQLite database's journal mode")
            }
        }
        Ok(Arc::new(db))
    } else if config.url.starts_with("postgres://") || config.url.starts_with("postgresql://") {
        Ok(Arc::new(PostgresSalesDb::connect_with(&config.url, statements, PgSettings::of(config)).await?))
    } else {
        Err(DbError::new(
            DbErrorKind::Schema,
            format!("unsupported database url {}", redact_url(&config.url)),
        ))
    }
}

/// The current time in `Statements::adopt`: PostgreSQL's, which the SQLite backend replaces with
/// its own (`strftime` with milliseconds, as Django's text timestamps have a fraction).
pub(crate) const NOW_STAMP: &str = "clock_timestamp()";

/// The SQL both backends run. `$n` placeholders work in PostgreSQL and SQLite alike.
#[derive(Debug, Clone)]
pub struct Statements {
    pub table: String,
    pub columns: ColumnNames,
    pub select_by_confronta: String,
    pub select_by_id: String,
    pub record: String,
    pub select_local: String,
    pub select_in_minio: String,
    pub select_referenced: String,
    pub select_object_referenced: String,
    pub select_referenced_among: String,
    pub reject: String,
    pub count_rows: String,
    pub repoint: String,
    pub adopt: String,
    pub select_sync_error: String,
}

impl Statements {
    pub fn new(table: &str, c: &ColumnNames) -> Statements {
        // Names were validated as plain identifiers at config load, so splicing is safe.
        let select = format!(
            "SELECT CAST({id} AS bigint), {numero}, {confronta}, {object}, {sha}, {subido}, CAST({assigned} AS text) FROM {table}",
            assigned = c.assigned_at,
            id = c.id,
            numero = c.numero,
            confronta = c.confronta,
            object = c.minio_object_name,
            sha = c.sha256,
            subido = c.subido_a_minio,
        );
        Statements {
            table: table.to_owned(),
            columns: c.clone(),
            select_by_confronta: format!("{select} WHERE {} = $1 ORDER BY {} LIMIT 10", c.confronta, c.id),
            select_by_id: format!("{select} WHERE {} = CAST($1 AS bigint)", c.id),
            record: format!(
                "UPDATE {table} SET {url} = $1, {object} = $2, {subido} = TRUE, {sha} = $3, {confronta} = '', \
                 {error} = NULL WHERE {id} = CAST($4 AS bigint) AND {confronta} = $5 AND {object} IS NOT DISTINCT FROM $6",
                error = c.sync_error,
                url = c.minio_url,
                object = c.minio_object_name,
                subido = c.subido_a_minio,
                sha = c.sha256,
                confronta = c.confronta,
                id = c.id,
            ),
            select_local: format!(
                "{select} WHERE {confronta} IS NOT NULL AND {confronta} <> '' AND substr({confronta}, 1, length(CAST($1 AS text))) = CAST($1 AS text) \
                 AND {id} > CAST($2 AS bigint) ORDER BY {id} LIMIT $3",
                confronta = c.confronta,
                id = c.id,
            ),
            select_in_minio: format!(
                "{select} WHERE {subido} = TRUE AND {object} IS NOT NULL AND {object} <> '' \
                 AND {id} > CAST($1 AS bigint) ORDER BY {id} LIMIT $2",
                subido = c.subido_a_minio,
                object = c.minio_object_name,
                id = c.id,
            ),
            count_rows: format!(
                "SELECT CAST(COALESCE(SUM(CASE WHEN {subido} = TRUE AND {object} IS NOT NULL AND {object} <> '' THEN 1 ELSE 0 END), 0) AS bigint), \
                 CAST(COALESCE(SUM(CASE WHEN {confronta} IS NOT NULL AND {confronta} <> '' \
                 AND substr({confronta}, 1, length(CAST($1 AS text))) = CAST($1 AS text) THEN 1 ELSE 0 END), 0) AS bigint) FROM {table}",
                subido = c.subido_a_minio,
                object = c.minio_object_name,
                confronta = c.confronta,
            ),
            select_referenced: format!(
                "SELECT CAST({id} AS bigint), {object} FROM {table} WHERE {object} IS NOT NULL AND {object} <> '' \
                 AND {id} > CAST($1 AS bigint) ORDER BY {id} LIMIT $2",
                object = c.minio_object_name,
                id = c.id,
            ),
            // PostgreSQL's form; the SQLite backend replaces it (it has no arrays). `IN (SELECT
            // unnest(...))` lets the planner hash the batch and read the table once.
            select_referenced_among: format!(
                "SELECT DISTINCT {object} FROM {table} WHERE {object} IN (SELECT unnest(CAST($1 AS text[])))",
                object = c.minio_object_name,
            ),
            select_object_referenced: format!(
                "SELECT CAST(COUNT(*) AS bigint) FROM (SELECT 1 FROM {table} WHERE {object} = $1 LIMIT 1) AS found",
                object = c.minio_object_name,
            ),
            reject: format!(
                "UPDATE {table} SET {confronta} = '', {error} = $1 \
                 WHERE {id} = CAST($2 AS bigint) AND {confronta} = $3 AND {object} IS NOT DISTINCT FROM $4",
                confronta = c.confronta,
                error = c.sync_error,
                id = c.id,
                object = c.minio_object_name,
            ),
            repoint: format!(
                "UPDATE {table} SET {url} = $1, {object} = $2, {subido} = TRUE, {sha} = $3, {confronta} = '', \
                 {error} = NULL WHERE {id} = CAST($4 AS bigint) AND {confronta} IS NOT DISTINCT FROM $5 \
                 AND {object} IS NOT DISTINCT FROM $6",
                error = c.sync_error,
                url = c.minio_url,
                object = c.minio_object_name,
                subido = c.subido_a_minio,
                sha = c.sha256,
                confronta = c.confronta,
                id = c.id,
            ),
            // `NOW_STAMP` is the backend's current time with sub-second digits (see the SQLite
            // backend, which replaces it).
            adopt: format!(
                "UPDATE {table} SET {confronta} = $1, {assigned} = {NOW_STAMP}, {subido} = FALSE, {error} = NULL \
                 WHERE {id} = CAST($2 AS bigint) AND {confronta} IS NOT DISTINCT FROM $3 \
                 AND {object} IS NOT DISTINCT FROM $4",
                assigned = c.assigned_at,
                error = c.sync_error,
                object = c.minio_object_name,
                subido = c.subido_a_minio,
                confronta = c.confronta,
                id = c.id,
            ),
            select_sync_error: format!(
                "SELECT CAST({error} AS text) FROM {table} WHERE {id} = CAST($1 AS bigint)",
                error = c.sync_error,
                id = c.id,
            ),
        }
    }

    /// Every configured column with the config key that names it, for precise schema errors.
    pub fn required_columns(&self) -> Vec<(&'static str, &str)> {
        let c = &self.columns;
        vec![
            ("id", &c.id),
            ("numero", &c.numero),
            ("confronta", &c.confronta),
            ("minio_url", &c.minio_url),
            ("minio_object_name", &c.minio_object_name),
            ("subido_a_minio", &c.subido_a_minio),
            ("sha256", &c.sha256),
            ("sync_error", &c.sync_error),
            ("assigned_at", &c.assigned_at),
        ]
    }

    /// The kind of column each configured one must be, with its config key. `integer_booleans`:
    /// the backend stores booleans as integers (SQLite), so an integer flag column is fine.
    fn expected_kinds(&self, integer_booleans: bool) -> Vec<(&'static str, &str, &'static [ColumnKind])> {
        const INTEGER: &[ColumnKind] = &[ColumnKind::Integer];
        const TEXT: &[ColumnKind] = &[ColumnKind::Text];
        let flag: &'static [ColumnKind] = if integer_booleans {
            &[ColumnKind::Boolean, ColumnKind::Integer]
        } else {
            &[ColumnKind::Boolean]
        };
        let c = &self.columns;
        vec![
            ("id", &c.id, INTEGER),
            ("numero", &c.numero, TEXT),
            ("confronta", &c.confronta, TEXT),
            ("minio_url", &c.minio_url, TEXT),
            ("minio_object_name", &c.minio_object_name, TEXT),
            ("subido_a_minio", &c.subido_a_minio, flag),
            ("sha256", &c.sha256, TEXT),
            ("sync_error", &c.sync_error, TEXT),
        ]
    }

    /// Checks `present` (the table's columns as the catalogue declares them) against the
    /// configured columns: each must exist, be of a kind the daemon reads and writes, and the
    /// checksum column must hold a hex SHA-256. `integer_booleans` as in `expected_kinds`.
    pub fn check_columns(
        &self,
        present: &[PresentColumn],
        integer_booleans: bool,
    ) -> Result<SchemaLimits, DbError> {
        if present.is_empty() {
            return Err(DbError::new(DbErrorKind::Schema, format!("table {} does not exist", self.table)));
        }
        let missing: Vec<String> = self
            .required_columns()
            .into_iter()
            .filter(|(_, name)| !present.iter().any(|p| p.name.eq_ignore_ascii_case(name)))
            .map(|(key, name)| format!("{name} (database.columns.{key})"))
            .collect();
        if !missing.is_empty() {
            let hint = if missing.iter().any(|m| m.contains("sha256")) {
                "; packaging/sql/add_confronta_sha256.sql adds the checksum column"
            } else if missing.iter().any(|m| m.contains("sync_error")) {
                "; packaging/sql/add_confronta_sync_error.sql adds the refusal-reason column"
            } else if missing.iter().any(|m| m.contains("assigned_at")) {
                "; packaging/sql/add_confronta_asignada_en.sql adds the assignment-time column \
                 (in a Django project, the companion's migration)"
            } else {
                ""
            };
            return Err(DbError::new(
                DbErrorKind::Schema,
                format!("table {} is missing column {}{hint}", self.table, missing.join(", ")),
            ));
        }
        let column = |name: &str| present.iter().find(|p| p.name.eq_ignore_ascii_case(name));
        for (key, name, kinds) in self.expected_kinds(integer_booleans) {
            let Some(found) = column(name) else { continue };
            if !kinds.contains(&found.kind) {
                return Err(DbError::new(
                    DbErrorKind::Schema,
                    format!(
                        "column {name} (database.columns.{key}) of table {} is {}; expected {}",
                        self.table,
                        found.declared,
                        kinds[0].expected()
                    ),
                ));
            }
        }
        if let Some(len) =
            column(&self.columns.sha256).and_then(|c| c.max_len).filter(|len| *len < SHA256_HEX_LEN)
        {
            return Err(DbError::new(
                DbErrorKind::Schema,
                format!(
                    "column {} (database.columns.sha256) of table {} holds at most {len} characters; \
                     expected at least {SHA256_HEX_LEN} (a hex SHA-256)",
                    self.columns.sha256, self.table
                ),
            ));
        }
        let length_of = |name: &str| column(name).and_then(|c| c.max_len);
        Ok(SchemaLimits {
            url_max_len: length_of(&self.columns.minio_url),
            object_name_max_len: length_of(&self.columns.minio_object_name),
        })
    }

    /// Which of the indexes the daemon relies on are not among `present`. An index counts only
    /// if it can serve the query: a plain one led by the column looked up, or for the pending
    /// rows, one led by `id` whose predicate names the `confronta` column.
    pub fn missing_indexes(&self, present: &[PresentIndex]) -> Vec<NeededIndex> {
        let c = &self.columns;
        let leads = |index: &PresentIndex, column: &str| {
            index.columns.first().is_some_and(|first| first.eq_ignore_ascii_case(column))
        };
        let names = |predicate: &str, column: &str| {
            predicate
                .split(|ch: char| !(ch.is_ascii_alphanumeric() || ch == '_'))
                .any(|word| word.eq_ignore_ascii_case(column))
        };
        NeededIndex::ALL
            .into_iter()
            .filter(|needed| {
                !present.iter().any(|index| match needed {
                    NeededIndex::Confronta => index.predicate.is_none() && leads(index, &c.confronta),
                    NeededIndex::ObjectName => {
                        index.predicate.is_none() && leads(index, &c.minio_object_name)
                    }
                    NeededIndex::Pending => {
                        leads(index, &c.id)
                            && index.predicate.as_deref().is_some_and(|p| names(p, &c.confronta))
                    }
                })
            })
            .collect()
    }
}

/// A hex SHA-256's length: what the checksum column must hold.
const SHA256_HEX_LEN: usize = 64;

/// Reads column `index` of a row, or fails naming the column and its config key: a column whose
/// type changed under a running daemon (a migration) is the schema's fault, not a panic.
pub(crate) fn column_error(statements: &Statements, index: usize, detail: impl std::fmt::Display) -> DbError {
    // The row statements select id, numero, confronta, object, sha256, subido, assigned_at.
    let c = &statements.columns;
    let (key, name) = match index {
        0 => ("id", c.id.as_str()),
        1 => ("numero", c.numero.as_str()),
        2 => ("confronta", c.confronta.as_str()),
        3 => ("minio_object_name", c.minio_object_name.as_str()),
        4 => ("sha256", c.sha256.as_str()),
        5 => ("subido_a_minio", c.subido_a_minio.as_str()),
        6 => ("assigned_at", c.assigned_at.as_str()),
        _ => ("", "an unknown column"),
    };
    let key = if key.is_empty() { String::new() } else { format!(" (database.columns.{key})") };
    DbError::new(
        DbErrorKind::Schema,
        format!("reading column {name}{key} of table {}: {detail}", statements.table),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 24, item 7: an index counts only where it serves the query it is needed for.
    #[test]
    fn an_index_counts_only_where_it_serves_the_query() {
        let statements = Statements::new("ventas", &crate::config::ColumnNames::default());
        let index = |columns: &[&str], predicate: Option<&str>| PresentIndex {
            columns: columns.iter().map(|c| c.to_string()).collect(),
            predicate: predicate.map(str::to_owned),
        };
        assert_eq!(statements.missing_indexes(&[]), NeededIndex::ALL.to_vec());
        let shipped = [
            index(&["confronta"], None),
            index(&["id"], Some("((confronta IS NOT NULL) AND ((confronta)::text <> ''::text))")),
            index(&["confronta_minio_object_name"], None),
        ];
        assert_eq!(statements.missing_indexes(&shipped), vec![]);
        let useless = [
            // Led by another column, or partial where the lookup needs every row.
            index(&["numero", "confronta"], None),
            index(&["confronta_minio_object_name"], Some("confronta_subido_a_minio")),
            // A predicate naming only a longer column that starts with `confronta`.
            index(&["id"], Some("confronta_minio_url IS NOT NULL")),
            index(&[""], None),
        ];
        assert_eq!(statements.missing_indexes(&useless), NeededIndex::ALL.to_vec());
    }

    /// Issue 15: each kind has its reason, handled as the error's own class says.
    #[test]
    fn each_kind_has_its_reason() {
        crate::error::check_reasons([
            (DbError::new(DbErrorKind::Unavailable, "venta 1"), Reason::DbUnavailable),
            (DbError::new(DbErrorKind::Schema, "venta 1"), Reason::DbSchema),
            (DbError::new(DbErrorKind::Refused, "venta 1"), Reason::DbRefused),
            (DbError::new(DbErrorKind::RowLocked, "venta 1"), Reason::DbRowLocked),
        ]);
    }
}
