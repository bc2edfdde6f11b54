//! `--rescan --dry-run`: what `Pipeline::process` would do with a file, found without writing
//! anything anywhere. Which files a dry run looks at is the scheduler's business
//! (`daemon::dry_run_candidates`), as it is for a real rescan.

use super::rows::Owners;
use super::{local_identity, object_matches, Pipeline, Unowned};
use crate::journal::FileState;
use crate::media_path::{symlink_metadata_no_follow, NoFollowError, RelativeMediaPath};
use crate::validation::Verdict;

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
    /// Validation refuses it: would clear the row's path (naming the reason) and move the file
    /// to quarantine, for this reason (`<code>: <detail>`).
    Quarantine(String),
    /// Recorded before the last stop (the row already points at the object): would only
    /// remove the local copy, as a resumed `recorded` entry does.
    FinishRecorded,
    /// Would leave the file where it is, for this reason.
    Skip(String),
}

impl Pipeline {
    /// What `process` would do with `path`, found without writing anything anywhere: no
    /// upload, no row change, no journal entry, no file touched (`--rescan --dry-run`). It asks
    /// the same questions in the same order as the real run's steps (`match_row`, then
    /// `hash_for_run`, `name`, `upload`), through the same functions: which rows may own the
    /// file (the ownership rule, on the journal's marks), the regular-file check, validation,
    /// the hash, the object's name and what stands at that name. Only the writes are left out.
    pub async fn plan(&self, path: &RelativeMediaPath) -> Plan {
        let absolute = self.media_root.to_absolute(path);
        let skip =
            |reason: String| Plan { venta: None, object: None, size: None, action: PlanAction::Skip(reason) };
        let identity = match local_identity(&absolute) {
            Ok(Some(identity)) => identity,
            Ok(None) => return skip("the local file does not exist".into()),
            Err(failure) => return skip(failure.message),
        };
        // As `open`: a journaled decision about this very file is carried out before anything
        // is asked again (a `recorded` entry is finished, a `refusing` one refused).
        if let Ok(Some(entry)) = self.journal.get(path).await {
            let this_file = entry.identity().is_some_and(|journaled| journaled.same_but_ctime(&identity));
            let venta = match entry.venta_id() {
                Some(id) => {
                    Some((id, self.db.get(id).await.ok().flatten().map(|row| row.numero).unwrap_or_default()))
                }
                None => None,
            };
            let planned = |action| Plan {
                venta: venta.clone(),
                object: entry.object_name().clone(),
                size: Some(identity.size),
                action,
            };
            match entry.state() {
                FileState::Recorded if this_file => return planned(PlanAction::FinishRecorded),
                FileState::Refusing if this_file => {
                    return planned(PlanAction::Quarantine(entry.last_error().clone().unwrap_or_default()))
                }
                _ => {}
            }
        }
        let rows = match self.db.find_by_confronta(path.as_str()).await {
            Ok(rows) => rows,
            Err(e) => return skip(e.to_string()),
        };
        let Owners { rows, stale } = match self.owners(path, rows).await {
            Ok(owners) => owners,
            Err(e) => return skip(e.to_string()),
        };
        let unowned = |why: Unowned| skip(why.failure(path).message);
        let row = match rows.len() {
            0 if stale.is_empty() => return unowned(Unowned::NoRow),
            0 => return unowned(Unowned::StaleRows(stale)),
            1 => rows.into_iter().next().expect("one row"),
            n => {
                // As `match_row`: no sale gets a file several rows name, but a refused one
                // still leaves MEDIA_ROOT.
                let ids: Vec<String> = rows.iter().map(|r| r.id.to_string()).collect();
                let several = format!("{n} rows point at this file (ventas {})", ids.join(", "));
                return match self.validator().check(&absolute, path, identity).await {
                    Verdict::Quarantine(refusal) => Plan {
                        venta: None,
                        object: None,
                        size: Some(identity.size),
                        action: PlanAction::Quarantine(refusal.to_string()),
                    },
                    _ => Plan { size: Some(identity.size), ..skip(several) },
                };
            }
        };
        let venta = Some((row.id, row.numero.clone()));
        let keep = |reason: String| Plan {
            venta: venta.clone(),
            object: None,
            size: Some(identity.size),
            action: PlanAction::Skip(reason),
        };
        // As `hash_for_run`: a file that is not a regular one is never followed.
        match symlink_metadata_no_follow(&absolute) {
            Ok(meta) if meta.file_type().is_file() => {}
            Err(e @ NoFollowError::SymlinkedFolder { .. }) => return keep(e.to_string()),
            _ => return keep(format!("{} is not a regular file; it is never followed", absolute.display())),
        }
        match self.validator().check(&absolute, path, identity).await {
            Verdict::Accept { .. } => {}
            Verdict::Retry(message) | Verdict::Keep(message) => return keep(message),
            Verdict::Quarantine(refusal) => {
                return Plan { action: PlanAction::Quarantine(refusal.to_string()), ..keep(String::new()) }
            }
        }
        let hash = match self.hash_only(&absolute, identity).await {
            Ok(hash) => hash,
            Err(failure) => return keep(failure.message),
        };
        let (object, _) = match self.name_object(&row, &hash.sha256, path) {
            Ok(named) => named,
            Err(failure) => return keep(failure.message),
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
