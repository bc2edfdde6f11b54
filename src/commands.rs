//! Operator commands: `verify`, `status`, `orphans`, `presign`.
//!
//! They never take the journal lock, so they run safely beside a live daemon, and only
//! `orphans --delete-objects` changes anything (unreferenced objects, never a local file).

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::db::{SalesDb, VentaRow};
use crate::hash::Sha256Digest;
use crate::journal::{FileState, Journal};
use crate::media_path::RelativeMediaPath;
use crate::object_name::ObjectName;
use crate::store::ObjectStore;

/// One row's verification result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    pub venta_id: i64,
    pub object: String,
    pub size: Option<u64>,
    /// `None` when the object matches the row.
    pub problem: Option<String>,
}

/// Checks that every row marked as stored in MinIO has its object, with the row's SHA-256.
///
/// Without `deep`, the server's stored checksum is compared (single-part uploads carry the
/// whole-content SHA-256; multipart ones are checked through the digest we attached as
/// metadata). With `deep`, the object is downloaded and hashed.
pub async fn verify(
    db: &Arc<dyn SalesDb>,
    store: &Arc<dyn ObjectStore>,
    deep: bool,
    limit: Option<i64>,
) -> Result<Vec<VerifyReport>, String> {
    let rows = db.rows_in_minio(limit.unwrap_or(i64::MAX)).await.map_err(|e| e.to_string())?;
    let mut reports = Vec::with_capacity(rows.len());
    for row in rows {
        reports.push(verify_row(store, &row, deep).await);
    }
    Ok(reports)
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
        return match store.get(&name).await {
            Ok(bytes) if bytes.len() as u64 != info.size => {
                report(Some(info.size), Some("download length differs from the stored size".into()))
            }
            Ok(bytes) => {
                let actual = Sha256Digest::of_bytes(&bytes);
                let problem = (actual != expected)
                    .then(|| format!("content SHA-256 is {actual}, the row says {expected}"));
                report(Some(info.size), problem)
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
    report(Some(info.size), problem)
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
) -> Result<StatusReport, String> {
    let counts = db.count_rows(dir_prefix).await.map_err(|e| e.to_string())?;
    let mut report =
        StatusReport { rows_in_minio: counts.in_minio, rows_local: counts.local, ..Default::default() };
    let total = counts.in_minio + counts.local;
    report.percent_in_minio = if total == 0 { 100.0 } else { 100.0 * counts.in_minio as f64 / total as f64 };
    let Some(journal) = journal else { return Ok(report) };
    let entries = journal.all().await.map_err(|e| e.to_string())?;
    let mut upload_times = Vec::new();
    let mut latest_error: BTreeMap<String, (i64, String)> = BTreeMap::new();
    for entry in &entries {
        *report.journal_states.entry(entry.state.as_str().to_owned()).or_default() += 1;
        match entry.state {
            FileState::WaitingForRow => report.waiting_for_row += 1,
            FileState::Orphan => report.orphans += 1,
            _ => {}
        }
        if let Some(ms) = entry.upload_ms.filter(|_| entry.state == FileState::Removed) {
            upload_times.push(ms);
        }
        let active_failure =
            matches!(entry.state, FileState::Failed | FileState::Rejected | FileState::RowChanged)
                || (entry.error_class.is_some() && !entry.state.is_terminal());
        if let (true, Some(error)) = (active_failure, &entry.last_error) {
            let reason = error.split(':').next().unwrap_or("unknown").to_owned();
            *report.failures_by_reason.entry(reason).or_default() += 1;
        }
        if let (Some(class), Some(error)) = (&entry.error_class, &entry.last_error) {
            let line = format!("{}: {error}", entry.path);
            match latest_error.get(class) {
                Some((at, _)) if *at >= entry.updated_ms => {}
                _ => {
                    latest_error.insert(class.clone(), (entry.updated_ms, line));
                }
            }
        }
    }
    report.last_errors = latest_error.into_iter().map(|(class, (_, line))| (class, line)).collect();
    upload_times.sort_unstable();
    report.uploads_timed = upload_times.len() as u64;
    if !upload_times.is_empty() {
        report.upload_ms_mean = Some(upload_times.iter().sum::<i64>() as f64 / upload_times.len() as f64);
        let index = ((upload_times.len() as f64 * 0.95).ceil() as usize).clamp(1, upload_times.len()) - 1;
        report.upload_ms_p95 = Some(upload_times[index]);
    }
    Ok(report)
}

/// What `orphans` found.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct OrphanReport {
    /// Local files under the watched folder that no row points at.
    pub files: Vec<String>,
    /// Objects under the template's prefix that no row references.
    pub objects: Vec<String>,
    /// Of those objects, the ones deleted (with `--delete-objects`).
    pub deleted: Vec<String>,
}

/// Finds local files no row points at and objects no row references, both at least
/// `older_than` old. With `delete_objects`, deletes those objects, re-checking just before
/// each delete that no row references it and that no unfinished entry of `journals` holds it
/// (the daemon may be between its verify and its compare-and-set). Local files are never
/// deleted.
#[allow(clippy::too_many_arguments)]
pub async fn orphans(
    db: &Arc<dyn SalesDb>,
    store: &Arc<dyn ObjectStore>,
    journals: &[Journal],
    media_root: &Path,
    watched_dir: &Path,
    object_prefix: &str,
    older_than: Duration,
    delete_objects: bool,
) -> Result<OrphanReport, String> {
    let mut report = OrphanReport::default();
    let now = SystemTime::now();
    let old_enough = |modified: SystemTime| now.duration_since(modified).unwrap_or_default() >= older_than;

    for file in crate::watch::walk(watched_dir) {
        let modified = std::fs::symlink_metadata(&file).and_then(|m| m.modified());
        if !modified.is_ok_and(old_enough) {
            continue;
        }
        let shown = match RelativeMediaPath::from_absolute(media_root, &file) {
            Ok(path) => {
                let rows = db.find_by_confronta(path.as_str()).await.map_err(|e| e.to_string())?;
                if !rows.is_empty() {
                    continue;
                }
                path.to_string()
            }
            // A name no Django row can hold is an orphan by definition.
            Err(_) => file.display().to_string(),
        };
        report.files.push(shown);
    }

    let referenced: HashSet<String> =
        db.referenced_objects().await.map_err(|e| e.to_string())?.into_iter().collect();
    let objects = store.list(object_prefix).await.map_err(|e| e.to_string())?;
    for object in objects {
        if referenced.contains(&object.name) {
            continue;
        }
        let modified = object
            .modified_unix_s
            .map(|s| std::time::UNIX_EPOCH + Duration::from_secs(s.max(0) as u64))
            .unwrap_or(now);
        if !old_enough(modified) {
            continue;
        }
        report.objects.push(object.name.clone());
        if delete_objects {
            // A row may have started pointing at it since the listing, or a daemon may be about
            // to record it: ask both again, per object, right before the delete.
            let mut still_free = !db.object_referenced(&object.name).await.map_err(|e| e.to_string())?;
            for journal in journals {
                still_free =
                    still_free && !journal.holds_object(&object.name).await.map_err(|e| e.to_string())?;
            }
            if still_free {
                store
                    .delete(&ObjectName::from_stored(object.name.clone()))
                    .await
                    .map_err(|e| e.to_string())?;
                report.deleted.push(object.name);
            }
        }
    }
    Ok(report)
}

/// The longest a presigned URL may live (S3's own limit for SigV4).
pub const MAX_PRESIGN_EXPIRY: Duration = Duration::from_secs(7 * 24 * 3600);

/// A temporary GET URL for venta `venta_id`'s confronta in MinIO.
pub async fn presign(
    db: &Arc<dyn SalesDb>,
    store: &Arc<dyn ObjectStore>,
    venta_id: i64,
    expiry: Duration,
) -> Result<String, String> {
    if expiry > MAX_PRESIGN_EXPIRY || expiry.is_zero() {
        return Err(format!("expiry must be between 1s and 7d, got {}", humantime::format_duration(expiry)));
    }
    let row = db
        .get(venta_id)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("venta {venta_id} does not exist"))?;
    let object = match (&row.minio_object_name, row.subido_a_minio) {
        (Some(object), true) if !object.is_empty() => object.clone(),
        _ => return Err(format!("venta {venta_id}'s confronta is not in MinIO")),
    };
    store.presign_get(&ObjectName::from_stored(object), expiry).await.map_err(|e| e.to_string())
}
