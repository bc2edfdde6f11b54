//! The scheduler's producers: where its paths come from. The watcher's hints (and the restart of
//! a watcher that stopped), walks of the folder, the reconcile pass (rows still pointing at a
//! local file) and the journal resume (its unfinished entries) each run as a task that sends
//! `Offer`s on the one channel the driver loop reads; none of them touches the scheduler.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};
use tracing::{debug, error, info, warn};

use super::scheduler::{Offer, Source};
use super::walks::FolderWalks;
use crate::config::LiveSettings;
use crate::error::{Classify, ErrorClass, Reason};
use crate::media_path::RelativeMediaPath;
use crate::pipeline::{Failure, Pipeline};
use crate::watch::WatchHint;

/// How many rows a reconcile pass reads at most; the next pass reads on from there.
const RECONCILE_BATCH: i64 = 10_000;
/// Rows read per query when every row with a local file is walked.
const ROW_PAGE: i64 = 1_000;

/// A producer's task, aborted when the run ends (dropped with it: the driver holds them).
pub(super) struct Producer(tokio::task::JoinHandle<()>);

impl Producer {
    pub(super) fn spawn(task: impl std::future::Future<Output = ()> + Send + 'static) -> Producer {
        Producer(tokio::spawn(task))
    }
}

impl Drop for Producer {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Asks the walk producer (`walks_on_request`) for a walk of the folder.
#[derive(Clone)]
pub(super) struct WalkRequests(mpsc::Sender<()>);

impl WalkRequests {
    pub(super) fn request(&self) {
        // Full: a request is already waiting, and it does the same.
        let _ = self.0.try_send(());
    }
}

/// The daemon's walk producer: a walk of the folder each time one is asked for (at start, on a
/// watcher's overflow, restart or `Rescan`), one at a time (`FolderWalks`), every file offered
/// as `Source::Known`.
pub(super) fn walks_on_request(
    dir: PathBuf,
    media_root: PathBuf,
    offers: mpsc::Sender<Offer>,
) -> (WalkRequests, impl std::future::Future<Output = ()>) {
    let (sender, mut requests) = mpsc::channel(1);
    let producer = async move {
        let mut walks = FolderWalks::new(dir);
        loop {
            tokio::select! {
                request = requests.recv() => match request {
                    Some(()) => walks.request(),
                    None => return,
                },
                found = walks.next(), if walks.is_running() => {
                    let Some(path) = found.and_then(|file| media_path_or_warn(&media_root, &file)) else {
                        continue;
                    };
                    if offers.send(Offer::known(path)).await.is_err() {
                        return;
                    }
                }
            }
        }
    };
    (WalkRequests(sender), producer)
}

/// What the watcher producer needs besides its hints.
pub(super) struct Watching {
    pub(super) dir: PathBuf,
    pub(super) media_root: PathBuf,
    pub(super) pipeline: Arc<Pipeline>,
    pub(super) overflowed: Arc<AtomicBool>,
    pub(super) settings: watch::Receiver<LiveSettings>,
    pub(super) walks: WalkRequests,
}

/// The watcher producer: the folder watcher's hints become offers (`Source::Watcher`); a removal
/// is noted off the loop; a dropped hint, a `Rescan` or a watcher that stopped asks for a walk.
/// It starts the watcher again when it stops (`restart_watcher`) and when a reload changes its
/// mode (`switch_watcher`).
pub(super) async fn watch_hints(
    watcher: crate::watch::FolderWatcher,
    mut hints: mpsc::Receiver<WatchHint>,
    watching: Watching,
    offers: mpsc::Sender<Offer>,
) {
    let mut restarts = WatcherRestarts::running(watcher);
    let Watching { dir, media_root, pipeline, overflowed, mut settings, walks } = watching;
    let (dir, media_root, overflowed, walks) = (&dir, &media_root, &overflowed, &walks);
    let mut poll = settings.borrow_and_update().poll_interval;
    loop {
        tokio::select! {
            hint = hints.recv() => {
                let offer = |absolute: &Path, closed: bool| {
                    media_path_or_warn(media_root, absolute)
                        .map(|path| Offer::Path { path, closed, source: Source::Watcher })
                };
                let offer = match hint {
                    Some(WatchHint::Closed(path)) => offer(&path, true),
                    Some(WatchHint::MaybeComplete(path)) => offer(&path, false),
                    Some(WatchHint::Removed(path)) => {
                        // The rows naming it are noted off the loop (`Pipeline::note_vanished`
                        // asks the database).
                        if let Some(path) = media_path_or_warn(media_root, &path) {
                            let pipeline = pipeline.clone();
                            tokio::spawn(async move { pipeline.note_vanished(&path).await });
                        }
                        None
                    }
                    Some(WatchHint::Rescan) => {
                        info!("watcher asked for a rescan; walking the folder");
                        walks.request();
                        None
                    }
                    None => {
                        hints = restart_watcher(dir, poll, overflowed, &mut restarts);
                        // Files written while no watcher ran sent no event.
                        walks.request();
                        None
                    }
                };
                if overflowed.swap(false, Ordering::SeqCst) {
                    warn!("watcher events were dropped; walking the folder");
                    walks.request();
                }
                if let Some(offer) = offer {
                    if offers.send(offer).await.is_err() {
                        return;
                    }
                }
            }
            Ok(()) = settings.changed() => {
                let new = settings.borrow_and_update().poll_interval;
                if new != poll {
                    // On failure the old watcher runs on; the next reload tries again.
                    if let Some(switched) = switch_watcher(dir, new, overflowed, &mut restarts) {
                        hints = switched;
                        poll = new;
                        // Hints queued for the old watcher went with it.
                        walks.request();
                    }
                }
            }
        }
    }
}

/// The daemon's reconcile producer: the start-up scan (every row naming a local file; see
/// `first_scan`), then `Offer::RowsRead`, then a pass (`known_work`) every
/// `reconcile_interval`. At most one pass runs at a time: a tick that falls while one runs is
/// skipped. Each pass is a task of its own, so a pass that panics costs only that pass (and the
/// start-up scan's still opens the gate: the files must not wait for ever); a slow or hung
/// database delays the pass, never the loop.
pub(super) async fn reconcile_passes(
    pipeline: Arc<Pipeline>,
    media_root: PathBuf,
    dir_prefix: String,
    mut settings: watch::Receiver<LiveSettings>,
    offers: mpsc::Sender<Offer>,
) {
    let (retry_initial, retry_max, mut period) = {
        let settings = settings.borrow_and_update();
        (settings.retry_initial, settings.retry_max, settings.reconcile_interval)
    };
    let mut reconcile = every(period);
    let first =
        first_scan(pipeline.clone(), media_root.clone(), dir_prefix.clone(), retry_initial, retry_max);
    let mut after_id = i64::MIN;
    match Producer::joined(first).await {
        Ok(Ok(work)) => {
            after_id = work.next_after_id;
            if send_work(work, &offers).await.is_err() {
                return;
            }
        }
        // The journal takes no more writes: the daemon stops, the gate still shut.
        Ok(Err(failure)) => {
            let _ = offers.send(Offer::Fatal(failure)).await;
            return;
        }
        Err(e) => warn!(error = %e, "reconcile pass failed"),
    }
    if offers.send(Offer::RowsRead).await.is_err() {
        return;
    }
    loop {
        tokio::select! {
            _ = reconcile.tick() => {
                let pass = known_work(pipeline.clone(), media_root.clone(), dir_prefix.clone(), after_id);
                match Producer::joined(pass).await {
                    Ok(work) => {
                        after_id = work.next_after_id;
                        if send_work(work, &offers).await.is_err() {
                            return;
                        }
                    }
                    Err(e) => warn!(error = %e, "reconcile pass failed"),
                }
            }
            Ok(()) = settings.changed() => {
                let new = settings.borrow_and_update().reconcile_interval;
                if new != period {
                    period = new;
                    reconcile = every(new);
                }
            }
        }
    }
}

impl Producer {
    /// Runs `task` as a task of its own and waits for it; aborted with the waiter.
    async fn joined<T: Send + 'static>(
        task: impl std::future::Future<Output = T> + Send + 'static,
    ) -> Result<T, tokio::task::JoinError> {
        struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);
        impl<T> Drop for AbortOnDrop<T> {
            fn drop(&mut self) {
                self.0.abort();
            }
        }
        let mut handle = AbortOnDrop(tokio::spawn(task));
        (&mut handle.0).await
    }
}

/// A ticking interval whose first tick is one `period` away; a tick missed while a pass ran is
/// skipped, never run back to back with the next.
fn every(period: Duration) -> tokio::time::Interval {
    let mut interval = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    interval
}

/// Offers what a pass found: the journal's unfinished entries (`Known`), then the files rows
/// name (`Row`: news for a file waiting for its row). `Err` once the driver stopped listening.
async fn send_work(work: KnownWork, offers: &mpsc::Sender<Offer>) -> Result<(), ()> {
    let rows = work.rows.into_iter().map(|path| Offer::Path { path, closed: false, source: Source::Row });
    for offer in work.unfinished.into_iter().map(Offer::known).chain(rows) {
        offers.send(offer).await.map_err(drop)?;
    }
    Ok(())
}

/// Which one-shot run `one_shot_offers` feeds.
pub(super) enum OneShot {
    /// A rescan: the known work its caller read (to count the candidates), then the walk.
    Rescan(KnownWork),
    /// A dry run: the walk first, then the known work, as it always listed them.
    DryRun,
}

/// The producer of a rescan or a dry run: the journal's unfinished entries and a page of rows
/// still naming a local file, the rows whose file is missing, `Offer::RowsRead`, and the walk of
/// the folder (which the rescan's driver takes a window at a time).
pub(super) async fn one_shot_offers(
    pipeline: Arc<Pipeline>,
    media_root: PathBuf,
    dir_prefix: String,
    dir: PathBuf,
    run: OneShot,
    offers: mpsc::Sender<Offer>,
) {
    // `known`: paths offered already, which the walk skips. A path is offered once in a
    // one-shot run: offered again while it ran, it would run twice and be counted twice.
    let walk = |offers: mpsc::Sender<Offer>,
                media_root: PathBuf,
                dir: PathBuf,
                known: HashSet<RelativeMediaPath>| {
        tokio::task::spawn_blocking(move || {
            for file in crate::watch::Walk::new(&dir) {
                let Some(path) = media_path_or_warn(&media_root, &file).filter(|path| !known.contains(path))
                else {
                    continue;
                };
                // The driver stopped listening (`--limit` reached, or a signal).
                if offers.blocking_send(Offer::known(path)).is_err() {
                    return;
                }
            }
        })
    };
    let (work, walk_after) = match run {
        OneShot::Rescan(work) => (work, true),
        OneShot::DryRun => {
            if walk(offers.clone(), media_root.clone(), dir.clone(), HashSet::new()).await.is_err() {
                return;
            }
            (known_work(pipeline.clone(), media_root.clone(), dir_prefix.clone(), i64::MIN).await, false)
        }
    };
    let known: HashSet<RelativeMediaPath> =
        if walk_after { work.unfinished.iter().chain(&work.rows).cloned().collect() } else { HashSet::new() };
    if send_work(work, &offers).await.is_err()
        || count_rows_missing_their_file(&pipeline, &media_root, &dir_prefix, &offers).await.is_err()
        || offers.send(Offer::RowsRead).await.is_err()
    {
        return;
    }
    if walk_after {
        let _ = walk(offers, media_root, dir, known).await;
    }
}

/// Offers `given` in order, then `Offer::RowsRead`: the paths of `--venta` runs, already
/// checked by the caller.
pub(super) async fn offer_all(given: Vec<Offer>, offers: mpsc::Sender<Offer>) {
    for offer in given {
        if offers.send(offer).await.is_err() {
            return;
        }
    }
    let _ = offers.send(Offer::RowsRead).await;
}

/// A row that points at a local file which does not exist cannot be moved: it is noted in the
/// journal and reported (`Offer::MissingFile`; the row is left untouched) so the operator can
/// find the file. Paged by id: a backlog's rows are never all in memory at once.
async fn count_rows_missing_their_file(
    pipeline: &Arc<Pipeline>,
    media_root: &Path,
    dir_prefix: &str,
    offers: &mpsc::Sender<Offer>,
) -> Result<(), ()> {
    let mut after_id = i64::MIN;
    loop {
        let rows = match pipeline.db().rows_with_local_file(dir_prefix, after_id, ROW_PAGE).await {
            Ok(rows) => rows,
            Err(e) => {
                warn!(error = %e, "cannot list rows with a local confronta");
                return Ok(());
            }
        };
        let Some(last) = rows.last() else {
            return Ok(());
        };
        after_id = last.id;
        for row in rows {
            let Some(Ok(path)) = row.confronta.as_deref().map(RelativeMediaPath::parse) else {
                continue;
            };
            if !path.to_absolute(media_root).exists() {
                let failure = Failure::new(
                    Reason::LocalFileMissing,
                    format!(
                        "venta {} points at a local file that does not exist; row left untouched",
                        row.id
                    ),
                );
                warn!(path = %path, venta_id = row.id, "row points at a missing local file");
                // A refused mark is logged and the rescan goes on without it; the daemon's
                // start-up scan is the one that waits for every mark (`first_scan`).
                let _ = remember_missing(pipeline, &path, &row).await;
                offers.send(Offer::MissingFile { path, failure }).await.map_err(drop)?;
            }
        }
    }
}

/// What one reconcile pass found.
pub(super) struct KnownWork {
    /// Paths of unfinished journal entries.
    pub(super) unfinished: Vec<RelativeMediaPath>,
    /// Files that exist at the paths rows name: news for a file waiting for its row.
    pub(super) rows: Vec<RelativeMediaPath>,
    /// Where the next pass starts: the last row id this one read, or `i64::MIN` to start over
    /// once a pass reached the end.
    pub(super) next_after_id: i64,
}

/// One reconcile pass: the journal's unfinished entries and one page of rows still pointing
/// at a local file, from `after_id` on. A row whose file is missing is noted in the journal.
pub(super) async fn known_work(
    pipeline: Arc<Pipeline>,
    media_root: PathBuf,
    dir_prefix: String,
    after_id: i64,
) -> KnownWork {
    let mut work = KnownWork { unfinished: Vec::new(), rows: Vec::new(), next_after_id: after_id };
    match pipeline.journal().unfinished().await {
        Ok(entries) => {
            work.unfinished.extend(entries.into_iter().map(crate::journal::JournalEntry::into_path))
        }
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
            // A mark the journal refuses is logged; the next pass that reads the row tries again.
            sort_rows(&pipeline, &media_root, rows, &mut work, &mut UnwrittenMarks::default()).await;
        }
        Err(e) => debug!(error = %e, "reconcile skipped: database unavailable"),
    }
    work
}

/// The start-up pass: the journal's unfinished entries and every row still pointing at a
/// local file, a page at a time; a row whose file is missing is noted in the journal. Until it
/// has run, no file is matched (`Offer::RowsRead`): a row that names a free path must
/// be noted before a file that appears there is looked at, or the file's first look would find
/// that row and nothing to tell it from the file's owner. A database that cannot be read, or a
/// mark the journal cannot take (a full disk, an I/O error), is tried again, with backoff, until
/// the scan is whole: a scan that opened the gate short of one mark would let that row take the
/// next file saved under its free name. A journal that takes no more writes (a failed fsync) is
/// the daemon's fatal failure, as it is for a run.
pub(super) async fn first_scan(
    pipeline: Arc<Pipeline>,
    media_root: PathBuf,
    dir_prefix: String,
    retry_initial: Duration,
    retry_max: Duration,
) -> Result<KnownWork, Failure> {
    let mut failures = 0;
    let mut unwritten = UnwrittenMarks::default();
    loop {
        match scan_every_row(&pipeline, &media_root, &dir_prefix, &mut unwritten).await {
            Ok(work) => return Ok(work),
            Err(StartScanError::Journal(e)) => {
                return Err(Failure::new(Reason::Journal, format!("cannot write the journal: {e}")))
            }
            Err(e) => {
                let delay = crate::pipeline::backoff(failures, retry_initial, retry_max);
                failures += 1;
                warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "start-up scan incomplete; no file is matched before every row naming a local file is read and each whose file is missing is noted");
                tokio::time::sleep(delay).await;
            }
        }
    }
}

/// Why the start-up scan is not whole yet.
#[derive(Debug, thiserror::Error)]
pub enum StartScanError {
    #[error("cannot read the rows that name a local file: {0}")]
    Rows(#[from] crate::db::DbError),
    #[error("the journal refused {count} missing-file marks (each is logged)")]
    Marks { count: usize },
    /// The journal takes no more writes until a restart (`ErrorClass::Fatal`).
    #[error(transparent)]
    Journal(crate::journal::JournalError),
}

/// Rows a scan saw naming a missing file whose marks the journal refused, kept to be written
/// again. What was seen stays true once a file appears at the path (the next upload under the
/// free name), and a scan made then could no longer tell that the row is stale: so the marks
/// are written as seen, whatever the folder holds by the time the journal takes them.
#[derive(Default)]
pub struct UnwrittenMarks {
    marks: std::collections::HashMap<(RelativeMediaPath, i64, Option<String>), crate::db::VentaRow>,
    /// The first refusal that no retry can mend (a failed fsync).
    fatal: Option<crate::journal::JournalError>,
}

impl UnwrittenMarks {
    /// Keeps the mark `remember_missing` could not write for `row`.
    fn keep(
        &mut self,
        path: RelativeMediaPath,
        row: crate::db::VentaRow,
        error: crate::journal::JournalError,
    ) {
        if error.class() == ErrorClass::Fatal && self.fatal.is_none() {
            self.fatal = Some(error);
        }
        self.marks.insert((path, row.id, row.assigned.clone()), row);
    }

    /// Writes the kept marks again, up to the first the journal still refuses: that one and
    /// the rest stay kept, untried, so a journal that refuses them all logs one refusal a try.
    async fn write_again(&mut self, pipeline: &Pipeline) {
        let mut kept = std::mem::take(&mut self.marks).into_iter();
        for (key, row) in kept.by_ref() {
            if let Err(error) = remember_missing(pipeline, &key.0, &row).await {
                self.keep(key.0, row, error);
                break;
            }
        }
        self.marks.extend(kept);
    }

    fn refused(&mut self) -> Result<(), StartScanError> {
        if let Some(error) = self.fatal.take() {
            return Err(StartScanError::Journal(error));
        }
        match self.marks.len() {
            0 => Ok(()),
            count => Err(StartScanError::Marks { count }),
        }
    }
}

/// Every row naming a local file under `dir_prefix`, a page at a time, with the journal's
/// unfinished entries; whole only once every mark is written, `unwritten`'s from earlier
/// attempts first.
pub(super) async fn scan_every_row(
    pipeline: &Arc<Pipeline>,
    media_root: &Path,
    dir_prefix: &str,
    unwritten: &mut UnwrittenMarks,
) -> Result<KnownWork, StartScanError> {
    unwritten.write_again(pipeline).await;
    unwritten.refused()?;
    let mut work = KnownWork { unfinished: Vec::new(), rows: Vec::new(), next_after_id: i64::MIN };
    match pipeline.journal().unfinished().await {
        Ok(entries) => {
            work.unfinished.extend(entries.into_iter().map(crate::journal::JournalEntry::into_path))
        }
        Err(e) => warn!(error = %e, "cannot read unfinished journal entries"),
    }
    let mut after_id = i64::MIN;
    loop {
        let rows = pipeline.db().rows_with_local_file(dir_prefix, after_id, ROW_PAGE).await?;
        let Some(last) = rows.last() else {
            unwritten.refused()?;
            return Ok(work);
        };
        after_id = last.id;
        sort_rows(pipeline, media_root, rows, &mut work, unwritten).await;
    }
}

/// Files that exist at the paths `rows` name go to `work` as news; the rows whose file is
/// missing are noted in the journal, or kept in `unwritten` when it refuses the mark.
async fn sort_rows(
    pipeline: &Pipeline,
    media_root: &Path,
    rows: Vec<crate::db::VentaRow>,
    work: &mut KnownWork,
    unwritten: &mut UnwrittenMarks,
) {
    for row in rows {
        if let Some(Ok(path)) = row.confronta.as_deref().map(RelativeMediaPath::parse) {
            // symlink_metadata, not exists(): a dangling link or a FIFO must still get its
            // answer ("not a regular file").
            if std::fs::symlink_metadata(path.to_absolute(media_root)).is_ok() {
                work.rows.push(path);
            } else if let Err(error) = remember_missing(pipeline, &path, &row).await {
                unwritten.keep(path, row, error);
            }
        }
    }
}

/// Remembers (in the journal) that `row` names `path` while no file is there, so that a file
/// Django later saves under the same free name is not matched to this row unless the row is
/// written again. Logged once per row and path; a mark the journal refuses is logged every time
/// and returned, for the start-up scan to try again before it lets any file be matched.
pub(super) async fn remember_missing(
    pipeline: &Pipeline,
    path: &RelativeMediaPath,
    row: &crate::db::VentaRow,
) -> Result<(), crate::journal::JournalError> {
    match pipeline.journal().note_missing(path, row.id, row.assigned.clone()).await {
        Ok(true) => {
            // A row the daemon once recorded, now naming a local file again: a restored database.
            let restored = match pipeline.journal().objects_of(row.id).await {
                Ok(objects) => objects.into_iter().rev().find(|object| object.superseded_ms.is_none()),
                Err(_) => None,
            };
            match restored
                .filter(|object| row.minio_object_name.as_deref() != Some(object.object_name.as_str()))
            {
                Some(object) => warn!(
                    path = %path,
                    venta_id = row.id,
                    recorded_object = %object.object_name,
                    "row points at a missing local file, and the journal recorded an object for this venta (a database restore?); the object is kept, and confronta-sync repair points the row back at it"
                ),
                None => warn!(
                    path = %path,
                    venta_id = row.id,
                    "row points at a missing local file; a file that appears at this path later is not matched to it unless its save assigns one (a new upload, or confronta-sync adopt)"
                ),
            }
        }
        Ok(false) => {}
        Err(e) => {
            warn!(path = %path, venta_id = row.id, error = %e, "cannot note the missing file in the journal");
            return Err(e);
        }
    }
    Ok(())
}

/// At most one new folder watcher this often: one that dies at once must not spin the loop.
const WATCHER_RESTART_EVERY: Duration = Duration::from_secs(60);

/// The folder watcher running now, and when the loop last started one after the last ended.
pub(super) struct WatcherRestarts {
    pub(super) last: Option<Instant>,
    pub(super) _current: Option<crate::watch::FolderWatcher>,
}

impl WatcherRestarts {
    pub(super) fn running(watcher: crate::watch::FolderWatcher) -> WatcherRestarts {
        WatcherRestarts { last: None, _current: Some(watcher) }
    }
}

/// A reload changed `watch.poll_interval_ms`: a watcher in the new mode is started and, once it
/// runs, the old one stopped; the loop then walks the folder for what fell between them. `None`
/// (logged) when the new one cannot start: the old one goes on.
pub(super) fn switch_watcher(
    dir: &Path,
    poll: Option<Duration>,
    overflowed: &Arc<AtomicBool>,
    restarts: &mut WatcherRestarts,
) -> Option<mpsc::Receiver<WatchHint>> {
    let (sender, receiver) = mpsc::channel(crate::watch::HINT_QUEUE);
    match crate::watch::watch(dir, sender, overflowed.clone(), poll) {
        Ok(watcher) => {
            restarts._current = Some(watcher);
            let mode =
                poll.map_or("inotify".to_owned(), |every| format!("polling every {} ms", every.as_millis()));
            info!(folder = %dir.display(), %mode, "folder watcher started again in its new mode");
            Some(receiver)
        }
        Err(e) => {
            error!(folder = %dir.display(), error = %e, "cannot start the folder watcher in the mode watch.poll_interval_ms now asks for; the running watcher goes on");
            None
        }
    }
}

/// The hints channel closed: the watcher's thread ended, which it never does on its own (it
/// follows the folder through removals and remounts), so it panicked. A new watcher is started
/// at once, then at most once a minute. Until one runs, the returned channel stays open and
/// silent, and closes when the next start is due, which brings the loop back here: it is never
/// polled closed, which made a busy loop of the loop. Meanwhile files with a row move at the
/// reconcile passes.
pub(super) fn restart_watcher(
    dir: &Path,
    poll: Option<Duration>,
    overflowed: &Arc<AtomicBool>,
    restarts: &mut WatcherRestarts,
) -> mpsc::Receiver<WatchHint> {
    let (sender, receiver) = mpsc::channel(crate::watch::HINT_QUEUE);
    let wait =
        restarts.last.map_or(Duration::ZERO, |last| WATCHER_RESTART_EVERY.saturating_sub(last.elapsed()));
    if wait.is_zero() {
        restarts.last = Some(Instant::now());
        match crate::watch::watch(dir, sender.clone(), overflowed.clone(), poll) {
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

/// The path of `absolute` under the media root. A path outside it, or one that no Django row
/// could name, is logged and left alone.
pub(super) fn media_path_or_warn(media_root: &Path, absolute: &Path) -> Option<RelativeMediaPath> {
    // A file the pipeline moved aside to unlink it is the pipeline's business (`SetAside`).
    if crate::media_path::is_set_aside(absolute) {
        return None;
    }
    RelativeMediaPath::from_absolute(media_root, absolute)
        .map_err(|e| warn!(path = %absolute.display(), error = %e, "file ignored; it is kept where it is"))
        .ok()
}
