//! Operator commands that read the world and change nothing: `verify`.
//!
//! They never take the journal lock, so they run safely beside a live daemon.

use std::sync::Arc;

use crate::db::{SalesDb, VentaRow};
use crate::hash::Sha256Digest;
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
    let rows = db
        .rows_in_minio(limit.unwrap_or(i64::MAX))
        .await
        .map_err(|e| e.to_string())?;
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
            Ok(bytes) if bytes.len() as u64 != info.size => report(
                Some(info.size),
                Some("download length differs from the stored size".into()),
            ),
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
            Some(meta) => Some(format!(
                "object metadata says SHA-256 {meta}, the row says {expected}"
            )),
            None => Some("the server reports no whole-content checksum; use --deep".into()),
        },
    };
    report(Some(info.size), problem)
}
