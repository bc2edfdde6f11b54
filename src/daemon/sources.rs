//! Where the scheduler's paths come from: the watcher's hints, walks of the folder, the
//! reconcile pass (rows still pointing at a local file, and the journal's unfinished entries),
//! and the restart of a watcher that stopped.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tracing::{debug, error, info, warn};

use super::scheduler::{Scheduler, Source};
use crate::error::Reason;
use crate::media_path::RelativeMediaPath;
use crate::pipeline::{Failure, Pipeline};
use crate::watch::WatchHint;

/// How many rows a reconcile pass reads at most; the next pass reads on from there.
const RECONCILE_BATCH: i64 = 10_000;
/// Rows read per query when every row with a local file is walked.
const ROW_PAGE: i64 = 1_000;
/// How many paths a rescan keeps pending from its walk at most.
const WALK_WINDOW: usize = 1_024;

impl Scheduler {
    /// A watcher's hint that `absolute` may be ready (`closed`: its writer closed it or renamed
    /// it in).
    pub(super) fn offer_absolute(&mut self, absolute: &Path, closed: bool) {
        if let Some(path) = media_path_or_warn(&self.media_root, absolute) {
            self.offer_with(path, closed, Source::Watcher);
        }
    }

    /// The watcher saw a file deleted or moved away: the rows naming it are noted, off the
    /// loop (`Pipeline::note_vanished` asks the database).
    pub(super) fn note_vanished(&self, absolute: &Path) {
        if let Some(path) = media_path_or_warn(&self.media_root, absolute) {
            let pipeline = self.pipeline.clone();
            tokio::spawn(async move { pipeline.note_vanished(&path).await });
        }
    }

    /// A path given by name (`--rescan --venta`): found without a close event.
    pub(super) fn offer_path(&mut self, path: RelativeMediaPath) {
        self.offer(path);
    }

    /// A file a walk of the folder found.
    pub(super) fn offer_found(&mut self, absolute: &Path) {
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

    /// Offers files from the rescan's walk until `WALK_WINDOW` paths are pending: enough to
    /// keep every slot busy, never the whole backlog at once.
    pub(super) fn refill_from_walk(&mut self) {
        while self.pending.len() < WALK_WINDOW {
            let Some(file) = self.walk.as_mut().and_then(Iterator::next) else {
                self.walk = None;
                return;
            };
            self.offer_found(&file);
        }
    }

    /// Offers every path the journal has unfinished work for, and every row still pointing at
    /// a local file: a missed event then costs latency, never a file. Awaited here by the
    /// one-shot runs; the daemon runs the same pass as a task of its own (`spawn_reconcile`).
    pub(super) async fn offer_known_work(&mut self, dir_prefix: &str) {
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
    pub(super) fn spawn_reconcile(&self, dir_prefix: &str) -> tokio::task::JoinHandle<KnownWork> {
        tokio::spawn(known_work(
            self.pipeline.clone(),
            self.media_root.clone(),
            dir_prefix.to_owned(),
            self.reconcile_after_id,
        ))
    }

    pub(super) fn take_known_work(&mut self, work: KnownWork) {
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
    pub(super) async fn count_rows_missing_their_file(&mut self, dir_prefix: &str) {
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
}

/// What one reconcile pass found.
pub(super) struct KnownWork {
    /// Paths of unfinished journal entries.
    pub(super) unfinished: Vec<RelativeMediaPath>,
    /// Files that exist at the paths rows name: news for a file waiting for its row.
    pub(super) rows: Vec<RelativeMediaPath>,
    /// Where the next pass starts (see `Scheduler::reconcile_after_id`).
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
            sort_rows(&pipeline, &media_root, rows, &mut work).await;
        }
        Err(e) => debug!(error = %e, "reconcile skipped: database unavailable"),
    }
    work
}

/// The start-up pass: the journal's unfinished entries and every row still pointing at a
/// local file, a page at a time; a row whose file is missing is noted in the journal. Until it
/// has run, no file is matched (`Scheduler::first_scan_done`): a row that names a free path must
/// be noted before a file that appears there is looked at, or the file's first look would find
/// that row and nothing to tell it from the file's owner. A database that cannot be read is
/// asked again, with backoff, until it answers.
pub(super) async fn first_scan(
    pipeline: Arc<Pipeline>,
    media_root: PathBuf,
    dir_prefix: String,
    retry_initial: Duration,
    retry_max: Duration,
) -> KnownWork {
    let mut failures = 0;
    loop {
        match scan_every_row(&pipeline, &media_root, &dir_prefix).await {
            Ok(work) => return work,
            Err(e) => {
                let delay = crate::pipeline::backoff(failures, retry_initial, retry_max);
                failures += 1;
                warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "cannot read the rows that name a local file; no file is matched before they are read");
                tokio::time::sleep(delay).await;
            }
        }
    }
}

pub(super) async fn scan_every_row(
    pipeline: &Arc<Pipeline>,
    media_root: &Path,
    dir_prefix: &str,
) -> Result<KnownWork, crate::db::DbError> {
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
            return Ok(work);
        };
        after_id = last.id;
        sort_rows(pipeline, media_root, rows, &mut work).await;
    }
}

/// Files that exist at the paths `rows` name go to `work` as news; the rows whose file is
/// missing are noted in the journal.
async fn sort_rows(
    pipeline: &Pipeline,
    media_root: &Path,
    rows: Vec<crate::db::VentaRow>,
    work: &mut KnownWork,
) {
    for row in rows {
        if let Some(Ok(path)) = row.confronta.as_deref().map(RelativeMediaPath::parse) {
            // symlink_metadata, not exists(): a dangling link or a FIFO must still get its
            // answer ("not a regular file").
            if std::fs::symlink_metadata(path.to_absolute(media_root)).is_ok() {
                work.rows.push(path);
            } else {
                remember_missing(pipeline, &path, &row).await;
            }
        }
    }
}

/// Remembers (in the journal) that `row` names `path` while no file is there, so that a file
/// Django later saves under the same free name is not matched to this row unless the row is
/// written again. Logged once per row and path.
pub(super) async fn remember_missing(
    pipeline: &Pipeline,
    path: &RelativeMediaPath,
    row: &crate::db::VentaRow,
) {
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
            warn!(path = %path, venta_id = row.id, error = %e, "cannot note the missing file in the journal")
        }
    }
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
