//! A model of Django's saves, run against the real pipeline (issue 23, item 7).
//!
//! proptest generates sequences of ordinary events: sales created and corrected (Django writes
//! the file, then the row, and hands a taken name's next sale a variant), sales saved again
//! with nothing new, deleted, files deleted and restored by hand, a script's row committed
//! before its file, the daemon restarted or its journal lost, a second daemon, the database
//! restored from a backup, `orphans --delete-objects` and `repair`. Each runs through the real
//! `Pipeline`, journal and reconcile scan over the in-memory table and store (`testing`), and
//! after every step the guarantees are checked:
//!
//! 1. no daemon records on a sale a file another sale's save wrote (each save writes bytes of
//!    its own, so bytes name their sale) once it has seen that sale's row name the path while
//!    no file stood there: the rule of ARCHITECTURE.md, "a file belongs to the sale that
//!    claimed it after it appeared". What a daemon never saw (events while it was stopped, or
//!    before its journal was lost; a restored row) it cannot tell from a backlog, and the rule
//!    takes the row as the file's, as it always has;
//! 2. no object is deleted while a row names it, nor by `orphans` while a journal holds it as
//!    a venta's document;
//! 3. no local file disappears unless its bytes are in an object a row names (or, refused, in
//!    quarantine);
//! 4. once the daemon has settled, no refused file is left in MEDIA_ROOT for a row to claim.
//!
//! A few hundred sequences run with the test command; `PROPTEST_CASES=20000 cargo test
//! --features failpoints --test matching ownership_model` is the long run. A failing sequence is shrunk by
//! proptest and belongs in `regressions` below, named after what it found.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;

use confronta_sync::commands;
use confronta_sync::config::Config;
use confronta_sync::db::{SalesDb, SchemaLimits};
use confronta_sync::journal::{FileState, Journal};
use confronta_sync::media_path::{MediaRoot, RelativeMediaPath};
use confronta_sync::object_name::ObjectNameTemplate;
use confronta_sync::pipeline::Pipeline;
use confronta_sync::store::{Capabilities, ObjectStore};
use confronta_sync::testing::{FakeSalesTable, FakeStore, TableSnapshot};

/// File names agents give their uploads: few, so that names are reused all the time.
const NAMES: [&str; 3] = ["IMG_0001.jpg", "IMG_0002.jpg", "scan.pdf"];

/// One thing that happens to the CRM, its files or the daemons.
#[derive(Debug, Clone)]
enum Event {
    /// A new sale saved with a file (`refused`: an executable named like a document).
    CreateSale {
        name: usize,
        refused: bool,
    },
    /// A sale corrected with a new file.
    Correct {
        sale: usize,
        name: usize,
    },
    /// A sale saved again with no new file (a state change, the form saved as it was).
    Resave {
        sale: usize,
    },
    /// A sale deleted; Django leaves its file.
    DeleteSale {
        sale: usize,
    },
    /// A local file deleted by someone.
    DeleteFile {
        file: usize,
    },
    /// A sale's last document copied back by hand to the path its row names.
    RestoreFile {
        sale: usize,
    },
    /// A script's order: the row first, then the file; `look_between`: a daemon's reconcile
    /// pass runs in between.
    RowBeforeFile {
        name: usize,
        look_between: bool,
    },
    /// A daemon runs: `passes` times a reconcile pass and every path once.
    Run {
        daemon: usize,
        passes: u8,
    },
    Restart {
        daemon: usize,
    },
    LoseJournal {
        daemon: usize,
    },
    SnapshotDatabase,
    RestoreDatabase,
    Orphans,
    Repair,
}

fn event() -> impl Strategy<Value = Event> {
    let name = 0..NAMES.len();
    prop_oneof![
        4 => (name.clone(), prop::bool::weighted(0.15)).prop_map(|(name, refused)| Event::CreateSale { name, refused }),
        2 => (0..8usize, name.clone()).prop_map(|(sale, name)| Event::Correct { sale, name }),
        1 => (0..8usize).prop_map(|sale| Event::Resave { sale }),
        1 => (0..8usize).prop_map(|sale| Event::DeleteSale { sale }),
        2 => (0..8usize).prop_map(|file| Event::DeleteFile { file }),
        1 => (0..8usize).prop_map(|sale| Event::RestoreFile { sale }),
        1 => (name, any::<bool>()).prop_map(|(name, look_between)| Event::RowBeforeFile { name, look_between }),
        6 => (0..2usize, 1..3u8).prop_map(|(daemon, passes)| Event::Run { daemon, passes }),
        1 => (0..2usize).prop_map(|daemon| Event::Restart { daemon }),
        1 => (0..2usize).prop_map(|daemon| Event::LoseJournal { daemon }),
        1 => Just(Event::SnapshotDatabase),
        1 => Just(Event::RestoreDatabase),
        1 => Just(Event::Orphans),
        1 => Just(Event::Repair),
    ]
}

/// One daemon: its journal's path and, while it runs, its pipeline.
struct Daemon {
    journal_path: PathBuf,
    pipeline: Option<Arc<Pipeline>>,
    /// Whether the start-up scan ran since this daemon (re)started.
    scanned: bool,
    /// What the daemon has been shown: each (path, venta, assignment stamp) it saw a row name
    /// while no file stood at the path (a scan, a removal it heard of). Its journal keeps it
    /// across restarts, and loses it with the journal.
    saw_stale: HashSet<(String, i64, Option<String>)>,
}

/// The world one sequence runs in, and what the model knows that the daemon does not: whose
/// save wrote which bytes.
struct Model {
    _temp: tempfile::TempDir,
    config: Config,
    media_root: MediaRoot,
    store: Arc<FakeStore>,
    table: Arc<FakeSalesTable>,
    daemons: Vec<Daemon>,
    /// Sale ids, in the order they were created.
    sales: Vec<i64>,
    next_id: i64,
    /// The bytes each save wrote, and the sale whose save it was.
    owner: HashMap<Vec<u8>, i64>,
    /// Each sale's last document, for `RestoreFile`.
    last_document: HashMap<i64, Vec<u8>>,
    refused: HashSet<Vec<u8>>,
    snapshot: Option<TableSnapshot>,
    written: u64,
}

impl Model {
    fn new() -> Model {
        // Journals fsync every step: on a memory file system a sequence takes milliseconds.
        let temp = match Path::new("/dev/shm").is_dir() {
            true => tempfile::tempdir_in("/dev/shm").unwrap(),
            false => tempfile::tempdir().unwrap(),
        };
        let media = temp.path().join("media");
        std::fs::create_dir_all(media.join("confrontas")).unwrap();
        let text = format!(
            "[watch]\nmedia_root = \"{media}\"\n[database]\nurl = \"sqlite://{db}\"\n[minio]\nendpoint = \"http://127.0.0.1:9\"\naccess_key = \"k\"\n[journal]\npath = \"{journal}\"\n[validation]\nquarantine_dir = \"{quarantine}\"\n",
            media = media.display(),
            db = temp.path().join("db.sqlite3").display(),
            journal = temp.path().join("state/journal.sqlite3").display(),
            quarantine = temp.path().join("quarantine").display(),
        );
        let config = Config::parse(&text, Path::new("model.toml")).unwrap();
        let media_root = MediaRoot::resolve(&config.watch.media_root, &config.watch.dir);
        let daemons = (0..2)
            .map(|n| Daemon {
                journal_path: temp.path().join(format!("state/journal-{n}.sqlite3")),
                pipeline: None,
                scanned: false,
                saw_stale: HashSet::new(),
            })
            .collect();
        Model {
            _temp: temp,
            config,
            media_root,
            store: Arc::new(FakeStore::with_capabilities(Capabilities {
                checksum_enforced: true,
                conditional_put: true,
                checksum_answered: true,
            })),
            table: Arc::new(FakeSalesTable::new()),
            daemons,
            sales: Vec::new(),
            next_id: 1,
            owner: HashMap::new(),
            last_document: HashMap::new(),
            refused: HashSet::new(),
            snapshot: None,
            written: 0,
        }
    }

    fn absolute(&self, path: &str) -> PathBuf {
        self.media_root.to_absolute(&RelativeMediaPath::parse(path).unwrap())
    }

    /// `confrontas/<name>`, or the variant Django's storage picks when that is taken.
    fn free_path(&self, name: usize) -> String {
        let name = NAMES[name];
        let (stem, ext) = name.rsplit_once('.').unwrap();
        (0..)
            .map(|n| {
                if n == 0 {
                    format!("confrontas/{name}")
                } else {
                    format!("confrontas/{stem}_{n:07}.{ext}")
                }
            })
            .find(|path| std::fs::symlink_metadata(self.absolute(path)).is_err())
            .unwrap()
    }

    /// Writes a new file's bytes for `sale` at `path` as Django does, and remembers whose they are.
    fn write_file(&mut self, path: &str, sale: i64, refused: bool) {
        self.written += 1;
        let bytes = if refused {
            format!("MZ\u{90} program {} for venta {sale}\n", self.written).into_bytes()
        } else {
            format!("%PDF-1.4\n% document {} of venta {sale}\n%%EOF\n", self.written).into_bytes()
        };
        std::fs::write(self.absolute(path), &bytes).unwrap();
        self.owner.insert(bytes.clone(), sale);
        if refused {
            self.refused.insert(bytes);
        } else {
            self.last_document.insert(sale, bytes);
        }
    }

    fn sale(&self, index: usize) -> Option<i64> {
        (!self.sales.is_empty()).then(|| self.sales[index % self.sales.len()])
    }

    /// The pipeline of daemon `n`, started (with its journal) if it is not running.
    fn pipeline(&mut self, n: usize) -> Arc<Pipeline> {
        if self.daemons[n].pipeline.is_none() {
            let journal = Journal::open(&self.daemons[n].journal_path).unwrap();
            let limits = SchemaLimits { url_max_len: None, object_name_max_len: None };
            let capabilities =
                Capabilities { checksum_enforced: true, conditional_put: true, checksum_answered: true };
            let store: Arc<dyn ObjectStore> = self.store.clone();
            let pipeline =
                Pipeline::new(&self.config, store, self.table.clone(), journal, limits, capabilities);
            self.daemons[n].pipeline = Some(Arc::new(pipeline));
            self.daemons[n].scanned = false;
        }
        self.daemons[n].pipeline.clone().unwrap()
    }

    /// The rows naming `path` (all rows when `None`) whose file is missing, as (path, venta,
    /// stamp): what a daemon looking now sees as stale.
    fn stale_rows(&self, only: Option<&str>) -> Vec<(String, i64, Option<String>)> {
        self.table
            .rows()
            .into_iter()
            .filter_map(|row| {
                let path = row.confronta.clone().filter(|c| c.starts_with("confrontas/"))?;
                let wanted = only.is_none_or(|only| only == path);
                let missing = std::fs::symlink_metadata(self.absolute(&path)).is_err();
                (wanted && missing).then_some((path, row.id, row.assigned))
            })
            .collect()
    }

    async fn scan(&mut self, n: usize) {
        let seen = self.stale_rows(None);
        self.daemons[n].saw_stale.extend(seen);
        let pipeline = self.pipeline(n);
        let media_root = self.config.watch.media_root.clone();
        confronta_sync::daemon::note_rows_naming_missing_files(pipeline, media_root, "confrontas/".into())
            .await
            .unwrap();
        self.daemons[n].scanned = true;
    }

    /// Every path a daemon would offer: the files in the folder and its journal's unfinished
    /// entries.
    async fn paths(&self, pipeline: &Pipeline) -> Vec<RelativeMediaPath> {
        let mut paths: Vec<RelativeMediaPath> = confronta_sync::watch::walk(&self.config.watched_dir())
            .into_iter()
            .filter(|file| !confronta_sync::media_path::is_set_aside(file))
            .filter_map(|file| RelativeMediaPath::from_absolute(&self.config.watch.media_root, &file).ok())
            .collect();
        paths.extend(
            pipeline.journal().unfinished().await.unwrap().into_iter().map(|entry| entry.into_path()),
        );
        paths.sort();
        paths.dedup();
        paths
    }

    async fn run(&mut self, n: usize, passes: u8) {
        let pipeline = self.pipeline(n);
        if !self.daemons[n].scanned {
            self.scan(n).await;
        }
        for _ in 0..passes {
            self.scan(n).await;
            for path in self.paths(&pipeline).await {
                pipeline.process(&path).await;
            }
        }
    }

    fn stop(&mut self, n: usize) {
        self.daemons[n].pipeline = None;
        // The journal's writer thread ends with its last handle; let it close the file.
        std::thread::sleep(Duration::from_millis(5));
    }

    fn journals(&self) -> Vec<Journal> {
        self.daemons
            .iter()
            .filter(|daemon| daemon.journal_path.exists())
            .map(|daemon| Journal::open_read_only(&daemon.journal_path).unwrap())
            .collect()
    }

    async fn apply(&mut self, event: &Event) {
        match *event {
            Event::CreateSale { name, refused } => {
                let path = self.free_path(name);
                let id = self.next_id;
                self.next_id += 1;
                self.write_file(&path, id, refused);
                self.table.insert_new(id, &format!("PORTA-{id}"), &path);
                self.sales.push(id);
            }
            Event::Correct { sale, name } => {
                let Some(id) = self.sale(sale) else { return };
                if self.table.row(id).is_none() {
                    return;
                }
                let path = self.free_path(name);
                self.write_file(&path, id, false);
                self.table.assign(id, &path);
            }
            Event::Resave { sale } => {
                if let Some(row) = self.sale(sale).and_then(|id| self.table.row(id)) {
                    self.table.put_row(row);
                }
            }
            Event::DeleteSale { sale } => {
                if let Some(id) = self.sale(sale) {
                    self.table.delete_row(id);
                }
            }
            Event::DeleteFile { file } => {
                let files = local_files(&self.config.watched_dir());
                if files.is_empty() {
                    return;
                }
                let absolute = files.keys().nth(file % files.len()).unwrap().clone();
                std::fs::remove_file(&absolute).unwrap();
                // A running daemon hears of the removal (its watcher's event).
                let path =
                    RelativeMediaPath::from_absolute(&self.config.watch.media_root, &absolute).unwrap();
                for n in 0..self.daemons.len() {
                    let Some(pipeline) = self.daemons[n].pipeline.clone().filter(|_| self.daemons[n].scanned)
                    else {
                        continue;
                    };
                    let seen = self.stale_rows(Some(path.as_str()));
                    self.daemons[n].saw_stale.extend(seen);
                    pipeline.note_vanished(&path).await;
                }
            }
            Event::RestoreFile { sale } => {
                let Some(id) = self.sale(sale) else { return };
                let Some(row) = self.table.row(id) else { return };
                let (Some(path), Some(bytes)) =
                    (row.confronta.filter(|c| !c.is_empty()), self.last_document.get(&id))
                else {
                    return;
                };
                let absolute = self.absolute(&path);
                if std::fs::symlink_metadata(&absolute).is_err() {
                    std::fs::write(absolute, bytes).unwrap();
                }
            }
            Event::RowBeforeFile { name, look_between } => {
                let path = self.free_path(name);
                let id = self.next_id;
                self.next_id += 1;
                self.table.insert_new(id, &format!("PORTA-{id}"), &path);
                self.sales.push(id);
                if look_between {
                    self.scan(0).await;
                }
                self.write_file(&path, id, false);
            }
            Event::Run { daemon, passes } => self.run(daemon, passes).await,
            Event::Restart { daemon } => self.stop(daemon),
            Event::LoseJournal { daemon } => {
                self.stop(daemon);
                self.daemons[daemon].saw_stale.clear();
                let path = &self.daemons[daemon].journal_path;
                for suffix in ["", "-wal", "-shm"] {
                    let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
                }
            }
            Event::SnapshotDatabase => self.snapshot = Some(self.table.snapshot()),
            Event::RestoreDatabase => {
                if let Some(snapshot) = &self.snapshot {
                    self.table.restore(snapshot);
                }
            }
            Event::Orphans => {
                let db: Arc<dyn SalesDb> = self.table.clone();
                let store: Arc<dyn ObjectStore> = self.store.clone();
                let template = ObjectNameTemplate::parse(&self.config.minio.object_name).unwrap();
                commands::orphans(
                    &db,
                    &store,
                    &self.journals(),
                    &self.config.watch.media_root,
                    &self.config.watched_dir(),
                    &template,
                    Duration::ZERO,
                    true,
                    100,
                    |_| Ok(()),
                )
                .await
                .unwrap();
            }
            Event::Repair => {
                let db: Arc<dyn SalesDb> = self.table.clone();
                let store: Arc<dyn ObjectStore> = self.store.clone();
                let base = format!("{}/{}", self.config.minio.public_base_url(), self.config.minio.bucket);
                commands::repair(&db, &store, &self.journals(), &self.media_root, &base, false, |_| {})
                    .await
                    .unwrap();
            }
        }
    }

    /// Objects a row names and, with `journals`, objects a journal holds as a venta's current
    /// document.
    async fn referenced(&self, journals: bool) -> HashSet<String> {
        let mut names: HashSet<String> = self
            .table
            .rows()
            .into_iter()
            .filter_map(|row| row.minio_object_name)
            .filter(|o| !o.is_empty())
            .collect();
        if journals {
            for journal in self.journals() {
                names.extend(
                    journal.current_objects().await.unwrap().into_iter().map(|object| object.object_name),
                );
            }
        }
        names
    }

    fn objects(&self) -> BTreeMap<String, Vec<u8>> {
        self.store
            .names()
            .into_iter()
            .map(|name| (name.clone(), self.store.object(&name).unwrap().to_vec()))
            .collect()
    }

    fn quarantined(&self) -> HashSet<Vec<u8>> {
        local_files(&self.config.quarantine_dir())
            .into_iter()
            .filter(|(path, _)| !path.to_string_lossy().ends_with(".reason"))
            .map(|(_, bytes)| bytes)
            .collect()
    }

    /// Guarantees 1 to 3, given the world before the step.
    async fn check(&self, event: &Event, before: &Before) -> Result<(), String> {
        let objects = self.objects();
        // 1. What a daemon recorded in this step is the sale's own file, unless the daemon
        //    never saw the sale's row name the path while it was free.
        for row in self.table.rows() {
            let Some(name) = row.minio_object_name.clone().filter(|name| !name.is_empty()) else { continue };
            let Some(was) = before.rows.get(&row.id) else { continue };
            if was.minio_object_name.as_deref() == Some(name.as_str()) {
                continue;
            }
            match event {
                Event::Run { daemon, .. } => {
                    let Some(bytes) = objects.get(&name) else { continue };
                    let owner = self.owner.get(bytes).copied();
                    let path = was.confronta.clone().unwrap_or_default();
                    let knew = self.daemons[*daemon].saw_stale.contains(&(
                        path.clone(),
                        row.id,
                        was.assigned.clone(),
                    ));
                    if owner != Some(row.id) && knew {
                        return Err(format!(
                            "venta {} was given {name} (the file of venta {owner:?} at {path}), though the daemon had seen it name {path} while no file stood there",
                            row.id
                        ));
                    }
                }
                // `repair` only points a row back at an object it pointed at before.
                Event::Repair if !before.pointed.get(&row.id).is_some_and(|names| names.contains(&name)) => {
                    return Err(format!("repair gave venta {} {name}, an object it never had", row.id));
                }
                _ => {}
            }
        }
        // 2. Nothing a row still names was deleted; and `orphans`, which reads the journals,
        //    deleted nothing a journal holds as a venta's document. (A daemon retiring a
        //    corrected venta's old object asks the table, not another daemon's journal, whose
        //    history may still call that object current.)
        let referenced = self.referenced(matches!(event, Event::Orphans)).await;
        for name in before.objects.keys() {
            if !objects.contains_key(name) && referenced.contains(name) {
                return Err(format!("object {name} was deleted while it is still named"));
            }
        }
        // 3. A local file that disappeared (not deleted by the step itself) is in an object a
        //    row names, or in quarantine.
        if matches!(event, Event::DeleteFile { .. }) {
            return Ok(());
        }
        let now: HashSet<Vec<u8>> = local_files(&self.config.watched_dir()).into_values().collect();
        let named: HashSet<&Vec<u8>> = self
            .table
            .rows()
            .into_iter()
            .filter_map(|row| row.minio_object_name)
            .filter_map(|name| objects.get(&name))
            .collect();
        let quarantined = self.quarantined();
        for bytes in before.files.values() {
            if now.contains(bytes) || named.contains(bytes) {
                continue;
            }
            if quarantined.contains(bytes) && self.refused.contains(bytes) {
                continue;
            }
            return Err(format!(
                "a local file of venta {:?} disappeared without its bytes in an object a row names",
                self.owner.get(bytes)
            ));
        }
        Ok(())
    }

    /// Guarantee 4, once daemon 0 has settled: a refused file left in MEDIA_ROOT is one no row
    /// may own (it waits), never one whose refusal was left half done.
    async fn check_settled(&mut self) -> Result<(), String> {
        self.stop(0);
        self.run(0, 3).await;
        let pipeline = self.pipeline(0);
        for (path, bytes) in local_files(&self.config.watched_dir()) {
            if !self.refused.contains(&bytes) {
                continue;
            }
            let relative = RelativeMediaPath::from_absolute(&self.config.watch.media_root, &path).unwrap();
            let state = pipeline.journal().get(&relative).await.unwrap().map(|entry| entry.state());
            if !matches!(state, Some(FileState::WaitingForRow | FileState::Orphan)) {
                return Err(format!("refused file {relative} left in MEDIA_ROOT in state {state:?}"));
            }
        }
        Ok(())
    }
}

/// The world as a step found it.
struct Before {
    objects: BTreeMap<String, Vec<u8>>,
    files: BTreeMap<PathBuf, Vec<u8>>,
    rows: BTreeMap<i64, confronta_sync::db::VentaRow>,
    /// Every object each row has pointed at so far.
    pointed: HashMap<i64, HashSet<String>>,
}

/// Every regular file under `dir`, with its bytes.
fn local_files(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    confronta_sync::watch::walk(dir)
        .into_iter()
        .filter_map(|path| Some((path.clone(), std::fs::read(&path).ok()?)))
        .collect()
}

/// Runs `events` and checks every guarantee after each; the first broken one, with the step.
fn run_sequence(events: &[Event]) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async {
        let mut model = Model::new();
        let mut pointed: HashMap<i64, HashSet<String>> = HashMap::new();
        for (step, event) in events.iter().enumerate() {
            let rows: BTreeMap<i64, _> = model.table.rows().into_iter().map(|row| (row.id, row)).collect();
            for row in rows.values() {
                if let Some(name) = row.minio_object_name.clone().filter(|name| !name.is_empty()) {
                    pointed.entry(row.id).or_default().insert(name);
                }
            }
            let before = Before {
                objects: model.objects(),
                files: local_files(&model.config.watched_dir()),
                rows,
                pointed: pointed.clone(),
            };
            model.apply(event).await;
            model
                .check(event, &before)
                .await
                .map_err(|broken| format!("step {step} ({event:?}): {broken}"))?;
        }
        model.check_settled().await.map_err(|broken| format!("after settling: {broken}"))
    })
}

proptest! {
    #![proptest_config(ProptestConfig {
        // The test command's share; PROPTEST_CASES sets the long run.
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(300),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn django_saves_never_break_the_guarantees(events in prop::collection::vec(event(), 1..40)) {
        if let Err(broken) = run_sequence(&events) {
            return Err(TestCaseError::fail(broken));
        }
    }
}

/// Sequences the model found, shrunk, each named after what it broke.
mod regressions {
    use super::*;

    #[test]
    fn a_name_reused_after_the_stale_row_was_seen_goes_to_the_new_sale() {
        // V1's file deleted and seen missing; V2 saves the same name.
        let events = [
            Event::CreateSale { name: 0, refused: false },
            Event::DeleteFile { file: 0 },
            Event::Run { daemon: 0, passes: 1 },
            Event::CreateSale { name: 0, refused: false },
            Event::Run { daemon: 0, passes: 2 },
        ];
        run_sequence(&events).unwrap();
    }

    /// Found by the model: a row seen stale with one stamp, corrected (a new stamp, itself seen
    /// stale when that file was removed), then a database restore brought the first stamp
    /// back. Only the last stamp was kept, so the old one read as "assigned since" and the
    /// venta took the file another sale saved under the name.
    #[test]
    fn a_restore_that_brings_an_older_stamp_back_is_still_stale() {
        let events = [
            Event::CreateSale { name: 0, refused: false },
            Event::Run { daemon: 0, passes: 1 },
            Event::CreateSale { name: 2, refused: false },
            Event::DeleteFile { file: 0 },
            Event::SnapshotDatabase,
            Event::Run { daemon: 0, passes: 1 },
            Event::Correct { sale: 1, name: 2 },
            Event::DeleteFile { file: 0 },
            Event::CreateSale { name: 2, refused: false },
            Event::RestoreDatabase,
            Event::RestoreFile { sale: 0 },
            Event::Run { daemon: 0, passes: 1 },
        ];
        run_sequence(&events).unwrap();
    }
}
