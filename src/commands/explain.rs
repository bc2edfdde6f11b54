//! `explain`: everything known about one file or one sale, gathered from the rows, the
//! journals, the bucket, the media folder and the quarantine folder, with what the daemon will
//! do next and the one remedy that applies (issue 25, item 1; issue 29, item 4's listing of a
//! venta's documents and their versions).
//!
//! It only reads: the journals are opened read-only (the daemon's and a rescan's sibling, never
//! created or locked), the store is asked for stats and version listings, the files are stat'ed.
//! What the daemon will do is derived here from the same rules the pipeline and the scheduler
//! follow (`pipeline::rows` for ownership, `daemon::scheduler` for when a file is looked at
//! again); a retry's exact instant is the scheduler's, in memory, so only its bound is known.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::CommandError;
use crate::db::{SalesDb, VentaRow};
use crate::error::Reason;
use crate::hash::FileIdentity;
use crate::journal::{FileState, Journal, JournalEntry, RecordedObject};
use crate::media_path::{MediaRoot, RelativeMediaPath};
use crate::object_name::{ObjectName, ObjectNameTemplate};
use crate::store::{ObjectStore, ObjectVersion};
use crate::validation::{Quarantined, Validator};

/// What the operator asked about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    Path(RelativeMediaPath),
    Venta(i64),
}

/// The daemon's timers that decide when a waiting file is looked at again (`watch.*`,
/// `pipeline.*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timers {
    pub orphan_after: Duration,
    pub owner_wait: Duration,
    pub retry_initial: Duration,
    pub retry_max: Duration,
}

/// Where `explain` looks.
pub struct Sources<'a> {
    pub db: &'a Arc<dyn SalesDb>,
    pub store: &'a Arc<dyn ObjectStore>,
    /// The daemon's journal first, then a rescan's sibling, where they exist.
    pub journals: &'a [Journal],
    pub media_root: &'a MediaRoot,
    pub validator: &'a Validator,
    pub template: &'a ObjectNameTemplate,
    pub timers: Timers,
}

/// Everything `explain` found, as printed (and as `--json` prints it).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Explanation {
    /// The path explained: the one asked for, or the venta's (its row's, else its last file's).
    pub path: Option<String>,
    pub venta: Option<i64>,
    /// Rows naming the path, or the venta's row.
    pub rows: Vec<RowFacts>,
    pub local_file: Option<LocalFile>,
    pub quarantine: Vec<Quarantined>,
    /// The journals' entries for the path (for a venta: every entry matched to it).
    pub journal: Vec<EntryFacts>,
    /// Rows the daemon saw naming the path while no file stood there.
    pub missing_marks: Vec<MarkFacts>,
    /// Every document the journals, the row and the bucket know for the venta(s), oldest first.
    pub documents: Vec<Document>,
    pub operator_log: Vec<ActionFacts>,
    /// What the daemon does next, and when.
    pub next: String,
    /// The one remedy that applies, with its exact command; `None` when nothing needs doing.
    pub remedy: Option<String>,
    /// Whether a row, a journal entry or a file knows the path or venta at all.
    pub found: bool,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct RowFacts {
    pub venta_id: i64,
    pub numero: String,
    pub confronta: Option<String>,
    pub object_name: Option<String>,
    pub subido_a_minio: bool,
    pub sha256: Option<String>,
    /// `confronta_sync_error`: why the daemon refused the row's file.
    pub sync_error: Option<String>,
    /// `confronta_asignada_en`.
    pub assigned: Option<String>,
    /// For a row naming the path: `false` when it named it while no file stood there and has
    /// not been assigned a file since (the ownership rule).
    pub owns_the_file: Option<bool>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct LocalFile {
    pub absolute: PathBuf,
    /// `None` when there is no file.
    pub size: Option<u64>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct EntryFacts {
    pub journal: PathBuf,
    pub path: String,
    pub state: String,
    pub venta_id: Option<i64>,
    pub object_name: Option<String>,
    pub previous_object: Option<String>,
    pub attempts: u32,
    pub error_class: Option<String>,
    /// The reason's code (`no_row`, `quarantined`, …), the journal's `reason` column.
    pub reason: Option<String>,
    pub last_error: Option<String>,
    pub size: Option<u64>,
    pub first_seen: String,
    pub updated: String,
    pub upload_ms: Option<i64>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct MarkFacts {
    pub venta_id: i64,
    pub assigned: Option<String>,
    pub since: String,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct ActionFacts {
    pub at: String,
    pub command: String,
    pub detail: String,
}

/// One document a venta has had: an object the row, a journal or the bucket names.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Document {
    pub object_name: String,
    pub venta_id: Option<i64>,
    /// The row points at it now.
    pub current: bool,
    /// The local path it was uploaded from, where a journal recorded it.
    pub from_path: Option<String>,
    pub sha256: Option<String>,
    pub recorded: Option<String>,
    /// When the journal recorded another document for the venta.
    pub superseded: Option<String>,
    /// The object as a stat finds it now.
    pub object: ObjectFacts,
    /// Its versions and delete markers, newest first, where the bucket keeps versions.
    pub versions: Vec<VersionFacts>,
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ObjectFacts {
    pub present: bool,
    pub size: Option<u64>,
    /// `x-amz-server-side-encryption` as the server reports it.
    pub encryption: Option<String>,
    /// What is wrong with it (stored without the encryption asked for), or why the stat failed.
    pub problem: Option<String>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct VersionFacts {
    pub version_id: Option<String>,
    pub delete_marker: bool,
    pub latest: bool,
    pub size: u64,
    pub modified: Option<String>,
}

/// Gathers what is known about `subject` and decides what comes next; reads only.
pub async fn explain(sources: &Sources<'_>, subject: &Subject) -> Result<Explanation, CommandError> {
    let mut explanation = Explanation::default();
    let mut venta_rows: Vec<VentaRow> = Vec::new();
    let mut entries: Vec<(PathBuf, JournalEntry)> = Vec::new();
    let mut recorded: Vec<RecordedObject> = Vec::new();
    let path = match subject {
        Subject::Path(path) => {
            venta_rows = sources.db.find_by_confronta(path.as_str()).await?;
            for journal in sources.journals {
                if let Some(entry) = journal.get(path).await? {
                    entries.push((journal.path().to_owned(), entry));
                }
                recorded.extend(journal.objects_from_path(path).await?);
            }
            Some(path.clone())
        }
        Subject::Venta(venta_id) => {
            explanation.venta = Some(*venta_id);
            venta_rows.extend(sources.db.get(*venta_id).await?);
            for journal in sources.journals {
                for entry in journal.entries_of_venta(*venta_id).await? {
                    entries.push((journal.path().to_owned(), entry));
                }
                recorded.extend(journal.objects_of(*venta_id).await?);
            }
            // The row's local file if it names one, else the venta's last file in a journal.
            let named = venta_rows.first().and_then(|row| row.confronta.as_deref()).filter(|p| !p.is_empty());
            let last =
                entries.iter().max_by_key(|(_, entry)| entry.updated_ms()).map(|(_, e)| e.path().clone());
            named.and_then(|p| RelativeMediaPath::parse(p).ok()).or(last)
        }
    };
    entries.sort_by_key(|(_, entry)| entry.updated_ms());

    let mut marks = Vec::new();
    if let Some(path) = &path {
        explanation.path = Some(path.to_string());
        for journal in sources.journals {
            marks.extend(journal.missing_marks(path).await?);
        }
        let absolute = sources.media_root.to_absolute(path);
        let size = FileIdentity::of_path(&absolute).ok().map(|identity| identity.size);
        explanation.local_file = Some(LocalFile { absolute, size });
        explanation.quarantine = sources.validator.quarantined(path);
    }
    for journal in sources.journals {
        for action in journal.operator_actions(path.as_ref(), explanation.venta).await? {
            explanation.operator_log.push(ActionFacts {
                at: at(action.at_ms),
                command: action.command,
                detail: action.detail,
            });
        }
    }
    for row in &venta_rows {
        let names_path = path.as_ref().is_some_and(|p| row.confronta.as_deref() == Some(p.as_str()));
        let stale = marks.iter().any(|mark| mark.venta_id == row.id && mark.assigned == row.assigned);
        explanation.rows.push(RowFacts {
            venta_id: row.id,
            numero: row.numero.clone(),
            confronta: row.confronta.clone().filter(|p| !p.is_empty()),
            object_name: row.minio_object_name.clone().filter(|o| !o.is_empty()),
            subido_a_minio: row.subido_a_minio,
            sha256: row.sha256.clone().filter(|s| !s.is_empty()),
            sync_error: sources.db.sync_error(row.id).await?,
            assigned: row.assigned.clone(),
            owns_the_file: names_path.then_some(!stale),
        });
    }
    explanation.missing_marks = marks
        .iter()
        .map(|mark| MarkFacts {
            venta_id: mark.venta_id,
            assigned: mark.assigned.clone(),
            since: at(mark.since_ms),
        })
        .collect();
    explanation.journal = entries.iter().map(|(journal, entry)| entry_facts(journal, entry)).collect();
    explanation.documents = documents(sources, subject, &venta_rows, &entries, &recorded).await?;
    explanation.found = !explanation.rows.is_empty()
        || !explanation.journal.is_empty()
        || !recorded.is_empty()
        || !explanation.quarantine.is_empty()
        || explanation.local_file.as_ref().is_some_and(|file| file.size.is_some());
    let (next, remedy) = decide(sources.timers, &explanation, entries.last().map(|(_, entry)| entry));
    explanation.next = next;
    explanation.remedy = remedy;
    Ok(explanation)
}

fn entry_facts(journal: &std::path::Path, entry: &JournalEntry) -> EntryFacts {
    EntryFacts {
        journal: journal.to_owned(),
        path: entry.path().to_string(),
        state: entry.state().as_str().to_owned(),
        venta_id: entry.venta_id(),
        object_name: entry.object_name().clone(),
        previous_object: entry.previous_object().clone(),
        attempts: entry.attempts(),
        error_class: entry.error_class().map(|class| class.as_str().to_owned()),
        reason: entry.reason().map(|reason| reason.as_str().to_owned()),
        last_error: entry.last_error().clone(),
        size: entry.identity().map(|identity| identity.size),
        first_seen: at(entry.first_seen_ms()),
        updated: at(entry.updated_ms()),
        upload_ms: entry.upload_ms(),
    }
}

/// Every object the row, the journals and (for a venta) the bucket's versions name, each
/// stat'ed, oldest first.
async fn documents(
    sources: &Sources<'_>,
    subject: &Subject,
    rows: &[VentaRow],
    entries: &[(PathBuf, JournalEntry)],
    recorded: &[RecordedObject],
) -> Result<Vec<Document>, CommandError> {
    let mut known = KnownDocuments::default();
    for object in recorded {
        if let Some(document) = known.note(&object.object_name, Some(object.venta_id), object.recorded_ms) {
            document.from_path = Some(object.path.clone());
            document.sha256 = Some(object.sha256.to_hex());
            document.recorded = Some(at(object.recorded_ms));
            document.superseded = object.superseded_ms.map(at);
        }
    }
    for (_, entry) in entries {
        // The previous object was the venta's before this entry's; an entry's own object is
        // named where it was not recorded (an upload left unrecorded by a crash, a refusal).
        for name in [entry.previous_object(), entry.object_name()].into_iter().flatten() {
            known.note(name, entry.venta_id(), entry.first_seen_ms());
        }
    }
    for row in rows {
        if let Some(name) = row.minio_object_name.as_deref() {
            known.note(name, Some(row.id), i64::MAX);
        }
    }
    // The bucket's versions, which also name documents no journal knows (a journal lost, a
    // restored database): listed under the venta's prefix where the template has one.
    let mut versions: BTreeMap<String, Vec<ObjectVersion>> = BTreeMap::new();
    if let (Subject::Venta(venta_id), Some(row)) = (subject, rows.first()) {
        let listed = match sources.template.venta_prefix(*venta_id, &row.numero) {
            Some(prefix) => sources
                .store
                .object_versions(&prefix)
                .await?
                .into_iter()
                .filter(|version| sources.template.is_of_venta(&version.name, *venta_id, &row.numero))
                .collect(),
            None => {
                let mut listed = Vec::new();
                for name in known.documents.keys() {
                    listed.extend(
                        sources.store.object_versions(name).await?.into_iter().filter(|v| v.name == *name),
                    );
                }
                listed
            }
        };
        for version in listed {
            versions.entry(version.name.clone()).or_default().push(version);
        }
        for (name, of_name) in &versions {
            let oldest = of_name.iter().filter_map(|v| v.modified_unix_s).min().unwrap_or(0);
            known.note(name, Some(*venta_id), oldest.saturating_mul(1000));
        }
    }
    let current: Vec<&str> = rows.iter().filter_map(|row| row.minio_object_name.as_deref()).collect();
    known.order.sort();
    let mut documents = Vec::with_capacity(known.order.len());
    for (_, name) in std::mem::take(&mut known.order) {
        let mut document = known.documents.remove(&name).expect("each noted name is known");
        document.current = current.contains(&name.as_str());
        document.object = object_facts(sources.store, &name).await;
        document.versions = versions
            .remove(&name)
            .unwrap_or_default()
            .into_iter()
            .map(|version| VersionFacts {
                version_id: version.version_id,
                delete_marker: version.delete_marker,
                latest: version.latest,
                size: version.size,
                modified: version.modified_unix_s.map(|s| at(s.saturating_mul(1000))),
            })
            .collect();
        documents.push(document);
    }
    Ok(documents)
}

/// The documents found so far, by name, and the order to print them in: by when each was
/// first known (recorded, seen, or its oldest version written), the row's own last.
#[derive(Default)]
struct KnownDocuments {
    documents: BTreeMap<String, Document>,
    order: Vec<(i64, String)>,
}

impl KnownDocuments {
    /// Notes `name`, first known at `when`; the new document to fill in, or `None` when it was
    /// known already (the first source to name it is the most precise).
    fn note(&mut self, name: &str, venta_id: Option<i64>, when: i64) -> Option<&mut Document> {
        if name.is_empty() || self.documents.contains_key(name) {
            return None;
        }
        self.order.push((when, name.to_owned()));
        let document = Document {
            object_name: name.to_owned(),
            venta_id,
            current: false,
            from_path: None,
            sha256: None,
            recorded: None,
            superseded: None,
            object: ObjectFacts::default(),
            versions: Vec::new(),
        };
        Some(self.documents.entry(name.to_owned()).or_insert(document))
    }
}

/// The object as a stat finds it; a stat that fails is reported, not fatal: the rest of the
/// picture is still worth printing.
async fn object_facts(store: &Arc<dyn ObjectStore>, name: &str) -> ObjectFacts {
    match store.stat(&ObjectName::from_stored(name)).await {
        Ok(Some(info)) => ObjectFacts {
            present: true,
            size: Some(info.size),
            problem: store.policy().unencrypted(&info),
            encryption: info.encryption,
        },
        Ok(None) => ObjectFacts::default(),
        Err(e) => ObjectFacts { problem: Some(format!("cannot stat: {e}")), ..ObjectFacts::default() },
    }
}

/// What the daemon does next with what `explanation` found, and the remedy that applies.
/// `entry` is the newest journal entry (for a path, its own).
fn decide(
    timers: Timers,
    explanation: &Explanation,
    entry: Option<&JournalEntry>,
) -> (String, Option<String>) {
    if !explanation.found {
        let what = match (&explanation.venta, &explanation.path) {
            (Some(venta), _) => format!("venta {venta}"),
            (None, Some(path)) => path.clone(),
            (None, None) => "it".to_owned(),
        };
        return (format!("nothing: no row, no journal entry and no file knows {what}"), None);
    }
    // A venta whose row names no local file: its document is what matters, not a path.
    if let Some(venta) = explanation.venta {
        let Some(row) = explanation.rows.first() else {
            return (
                format!("nothing: venta {venta} no longer exists; its documents stay in the bucket"),
                None,
            );
        };
        if row.confronta.is_none() {
            return decide_document(row, explanation);
        }
    }
    let path = explanation.path.clone().unwrap_or_default();
    let file_there = explanation.local_file.as_ref().and_then(|file| file.size).is_some();
    if file_there {
        decide_local_file(timers, explanation, entry, &path)
    } else {
        decide_gone(explanation, entry, &path)
    }
}

/// A venta whose row names no local file.
fn decide_document(row: &RowFacts, explanation: &Explanation) -> (String, Option<String>) {
    let venta = row.venta_id;
    let current = explanation.documents.iter().find(|document| document.current);
    match (&row.object_name, current) {
        (Some(object), Some(document)) if document.object.present => (
            format!(
                "nothing: moved; venta {venta} points at {object} ({} bytes in the bucket)",
                document.object.size.unwrap_or_default()
            ),
            document.object.problem.clone().map(|problem| format!("{object} is {problem}")),
        ),
        (Some(object), _) => {
            let newer = explanation
                .documents
                .iter()
                .any(|d| !d.current && d.superseded.is_none() && d.object.present);
            let remedy = if newer {
                "the journal recorded another document for it: confronta-sync repair --dry-run, then confronta-sync repair".to_owned()
            } else {
                format!("restore {object} from a backup, or save the venta again with its file")
            };
            (format!("nothing: venta {venta} points at {object}, which is not in the bucket"), Some(remedy))
        }
        (None, _) => match &row.sync_error {
            Some(error) => (
                format!("nothing: its last file was refused ({error})"),
                Some("save the venta again with a valid file".to_owned()),
            ),
            None => (format!("nothing: venta {venta} has no confronta"), None),
        },
    }
}

/// A file standing at `path`.
fn decide_local_file(
    timers: Timers,
    explanation: &Explanation,
    entry: Option<&JournalEntry>,
    path: &str,
) -> (String, Option<String>) {
    let owners: Vec<&RowFacts> =
        explanation.rows.iter().filter(|row| row.owns_the_file == Some(true)).collect();
    let stale: Vec<i64> = explanation
        .rows
        .iter()
        .filter(|row| row.owns_the_file == Some(false))
        .map(|row| row.venta_id)
        .collect();
    let this_version = entry.filter(|entry| {
        entry.identity().map(|identity| identity.size) == explanation.local_file.as_ref().and_then(|f| f.size)
    });
    if let Some(entry) = this_version {
        let said = entry.failure_text().unwrap_or_else(|| "no reason recorded".to_owned());
        let reason = said.as_str();
        match entry.state() {
            FileState::Refusing => {
                return (
                    format!("moves it to quarantine: {reason}; retried with backoff until the quarantine folder takes it"),
                    Some("let the daemon's user write to the quarantine folder (validation.quarantine_dir)".to_owned()),
                )
            }
            FileState::Rejected | FileState::RowChanged => {
                return (
                    format!(
                        "kept: {reason}; tried once more from the start when the file changes or the daemon restarts"
                    ),
                    Some(remedy_for(entry.reason(), path, owners.first().map(|row| row.venta_id))),
                )
            }
            FileState::Failed => {
                let delay = crate::pipeline::nominal_backoff(entry.attempts(), timers.retry_initial, timers.retry_max);
                return (
                    format!(
                        "retries at about {} (attempt {}, backoff ±25 %, at most {} apart): {reason}",
                        at(entry.updated_ms().saturating_add(delay.as_millis() as i64)),
                        entry.attempts() + 1,
                        humantime::format_duration(timers.retry_max)
                    ),
                    Some(remedy_for(entry.reason(), path, owners.first().map(|row| row.venta_id))),
                );
            }
            _ => {}
        }
    }
    let first_seen = entry.map(|entry| entry.first_seen_ms());
    let retry_max = humantime::format_duration(timers.retry_max);
    match owners.as_slice() {
        [owner] => (
            format!(
                "moves it to venta {}: upload, verify, record, then the local file is deleted, on its next run (an event, \
                 a walk or the next reconcile pass)",
                owner.venta_id
            ),
            None,
        ),
        [] if !stale.is_empty() => {
            let ventas = stale.iter().map(i64::to_string).collect::<Vec<_>>().join(", ");
            let orphan_at = first_seen.map(|ms| at(ms.saturating_add(timers.owner_wait.as_millis() as i64)));
            (
                format!(
                    "waits for a row written after the file appeared (ownership rule: venta {ventas} named this path \
                     while no file was there, and owns a file that appears later only if its save assigned one since); \
                     an orphan with reason ambiguous_owner from {}, then looked at again every {retry_max}",
                    orphan_at.unwrap_or_else(|| "owner_wait_s after it is first seen".to_owned())
                ),
                Some(format!("if the file is venta {}'s: confronta-sync adopt {path} --venta {}", stale[0], stale[0])),
            )
        }
        [] => {
            let waiting = match entry.map(|entry| entry.state()) {
                Some(FileState::Orphan) => format!(
                    "kept as an orphan: no row has named it since {}; looked at again every {retry_max} and as soon as a \
                     row names it",
                    first_seen.map(at).unwrap_or_default()
                ),
                _ => format!(
                    "waits for a row naming it (Django commits the sale's INSERT after its file; ownership rule: the \
                     evidence must come after the file's arrival); looked at again when a row names it or the file \
                     changes, at least every {retry_max}; an orphan from {}",
                    first_seen
                        .map(|ms| at(ms.saturating_add(timers.orphan_after.as_millis() as i64)))
                        .unwrap_or_else(|| "orphan_after_s after it is first seen".to_owned())
                ),
            };
            (waiting, Some(remedy_for(Some(Reason::NoRow), path, None)))
        }
        several => {
            let ventas = several.iter().map(|row| row.venta_id.to_string()).collect::<Vec<_>>().join(", ");
            (
                format!("kept: several_rows: venta {ventas} all name it, and a file belongs to one sale"),
                Some(remedy_for(Some(Reason::SeveralRows), path, None)),
            )
        }
    }
}

/// No file at `path`.
fn decide_gone(
    explanation: &Explanation,
    entry: Option<&JournalEntry>,
    path: &str,
) -> (String, Option<String>) {
    let quarantined = explanation.quarantine.iter().rev().find(|copy| copy.size.is_some());
    let refused = entry.is_some_and(|entry| {
        entry.state() == FileState::Rejected && entry.reason() == Some(Reason::Quarantined)
    });
    if let Some(copy) = quarantined.filter(|_| refused || entry.is_none()) {
        return (
            format!("nothing: refused and moved to quarantine ({})", copy.path.display()),
            Some(remedy_for(Some(Reason::Quarantined), path, entry.and_then(|entry| entry.venta_id()))),
        );
    }
    let naming: Vec<&RowFacts> =
        explanation.rows.iter().filter(|row| row.confronta.as_deref() == Some(path)).collect();
    match entry.map(|entry| entry.state()) {
        Some(FileState::Removed) if naming.is_empty() => {
            let entry = entry.expect("matched a state");
            let object = entry.object_name().as_deref().unwrap_or("its object");
            return (format!("nothing: moved to {object} at {}", at(entry.updated_ms())), None);
        }
        Some(FileState::Recorded) => {
            return (
                "finishes on its next run: the row points at the object; the local file is already gone"
                    .to_owned(),
                None,
            )
        }
        _ => {}
    }
    if let Some(row) = naming.first() {
        let venta = row.venta_id;
        let recorded = explanation.documents.iter().any(|document| {
            document.venta_id == Some(venta) && document.recorded.is_some() && document.superseded.is_none()
        });
        if recorded {
            return (
                format!(
                    "nothing: venta {venta} names {path}, which is gone, and the journal recorded an object for it (a \
                     database restore?); the object is kept"
                ),
                Some("confronta-sync repair --dry-run, then confronta-sync repair".to_owned()),
            );
        }
        return (
            format!(
                "nothing: venta {venta} names {path}, which is not there; a file that appears there later is not \
                 matched to it unless its save assigns one"
            ),
            Some(format!(
                "save the venta again with its file in Django (or, with the file back in place, confronta-sync adopt {path} --venta {venta})"
            )),
        );
    }
    if let Some(document) =
        explanation.documents.iter().rev().find(|document| document.from_path.as_deref() == Some(path))
    {
        return (format!("nothing: moved to {}", document.object_name), None);
    }
    match entry {
        Some(entry) if !entry.state().is_terminal() => (
            format!("on its next run: the file is gone, so the entry ({}) is closed against the row and the object", entry.state().as_str()),
            None,
        ),
        Some(entry) => (format!("nothing: the file is gone ({})", entry.failure_text().unwrap_or_else(|| entry.state().as_str().to_owned())), None),
        None => ("nothing: the file is gone".to_owned(), None),
    }
}

/// The remedy for a file kept or waiting for `reason`, with the exact command where one exists.
fn remedy_for(reason: Option<Reason>, path: &str, venta: Option<i64>) -> String {
    let venta_arg = venta.map_or_else(|| "<ID>".to_owned(), |id| id.to_string());
    match reason {
        Some(Reason::NoRow | Reason::AmbiguousOwner | Reason::RowChanged) => format!(
            "if it belongs to a sale: confronta-sync adopt {path} --venta {venta_arg} (or save that venta again with the file in Django); \
             if it is nobody's, remove it by hand (confronta-sync orphans lists such files)"
        ),
        Some(Reason::SeveralRows) => format!("correct the other rows so that only one venta names {path}"),
        Some(Reason::Quarantined) => {
            "save the venta again with a valid file (the row's confronta_sync_error says why this one was refused)".to_owned()
        }
        Some(Reason::UrlTooLong | Reason::ObjectNameTooLong) => {
            "widen the column or shorten minio.object_name, then restart the daemon".to_owned()
        }
        Some(Reason::ObjectConflict) => format!(
            "another object with other bytes stands at this file's object name: check it, delete it if it is no venta's \
             document, then restart the daemon (or touch {path})"
        ),
        Some(Reason::SymlinkedFolder) => format!("move {path} out of the symlinked folder; nothing behind a link is read"),
        Some(Reason::NotRegular) => format!("replace {path} with a regular file"),
        Some(Reason::Unscannable) => "check clamd (validation.clamd_socket), then restart the daemon".to_owned(),
        Some(reason) if reason.class() == crate::error::ErrorClass::Transient => {
            "none needed: it retries on its own; if it goes on, fix what the reason names".to_owned()
        }
        _ => "see the reason; once it is fixed, a restart tries the file again".to_owned(),
    }
}

/// `ms` since the Unix epoch as RFC 3339 text, to the second, in UTC.
fn at(ms: i64) -> String {
    let when = std::time::UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_seconds(when).to_string()
}
