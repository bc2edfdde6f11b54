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
use crate::error::Reason;
use crate::media_path::RelativeMediaPath;
use crate::pipeline::{backoff, Failure, Outcome, Pipeline};
use crate::telemetry;
use crate::watch::{walk_each, Walk, WatchHint};

/// How many rows a reconcile pass reads at most; the next pass reads on from there.
const RECONCILE_BATCH: i64 = 10_000;
/// Rows read per query when every row with a local file is walked.
const ROW_PAGE: i64 = 1_000;
/// How many paths a rescan keeps pending from its walk at most.
const WALK_WINDOW: usize = 1_024;
/// First look again for a row that was not committed yet; it doubles from there. A closed file
/// is taken at once, usually a moment before Django's INSERT commits: the first look must come
/// soon, and the doubling keeps an orphan's lookups to a handful a minute.
const ROW_WAIT_INITIAL: Duration = Duration::from_millis(10);
/// In a one-shot run, a transient failure is retried this many times before it counts.
const ONE_SHOT_ATTEMPTS: u32 = 4;
/// Lines kept in `Summary::problems`; past them only `problems_omitted` counts, so a daemon
/// that runs for years (or a rescan of a million refused files) holds a bounded list.
const MAX_PROBLEMS: usize = 1_000;

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
    /// Human-readable lines naming each file that did not move and why: the first
    /// `MAX_PROBLEMS` of them.
    pub problems: Vec<String>,
    /// Problems past the first `MAX_PROBLEMS`, counted but not kept.
    pub problems_omitted: u64,
}

impl Summary {
    fn count_reason(&mut self, failure: &Failure, path: &RelativeMediaPath) {
        *self.reasons.entry(failure.reason.as_str().to_owned()).or_default() += 1;
        if self.problems.len() < MAX_PROBLEMS {
            self.problems.push(format!("{path}: {}: {}", failure.reason, failure.message));
        } else {
            self.problems_omitted += 1;
        }
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
pub(crate) enum Mode {
    Daemon,
    OneShot,
}

/// What the scheduler carries from one run of a file to the next.
#[derive(Debug, Clone, Copy, Default)]
struct Carry {
    /// Runs that ended in a transient failure or a busy row: they set the retry backoff.
    attempts: u32,
    /// Runs that found no row yet: they set the (much shorter) wait for Django's INSERT, apart
    /// from `attempts`, so that a slow row does not stretch a later outage's backoff.
    row_waits: u32,
    /// When inotify saw the writer close the file (or rename it in). While the file's mtime is
    /// no later than that, it is complete and waits out no settle time; a write after the close
    /// puts it back under `settle_ms`.
    closed_at: Option<SystemTime>,
    /// A row seen naming the path has already cut a wait for a row short once: a row that is
    /// there but does not own the file (it named the path while the file was missing) must not
    /// bring the file forward on every reconcile pass.
    row_news_spent: bool,
}

/// A path handed to a pipeline task.
struct Dispatched {
    path: RelativeMediaPath,
    carry: Carry,
}

/// What may bring a pending path's run forward, set by the outcome that scheduled it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hold {
    /// Any offer: the path waits only for its settle time.
    Open,
    /// No row pointed at the file (Django's row not committed yet, or an orphan). News about
    /// the file or its row may: a watcher event (the file was written again) always does, a
    /// row seen naming the path does once (`Carry::row_news_spent`). The journal and the
    /// walks only repeat what the last run knew and never do, or every reconcile pass would
    /// run every orphan again, forever.
    Row,
    /// A transient failure: nothing may cut the backoff (and its jitter) short, or every
    /// reconcile pass during an outage would retry every waiting file at once.
    Backoff,
}

/// Where an offer of a path came from, which decides whether it may cut a `Hold` short.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Source {
    /// The journal's unfinished entries, a walk of the folder.
    Known,
    /// A reconcile pass found a row naming the path.
    Row,
    /// The folder watcher saw the file written or renamed in.
    Watcher,
}

pub(crate) struct Pending {
    due: Instant,
    hold: Hold,
    carry: Carry,
}

/// Paths waiting for their time, paths in flight, and the tasks running them.
pub(crate) struct Scheduler {
    pipeline: Arc<Pipeline>,
    pub(crate) media_root: PathBuf,
    mode: Mode,
    settings: LiveSettings,
    /// Paths whose last run found no row yet, and paths reported as orphans (for the gauges).
    waiting_for_row: HashSet<RelativeMediaPath>,
    orphans: HashSet<RelativeMediaPath>,
    pub(crate) pending: HashMap<RelativeMediaPath, Pending>,
    timers: BinaryHeap<Reverse<(Instant, RelativeMediaPath)>>,
    /// Paths being run, with when each became due (for `oldest_due`).
    in_flight: HashMap<RelativeMediaPath, Instant>,
    /// Offers that arrived while the path was in flight, by their strongest source: offered
    /// again afterwards.
    rerun: HashMap<RelativeMediaPath, Source>,
    tasks: JoinSet<(Dispatched, Outcome)>,
    pub(crate) summary: Summary,
    limit: Option<u64>,
    started: u64,
    /// Shown on a terminal during a rescan; ticks once per finished file.
    progress: Option<indicatif::ProgressBar>,
    /// Set while the journal cannot be written (disk full): no new file is taken before then,
    /// since nothing may happen that the journal has not recorded first.
    journal_blocked_until: Option<Instant>,
    /// The rescan's walk of the folder, while it has files left to offer.
    walk: Option<Walk>,
    /// Where the next reconcile pass starts: the last row id the previous one read, or
    /// `i64::MIN` to start over once a pass reached the end.
    reconcile_after_id: i64,
    /// Files whose mtime is ahead of the wall clock, with that mtime and when it was first seen
    /// on the monotonic clock (see `settle_left`). Kept across retries, so a file waiting for
    /// its row is logged and settled once; left when the file is gone or its mtime is past, and
    /// pruned to the files still pending or in flight as it grows.
    future_mtimes: HashMap<RelativeMediaPath, (SystemTime, Instant)>,
}

impl Scheduler {
    pub(crate) fn new(pipeline: Arc<Pipeline>, config: &Config, mode: Mode) -> Scheduler {
        Scheduler {
            pipeline,
            media_root: config.watch.media_root.clone(),
            mode,
            settings: LiveSettings::of(config),
            waiting_for_row: HashSet::new(),
            orphans: HashSet::new(),
            pending: HashMap::new(),
            timers: BinaryHeap::new(),
            in_flight: HashMap::new(),
            rerun: HashMap::new(),
            tasks: JoinSet::new(),
            summary: Summary::default(),
            limit: None,
            started: 0,
            progress: None,
            journal_blocked_until: None,
            reconcile_after_id: i64::MIN,
            walk: None,
            future_mtimes: HashMap::new(),
        }
    }

    /// A watcher's hint that `absolute` may be ready (`closed`: its writer closed it or renamed
    /// it in).
    fn offer_absolute(&mut self, absolute: &Path, closed: bool) {
        if let Some(path) = media_path_or_warn(&self.media_root, absolute) {
            self.offer_with(path, closed, Source::Watcher);
        }
    }

    /// A file a walk of the folder found.
    fn offer_found(&mut self, absolute: &Path) {
        if let Some(path) = media_path_or_warn(&self.media_root, absolute) {
            self.offer_with(path, false, Source::Known);
        }
    }

    /// Offers a path found without a close event (a walk, the journal): it is taken once its
    /// mtime is `settle_ms` old.
    fn offer(&mut self, path: RelativeMediaPath) {
        self.offer_with(path, false, Source::Known);
    }

    /// Offers a path a row names (a reconcile pass): news for a file that waits for its row.
    fn offer_row(&mut self, path: RelativeMediaPath) {
        self.offer_with(path, false, Source::Row);
    }

    fn offer_with(&mut self, path: RelativeMediaPath, closed: bool, source: Source) {
        if self.in_flight.contains_key(&path) {
            let strongest = self.rerun.entry(path).or_insert(source);
            *strongest = (*strongest).max(source);
            return;
        }
        let closed_at = closed.then(SystemTime::now);
        match self.pending.get_mut(&path) {
            Some(pending) if !may_cut_short(pending, source) => {}
            Some(pending) => {
                let closed_at = closed_at.or(pending.carry.closed_at);
                pending.carry.closed_at = closed_at;
                let due = Instant::now() + self.settle_remaining(&path, closed_at);
                let pending = self.pending.get_mut(&path).expect("present");
                if due < pending.due {
                    pending.due = due;
                    pending.carry.row_news_spent |= pending.hold == Hold::Row && source == Source::Row;
                    self.timers.push(Reverse((due, path)));
                }
            }
            None => {
                let carry = Carry { closed_at, ..Carry::default() };
                let due = Instant::now() + self.settle_remaining(&path, closed_at);
                self.pending.insert(path.clone(), Pending { due, hold: Hold::Open, carry });
                self.timers.push(Reverse((due, path)));
            }
        }
    }

    /// How long until the file's mtime is `settle` old: a file whose size and mtime held still
    /// that long is complete. Zero for a missing file (the pipeline handles that), and for a
    /// file not written since its writer closed it at `closed_at`.
    fn settle_remaining(&mut self, path: &RelativeMediaPath, closed_at: Option<SystemTime>) -> Duration {
        let absolute = path.to_absolute(&self.media_root);
        let Ok(meta) = std::fs::symlink_metadata(&absolute) else {
            self.future_mtimes.remove(path);
            return Duration::ZERO;
        };
        let Ok(modified) = meta.modified() else {
            return self.settings.settle;
        };
        let now = SystemTime::now();
        let held_since = match modified.duration_since(now) {
            Ok(ahead) => Some(self.future_mtime_seen(path, modified, ahead)),
            Err(_) => {
                self.future_mtimes.remove(path);
                None
            }
        };
        settle_left(modified, now, self.settings.settle, closed_at, held_since.map(|seen| seen.elapsed()))
    }

    /// When `path` was first seen with the future mtime `modified` (now, if this is the first
    /// time), logged once per file and mtime.
    fn future_mtime_seen(
        &mut self,
        path: &RelativeMediaPath,
        modified: SystemTime,
        ahead: Duration,
    ) -> Instant {
        match self.future_mtimes.get(path) {
            Some((mtime, seen)) if *mtime == modified => *seen,
            _ => {
                // Sub-second skew is an NFS server's clock, not worth a warning per file.
                if ahead >= Duration::from_secs(1) {
                    warn!(path = %path, ahead_s = ahead.as_secs(), settle_ms = self.settings.settle.as_millis() as u64, "the file's mtime is in the future (a clock stepped back, or a copy kept its source's time); it is taken once it holds still for settle_ms, measured from now");
                } else {
                    debug!(path = %path, ahead_ms = ahead.as_millis() as u64, "the file's mtime is in the future; settle_ms is measured from now");
                }
                let seen = Instant::now();
                self.future_mtimes.insert(path.clone(), (modified, seen));
                // Moved files are never looked at again: prune them at each doubling, which
                // keeps the map to about twice what is pending at amortised constant cost.
                let len = self.future_mtimes.len();
                if len >= 1024 && len.is_power_of_two() {
                    // `path` itself may not be pending yet (a first offer asks before it is).
                    let (pending, in_flight) = (&self.pending, &self.in_flight);
                    self.future_mtimes.retain(|kept, _| {
                        kept == path || pending.contains_key(kept) || in_flight.contains_key(kept)
                    });
                }
                seen
            }
        }
    }

    /// Schedules another run after `delay`; `hold` says which offers may bring it forward.
    fn retry_later(&mut self, path: RelativeMediaPath, carry: Carry, delay: Duration, hold: Hold) {
        let due = Instant::now() + delay;
        self.pending.insert(path.clone(), Pending { due, hold, carry });
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
            // Re-check settling: the file may have been written again since the hint.
            let closed_at = pending.carry.closed_at;
            let remaining = self.settle_remaining(&path, closed_at);
            if !remaining.is_zero() {
                let due = now + remaining;
                self.pending.get_mut(&path).expect("present").due = due;
                self.timers.push(Reverse((due, path)));
                continue;
            }
            let carry = self.pending.remove(&path).expect("present").carry;
            self.in_flight.insert(path.clone(), due);
            self.started += 1;
            let pipeline = self.pipeline.clone();
            self.tasks.spawn(async move {
                let outcome = pipeline.process(&path).await;
                (Dispatched { path, carry }, outcome)
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
        let Dispatched { path, mut carry } = run;
        let path = &path;
        let attempts = carry.attempts;
        self.in_flight.remove(path);
        telemetry::progressed();
        let one_shot = self.mode == Mode::OneShot;
        self.record_outcome(path, &outcome);
        self.watch_journal(&outcome);
        match outcome {
            Outcome::Moved { bytes, .. } => {
                self.summary.moved += 1;
                self.summary.bytes += bytes;
                telemetry::moved_now();
            }
            Outcome::Nothing => {}
            Outcome::WaitingForRow | Outcome::Orphan if one_shot => {
                self.summary.orphans += 1;
                let failure =
                    Failure::new(Reason::NoRow, "no row points at this file; it is kept".to_owned());
                self.summary.count_reason(&failure, path);
            }
            Outcome::WaitingForRow => {
                // Django commits the row moments after it saves the file: look again soon, then
                // back off.
                let delay = backoff(carry.row_waits, ROW_WAIT_INITIAL, self.settings.retry_max);
                carry.row_waits += 1;
                self.retry_later(path.clone(), carry, delay, Hold::Row);
            }
            Outcome::Orphan => {
                // Waited `orphan_after_s` already: look again only every `retry_max` (jittered,
                // so that thousands of orphans found together do not run together forever).
                self.summary.orphans += 1;
                let delay = backoff(0, self.settings.retry_max, self.settings.retry_max);
                self.retry_later(path.clone(), carry, delay, Hold::Row);
            }
            Outcome::Busy if one_shot => self.summary.busy += 1,
            Outcome::Busy => {
                let delay = backoff(attempts, self.settings.retry_initial, self.settings.retry_max);
                carry.attempts += 1;
                self.retry_later(path.clone(), carry, delay, Hold::Backoff);
            }
            Outcome::Retry(failure) => {
                if one_shot && attempts + 1 >= ONE_SHOT_ATTEMPTS {
                    self.summary.failed += 1;
                    self.summary.count_reason(&failure, path);
                } else {
                    let delay = backoff(attempts, self.settings.retry_initial, self.settings.retry_max);
                    carry.attempts += 1;
                    self.retry_later(path.clone(), carry, delay, Hold::Backoff);
                }
            }
            Outcome::Kept(failure) => {
                self.summary.kept += 1;
                self.summary.count_reason(&failure, path);
            }
            Outcome::Fatal(failure) => return Some(failure),
        }
        if let Some(source) = self.rerun.remove(path) {
            self.offer_with(path.clone(), false, source);
        }
        None
    }

    /// Stops taking files while journal writes fail, with one loud line when that starts and one
    /// when it ends.
    fn watch_journal(&mut self, outcome: &Outcome) {
        match outcome {
            Outcome::Retry(failure @ Failure { reason: Reason::Journal, .. }) => {
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
            Outcome::Retry(f) => telemetry::error("transient", f.reason.as_str()),
            Outcome::Kept(f) => telemetry::error("rejected", f.reason.as_str()),
            Outcome::Fatal(f) => telemetry::error("fatal", f.reason.as_str()),
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

    /// When the oldest due file became due: the earliest due time among the paths waiting for
    /// a slot and the paths in flight. Files waiting out a backoff or a settle time are not due.
    /// Stale timers met at the top of the heap are dropped on the way (`dispatch_due` would).
    fn oldest_due(&mut self, now: Instant) -> Option<Instant> {
        while let Some(Reverse((due, path))) = self.timers.peek() {
            if self.pending.get(path).is_some_and(|pending| pending.due == *due) {
                break;
            }
            self.timers.pop();
        }
        let waiting = self.timers.peek().map(|Reverse((due, _))| *due).filter(|due| *due <= now);
        self.in_flight.values().copied().chain(waiting).min()
    }

    /// Sets the progress gauge and says whether files progress (`progressing`). While the
    /// journal cannot be written no file may progress, and that is already said loudly: a
    /// watchdog restart would not help, so the watchdog is still fed.
    fn check_progress(&mut self, stall: Duration) -> bool {
        let now = Instant::now();
        let oldest = self.oldest_due(now);
        telemetry::oldest_pending(
            oldest.map_or(Duration::ZERO, |since| now.saturating_duration_since(since)),
        );
        self.journal_blocked_until.is_some() || progressing(now, oldest, telemetry::last_progress(), stall)
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
        self.tasks.is_empty()
            && ((self.pending.is_empty() && self.walk.is_none())
                || self.limit.is_some_and(|l| self.started >= l))
    }

    /// Offers files from the rescan's walk until `WALK_WINDOW` paths are pending: enough to
    /// keep every slot busy, never the whole backlog at once.
    fn refill_from_walk(&mut self) {
        while self.pending.len() < WALK_WINDOW {
            let Some(file) = self.walk.as_mut().and_then(Iterator::next) else {
                self.walk = None;
                return;
            };
            self.offer_found(&file);
        }
    }

    /// Offers every file under the watched folder.
    fn offer_walk(&mut self, dir: &Path) {
        let mut count = 0u64;
        walk_each(dir, |file| {
            count += 1;
            self.offer_found(&file);
        });
        debug!(count, folder = %dir.display(), "walked folder");
    }

    /// Offers every path the journal has unfinished work for, and every row still pointing at
    /// a local file: a missed event then costs latency, never a file. Awaited here by the
    /// one-shot runs; the daemon runs the same pass as a task of its own (`spawn_reconcile`).
    pub(crate) async fn offer_known_work(&mut self, dir_prefix: &str) {
        let work = known_work(
            self.pipeline.clone(),
            self.media_root.clone(),
            dir_prefix.to_owned(),
            self.reconcile_after_id,
        )
        .await;
        self.take_known_work(work);
    }

    /// Starts a reconcile pass off the scheduler loop: it waits on the database (on its own
    /// connection) and the journal while the loop keeps dispatching, reporting and listening.
    fn spawn_reconcile(&self, dir_prefix: &str) -> tokio::task::JoinHandle<KnownWork> {
        tokio::spawn(known_work(
            self.pipeline.clone(),
            self.media_root.clone(),
            dir_prefix.to_owned(),
            self.reconcile_after_id,
        ))
    }

    fn take_known_work(&mut self, work: KnownWork) {
        self.reconcile_after_id = work.next_after_id;
        for path in work.unfinished {
            self.offer(path);
        }
        for path in work.rows {
            self.offer_row(path);
        }
    }

    /// See the free function `remember_missing`, which the reconcile task calls too.
    async fn remember_missing(&self, path: &RelativeMediaPath, row: &crate::db::VentaRow) {
        remember_missing(&self.pipeline, path, row).await;
    }

    /// A row that points at a local file which does not exist cannot be moved: report it (the
    /// row is left untouched) so the operator can find the file.
    pub(crate) async fn count_rows_missing_their_file(&mut self, dir_prefix: &str) {
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
            self.report_missing_files(rows).await;
        }
    }

    async fn report_missing_files(&mut self, rows: Vec<crate::db::VentaRow>) {
        for row in rows {
            let Some(Ok(path)) = row.confronta.as_deref().map(RelativeMediaPath::parse) else {
                continue;
            };
            if !path.to_absolute(&self.media_root).exists() {
                let failure = Failure::new(
                    Reason::LocalFileMissing,
                    format!(
                        "venta {} points at a local file that does not exist; row left untouched",
                        row.id
                    ),
                );
                warn!(path = %path, venta_id = row.id, "row points at a missing local file");
                self.remember_missing(&path, &row).await;
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

/// What one reconcile pass found.
struct KnownWork {
    /// Paths of unfinished journal entries.
    unfinished: Vec<RelativeMediaPath>,
    /// Files that exist at the paths rows name: news for a file waiting for its row.
    rows: Vec<RelativeMediaPath>,
    /// Where the next pass starts (see `Scheduler::reconcile_after_id`).
    next_after_id: i64,
}

/// One reconcile pass: the journal's unfinished entries and one page of rows still pointing
/// at a local file, from `after_id` on. A row whose file is missing is noted in the journal.
async fn known_work(
    pipeline: Arc<Pipeline>,
    media_root: PathBuf,
    dir_prefix: String,
    after_id: i64,
) -> KnownWork {
    let mut work = KnownWork { unfinished: Vec::new(), rows: Vec::new(), next_after_id: after_id };
    match pipeline.journal().unfinished().await {
        Ok(entries) => work.unfinished.extend(entries.into_iter().map(|entry| entry.path)),
        Err(e) => warn!(error = %e, "cannot read unfinished journal entries"),
    }
    match pipeline.db().rows_with_local_file(&dir_prefix, after_id, RECONCILE_BATCH).await {
        Ok(rows) => {
            // A full page means there may be more: the next pass reads on, so a large
            // stuck backlog at low ids cannot hide the rows after it.
            work.next_after_id = match rows.last() {
                Some(last) if rows.len() as i64 >= RECONCILE_BATCH => last.id,
                _ => i64::MIN,
            };
            for row in rows {
                if let Some(Ok(path)) = row.confronta.as_deref().map(RelativeMediaPath::parse) {
                    // symlink_metadata, not exists(): a dangling link or a FIFO must still
                    // get its answer ("not a regular file").
                    if std::fs::symlink_metadata(path.to_absolute(&media_root)).is_ok() {
                        work.rows.push(path);
                    } else {
                        remember_missing(&pipeline, &path, &row).await;
                    }
                }
            }
        }
        Err(e) => debug!(error = %e, "reconcile skipped: database unavailable"),
    }
    work
}

/// Remembers (in the journal) that `row` names `path` while no file is there, so that a file
/// Django later saves under the same free name is not matched to this row unless the row is
/// written again. Logged once per row and path.
async fn remember_missing(pipeline: &Pipeline, path: &RelativeMediaPath, row: &crate::db::VentaRow) {
    match pipeline.journal().note_missing(path, row.id, row.version.clone()).await {
        Ok(true) => warn!(
            path = %path,
            venta_id = row.id,
            "row points at a missing local file; a new file at this path will not be matched to it unless the row is saved again"
        ),
        Ok(false) => {}
        Err(e) => {
            warn!(path = %path, venta_id = row.id, error = %e, "cannot note the missing file in the journal")
        }
    }
}

/// A ticking interval whose first tick is one `period` away. A tick missed while the loop was
/// busy is delayed, never run back to back with the next.
fn every(period: Duration) -> tokio::time::Interval {
    let mut interval = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    interval
}

/// Waits for the running reconcile pass; only polled while there is one.
async fn reconcile_finished(
    pass: &mut Option<tokio::task::JoinHandle<KnownWork>>,
) -> Result<KnownWork, tokio::task::JoinError> {
    match pass.as_mut() {
        Some(handle) => handle.await,
        None => std::future::pending().await,
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
    // At most one reconcile pass runs at a time, as a task: a slow or hung database delays the
    // pass, never the loop (dispatch, STATUS, SIGTERM).
    let mut reconcile_pass = Some(scheduler.spawn_reconcile(&dir_prefix));
    let mut reconcile = every(scheduler.settings.reconcile_interval);
    // systemd's watchdog wants a ping at least every WATCHDOG_USEC, but only while files
    // progress: a loop that spins while nothing moves must not keep it fed. The status line
    // and the progress gauges ride along.
    let heartbeat_every = crate::signals::watchdog_interval().unwrap_or(Duration::from_secs(5));
    let mut heartbeat = tokio::time::interval(heartbeat_every);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let watchdog = crate::signals::watchdog_interval().is_some();
    let stall = Duration::from_secs(config.service.stall_timeout_s);
    let mut stalled = false;
    telemetry::progressed();
    info!(folder = %dir.display(), "watching");
    let mut watcher_restarts = WatcherRestarts::default();

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
                    hints = restart_watcher(config, &overflowed, &mut watcher_restarts);
                    // Files written while no watcher ran sent no event.
                    scheduler.offer_walk(&dir);
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
            _ = reconcile.tick() => {
                if reconcile_pass.is_none() {
                    reconcile_pass = Some(scheduler.spawn_reconcile(&dir_prefix));
                } else {
                    debug!("the last reconcile pass is still running; this one is skipped");
                }
            }
            joined = reconcile_finished(&mut reconcile_pass), if reconcile_pass.is_some() => {
                reconcile_pass = None;
                match joined {
                    Ok(work) => scheduler.take_known_work(work),
                    Err(e) => warn!(error = %e, "reconcile pass failed"),
                }
            }
            _ = heartbeat.tick() => {
                if scheduler.check_progress(stall) {
                    if watchdog {
                        crate::signals::notify_systemd("WATCHDOG=1");
                    }
                    if std::mem::take(&mut stalled) {
                        info!("files progress again");
                    }
                } else if !std::mem::replace(&mut stalled, true) {
                    error!(
                        stall_timeout_s = stall.as_secs(),
                        watchdog,
                        "files are due but nothing has progressed for service.stall_timeout_s; systemd's watchdog is no longer fed"
                    );
                }
                scheduler.report_status();
            }
            Ok(()) = settings.changed() => {
                let new = settings.borrow_and_update().clone();
                if new.reconcile_interval != scheduler.settings.reconcile_interval {
                    reconcile = every(new.reconcile_interval);
                }
                info!(?new, "live settings applied");
                scheduler.settings = new;
            }
            _ = sleep => {}
        }
    };
    if let Some(pass) = reconcile_pass.take() {
        // It only reads, and notes missing files in the journal: the next start runs it again.
        pass.abort();
    }
    info!(in_flight = scheduler.tasks.len(), "stopping: no new files taken");
    scheduler.drain(shutdown_timeout).await;
    (stop, scheduler.summary)
}

/// At most one new folder watcher this often: one that dies at once must not spin the loop.
const WATCHER_RESTART_EVERY: Duration = Duration::from_secs(60);

/// The folder watchers the loop started after the first one ended, and when it last did.
#[derive(Default)]
struct WatcherRestarts {
    last: Option<Instant>,
    _current: Option<crate::watch::FolderWatcher>,
}

/// The hints channel closed: the watcher's thread ended, which it never does on its own (it
/// follows the folder through removals and remounts), so it panicked. A new watcher is started
/// at once, then at most once a minute. Until one runs, the returned channel stays open and
/// silent, and closes when the next start is due, which brings the loop back here: it is never
/// polled closed, which made a busy loop of the loop. Meanwhile files with a row move at the
/// reconcile passes.
fn restart_watcher(
    config: &Config,
    overflowed: &Arc<AtomicBool>,
    restarts: &mut WatcherRestarts,
) -> mpsc::Receiver<WatchHint> {
    let (sender, receiver) = mpsc::channel(crate::watch::HINT_QUEUE);
    let dir = config.watched_dir();
    let wait =
        restarts.last.map_or(Duration::ZERO, |last| WATCHER_RESTART_EVERY.saturating_sub(last.elapsed()));
    if wait.is_zero() {
        restarts.last = Some(Instant::now());
        let poll = config.watch.poll_interval_ms.map(Duration::from_millis);
        match crate::watch::watch(&dir, sender.clone(), overflowed.clone(), poll) {
            Ok(watcher) => {
                warn!(folder = %dir.display(), "folder watcher stopped; started a new one and walking the folder");
                restarts._current = Some(watcher);
                return receiver;
            }
            Err(e) => {
                error!(folder = %dir.display(), error = %e, "folder watcher stopped and cannot be started again; trying again in a minute, files with a row move at reconcile passes meanwhile")
            }
        }
    } else {
        error!(folder = %dir.display(), "folder watcher stopped again within a minute; starting a new one in {}s, files with a row move at reconcile passes meanwhile", wait.as_secs());
    }
    let wait = if wait.is_zero() { WATCHER_RESTART_EVERY } else { wait };
    tokio::spawn(async move {
        tokio::time::sleep(wait).await;
        drop(sender);
    });
    receiver
}

/// Whether files progress, given when the oldest due file became due (`None`: none is) and
/// when anything last progressed: nothing may have been due for over `stall` with no progress
/// since. A backlog's oldest file may wait for a slot for hours while others finish, which is
/// progress; a hung peer that holds every slot while nothing finishes is not.
fn progressing(now: Instant, oldest_due: Option<Instant>, last_progress: Instant, stall: Duration) -> bool {
    match oldest_due {
        None => true,
        Some(since) => now.saturating_duration_since(since.max(last_progress)) <= stall,
    }
}

/// Whether an offer from `source` may bring `pending`'s run forward (see `Hold`).
fn may_cut_short(pending: &Pending, source: Source) -> bool {
    match (pending.hold, source) {
        (Hold::Open, _) | (Hold::Row, Source::Watcher) => true,
        (Hold::Row, Source::Row) => !pending.carry.row_news_spent,
        (Hold::Row, Source::Known) | (Hold::Backoff, _) => false,
    }
}

/// The path of `absolute` under the media root. A path outside it, or one that no Django row
/// could name, is logged and left alone.
pub(crate) fn media_path_or_warn(media_root: &Path, absolute: &Path) -> Option<RelativeMediaPath> {
    RelativeMediaPath::from_absolute(media_root, absolute)
        .map_err(|e| warn!(path = %absolute.display(), error = %e, "file ignored; it is kept where it is"))
        .ok()
}

/// The settle time left for a file last modified at `modified`: none if its writer closed it
/// at `closed_at` and it has not been written since, else what remains of `settle` since the
/// last write.
///
/// An mtime ahead of `now` (a clock stepped back, a copy that kept its source's time) says
/// nothing about when writing stopped, and waiting for the wall clock to reach it stalled such a
/// file for as long as it is ahead. Its settle time is measured instead on the monotonic clock:
/// `held` is how long the file has been seen with that same mtime.
fn settle_left(
    modified: SystemTime,
    now: SystemTime,
    settle: Duration,
    closed_at: Option<SystemTime>,
    held: Option<Duration>,
) -> Duration {
    if closed_at.is_some_and(|closed| modified <= closed) {
        return Duration::ZERO;
    }
    let age = match now.duration_since(modified) {
        Ok(age) => age,
        Err(_) => held.unwrap_or(Duration::ZERO),
    };
    settle.saturating_sub(age)
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
    scheduler.offer_known_work(&dir_prefix).await;
    scheduler.count_rows_missing_their_file(&dir_prefix).await;
    // The walk is taken a window at a time (`refill_from_walk`); a first pass only counts, for
    // the log and the progress bar. Known work whose file is gone (journal entries to finish)
    // is counted on top, since the walk cannot list it.
    let dir = config.watched_dir();
    let files = Walk::new(&dir).count() as u64;
    let media_root = &scheduler.media_root;
    let without_file =
        scheduler.pending.keys().filter(|path| !path.to_absolute(media_root).exists()).count() as u64;
    let candidates = files + without_file;
    scheduler.walk = Some(Walk::new(&dir));
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
        scheduler.refill_from_walk();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_closed_and_not_written_since_needs_no_settle_time() {
        let settle = Duration::from_millis(500);
        let written = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let now = written + Duration::from_millis(100);
        let closed = written + Duration::from_millis(1);
        assert_eq!(settle_left(written, now, settle, Some(closed), None), Duration::ZERO);
        // Without a close, 400 ms of the 500 are left.
        assert_eq!(settle_left(written, now, settle, None, None), Duration::from_millis(400));
        // Written again after the close: settling applies again, from the new write.
        let rewritten = closed + Duration::from_millis(50);
        assert_eq!(settle_left(rewritten, now, settle, Some(closed), None), Duration::from_millis(451));
        // An old file is settled whatever else is known.
        assert_eq!(settle_left(written, written + settle * 2, settle, None, None), Duration::ZERO);
    }

    /// Issue 17, item 6: a file ten minutes in the future waited ten minutes; it now waits
    /// `settle` from when it was first seen so, whatever the wall clock says.
    #[test]
    fn a_future_mtime_settles_on_the_monotonic_clock() {
        let settle = Duration::from_millis(500);
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let future = now + Duration::from_secs(600);
        assert_eq!(settle_left(future, now, settle, None, Some(Duration::ZERO)), settle);
        assert_eq!(
            settle_left(future, now, settle, None, Some(Duration::from_millis(300))),
            Duration::from_millis(200)
        );
        assert_eq!(settle_left(future, now, settle, None, Some(settle)), Duration::ZERO);
        // A close before the future mtime was set does not count as the end of writing.
        assert_eq!(
            settle_left(future, now, settle, Some(now), Some(Duration::from_millis(100))),
            Duration::from_millis(400)
        );
    }

    /// Issue 17 item 8: the watchdog used to be fed whenever the loop turned, files moving or
    /// not. A fake clock: `start` plus seconds.
    #[test]
    fn the_watchdog_is_fed_only_while_due_files_progress() {
        let start = Instant::now();
        let at = |s: u64| start + Duration::from_secs(s);
        let stall = Duration::from_secs(60);
        let check = |now: u64, oldest_due: Option<u64>, last_progress: u64| {
            progressing(at(now), oldest_due.map(at), at(last_progress), stall)
        };
        // Nothing due: nothing can be stuck, however long nothing happened.
        assert!(check(10_000, None, 0));
        // Due for 30 s with no progress since: within the bound.
        assert!(check(130, Some(100), 0));
        // Due for 61 s with no progress since: stalled.
        assert!(!check(161, Some(100), 0));
        // Due for an hour (a backlog's oldest file waits for a slot) while others finish: fine.
        assert!(check(3_700, Some(100), 3_650));
        // ... until nothing has finished for over the bound.
        assert!(!check(3_711, Some(100), 3_650));
        // Progress before the file became due says nothing about it.
        assert!(!check(1_061, Some(1_000), 999));
    }

    fn pending(hold: Hold) -> Pending {
        Pending { due: Instant::now(), hold, carry: Carry::default() }
    }

    /// Issue 17 item 3: orphans and files waiting for their row used to be brought forward by
    /// every offer, so each reconcile pass (which offers every unfinished journal entry) ran
    /// them all again.
    #[test]
    fn only_news_of_the_file_or_its_row_cuts_a_wait_for_a_row_short() {
        let waiting = pending(Hold::Row);
        assert!(!may_cut_short(&waiting, Source::Known), "the journal and walks repeat old news");
        assert!(may_cut_short(&waiting, Source::Watcher), "the file was written again");
        assert!(may_cut_short(&waiting, Source::Row), "a row names the file now");
        let mut spent = pending(Hold::Row);
        spent.carry.row_news_spent = true;
        assert!(!may_cut_short(&spent, Source::Row), "a row that did not own the file, seen again");
        assert!(may_cut_short(&spent, Source::Watcher));
        for source in [Source::Known, Source::Row, Source::Watcher] {
            assert!(!may_cut_short(&pending(Hold::Backoff), source), "{source:?} cut a backoff short");
            assert!(may_cut_short(&pending(Hold::Open), source), "{source:?}");
        }
    }

    #[test]
    fn the_problem_list_is_bounded() {
        let mut summary = Summary::default();
        let path = RelativeMediaPath::parse("confrontas/a.pdf").unwrap();
        for _ in 0..MAX_PROBLEMS + 5 {
            summary.count_reason(&Failure::new(Reason::DbRefused, "permission denied"), &path);
        }
        assert_eq!(summary.problems.len(), MAX_PROBLEMS);
        assert_eq!(summary.problems_omitted, 5);
        assert_eq!(summary.reasons["db_refused"], MAX_PROBLEMS as u64 + 5);
    }
}
