//! The watch follows the path, not the folder: a supervisor thread notices when another folder
//! stands at the watched path (removed, moved away, unmounted, mounted over, made again) and
//! watches that one instead.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use notify::Watcher;
use tokio::sync::mpsc;

use super::{send, start_watcher, WatchHint, IDENTITY_CHECK};

/// Which folder stands at a path: its device and inode.
type Identity = (u64, u64);

fn identity(dir: &Path) -> Option<Identity> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(dir).ok().filter(|meta| meta.is_dir()).map(|meta| (meta.dev(), meta.ino()))
}

/// Why the watch must be set up again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lost {
    Removed,
    MovedAway,
    Unmounted,
    /// Another folder (or a file system mounted over it) stands at the path.
    Replaced,
    /// A folder stands at the path again after none did.
    Back,
}

impl Lost {
    fn as_str(self) -> &'static str {
        match self {
            Lost::Removed => "removed",
            Lost::MovedAway => "moved away",
            Lost::Unmounted => "unmounted",
            Lost::Replaced => "replaced by another folder or a mount",
            Lost::Back => "made again",
        }
    }
}

/// A second inotify instance with no interest in files: it hears the watched folder's own end
/// (`IN_DELETE_SELF`, `IN_MOVE_SELF`, `IN_UNMOUNT`, `IN_IGNORED`) and a folder of its name
/// appearing in its parent, so that a new folder is watched within moments rather than at the
/// next identity check. notify reports the first two for its root but not an unmount, and
/// nothing in the parent, which it does not watch.
struct Sentinel {
    inotify: inotify::Inotify,
    /// The watch on the folder itself; events from any other (the parent) only wake the wait.
    folder: Option<inotify::WatchDescriptor>,
}

impl Sentinel {
    fn new(dir: &Path) -> std::io::Result<Sentinel> {
        let inotify = inotify::Inotify::init()?;
        let mut sentinel = Sentinel { inotify, folder: None };
        sentinel.rearm(dir);
        Ok(sentinel)
    }

    /// Watches the folder now at `dir` (and its parent, which may be new too).
    fn rearm(&mut self, dir: &Path) {
        use inotify::WatchMask;
        if let Some(old) = self.folder.take() {
            // Already gone if the kernel removed it with the folder; either way it is done.
            let _ = self.inotify.watches().remove(old);
        }
        let own = WatchMask::DELETE_SELF | WatchMask::MOVE_SELF | WatchMask::ONLYDIR;
        self.folder = self.inotify.watches().add(dir, own).ok();
        if let Some(parent) = dir.parent() {
            let children = WatchMask::CREATE
                | WatchMask::MOVED_TO
                | WatchMask::DELETE
                | WatchMask::MOVED_FROM
                | WatchMask::ONLYDIR;
            // Adding it again (the same inode) only sets the same mask again.
            let _ = self.inotify.watches().add(parent, children);
        }
    }

    /// Waits up to `limit` for events; returns whether the folder itself was lost, and how.
    /// Any event ends the wait, so a folder made at the path is looked at within moments.
    fn wait(&mut self, limit: Duration) -> Option<Lost> {
        use inotify::EventMask;
        use rustix::event::{poll, PollFd, PollFlags, Timespec};
        // A limit too long for a timespec (over i64::MAX seconds) is as good as none.
        let timeout = Timespec::try_from(limit).ok();
        let mut fds = [PollFd::new(&self.inotify, PollFlags::IN)];
        if !matches!(poll(&mut fds, timeout.as_ref()), Ok(ready) if ready > 0) {
            return None;
        }
        let mut lost = None;
        let mut buffer = [0u8; 4096];
        while let Ok(events) = self.inotify.read_events(&mut buffer) {
            let mut any = false;
            for event in events {
                any = true;
                if Some(&event.wd) == self.folder.as_ref() {
                    let kind = if event.mask.contains(EventMask::UNMOUNT) {
                        Some(Lost::Unmounted)
                    } else if event.mask.contains(EventMask::MOVE_SELF) {
                        Some(Lost::MovedAway)
                    } else if event.mask.intersects(EventMask::DELETE_SELF | EventMask::IGNORED) {
                        Some(Lost::Removed)
                    } else {
                        None
                    };
                    // The first reason wins: a removal is followed by IN_IGNORED, an unmount too.
                    lost = lost.or(kind);
                }
            }
            if !any {
                break;
            }
        }
        lost
    }
}

/// Owns the notify watcher and sets it up again whenever the folder at the path changes.
pub(super) struct Supervisor {
    dir: PathBuf,
    hints: mpsc::Sender<WatchHint>,
    overflowed: Arc<AtomicBool>,
    poll: Option<Duration>,
    watcher: Option<Box<dyn Watcher + Send>>,
    /// The folder the watcher watches; `None` while no folder stands at the path.
    armed: Option<Identity>,
    sentinel: Option<Sentinel>,
    /// Watching the folder again failed, and was logged: not logged again until it works.
    failing: bool,
    stop: Arc<AtomicBool>,
}

impl Supervisor {
    /// Takes over `watcher`, already watching `dir`, and follows the path from now on.
    pub(super) fn new(
        dir: &Path,
        hints: mpsc::Sender<WatchHint>,
        overflowed: Arc<AtomicBool>,
        poll: Option<Duration>,
        watcher: Box<dyn Watcher + Send>,
        stop: Arc<AtomicBool>,
    ) -> Supervisor {
        let armed = identity(dir);
        // Without inotify (its limits reached, say), the identity check alone re-arms the watch.
        let sentinel = Sentinel::new(dir)
            .map_err(|e| tracing::warn!(folder = %dir.display(), error = %e, "cannot watch the folder's own removal; checking its identity every second instead"))
            .ok();
        Supervisor {
            dir: dir.to_owned(),
            hints,
            overflowed,
            poll,
            watcher: Some(watcher),
            armed,
            sentinel,
            failing: false,
            stop,
        }
    }

    pub(super) fn run(&mut self) {
        while !self.stop.load(Ordering::SeqCst) {
            // The dead-watcher test ends this thread here, as a panic would.
            #[cfg(feature = "failpoints")]
            if fail::eval("watcher_thread", |_| ()).is_some() {
                tracing::warn!("folder watcher thread stopped by failpoint watcher_thread");
                return;
            }
            let lost = match self.sentinel.as_mut() {
                Some(sentinel) => sentinel.wait(IDENTITY_CHECK),
                None => {
                    std::thread::sleep(IDENTITY_CHECK);
                    None
                }
            };
            if self.stop.load(Ordering::SeqCst) {
                return;
            }
            let now = identity(&self.dir);
            if lost.is_some() || now != self.armed {
                let why = lost.unwrap_or(match (self.armed, now) {
                    (_, None) => Lost::Removed,
                    (None, Some(_)) => Lost::Back,
                    (Some(_), Some(_)) => Lost::Replaced,
                });
                self.rearm(why, now);
            }
        }
    }

    /// Drops the old watch and watches the folder now at the path, if there is one. The old
    /// watch must go first: inotify follows a moved folder, so it would go on reporting the
    /// moved folder's files under the old paths.
    fn rearm(&mut self, why: Lost, now: Option<Identity>) {
        let folder = self.dir.display().to_string();
        let was_watching = self.watcher.take().is_some();
        if now.is_none() {
            if was_watching {
                tracing::warn!(%folder, why = why.as_str(), "the watched folder is gone; files written at its path are not seen until a folder is there again");
            }
            self.armed = None;
            return;
        }
        match start_watcher(&self.dir, self.hints.clone(), self.overflowed.clone(), self.poll) {
            Ok(watcher) => {
                self.watcher = Some(watcher);
                // Taken after the watch is set: a folder swapped in between is caught next time.
                self.armed = now;
                self.failing = false;
                if let Some(sentinel) = self.sentinel.as_mut() {
                    sentinel.rearm(&self.dir);
                }
                tracing::warn!(%folder, why = why.as_str(), "watching the folder again; walking it for what was written before");
                // Files written before the new watch sent no event: the walk finds them.
                send(&self.hints, &self.overflowed, WatchHint::Rescan);
            }
            Err(e) => {
                if !self.failing {
                    tracing::warn!(%folder, why = why.as_str(), error = %e, "cannot watch the folder again; trying every second");
                }
                self.failing = true;
                // Not armed: the next check tries again.
                self.armed = None;
            }
        }
    }
}
