//! The scheduler: decides when each path is worth a pipeline run, keeps up to
//! `max_in_flight` runs going, retries with backoff, and stops cleanly on shutdown.
//!
//! The daemon (`run`) and the one-shot catch-up (`rescan`) feed the same scheduler and the same
//! pipeline; they differ only in where paths come from (`sources`) and when the loop ends.

mod scheduler;
mod settle;
mod sources;
mod summary;
#[cfg(test)]
mod tests;
mod walks;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};
use tracing::{debug, error, info, warn};

use crate::config::{Config, LiveSettings};
use crate::media_path::RelativeMediaPath;
use crate::pipeline::{Failure, Pipeline};
use crate::telemetry;
use crate::watch::{walk_each, FolderWatcher, Walk, WatchHint};
use scheduler::{Mode, Scheduler};
use sources::media_path_or_warn;
use sources::{first_scan, restart_watcher, switch_watcher, KnownWork, WatcherRestarts};
pub use summary::Summary;
use walks::FolderWalks;

/// Why the scheduler stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stop {
    /// Shutdown was asked for (or the one-shot run finished).
    Finished,
    /// A fatal failure: nothing can move until an operator acts.
    Fatal(Failure),
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

/// Runs the daemon until `shutdown` turns true. `hints` come from the folder `watcher` (which
/// the loop starts again when it stops, or when a reload changes its mode) and `overflowed` is
/// raised when it had to drop one.
pub async fn run(
    config: &Config,
    pipeline: Arc<Pipeline>,
    watcher: FolderWatcher,
    mut hints: mpsc::Receiver<WatchHint>,
    overflowed: Arc<AtomicBool>,
    mut settings: watch::Receiver<LiveSettings>,
    mut shutdown: watch::Receiver<bool>,
) -> (Stop, Summary) {
    let mut scheduler = Scheduler::new(pipeline, config, Mode::Daemon);
    let dir = config.watched_dir();
    let dir_prefix = format!("{}/", config.watch.dir.trim_end_matches('/'));
    // Walks run on a blocking thread and stream what they find (`walks`): a slow disk delays
    // the files, never the loop.
    let mut walks = FolderWalks::new(dir.clone());
    walks.request();
    // The first pass reads every row naming a local file (and notes those whose file is
    // missing) before any file is matched; see `sources::first_scan`. Later passes read a page
    // at a time. At most one runs at a time, as a task: a slow or hung database delays the
    // pass, never the loop (dispatch, STATUS, SIGTERM).
    let mut reconcile_pass = Some(tokio::spawn(first_scan(
        scheduler.pipeline.clone(),
        scheduler.media_root.clone(),
        dir_prefix.clone(),
        scheduler.settings.retry_initial,
        scheduler.settings.retry_max,
    )));
    let mut reconcile = every(scheduler.settings.reconcile_interval);
    // systemd's watchdog wants a ping at least every WATCHDOG_USEC, but only while files
    // progress: a loop that spins while nothing moves must not keep it fed. The status line
    // and the progress gauges ride along.
    let heartbeat_every = crate::signals::watchdog_interval().unwrap_or(Duration::from_secs(5));
    let mut heartbeat = tokio::time::interval(heartbeat_every);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let watchdog = crate::signals::watchdog_interval().is_some();
    let mut stalled = false;
    telemetry::progressed();
    info!(folder = %dir.display(), "watching");
    let mut watcher_restarts = WatcherRestarts::running(watcher);

    let stop = loop {
        scheduler.dispatch_due();
        if overflowed.swap(false, Ordering::SeqCst) {
            warn!("watcher events were dropped; walking the folder");
            walks.request();
        }
        let sleep = sleep_until(scheduler.next_due());
        tokio::select! {
            _ = shutdown.changed() => break Stop::Finished,
            hint = hints.recv() => match hint {
                Some(WatchHint::Closed(path)) => scheduler.offer_absolute(&path, true),
                Some(WatchHint::MaybeComplete(path)) => scheduler.offer_absolute(&path, false),
                Some(WatchHint::Removed(path)) => scheduler.note_vanished(&path),
                Some(WatchHint::Rescan) => {
                    info!("watcher asked for a rescan; walking the folder");
                    walks.request();
                }
                None => {
                    let poll = scheduler.settings.poll_interval;
                    hints = restart_watcher(&dir, poll, &overflowed, &mut watcher_restarts);
                    // Files written while no watcher ran sent no event.
                    walks.request();
                }
            },
            found = walks.next(), if walks.is_running() => {
                if let Some(file) = found {
                    scheduler.offer_found(&file);
                }
            }
            Some(joined) = scheduler.tasks.join_next(), if !scheduler.tasks.is_empty() => {
                if let Some(failure) = scheduler.joined(joined) {
                    break Stop::Fatal(failure);
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
                if !scheduler.first_scan_done {
                    // A failed first scan (its task panicked) still opens the gate, as today's
                    // passes would: the files must not wait for ever.
                    scheduler.first_scan_done = true;
                    debug!("rows naming a local file read; matching files");
                }
            }
            _ = heartbeat.tick() => {
                let stall = scheduler.settings.stall_timeout;
                if scheduler.check_progress(stall) {
                    if watchdog {
                        crate::signals::notify(&[sd_notify::NotifyState::Watchdog]);
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
                let mut new = settings.borrow_and_update().clone();
                if new.reconcile_interval != scheduler.settings.reconcile_interval {
                    reconcile = every(new.reconcile_interval);
                }
                if new.poll_interval != scheduler.settings.poll_interval {
                    match switch_watcher(&dir, new.poll_interval, &overflowed, &mut watcher_restarts) {
                        Some(switched) => {
                            hints = switched;
                            // Hints queued for the old watcher went with it.
                            walks.request();
                        }
                        // The old watcher runs on; the next reload tries again.
                        None => new.poll_interval = scheduler.settings.poll_interval,
                    }
                }
                scheduler.pipeline.apply_live(&new);
                debug!(?new, "live settings applied");
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
    scheduler.drain(scheduler.settings.shutdown_timeout).await;
    (stop, scheduler.summary)
}

/// `--rescan --dry-run --venta ID…`: the files those ventas' rows name, in the order given (a
/// venta whose file is missing is counted as in a real rescan, and has no line).
pub async fn dry_run_ventas(
    config: &Config,
    pipeline: Arc<Pipeline>,
    ventas: &[i64],
) -> (Vec<RelativeMediaPath>, Summary) {
    let mut summary = Summary::default();
    let mut paths = Vec::new();
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
                // Two ventas naming one file give it one plan (duplicates dropped below).
                paths.push(path);
            }
            Some(Ok(path)) => {
                let failure = Failure::new(
                    crate::error::Reason::LocalFileMissing,
                    format!(
                        "venta {venta_id} points at a local file that does not exist; row left untouched"
                    ),
                );
                summary.failed += 1;
                summary.count_reason(&failure, &path);
            }
            _ => {}
        }
    }
    let mut seen = std::collections::HashSet::new();
    paths.retain(|path| seen.insert(path.clone()));
    (paths, summary)
}

/// What the daemon's start-up scan does before it matches any file, once: reads every row naming
/// a local file under `dir_prefix` and notes in the journal those whose file is missing. For
/// callers that drive the pipeline without the scheduler (the ownership model test).
pub async fn note_rows_naming_missing_files(
    pipeline: Arc<Pipeline>,
    media_root: std::path::PathBuf,
    dir_prefix: String,
) -> Result<(), crate::db::DbError> {
    sources::scan_every_row(&pipeline, &media_root, &dir_prefix).await.map(drop)
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
    run_one_shot(&mut scheduler, shutdown, shutdown_timeout).await
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
    let shutdown_timeout = Duration::from_secs(config.service.shutdown_timeout_s);
    let mut scheduler = Scheduler::new(pipeline.clone(), config, Mode::OneShot);
    scheduler.last_outcomes = Some(Default::default());
    let mut planned = Vec::with_capacity(ventas.len());
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
            Ok(path) if std::fs::symlink_metadata(path.to_absolute(&scheduler.media_root)).is_ok() => path,
            Ok(path) => {
                if let Some(row) = &row {
                    sources::remember_missing(&pipeline, &path, row).await;
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
        scheduler.offer_path(path.clone());
        planned.push(Ok((venta_id, path)));
    }
    info!(ventas = ventas.len(), "rescan of the given ventas started");
    let (stop, mut summary) = run_one_shot(&mut scheduler, shutdown, shutdown_timeout).await;
    let last = scheduler.last_outcomes.take().unwrap_or_default();
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

/// The one-shot loop: dispatches what is due until nothing is left (or shutdown), then drains.
async fn run_one_shot(
    scheduler: &mut Scheduler,
    mut shutdown: watch::Receiver<bool>,
    shutdown_timeout: Duration,
) -> (Stop, Summary) {
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
                if let Some(failure) = scheduler.joined(joined) {
                    break Stop::Fatal(failure);
                }
            }
            _ = sleep => {}
        }
    };
    scheduler.drain(shutdown_timeout).await;
    if let Some(progress) = scheduler.progress.take() {
        progress.finish_and_clear();
    }
    (stop, std::mem::take(&mut scheduler.summary))
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
    // The walk goes straight into the list (not through the scheduler's map and timers, which
    // cost several times as much per path): a dry run must see every file to sort them.
    let mut paths = Vec::new();
    walk_each(&config.watched_dir(), |file| paths.extend(media_path_or_warn(&scheduler.media_root, &file)));
    scheduler.offer_known_work(&dir_prefix).await;
    scheduler.count_rows_missing_their_file(&dir_prefix).await;
    paths.extend(scheduler.pending.into_keys());
    paths.sort();
    paths.dedup();
    paths.truncate(limit.map_or(usize::MAX, |l| l as usize));
    (paths, scheduler.summary)
}
