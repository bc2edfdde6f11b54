//! Power loss at every pause point (issue 24 item 9): a SIGKILL at the pause point, then what a
//! power cut could still take back is taken back, then a restart.
//!
//! A kill -9 loses only the process; a power cut also loses whatever the disk was not made to
//! keep. The daemon runs with an `LD_PRELOAD` recorder (`power_loss_shim.c`, built here with the
//! machine's C compiler) that logs every directory-entry operation under the media root and the
//! state folder, every fsync, and the SQLite databases as of each fsync. After the kill,
//! `PowerCut::apply` plays the worst case the log allows:
//! - an operation on a folder not fsynced after it is undone (a rename in halves: the new
//!   entry's folder and the old entry's folder each keep or lose their half);
//! - a file whose inode was never fsynced comes back empty, as an upload Django wrote (Django
//!   never fsyncs) can after a power cut;
//! - each SQLite database (the daemon's journal, Django's SQLite file) is put back as of its
//!   last fsync, without its `-shm`.
//!
//! Then the daemon starts again without the recorder, and the file must have moved: its row
//! recorded with the original bytes' object, its local copy gone. Anything else is a document
//! the power cut cost.

use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use crate::common::{sha256_hex, Backend, Sidecar, World};
use crate::reliability_support::report::{run_case, Record};

/// The pause points of a file's run (`pause_point` in src), in the order a run reaches them;
/// the refusal's one (`quarantine_moved`) has its own case.
const PAUSE_POINTS: [&str; 7] = [
    "before_upload",
    "after_upload",
    "before_record",
    "after_record",
    "before_remove",
    "before_unlink",
    "after_remove",
];

/// The recorder, compiled once per test process.
fn shim() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let source =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/reliability_support/power_loss_shim.c");
        let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("power_loss_shim.so");
        let status = Command::new("cc")
            .args(["-shared", "-fPIC", "-O1", "-Wall", "-Wno-format-truncation", "-o"])
            .arg(&out)
            .arg(&source)
            .args(["-ldl", "-lpthread"])
            .status()
            .expect("a C compiler (cc) builds the power-loss recorder");
        assert!(status.success(), "building {} failed", source.display());
        out
    })
}

/// One recording: where the recorder writes, and what it watches.
pub struct PowerCut {
    root: PathBuf,
    log: PathBuf,
    stash: PathBuf,
    snapshots: PathBuf,
    tracked: Vec<PathBuf>,
    data_folders: Vec<PathBuf>,
    databases: Vec<PathBuf>,
    /// Inodes on disk before the daemon ran (see `written_back`).
    durable: HashSet<u64>,
}

/// What a power cut took back.
#[derive(Debug, Default)]
pub struct Undone {
    pub operations: Vec<String>,
    pub emptied: Vec<String>,
    pub databases: Vec<String>,
}

impl PowerCut {
    /// A recording under `root` (on the same file system as `tracked`: the stash keeps hard
    /// links) of the directory entries under `tracked`, the data of the files under
    /// `data_folders` (the uploads), and the SQLite `databases` at each fsync.
    pub fn new(
        root: &Path,
        tracked: Vec<PathBuf>,
        data_folders: Vec<PathBuf>,
        databases: Vec<PathBuf>,
    ) -> PowerCut {
        // As the recorder names them: what /proc/self/fd's links say, no symlink on the way.
        let canonical = |paths: Vec<PathBuf>| -> Vec<PathBuf> {
            paths
                .into_iter()
                .map(|p| p.canonicalize().unwrap_or_else(|e| panic!("{}: {e}", p.display())))
                .collect()
        };
        let (tracked, data_folders) = (canonical(tracked), canonical(data_folders));
        let databases: Vec<PathBuf> = databases
            .into_iter()
            .map(|db| db.parent().unwrap().canonicalize().unwrap().join(db.file_name().unwrap()))
            .collect();
        let root = root.canonicalize().unwrap().join("power-cut");
        let (stash, snapshots) = (root.join("stash"), root.join("snapshots"));
        std::fs::create_dir_all(&stash).unwrap();
        std::fs::create_dir_all(&snapshots).unwrap();
        PowerCut {
            log: root.join("log"),
            root,
            stash,
            snapshots,
            tracked,
            data_folders,
            databases,
            durable: HashSet::new(),
        }
    }

    /// The file at `path` was written a while before the daemon saw it, and the kernel's
    /// writeback made it durable meanwhile: fsynced here, its bytes survive the cut.
    pub fn written_back(&mut self, path: &Path) {
        std::fs::File::open(path).unwrap().sync_all().unwrap();
        self.durable.insert(std::fs::metadata(path).unwrap().ino());
    }

    /// The environment that loads the recorder into the daemon.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        let join =
            |paths: &[PathBuf]| paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(":");
        vec![
            ("LD_PRELOAD", shim().display().to_string()),
            ("PL_LOG", self.log.display().to_string()),
            ("PL_STASH", self.stash.display().to_string()),
            ("PL_SNAP", self.snapshots.display().to_string()),
            ("PL_TRACK", join(&self.tracked)),
            ("PL_DBS", join(&self.databases)),
        ]
    }

    /// Runs the daemon with the recorder and `point=return(kill)` until the failpoint kills it;
    /// why not, when it exits otherwise (or not within a minute).
    pub async fn run_until_killed_at(&self, config: &Path, point: &str) -> Result<(), String> {
        let failpoint = format!("{point}=return(kill)");
        let env = self.env();
        let mut env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        env.push(("FAILPOINTS", failpoint.as_str()));
        let mut daemon = Sidecar::start(config, &[], &env);
        let status = crate::common::poll_until(Duration::from_secs(60), Duration::from_millis(50), || {
            let exited = daemon.child.try_wait().unwrap();
            async move { exited }
        })
        .await;
        let killed = status.is_some_and(|s| s.signal() == Some(libc::SIGKILL))
            && daemon.log_text().contains("killed by failpoint");
        if killed {
            Ok(())
        } else {
            Err(format!("{point}: the daemon was not killed there ({status:?})"))
        }
    }

    /// The recorder's log, a line a `Vec` of its tab-separated fields.
    fn lines(&self) -> Vec<Vec<String>> {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        log.lines().map(|line| line.split('\t').map(str::to_owned).collect()).collect()
    }

    /// What the recorder saw, for the checks that it saw anything: the operations (`rename`,
    /// `unlink`, …) naming `path`, the fsyncs that completed of the file with inode `inode`,
    /// and the snapshots of `database`.
    pub fn seen(&self, path: &Path, inode: u64, database: &Path) -> (Vec<String>, usize, usize) {
        let lines = self.lines();
        let shown = path.display().to_string();
        let completed: HashSet<&str> =
            lines.iter().filter(|l| l[0] == "synced").map(|l| l[1].as_str()).collect();
        let operations = lines
            .iter()
            .filter(|l| {
                matches!(l[0].as_str(), "create" | "unlink" | "rename" | "link") && l.contains(&shown)
            })
            .map(|l| l[0].clone())
            .collect();
        let synced = lines
            .iter()
            .filter(|l| l[0] == "datasync" && l[3] == inode.to_string() && completed.contains(l[1].as_str()))
            .count();
        let database = database.display().to_string();
        let snapshots = lines.iter().filter(|l| l[0] == "snapshot" && l[1] == database).count();
        (operations, synced, snapshots)
    }

    /// Takes back what the disk was not made to keep (the module's doc comment). Panics on
    /// anything the model cannot undo, rather than keep it as if it were durable.
    pub fn apply(&self) -> Undone {
        let lines = self.lines();
        // An fsync counts once it completed (`synced` with its id).
        let completed: HashSet<&str> =
            lines.iter().filter(|l| l[0] == "synced").map(|l| l[1].as_str()).collect();
        // Whether `folder` was fsynced by a call that began after line `i`.
        let synced_after = |i: usize, folder: &Path| {
            lines[i + 1..]
                .iter()
                .any(|l| l[0] == "dirsync" && Path::new(&l[2]) == folder && completed.contains(l[1].as_str()))
        };
        let parent = |path: &str| Path::new(path).parent().unwrap().to_path_buf();
        let link_back = |stash: &str, path: &str| {
            assert!(stash != "-", "the recorder kept no link to {path}: it cannot be put back");
            std::fs::hard_link(stash, path).unwrap_or_else(|e| panic!("putting {path} back: {e}"));
        };
        let remove = |path: &str| match std::fs::remove_file(path) {
            Ok(()) => true,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
            Err(e) => panic!("taking {path} back: {e}"),
        };
        let mut undone = Undone::default();
        for (i, line) in lines.iter().enumerate().rev() {
            let kept = |path: &str| synced_after(i, &parent(path));
            let fields: Vec<&str> = line.iter().map(String::as_str).collect();
            let taken_back = match fields.as_slice() {
                ["create", path] if !kept(path) => remove(path).then(|| format!("create {path}")),
                // A folder whose entry is lost loses what is in it; one still holding entries
                // made durable inside it is left (the model keeps those).
                ["mkdir", path] if !kept(path) => {
                    std::fs::remove_dir(path).ok().map(|()| format!("mkdir {path}"))
                }
                ["rmdir", path] if !kept(path) => {
                    std::fs::create_dir_all(path).unwrap();
                    Some(format!("rmdir {path}"))
                }
                ["unlink", path, stash] if !kept(path) => {
                    link_back(stash, path);
                    Some(format!("unlink {path}"))
                }
                ["link", _, to] if !kept(to) => remove(to).then(|| format!("link to {to}")),
                ["rename", from, to, stash_from, stash_to] => {
                    // The new entry's half, then the old entry's: each folder keeps or loses its own.
                    let mut halves = Vec::new();
                    if !kept(to) {
                        remove(to);
                        if *stash_to != "-" {
                            link_back(stash_to, to);
                        }
                        halves.push(format!("rename's new entry {to}"));
                    }
                    if !kept(from) {
                        link_back(stash_from, from);
                        halves.push(format!("rename's removal of {from}"));
                    }
                    (!halves.is_empty()).then(|| halves.join(", "))
                }
                _ => None,
            };
            undone.operations.extend(taken_back);
        }
        // File data: an inode never fsynced comes back empty.
        let mut synced: HashSet<u64> = lines
            .iter()
            .filter(|l| l[0] == "datasync" && completed.contains(l[1].as_str()))
            .map(|l| l[3].parse().unwrap())
            .collect();
        synced.extend(&self.durable);
        for folder in &self.data_folders {
            for file in files_under(folder) {
                let meta = std::fs::metadata(&file).unwrap();
                if meta.len() > 0 && !synced.contains(&meta.ino()) {
                    std::fs::File::options().write(true).open(&file).unwrap().set_len(0).unwrap();
                    undone.emptied.push(file.display().to_string());
                }
            }
        }
        // Databases, as of their last fsync.
        for db in &self.databases {
            let shown = db.display().to_string();
            let Some(last) = lines.iter().rev().find(|l| l[0] == "snapshot" && l[1] == shown) else {
                continue;
            };
            for suffix in ["", "-wal", "-journal"] {
                let live = PathBuf::from(format!("{shown}{suffix}"));
                let saved = Path::new(&last[2]).join(format!("db{suffix}"));
                if saved.exists() {
                    std::fs::copy(&saved, &live).unwrap();
                } else {
                    remove(&live.display().to_string());
                }
            }
            remove(&format!("{shown}-shm"));
            undone.databases.push(shown);
        }
        undone
    }
}

impl Drop for PowerCut {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// Every regular file under `folder`, not following symlinks.
fn files_under(folder: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(folder) else { return found };
    for entry in entries.flatten() {
        let kind = entry.file_type().unwrap();
        if kind.is_dir() {
            found.extend(files_under(&entry.path()));
        } else if kind.is_file() {
            found.push(entry.path());
        }
    }
    found
}

/// One file, a kill at `point` with the power cut after it, a restart: what became of the file.
async fn cut_at(backend: Backend, point: &str) -> (Result<(), String>, String) {
    let world = World::new(backend).await;
    let config = world.config().write();
    let state = world.journal_path().parent().unwrap().to_path_buf();
    // The folders exist before the run, durably, as on an installed system.
    std::fs::create_dir_all(world.quarantine_dir().join("confrontas")).unwrap();
    let mut databases = vec![world.journal_path()];
    if let crate::common::TestDb::Sqlite { path } = &world.db {
        databases.push(path.clone());
    }
    let cut = PowerCut::new(
        world.temp.path(),
        vec![world.media_root.clone(), state],
        vec![world.media_root.clone(), world.quarantine_dir()],
        databases,
    );

    let bytes =
        format!("%PDF-1.7\nla confronta de la venta, cortada a las {point}\n").repeat(200).into_bytes();
    let name = format!("corte_{point}.pdf");
    let local = world.write_in_place(&name, &bytes);
    let (canonical, inode) = (local.canonicalize().unwrap(), std::fs::metadata(&local).unwrap().ino());
    let id = world.db.insert_venta(&format!("PORTA-{point}"), Some(&format!("confrontas/{name}"))).await;

    if let Err(why) = cut.run_until_killed_at(&config, point).await {
        world.cleanup().await;
        return (Err(why), String::new());
    }
    // The recorder saw the run: the journal's commits, the upload's fsync (hashed through
    // before `hashed`, so at every point), the move aside once the file was unlinked, and
    // Django's SQLite commit once recorded. A recorder that saw nothing would make the cut
    // take back nothing, and the case pass for nothing.
    let (operations, synced, journal_snapshots) = cut.seen(&canonical, inode, &world.journal_path());
    let mut unseen = Vec::new();
    if journal_snapshots == 0 {
        unseen.push("no snapshot of the journal".to_owned());
    }
    if synced == 0 {
        unseen.push("no completed fsync of the file (it must be durable before `hashed`)".to_owned());
    }
    if point == "after_remove" && !operations.iter().any(|op| op == "rename") {
        unseen.push(format!("no rename of the file aside (seen: {operations:?})"));
    }
    if let crate::common::TestDb::Sqlite { path } = &world.db {
        let recorded = PAUSE_POINTS.iter().position(|p| *p == point)
            >= PAUSE_POINTS.iter().position(|p| *p == "after_record");
        if recorded && cut.seen(&canonical, inode, path).2 == 0 {
            unseen.push("no snapshot of Django's SQLite file after its record".to_owned());
        }
    }
    if !unseen.is_empty() {
        world.cleanup().await;
        return (
            Err(format!("{point}: the recorder did not see the run: {}", unseen.join("; "))),
            String::new(),
        );
    }
    let undone = cut.apply();
    let summary = format!(
        "{point}: undone {} ({}), emptied {}, databases as of their last fsync {}",
        undone.operations.len(),
        undone.operations.iter().map(|op| op.rsplit('/').next().unwrap_or(op)).collect::<Vec<_>>().join(", "),
        undone.emptied.len(),
        undone.databases.len()
    );

    let mut daemon = Sidecar::start(&config, &[], &[]);
    let sha = sha256_hex(&bytes);
    let moved = crate::common::poll_until(Duration::from_secs(30), Duration::from_millis(100), || async {
        let row = world.db.row(id).await?;
        (row.subido && row.sha256.as_deref() == Some(sha.as_str()) && !local.exists()).then_some(row)
    })
    .await;
    let code = daemon.terminate();
    let outcome = match moved {
        Some(row) => {
            let object = row.object_name.unwrap_or_default();
            let stored = world.object_bytes(&object).await;
            if stored == bytes && code == Some(0) {
                Ok(())
            } else {
                Err(format!(
                    "{point}: object {object} holds {} bytes, not the {} written (exit {code:?})",
                    stored.len(),
                    bytes.len()
                ))
            }
        }
        None => {
            let row = world.db.row(id).await;
            let local_now = std::fs::read(&local).ok().map(|b| b.len());
            let quarantined = std::fs::read(world.quarantined(&name)).ok().map(|b| b.len());
            let last_warning =
                daemon.log_text().lines().rev().find(|l| l.contains(" WARN ")).map(str::to_owned);
            Err(format!(
                "{point}: not moved after the power cut: row {row:?}, local file {local_now:?} bytes, quarantined {quarantined:?} bytes, objects {:?}; emptied {:?}; last warning: {}",
                world.objects_under_prefix().await,
                undone.emptied,
                last_warning.unwrap_or_default()
            ))
        }
    };
    world.cleanup().await;
    (outcome, summary)
}

/// A refused file, killed between the quarantine folder's fsync and the media folder's (the
/// rename's two halves), the power cut, a restart: the file must be in one folder or the other
/// (never neither), and the restart must finish its refusal: a refused file that came back at
/// its name does not stay in MEDIA_ROOT, which Django serves. The file was written back before
/// the daemon ran (a refused file is never fsynced, so a fresh one could come back empty, and
/// an empty file serves nothing).
async fn cut_while_quarantining() -> (Result<(), String>, String) {
    let world = World::new(Backend::Postgres).await;
    let config = world.config().write();
    let state = world.journal_path().parent().unwrap().to_path_buf();
    let quarantine = world.quarantine_dir();
    std::fs::create_dir_all(quarantine.join("confrontas")).unwrap();
    let mut cut = PowerCut::new(
        world.temp.path(),
        vec![world.media_root.clone(), state],
        vec![world.media_root.clone(), quarantine.clone()],
        vec![world.journal_path()],
    );
    let local = world
        .write_in_place("programa.exe", &[b"MZ\x90\x00 not a document ".as_slice(), &[7; 4000]].concat());
    cut.written_back(&local);
    let id = world.db.insert_venta("PORTA-REFUSED", Some("confrontas/programa.exe")).await;

    if let Err(why) = cut.run_until_killed_at(&config, "quarantine_moved").await {
        world.cleanup().await;
        return (Err(why), String::new());
    }
    let undone = cut.apply();
    let in_quarantine = |world: &World| {
        files_under(&world.quarantine_dir())
            .into_iter()
            .filter(|file| {
                let name = file.file_name().unwrap().to_string_lossy();
                name.starts_with("programa.exe") && !name.ends_with(".reason")
            })
            .count()
    };
    let summary = format!(
        "quarantine_moved (a refused file, between the quarantine folder's fsync and the media folder's): undone {} ({}), emptied {}; after the cut: local copy {}, in quarantine {}",
        undone.operations.len(),
        undone.operations.iter().map(|op| op.rsplit('/').next().unwrap_or(op)).collect::<Vec<_>>().join(", "),
        undone.emptied.len(),
        if local.exists() { "there" } else { "gone" },
        in_quarantine(&world)
    );
    if !local.exists() && in_quarantine(&world) == 0 {
        world.cleanup().await;
        return (
            Err("quarantine_moved: the power cut took the refused file from both folders".into()),
            summary,
        );
    }
    let mut daemon = Sidecar::start(&config, &[], &[]);
    let settled = crate::common::poll_until(Duration::from_secs(30), Duration::from_millis(100), || async {
        let row = world.db.row(id).await?;
        (row.confronta.as_deref() != Some("confrontas/programa.exe")
            && !local.exists()
            && in_quarantine(&world) > 0)
            .then_some(row)
    })
    .await;
    let code = daemon.terminate();
    // Once: the move the cut half undid is finished, not made a second time.
    let copies = in_quarantine(&world);
    let outcome = match settled {
        Some(_) if code == Some(0) && copies == 1 => Ok(()),
        settled => Err(format!(
            "quarantine_moved: after the restart: row {:?}, local copy {}, in quarantine {copies} (one expected), exit {code:?}",
            settled.or(world.db.row(id).await),
            local.exists(),
        )),
    };
    world.cleanup().await;
    (outcome, summary)
}

async fn power_cut_at_every_pause_point(record: Record, backend: Backend) {
    let mut moved = 0;
    for point in PAUSE_POINTS {
        let (outcome, summary) = cut_at(backend, point).await;
        if !summary.is_empty() {
            record.note(summary);
        }
        if record.check(outcome.is_ok(), outcome.err().unwrap_or_default()) {
            moved += 1;
        }
    }
    record.note(format!("moved after the power cut: {moved}/{}", PAUSE_POINTS.len()));
    if backend == Backend::Postgres {
        let (outcome, summary) = cut_while_quarantining().await;
        if !summary.is_empty() {
            record.note(summary);
        }
        record.check(outcome.is_ok(), outcome.err().unwrap_or_default());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn power_loss_postgres() {
    run_case("power_loss_postgres", |record| power_cut_at_every_pause_point(record, Backend::Postgres)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn power_loss_django_sqlite() {
    run_case("power_loss_django_sqlite", |record| power_cut_at_every_pause_point(record, Backend::Sqlite))
        .await;
}
