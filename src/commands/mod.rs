//! Operator commands: `verify`, `status`, `orphans`, `presign`, (`ownership`) `adopt` and
//! `repair`, and (`explain`) `explain`.
//!
//! They never take the journal lock, so they run safely beside a live daemon, and only
//! `orphans --delete-objects` changes anything (unreferenced objects, never a local file).
//!
//! `verify` and `orphans` walk the sales table a page of rows at a time, by id, and hand each
//! result to the caller as soon as it is known: on a table of millions of rows the operator
//! sees the first lines at once and the process never holds the table, the listing or an
//! object whole (issue 17).

use std::collections::{BTreeMap, HashSet};
use std::hash::{Hash, Hasher};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures_util::StreamExt;

mod explain;
mod ownership;
pub use explain::{explain, Explanation, Sources, Subject, Timers};
pub use ownership::{adopt, plan_adopt, repair, AdoptPlan, Repair, RepairLine, RepairSummary};

use crate::db::{DbError, SalesDb, VentaRow};
use crate::hash::Sha256Digest;
use crate::journal::{FileState, Journal, JournalError};
use crate::media_path::RelativeMediaPath;
use crate::object_name::{ObjectName, ObjectNameTemplate};
use crate::store::{Deleted, ObjectEntry, ObjectStore, StoreError, StoreErrorKind, PROBE_PREFIX};

/// Rows (or listed objects) per page of `verify` and `orphans`: large enough that the round
/// trips do not dominate, small enough that a page is a few hundred KiB.
pub const DEFAULT_PAGE_ROWS: usize = 1000;

/// Objects `verify` checks at once. Each check is one HEAD (or one streamed download with
/// `--deep`), so a few in flight hide the round trip; results still come out in id order.
const VERIFY_CONCURRENCY: usize = 8;

/// Why an operator command failed, by the edge that failed: `app` picks the exit code from it.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error(transparent)]
    Database(#[from] DbError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// What the operator asked for cannot be done: an expiry out of range, a venta that does
    /// not exist or is not in MinIO.
    #[error("{0}")]
    Invalid(String),
}

/// Why `verify` or `orphans` stopped before the end.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The caller could not write a line: its reader went away (`verify | head`).
    #[error("writing the report: {0}")]
    Output(std::io::Error),
    /// The database, the store or a journal failed.
    #[error(transparent)]
    Failed(#[from] CommandError),
}

impl From<DbError> for ReportError {
    fn from(error: DbError) -> Self {
        ReportError::Failed(error.into())
    }
}

impl From<StoreError> for ReportError {
    fn from(error: StoreError) -> Self {
        ReportError::Failed(error.into())
    }
}

impl From<JournalError> for ReportError {
    fn from(error: JournalError) -> Self {
        ReportError::Failed(error.into())
    }
}

/// One row's verification result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    pub venta_id: i64,
    pub object: String,
    pub size: Option<u64>,
    /// `None` when the object matches the row.
    pub problem: Option<String>,
}

/// What a whole `verify` run found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VerifySummary {
    pub checked: u64,
    pub mismatched: u64,
}

/// Checks that every row marked as stored in MinIO has its object, with the row's SHA-256,
/// handing each row's result to `report` in id order as soon as it is known. An error from
/// `report` (the output was closed: `verify | head`) stops the walk and is returned.
///
/// Without `deep`, the server's stored checksum is compared (single-part uploads carry the
/// whole-content SHA-256; multipart ones are checked through the digest we attached as
/// metadata). With `deep`, the object is downloaded and hashed as it arrives.
pub async fn verify(
    db: &Arc<dyn SalesDb>,
    store: &Arc<dyn ObjectStore>,
    deep: bool,
    limit: Option<i64>,
    page_rows: usize,
    mut report: impl FnMut(&VerifyReport) -> std::io::Result<()>,
) -> Result<VerifySummary, ReportError> {
    let page_rows = page_rows.max(1) as i64;
    let mut remaining = limit.unwrap_or(i64::MAX).max(0);
    let mut after_id = i64::MIN;
    let mut summary = VerifySummary::default();
    while remaining > 0 {
        let wanted = page_rows.min(remaining);
        let page = db.rows_in_minio(after_id, wanted).await?;
        let Some(last) = page.last() else { break };
        after_id = last.id;
        remaining -= page.len() as i64;
        let mut checks = futures_util::stream::iter(page.iter().map(|row| verify_row(store, row, deep)))
            .buffered(VERIFY_CONCURRENCY);
        while let Some(result) = checks.next().await {
            summary.checked += 1;
            summary.mismatched += u64::from(result.problem.is_some());
            report(&result).map_err(ReportError::Output)?;
        }
        if (page.len() as i64) < wanted {
            break;
        }
    }
    Ok(summary)
}

async fn verify_row(store: &Arc<dyn ObjectStore>, row: &VentaRow, deep: bool) -> VerifyReport {
    let object = row.minio_object_name.clone().unwrap_or_default();
    let name = ObjectName::from_stored(object.clone());
    let report = |size, problem: Option<String>| VerifyReport {
        venta_id: row.id,
        object: object.clone(),
        size,
        problem,
    };
    let Some(expected) = row.sha256.as_deref().and_then(Sha256Digest::from_hex) else {
        return report(None, Some("the row has no valid confronta_sha256".into()));
    };
    let info = match store.stat(&name).await {
        Ok(Some(info)) => info,
        Ok(None) => return report(None, Some("object is missing".into())),
        Err(e) => return report(None, Some(format!("cannot stat: {e}"))),
    };
    if deep {
        return match store.sha256_of(&name).await {
            Ok((length, _)) if length != info.size => {
                report(Some(info.size), Some("download length differs from the stored size".into()))
            }
            Ok((_, actual)) => {
                let problem = (actual != expected)
                    .then(|| format!("content SHA-256 is {actual}, the row says {expected}"));
                report(Some(info.size), problem.or_else(|| store.policy().unencrypted(&info)))
            }
            Err(e) => report(Some(info.size), Some(format!("cannot download: {e}"))),
        };
    }
    let problem = match info.checksum_sha256.as_deref() {
        Some(checksum) if !checksum.contains('-') => (checksum != expected.to_base64())
            .then(|| format!("stored checksum {checksum} does not match the row's {expected}")),
        _ => match info.meta_sha256.as_deref() {
            Some(meta) if meta == expected.to_hex() => None,
            Some(meta) => Some(format!("object metadata says SHA-256 {meta}, the row says {expected}")),
            None => Some("the server reports no whole-content checksum; use --deep".into()),
        },
    };
    report(Some(info.size), problem.or_else(|| store.policy().unencrypted(&info)))
}

/// The `status` report.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct StatusReport {
    pub rows_in_minio: i64,
    pub rows_local: i64,
    /// Share of rows with a confronta that are in MinIO, in percent.
    pub percent_in_minio: f64,
    /// Journal entries by state.
    pub journal_states: BTreeMap<String, u64>,
    pub waiting_for_row: u64,
    pub orphans: u64,
    /// Files waiting for their row or kept as orphans for a reason other than no row naming
    /// them (`ambiguous_owner`: only a stale row names the path), by reason.
    pub unowned_by_reason: BTreeMap<String, u64>,
    /// Files currently failed or kept, by reason.
    pub failures_by_reason: BTreeMap<String, u64>,
    pub uploads_timed: u64,
    pub upload_ms_mean: Option<f64>,
    pub upload_ms_p95: Option<i64>,
    /// The most recent error of each class (transient, rejected, fatal), with its file.
    pub last_errors: BTreeMap<String, String>,
}

/// Reads the table's counts and the journal (read-only, so it runs beside a live daemon).
pub async fn status(
    db: &Arc<dyn SalesDb>,
    journal: Option<&Journal>,
    dir_prefix: &str,
) -> Result<StatusReport, CommandError> {
    let counts = db.count_rows(dir_prefix).await?;
    let mut report =
        StatusReport { rows_in_minio: counts.in_minio, rows_local: counts.local, ..Default::default() };
    let total = counts.in_minio + counts.local;
    report.percent_in_minio = if total == 0 { 100.0 } else { 100.0 * counts.in_minio as f64 / total as f64 };
    let Some(journal) = journal else { return Ok(report) };
    let (uploads_timed, upload_ms_mean, upload_ms_p95) = journal.upload_times().await?;
    // One entry at a time: the journal may hold millions of removed entries.
    let (mut report, latest_error) = journal
        .fold((report, BTreeMap::<String, (i64, String)>::new()), |(report, latest_error), entry| {
            *report.journal_states.entry(entry.state().as_str().to_owned()).or_default() += 1;
            match entry.state() {
                FileState::WaitingForRow => report.waiting_for_row += 1,
                FileState::Orphan => report.orphans += 1,
                _ => {}
            }
            // Grouped by the reason's code (its own journal column), never by the sentence.
            let code = || entry.reason().map_or("unknown", |reason| reason.as_str()).to_owned();
            if matches!(entry.state(), FileState::WaitingForRow | FileState::Orphan)
                && entry.reason().is_some()
            {
                *report.unowned_by_reason.entry(code()).or_default() += 1;
            }
            let active_failure =
                matches!(entry.state(), FileState::Failed | FileState::Rejected | FileState::RowChanged)
                    || (entry.error_class().is_some() && !entry.state().is_terminal());
            if active_failure && (entry.reason().is_some() || entry.last_error().is_some()) {
                *report.failures_by_reason.entry(code()).or_default() += 1;
            }
            if let (Some(class), Some(error)) = (entry.error_class(), entry.failure_text()) {
                match latest_error.get(class.as_str()) {
                    Some((at, _)) if *at >= entry.updated_ms() => {}
                    _ => {
                        let line = format!("{}: {error}", entry.path());
                        latest_error.insert(class.as_str().to_owned(), (entry.updated_ms(), line));
                    }
                }
            }
        })
        .await?;
    report.last_errors = latest_error.into_iter().map(|(class, (_, line))| (class, line)).collect();
    report.uploads_timed = uploads_timed;
    report.upload_ms_mean = upload_ms_mean;
    report.upload_ms_p95 = upload_ms_p95;
    Ok(report)
}

/// What `orphans` reports as it goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrphanEvent {
    /// A local file under the watched folder that no row points at.
    File(String),
    /// So many references read from the table so far.
    ReferencesRead(u64),
    /// So many objects listed under the prefix so far.
    ObjectsListed(u64),
    /// An object under the template's prefix that no row references; with `--delete-objects`,
    /// `deleted` says what the delete did (a delete marker where the bucket keeps versions).
    Object { name: String, deleted: Option<Deleted> },
    /// `--delete-objects` asked the server to delete an orphan, and it refused (a version
    /// under retention, a policy that forbids deletes): the run goes on.
    DeleteRefused { name: String, error: String },
}

/// What a whole `orphans` run found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct OrphanSummary {
    pub files: u64,
    pub objects: u64,
    /// Objects no longer there (`Removed`, or hidden behind a delete marker).
    pub deleted: u64,
    /// Of `deleted`, those a delete marker hides: their versions stay in the bucket.
    pub marked: u64,
    /// Deletes the server refused.
    pub refused: u64,
}

/// The object names the table references, as 64-bit digests in a sorted vector: 8 bytes a
/// row where the names themselves would take ~100, so a table of a million references fits
/// in 8 MiB. Two names sharing a digest (odds about n²/2⁶⁵) can only make an orphan look
/// referenced, so it is missed, never deleted; and `--delete-objects` asks the table again
/// by name before any delete.
struct ReferencedNames(Vec<u64>);

impl ReferencedNames {
    fn digest(name: &str) -> u64 {
        // Fixed keys: the digests only ever meet others made by this same process.
        let mut hasher = std::hash::DefaultHasher::new();
        name.hash(&mut hasher);
        hasher.finish()
    }

    fn contains(&self, name: &str) -> bool {
        self.0.binary_search(&Self::digest(name)).is_ok()
    }
}

/// Finds local files no row points at and objects no row references, both at least
/// `older_than` old, handing each to `report` as it is found. With `delete_objects`, deletes
/// those objects, re-checking each listing page's candidates just before deleting them:
/// each unfinished entry of `journals` is asked by name (the daemon may be between its upload
/// and its compare-and-set), then one query asks the table which of them a row now references.
/// Local files are never deleted. An error from `report` (the output was closed) stops the run
/// and is returned.
#[allow(clippy::too_many_arguments)]
pub async fn orphans(
    db: &Arc<dyn SalesDb>,
    store: &Arc<dyn ObjectStore>,
    journals: &[Journal],
    media_root: &Path,
    watched_dir: &Path,
    template: &ObjectNameTemplate,
    older_than: Duration,
    delete_objects: bool,
    page_rows: usize,
    mut report: impl FnMut(OrphanEvent) -> std::io::Result<()>,
) -> Result<OrphanSummary, ReportError> {
    let mut summary = OrphanSummary::default();
    let now = SystemTime::now();
    let old_enough = |modified: SystemTime| now.duration_since(modified).unwrap_or_default() >= older_than;

    for file in crate::watch::walk(watched_dir) {
        let modified = std::fs::symlink_metadata(&file).and_then(|m| m.modified());
        if !modified.is_ok_and(old_enough) {
            continue;
        }
        let shown = match RelativeMediaPath::from_absolute(media_root, &file) {
            Ok(path) => {
                let rows = db.find_by_confronta(path.as_str()).await?;
                if !rows.is_empty() {
                    continue;
                }
                path.to_string()
            }
            // A name no Django row can hold is an orphan by definition.
            Err(_) => file.display().to_string(),
        };
        summary.files += 1;
        report(OrphanEvent::File(shown)).map_err(ReportError::Output)?;
    }

    let page_rows = page_rows.clamp(1, usize::from(u16::MAX));
    let mut digests = Vec::new();
    let mut after_id = i64::MIN;
    loop {
        let page = db.referenced_objects(after_id, page_rows as i64).await?;
        let Some((last, _)) = page.last() else { break };
        after_id = *last;
        digests.extend(page.iter().map(|(_, name)| ReferencedNames::digest(name)));
        report(OrphanEvent::ReferencesRead(digests.len() as u64)).map_err(ReportError::Output)?;
        if page.len() < page_rows {
            break;
        }
    }
    digests.sort_unstable();
    digests.dedup();
    digests.shrink_to_fit();
    let referenced = ReferencedNames(digests);

    let mut pages = store.list_pages(template.prefix(), page_rows as u16).await?;
    let mut listed = 0u64;
    while let Some(page) = pages.next().await {
        let page = page?;
        listed += page.len() as u64;
        report(OrphanEvent::ObjectsListed(listed)).map_err(ReportError::Output)?;
        let candidates: Vec<ObjectEntry> = page
            .into_iter()
            // Only names this daemon's template makes are its business: under a shared prefix
            // (or a template without one) other objects are somebody else's, and the start-up
            // probe's scratch objects are the probe's.
            .filter(|object| {
                template.could_have_rendered(&object.name) && !object.name.starts_with(PROBE_PREFIX)
            })
            .filter(|object| !referenced.contains(&object.name))
            .filter(|object| {
                let modified = object
                    .modified_unix_s
                    .map(|s| std::time::UNIX_EPOCH + Duration::from_secs(s.max(0) as u64))
                    .unwrap_or(now);
                old_enough(modified)
            })
            .collect();
        summary.objects += candidates.len() as u64;
        if !delete_objects {
            for object in candidates {
                report(OrphanEvent::Object { name: object.name, deleted: None })
                    .map_err(ReportError::Output)?;
            }
            continue;
        }
        // A row may have started pointing at one since the table was read, or a daemon may be
        // about to record one: ask both again, for this page's candidates, right before deleting.
        // The journals first: an entry holds its object from before the upload until after its
        // row is committed, so an object a journal no longer holds is either free or already
        // referenced by a committed row, which the table's answer, asked next, then shows.
        // Asked the other way round, a daemon that recorded and finished in between slipped
        // through both questions. (An object that stood unreferenced before an entry held it,
        // left by an earlier attempt and found again by a new one, can still be recorded
        // between these questions and its delete below: see ARCHITECTURE.md.)
        let names: Vec<String> = candidates.into_iter().map(|object| object.name).collect();
        let mut held = HashSet::new();
        for name in &names {
            for journal in journals {
                if journal.holds_object(name).await? {
                    held.insert(name.clone());
                    break;
                }
            }
        }
        let now_referenced: HashSet<String> = db.referenced_among(&names).await?.into_iter().collect();
        for name in names {
            let still_free = !held.contains(&name) && !now_referenced.contains(&name);
            if !still_free {
                report(OrphanEvent::Object { name, deleted: None }).map_err(ReportError::Output)?;
                continue;
            }
            let event = match store.delete(&ObjectName::from_stored(name.clone())).await {
                Ok(deleted) => {
                    summary.deleted += 1;
                    summary.marked += u64::from(matches!(deleted, Deleted::Marked { .. }));
                    OrphanEvent::Object { name, deleted: Some(deleted) }
                }
                // A refusal concerns this object alone (issue 29: a version under retention
                // where a server refuses a plain delete): the others are still the operator's
                // to clean up. An outage ends the run, as any other store error.
                Err(e) if matches!(e.kind, StoreErrorKind::AccessDenied | StoreErrorKind::Refused) => {
                    summary.refused += 1;
                    OrphanEvent::DeleteRefused { name, error: e.to_string() }
                }
                Err(e) => return Err(e.into()),
            };
            report(event).map_err(ReportError::Output)?;
        }
    }
    Ok(summary)
}

/// The longest a presigned URL may live (S3's own limit for SigV4).
pub const MAX_PRESIGN_EXPIRY: Duration = Duration::from_secs(7 * 24 * 3600);

/// A temporary GET URL for venta `venta_id`'s confronta in MinIO.
pub async fn presign(
    db: &Arc<dyn SalesDb>,
    store: &Arc<dyn ObjectStore>,
    venta_id: i64,
    expiry: Duration,
) -> Result<String, CommandError> {
    if expiry > MAX_PRESIGN_EXPIRY || expiry.is_zero() {
        return Err(CommandError::Invalid(format!(
            "expiry must be between 1s and 7d, got {}",
            humantime::format_duration(expiry)
        )));
    }
    let row = db
        .get(venta_id)
        .await?
        .ok_or_else(|| CommandError::Invalid(format!("venta {venta_id} does not exist")))?;
    let object = match (&row.minio_object_name, row.subido_a_minio) {
        (Some(object), true) if !object.is_empty() => object.clone(),
        _ => return Err(CommandError::Invalid(format!("venta {venta_id}'s confronta is not in MinIO"))),
    };
    Ok(store.presign_get(&ObjectName::from_stored(object), expiry).await?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::EntryFixture;
    use crate::testing::{DbOp, FakeSalesTable, FakeStore};

    /// `orphans --delete-objects` re-checks a candidate with two questions, one to the table
    /// and one to the daemon's journal, while the daemon goes on. Here the daemon records its
    /// row, unlinks the file and journals `removed` right after the table answered: asked in
    /// that order, both answers said "free", and the object the row now references was deleted
    /// after its only local copy was gone.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_object_recorded_between_the_two_checks_is_not_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let media_root = dir.path().join("media");
        let watched = media_root.join("confrontas");
        std::fs::create_dir_all(&watched).unwrap();
        let object = "confrontas/venta_PORTA-7_confronta_7_0123456789ab.pdf";
        let store = Arc::new(FakeStore::new());
        store.put_object(object, &b"the confronta"[..]);
        let table = Arc::new(FakeSalesTable::new());
        table.insert_new(7, "PORTA-7", "confrontas/a.pdf");

        let journal_path = dir.path().join("journal.sqlite3");
        let daemon_journal = Journal::open(&journal_path).unwrap();
        let entry = EntryFixture {
            state: FileState::Verified,
            venta_id: Some(7),
            object_name: Some(object.to_owned()),
            ..EntryFixture::new(RelativeMediaPath::parse("confrontas/a.pdf").unwrap(), 0)
        };
        daemon_journal.put(&entry.clone().entry()).await.unwrap();
        let finished = EntryFixture { state: FileState::Removed, ..entry }.entry();
        table.after_answer(DbOp::ReferencedAmong, move |table| {
            let mut row = table.row(7).unwrap();
            row.minio_object_name = Some(object.to_owned());
            row.subido_a_minio = true;
            table.put_row(row);
            let journaled = tokio::task::block_in_place(|| {
                tokio::runtime::Handle::current().block_on(daemon_journal.put(&finished))
            });
            journaled.unwrap();
        });

        let db: Arc<dyn SalesDb> = table.clone();
        let objects: Arc<dyn ObjectStore> = store.clone();
        let journals = [Journal::open_read_only(&journal_path).unwrap()];
        let summary = orphans(
            &db,
            &objects,
            &journals,
            &media_root,
            &watched,
            &ObjectNameTemplate::parse(crate::object_name::DEFAULT_TEMPLATE).unwrap(),
            Duration::ZERO,
            true,
            1000,
            |_| Ok(()),
        )
        .await
        .unwrap();
        assert_eq!(table.row(7).unwrap().minio_object_name.as_deref(), Some(object));
        assert!(store.object(object).is_some(), "the recorded row's object was deleted ({summary:?})");
    }

    /// Runs `orphans --delete-objects --older-than 0s` over `store` and an empty table with
    /// `template`; returns what it reported as orphan objects.
    async fn delete_orphans(store: &Arc<FakeStore>, template: &str) -> Vec<String> {
        let dir = tempfile::tempdir().unwrap();
        let watched = dir.path().join("media/confrontas");
        std::fs::create_dir_all(&watched).unwrap();
        let db: Arc<dyn SalesDb> = Arc::new(FakeSalesTable::new());
        let objects: Arc<dyn ObjectStore> = store.clone();
        let mut reported = Vec::new();
        orphans(
            &db,
            &objects,
            &[],
            &dir.path().join("media"),
            &watched,
            &ObjectNameTemplate::parse(template).unwrap(),
            Duration::ZERO,
            true,
            1000,
            |event| {
                match event {
                    OrphanEvent::Object { name, .. } | OrphanEvent::DeleteRefused { name, .. } => {
                        reported.push(name)
                    }
                    _ => {}
                }
                Ok(())
            },
        )
        .await
        .unwrap();
        reported
    }

    /// Issue 23, item 5: `orphans --delete-objects` deletes only what the template could have
    /// named. Under a shared prefix, or with a template that has none, other objects (a
    /// contract another system keeps there, the start-up probe's scratch) are not its to delete.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn orphans_deletes_only_names_the_template_makes() {
        let ours = "confrontas/venta_PORTA-1_confronta_1_0123456789ab.pdf";
        let foreign = "confrontas/contrato_firmado.pdf";
        let store = Arc::new(FakeStore::new());
        for name in [ours, foreign] {
            store.put_object(name, &b"bytes"[..]);
        }
        assert_eq!(delete_orphans(&store, crate::object_name::DEFAULT_TEMPLATE).await, [ours]);
        assert!(store.object(ours).is_none(), "an unreferenced object of ours is deleted");
        assert!(store.object(foreign).is_some(), "another name under the prefix is kept");

        let flat_ours = format!("12_{}", "ab".repeat(32));
        let probe = format!("{PROBE_PREFIX}12_{}", "ab".repeat(32));
        let store = Arc::new(FakeStore::new());
        for name in [flat_ours.as_str(), probe.as_str(), "otros/x.pdf"] {
            store.put_object(name, &b"bytes"[..]);
        }
        assert_eq!(delete_orphans(&store, "{id}_{sha256}").await, vec![flat_ours.clone()]);
        assert!(store.object(&flat_ours).is_none());
        assert!(store.object(&probe).is_some() && store.object("otros/x.pdf").is_some());
    }

    /// Issue 29, item 4: a delete the server refuses (a version under retention, where a
    /// server answers a plain delete so) ended the whole `orphans --delete-objects` run. It is
    /// reported with the server's answer and the run goes on to the other orphans.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_refused_delete_is_reported_and_the_run_goes_on() {
        let names = [
            "confrontas/venta_PORTA-1_confronta_1_0123456789ab.pdf",
            "confrontas/venta_PORTA-2_confronta_2_0123456789ab.pdf",
        ];
        let store = Arc::new(FakeStore::new());
        for name in names {
            store.put_object(name, &b"bytes"[..]);
        }
        store.fail_next(crate::testing::StoreOp::Delete, 1, crate::store::StoreErrorKind::AccessDenied);
        assert_eq!(delete_orphans(&store, crate::object_name::DEFAULT_TEMPLATE).await, names);
        assert!(store.object(names[0]).is_some(), "the refused one is still there");
        assert!(store.object(names[1]).is_none(), "the next one was deleted");
    }
}
