//! `FakeSalesTable`: the sales table in memory behind `SalesRows` and `SalesReports`.

use std::collections::{BTreeMap, HashSet};
use std::sync::Mutex;

use async_trait::async_trait;

use super::{answer, lock, Faults, LostAnswer};
use crate::db::{
    AdoptRequest, DbError, DbErrorKind, RecordOutcome, RecordRequest, RejectRequest, RepointRequest,
    RowCounts, SalesReports, SalesRows, SchemaLimits, VentaRow,
};

/// A sales-table operation, for scripting faults and counting calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DbOp {
    FindByConfronta,
    Get,
    Record,
    Reject,
    ObjectReferenced,
    RowsWithLocalFile,
    TryClaim,
    CheckSchema,
    RowsInMinio,
    ReferencedObjects,
    ReferencedAmong,
    CountRows,
    Repoint,
    Adopt,
    SyncError,
}

/// The sales table in memory, with the columns the daemon reads and writes.
pub struct FakeSalesTable {
    rows: Mutex<BTreeMap<i64, FakeRow>>,
    /// Rows whose claim another process holds.
    claimed_elsewhere: Mutex<HashSet<i64>>,
    faults: Faults<DbOp, DbErrorKind>,
    calls: Mutex<Vec<DbOp>>,
    /// Feeds the rows' assignment stamps (`VentaRow::assigned`).
    assignments: Mutex<u64>,
    /// What happens elsewhere right after a call's answer is computed (see `after_answer`).
    after_answer: Mutex<Vec<(DbOp, AfterAnswer)>>,
}

/// The table at one moment (`FakeSalesTable::snapshot`).
#[derive(Debug, Clone)]
pub struct TableSnapshot(BTreeMap<i64, FakeRow>);

/// A hook run once, after the answer of a call is computed and before it is returned.
type AfterAnswer = Box<dyn FnOnce(&FakeSalesTable) + Send>;

/// A row and the columns `VentaRow` does not carry.
#[derive(Debug, Clone)]
struct FakeRow {
    row: VentaRow,
    url: Option<String>,
    sync_error: Option<String>,
}

impl Default for FakeSalesTable {
    fn default() -> Self {
        FakeSalesTable::new()
    }
}

impl FakeSalesTable {
    pub fn new() -> FakeSalesTable {
        FakeSalesTable {
            rows: Mutex::new(BTreeMap::new()),
            claimed_elsewhere: Mutex::new(HashSet::new()),
            faults: Faults::new(),
            calls: Mutex::new(Vec::new()),
            assignments: Mutex::new(0),
            after_answer: Mutex::new(Vec::new()),
        }
    }

    /// Runs `hook` once, right after the next call of `op` has computed its answer: the world
    /// moves on between the caller's question and its next step (so far only
    /// `Get`, `ReferencedAmong` and `Record` run hooks).
    pub fn after_answer(&self, op: DbOp, hook: impl FnOnce(&FakeSalesTable) + Send + 'static) {
        lock(&self.after_answer).push((op, Box::new(hook)));
    }

    fn run_after_answer(&self, op: DbOp) {
        let hooks: Vec<AfterAnswer> = {
            let mut pending = lock(&self.after_answer);
            let (due, later) = pending.drain(..).partition(|(hooked, _)| *hooked == op);
            *pending = later;
            due.into_iter().map(|(_, hook)| hook).collect()
        };
        for hook in hooks {
            hook(self);
        }
    }

    /// The next `times` calls of `op` fail with `kind`, doing nothing.
    pub fn fail_next(&self, op: DbOp, times: u32, kind: DbErrorKind) {
        self.faults.add(op, times, kind, false);
    }

    /// The next `times` calls of `op` (a record or a reject) commit, then fail with `kind`: the
    /// connection broke after the commit, before its acknowledgement arrived.
    pub fn lose_next_answer(&self, op: DbOp, times: u32, kind: DbErrorKind) {
        assert!(matches!(op, DbOp::Record | DbOp::Reject), "{op:?} writes nothing to lose an answer of");
        self.faults.add(op, times, kind, true);
    }

    /// Writes `row` as given (inserted, or replacing the row with its id), its assignment
    /// stamp included: a write that gives no new file (`assign` does) keeps the row's stamp.
    pub fn put_row(&self, row: VentaRow) {
        let mut rows = lock(&self.rows);
        let previous = rows.remove(&row.id);
        let (url, sync_error) = previous.map(|p| (p.url, p.sync_error)).unwrap_or_default();
        rows.insert(row.id, FakeRow { row, url, sync_error });
    }

    /// A row naming `confronta`, with no object yet: what Django commits for a new upload (the
    /// companion's save stamps the assignment).
    pub fn insert_new(&self, id: i64, numero: &str, confronta: &str) {
        self.put_row(VentaRow {
            id,
            numero: numero.to_owned(),
            confronta: Some(confronta.to_owned()),
            minio_object_name: None,
            sha256: None,
            subido_a_minio: false,
            assigned: Some(self.next_stamp()),
        });
    }

    /// Saves venta `id` with a new file at `confronta`, as the companion's `save()` does: the
    /// path, the flag back to false and a new assignment stamp; the sidecar's columns kept.
    pub fn assign(&self, id: i64, confronta: &str) {
        let stamp = self.next_stamp();
        if let Some(fake) = lock(&self.rows).get_mut(&id) {
            fake.row.confronta = Some(confronta.to_owned());
            fake.row.subido_a_minio = false;
            fake.row.assigned = Some(stamp);
        }
    }

    /// The whole table as it is now, for `restore` (a backup).
    pub fn snapshot(&self) -> TableSnapshot {
        TableSnapshot(lock(&self.rows).clone())
    }

    /// Puts the table back as `snapshot` had it: a database restored from a backup.
    pub fn restore(&self, snapshot: &TableSnapshot) {
        *lock(&self.rows) = snapshot.0.clone();
    }

    /// Every row, lowest id first.
    pub fn rows(&self) -> Vec<VentaRow> {
        self.select(|_| true)
    }

    pub fn delete_row(&self, id: i64) {
        lock(&self.rows).remove(&id);
    }

    pub fn row(&self, id: i64) -> Option<VentaRow> {
        lock(&self.rows).get(&id).map(|fake| fake.row.clone())
    }

    /// The refusal reason written on the row (`confronta_sync_error`).
    pub fn sync_error(&self, id: i64) -> Option<String> {
        lock(&self.rows).get(&id).and_then(|fake| fake.sync_error.clone())
    }

    /// The URL recorded on the row.
    pub fn url(&self, id: i64) -> Option<String> {
        lock(&self.rows).get(&id).and_then(|fake| fake.url.clone())
    }

    /// Another process holds (or, with `false`, released) the row's claim.
    pub fn claimed_elsewhere(&self, id: i64, held: bool) {
        let mut claimed = lock(&self.claimed_elsewhere);
        if held {
            claimed.insert(id);
        } else {
            claimed.remove(&id);
        }
    }

    /// How many calls of `op` were made.
    pub fn calls(&self, op: DbOp) -> usize {
        lock(&self.calls).iter().filter(|call| **call == op).count()
    }

    /// A new assignment stamp, later than every one before (the companion's `timezone.now()`).
    pub fn next_stamp(&self) -> String {
        let mut assignments = lock(&self.assignments);
        *assignments += 1;
        format!("2026-01-01 00:00:00.{:06}+00", *assignments)
    }

    /// Counts the call and fails it if a fault is scripted for it; a lost answer is returned
    /// for the call to end with once it has taken effect.
    fn enter(&self, op: DbOp) -> Result<LostAnswer<DbError>, DbError> {
        lock(&self.calls).push(op);
        self.faults.meet(op, |kind| DbError::new(kind, format!("scripted {kind:?} fault in {op:?}")))
    }

    /// The rows `keep` selects, lowest id first.
    fn select(&self, keep: impl Fn(&VentaRow) -> bool) -> Vec<VentaRow> {
        lock(&self.rows).values().map(|fake| &fake.row).filter(|row| keep(row)).cloned().collect()
    }

    /// The compare-and-set both writes share: the row with `id` still names `confronta` and
    /// `object` (`IS NOT DISTINCT FROM`), else nothing changes.
    fn compare_and_set(
        &self,
        id: i64,
        confronta: &str,
        object: Option<&str>,
        write: impl FnOnce(&mut FakeRow),
    ) -> RecordOutcome {
        self.compare_and_set_as_read(id, Some(confronta), object, write)
    }

    /// `compare_and_set` whose path is compared `IS NOT DISTINCT FROM` too (`repoint`, `adopt`).
    fn compare_and_set_as_read(
        &self,
        id: i64,
        confronta: Option<&str>,
        object: Option<&str>,
        write: impl FnOnce(&mut FakeRow),
    ) -> RecordOutcome {
        let mut rows = lock(&self.rows);
        match rows.get_mut(&id) {
            Some(fake)
                if fake.row.confronta.as_deref() == confronta
                    && fake.row.minio_object_name.as_deref() == object =>
            {
                write(fake);
                RecordOutcome::Recorded
            }
            _ => RecordOutcome::RowChanged,
        }
    }
}

fn names_local_file(row: &VentaRow) -> bool {
    row.confronta.as_deref().is_some_and(|c| !c.is_empty())
}

fn references_object(row: &VentaRow) -> bool {
    row.minio_object_name.as_deref().is_some_and(|o| !o.is_empty())
}

#[async_trait]
impl SalesRows for FakeSalesTable {
    async fn find_by_confronta(&self, path: &str) -> Result<Vec<VentaRow>, DbError> {
        self.enter(DbOp::FindByConfronta)?;
        let mut rows = self.select(|row| row.confronta.as_deref() == Some(path));
        rows.truncate(10);
        Ok(rows)
    }

    async fn get(&self, venta_id: i64) -> Result<Option<VentaRow>, DbError> {
        self.enter(DbOp::Get)?;
        let row = self.row(venta_id);
        self.run_after_answer(DbOp::Get);
        Ok(row)
    }

    async fn record(&self, request: &RecordRequest<'_>) -> Result<RecordOutcome, DbError> {
        let lost = self.enter(DbOp::Record)?;
        let outcome = self.compare_and_set(
            request.venta_id,
            request.expected_confronta,
            request.expected_object_name,
            |fake| {
                fake.url = Some(request.url.to_owned());
                fake.row.minio_object_name = Some(request.object_name.to_owned());
                fake.row.subido_a_minio = true;
                fake.row.sha256 = Some(request.sha256_hex.to_owned());
                fake.row.confronta = Some(String::new());
                fake.sync_error = None;
            },
        );
        self.run_after_answer(DbOp::Record);
        answer(lost, Ok(outcome))
    }

    async fn reject(&self, request: &RejectRequest<'_>) -> Result<RecordOutcome, DbError> {
        let lost = self.enter(DbOp::Reject)?;
        let outcome = self.compare_and_set(
            request.venta_id,
            request.expected_confronta,
            request.expected_object_name,
            |fake| {
                fake.row.confronta = Some(String::new());
                fake.sync_error = Some(request.reason.to_owned());
            },
        );
        answer(lost, Ok(outcome))
    }

    async fn object_referenced(&self, object_name: &str) -> Result<bool, DbError> {
        self.enter(DbOp::ObjectReferenced)?;
        Ok(!self.select(|row| row.minio_object_name.as_deref() == Some(object_name)).is_empty())
    }

    async fn rows_with_local_file(
        &self,
        dir_prefix: &str,
        after_id: i64,
        limit: i64,
    ) -> Result<Vec<VentaRow>, DbError> {
        self.enter(DbOp::RowsWithLocalFile)?;
        let mut rows = self.select(|row| {
            row.id > after_id
                && names_local_file(row)
                && row.confronta.as_deref().is_some_and(|c| c.starts_with(dir_prefix))
        });
        rows.truncate(limit.max(0) as usize);
        Ok(rows)
    }

    async fn try_claim(&self, venta_id: i64) -> Result<bool, DbError> {
        self.enter(DbOp::TryClaim)?;
        Ok(!lock(&self.claimed_elsewhere).contains(&venta_id))
    }

    async fn release_claim(&self, _venta_id: i64) {}

    fn supports_claims(&self) -> bool {
        true
    }
}

#[async_trait]
impl SalesReports for FakeSalesTable {
    async fn check_schema(&self) -> Result<SchemaLimits, DbError> {
        self.enter(DbOp::CheckSchema)?;
        Ok(SchemaLimits { url_max_len: None, object_name_max_len: None })
    }

    async fn sync_error(&self, venta_id: i64) -> Result<Option<String>, DbError> {
        self.enter(DbOp::SyncError)?;
        Ok(self.sync_error(venta_id))
    }

    async fn rows_in_minio(&self, after_id: i64, limit: i64) -> Result<Vec<VentaRow>, DbError> {
        self.enter(DbOp::RowsInMinio)?;
        let mut rows = self.select(|row| row.id > after_id && row.subido_a_minio && references_object(row));
        rows.truncate(limit.max(0) as usize);
        Ok(rows)
    }

    async fn referenced_objects(&self, after_id: i64, limit: i64) -> Result<Vec<(i64, String)>, DbError> {
        self.enter(DbOp::ReferencedObjects)?;
        let rows = self.select(|row| row.id > after_id && references_object(row));
        Ok(rows
            .into_iter()
            .take(limit.max(0) as usize)
            .map(|row| (row.id, row.minio_object_name.unwrap_or_default()))
            .collect())
    }

    async fn referenced_among(&self, object_names: &[String]) -> Result<Vec<String>, DbError> {
        self.enter(DbOp::ReferencedAmong)?;
        let referenced: HashSet<String> =
            self.select(references_object).into_iter().filter_map(|row| row.minio_object_name).collect();
        let answer = object_names.iter().filter(|name| referenced.contains(*name)).cloned().collect();
        self.run_after_answer(DbOp::ReferencedAmong);
        Ok(answer)
    }

    async fn count_rows(&self, dir_prefix: &str) -> Result<RowCounts, DbError> {
        self.enter(DbOp::CountRows)?;
        let in_minio = self.select(|row| row.subido_a_minio && references_object(row)).len() as i64;
        let local = self
            .select(|row| {
                names_local_file(row) && row.confronta.as_deref().is_some_and(|c| c.starts_with(dir_prefix))
            })
            .len() as i64;
        Ok(RowCounts { in_minio, local })
    }

    async fn repoint(&self, request: &RepointRequest<'_>) -> Result<RecordOutcome, DbError> {
        self.enter(DbOp::Repoint)?;
        Ok(self.compare_and_set_as_read(
            request.venta_id,
            request.expected_confronta,
            request.expected_object_name,
            |fake| {
                fake.url = Some(request.url.to_owned());
                fake.row.minio_object_name = Some(request.object_name.to_owned());
                fake.row.subido_a_minio = true;
                fake.row.sha256 = Some(request.sha256_hex.to_owned());
                fake.row.confronta = Some(String::new());
                fake.sync_error = None;
            },
        ))
    }

    async fn adopt(&self, request: &AdoptRequest<'_>) -> Result<RecordOutcome, DbError> {
        self.enter(DbOp::Adopt)?;
        let stamp = self.next_stamp();
        Ok(self.compare_and_set_as_read(
            request.venta_id,
            request.expected_confronta,
            request.expected_object_name,
            |fake| {
                fake.row.confronta = Some(request.path.to_owned());
                fake.row.assigned = Some(stamp);
                fake.row.subido_a_minio = false;
                fake.sync_error = None;
            },
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A scripted fault fails exactly the next `times` calls of its operation and no other.
    #[tokio::test]
    async fn a_fault_fails_the_next_calls_of_its_operation_only() {
        let table = FakeSalesTable::new();
        table.insert_new(1, "N-1", "confrontas/a.pdf");
        table.fail_next(DbOp::Get, 2, DbErrorKind::Unavailable);
        assert_eq!(table.find_by_confronta("confrontas/a.pdf").await.unwrap().len(), 1);
        assert!(table.get(1).await.unwrap_err().is_unavailable());
        assert!(table.get(1).await.unwrap_err().is_unavailable());
        assert_eq!(table.get(1).await.unwrap().map(|row| row.id), Some(1));
        assert_eq!(table.calls(DbOp::Get), 3);
    }

    /// The record is the same compare-and-set as `Statements::record`: path and object must be
    /// the ones read; the sidecar's write never touches the assignment stamp.
    #[tokio::test]
    async fn record_is_a_compare_and_set_on_path_and_object() {
        let table = FakeSalesTable::new();
        table.insert_new(1, "N-1", "confrontas/a.pdf");
        let before = table.row(1).unwrap().assigned;
        let request = |expected_object_name| RecordRequest {
            venta_id: 1,
            expected_confronta: "confrontas/a.pdf",
            expected_object_name,
            url: "http://s3/b/o",
            object_name: "o",
            sha256_hex: "ab",
        };
        assert_eq!(table.record(&request(Some("old"))).await.unwrap(), RecordOutcome::RowChanged);
        assert_eq!(table.record(&request(None)).await.unwrap(), RecordOutcome::Recorded);
        let row = table.row(1).unwrap();
        assert_eq!(
            (row.confronta.as_deref(), row.minio_object_name.as_deref(), row.subido_a_minio),
            (Some(""), Some("o"), true)
        );
        assert_eq!(row.assigned, before);
        assert_eq!(table.record(&request(None)).await.unwrap(), RecordOutcome::RowChanged);
    }
}
