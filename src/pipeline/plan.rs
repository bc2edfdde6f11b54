//! `--rescan --dry-run`: what `Pipeline::process` would do with a file, found without writing
//! anything anywhere. Which files a dry run looks at is the scheduler's business
//! (`daemon::dry_run_candidates`), as it is for a real rescan.

use super::{local_identity, object_matches, Pipeline};
use crate::media_path::RelativeMediaPath;

/// What `--rescan --dry-run` reports for one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Venta id and numero, once matched.
    pub venta: Option<(i64, String)>,
    pub object: Option<String>,
    pub size: Option<u64>,
    pub action: PlanAction,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlanAction {
    /// Would upload, verify, record and remove.
    Upload,
    /// The object already holds these bytes: would verify, record and remove.
    RecordExisting,
    /// Would leave the file alone, for this reason.
    Skip(String),
}

impl Pipeline {
    /// What `process` would do with `path`, found without writing anything anywhere: no
    /// upload, no row change, no journal entry, no file touched (`--rescan --dry-run`).
    pub async fn plan(&self, path: &RelativeMediaPath) -> Plan {
        let absolute = self.media_root.to_absolute(path);
        let skip =
            |reason: String| Plan { venta: None, object: None, size: None, action: PlanAction::Skip(reason) };
        let identity = match local_identity(&absolute) {
            Ok(Some(identity)) => identity,
            Ok(None) => return skip("the local file does not exist".into()),
            Err(failure) => return skip(failure.message),
        };
        let row = match self.db.find_by_confronta(path.as_str()).await {
            Ok(rows) if rows.len() == 1 => rows.into_iter().next().expect("one row"),
            Ok(rows) if rows.is_empty() => return skip("no row points at this file".into()),
            Ok(rows) => return skip(format!("{} rows point at this file", rows.len())),
            Err(e) => return skip(e.to_string()),
        };
        let hash = match self.hash(&absolute, identity).await {
            Ok(hash) => hash,
            Err(failure) => {
                return Plan {
                    venta: Some((row.id, row.numero)),
                    object: None,
                    size: Some(identity.size),
                    action: PlanAction::Skip(failure.message),
                }
            }
        };
        let venta = Some((row.id, row.numero.clone()));
        let (object, _) = match self.name_object(&row, &hash.sha256, path) {
            Ok(named) => named,
            Err(failure) => {
                return Plan {
                    venta,
                    object: None,
                    size: Some(identity.size),
                    action: PlanAction::Skip(failure.message),
                }
            }
        };
        let action = match self.store.stat(&object).await {
            // Stored in clear while encryption is asked for: the run uploads it again.
            Ok(Some(info)) if object_matches(&info, &hash, &hash.expected_s3_checksum()) => {
                match self.store.policy().unencrypted(&info) {
                    None => PlanAction::RecordExisting,
                    Some(_) => PlanAction::Upload,
                }
            }
            Ok(Some(_)) => PlanAction::Skip(format!("object {object} exists with other content")),
            Ok(None) => PlanAction::Upload,
            Err(e) => PlanAction::Skip(e.to_string()),
        };
        Plan { venta, object: Some(object.to_string()), size: Some(identity.size), action }
    }
}
