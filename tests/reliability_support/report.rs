//! The variant (quick or large), the list of cases, and the table the harness writes:
//! `docs/reliability.md` when `CONFRONTA_RELIABILITY_REPORT` names it (scripts/reliability.sh),
//! otherwise `target/reliability/reliability-<variant>.md`, so a CI run leaves the tree clean.
//!
//! Every case records what it observed and each check it made; the table is rewritten after
//! every case, in the fixed order below, so the last case to finish leaves the whole table.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::FutureExt;

use crate::common::report::{git_describe, utc_now, write_markdown};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    Quick,
    Large,
}

/// `CONFRONTA_RELIABILITY=large` selects the large variant; unset (or `quick`) the quick one.
pub fn variant() -> Variant {
    match std::env::var("CONFRONTA_RELIABILITY").as_deref() {
        Ok("large") => Variant::Large,
        Ok("quick") | Ok("") | Err(_) => Variant::Quick,
        Ok(other) => panic!("CONFRONTA_RELIABILITY must be quick or large, not {other:?}"),
    }
}

impl Variant {
    pub fn name(self) -> &'static str {
        match self {
            Variant::Quick => "quick",
            Variant::Large => "large",
        }
    }

    /// Quick value or large value.
    pub fn pick<T>(self, quick: T, large: T) -> T {
        match self {
            Variant::Quick => quick,
            Variant::Large => large,
        }
    }
}

/// The seed of every random choice (file sizes, kill delays); `CONFRONTA_RELIABILITY_SEED`
/// replays a run.
pub fn seed() -> u64 {
    static SEED: OnceLock<u64> = OnceLock::new();
    *SEED.get_or_init(|| match std::env::var("CONFRONTA_RELIABILITY_SEED") {
        Ok(text) => text.parse().expect("CONFRONTA_RELIABILITY_SEED must be a number"),
        Err(_) => SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64 % 1_000_000_007,
    })
}

/// Every case, in table order: (id, case, expected).
pub const CASES: &[(&str, &str, &str)] = &[
    ("kill_before_upload", "kill -9 at `before_upload` (after the `hashed` journal write), restart",
     "the killing file is journaled `hashed` with no object; after the restart every file moved once, bytes and SHA-256 right"),
    ("kill_after_upload", "kill -9 at `after_upload` (the object stored, the entry still `hashed`), restart",
     "the killing file's object holds its bytes, its row is unchanged; after the restart every file moved once"),
    ("kill_before_record", "kill -9 at `before_record` (after `verified`), restart",
     "the killing file is `verified`, its row unchanged, the local file kept; after the restart every file moved once"),
    ("kill_after_record", "kill -9 at `after_record` (after the `recorded` write), restart",
     "the killing file's row points at its object while the local file is still there; the restart removes it, nothing recorded twice"),
    ("kill_before_remove", "kill -9 at `before_remove`, restart",
     "row recorded, local file still there at the kill; the restart removes it"),
    ("kill_after_remove", "kill -9 at `after_remove` (after the unlink, before the `removed` write), restart",
     "row recorded and local file gone at the kill; the restart finishes the entry without touching anything else"),
    ("record_transaction", "kill -9 inside the record step: the row's compare-and-set UPDATE held in PostgreSQL by a row lock, the daemon killed, then (a) its backend terminated (UPDATE rolled back) or (b) the lock released (the UPDATE commits after the daemon died), restart",
     "the record is one statement, so the row is either unchanged or fully recorded; either way the restart ends with the file moved and the row written once"),
    ("kill_random_failpoints", "kill -9 at every failpoint with a probability, restart until drained",
     "every file either moved (object = original bytes, row with the right SHA-256, local gone) or untouched after every kill; all moved at the end"),
    ("kill_random_instants", "SIGKILL from outside at random instants while files keep arriving",
     "0 lost, 0 wrong bytes, 0 referenced objects overwritten, 0 rows pointing at a missing object, objects = files"),
    ("s3_outage", "S3 server stopped for 30 s mid-run, restarted on the same data",
     "daemon stays up, one `service unavailable` and one `service recovered` line, backoff with jitter, everything drained, nothing lost"),
    ("pg_outage_nologin", "PostgreSQL backends terminated and logins refused (`NOLOGIN`) mid-run",
     "daemon stays up, one `service unavailable` and one `service recovered` line, everything drained, nothing lost"),
    ("pg_outage_connection_limit", "PostgreSQL backends terminated and new connections refused (`CONNECTION LIMIT 0`) mid-run",
     "daemon stays up, one `service unavailable` and one `service recovered` line, everything drained, nothing lost"),
    ("locked_row", "one sale's row held by `SELECT … FOR UPDATE` in another transaction while the other files arrive, then released",
     "every other file moves while the lock is held; the locked one is kept, then moves once the lock goes; no `service unavailable` line"),
    ("frozen_peer", "PostgreSQL behind a TCP proxy that stops forwarding (a hung pooler, a paused VM) mid-run, then resumes",
     "the database is marked down within `statement_timeout_ms` + 2 s, the daemon stays up, everything drained after the resume, nothing lost"),
    ("recreated_folder", "the watched folder moved away and made again (`mv confrontas confrontas.old && mkdir confrontas`) while the daemon runs, reconcile passes an hour apart",
     "the daemon logs that it watches the folder again and every file written into the new folder moves without a reconcile pass; nothing lost"),
    ("cluster_node_loss", "replicated cluster (SeaweedFS: master, 3 volume servers keeping 2 copies, filer, S3 gateway; or 3-node garage with replication 3): a storage node killed mid-run",
     "the daemon keeps moving files, nothing lost, every object readable"),
    ("two_daemons_one_folder", "two daemons, one folder (polling, separate journals, one database)",
     "uploads summed over both daemons = files, every row written once"),
    ("two_daemons_two_folders", "two daemons on two folders sharing one database",
     "uploads summed = files, each daemon wrote only its own folder's rows, every row written once"),
    ("journal_lock", "a second daemon pointed at a running daemon's journal",
     "refused with exit code 5, naming the lock; the first daemon keeps working"),
    ("quorum_loss_503", "MinIO loses its quorum mid-run: a front between the daemon and the S3 server answers every request with MinIO's `503 SlowDownWrite` (`SlowDownRead` to a GET or HEAD), for the second half of the window writes with a full drive's `507 XMinioStorageFull`, then forwards again; files keep arriving; shipped timers",
     "the daemon stays up; every failure is transient (retried with backoff, reason `s3_unavailable` and the server's answer logged), no file kept or refused; one `service unavailable` and one `service recovered` line, `confronta_up{s3}` 0 during the window and 1 after; every file moves after the window, each uploaded once, nothing lost"),
    ("slow_walk_watchdog", "a backlog on a slow disk: the start-up walk slowed per entry (`FAILPOINTS=walk_entry=return(ms)`) so that it outlasts systemd's watchdog (`WATCHDOG_USEC`, `NOTIFY_SOCKET`); some backlog files get their rows only after the walk, more files arrive during it; shipped timers",
     "`WATCHDOG=1` keeps arriving throughout the walk (longest gap under `WATCHDOG_USEC`), the first file moves before the walk ends, every file moves, nothing lost"),
    ("panicking_task", "a file's run panics (`FAILPOINTS=before_upload=N*return(panic)`) N times while files arrive; shipped timers",
     "the daemon stays up, `confronta_task_panics_total` = N, each panic logged as contained; every panicked file's row claim is released and the file moves on a retry; every file uploaded once, nothing lost"),
    ("metrics_flood", "2,000 idle TCP connections to `/metrics` (never a byte sent), the daemon under systemd's default `LimitNOFILE` of 1,024, while files arrive; shipped timers",
     "files keep moving, the daemon's descriptors stay bounded (at most `MAX_CONNECTIONS` scrapers held), `/metrics` still answers during the flood, nothing lost"),
    ("power_loss_postgres", "power lost at each pause point (PostgreSQL): kill -9 there, then what the disk was not made to keep taken back (directory entries not fsynced undone, files never fsynced emptied, the journal as of its last fsync; `power_loss_shim.c` records it), restart; and a refused file's quarantine move cut between its two folders' fsyncs",
     "after each power cut the restart moves the file: its row recorded with the original bytes' object, the local copy gone; the refused file is never gone from both folders, and the restart finishes its refusal"),
    ("power_loss_django_sqlite", "the same on Django's SQLite file (rollback-journal mode): its database too as of its last fsync",
     "the same: no record the power cut rolls back after the local file was unlinked"),
];

#[derive(Debug, Clone)]
struct Line {
    observed: Vec<String>,
    failures: Vec<String>,
    seconds: f64,
}

fn results() -> &'static Mutex<BTreeMap<&'static str, Line>> {
    static RESULTS: OnceLock<Mutex<BTreeMap<&'static str, Line>>> = OnceLock::new();
    RESULTS.get_or_init(|| Mutex::new(BTreeMap::new()))
}

fn run_started() -> Instant {
    static STARTED: OnceLock<Instant> = OnceLock::new();
    *STARTED.get_or_init(Instant::now)
}

/// What one case saw and which of its checks failed.
#[derive(Clone)]
pub struct Record {
    id: &'static str,
    inner: Arc<Mutex<(Vec<String>, Vec<String>)>>,
}

impl Record {
    /// A fact for the `observed` column.
    pub fn note(&self, text: impl Into<String>) {
        let text = text.into();
        eprintln!("[{}] {text}", self.id);
        self.inner.lock().unwrap().0.push(text);
    }

    /// A check: when `ok` is false, `what` is listed as a failure and the case fails at its end
    /// (after the table is written), so one run reports every broken invariant, not just the first.
    pub fn check(&self, ok: bool, what: impl Into<String>) -> bool {
        if !ok {
            let what = what.into();
            eprintln!("[{}] FAILED: {what}", self.id);
            self.inner.lock().unwrap().1.push(what);
        }
        ok
    }

    pub fn failed(&self) -> bool {
        !self.inner.lock().unwrap().1.is_empty()
    }
}

/// Runs one case: catches a panic as a failure, writes the table, then fails the test if any
/// check failed.
pub async fn run_case<F, Fut>(id: &'static str, body: F)
where
    F: FnOnce(Record) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    assert!(CASES.iter().any(|(case, ..)| *case == id), "unknown case {id}");
    run_started();
    let record = Record { id, inner: Arc::new(Mutex::new((Vec::new(), Vec::new()))) };
    let started = Instant::now();
    let outcome = AssertUnwindSafe(body(record.clone())).catch_unwind().await;
    if let Err(panic) = &outcome {
        let message = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "panicked".into());
        record.check(false, format!("aborted: {message}"));
    }
    let (observed, failures) = record.inner.lock().unwrap().clone();
    results()
        .lock()
        .unwrap()
        .insert(id, Line { observed, failures: failures.clone(), seconds: started.elapsed().as_secs_f64() });
    write_report();
    if !failures.is_empty() {
        panic!("case {id} failed:\n  - {}", failures.join("\n  - "));
    }
}

/// Where the table goes.
pub fn report_path() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    match std::env::var("CONFRONTA_RELIABILITY_REPORT") {
        Ok(path) if !path.is_empty() => {
            let path = PathBuf::from(path);
            if path.is_absolute() {
                path
            } else {
                root.join(path)
            }
        }
        _ => {
            let target =
                std::env::var("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|_| root.join("target"));
            target.join("reliability").join(format!("reliability-{}.md", variant().name()))
        }
    }
}

/// Where a failed case leaves its logs.
pub fn failure_dir(id: &str) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let target = std::env::var("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|_| root.join("target"));
    target.join("reliability").join("failed").join(id)
}

fn write_report() {
    let results = results().lock().unwrap().clone();
    let variant = variant();
    let command = match variant {
        Variant::Large => "scripts/reliability.sh",
        Variant::Quick => "cargo test --features failpoints --test reliability",
    };
    let passed = results.values().filter(|line| line.failures.is_empty()).count();
    let failed = results.len() - passed;
    let prose = vec![
        "Generated by the reliability harness (`tests/reliability.rs`); do not edit by hand. \
         The quick variant runs with the README's test command (`scripts/test.sh`, i.e. \
         `cargo test --features failpoints`) and writes its table under `target/reliability/`; \
         the large variant is `scripts/reliability.sh`, which writes this file."
            .to_owned(),
        String::new(),
        format!("- variant: **{}** (`{command}`)", variant.name()),
        format!("- finished: {} UTC", utc_now()),
        format!("- commit: {}", git_describe()),
        format!(
            "- machine: {} cores; seed {} (replay with `CONFRONTA_RELIABILITY_SEED={}`)",
            std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            seed(),
            seed()
        ),
        format!(
            "- cases: {passed} passed, {failed} failed, {} not run; wall time so far {}",
            CASES.len() - results.len(),
            format_duration(run_started().elapsed())
        ),
    ];
    let rows: Vec<Vec<String>> = CASES
        .iter()
        .enumerate()
        .map(|(index, (id, case, expected))| {
            let (observed, result) = match results.get(id) {
                None => ("not run in this invocation".to_owned(), "—".to_owned()),
                Some(line) => {
                    let mut observed = line.observed.join("; ");
                    if !line.failures.is_empty() {
                        let _ = write!(observed, "; **FAILED: {}**", line.failures.join("; "));
                    }
                    let result = if line.failures.is_empty() { "pass" } else { "**FAIL**" };
                    (observed, format!("{result} ({:.0} s)", line.seconds))
                }
            };
            vec![(index + 1).to_string(), case.to_string(), expected.to_string(), observed, result]
        })
        .collect();
    write_markdown(
        &report_path(),
        "Reliability",
        &prose,
        &["#", "case", "expected", "observed", "result"],
        &rows,
    );
}

pub fn format_duration(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}
