//! In-memory fakes of the two edges, `ObjectStore` and the sales table, with scriptable faults,
//! so that a file's journey (and every restart rule of the journal) can be driven without a
//! server.
//!
//! Compiled into the crate's own unit tests and, with the `fakes` feature, into the library the
//! integration tests link: `Cargo.toml` lists the crate as its own dev-dependency with that
//! feature, so `cargo test` needs no flag and a release build carries none of this. They live in
//! the library rather than in `tests/common/` so that a unit test beside the code it tests can
//! use them too.
//!
//! Each fake answers as the real backend does where the pipeline can tell the difference: the
//! store refuses bytes whose SHA-256 is not the one sent, honours `If-None-Match: *`, and
//! reports the multipart checksum (`<base64>-<parts>`) for an upload in parts; the table applies
//! the same compare-and-sets as `db::Statements` and gives each row a version that changes with
//! every write, as PostgreSQL's `xmin` does.

use std::collections::{BTreeMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use crate::db::{
    DbError, DbErrorKind, RecordOutcome, RecordRequest, RejectRequest, RowCounts, SalesReports, SalesRows,
    SchemaLimits, VentaRow,
};
use crate::hash::Sha256Digest;
use crate::object_name::ObjectName;
use crate::store::{
    Capabilities, ObjectEntry, ObjectInfo, ObjectPages, ObjectStore, StoreError, StoreErrorKind, Stored,
    UploadRequest,
};

/// Faults waiting for the calls they fail: the next `times` calls of `op` fail with `kind`.
struct Faults<Op, Kind> {
    pending: Mutex<Vec<Fault<Op, Kind>>>,
}

struct Fault<Op, Kind> {
    op: Op,
    times: u32,
    kind: Kind,
    /// The call takes effect and only its answer is lost (a reply dropped on the way back),
    /// rather than failing before it does anything.
    answer_lost: bool,
}

impl<Op: PartialEq + Copy, Kind: Copy> Faults<Op, Kind> {
    fn new() -> Self {
        Faults { pending: Mutex::new(Vec::new()) }
    }

    fn add(&self, op: Op, times: u32, kind: Kind, answer_lost: bool) {
        lock(&self.pending).push(Fault { op, times, kind, answer_lost });
    }

    /// The fault this call of `op` meets, if one is scripted (and whether only its answer is
    /// lost); it counts one of its calls.
    fn take(&self, op: Op) -> Option<(Kind, bool)> {
        let mut pending = lock(&self.pending);
        let index = pending.iter().position(|fault| fault.op == op && fault.times > 0)?;
        let fault = &mut pending[index];
        fault.times -= 1;
        let taken = (fault.kind, fault.answer_lost);
        if fault.times == 0 {
            pending.remove(index);
        }
        Some(taken)
    }

    /// What a call of `op` meets: `Err` fails it before it does anything, `Ok(Some)` is the
    /// error it ends with once it has taken effect.
    fn meet<E>(&self, op: Op, error: impl FnOnce(Kind) -> E) -> Result<LostAnswer<E>, E> {
        match self.take(op) {
            Some((kind, true)) => Ok(Some(error(kind))),
            Some((kind, false)) => Err(error(kind)),
            None => Ok(None),
        }
    }
}

/// The error a call ends with once it has taken effect, when its answer is to be lost.
type LostAnswer<E> = Option<E>;

fn answer<T, E>(lost: LostAnswer<E>, result: Result<T, E>) -> Result<T, E> {
    match lost {
        Some(error) => Err(error),
        None => result,
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// An `ObjectStore` operation, for scripting faults and counting calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StoreOp {
    CheckBucket,
    Stat,
    Upload,
    Probe,
    Delete,
    List,
    PresignGet,
    Get,
    Sha256Of,
    ListPages,
}

/// One stored object: its bytes and the checksum the server reports for it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FakeObject {
    bytes: Bytes,
    checksum: String,
    meta_sha256: Option<String>,
}

/// A bucket in memory.
pub struct FakeStore {
    objects: Mutex<BTreeMap<String, FakeObject>>,
    faults: Faults<StoreOp, StoreErrorKind>,
    calls: Mutex<Vec<StoreOp>>,
    capabilities: Capabilities,
}

impl Default for FakeStore {
    fn default() -> Self {
        FakeStore::new()
    }
}

impl FakeStore {
    /// A store that behaves like MinIO: it enforces and echoes the checksum and honours
    /// `If-None-Match: *`.
    pub fn new() -> FakeStore {
        FakeStore::with_capabilities(Capabilities {
            checksum_enforced: true,
            conditional_put: true,
            checksum_answered: true,
        })
    }

    /// A store whose probe reports `capabilities`; a store that does not answer with the
    /// checksum (`checksum_answered: false`) leaves every upload to be verified by a stat.
    pub fn with_capabilities(capabilities: Capabilities) -> FakeStore {
        FakeStore {
            objects: Mutex::new(BTreeMap::new()),
            faults: Faults::new(),
            calls: Mutex::new(Vec::new()),
            capabilities,
        }
    }

    /// The next `times` calls of `op` fail with `kind`, doing nothing.
    pub fn fail_next(&self, op: StoreOp, times: u32, kind: StoreErrorKind) {
        self.faults.add(op, times, kind, false);
    }

    /// The next `times` calls of `op` (an upload or a delete) take effect, then fail with
    /// `kind`: the server did it and the answer never arrived.
    pub fn lose_next_answer(&self, op: StoreOp, times: u32, kind: StoreErrorKind) {
        assert!(
            matches!(op, StoreOp::Upload | StoreOp::Delete),
            "{op:?} writes nothing to lose an answer of"
        );
        self.faults.add(op, times, kind, true);
    }

    /// Stores `bytes` under `name` as a single PUT would, replacing whatever was there.
    pub fn put_object(&self, name: &str, bytes: impl Into<Bytes>) {
        let bytes = bytes.into();
        let digest = Sha256Digest::of_bytes(&bytes);
        let object = FakeObject { bytes, checksum: digest.to_base64(), meta_sha256: Some(digest.to_hex()) };
        lock(&self.objects).insert(name.to_owned(), object);
    }

    pub fn remove_object(&self, name: &str) {
        lock(&self.objects).remove(name);
    }

    /// The bytes stored under `name`.
    pub fn object(&self, name: &str) -> Option<Bytes> {
        lock(&self.objects).get(name).map(|object| object.bytes.clone())
    }

    /// Every object name, in key order.
    pub fn names(&self) -> Vec<String> {
        lock(&self.objects).keys().cloned().collect()
    }

    /// How many calls of `op` were made.
    pub fn calls(&self, op: StoreOp) -> usize {
        lock(&self.calls).iter().filter(|call| **call == op).count()
    }

    /// Counts the call and fails it if a fault is scripted for it; a lost answer is returned
    /// for the call to end with once it has taken effect.
    fn enter(&self, op: StoreOp, name: &str) -> Result<LostAnswer<StoreError>, StoreError> {
        lock(&self.calls).push(op);
        self.faults.meet(op, |kind| StoreError { kind, message: format!("{name}: scripted {kind:?} fault") })
    }

    /// What a server that received `request` stores and answers.
    fn put(&self, name: &ObjectName, request: UploadRequest<'_>) -> Result<Stored, StoreError> {
        let bytes = std::fs::read(request.path).map_err(|e| StoreError {
            kind: if e.kind() == std::io::ErrorKind::NotFound {
                StoreErrorKind::LocalFileMissing
            } else {
                StoreErrorKind::LocalFile
            },
            message: format!("{}: {e}", request.path.display()),
        })?;
        // The server computes the SHA-256 of what it received and refuses a mismatch.
        if Sha256Digest::of_bytes(&bytes) != request.hash.sha256 {
            return Err(StoreError {
                kind: StoreErrorKind::ChecksumMismatch,
                message: format!("{name}: the body does not match x-amz-checksum-sha256"),
            });
        }
        let single_put =
            request.hash.identity.size <= request.multipart_threshold || request.hash.part_digests.is_empty();
        let mut objects = lock(&self.objects);
        if request.if_absent && objects.contains_key(name.as_str()) {
            return Err(StoreError {
                kind: StoreErrorKind::AlreadyExists,
                message: format!("{name}: 412 Precondition Failed"),
            });
        }
        let checksum = request.hash.expected_s3_checksum();
        let object = FakeObject {
            bytes: Bytes::from(bytes),
            checksum: checksum.clone(),
            meta_sha256: Some(request.hash.sha256.to_hex()),
        };
        objects.insert(name.as_str().to_owned(), object);
        let answered = single_put && self.capabilities.checksum_answered;
        Ok(Stored { checksum_sha256: answered.then_some(checksum) })
    }

    fn missing(name: &str) -> StoreError {
        StoreError { kind: StoreErrorKind::NotFound, message: format!("{name}: NoSuchKey") }
    }

    fn entries(&self, prefix: &str) -> Vec<ObjectEntry> {
        lock(&self.objects)
            .iter()
            .filter(|(name, _)| name.starts_with(prefix))
            .map(|(name, object)| ObjectEntry {
                name: name.clone(),
                size: object.bytes.len() as u64,
                modified_unix_s: None,
            })
            .collect()
    }
}

#[async_trait]
impl ObjectStore for FakeStore {
    async fn check_bucket(&self) -> Result<(), StoreError> {
        self.enter(StoreOp::CheckBucket, "bucket").map(drop)
    }

    async fn stat(&self, name: &ObjectName) -> Result<Option<ObjectInfo>, StoreError> {
        self.enter(StoreOp::Stat, name.as_str())?;
        Ok(lock(&self.objects).get(name.as_str()).map(|object| ObjectInfo {
            size: object.bytes.len() as u64,
            checksum_sha256: Some(object.checksum.clone()),
            meta_sha256: object.meta_sha256.clone(),
        }))
    }

    async fn upload(&self, name: &ObjectName, request: UploadRequest<'_>) -> Result<Stored, StoreError> {
        let lost = self.enter(StoreOp::Upload, name.as_str())?;
        answer(lost, self.put(name, request))
    }

    async fn probe(&self) -> Result<Capabilities, StoreError> {
        self.enter(StoreOp::Probe, "probe")?;
        Ok(self.capabilities)
    }

    async fn delete(&self, name: &ObjectName) -> Result<(), StoreError> {
        let lost = self.enter(StoreOp::Delete, name.as_str())?;
        lock(&self.objects).remove(name.as_str());
        answer(lost, Ok(()))
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectEntry>, StoreError> {
        self.enter(StoreOp::List, prefix)?;
        Ok(self.entries(prefix))
    }

    async fn presign_get(&self, name: &ObjectName, expiry: Duration) -> Result<String, StoreError> {
        self.enter(StoreOp::PresignGet, name.as_str())?;
        Ok(format!("http://fake-store/{name}?expires={}", expiry.as_secs()))
    }

    async fn get(&self, name: &ObjectName) -> Result<Bytes, StoreError> {
        self.enter(StoreOp::Get, name.as_str())?;
        self.object(name.as_str()).ok_or_else(|| FakeStore::missing(name.as_str()))
    }

    async fn sha256_of(&self, name: &ObjectName) -> Result<(u64, Sha256Digest), StoreError> {
        self.enter(StoreOp::Sha256Of, name.as_str())?;
        let bytes = self.object(name.as_str()).ok_or_else(|| FakeStore::missing(name.as_str()))?;
        Ok((bytes.len() as u64, Sha256Digest::of_bytes(&bytes)))
    }

    async fn list_pages(&self, prefix: &str, page_size: u16) -> Result<ObjectPages, StoreError> {
        self.enter(StoreOp::ListPages, prefix)?;
        let pages: Vec<Result<Vec<ObjectEntry>, StoreError>> = self
            .entries(prefix)
            .chunks(usize::from(page_size.max(1)))
            .map(|page| Ok(page.to_vec()))
            .collect();
        Ok(Box::pin(futures_util::stream::iter(pages)))
    }
}

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
}

/// The sales table in memory, with the columns the daemon reads and writes.
pub struct FakeSalesTable {
    rows: Mutex<BTreeMap<i64, FakeRow>>,
    /// Rows whose claim another process holds.
    claimed_elsewhere: Mutex<HashSet<i64>>,
    faults: Faults<DbOp, DbErrorKind>,
    calls: Mutex<Vec<DbOp>>,
    /// Feeds the rows' versions.
    writes: Mutex<u64>,
}

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
            writes: Mutex::new(0),
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

    /// Writes `row` (inserted, or replacing the row with its id) as Django would; its version
    /// is set anew.
    pub fn put_row(&self, row: VentaRow) {
        let version = self.next_version();
        let mut rows = lock(&self.rows);
        let previous = rows.remove(&row.id);
        let row = VentaRow { version: Some(version), ..row };
        let (url, sync_error) = previous.map(|p| (p.url, p.sync_error)).unwrap_or_default();
        rows.insert(row.id, FakeRow { row, url, sync_error });
    }

    /// A row naming `confronta`, with no object yet: what Django commits for a new upload.
    pub fn insert_new(&self, id: i64, numero: &str, confronta: &str) {
        self.put_row(VentaRow {
            id,
            numero: numero.to_owned(),
            confronta: Some(confronta.to_owned()),
            minio_object_name: None,
            sha256: None,
            subido_a_minio: false,
            version: None,
        });
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

    fn next_version(&self) -> String {
        let mut writes = lock(&self.writes);
        *writes += 1;
        writes.to_string()
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
        let version = self.next_version();
        let mut rows = lock(&self.rows);
        match rows.get_mut(&id) {
            Some(fake)
                if fake.row.confronta.as_deref() == Some(confronta)
                    && fake.row.minio_object_name.as_deref() == object =>
            {
                write(fake);
                fake.row.version = Some(version);
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
        Ok(self.row(venta_id))
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
        Ok(object_names.iter().filter(|name| referenced.contains(*name)).cloned().collect())
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
    /// the ones read, and a write changes the row's version.
    #[tokio::test]
    async fn record_is_a_compare_and_set_on_path_and_object() {
        let table = FakeSalesTable::new();
        table.insert_new(1, "N-1", "confrontas/a.pdf");
        let before = table.row(1).unwrap().version;
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
        assert_ne!(row.version, before);
        assert_eq!(table.record(&request(None)).await.unwrap(), RecordOutcome::RowChanged);
    }

    /// A conditional PUT on a taken name stores nothing, as MinIO's 412 does.
    #[tokio::test]
    async fn a_conditional_put_never_replaces_an_object() {
        let temp = tempfile::tempdir().unwrap();
        let path = temp.path().join("a.pdf");
        std::fs::write(&path, b"ours").unwrap();
        let hash = crate::hash::hash_file(&path, None).unwrap();
        let store = FakeStore::new();
        store.put_object("o", &b"theirs"[..]);
        let name = ObjectName::from_stored("o".to_owned());
        let request = |if_absent| UploadRequest {
            path: &path,
            hash: &hash,
            content_type: "application/pdf",
            multipart_threshold: 1 << 20,
            part_size: 1 << 20,
            if_absent,
        };
        let refused = store.upload(&name, request(true)).await.unwrap_err();
        assert_eq!(refused.kind, StoreErrorKind::AlreadyExists);
        assert_eq!(store.object("o").as_deref(), Some(&b"theirs"[..]));
        let stored = store.upload(&name, request(false)).await.unwrap();
        assert_eq!(stored.checksum_sha256, Some(hash.sha256.to_base64()));
        assert_eq!(store.object("o").as_deref(), Some(&b"ours"[..]));
    }
}
