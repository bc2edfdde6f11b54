//! The restart matrix: every journal state × what the object, the row and the local file look
//! like after a crash, run once through `Pipeline::process` on the in-memory fakes (no server).
//!
//! Each cell's expectation is derived from the journal's recovery rules (`journal`'s module doc
//! comment) and ARCHITECTURE.md's invariants, not from the code: `expect` below is those rules
//! written as a function. A cell where the code does something else fails, naming the cell,
//! unless `KNOWN_MISMATCHES` lists it (then it must still differ, so that a fix removes it).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures_util::StreamExt;

use confronta_sync::config::Config;
use confronta_sync::db::DbErrorKind;
use confronta_sync::db::{SchemaLimits, VentaRow};
use confronta_sync::hash::{hash_file, FileIdentity, Sha256Digest};
use confronta_sync::journal::{now_ms, EntryFixture, FileState, Journal, JournalEntry, StoredHash};
use confronta_sync::media_path::RelativeMediaPath;
use confronta_sync::object_name::{ObjectNameInputs, ObjectNameTemplate};
use confronta_sync::pipeline::{Outcome, Pipeline};
use confronta_sync::store::{Capabilities, StoreErrorKind};
use confronta_sync::testing::{DbOp, FakeSalesTable, FakeStore, StoreOp};
use confronta_sync::validation::Validator;

const VENTA: i64 = 7;
const NUMERO: &str = "N-7";
const PATH: &str = "confrontas/c.pdf";
const OTHER_PATH: &str = "confrontas/otra.pdf";
/// The file that was hashed before the crash.
const ORIGINAL: &[u8] = b"%PDF-1.4\n1 0 obj << >> endobj\n% the confronta as hashed\n%%EOF\n";
/// What stands at the path instead when the file changed (another length, so another identity).
const CHANGED: &[u8] = b"%PDF-1.4\n1 0 obj << >> endobj\n% rewritten after the crash, longer\n%%EOF\n";
/// What an object of ours holds when someone replaced its bytes.
const FOREIGN: &[u8] = b"%PDF-1.4\n% not our bytes\n%%EOF\n";
const HOUR_MS: i64 = 3_600_000;

/// Cells where the code does not do what the rules say, with why; reported to the lead rather
/// than fixed here. Each must still differ (a fix makes the cell fail until it is removed).
const KNOWN_MISMATCHES: &[(&str, &str)] = &[];

/// The two ways an upload is checked, which must not change where a file ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Server {
    /// MinIO: a small file goes up with `If-None-Match: *`, and the PUT's echoed checksum
    /// verifies it.
    Conditional,
    /// garage: no conditional PUT (the name is stat'ed first) and no checksum in the PUT's
    /// answer (its 200 verifies the upload all the same: the header is signed).
    Plain,
}

impl Server {
    fn capabilities(self) -> Capabilities {
        let minio = self == Server::Conditional;
        Capabilities { checksum_enforced: true, conditional_put: minio, checksum_answered: minio }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Object {
    /// The object the journal (or the row and the hash) names holds the hashed bytes.
    Ours,
    Absent,
    /// It holds other bytes.
    Other,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Row {
    /// Still names the path, no object yet: nothing was recorded.
    Unchanged,
    /// Already points at our object with our checksum (the compare-and-set committed).
    RecordedToUs,
    /// Names another file (the venta was saved again with a new upload).
    Replaced,
    Deleted,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum File {
    /// The version that was hashed.
    Same,
    /// Rewritten in place since.
    Changed,
    Gone,
}

/// What the journal says for the path afterwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum JournalEnd {
    State(FileState),
    /// Waiting for a row: `waiting_for_row`, or `orphan` once it has waited `orphan_after_s`.
    Waits,
    /// No entry: nothing was ever sent anywhere for the file, so there is nothing to remember.
    Forgotten,
}

/// What became of the file at the path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FileEnd {
    /// Whatever stood there (or nothing) still does, byte for byte.
    Stays,
    Unlinked,
    /// Moved to the quarantine folder.
    Quarantined,
}

/// What the row looks like afterwards.
#[derive(Clone, Copy, PartialEq, Eq)]
enum RowEnd {
    Unchanged,
    /// Points at the object of these bytes, its path cleared.
    RecordedTo(&'static [u8]),
    /// Its path cleared and the refusal's reason written.
    Refused,
}

impl std::fmt::Debug for RowEnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RowEnd::Unchanged => write!(f, "unchanged"),
            RowEnd::RecordedTo(bytes) if *bytes == ORIGINAL => {
                write!(f, "recorded to the original bytes' object")
            }
            RowEnd::RecordedTo(_) => write!(f, "recorded to the changed bytes' object"),
            RowEnd::Refused => write!(f, "refused"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Expect {
    journal: JournalEnd,
    row: RowEnd,
    file: FileEnd,
    /// Bytes uploaded under their own object name; every other object stays as it was.
    uploaded: Option<&'static [u8]>,
}

impl Expect {
    fn nothing(journal: JournalEnd) -> Expect {
        Expect { journal, row: RowEnd::Unchanged, file: FileEnd::Stays, uploaded: None }
    }

    fn kept(state: FileState) -> Expect {
        Expect::nothing(JournalEnd::State(state))
    }

    fn moved(bytes: &'static [u8], uploaded: bool) -> Expect {
        Expect {
            journal: JournalEnd::State(FileState::Removed),
            row: RowEnd::RecordedTo(bytes),
            file: FileEnd::Unlinked,
            uploaded: uploaded.then_some(bytes),
        }
    }
}

/// The rules, cell by cell.
fn expect(state: FileState, object: Object, row: Row, file: File) -> Expect {
    use FileState::*;
    match (file, state) {
        (File::Gone, _) => file_gone(state, object, row),
        // recorded: the row must still point at the object and the object hold the hashed
        // bytes (uploaded again from the local file if it vanished); the local file is unlinked
        // only if it is still the one hashed.
        (_, Recorded) => finish_recorded(object, row, file),
        // refusing, same file: the row stops naming the path (compare-and-set), then the file
        // goes to quarantine.
        (File::Same, Refusing) => Expect {
            journal: JournalEnd::State(Rejected),
            row: if row == Row::Unchanged { RowEnd::Refused } else { RowEnd::Unchanged },
            file: FileEnd::Quarantined,
            uploaded: None,
        },
        // uploaded, verified: a row that was recorded is found by id, not by path; then it is
        // as `recorded`.
        (File::Same, Verified) if row == Row::RecordedToUs => finish_recorded(object, row, file),
        // hashed, uploaded, verified: the object is stat'ed (uploaded unless it holds exactly
        // the hashed bytes) and verified, then the row recorded: in effect the journey again.
        // seen, waiting_for_row, failed: start over. rejected, row_changed, orphan: every start
        // tries a kept file once more (README). removed: the file we removed is gone, so one at
        // the path is new.
        (File::Same, _) => journey(ORIGINAL, object, row),
        // A new version of the file starts a new entry; its object name is its own, so nothing
        // stands there yet.
        (File::Changed, _) => journey(CHANGED, Object::Absent, row),
    }
}

/// Match by path, hash, upload unless the object holds these bytes, verify, record, remove.
fn journey(bytes: &'static [u8], object: Object, row: Row) -> Expect {
    if row != Row::Unchanged {
        // No row names the path: the file waits for one and is never deleted.
        return Expect::nothing(JournalEnd::Waits);
    }
    match object {
        // An existing object with other content is a rejection, not an overwrite.
        Object::Other => Expect::kept(FileState::Rejected),
        Object::Ours => Expect::moved(bytes, false),
        Object::Absent => Expect::moved(bytes, true),
    }
}

fn finish_recorded(object: Object, row: Row, file: File) -> Expect {
    if row != Row::RecordedToUs {
        // The journal is never trusted over the world: the row does not point at our object,
        // so the local copy stays.
        return Expect::kept(FileState::RowChanged);
    }
    match (object, file) {
        (Object::Other, _) => Expect::kept(FileState::Rejected),
        (Object::Ours, File::Same) => Expect { row: RowEnd::Unchanged, ..Expect::moved(ORIGINAL, false) },
        (Object::Absent, File::Same) => Expect { row: RowEnd::Unchanged, ..Expect::moved(ORIGINAL, true) },
        // The recorded file is done; the one now at the path is not it and stays.
        (Object::Ours, _) => Expect::kept(FileState::Removed),
        // Gone from the store and no longer on disk: nothing can bring the bytes back.
        (Object::Absent, _) => Expect::kept(FileState::Rejected),
    }
}

fn file_gone(state: FileState, object: Object, row: Row) -> Expect {
    use FileState::*;
    match state {
        Seen | WaitingForRow | Failed | Orphan => Expect::nothing(JournalEnd::Forgotten),
        // Recorded, and the `recorded` write (committed without its own fsync) taken back by a
        // power cut after the unlink: it goes on as `recorded` (issue 28).
        Verified if row == Row::RecordedToUs => finish_recorded(object, row, File::Gone),
        // Another sidecar (or an earlier life) finished it: the row points at our object.
        Hashed if row == Row::RecordedToUs => Expect::kept(Removed),
        // Gone before it was recorded: the object is left for the orphan report.
        Hashed | Verified => Expect::kept(Rejected),
        Recorded => finish_recorded(object, row, File::Gone),
        // refusing, file gone: the move already happened.
        Refusing => Expect::kept(Rejected),
        Removed | Rejected | RowChanged => Expect::kept(state),
    }
}

/// One cell's world, built in a temporary folder.
struct World {
    _temp: tempfile::TempDir,
    config: Config,
    media_root: PathBuf,
    store: Arc<FakeStore>,
    table: Arc<FakeSalesTable>,
    template: ObjectNameTemplate,
}

impl World {
    fn new(server: Server) -> World {
        let temp = tempfile::tempdir().unwrap();
        let media_root = temp.path().join("media");
        std::fs::create_dir_all(media_root.join("confrontas")).unwrap();
        let text = format!(
            r#"
[watch]
media_root = "{media}"
[database]
url = "sqlite://{db}"
[minio]
endpoint = "http://127.0.0.1:9"
access_key = "k"
[journal]
path = "{journal}"
"#,
            media = media_root.display(),
            db = temp.path().join("db.sqlite3").display(),
            journal = temp.path().join("state/journal.sqlite3").display(),
        );
        let config = Config::parse(&text, Path::new("matrix.toml")).unwrap();
        let template = ObjectNameTemplate::parse(&config.minio.object_name).unwrap();
        World {
            _temp: temp,
            config,
            media_root,
            store: Arc::new(FakeStore::with_capabilities(server.capabilities())),
            table: Arc::new(FakeSalesTable::new()),
            template,
        }
    }

    fn pipeline(&self, server: Server, journal: Journal) -> Pipeline {
        let limits = SchemaLimits { url_max_len: None, object_name_max_len: None };
        let (store, table) = (self.store.clone(), self.table.clone());
        Pipeline::new(&self.config, store, table, journal, limits, server.capabilities())
    }

    fn local(&self) -> PathBuf {
        self.media_root.join(PATH)
    }

    fn object_of(&self, bytes: &[u8]) -> String {
        let sha256 = Sha256Digest::of_bytes(bytes);
        let inputs = ObjectNameInputs { venta_id: VENTA, numero: NUMERO, sha256: &sha256, extension: ".pdf" };
        self.template.render(&inputs).as_str().to_owned()
    }

    fn quarantined(&self) -> Vec<Vec<u8>> {
        let Ok(dir) = std::fs::read_dir(self.config.quarantine_dir().join("confrontas")) else {
            return Vec::new();
        };
        dir.filter_map(|e| e.ok())
            .filter(|e| e.path().extension().is_some_and(|x| x == "pdf"))
            .map(|e| std::fs::read(e.path()).unwrap())
            .collect()
    }
}

/// The journal entry a run left in `state` for the original file.
fn entry_in(world: &World, state: FileState, identity: FileIdentity) -> JournalEntry {
    use FileState::*;
    let hash = hash_file(&world.local(), None).unwrap();
    let then = now_ms() - HOUR_MS;
    // Field by field, as a crash leaves it: the pipeline's own transitions never write this.
    let mut entry = EntryFixture::new(RelativeMediaPath::parse(PATH).unwrap(), then);
    entry.state = state;
    entry.identity = Some(identity);
    entry.updated_ms = then;
    if state == Orphan {
        // An orphan has waited `orphan_after_s` (a day by default) for its row.
        entry.first_seen_ms = then - 48 * HOUR_MS;
    }
    if matches!(state, Failed | Rejected | RowChanged) {
        entry.attempts = 1;
    }
    if matches!(state, Hashed | Verified | Recorded | Removed | Rejected | RowChanged) {
        entry.venta_id = Some(VENTA);
        entry.object_name = Some(world.object_of(ORIGINAL));
        entry.hash = Some(StoredHash {
            sha256: hash.sha256,
            part_digests: hash.part_digests.clone(),
            content_type: "application/pdf".into(),
        });
        let validator = Validator::new(&world.config.validation, world.config.quarantine_dir());
        entry.validated_with = Some(validator.fingerprint().to_owned());
    }
    if matches!(state, Verified | Recorded | Removed) {
        entry.upload_ms = Some(5);
    }
    if state == Refusing {
        entry.venta_id = Some(VENTA);
        entry.reason = Some(confronta_sync::error::Reason::Quarantined);
        entry.last_error = Some("not an allowed type".to_owned());
    }
    entry.entry()
}

fn start_row(world: &World, row: Row) -> Option<VentaRow> {
    let base = VentaRow {
        id: VENTA,
        numero: NUMERO.into(),
        confronta: Some(PATH.into()),
        minio_object_name: None,
        sha256: None,
        subido_a_minio: false,
        // When Django's save gave the venta its file; the sidecar never changes it.
        assigned: Some("2026-01-01 09:00:00+00".into()),
    };
    match row {
        Row::Unchanged => Some(base),
        Row::RecordedToUs => Some(VentaRow {
            confronta: Some(String::new()),
            minio_object_name: Some(world.object_of(ORIGINAL)),
            sha256: Some(Sha256Digest::of_bytes(ORIGINAL).to_hex()),
            subido_a_minio: true,
            ..base
        }),
        Row::Replaced => Some(VentaRow { confronta: Some(OTHER_PATH.into()), ..base }),
        Row::Deleted => None,
    }
}

/// Sets the cell's world up, runs the pipeline once, and returns what differs from `expected`.
async fn run_cell(cell: Cell, expected: Expect) -> Vec<String> {
    let Cell { server, state, object, row, file } = cell;
    let world = World::new(server);
    let local = world.local();
    std::fs::write(&local, ORIGINAL).unwrap();
    let identity = FileIdentity::of_path(&local).unwrap();
    let entry = entry_in(&world, state, identity);
    let journal = Journal::in_memory().unwrap();
    journal.put(&entry).await.unwrap();
    let ours = world.object_of(ORIGINAL);
    match object {
        Object::Ours => world.store.put_object(&ours, ORIGINAL),
        Object::Absent => {}
        Object::Other => world.store.put_object(&ours, FOREIGN),
    }
    let row_before = start_row(&world, row);
    if let Some(row) = row_before.clone() {
        world.table.put_row(row);
    }
    let file_before: Option<&[u8]> = match file {
        File::Same => Some(ORIGINAL),
        File::Changed => {
            std::fs::write(&local, CHANGED).unwrap();
            Some(CHANGED)
        }
        File::Gone => {
            std::fs::remove_file(&local).unwrap();
            None
        }
    };
    let objects_before: BTreeMap<String, Vec<u8>> = world
        .store
        .names()
        .into_iter()
        .map(|n| (n.clone(), world.store.object(&n).unwrap().to_vec()))
        .collect();

    // The entry was written by the run before the crash: this one starts after it.
    std::thread::sleep(std::time::Duration::from_millis(2));
    let pipeline = world.pipeline(server, journal);
    let World { store, table, .. } = &world;
    let path = RelativeMediaPath::parse(PATH).unwrap();
    let outcome = pipeline.process(&path).await;

    let mut wrong = Vec::new();
    let entry_after = pipeline.journal().get(&path).await.unwrap();
    let journal_ok = match (expected.journal, entry_after.as_ref().map(|e| e.state())) {
        (JournalEnd::Forgotten, None) => true,
        (JournalEnd::Waits, Some(FileState::WaitingForRow | FileState::Orphan)) => true,
        (JournalEnd::State(want), Some(got)) => want == got,
        _ => false,
    };
    if !journal_ok {
        wrong.push(format!(
            "journal: expected {:?}, found {:?}",
            expected.journal,
            entry_after.as_ref().map(|e| e.state())
        ));
    }

    let mut objects_expected = objects_before.clone();
    if let Some(bytes) = expected.uploaded {
        objects_expected.insert(world.object_of(bytes), bytes.to_vec());
    }
    let objects_after: BTreeMap<String, Vec<u8>> =
        store.names().into_iter().map(|n| (n.clone(), store.object(&n).unwrap().to_vec())).collect();
    if objects_after != objects_expected {
        let show = |m: &BTreeMap<String, Vec<u8>>| {
            m.iter().map(|(k, v)| format!("{k} ({} bytes)", v.len())).collect::<Vec<_>>().join(", ")
        };
        wrong.push(format!(
            "objects: expected [{}], found [{}]",
            show(&objects_expected),
            show(&objects_after)
        ));
    }

    let row_after = table.row(VENTA);
    let row_expected = match expected.row {
        RowEnd::Unchanged => row_before.clone(),
        RowEnd::RecordedTo(bytes) => row_before.clone().map(|r| VentaRow {
            confronta: Some(String::new()),
            minio_object_name: Some(world.object_of(bytes)),
            sha256: Some(Sha256Digest::of_bytes(bytes).to_hex()),
            subido_a_minio: true,
            ..r
        }),
        RowEnd::Refused => row_before.clone().map(|r| VentaRow { confronta: Some(String::new()), ..r }),
    };
    if row_after != row_expected {
        wrong.push(format!("row: expected {:?}, found {row_after:?}", expected.row));
    }
    if (expected.row == RowEnd::Refused) != table.sync_error(VENTA).is_some() {
        wrong.push(format!("row's sync error: found {:?}", table.sync_error(VENTA)));
    }

    let file_after = std::fs::read(&local).ok();
    let quarantined = world.quarantined();
    let file_ok = match expected.file {
        FileEnd::Stays => file_after.as_deref() == file_before && quarantined.is_empty(),
        FileEnd::Unlinked => file_after.is_none() && quarantined.is_empty(),
        FileEnd::Quarantined => file_after.is_none() && quarantined.iter().map(Vec::as_slice).eq(file_before),
    };
    if !file_ok {
        wrong.push(format!(
            "local file: expected {:?}, found {} at the path and {} in quarantine",
            expected.file,
            file_after.map_or("none".into(), |b| format!("{} bytes", b.len())),
            quarantined.len()
        ));
    }
    if !wrong.is_empty() {
        wrong.push(format!("outcome: {outcome:?}"));
    }
    wrong
}

#[derive(Debug, Clone, Copy)]
struct Cell {
    server: Server,
    state: FileState,
    object: Object,
    row: Row,
    file: File,
}

impl std::fmt::Display for Cell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Cell { server, state, object, row, file } = self;
        write!(f, "{} × object {object:?} × row {row:?} × file {file:?} ({server:?} server)", state.as_str())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_journal_state_resumes_by_the_recovery_rules() {
    let mut cells = Vec::new();
    for server in [Server::Conditional, Server::Plain] {
        for state in FileState::all() {
            for object in [Object::Ours, Object::Absent, Object::Other] {
                for row in [Row::Unchanged, Row::RecordedToUs, Row::Replaced, Row::Deleted] {
                    for file in [File::Same, File::Changed, File::Gone] {
                        cells.push(Cell { server, state, object, row, file });
                    }
                }
            }
        }
    }
    // Cells are independent worlds; running a few at once hides the journal's and the
    // filesystem's waits.
    let mut results: Vec<(usize, String, Vec<String>)> =
        futures_util::stream::iter(cells.into_iter().enumerate())
            .map(|(index, cell)| async move {
                let wrong = run_cell(cell, expect(cell.state, cell.object, cell.row, cell.file)).await;
                (index, cell.to_string(), wrong)
            })
            .buffer_unordered(32)
            .collect()
            .await;
    results.sort_by_key(|(index, _, _)| *index);

    let mut failures = Vec::new();
    for (_, name, wrong) in &results {
        let known = KNOWN_MISMATCHES.iter().any(|(cell, _)| cell == name);
        match (known, wrong.is_empty()) {
            (false, true) | (true, false) => {}
            (false, false) => failures.push(format!("{name}:\n    {}", wrong.join("\n    "))),
            (true, true) => failures
                .push(format!("{name}: listed in KNOWN_MISMATCHES but now follows the rules; remove it")),
        }
    }
    for (cell, _) in KNOWN_MISMATCHES {
        if !results.iter().any(|(_, name, _)| name == cell) {
            failures.push(format!("{cell}: listed in KNOWN_MISMATCHES but names no cell"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} cells break the recovery rules:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// A reply lost after the row's compare-and-set committed leaves the entry `verified` while the
/// row points at our object and no longer names the path: the next run finds the row by id and
/// only removes the file, recording nothing twice.
#[tokio::test]
async fn a_record_whose_answer_was_lost_is_finished_by_id() {
    let world = World::new(Server::Conditional);
    std::fs::write(world.local(), ORIGINAL).unwrap();
    world.table.insert_new(VENTA, NUMERO, PATH);
    world.table.lose_next_answer(DbOp::Record, 1, DbErrorKind::Unavailable);
    let pipeline = world.pipeline(Server::Conditional, Journal::in_memory().unwrap());
    let path = RelativeMediaPath::parse(PATH).unwrap();

    let first = pipeline.process(&path).await;
    assert!(matches!(first, Outcome::Retry(_)), "{first:?}");
    let entry = pipeline.journal().get(&path).await.unwrap().unwrap();
    assert_eq!(entry.state(), FileState::Verified);
    assert_eq!(world.table.row(VENTA).unwrap().minio_object_name, Some(world.object_of(ORIGINAL)));
    assert!(world.local().exists(), "kept until the record is known");

    let second = pipeline.process(&path).await;
    assert!(matches!(second, Outcome::Moved { .. }), "{second:?}");
    assert!(!world.local().exists());
    assert_eq!(world.table.calls(DbOp::Record), 1, "recorded once");
}

/// A compare-and-set that commits late (a lagging connection or pooler delivers it after the
/// daemon gave up waiting for its answer) can land between the next run's two looks at the
/// row: by id (not ours yet) and by path (no longer naming the file). The file is then not one
/// waiting for a row: asked by id once more, the record is seen and the file removed. It used
/// to wait for a row that would never come, the local copy kept for good (the reliability
/// harness's frozen-peer case found two such files).
#[tokio::test]
async fn a_record_that_commits_between_the_look_by_id_and_the_match_by_path_is_finished() {
    let world = World::new(Server::Conditional);
    std::fs::write(world.local(), ORIGINAL).unwrap();
    world.table.insert_new(VENTA, NUMERO, PATH);
    world.table.fail_next(DbOp::Record, 1, DbErrorKind::Unavailable);
    let pipeline = world.pipeline(Server::Conditional, Journal::in_memory().unwrap());
    let path = RelativeMediaPath::parse(PATH).unwrap();

    let first = pipeline.process(&path).await;
    assert!(matches!(first, Outcome::Retry(_)), "{first:?}");
    assert_eq!(pipeline.journal().get(&path).await.unwrap().unwrap().state(), FileState::Verified);
    // The late commit, right after the next look by id has read the row.
    let object = world.object_of(ORIGINAL);
    world.table.after_answer(DbOp::Get, move |table| {
        let mut row = table.row(VENTA).expect("the row");
        row.confronta = Some(String::new());
        row.minio_object_name = Some(object);
        row.subido_a_minio = true;
        table.put_row(row);
    });
    let second = pipeline.process(&path).await;
    assert!(matches!(second, Outcome::Moved { .. }), "{second:?}");
    assert!(!world.local().exists(), "the local copy is removed");
    assert_eq!(pipeline.journal().get(&path).await.unwrap().unwrap().state(), FileState::Removed);
}

/// An upload whose answer was lost stored the object: the next run finds it holding the hashed
/// bytes and does not send them again.
#[tokio::test]
async fn an_upload_whose_answer_was_lost_is_not_sent_again() {
    for server in [Server::Conditional, Server::Plain] {
        let world = World::new(server);
        std::fs::write(world.local(), ORIGINAL).unwrap();
        world.table.insert_new(VENTA, NUMERO, PATH);
        world.store.lose_next_answer(StoreOp::Upload, 1, StoreErrorKind::Unavailable);
        let pipeline = world.pipeline(server, Journal::in_memory().unwrap());
        let path = RelativeMediaPath::parse(PATH).unwrap();

        let first = pipeline.process(&path).await;
        assert!(matches!(first, Outcome::Retry(_)), "{server:?}: {first:?}");
        assert_eq!(pipeline.journal().get(&path).await.unwrap().unwrap().state(), FileState::Hashed);
        let second = pipeline.process(&path).await;
        assert!(matches!(second, Outcome::Moved { .. }), "{server:?}: {second:?}");
        // On MinIO the second attempt is the conditional PUT itself, which the server refuses
        // (412) without storing anything; elsewhere the stat first finds the object.
        let puts = if server == Server::Conditional { 2 } else { 1 };
        assert_eq!(world.store.calls(StoreOp::Upload), puts, "{server:?}: uploaded once");
        assert_eq!(world.store.object(&world.object_of(ORIGINAL)).as_deref(), Some(ORIGINAL));
    }
}

/// What one small file costs the object store on the way through: the PUT, whose 200 verifies
/// it on both kinds of server (the checksum header is signed and enforced, echoed or not), and,
/// where the PUT cannot be conditional, a stat first. The stat after the record is skipped, as
/// the record follows the PUT's answer within `RECHECK_AFTER`.
#[tokio::test]
async fn a_small_file_costs_one_put_and_a_stat_more_where_puts_are_not_conditional() {
    for (server, stats) in [(Server::Conditional, 0), (Server::Plain, 1)] {
        let world = World::new(server);
        std::fs::write(world.local(), ORIGINAL).unwrap();
        world.table.insert_new(VENTA, NUMERO, PATH);
        let pipeline = world.pipeline(server, Journal::in_memory().unwrap());
        let outcome = pipeline.process(&RelativeMediaPath::parse(PATH).unwrap()).await;
        assert!(matches!(outcome, Outcome::Moved { .. }), "{server:?}: {outcome:?}");
        assert_eq!(world.store.calls(StoreOp::Upload), 1, "{server:?}: one PUT");
        assert_eq!(world.store.calls(StoreOp::Stat), stats, "{server:?}: stats");
    }
}

/// A record slower than `RECHECK_AFTER` (the database waited on a lock, say) leaves time for
/// someone to delete the object: the stat after the record runs then, finds it gone, and the
/// object is uploaded again before the local file goes.
#[tokio::test]
async fn after_a_slow_record_the_object_is_stat_ed_again_and_restored() {
    let world = World::new(Server::Conditional);
    std::fs::write(world.local(), ORIGINAL).unwrap();
    world.table.insert_new(VENTA, NUMERO, PATH);
    let (store, object) = (world.store.clone(), world.object_of(ORIGINAL));
    world.table.after_answer(DbOp::Record, move |_| {
        std::thread::sleep(std::time::Duration::from_millis(5100));
        store.remove_object(&object);
    });
    let pipeline = world.pipeline(Server::Conditional, Journal::in_memory().unwrap());
    let outcome = pipeline.process(&RelativeMediaPath::parse(PATH).unwrap()).await;
    assert!(matches!(outcome, Outcome::Moved { .. }), "{outcome:?}");
    assert_eq!(world.store.calls(StoreOp::Upload), 2, "uploaded again after the stat");
    assert_eq!(world.store.object(&world.object_of(ORIGINAL)).as_deref(), Some(ORIGINAL));
    assert!(!world.local().exists());
}

/// On a server whose probe answers echoed the checksum, a 200 without it did not come from
/// the server that was probed (a proxy's maintenance page answers 200 too): the upload is
/// stat'ed, and stat'ed again after the record, as for any upload its answer did not verify.
#[tokio::test]
async fn a_200_without_the_echo_the_probe_saw_is_not_believed() {
    // The store answers without the echo; the probe (the pipeline's capabilities) saw one.
    let world = World::new(Server::Plain);
    std::fs::write(world.local(), ORIGINAL).unwrap();
    world.table.insert_new(VENTA, NUMERO, PATH);
    let probed = Capabilities { checksum_enforced: true, conditional_put: false, checksum_answered: true };
    let limits = SchemaLimits { url_max_len: None, object_name_max_len: None };
    let (store, table) = (world.store.clone(), world.table.clone());
    let pipeline = Pipeline::new(&world.config, store, table, Journal::in_memory().unwrap(), limits, probed);
    let outcome = pipeline.process(&RelativeMediaPath::parse(PATH).unwrap()).await;
    assert!(matches!(outcome, Outcome::Moved { .. }), "{outcome:?}");
    assert_eq!(world.store.calls(StoreOp::Upload), 1);
    // The name first (no conditional PUT), the upload, and the object again after the record.
    assert_eq!(world.store.calls(StoreOp::Stat), 3);
}
