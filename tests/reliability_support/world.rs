//! One case's world: a PostgreSQL schema with the Django table and the audit trigger, an S3
//! target (the shared test server or one the case started), an object prefix, the sites (media
//! folder + journal + config of one daemon each), the files, and the invariant checks.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use confronta_sync::object_name::ObjectName;
use confronta_sync::store::{ObjectStore, S3Store};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::pg::{admin, install_audit, SchemaGuard};
use super::report::{failure_dir, seed, Record};
use super::s3server::store_for;
use crate::common::{
    assign_blocking, config::Placement, django, pg_base_url, pg_connect, s3_env, sample_bytes, sha256_hex,
    unique, S3Env, TestConfig, TestDb, DDL_POSTGRES,
};

/// Files above this go up in parts (5 MiB, the S3 minimum part size), so some files in the
/// bigger cases are multipart.
pub const MULTIPART: u64 = 5 * 1024 * 1024;

/// How long no file may move, with files left to move, before a wait calls them stuck.
pub const STALL: Duration = Duration::from_secs(30);

pub struct Target {
    pub env: S3Env,
    pub store: Arc<S3Store>,
}

impl Target {
    /// The shared test server (`CONFRONTA_TEST_S3_*`, started by scripts/test.sh).
    pub fn shared() -> Target {
        let env = s3_env();
        let store = store_for(&env);
        Target { env, store }
    }

    pub fn at(endpoint: &str) -> Target {
        let env = super::s3server::s3_env_for(endpoint);
        let store = store_for(&env);
        Target { env, store }
    }
}

#[derive(Debug, Clone, Copy)]
pub enum WriteHow {
    /// Django's small-upload path: create, chunked writes, close.
    InPlace,
    /// Django's large-upload path: a temp file renamed in.
    RenameIn,
}

#[derive(Clone)]
pub struct FileSpec {
    pub id: i64,
    /// `confrontas/<name>`, what the row's `confronta` holds.
    pub rel: String,
    pub abs: PathBuf,
    pub bytes: Arc<Vec<u8>>,
    pub sha: String,
    pub object: String,
    pub url: String,
    pub how: WriteHow,
    /// Set once the file is on disk; a file not written yet is not "lost".
    pub written: Arc<AtomicBool>,
    /// The Django database, where `write` gives the venta its file after writing it.
    db_url: String,
    scratch: PathBuf,
}

impl FileSpec {
    /// Saves the file the way Django does: the file, then the venta's row naming it.
    pub fn write(&self) {
        match self.how {
            WriteHow::InPlace => django::write_in_place(&self.abs, &self.bytes),
            WriteHow::RenameIn => django::rename_in(&self.scratch, &self.abs, &self.bytes),
        }
        self.written.store(true, Ordering::SeqCst);
        assign_blocking(&self.db_url, self.id, &self.rel);
    }
}

/// One daemon's folder, journal and config.
pub struct Site {
    pub media_root: PathBuf,
    pub journal: PathBuf,
    pub config: PathBuf,
    pub metrics_port: Option<u16>,
}

pub struct SiteOptions {
    pub db_url: Option<String>,
    pub poll_ms: Option<u64>,
    pub metrics: bool,
    /// Share another site's media folder (two daemons on one folder).
    pub media_root: Option<PathBuf>,
    /// Share another site's journal (the lock case).
    pub journal: Option<PathBuf>,
    pub retry_initial_ms: u64,
    pub retry_max_s: u64,
    pub max_in_flight: usize,
    pub reconcile_s: u64,
    /// Further keys by dotted name ("database.lock_timeout_ms"), set last.
    pub settings: Vec<(&'static str, toml::Value)>,
    /// The daemon's shipped timers and limits (settle, reconcile interval, retries, files in
    /// flight) instead of test speeds: `retry_*`, `max_in_flight` and `reconcile_s` are ignored.
    pub shipped: bool,
}

impl Default for SiteOptions {
    fn default() -> Self {
        SiteOptions {
            db_url: None,
            poll_ms: None,
            metrics: false,
            media_root: None,
            journal: None,
            retry_initial_ms: 200,
            retry_max_s: 2,
            max_in_flight: 4,
            reconcile_s: 2,
            settings: Vec::new(),
            shipped: false,
        }
    }
}

/// How the files' sizes are drawn.
#[derive(Debug, Clone, Copy)]
pub struct SizeMix {
    /// Every n-th file is a multipart one (a little over 5 MiB).
    pub multipart_every: Option<usize>,
}

/// One case's world (see the module comment).
pub struct CaseWorld {
    pub id: &'static str,
    pub temp: tempfile::TempDir,
    pub db: TestDb,
    _schema: SchemaGuard,
    pub target: Target,
    pub prefix: String,
    pub files: Vec<FileSpec>,
    pub rng: StdRng,
    monitor: Monitor,
    next_index: usize,
}

#[derive(Default)]
struct Monitor {
    /// Object → last-modified when first seen: a referenced object must keep it.
    first_modified: HashMap<String, Option<i64>>,
    /// Venta ids whose recorded object's bytes were downloaded and compared already.
    verified: HashSet<i64>,
}

/// When a check runs: at a crash instant (in-between states allowed) or after the drain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Instant,
    Final,
}

#[derive(Debug, Default, Clone)]
pub struct Findings {
    pub moved: usize,
    pub untouched: usize,
    pub not_written: usize,
    /// Row recorded, local file still there (a crash between record and unlink).
    pub pending_removal: usize,
    /// Objects uploaded but not (yet) referenced by their row.
    pub unrecorded_objects: usize,
    pub objects: usize,
    pub lost: usize,
    pub wrong_bytes: usize,
    pub overwritten: usize,
    pub dangling: usize,
    pub rows_rewritten: usize,
    pub local_changed: usize,
    pub written_twice: usize,
    pub unexpected_objects: usize,
    /// Final only: files not moved after the drain.
    pub not_moved: usize,
    pub examples: Vec<String>,
    /// Which files were recorded but not removed, and which objects not yet recorded.
    pub pending_ids: Vec<i64>,
    pub unrecorded_names: Vec<String>,
}

impl Findings {
    pub fn bad(&self) -> usize {
        self.lost
            + self.wrong_bytes
            + self.overwritten
            + self.dangling
            + self.rows_rewritten
            + self.local_changed
            + self.written_twice
            + self.unexpected_objects
            + self.not_moved
    }

    fn problem(&mut self, text: String) {
        if self.examples.len() < 8 {
            self.examples.push(text);
        }
    }

    /// The invariant counts, for the `observed` column.
    pub fn summary(&self) -> String {
        format!(
            "lost {}, wrong bytes {}, referenced objects overwritten {}, rows pointing at a missing object {}, rows written twice {}, rows with wrong values {}, local files changed {}",
            self.lost, self.wrong_bytes, self.overwritten, self.dangling, self.written_twice, self.rows_rewritten, self.local_changed
        )
    }

    /// Records one check per invariant.
    pub fn check_into(&self, record: &Record, when: &str) {
        let examples = if self.examples.is_empty() {
            String::new()
        } else {
            format!(" (e.g. {})", self.examples.join(" / "))
        };
        record.check(
            self.bad() == 0,
            format!(
                "{when}: {}; not moved {}; unexpected objects {}{examples}",
                self.summary(),
                self.not_moved,
                self.unexpected_objects
            ),
        );
    }
}

/// The totals over many checks (the random-kill cases check after every kill).
#[derive(Debug, Default)]
pub struct Tally {
    pub checks: usize,
    pub lost: usize,
    pub wrong_bytes: usize,
    pub overwritten: usize,
    pub dangling: usize,
    pub other: usize,
    pub pending_removal_seen: HashSet<i64>,
    pub unrecorded_seen: HashSet<String>,
    pub examples: Vec<String>,
}

impl Tally {
    pub fn add(&mut self, f: &Findings) {
        self.checks += 1;
        self.lost += f.lost;
        self.wrong_bytes += f.wrong_bytes;
        self.overwritten += f.overwritten;
        self.dangling += f.dangling;
        self.other +=
            f.rows_rewritten + f.local_changed + f.written_twice + f.unexpected_objects + f.not_moved;
        self.pending_removal_seen.extend(f.pending_ids.iter().copied());
        self.unrecorded_seen.extend(f.unrecorded_names.iter().cloned());
        for e in &f.examples {
            if self.examples.len() < 8 {
                self.examples.push(e.clone());
            }
        }
    }

    pub fn bad(&self) -> usize {
        self.lost + self.wrong_bytes + self.overwritten + self.dangling + self.other
    }
}

impl CaseWorld {
    pub async fn new(id: &'static str, target: Target) -> CaseWorld {
        super::pg::sweep_leftovers();
        let temp = tempfile::Builder::new().prefix(&format!("rel-{id}-")).tempdir().unwrap();
        // Its own schema name (not `cs_test_*`, which scripts/test.sh sweeps at its start, so a
        // concurrent test run cannot drop a case's tables under it).
        let client = pg_connect(&pg_base_url()).await;
        let schema = unique("csrel");
        client
            .batch_execute(&format!("CREATE SCHEMA {schema}; SET search_path = {schema}; {DDL_POSTGRES}"))
            .await
            .expect("create the case's schema");
        let db = TestDb::Postgres { schema: schema.clone(), admin: client };
        install_audit(&db).await;
        let seed = seed() ^ fnv(id);
        CaseWorld {
            id,
            temp,
            db,
            _schema: SchemaGuard { schema },
            target,
            prefix: unique("rel"),
            files: Vec::new(),
            rng: StdRng::seed_from_u64(seed),
            monitor: Monitor::default(),
            next_index: 0,
        }
    }

    pub fn schema(&self) -> &str {
        admin(&self.db).1
    }

    /// A daemon's site: its media folder (or a shared one), journal and config.
    pub fn site(&self, name: &str, options: SiteOptions) -> Site {
        let root = self.temp.path().join(name);
        std::fs::create_dir_all(&root).unwrap();
        let media_root = options.media_root.clone().unwrap_or_else(|| root.join("media"));
        std::fs::create_dir_all(media_root.join("confrontas")).unwrap();
        let journal = options.journal.clone().unwrap_or_else(|| root.join("state/journal.sqlite3"));
        let metrics_port = options.metrics.then(crate::common::free_port);
        let mut config = TestConfig::placed(
            root.join("config.toml"),
            &Placement {
                media_root: &media_root,
                database_url: options.db_url.clone().unwrap_or_else(|| self.db.url()),
                s3: &self.target.env,
                secret_key_file: &root.join("minio-secret"),
                prefix: &self.prefix,
                journal: &journal,
            },
        )
        .set("minio.multipart_threshold_bytes", MULTIPART as i64)
        .set("minio.part_size_bytes", MULTIPART as i64)
        .set("service.shutdown_timeout_s", 10);
        config = if options.shipped {
            config.at_defaults()
        } else {
            config
                .set("watch.reconcile_interval_s", options.reconcile_s as i64)
                .set("pipeline.max_in_flight", options.max_in_flight as i64)
                .set("pipeline.retry_initial_ms", options.retry_initial_ms as i64)
                .set("pipeline.retry_max_s", options.retry_max_s as i64)
        };
        if let Some(ms) = options.poll_ms {
            config = config.set("watch.poll_interval_ms", ms as i64);
        }
        if let Some(port) = metrics_port {
            config = config.set("metrics.listen", format!("127.0.0.1:{port}"));
        }
        for (key, value) in options.settings {
            config = config.set(key, value);
        }
        let config = config.write();
        Site { media_root, journal, config, metrics_port }
    }

    /// Inserts `count` ventas, without a file yet (their ids name the objects), and returns the
    /// indices in `self.files` of the files they will be given; nothing is written to disk yet.
    pub async fn plan_files(&mut self, site: &Site, count: usize, mix: SizeMix) -> Vec<usize> {
        let mut indices = Vec::with_capacity(count);
        for _ in 0..count {
            let index = self.next_index;
            self.next_index += 1;
            let size = match mix.multipart_every {
                Some(every) if index % every == every - 1 => {
                    MULTIPART as usize + self.rng.random_range(1..300_000)
                }
                _ => {
                    let roll: f64 = self.rng.random();
                    if roll < 0.6 {
                        self.rng.random_range(1_000..32_000)
                    } else if roll < 0.95 {
                        self.rng.random_range(32_000..256_000)
                    } else {
                        self.rng.random_range(256_000..2_000_000)
                    }
                }
            };
            // Some names carry Spanish letters, as the CRM's do.
            let name = if index % 7 == 3 {
                format!("confronta_{index:05}_señora_Muñoz.pdf")
            } else if index % 5 == 1 {
                format!("confronta_{index:05}.jpg")
            } else {
                format!("confronta_{index:05}.pdf")
            };
            let rel = format!("confrontas/{name}");
            let numero = format!("PORTA-R{index:05}");
            let id = self.db.insert_venta(&numero, None).await;
            let bytes = sample_bytes(seed().wrapping_add(index as u64 * 7919) ^ fnv(self.id), size);
            let sha = sha256_hex(&bytes);
            let ext = if name.ends_with(".jpg") { ".jpg" } else { ".pdf" };
            let object = format!("{}/venta_{numero}_confronta_{id}_{}{ext}", self.prefix, &sha[..12]);
            let url = format!("{}/{}/{object}", self.target.env.endpoint, self.target.env.bucket);
            let scratch = self.temp.path().join("scratch");
            std::fs::create_dir_all(&scratch).unwrap();
            self.files.push(FileSpec {
                id,
                abs: site.media_root.join(&rel),
                rel,
                bytes: Arc::new(bytes),
                sha,
                object,
                url,
                how: if index.is_multiple_of(3) { WriteHow::RenameIn } else { WriteHow::InPlace },
                written: Arc::new(AtomicBool::new(false)),
                db_url: self.db.url(),
                scratch,
            });
            indices.push(self.files.len() - 1);
        }
        indices
    }

    pub fn write_now(&self, indices: &[usize]) {
        for &index in indices {
            self.files[index].write();
        }
    }

    /// Writes the files one after another, `pace` apart, on a thread (Django keeps saving
    /// while the daemon crashes, restarts or waits out an outage).
    pub fn spawn_writer(&self, indices: &[usize], pace: Duration) -> std::thread::JoinHandle<()> {
        let files: Vec<FileSpec> = indices.iter().map(|&i| self.files[i].clone()).collect();
        std::thread::spawn(move || {
            for file in files {
                file.write();
                std::thread::sleep(pace);
            }
        })
    }

    /// Files of `indices` whose row is recorded and whose local copy is gone.
    pub async fn moved_count(&self, indices: &[usize]) -> usize {
        let (client, _) = admin(&self.db);
        let rows = client
            .query(
                "SELECT CAST(id AS bigint) FROM telefonica_ventaportabilidad \
                 WHERE confronta_subido_a_minio AND confronta = ''",
                &[],
            )
            .await
            .unwrap();
        let recorded: HashSet<i64> = rows.iter().map(|r| r.get(0)).collect();
        indices
            .iter()
            .filter(|&&i| recorded.contains(&self.files[i].id) && !self.files[i].abs.exists())
            .count()
    }

    pub fn all(&self) -> Vec<usize> {
        (0..self.files.len()).collect()
    }

    /// Waits until every file of `indices` moved; gives up after `limit`, or after `STALL`
    /// without a single file moving (a stuck file, not a slow machine: retries are capped at a
    /// few seconds and a reconcile pass runs every 2 s). Returns whether they all moved.
    pub async fn wait_moved(&self, indices: &[usize], limit: Duration) -> bool {
        let started = std::time::Instant::now();
        let mut last = (0, started);
        loop {
            let moved = self.moved_count(indices).await;
            if moved == indices.len() {
                return true;
            }
            let now = std::time::Instant::now();
            if moved != last.0 {
                last = (moved, now);
            }
            if now - started > limit || now - last.1 > STALL {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Every invariant, for every file. Reads the local files first, then the rows, then the
    /// objects: a daemon still running can only move a file forward between the reads (unlink
    /// comes after the record, the record after the upload), so no race makes a file look lost.
    pub async fn check(&mut self, phase: Phase) -> Findings {
        let mut f = Findings::default();
        // 1. Local files.
        let mut local = Vec::with_capacity(self.files.len());
        for file in &self.files {
            // `written` is read before the file: the writer sets it only after its last byte,
            // so a file that differs while `written` is still false is one being written (an
            // in-place write is created empty, then filled), not one that changed.
            let written = file.written.load(Ordering::SeqCst);
            let state = match std::fs::read(&file.abs) {
                Ok(bytes) if bytes == *file.bytes => Local::Intact,
                Ok(_) if !written => Local::Absent,
                Ok(_) => Local::Changed,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Local::Absent,
                Err(e) => panic!("reading {}: {e}", file.abs.display()),
            };
            local.push((written, state));
        }
        // 2. Rows and the audit of their writes.
        let (client, _) = admin(&self.db);
        let rows: HashMap<i64, RowValues> = client
            .query(
                "SELECT CAST(id AS bigint), confronta, confronta_minio_url, confronta_minio_object_name, \
                 confronta_subido_a_minio, confronta_sha256 FROM telefonica_ventaportabilidad",
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get(0), (r.get(1), r.get(2), r.get(3), r.get(4), r.get(5))))
            .collect();
        let writes: HashMap<i64, i64> = client
            .query("SELECT venta_id, count(*) FROM rel_audit GROUP BY venta_id", &[])
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        // 3. Objects.
        let objects: BTreeMap<String, (u64, Option<i64>)> = self
            .target
            .store
            .list(&format!("{}/", self.prefix))
            .await
            .expect("list the case's objects")
            .into_iter()
            .map(|e| (e.name, (e.size, e.modified_unix_s)))
            .collect();
        f.objects = objects.len();

        let mut referenced = HashSet::new();
        for (index, file) in self.files.iter().enumerate() {
            let (written, local_state) = local[index];
            let row = rows.get(&file.id).cloned().unwrap_or_default();
            // Not given its file yet (NULL), or given it and not recorded.
            let initial = (row.0.is_none() || row.0.as_deref() == Some(file.rel.as_str()))
                && row.1.is_none()
                && row.2.is_none()
                && !row.3
                && row.4.is_none();
            let recorded = row.0.as_deref() == Some("")
                && row.1.as_deref() == Some(file.url.as_str())
                && row.2.as_deref() == Some(file.object.as_str())
                && row.3
                && row.4.as_deref() == Some(file.sha.as_str());
            let times = writes.get(&file.id).copied().unwrap_or(0);
            if times > 1 {
                f.written_twice += 1;
                f.problem(format!("venta {} written {times} times", file.id));
            }
            if local_state == Local::Changed {
                f.local_changed += 1;
                f.problem(format!("{} changed on disk", file.rel));
            }
            if recorded {
                referenced.insert(file.object.clone());
                match objects.get(&file.object) {
                    None => {
                        f.dangling += 1;
                        f.problem(format!("venta {} points at missing object {}", file.id, file.object));
                    }
                    Some((size, modified)) => {
                        if *size != file.bytes.len() as u64 {
                            f.wrong_bytes += 1;
                            f.problem(format!(
                                "object {} has size {size}, not {}",
                                file.object,
                                file.bytes.len()
                            ));
                        } else if !self.monitor.verified.contains(&file.id) {
                            let stored =
                                self.target.store.get(&ObjectName::from_stored(file.object.clone())).await;
                            match stored {
                                Ok(bytes) if bytes.as_ref() == file.bytes.as_slice() => {
                                    self.monitor.verified.insert(file.id);
                                }
                                Ok(_) => {
                                    f.wrong_bytes += 1;
                                    f.problem(format!("object {} holds other bytes", file.object));
                                }
                                Err(e) => panic!("reading object {}: {e}", file.object),
                            }
                        }
                        match self.monitor.first_modified.get(&file.object) {
                            Some(first) if first != modified => {
                                f.overwritten += 1;
                                f.problem(format!(
                                    "referenced object {} rewritten ({first:?} → {modified:?})",
                                    file.object
                                ));
                            }
                            Some(_) => {}
                            None => {
                                self.monitor.first_modified.insert(file.object.clone(), *modified);
                            }
                        }
                    }
                }
                match local_state {
                    Local::Absent => f.moved += 1,
                    Local::Intact => {
                        f.pending_removal += 1;
                        f.pending_ids.push(file.id);
                        if phase == Phase::Final {
                            f.not_moved += 1;
                            f.problem(format!("{} recorded but its local copy is still there", file.rel));
                        }
                    }
                    Local::Changed => {}
                }
                if phase == Phase::Final && times != 1 {
                    f.problem(format!("venta {} recorded but audited {times} writes", file.id));
                    if times == 0 {
                        f.rows_rewritten += 1;
                    }
                }
            } else if initial {
                match local_state {
                    Local::Intact => {
                        f.untouched += 1;
                        if phase == Phase::Final {
                            f.not_moved += 1;
                            f.problem(format!("{} (venta {}) not moved", file.rel, file.id));
                        }
                    }
                    Local::Absent if !written => f.not_written += 1,
                    Local::Absent => {
                        f.lost += 1;
                        f.problem(format!(
                            "{} (venta {}) LOST: local file gone, row not recorded",
                            file.rel, file.id
                        ));
                    }
                    Local::Changed => {}
                }
            } else {
                f.rows_rewritten += 1;
                f.problem(format!("venta {} holds unexpected values {row:?}", file.id));
                if local_state == Local::Absent && written {
                    f.lost += 1;
                }
            }
        }
        let expected: HashSet<&str> = self.files.iter().map(|file| file.object.as_str()).collect();
        for name in objects.keys() {
            if referenced.contains(name) {
                continue;
            }
            if expected.contains(name.as_str()) && phase == Phase::Instant {
                f.unrecorded_objects += 1;
                f.unrecorded_names.push(name.clone());
            } else {
                f.unexpected_objects += 1;
                f.problem(format!("object {name} is referenced by no row"));
            }
        }
        if phase == Phase::Final && f.objects != self.files.len() {
            f.problem(format!("{} objects for {} files", f.objects, self.files.len()));
            f.unexpected_objects += 1;
        }
        f
    }

    /// Where each file stands: its journal state, its local copy, its row and its object.
    pub async fn statuses(&self, journal: &Path) -> Vec<FileStatus> {
        let states = journal_states(journal);
        let objects: HashSet<String> = self
            .target
            .store
            .list(&format!("{}/", self.prefix))
            .await
            .expect("list the case's objects")
            .into_iter()
            .map(|e| e.name)
            .collect();
        let mut out = Vec::new();
        for file in &self.files {
            let row = self.db.row(file.id).await.expect("row exists");
            out.push(FileStatus {
                journal: states.get(&file.rel).cloned(),
                local: file.abs.exists(),
                row_initial: (row.confronta.is_none() || row.confronta.as_deref() == Some(file.rel.as_str()))
                    && !row.subido
                    && row.object_name.is_none(),
                row_recorded: row.subido && row.object_name.as_deref() == Some(file.object.as_str()),
                object: objects.contains(&file.object),
            });
        }
        out
    }

    /// Deletes the case's objects (the schema and roles go when their guards drop).
    pub async fn cleanup(&self) {
        if let Ok(entries) = self.target.store.list(&format!("{}/", self.prefix)).await {
            for entry in entries {
                let _ = self.target.store.delete(&ObjectName::from_stored(entry.name)).await;
            }
        }
    }

    /// On a failure, copies the case's logs and journals where the report says.
    pub fn keep_logs(&self) {
        let dest = failure_dir(self.id);
        let _ = std::fs::remove_dir_all(&dest);
        copy_matching(self.temp.path(), &dest);
        eprintln!("[{}] logs kept in {}", self.id, dest.display());
    }
}

fn copy_matching(from: &Path, to: &Path) {
    let Ok(entries) = std::fs::read_dir(from) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if path.is_dir() {
            if name != "media" && name != "data" && name != "meta" && name != "scratch" {
                copy_matching(&path, &to.join(&name));
            }
        } else if name.ends_with(".log") || name.ends_with(".toml") || name.contains("journal") {
            let _ = std::fs::create_dir_all(to);
            let _ = std::fs::copy(&path, to.join(&name));
        }
    }
}

/// A row's confronta, url, object name, subido flag and checksum.
type RowValues = (Option<String>, Option<String>, Option<String>, bool, Option<String>);

#[derive(Debug, Clone)]
pub struct FileStatus {
    pub journal: Option<String>,
    pub local: bool,
    pub row_initial: bool,
    pub row_recorded: bool,
    pub object: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Local {
    Intact,
    Changed,
    Absent,
}

/// `path` → state of every entry of a journal (read-only, for a daemon that is not running).
pub fn journal_states(journal: &Path) -> HashMap<String, String> {
    if !journal.exists() {
        return HashMap::new();
    }
    let connection =
        rusqlite::Connection::open_with_flags(journal, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    let mut query = connection.prepare("SELECT path, state FROM files").unwrap();
    let rows = query.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))).unwrap();
    rows.map(|r| r.unwrap()).collect()
}

/// Lines of `text` that contain every one of `needles`.
pub fn count_lines(text: &str, needles: &[&str]) -> usize {
    text.lines().filter(|line| needles.iter().all(|n| line.contains(n))).count()
}

fn fnv(text: &str) -> u64 {
    text.bytes().fold(0xcbf29ce484222325u64, |h, b| (h ^ b as u64).wrapping_mul(0x100000001b3))
}
