//! The scheduler: decides when each path is worth a pipeline run, keeps up to
//! `max_in_flight` runs going, retries with backoff, and stops cleanly on shutdown.
//!
//! The daemon (`run`) and the one-shot catch-up (`rescan`) feed the same scheduler and the same
//! pipeline; they differ only in where paths come from and when the loop ends.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tracing::{debug, error, info, warn};

use crate::config::Config;
use crate::media_path::RelativeMediaPath;
use crate::pipeline::{backoff, Failure, Outcome, Pipeline};
use crate::telemetry;
use crate::watch::{walk_each, WatchHint};

/// How many rows a reconcile pass reads at most; the next pass reads the rest.
const RECONCILE_BATCH: i64 = 10_000;
/// Rows read per query when every row with a local file is walked.
const ROW_PAGE: i64 = 1_000;
/// First look again for a row that was not committed yet; it doubles from there. A closed file
/// is taken at once, usually a moment before Django's INSERT commits: the first look must come
/// soon, and the doubling keeps an orphan's lookups to a handful a minute.
const ROW_WAIT_INITIAL: Duration = Duration::from_millis(10);
/// In a one-shot run, a transient failure is retried this many times before it counts.
const ONE_SHOT_ATTEMPTS: u32 = 4;

/// The settings a SIGHUP can change while the daemon runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveSettings {
    pub max_in_flight: usize,
    pub settle: Duration,
    pub retry_initial: Duration,
    pub retry_max: Duration,
    pub reconcile_interval: Duration,
}

impl LiveSettings {
    pub fn of(config: &Config) -> LiveSettings {
        LiveSettings {
            max_in_flight: config.pipeline.max_in_flight,
            settle: config.settle(),
            retry_initial: Duration::from_millis(config.pipeline.retry_initial_ms),
            retry_max: Duration::from_secs(config.pipeline.retry_max_s),
            reconcile_interval: Duration::from_secs(config.watch.reconcile_interval_s.max(1)),
        }
    }
}

/// Counts of what happened, for the rescan summary and `status`.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Summary {
    pub moved: u64,
    pub bytes: u64,
    pub failed: u64,
    pub kept: u64,
    pub orphans: u64,
    pub busy: u64,
    /// Reason label → count, for failures and kept files.
    pub reasons: std::collections::BTreeMap<String, u64>,
    /// Human-readable lines naming each file that did not move and why.
    pub problems: Vec<String>,
}

impl Summary {
    fn count_reason(&mut self, failure: &Failure, path: &RelativeMediaPath) {
        *self.reasons.entry(failure.reason.to_owned()).or_default() += 1;
        self.problems.push(format!("{path}: {}: {}", failure.reason, failure.message));
    }
}

/// Why the scheduler stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stop {
    /// Shutdown was asked for (or the one-shot run finished).
    Finished,
    /// A fatal failure: nothing can move until an operator acts.
    Fatal(Failure),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Daemon,
    OneShot,
}

/// A path handed to a pipeline task, with what the scheduler knows about it.
struct Dispatched {
    path: RelativeMediaPath,
    /// Runs before this one that asked to be retried.
    attempts: u32,
    /// Its writer closed it (see `Pending::closed`); a retry keeps that.
    closed: bool,
}

struct Pending {
    due: Instant,
    attempts: u32,
    /// A transient failure set `due`: hints must not cut the backoff (and its jitter) short, or
    /// every reconcile pass during an outage would retry every waiting file at once.
    backing_off: bool,
    /// inotify saw the writer close the file (or rename it in): it is complete now, with no
    /// settle time to wait out.
    closed: bool,
}

/// Paths waiting for their time, paths in flight, and the tasks running them.
struct Scheduler {
    pipeline: Arc<Pipeline>,
    media_root: PathBuf,
    mode: Mode,
    settings: LiveSettings,
    /// Paths whose last run found no row yet, and paths reported as orphans (for the gauges).
    waiting_for_row: HashSet<RelativeMediaPath>,
    orphans: HashSet<RelativeMediaPath>,
    pending: HashMap<RelativeMediaPath, Pending>,
    timers: BinaryHeap<Reverse<(Instant, RelativeMediaPath)>>,
    in_flight: HashSet<RelativeMediaPath>,
    /// Hints that arrived while the path was in flight: run it again afterwards.
    rerun: HashSet<RelativeMediaPath>,
    tasks: JoinSet<(Dispatched, Outcome)>,
    summary: Summary,
    limit: Option<u64>,
    started: u64,
    /// Shown on a terminal during a rescan; ticks once per finished file.
    progress: Option<indicatif::ProgressBar>,
    /// Set while the journal cannot be written (disk full): no new file is taken before then,
    /// since nothing may happen that the journal has not recorded first.
    journal_blocked_until: Option<Instant>,
}

impl Scheduler {
    fn new(pipeline: Arc<Pipeline>, config: &Config, mode: Mode) -> Scheduler {
        Scheduler {
            pipeline,
            media_root: config.watch.media_root.clone(),
            mode,
            settings: LiveSettings::of(config),
            waiting_for_row: HashSet::new(),
            orphans: HashSet::new(),
            pending: HashMap::new(),
            timers: BinaryHeap::new(),
            in_flight: HashSet::new(),
            rerun: HashSet::new(),
            tasks: JoinSet::new(),
            summary: Summary::default(),
            limit: None,
            started: 0,
            progress: None,
            journal_blocked_until: None,
        }
    }

    /// A hint that `absolute` may be ready (`closed`: its writer closed it or renamed it in).
    /// Paths outside the media root, or that no Django row could name, are logged and left alone.
    fn offer_absolute(&mut self, absolute: &Path, closed: bool) {
        match RelativeMediaPath::from_absolute(&self.media_root, absolute) {
            Ok(path) => self.offer_with(path, closed),
            Err(e) => {
                warn!(path = %absolute.display(), error = %e, "file ignored; it is kept where it is")
            }
        }
    }

    /// Offers a path found without a close event (a walk, a reconcile pass, the journal): it is
    /// taken once its mtime is `settle_ms` old.
    fn offer(&mut self, path: RelativeMediaPath) {
        self.offer_with(path, false);
    }

    fn offer_with(&mut self, path: RelativeMediaPath, closed: bool) {
        if self.in_flight.contains(&path) {
            self.rerun.insert(path);
            return;
        }
        let now = Instant::now();
        let due = if closed { now } else { now + self.settle_remaining(&path) };
        match self.pending.get_mut(&path) {
            Some(pending) if pending.backing_off => {}
            Some(pending) => {
                pending.closed |= closed;
                if due < pending.due {
                    pending.due = due;
                    self.timers.push(Reverse((due, path)));
                }
            }
            None => {
                self.pending.insert(path.clone(), Pending { due, attempts: 0, backing_off: false, closed });
                self.timers.push(Reverse((due, path)));
            }
        }
    }

    /// How long until the file's mtime is `settle` old: a file whose size and mtime held still
    /// that long is complete. Zero for a missing file (the pipeline handles that).
    fn settle_remaining(&self, path: &RelativeMediaPath) -> Duration {
        let absolute = path.to_absolute(&self.media_root);
        let Ok(meta) = std::fs::symlink_metadata(&absolute) else {
            return Duration::ZERO;
        };
        let Ok(modified) = meta.modified() else {
            return self.settings.settle;
        };
        let age = SystemTime::now().duration_since(modified).unwrap_or(Duration::ZERO);
        self.settings.settle.saturating_sub(age)
    }

    /// Schedules another run after `delay`. With `backing_off`, hints cannot bring it forward
    /// (a transient failure); without, they can (waiting for a row, which a hint may announce).
    fn retry_later(&mut self, run: &Dispatched, attempts: u32, delay: Duration, backing_off: bool) {
        let due = Instant::now() + delay;
        let path = run.path.clone();
        self.pending.insert(path.clone(), Pending { due, attempts, backing_off, closed: run.closed });
        self.timers.push(Reverse((due, path)));
    }

    /// Moves due paths to running tasks while there is room.
    fn dispatch_due(&mut self) {
        let now = Instant::now();
        let max_in_flight = self.capacity(now);
        while self.tasks.len() < max_in_flight {
            if self.limit.is_some_and(|limit| self.started >= limit) {
                return;
            }
            let Some(Reverse((due, _))) = self.timers.peek() else {
                return;
            };
            if *due > now {
                return;
            }
            let Reverse((due, path)) = self.timers.pop().expect("peeked");
            // Stale timer: the path was rescheduled or already dispatched.
            let Some(pending) = self.pending.get(&path) else {
                continue;
            };
            if pending.due != due {
                continue;
            }
            // Re-check settling: the file may have been written again since the hint. A file
            // its writer closed is complete; a later write would send another close.
            let remaining = if pending.closed { Duration::ZERO } else { self.settle_remaining(&path) };
            if !remaining.is_zero() {
                let due = now + remaining;
                self.pending.get_mut(&path).expect("present").due = due;
                self.timers.push(Reverse((due, path)));
                continue;
            }
            let Pending { attempts, closed, .. } = self.pending.remove(&path).expect("present");
            self.in_flight.insert(path.clone());
            self.started += 1;
            let pipeline = self.pipeline.clone();
            self.tasks.spawn(async move {
                let outcome = pipeline.process(&path).await;
                (Dispatched { path, attempts, closed }, outcome)
            });
        }
    }

    /// When the next timer fires, if any.
    /// `None` while nothing more can be dispatched (every slot busy, or `--limit` reached): the
    /// next finished task wakes the loop instead. Waking for a timer that cannot be served
    /// would spin the loop on a core (the benchmarks found it doing exactly that).
    fn next_due(&self) -> Option<Instant> {
        let now = Instant::now();
        if let Some(until) = self.journal_blocked_until.filter(|until| now < *until) {
            return self.timers.peek().map(|Reverse((due, _))| (*due).max(until));
        }
        if self.tasks.len() >= self.capacity(now) || self.limit.is_some_and(|l| self.started >= l) {
            return None;
        }
        self.timers.peek().map(|Reverse((due, _))| *due)
    }

    /// How many files may run at once now: `max_in_flight`, or while the journal is broken,
    /// none until the wait is over and then one probe at a time.
    fn capacity(&self, now: Instant) -> usize {
        match self.journal_blocked_until {
            Some(until) if now < until => 0,
            Some(_) => 1,
            None => self.settings.max_in_flight,
        }
    }

    /// Folds one finished run into the schedule; returns a fatal failure if there was one.
    fn finished(&mut self, run: Dispatched, outcome: Outcome) -> Option<Failure> {
        let (path, attempts) = (&run.path, run.attempts);
        self.in_flight.remove(path);
        let one_shot = self.mode == Mode::OneShot;
        self.record_outcome(path, &outcome);
        self.watch_journal(&outcome);
        match outcome {
            Outcome::Moved { bytes, .. } => {
                self.summary.moved += 1;
                self.summary.bytes += bytes;
            }
            Outcome::Nothing => {}
            Outcome::WaitingForRow | Outcome::Orphan if one_shot => {
                self.summary.orphans += 1;
                let failure = Failure::new("no_row", "no row points at this file; it is kept".to_owned());
                self.summary.count_reason(&failure, path);
            }
            Outcome::WaitingForRow => {
                // Django commits the row moments after it saves the file: look again soon, then
                // back off.
                let delay = backoff(attempts, ROW_WAIT_INITIAL, self.settings.retry_max);
                self.retry_later(&run, attempts + 1, delay, false);
            }
            Outcome::Orphan => {
                self.summary.orphans += 1;
                self.retry_later(&run, attempts, self.settings.retry_max, false);
            }
            Outcome::Busy if one_shot => self.summary.busy += 1,
            Outcome::Busy => {
                let delay = backoff(attempts, self.settings.retry_initial, self.settings.retry_max);
                self.retry_later(&run, attempts + 1, delay, true);
            }
            Outcome::Retry(failure) => {
                if one_shot && attempts + 1 >= ONE_SHOT_ATTEMPTS {
                    self.summary.failed += 1;
                    self.summary.count_reason(&failure, path);
                } else {
                    let delay = backoff(attempts, self.settings.retry_initial, self.settings.retry_max);
                    self.retry_later(&run, attempts + 1, delay, true);
                }
            }
            Outcome::Kept(failure) => {
                self.summary.kept += 1;
                self.summary.count_reason(&failure, path);
            }
            Outcome::Fatal(failure) => return Some(failure),
        }
        if self.rerun.remove(path) && !self.pending.contains_key(path) {
            self.offer(run.path);
        }
        None
    }

    /// Stops taking files while journal writes fail, with one loud line when that starts and one
    /// when it ends.
    fn watch_journal(&mut self, outcome: &Outcome) {
        match outcome {
            Outcome::Retry(failure) if failure.reason == "journal" => {
                if self.journal_blocked_until.is_none() {
                    error!(error = %failure.message, "the journal cannot be written (disk full?): no new files are taken and nothing is deleted until it can");
                }
                self.journal_blocked_until =
                    Some(Instant::now() + self.settings.retry_max.min(Duration::from_secs(10)));
            }
            _ if self.journal_blocked_until.is_some() => {
                info!("the journal is writable again; taking files");
                self.journal_blocked_until = None;
            }
            _ => {}
        }
    }

    /// Metrics and the waiting/orphan sets behind the gauges.
    fn record_outcome(&mut self, path: &RelativeMediaPath, outcome: &Outcome) {
        let (label, bytes) = match outcome {
            Outcome::Moved { bytes, .. } => ("moved", *bytes),
            Outcome::Nothing => ("nothing", 0),
            Outcome::WaitingForRow => ("waiting_for_row", 0),
            Outcome::Orphan => ("orphan", 0),
            Outcome::Busy => ("busy", 0),
            Outcome::Retry(_) => ("retry", 0),
            Outcome::Kept(_) => ("kept", 0),
            Outcome::Fatal(_) => ("fatal", 0),
        };
        telemetry::outcome(label, bytes);
        match outcome {
            Outcome::Retry(f) => telemetry::error("transient", f.reason),
            Outcome::Kept(f) => telemetry::error("rejected", f.reason),
            Outcome::Fatal(f) => telemetry::error("fatal", f.reason),
            _ => {}
        }
        if matches!(outcome, Outcome::WaitingForRow) {
            self.waiting_for_row.insert(path.clone());
        } else {
            self.waiting_for_row.remove(path);
        }
        if matches!(outcome, Outcome::Orphan) {
            self.orphans.insert(path.clone());
        } else {
            self.orphans.remove(path);
        }
    }

    /// Updates the gauges and systemd's status line.
    fn report_status(&self) {
        telemetry::gauges(self.tasks.len(), self.waiting_for_row.len(), self.orphans.len());
        crate::signals::notify_systemd(&format!(
            "STATUS=moved {}, in flight {}, waiting for row {}, orphans {}, failed {}",
            self.summary.moved,
            self.tasks.len(),
            self.waiting_for_row.len(),
            self.orphans.len(),
            self.summary.kept
        ));
    }

    fn idle(&self) -> bool {
        self.tasks.is_empty() && (self.pending.is_empty() || self.limit.is_some_and(|l| self.started >= l))
    }

    /// Offers every file under the watched folder.
    fn offer_walk(&mut self, dir: &Path) {
        let mut count = 0u64;
        walk_each(dir, |file| {
            count += 1;
            self.offer_absolute(&file, false);
        });
        debug!(count, folder = %dir.display(), "walked folder");
    }

    /// Offers every path the journal has unfinished work for, and every row still pointing at
    /// a local file: a missed event then costs latency, never a file.
    async fn offer_known_work(&mut self, dir_prefix: &str) {
        match self.pipeline.journal().unfinished().await {
            Ok(entries) => {
                for entry in entries {
                    self.offer(entry.path);
                }
            }
            Err(e) => warn!(error = %e, "cannot read unfinished journal entries"),
        }
        match self.pipeline.db().rows_with_local_file(dir_prefix, i64::MIN, RECONCILE_BATCH).await {
            Ok(rows) => {
                for row in rows {
                    if let Some(Ok(path)) = row.confronta.as_deref().map(RelativeMediaPath::parse) {
                        // symlink_metadata, not exists(): a dangling link or a FIFO must still
                        // get its answer ("not a regular file").
                        if std::fs::symlink_metadata(path.to_absolute(&self.media_root)).is_ok() {
                            self.offer(path);
                        }
                    }
                }
            }
            Err(e) => debug!(error = %e, "reconcile skipped: database unavailable"),
        }
    }

    /// A row that points at a local file which does not exist cannot be moved: report it (the
    /// row is left untouched) so the operator can find the file.
    async fn count_rows_missing_their_file(&mut self, dir_prefix: &str) {
        // Page by id: a backlog's rows are never all in memory at once.
        let mut after_id = i64::MIN;
        loop {
            let rows = match self.pipeline.db().rows_with_local_file(dir_prefix, after_id, ROW_PAGE).await {
                Ok(rows) => rows,
                Err(e) => {
                    warn!(error = %e, "cannot list rows with a local confronta");
                    return;
                }
            };
            let Some(last) = rows.last() else {
                return;
            };
            after_id = last.id;
            self.report_missing_files(rows);
        }
    }

    fn report_missing_files(&mut self, rows: Vec<crate::db::VentaRow>) {
        for row in rows {
            let Some(Ok(path)) = row.confronta.as_deref().map(RelativeMediaPath::parse) else {
                continue;
            };
            if !path.to_absolute(&self.media_root).exists() {
                let failure = Failure::new(
                    "local_file_missing",
                    format!(
                        "venta {} points at a local file that does not exist; row left untouched",
                        row.id
                    ),
                );
                warn!(path = %path, venta_id = row.id, "row points at a missing local file");
                self.summary.failed += 1;
                self.summary.count_reason(&failure, &path);
            }
        }
    }

    /// Waits for the running tasks, at most `limit`; what is still running then is abandoned,
    /// which is safe because every step is journaled before its side effect.
    async fn drain(&mut self, limit: Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        while !self.tasks.is_empty() {
            match tokio::time::timeout_at(deadline, self.tasks.join_next()).await {
                Ok(Some(Ok((run, outcome)))) => {
                    self.finished(run, outcome);
                }
                Ok(Some(Err(e))) => warn!(error = %e, "pipeline task failed"),
                Ok(None) => break,
                Err(_) => {
                    warn!(
                        in_flight = self.tasks.len(),
                        "shutdown timeout reached; in-flight files resume on the next start"
                    );
                    self.tasks.abort_all();
                    break;
                }
            }
        }
    }
}

/// Runs the daemon until `shutdown` turns true. `hints` come from the folder watcher and
/// `overflowed` is raised when it had to drop one.
pub async fn run(
    config: &Config,
    pipeline: Arc<Pipeline>,
    mut hints: mpsc::Receiver<WatchHint>,
    overflowed: Arc<AtomicBool>,
    mut settings: watch::Receiver<LiveSettings>,
    mut shutdown: watch::Receiver<bool>,
) -> (Stop, Summary) {
    let shutdown_timeout = Duration::from_secs(config.service.shutdown_timeout_s);
    let mut scheduler = Scheduler::new(pipeline, config, Mode::Daemon);
    let dir = config.watched_dir();
    let dir_prefix = format!("{}/", config.watch.dir.trim_end_matches('/'));
    scheduler.offer_walk(&dir);
    scheduler.offer_known_work(&dir_prefix).await;
    let mut reconcile = tokio::time::interval(scheduler.settings.reconcile_interval);
    reconcile.tick().await;
    // systemd's watchdog wants a ping at least every WATCHDOG_USEC; the status line rides along.
    let heartbeat_every = crate::signals::watchdog_interval().unwrap_or(Duration::from_secs(5));
    let mut heartbeat = tokio::time::interval(heartbeat_every);
    let watchdog = crate::signals::watchdog_interval().is_some();
    info!(folder = %dir.display(), "watching");

    let stop = loop {
        scheduler.dispatch_due();
        if overflowed.swap(false, Ordering::SeqCst) {
            warn!("watcher events were dropped; walking the folder");
            scheduler.offer_walk(&dir);
        }
        let sleep = sleep_until(scheduler.next_due());
        tokio::select! {
            _ = shutdown.changed() => break Stop::Finished,
            hint = hints.recv() => match hint {
                Some(WatchHint::Closed(path)) => scheduler.offer_absolute(&path, true),
                Some(WatchHint::MaybeComplete(path)) => scheduler.offer_absolute(&path, false),
                Some(WatchHint::Rescan) => {
                    info!("watcher asked for a rescan; walking the folder");
                    scheduler.offer_walk(&dir);
                }
                None => {
                    warn!("folder watcher stopped; relying on reconcile passes");
                    hints = mpsc::channel(1).1;
                }
            },
            Some(joined) = scheduler.tasks.join_next(), if !scheduler.tasks.is_empty() => {
                match joined {
                    Ok((run, outcome)) => {
                        if let Some(failure) = scheduler.finished(run, outcome) {
                            break Stop::Fatal(failure);
                        }
                    }
                    Err(e) => warn!(error = %e, "pipeline task failed"),
                }
            }
            _ = reconcile.tick() => scheduler.offer_known_work(&dir_prefix).await,
            _ = heartbeat.tick() => {
                if watchdog {
                    crate::signals::notify_systemd("WATCHDOG=1");
                }
                scheduler.report_status();
            }
            Ok(()) = settings.changed() => {
                let new = settings.borrow_and_update().clone();
                if new.reconcile_interval != scheduler.settings.reconcile_interval {
                    reconcile = tokio::time::interval(new.reconcile_interval);
                    reconcile.tick().await;
                }
                info!(?new, "live settings applied");
                scheduler.settings = new;
            }
            _ = sleep => {}
        }
    };
    info!(in_flight = scheduler.tasks.len(), "stopping: no new files taken");
    scheduler.drain(shutdown_timeout).await;
    (stop, scheduler.summary)
}

/// Sleeps until `due`, or forever when nothing is scheduled.
async fn sleep_until(due: Option<Instant>) {
    match due {
        Some(due) => tokio::time::sleep_until(due.into()).await,
        None => std::future::pending().await,
    }
}

/// The one-shot catch-up: every file in the folder and every row still pointing at a local
/// file, through the same pipeline, then stop. At most `limit` files are run.
pub async fn rescan(
    config: &Config,
    pipeline: Arc<Pipeline>,
    limit: Option<u64>,
    mut shutdown: watch::Receiver<bool>,
) -> (Stop, Summary) {
    let shutdown_timeout = Duration::from_secs(config.service.shutdown_timeout_s);
    let mut scheduler = Scheduler::new(pipeline, config, Mode::OneShot);
    scheduler.limit = limit;
    let dir_prefix = format!("{}/", config.watch.dir.trim_end_matches('/'));
    scheduler.offer_walk(&config.watched_dir());
    scheduler.offer_known_work(&dir_prefix).await;
    scheduler.count_rows_missing_their_file(&dir_prefix).await;
    let candidates = scheduler.pending.len() as u64;
    info!(candidates, "rescan started");
    if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        let total = limit.map_or(candidates, |l| l.min(candidates));
        let bar = indicatif::ProgressBar::new(total).with_style(
            indicatif::ProgressStyle::with_template(
                "{bar:40} {pos}/{len} files  {elapsed_precise}  eta {eta}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        scheduler.progress = Some(bar);
    }
    let stop = loop {
        scheduler.dispatch_due();
        if scheduler.idle() {
            break Stop::Finished;
        }
        let sleep = sleep_until(scheduler.next_due());
        tokio::select! {
            _ = shutdown.changed() => break Stop::Finished,
            Some(joined) = scheduler.tasks.join_next(), if !scheduler.tasks.is_empty() => {
                match joined {
                    Ok((run, outcome)) => {
                        if let Some(failure) = scheduler.finished(run, outcome) {
                            break Stop::Fatal(failure);
                        }
                    }
                    Err(e) => warn!(error = %e, "pipeline task failed"),
                }
            }
            _ = sleep => {}
        }
    };
    scheduler.drain(shutdown_timeout).await;
    if let Some(progress) = scheduler.progress.take() {
        progress.finish_and_clear();
    }
    (stop, scheduler.summary)
}

/// `--rescan --dry-run`: the files a rescan would take, in path order (at most `limit`), and
/// the rows pointing at a missing local file (in the summary, as in a real rescan). The caller
/// asks `Pipeline::plan` for each file and prints it at once, so a large backlog's plans are
/// never all held in memory.
pub async fn dry_run_candidates(
    config: &Config,
    pipeline: Arc<Pipeline>,
    limit: Option<u64>,
) -> (Vec<RelativeMediaPath>, Summary) {
    let mut scheduler = Scheduler::new(pipeline, config, Mode::OneShot);
    let dir_prefix = format!("{}/", config.watch.dir.trim_end_matches('/'));
    scheduler.offer_walk(&config.watched_dir());
    scheduler.offer_known_work(&dir_prefix).await;
    scheduler.count_rows_missing_their_file(&dir_prefix).await;
    let mut paths: Vec<RelativeMediaPath> = scheduler.pending.into_keys().collect();
    paths.sort();
    paths.truncate(limit.map_or(usize::MAX, |l| l as usize));
    (paths, scheduler.summary)
}
