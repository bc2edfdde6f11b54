//! The scheduler: decides when each path is worth a pipeline run, keeps up to
//! `max_in_flight` runs going, retries with backoff, and stops cleanly on shutdown.
//!
//! One driver loop (`drive`) serves the daemon (`run`), the one-shot catch-up (`rescan`,
//! `rescan_ventas`) and the dry run (`dry_run_candidates`, `dry_run_ventas`). They differ only in
//! their producers (`sources`: tasks that send offers on the loop's one channel), in the
//! scheduler's `Mode`, in when the loop ends, and in who observes its events (`observers`).

mod observers;
mod scheduler;
mod settle;
mod sources;
mod summary;
#[cfg(test)]
mod tests;
mod walks;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};
use tracing::{info, warn};

use crate::config::{Config, LiveSettings};
use crate::media_path::RelativeMediaPath;
use crate::pipeline::{Failure, Pipeline};
use crate::telemetry;
use crate::watch::{FolderWatcher, Walk, WatchHint};
use observers::Observer;
use scheduler::{Mode, Offer, Results, Scheduler};
use sources::{KnownWork, OneShot, Producer};
pub use summary::Summary;

/// Why the scheduler stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stop {
    /// Shutdown was asked for (or the one-shot run finished).
    Finished,
    /// A fatal failure: nothing can move until an operator acts.
    Fatal(Failure),
}

/// Offers the producers may send ahead of the loop: enough to keep it busy, small enough that a
/// walk of a huge folder never holds more than this many in memory.
const OFFER_QUEUE: usize = 1_024;

/// What only the daemon's loop listens to besides offers and finished runs: reloads, and the
/// heartbeat that its STATUS and watchdog observer is told at.
struct Live {
    settings: watch::Receiver<LiveSettings>,
    heartbeat: tokio::time::Interval,
}

/// The one driver loop: takes the producers' offers through the scheduler's one door, dispatches
/// what is due, folds in finished runs, and hands the scheduler's events to `observers`, until
/// shutdown, a fatal failure, or (a one-shot run) nothing is left; then stops the producers and
/// drains the runs in flight.
async fn drive(
    mut scheduler: Scheduler,
    mut offers: mpsc::Receiver<Offer>,
    producers: Vec<Producer>,
    mut shutdown: watch::Receiver<bool>,
    live: Option<Live>,
    observers: &mut [&mut dyn Observer],
) -> (Stop, Results) {
    let daemon = live.is_some();
    let (mut settings, mut heartbeat) = match live {
        Some(Live { settings, heartbeat }) => (Some(settings), Some(heartbeat)),
        None => (None, None),
    };
    let mut offers_open = true;
    let stop = loop {
        scheduler.dispatch_due();
        observe(&mut scheduler, observers);
        if scheduler.idle(offers_open) {
            break Stop::Finished;
        }
        let sleep = sleep_until(scheduler.next_due());
        tokio::select! {
            _ = shutdown.changed() => break Stop::Finished,
            offer = offers.recv(), if offers_open && scheduler.wants_offers() => match offer {
                Some(offer) => {
                    if let Some(failure) = scheduler.take(offer) {
                        break Stop::Fatal(failure);
                    }
                }
                None => offers_open = false,
            },
            fatal = scheduler.next_finished(), if scheduler.in_flight() > 0 => {
                if let Some(failure) = fatal {
                    break Stop::Fatal(failure);
                }
            }
            _ = tick(&mut heartbeat) => scheduler.heartbeat(),
            Some(new) = reloaded(&mut settings) => scheduler.apply_settings(new),
            _ = sleep => {}
        }
    };
    // A reconcile pass only reads, and notes missing files in the journal: the next start runs
    // it again. A walk's thread stops at its next offer, once no one listens.
    drop(producers);
    drop(offers);
    if daemon {
        info!(in_flight = scheduler.in_flight(), "stopping: no new files taken");
    }
    scheduler.drain(scheduler.settings().shutdown_timeout).await;
    observe(&mut scheduler, observers);
    (stop, scheduler.into_results())
}

/// Hands the scheduler's events since the last call to every observer.
fn observe(scheduler: &mut Scheduler, observers: &mut [&mut dyn Observer]) {
    for event in scheduler.events() {
        for observer in observers.iter_mut() {
            observer.observe(&event);
        }
    }
}

/// The daemon's heartbeat; never, in a one-shot run.
async fn tick(heartbeat: &mut Option<tokio::time::Interval>) {
    match heartbeat {
        Some(heartbeat) => {
            heartbeat.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// The settings a reload brought; never, in a one-shot run (`None` once reloads ended).
async fn reloaded(settings: &mut Option<watch::Receiver<LiveSettings>>) -> Option<LiveSettings> {
    let settings = settings.as_mut()?;
    settings.changed().await.ok()?;
    let new = settings.borrow_and_update().clone();
    Some(new)
}

/// Runs the daemon until `shutdown` turns true. `hints` come from the folder `watcher` (which
/// its producer starts again when it stops, or when a reload changes its mode) and
/// `overflowed` is raised when it had to drop one.
pub async fn run(
    config: &Config,
    pipeline: Arc<Pipeline>,
    watcher: FolderWatcher,
    hints: mpsc::Receiver<WatchHint>,
    overflowed: Arc<AtomicBool>,
    settings: watch::Receiver<LiveSettings>,
    shutdown: watch::Receiver<bool>,
) -> (Stop, Summary) {
    let scheduler = Scheduler::new(pipeline.clone(), config, Mode::Daemon);
    let dir = config.watched_dir();
    let media_root = config.watch.media_root.clone();
    let (offers, offered) = mpsc::channel(OFFER_QUEUE);
    // Walks run on a blocking thread and stream what they find (`walks`): a slow disk delays
    // the files, never the loop.
    let (walks, walking) = sources::walks_on_request(dir.clone(), media_root.clone(), offers.clone());
    walks.request();
    let watching = sources::Watching {
        dir: dir.clone(),
        media_root: media_root.clone(),
        pipeline: pipeline.clone(),
        overflowed,
        settings: settings.clone(),
        walks,
    };
    let producers = vec![
        Producer::spawn(walking),
        Producer::spawn(sources::watch_hints(watcher, hints, watching, offers.clone())),
        // The first pass reads every row naming a local file (and notes those whose file is
        // missing) before any file is matched; see `sources::first_scan`.
        Producer::spawn(sources::reconcile_passes(
            pipeline,
            media_root,
            dir_prefix(config),
            settings.clone(),
            offers,
        )),
    ];
    // systemd's watchdog wants a ping at least every WATCHDOG_USEC, but only while files
    // progress: a loop that spins while nothing moves must not keep it fed. The status line
    // and the progress gauges ride along.
    let heartbeat_every = crate::signals::watchdog_interval().unwrap_or(Duration::from_secs(5));
    let mut heartbeat = tokio::time::interval(heartbeat_every);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    telemetry::progressed();
    info!(folder = %dir.display(), "watching");
    let mut systemd = observers::Systemd::new();
    let live = Live { settings, heartbeat };
    let (stop, results) =
        drive(scheduler, offered, producers, shutdown, Some(live), &mut [&mut systemd]).await;
    (stop, results.summary)
}

fn dir_prefix(config: &Config) -> String {
    format!("{}/", config.watch.dir.trim_end_matches('/'))
}

/// `--rescan --dry-run --venta ID…`: the files those ventas' rows name, in the order given (a
/// venta whose file is missing is counted as in a real rescan, and has no line).
pub async fn dry_run_ventas(
    config: &Config,
    pipeline: Arc<Pipeline>,
    ventas: &[i64],
) -> (Vec<RelativeMediaPath>, Summary) {
    // A dry run changes nothing, so nothing asks it to stop: the loop's shutdown never comes.
    let (_never, shutdown) = watch::channel(false);
    let mut given = Vec::new();
    for &venta_id in ventas {
        let named = match pipeline.db().get(venta_id).await {
            Ok(row) => row.and_then(|row| row.confronta).filter(|path| !path.is_empty()),
            Err(e) => {
                warn!(venta_id, error = %e, "cannot read the venta");
                None
            }
        };
        match named.as_deref().map(RelativeMediaPath::parse) {
            Some(Ok(path))
                if std::fs::symlink_metadata(path.to_absolute(&config.watch.media_root)).is_ok() =>
            {
                given.push(Offer::known(path));
            }
            Some(Ok(path)) => {
                let failure = Failure::new(
                    crate::error::Reason::LocalFileMissing,
                    format!(
                        "venta {venta_id} points at a local file that does not exist; row left untouched"
                    ),
                );
                given.push(Offer::MissingFile { path, failure });
            }
            _ => {}
        }
    }
    let scheduler = Scheduler::new(pipeline, config, Mode::DryRun);
    let (offers, offered) = mpsc::channel(OFFER_QUEUE);
    let producers = vec![Producer::spawn(sources::offer_all(given, offers))];
    let (_, results) = drive(scheduler, offered, producers, shutdown, None, &mut []).await;
    // Two ventas naming one file give it one plan.
    let mut paths = results.planned;
    let mut seen = std::collections::HashSet::new();
    paths.retain(|path| seen.insert(path.clone()));
    (paths, results.summary)
}

/// What the daemon's start-up scan does before it matches any file, once: reads every row naming
/// a local file under `dir_prefix` and notes in the journal those whose file is missing. For
/// callers that drive the pipeline without the scheduler (the ownership model test).
pub async fn note_rows_naming_missing_files(
    pipeline: Arc<Pipeline>,
    media_root: std::path::PathBuf,
    dir_prefix: String,
) -> Result<(), sources::StartScanError> {
    let mut unwritten = sources::UnwrittenMarks::default();
    sources::scan_every_row(&pipeline, &media_root, &dir_prefix, &mut unwritten).await.map(drop)
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
    shutdown: watch::Receiver<bool>,
) -> (Stop, Summary) {
    let scheduler = Scheduler::new(pipeline.clone(), config, Mode::OneShot).with_limit(limit);
    let media_root = config.watch.media_root.clone();
    let dir_prefix = dir_prefix(config);
    // The journal resume and the first page of rows are read here, to count them; the walk is
    // taken a window at a time (`Scheduler::wants_offers`), and a first pass only counts, for
    // the log and the progress bar. Known work whose file is gone (journal entries to finish)
    // is counted on top, since the walk cannot list it.
    let work: KnownWork =
        sources::known_work(pipeline.clone(), media_root.clone(), dir_prefix.clone(), i64::MIN).await;
    let dir = config.watched_dir();
    let files = Walk::new(&dir).count() as u64;
    let known: std::collections::HashSet<&RelativeMediaPath> =
        work.unfinished.iter().chain(&work.rows).collect();
    let without_file = known.iter().filter(|path| !path.to_absolute(&media_root).exists()).count() as u64;
    let candidates = files + without_file;
    info!(candidates, "rescan started");
    let mut progress = observers::Progress::new(limit.map_or(candidates, |l| l.min(candidates)));
    let (offers, offered) = mpsc::channel(OFFER_QUEUE);
    let producers = vec![Producer::spawn(sources::one_shot_offers(
        pipeline,
        media_root,
        dir_prefix,
        dir,
        OneShot::Rescan(work),
        offers,
    ))];
    let (stop, results) = drive(scheduler, offered, producers, shutdown, None, &mut [&mut progress]).await;
    (stop, results.summary)
}

/// `--rescan --venta ID…`: exactly the files these ventas' rows name, nothing else (no walk, no
/// other row, no other journal entry), and one result per venta, in the order given: the
/// Django command's batch (`migrar_confrontas_minio`), which picks its ventas itself.
pub async fn rescan_ventas(
    config: &Config,
    pipeline: Arc<Pipeline>,
    ventas: &[i64],
    shutdown: watch::Receiver<bool>,
) -> (Stop, Summary) {
    let media_root = &config.watch.media_root;
    let mut planned = Vec::with_capacity(ventas.len());
    let mut given = Vec::new();
    for &venta_id in ventas {
        let row = match pipeline.db().get(venta_id).await {
            Ok(row) => row,
            Err(e) => {
                planned.push(Err(summary::VentaResult::missing(venta_id, None, e.to_string())));
                continue;
            }
        };
        let named = row.as_ref().and_then(|row| row.confronta.clone()).filter(|path| !path.is_empty());
        let Some(text) = named else {
            let why =
                if row.is_some() { "the venta names no local file" } else { "the venta does not exist" };
            planned.push(Err(summary::VentaResult::missing(venta_id, None, why.to_owned())));
            continue;
        };
        let path = match RelativeMediaPath::parse(&text) {
            Ok(path) if std::fs::symlink_metadata(path.to_absolute(media_root)).is_ok() => path,
            Ok(path) => {
                if let Some(row) = &row {
                    // A refused mark is logged; this venta's file is reported missing either way.
                    let _ = sources::remember_missing(&pipeline, &path, row).await;
                }
                let why = format!(
                    "venta {venta_id} points at a local file that does not exist; row left untouched"
                );
                planned.push(Err(summary::VentaResult::missing(venta_id, Some(text), why)));
                continue;
            }
            Err(e) => {
                planned.push(Err(summary::VentaResult::missing(venta_id, Some(text), e.to_string())));
                continue;
            }
        };
        given.push(Offer::known(path.clone()));
        planned.push(Ok((venta_id, path)));
    }
    info!(ventas = ventas.len(), "rescan of the given ventas started");
    let scheduler = Scheduler::new(pipeline, config, Mode::OneShot).keeping_last_outcomes();
    let (offers, offered) = mpsc::channel(OFFER_QUEUE);
    let producers = vec![Producer::spawn(sources::offer_all(given, offers))];
    let (stop, results) = drive(scheduler, offered, producers, shutdown, None, &mut []).await;
    let (mut summary, last) = (results.summary, results.last_outcomes);
    summary.results = planned
        .into_iter()
        .map(|planned| match planned {
            Ok((venta_id, path)) => match last.get(&path) {
                Some(outcome) => summary::VentaResult::of(venta_id, &path, outcome),
                // Not run: stopped by a signal first.
                None => summary::VentaResult::of(venta_id, &path, &crate::pipeline::Outcome::Busy),
            },
            Err(missing) => missing,
        })
        .collect();
    (stop, summary)
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
    // A dry run changes nothing, so nothing asks it to stop: the loop's shutdown never comes.
    let (_never, shutdown) = watch::channel(false);
    // The dry run's scheduler lists what is offered (not through its map and timers, which cost
    // several times as much per path): a dry run must see every file to sort them.
    let scheduler = Scheduler::new(pipeline.clone(), config, Mode::DryRun);
    let (offers, offered) = mpsc::channel(OFFER_QUEUE);
    let producers = vec![Producer::spawn(sources::one_shot_offers(
        pipeline,
        config.watch.media_root.clone(),
        dir_prefix(config),
        config.watched_dir(),
        OneShot::DryRun,
        offers,
    ))];
    let (_, results) = drive(scheduler, offered, producers, shutdown, None, &mut []).await;
    let mut paths = results.planned;
    paths.sort();
    paths.dedup();
    paths.truncate(limit.map_or(usize::MAX, |l| l as usize));
    (paths, results.summary)
}
