//! The scheduler core: pending paths and their timers, `max_in_flight`, what each outcome
//! schedules next (`Hold`), the journal block, the progress that feeds the watchdog, and the
//! shutdown drain. It has one door, `Scheduler::take`, for the `Offer`s its producers
//! (`sources`) send on one channel; the driver loop (`super::drive`) asks it what is due and
//! hands its `Event`s to the observers (`observers`). When a file is complete is `settle`.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::task::{JoinError, JoinSet};
use tracing::{debug, error, info, warn};

use super::settle::FutureMtimes;
use super::summary::Summary;
use crate::config::{Config, LiveSettings};
use crate::error::Reason;
use crate::media_path::RelativeMediaPath;
use crate::pipeline::{backoff, Failure, Outcome, Pipeline};
use crate::telemetry;

/// First look again for a row that was not committed yet; it doubles from there. A closed file
/// is taken at once, usually a moment before Django's INSERT commits: the first look must come
/// soon, and the doubling keeps an orphan's lookups to a handful a minute.
const ROW_WAIT_INITIAL: Duration = Duration::from_millis(10);
/// In a one-shot run, a transient failure is retried this many times before it counts.
const ONE_SHOT_ATTEMPTS: u32 = 4;

/// The daemon, a one-shot run (`--rescan`), which counts a file it cannot move instead of
/// waiting for it, or the dry run, which lists the paths offered instead of running them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    Daemon,
    OneShot,
    DryRun,
}

/// What a run leaves when it is over (`Scheduler::into_results`).
pub(super) struct Results {
    pub(super) summary: Summary,
    pub(super) last_outcomes: HashMap<RelativeMediaPath, Outcome>,
    pub(super) planned: Vec<RelativeMediaPath>,
}

/// What the scheduler carries from one run of a file to the next.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Carry {
    /// Runs that ended in a transient failure or a busy row: they set the retry backoff.
    pub(super) attempts: u32,
    /// Runs that found no row yet: they set the (much shorter) wait for Django's INSERT, apart
    /// from `attempts`, so that a slow row does not stretch a later outage's backoff.
    pub(super) row_waits: u32,
    /// When inotify saw the writer close the file (or rename it in). While the file's mtime is
    /// no later than that, it is complete and waits out no settle time; a write after the close
    /// puts it back under `settle_ms`.
    pub(super) closed_at: Option<SystemTime>,
    /// A row seen naming the path has already cut a wait for a row short once: a row that is
    /// there but does not own the file (it named the path while the file was missing) must not
    /// bring the file forward on every reconcile pass.
    pub(super) row_news_spent: bool,
}

/// A path handed to a pipeline task.
struct Dispatched {
    path: RelativeMediaPath,
    carry: Carry,
}

/// What may bring a pending path's run forward, set by the outcome that scheduled it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Hold {
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
pub(super) enum Source {
    /// The journal's unfinished entries, a walk of the folder.
    Known,
    /// A reconcile pass found a row naming the path.
    Row,
    /// The folder watcher saw the file written or renamed in.
    Watcher,
}

pub(super) struct Pending {
    pub(super) due: Instant,
    pub(super) hold: Hold,
    pub(super) carry: Carry,
}

/// What a producer (`sources`) sends on the scheduler's one channel: the only way anything
/// outside this file changes what the scheduler holds.
#[derive(Debug)]
pub(super) enum Offer {
    /// A path that may be ready. `closed`: its writer closed it or renamed it in (the watcher).
    Path { path: RelativeMediaPath, closed: bool, source: Source },
    /// A row names a local file that does not exist (a one-shot run counts it as a failure; the
    /// producer has noted it in the journal already).
    MissingFile { path: RelativeMediaPath, failure: Failure },
    /// Every row naming a local file has been read and those whose file is missing noted: files
    /// may be matched from now on (see `first_scan_done`).
    RowsRead,
    /// A producer met a failure no retry mends (the start-up scan's journal stopped taking
    /// writes): the daemon stops, as on a run's fatal failure.
    Fatal(Failure),
}

impl Offer {
    /// A path found without a close event (a walk, the journal's unfinished entries).
    pub(super) fn known(path: RelativeMediaPath) -> Offer {
        Offer::Path { path, closed: false, source: Source::Known }
    }
}

/// What the scheduler tells its observers (`observers`): they show it and never change it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Event {
    /// A run ended and its file is not scheduled again in this run (a retried one is not).
    Settled,
    /// The daemon's heartbeat: what systemd's STATUS line and watchdog are told.
    Heartbeat(Status),
    /// The run is over and the files in flight drained.
    Stopped,
}

/// The counts and the progress verdict of one heartbeat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Status {
    pub(super) moved: u64,
    pub(super) in_flight: usize,
    pub(super) waiting_for_row: usize,
    pub(super) orphans: usize,
    pub(super) kept: u64,
    /// Whether due files progress (`progressing`): the watchdog is fed only then.
    pub(super) progressing: bool,
    pub(super) stall: Duration,
}

/// How many paths a one-shot run takes from its producers ahead of dispatch, once the rows are
/// read: enough to keep every slot busy, never a whole backlog's walk at once.
const OFFER_WINDOW: usize = 1_024;

/// Paths waiting for their time, paths in flight, and the tasks running them. Its fields are
/// its own: producers reach it through `take`, the driver through the methods below, and
/// observers through the `Event`s it returns.
pub(super) struct Scheduler {
    pipeline: Arc<Pipeline>,
    media_root: PathBuf,
    mode: Mode,
    settings: LiveSettings,
    /// Paths whose last run found no row yet, and paths reported as orphans (for the gauges).
    waiting_for_row: HashSet<RelativeMediaPath>,
    orphans: HashSet<RelativeMediaPath>,
    pending: HashMap<RelativeMediaPath, Pending>,
    timers: BinaryHeap<Reverse<(Instant, RelativeMediaPath)>>,
    /// Paths being run, with when each became due (for `oldest_due`).
    in_flight: HashMap<RelativeMediaPath, Instant>,
    /// Offers that arrived while the path was in flight, by their strongest source: offered
    /// again afterwards.
    rerun: HashMap<RelativeMediaPath, Source>,
    tasks: JoinSet<(Dispatched, Outcome)>,
    summary: Summary,
    limit: Option<u64>,
    started: u64,
    /// Set while the journal cannot be written (disk full): no new file is taken before then,
    /// since nothing may happen that the journal has not recorded first.
    journal_blocked_until: Option<Instant>,
    /// Files whose mtime is ahead of the wall clock (see `settle::FutureMtimes`).
    future_mtimes: FutureMtimes,
    /// False until the producers said every row naming a missing file is noted
    /// (`Offer::RowsRead`): nothing is dispatched before, and nothing counts as due.
    first_scan_done: bool,
    /// The last outcome of each path, kept only for a `--rescan --venta` run, which reports
    /// one line per venta.
    last_outcomes: Option<HashMap<RelativeMediaPath, Outcome>>,
    /// The dry run's paths, in the order offered: it plans them instead of running them.
    planned: Vec<RelativeMediaPath>,
    /// Events not yet handed to the observers.
    events: Vec<Event>,
}

impl Scheduler {
    pub(super) fn new(pipeline: Arc<Pipeline>, config: &Config, mode: Mode) -> Scheduler {
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
            journal_blocked_until: None,
            future_mtimes: FutureMtimes::default(),
            // Every run's producers open the gate (`Offer::RowsRead`) once the rows are read.
            first_scan_done: false,
            last_outcomes: None,
            planned: Vec::new(),
            events: Vec::new(),
        }
    }

    /// At most `limit` files are run (`--limit`).
    pub(super) fn with_limit(mut self, limit: Option<u64>) -> Scheduler {
        self.limit = limit;
        self
    }

    /// Keeps each path's last outcome, for `--rescan --venta`'s one line per venta.
    pub(super) fn keeping_last_outcomes(mut self) -> Scheduler {
        self.last_outcomes = Some(HashMap::new());
        self
    }

    /// The one door: what a producer sent. A producer's fatal failure is handed back, for the
    /// driver to stop on.
    pub(super) fn take(&mut self, offer: Offer) -> Option<Failure> {
        match offer {
            Offer::Path { path, .. } if self.mode == Mode::DryRun => self.planned.push(path),
            Offer::Path { path, closed, source } => self.offer_with(path, closed, source),
            Offer::MissingFile { path, failure } => {
                self.summary.failed += 1;
                self.summary.count_reason(&failure, &path);
            }
            Offer::RowsRead => {
                if !self.first_scan_done {
                    self.first_scan_done = true;
                    debug!("rows naming a local file read; matching files");
                }
            }
            Offer::Fatal(failure) => return Some(failure),
        }
        None
    }

    /// Whether the driver should take more offers now. A one-shot run takes a window of them
    /// once the rows are read (before, it must take everything to reach `RowsRead`); the
    /// daemon always listens, since the watcher's hints must not wait.
    pub(super) fn wants_offers(&self) -> bool {
        self.mode != Mode::OneShot || !self.first_scan_done || self.pending.len() < OFFER_WINDOW
    }

    pub(super) fn settings(&self) -> &LiveSettings {
        &self.settings
    }

    /// A reload: the pipeline's live settings and the scheduler's own.
    pub(super) fn apply_settings(&mut self, new: LiveSettings) {
        self.pipeline.apply_live(&new);
        debug!(?new, "live settings applied");
        self.settings = new;
    }

    pub(super) fn in_flight(&self) -> usize {
        self.tasks.len()
    }

    /// The events since the last call, for the observers.
    pub(super) fn events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
    }

    /// What the run counted, its last outcomes (`keeping_last_outcomes`) and the dry run's paths.
    pub(super) fn into_results(self) -> Results {
        Results {
            summary: self.summary,
            last_outcomes: self.last_outcomes.unwrap_or_default(),
            planned: self.planned,
        }
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

    /// Schedules another run after `delay`; `hold` says which offers may bring it forward.
    fn retry_later(&mut self, path: RelativeMediaPath, carry: Carry, delay: Duration, hold: Hold) {
        let due = Instant::now() + delay;
        self.pending.insert(path.clone(), Pending { due, hold, carry });
        self.timers.push(Reverse((due, path)));
    }

    /// Moves due paths to running tasks while there is room.
    pub(super) fn dispatch_due(&mut self) {
        if !self.first_scan_done {
            return;
        }
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
    pub(super) fn next_due(&self) -> Option<Instant> {
        if !self.first_scan_done {
            return None;
        }
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
        if let Some(last) = self.last_outcomes.as_mut() {
            last.insert(path.clone(), outcome.clone());
        }
        match outcome {
            Outcome::Moved { bytes, .. } => {
                self.summary.moved += 1;
                self.summary.bytes += bytes;
                telemetry::moved_now();
            }
            Outcome::Nothing => {}
            Outcome::WaitingForRow(why) | Outcome::Orphan(why) if one_shot => {
                self.summary.orphans += 1;
                self.summary.count_reason(&why.failure(path), path);
            }
            Outcome::WaitingForRow(_) => {
                // Django commits the row moments after it saves the file: look again soon, then
                // back off.
                let delay = backoff(carry.row_waits, ROW_WAIT_INITIAL, self.settings.retry_max);
                carry.row_waits += 1;
                self.retry_later(path.clone(), carry, delay, Hold::Row);
            }
            Outcome::Orphan(_) => {
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
        // The rescan's bar counts the files settled for this run; one retried is not yet.
        if !self.pending.contains_key(path) {
            self.events.push(Event::Settled);
        }
        if let Some(source) = self.rerun.remove(path) {
            self.offer_with(path.clone(), false, source);
        }
        None
    }

    /// Waits for the next run to end and folds it in; a fatal failure if it was one. Only
    /// while `in_flight() > 0`. Cancel-safe: a run is taken only when it is folded in.
    pub(super) async fn next_finished(&mut self) -> Option<Failure> {
        match self.tasks.join_next().await {
            Some(joined) => self.joined(joined),
            None => std::future::pending().await,
        }
    }

    /// `finished` for a task that returned; a task that failed otherwise is only logged.
    fn joined(&mut self, joined: Result<(Dispatched, Outcome), JoinError>) -> Option<Failure> {
        match joined {
            Ok((run, outcome)) => self.finished(run, outcome),
            // `Pipeline::process` contains a panic in a run itself (its file is retried); one that
            // still gets here is counted, and the file waits for the next pass that offers it.
            Err(e) => {
                if e.is_panic() {
                    telemetry::task_panicked();
                }
                tracing::error!(error = %e, "pipeline task failed");
                None
            }
        }
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
        telemetry::journal_blocked(self.journal_blocked_until.is_some());
    }

    /// Metrics and the waiting/orphan sets behind the gauges.
    fn record_outcome(&mut self, path: &RelativeMediaPath, outcome: &Outcome) {
        let (label, bytes) = match outcome {
            Outcome::Moved { bytes, .. } => ("moved", *bytes),
            Outcome::Nothing => ("nothing", 0),
            Outcome::WaitingForRow(_) => ("waiting_for_row", 0),
            Outcome::Orphan(_) => ("orphan", 0),
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
        if matches!(outcome, Outcome::WaitingForRow(_)) {
            self.waiting_for_row.insert(path.clone());
        } else {
            self.waiting_for_row.remove(path);
        }
        if matches!(outcome, Outcome::Orphan(_)) {
            self.orphans.insert(path.clone());
        } else {
            self.orphans.remove(path);
        }
    }

    /// When the oldest due file became due: the earliest due time among the paths waiting for
    /// a slot and the paths in flight. Files waiting out a backoff or a settle time are not due.
    /// Stale timers met at the top of the heap are dropped on the way (`dispatch_due` would).
    fn oldest_due(&mut self, now: Instant) -> Option<Instant> {
        // Before the first scan nothing may be dispatched, so nothing waits for a slot.
        if !self.first_scan_done {
            return None;
        }
        while let Some(Reverse((due, path))) = self.timers.peek() {
            if self.pending.get(path).is_some_and(|pending| pending.due == *due) {
                break;
            }
            self.timers.pop();
        }
        let waiting = self.timers.peek().map(|Reverse((due, _))| *due).filter(|due| *due <= now);
        self.in_flight.values().copied().chain(waiting).min()
    }

    /// Sets the progress gauges and tells the observers where things stand (`Event::Heartbeat`),
    /// with whether files progress (`progressing`). While the journal cannot be written no file
    /// may progress, and that is already said loudly: a watchdog restart would not help, so it
    /// counts as progressing.
    pub(super) fn heartbeat(&mut self) {
        let now = Instant::now();
        let stall = self.settings.stall_timeout;
        let oldest = self.oldest_due(now);
        telemetry::oldest_pending(
            oldest.map_or(Duration::ZERO, |since| now.saturating_duration_since(since)),
        );
        let progressing = self.journal_blocked_until.is_some()
            || progressing(now, oldest, telemetry::last_progress(), stall);
        telemetry::gauges(self.tasks.len(), self.waiting_for_row.len(), self.orphans.len());
        self.events.push(Event::Heartbeat(Status {
            moved: self.summary.moved,
            in_flight: self.tasks.len(),
            waiting_for_row: self.waiting_for_row.len(),
            orphans: self.orphans.len(),
            kept: self.summary.kept,
            progressing,
            stall,
        }));
    }

    /// Whether a one-shot run or a dry run is over: nothing runs, and nothing is left to run
    /// (`offers_open`: a producer may still send) or `--limit` is reached. The daemon never is.
    pub(super) fn idle(&self, offers_open: bool) -> bool {
        self.mode != Mode::Daemon
            && self.tasks.is_empty()
            && ((self.pending.is_empty() && !offers_open) || self.limit.is_some_and(|l| self.started >= l))
    }

    /// Waits for the running tasks, at most `limit`; what is still running then is abandoned,
    /// which is safe because every step is journaled before its side effect.
    pub(super) async fn drain(&mut self, limit: Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        while !self.tasks.is_empty() {
            match tokio::time::timeout_at(deadline, self.tasks.join_next()).await {
                Ok(Some(joined)) => {
                    self.joined(joined);
                }
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
        self.events.push(Event::Stopped);
    }

    /// How long until the file's mtime is `settle` old: a file whose size and mtime held still
    /// that long is complete (see `settle`).
    fn settle_remaining(&mut self, path: &RelativeMediaPath, closed_at: Option<SystemTime>) -> Duration {
        let (pending, in_flight) = (&self.pending, &self.in_flight);
        self.future_mtimes.settle_remaining(&self.media_root, path, self.settings.settle, closed_at, |kept| {
            pending.contains_key(kept) || in_flight.contains_key(kept)
        })
    }
}

/// Whether files progress, given when the oldest due file became due (`None`: none is) and
/// when anything last progressed: nothing may have been due for over `stall` with no progress
/// since. A backlog's oldest file may wait for a slot for hours while others finish, which is
/// progress; a hung peer that holds every slot while nothing finishes is not.
pub(super) fn progressing(
    now: Instant,
    oldest_due: Option<Instant>,
    last_progress: Instant,
    stall: Duration,
) -> bool {
    match oldest_due {
        None => true,
        Some(since) => now.saturating_duration_since(since.max(last_progress)) <= stall,
    }
}

/// Whether an offer from `source` may bring `pending`'s run forward (see `Hold`).
pub(super) fn may_cut_short(pending: &Pending, source: Source) -> bool {
    match (pending.hold, source) {
        (Hold::Open, _) | (Hold::Row, Source::Watcher) => true,
        (Hold::Row, Source::Row) => !pending.carry.row_news_spent,
        (Hold::Row, Source::Known) | (Hold::Backoff, _) => false,
    }
}
