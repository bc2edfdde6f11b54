//! The operator's way out of what the daemon cannot decide alone about which sale a document
//! belongs to: `adopt` gives a file to a venta an operator vouches for, and `repair` points rows
//! that a database restore sent back to a long-gone local file at the object the journal
//! recorded for them.

use std::sync::Arc;

use super::CommandError;
use crate::db::{AdoptRequest, RecordOutcome, RepointRequest, SalesDb, VentaRow};
use crate::hash::FileIdentity;
use crate::journal::{FileState, Journal, RecordedObject};
use crate::media_path::{MediaRoot, RelativeMediaPath};
use crate::object_name::ObjectName;
use crate::store::ObjectStore;

/// What `adopt` found, and will do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdoptPlan {
    pub path: RelativeMediaPath,
    pub venta_id: i64,
    pub size: u64,
    /// The row as read: its compare-and-set expects it unchanged.
    pub row: VentaRow,
    /// The document the venta holds now, which the file replaces (the daemon retires it once
    /// the new one is recorded, as for any correction).
    pub replaces: Option<String>,
    /// What the daemon's journal says of the file: its state and why it waits.
    pub journal: Option<(FileState, Option<String>)>,
}

/// Checks that venta `venta_id` may be given the file at `path`: the file is there, the venta
/// exists, no other row names the path, and the venta has no other local file still waiting
/// (which it would leave without a row).
pub async fn plan_adopt(
    db: &Arc<dyn SalesDb>,
    media_root: &MediaRoot,
    journal: Option<&Journal>,
    path: &RelativeMediaPath,
    venta_id: i64,
) -> Result<AdoptPlan, CommandError> {
    let absolute = media_root.to_absolute(path);
    let identity = match FileIdentity::of_path(&absolute) {
        Ok(identity) => identity,
        Err(e) if e.is_not_found() => {
            return Err(CommandError::Invalid(format!("no file at {path} ({})", absolute.display())))
        }
        Err(e) => return Err(CommandError::Invalid(e.to_string())),
    };
    let others: Vec<i64> = db
        .find_by_confronta(path.as_str())
        .await?
        .into_iter()
        .map(|row| row.id)
        .filter(|id| *id != venta_id)
        .collect();
    if !others.is_empty() {
        let list = others.iter().map(i64::to_string).collect::<Vec<_>>().join(", ");
        return Err(CommandError::Invalid(format!(
            "venta {list} also names {path}; a file belongs to one sale: correct the other row first"
        )));
    }
    let row = db
        .get(venta_id)
        .await?
        .ok_or_else(|| CommandError::Invalid(format!("venta {venta_id} does not exist")))?;
    if let Some(other) = row.confronta.as_deref().filter(|other| !other.is_empty() && *other != path.as_str())
    {
        let waiting = RelativeMediaPath::parse(other)
            .is_ok_and(|other| std::fs::symlink_metadata(media_root.to_absolute(&other)).is_ok());
        if waiting {
            return Err(CommandError::Invalid(format!(
                "venta {venta_id} names {other}, whose file is still waiting to move; adopting {path} would leave \
                 that file without a row"
            )));
        }
    }
    let journal = match journal {
        Some(journal) => journal.get(path).await?.map(|entry| (entry.state(), entry.failure_text())),
        None => None,
    };
    let replaces = row.minio_object_name.clone().filter(|object| !object.is_empty());
    Ok(AdoptPlan { path: path.clone(), venta_id, size: identity.size, row, replaces, journal })
}

/// Gives the venta the file, as the companion's save of a new file does: the path, a new
/// assignment stamp (the evidence the daemon waits for), the flag back to false; one
/// compare-and-set against the row as `plan_adopt` read it.
pub async fn adopt(db: &Arc<dyn SalesDb>, plan: &AdoptPlan) -> Result<(), CommandError> {
    let request = AdoptRequest {
        venta_id: plan.venta_id,
        path: plan.path.as_str(),
        expected_confronta: plan.row.confronta.as_deref(),
        expected_object_name: plan.row.minio_object_name.as_deref(),
    };
    match db.adopt(&request).await? {
        RecordOutcome::Recorded => Ok(()),
        RecordOutcome::RowChanged => Err(CommandError::Invalid(format!(
            "venta {} changed while adopt looked at it; nothing was written, run it again",
            plan.venta_id
        ))),
    }
}

/// What `repair` made of one object the journal recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Repair {
    /// The row points at it: nothing to do.
    Current,
    /// The row was pointed back at it (or would be, with `--dry-run`).
    Repointed { dry_run: bool, was: Option<String> },
    /// Left alone, and why (the venta moved on, is gone, or is being worked on).
    Skipped(String),
    /// The object cannot back the row: gone from the bucket, or other bytes.
    Failed(String),
}

/// One line of `repair`'s report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepairLine {
    pub venta_id: i64,
    pub object: String,
    pub repair: Repair,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct RepairSummary {
    pub checked: u64,
    pub current: u64,
    pub repointed: u64,
    pub skipped: u64,
    pub failed: u64,
}

/// For every object the journals recorded that no later record for its venta superseded, finds
/// the venta's row and points it back at the object when a restore took the record away: the
/// row names no object or an older one of this venta's, and no local file of its own is
/// waiting. Each decision goes to `report` as it is made.
pub async fn repair(
    db: &Arc<dyn SalesDb>,
    store: &Arc<dyn ObjectStore>,
    journals: &[Journal],
    media_root: &MediaRoot,
    url_base: &str,
    dry_run: bool,
    mut report: impl FnMut(&RepairLine),
) -> Result<RepairSummary, CommandError> {
    let mut current = std::collections::BTreeMap::<String, RecordedObject>::new();
    for journal in journals {
        for object in journal.current_objects().await? {
            match current.get(&object.object_name) {
                Some(known) if known.recorded_ms >= object.recorded_ms => {}
                _ => {
                    current.insert(object.object_name.clone(), object);
                }
            }
        }
    }
    let mut objects: Vec<RecordedObject> = current.into_values().collect();
    objects.sort_by_key(|object| (object.venta_id, object.recorded_ms));
    let mut summary = RepairSummary::default();
    for recorded in objects {
        let repair = repair_one(db, store, journals, media_root, url_base, dry_run, &recorded).await?;
        summary.checked += 1;
        match &repair {
            Repair::Current => summary.current += 1,
            Repair::Repointed { .. } => summary.repointed += 1,
            Repair::Skipped(_) => summary.skipped += 1,
            Repair::Failed(_) => summary.failed += 1,
        }
        report(&RepairLine { venta_id: recorded.venta_id, object: recorded.object_name, repair });
    }
    Ok(summary)
}

async fn repair_one(
    db: &Arc<dyn SalesDb>,
    store: &Arc<dyn ObjectStore>,
    journals: &[Journal],
    media_root: &MediaRoot,
    url_base: &str,
    dry_run: bool,
    recorded: &RecordedObject,
) -> Result<Repair, CommandError> {
    let venta_id = recorded.venta_id;
    let Some(row) = db.get(venta_id).await? else {
        return Ok(Repair::Skipped(format!("venta {venta_id} no longer exists; its object is kept")));
    };
    let now = row.minio_object_name.clone().filter(|object| !object.is_empty());
    if now.as_deref() == Some(recorded.object_name.as_str()) {
        return Ok(Repair::Current);
    }
    if let Some(local) = row.confronta.as_deref().filter(|path| !path.is_empty()) {
        let waiting = RelativeMediaPath::parse(local)
            .is_ok_and(|local| std::fs::symlink_metadata(media_root.to_absolute(&local)).is_ok());
        if waiting {
            return Ok(Repair::Skipped(format!(
                "venta {venta_id} names the local file {local}, which the daemon moves in its turn"
            )));
        }
    }
    if let Some(other) = &now {
        // Only an older document of this same venta may be replaced: anything else is a newer
        // record (another daemon's, a correction) or a name the journal knows nothing of.
        let mut older = false;
        for journal in journals {
            older |= journal
                .objects_of(venta_id)
                .await?
                .iter()
                .any(|known| known.object_name == *other && known.recorded_ms < recorded.recorded_ms);
        }
        if !older {
            return Ok(Repair::Skipped(format!(
                "venta {venta_id} points at {other}, which is not an older document of it in the journal; left as it is"
            )));
        }
    }
    let name = ObjectName::from_stored(recorded.object_name.clone());
    match store.stat(&name).await? {
        None => {
            return Ok(Repair::Failed(format!(
                "object {} is gone from the bucket; venta {venta_id}'s document must come from a backup",
                recorded.object_name
            )))
        }
        Some(info) if recorded.size.is_some_and(|size| size != info.size) => {
            return Ok(Repair::Failed(format!(
                "object {} holds {} bytes, not the {} recorded",
                recorded.object_name,
                info.size,
                recorded.size.unwrap_or_default()
            )))
        }
        Some(_) => {}
    }
    if dry_run {
        return Ok(Repair::Repointed { dry_run: true, was: now });
    }
    // The daemon may be working on this venta (PostgreSQL's claims keep the two apart).
    if !db.try_claim(venta_id).await? {
        return Ok(Repair::Skipped(format!("the daemon is working on venta {venta_id}; run repair again")));
    }
    let url = format!("{url_base}/{}", recorded.object_name);
    let sha256_hex = recorded.sha256.to_hex();
    let request = RepointRequest {
        venta_id,
        expected_confronta: row.confronta.as_deref(),
        expected_object_name: row.minio_object_name.as_deref(),
        url: &url,
        object_name: &recorded.object_name,
        sha256_hex: &sha256_hex,
    };
    let outcome = db.repoint(&request).await;
    db.release_claim(venta_id).await;
    Ok(match outcome? {
        RecordOutcome::Recorded => Repair::Repointed { dry_run: false, was: now },
        RecordOutcome::RowChanged => {
            Repair::Skipped(format!("venta {venta_id} changed while repair looked at it; run repair again"))
        }
    })
}
