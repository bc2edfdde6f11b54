//! Event source: turns inotify events under the watched folder into "this path may be complete"
//! hints, and a folder walk that finds every file when events cannot be trusted. The watch
//! follows the folder's path (`follow`); the walk is in `walk`.
//!
//! The watcher never touches the network, the database or the journal: it only forwards paths.

mod follow;
mod walk;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use follow::Supervisor;
use notify::event::{AccessKind, AccessMode, CreateKind, ModifyKind, RemoveKind, RenameMode};
use notify::{Event, EventKind, PollWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc;
pub use walk::{walk, walk_each, Walk};

/// A hint from the watcher.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchHint {
    /// inotify saw the file closed after writing, or renamed in: its writer is done with it.
    Closed(PathBuf),
    /// The poller saw the file appear or change: it is complete once it holds still.
    MaybeComplete(PathBuf),
    /// Events were lost (overflow, a folder moved in): walk the folder.
    Rescan,
    /// A file was deleted or moved away: the rows naming it now name a free name
    /// (`Pipeline::note_vanished`).
    Removed(PathBuf),
}

/// How many hints may wait for the daemon before the watcher drops one and asks for a walk.
pub const HINT_QUEUE: usize = 4096;

/// How often the watcher checks that the folder at the watched path is still the one it
/// watches. inotify reports the folder's removal and move at once (`follow::Sentinel`), but not a
/// file system mounted over it, nor anything on NFS done by another host; a `stat` a second
/// catches those.
const IDENTITY_CHECK: Duration = Duration::from_secs(1);

/// Keeps the watcher alive; dropping it stops the events (within [`IDENTITY_CHECK`]).
pub struct FolderWatcher {
    stop: Arc<AtomicBool>,
}

impl Drop for FolderWatcher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// Starts watching `dir` recursively, sending hints to `hints`. With `poll`, the folder is
/// scanned at that interval instead of using inotify (for NFS and other shared mounts, where
/// inotify sees only local writes).
///
/// `overflowed` is raised when a hint had to be dropped because the channel was full; the
/// daemon then walks the folder, which finds every file a dropped hint named.
///
/// The watch follows the path, not the folder: when `dir` is removed, moved away, unmounted or
/// mounted over, and a folder stands at the path again, that folder is watched from then on,
/// a warning says so, and a [`WatchHint::Rescan`] finds what was written before the new watch.
/// Only a failure to watch `dir` at all, now, is an error.
pub fn watch(
    dir: &Path,
    hints: mpsc::Sender<WatchHint>,
    overflowed: Arc<AtomicBool>,
    poll: Option<Duration>,
) -> notify::Result<FolderWatcher> {
    let watcher = start_watcher(dir, hints.clone(), overflowed.clone(), poll)?;
    let stop = Arc::new(AtomicBool::new(false));
    let mut supervisor = Supervisor::new(dir, hints, overflowed, poll, watcher, stop.clone());
    std::thread::Builder::new()
        .name("folder-watcher".into())
        .spawn(move || supervisor.run())
        .map_err(notify::Error::io)?;
    Ok(FolderWatcher { stop })
}

/// One notify watcher on `dir`: its callback only classifies and forwards.
fn start_watcher(
    dir: &Path,
    hints: mpsc::Sender<WatchHint>,
    overflowed: Arc<AtomicBool>,
    poll: Option<Duration>,
) -> notify::Result<Box<dyn Watcher + Send>> {
    let polling = poll.is_some();
    let handler = move |result: notify::Result<Event>| {
        let hint = match result {
            Ok(event) => classify(&event, polling),
            // The backend lost track (e.g. inotify queue overflow): only a walk is safe.
            Err(_) => Some(WatchHint::Rescan),
        };
        if let Some(hint) = hint {
            send(&hints, &overflowed, hint);
        }
    };
    // notify follows symlinked folders by default; a link inside the folder may point anywhere,
    // so neither backend may watch through it (the folder given here is still resolved).
    let config = notify::Config::default().with_follow_symlinks(false);
    let mut watcher: Box<dyn Watcher + Send> = match poll {
        Some(interval) => Box::new(PollWatcher::new(handler, config.with_poll_interval(interval))?),
        None => Box::new(notify::RecommendedWatcher::new(handler, config)?),
    };
    watcher.watch(dir, RecursiveMode::Recursive)?;
    Ok(watcher)
}

/// Never blocks the notify thread: when the daemon is behind, the hint is dropped and a walk
/// asked for instead, which finds the same file (the hint carried nothing else).
fn send(hints: &mpsc::Sender<WatchHint>, overflowed: &AtomicBool, hint: WatchHint) {
    if hints.try_send(hint).is_err() {
        overflowed.store(true, Ordering::SeqCst);
    }
}
/// Which events say a file may be complete. With inotify, create and plain modify never do:
/// Django writes small uploads in place in chunks, so only the close after writing marks the
/// end, and its large uploads are renamed in whole. A poller sees no closes, only changes;
/// there the settle time alone decides.
fn classify(event: &Event, polling: bool) -> Option<WatchHint> {
    if event.need_rescan() {
        return Some(WatchHint::Rescan);
    }
    if polling
        && matches!(
            event.kind,
            EventKind::Create(_)
                | EventKind::Modify(ModifyKind::Data(_) | ModifyKind::Metadata(_) | ModifyKind::Any)
        )
    {
        return event.paths.last().cloned().map(|path| hint_for_moved_in(path, WatchHint::MaybeComplete));
    }
    match event.kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => {
            event.paths.first().cloned().map(WatchHint::Closed)
        }
        EventKind::Modify(ModifyKind::Name(RenameMode::To)) => {
            event.paths.first().cloned().map(|path| hint_for_moved_in(path, WatchHint::Closed))
        }
        EventKind::Modify(ModifyKind::Name(RenameMode::Both)) => {
            event.paths.get(1).cloned().map(|path| hint_for_moved_in(path, WatchHint::Closed))
        }
        // A folder created or moved in may already hold files that sent no event of their own.
        EventKind::Create(CreateKind::Folder) => Some(WatchHint::Rescan),
        EventKind::Remove(RemoveKind::File | RemoveKind::Any)
        | EventKind::Modify(ModifyKind::Name(RenameMode::From)) => {
            event.paths.first().cloned().map(WatchHint::Removed)
        }
        _ => None,
    }
}

fn hint_for_moved_in(path: PathBuf, file_hint: fn(PathBuf) -> WatchHint) -> WatchHint {
    if path.is_dir() {
        WatchHint::Rescan
    } else {
        file_hint(path)
    }
}
#[cfg(test)]
mod tests {
    use super::*;
    use notify::event::{AccessKind, AccessMode};

    #[test]
    fn only_close_write_and_moves_are_hints() {
        let path = PathBuf::from("/m/confrontas/a.pdf");
        let event = |kind| Event::new(kind).add_path(path.clone());
        let cases = [
            (event(EventKind::Access(AccessKind::Close(AccessMode::Write))), true),
            (event(EventKind::Modify(ModifyKind::Name(RenameMode::To))), true),
            (event(EventKind::Create(CreateKind::File)), false),
            (event(EventKind::Modify(ModifyKind::Data(notify::event::DataChange::Any))), false),
            (event(EventKind::Access(AccessKind::Close(AccessMode::Read))), false),
        ];
        for (event, expected) in cases {
            let hint = classify(&event, false);
            assert_eq!(hint == Some(WatchHint::Closed(path.clone())), expected, "{event:?}");
        }
    }

    #[test]
    fn a_poller_sees_changes_which_must_still_settle() {
        let path = PathBuf::from("/m/confrontas/a.pdf");
        for kind in [EventKind::Create(CreateKind::File), EventKind::Modify(ModifyKind::Any)] {
            let hint = classify(&Event::new(kind).add_path(path.clone()), true);
            assert_eq!(hint, Some(WatchHint::MaybeComplete(path.clone())), "{kind:?}");
        }
    }

    /// Issue 12, item 7: neither inotify nor the poller may watch through a symlinked folder.
    #[tokio::test]
    async fn the_watcher_does_not_watch_through_a_symlinked_folder() {
        for poll in [None, Some(Duration::from_millis(100))] {
            let media = tempfile::tempdir().unwrap();
            let outside = tempfile::tempdir().unwrap();
            std::fs::create_dir(media.path().join("real")).unwrap();
            std::os::unix::fs::symlink(outside.path(), media.path().join("evil")).unwrap();
            let (sender, mut hints) = mpsc::channel(64);
            let _watcher = watch(media.path(), sender, Arc::new(AtomicBool::new(false)), poll).unwrap();
            std::fs::write(outside.path().join("doc.pdf"), b"%PDF-1.7").unwrap();
            let real = media.path().join("real/doc.pdf");
            std::fs::write(&real, b"%PDF-1.7").unwrap();
            // The write through the link came first; once the real one is in (and, for the
            // poller, one more scan has passed), a hint for it would have arrived too.
            let mut seen = Vec::new();
            while !seen
                .iter()
                .any(|hint| matches!(hint, WatchHint::Closed(p) | WatchHint::MaybeComplete(p) if *p == real))
            {
                let hint = tokio::time::timeout(Duration::from_secs(10), hints.recv()).await;
                seen.push(hint.expect("a hint for the real file").expect("watcher alive"));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
            while let Ok(hint) = hints.try_recv() {
                seen.push(hint);
            }
            let through_link = |hint: &WatchHint| match hint {
                WatchHint::Closed(p) | WatchHint::MaybeComplete(p) | WatchHint::Removed(p) => {
                    p.starts_with(media.path().join("evil"))
                }
                WatchHint::Rescan => false,
            };
            assert!(!seen.iter().any(through_link), "poll {poll:?}: {seen:?}");
        }
    }

    /// Issue 17, item 5: after the folder is removed or moved away and made again, the new
    /// folder is watched (a rescan is asked for, and its files send hints), with both backends.
    #[tokio::test]
    async fn a_folder_removed_or_moved_away_and_made_again_is_watched_again() {
        for (poll, remove) in [(None, true), (None, false), (Some(Duration::from_millis(100)), false)] {
            let media = tempfile::tempdir().unwrap();
            let dir = media.path().join("confrontas");
            std::fs::create_dir(&dir).unwrap();
            let (sender, mut hints) = mpsc::channel(64);
            let _watcher = watch(&dir, sender, Arc::new(AtomicBool::new(false)), poll).unwrap();
            if remove {
                std::fs::remove_dir(&dir).unwrap();
            } else {
                std::fs::rename(&dir, media.path().join("x")).unwrap();
            }
            std::fs::create_dir(&dir).unwrap();
            let mut seen = Vec::new();
            let wait = |seen: &Vec<WatchHint>| !seen.contains(&WatchHint::Rescan);
            while wait(&seen) {
                let hint = tokio::time::timeout(Duration::from_secs(10), hints.recv()).await;
                seen.push(hint.expect("a rescan once the new folder is watched").expect("watcher alive"));
            }
            // The rescan seen may be the old watch's own (it reports its folder's removal) and
            // come before the new watch is set; a file written then is the walk's to find, not
            // the watcher's. So the file is written again until the new watch reports it.
            let file = dir.join("nuevo.pdf");
            let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
            'written: loop {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "poll {poll:?}: no hint for a file in the new folder"
                );
                std::fs::write(&file, b"%PDF-1.7").unwrap();
                while let Ok(hint) = tokio::time::timeout(Duration::from_millis(500), hints.recv()).await {
                    match hint.expect("watcher alive") {
                        WatchHint::Closed(p) | WatchHint::MaybeComplete(p) if p == file => break 'written,
                        _ => {}
                    }
                }
            }
        }
    }

    /// Waits for a rescan, then for a hint naming a file written in the folder after it.
    async fn rescan_then_hint_for_a_new_file(hints: &mut mpsc::Receiver<WatchHint>, dir: &Path, name: &str) {
        loop {
            let hint = tokio::time::timeout(Duration::from_secs(10), hints.recv()).await;
            if hint.expect("a rescan once the folder is watched again").expect("watcher alive")
                == WatchHint::Rescan
            {
                break;
            }
        }
        let file = dir.join(name);
        std::fs::write(&file, b"%PDF-1.7").unwrap();
        loop {
            let hint = tokio::time::timeout(Duration::from_secs(10), hints.recv()).await;
            match hint.expect("a hint for a file in the folder").expect("watcher alive") {
                WatchHint::Closed(p) | WatchHint::MaybeComplete(p) if p == file => break,
                _ => {}
            }
        }
    }

    /// Issue 17, item 5: a file system mounted over the folder (no inotify event says so) and
    /// unmounted again (IN_UNMOUNT, which notify drops): each time the folder now at the path
    /// is watched. Needs root, as the test suite runs.
    #[tokio::test]
    async fn a_folder_mounted_over_and_unmounted_is_watched_again() {
        let media = tempfile::tempdir().unwrap();
        let dir = media.path().join("confrontas");
        std::fs::create_dir(&dir).unwrap();
        let (sender, mut hints) = mpsc::channel(64);
        let _watcher = watch(&dir, sender, Arc::new(AtomicBool::new(false)), None).unwrap();
        let run = |args: &[&str]| {
            let status = std::process::Command::new(args[0]).args(&args[1..]).status().unwrap();
            assert!(status.success(), "{args:?} (the test suite runs as root)");
        };
        /// A failing test must not leave its tmpfs mounted.
        struct Mounted(PathBuf);
        impl Drop for Mounted {
            fn drop(&mut self) {
                let _ = std::process::Command::new("umount").arg(&self.0).status();
            }
        }
        let target = dir.to_str().unwrap();
        run(&["mount", "-t", "tmpfs", "tmpfs", target]);
        let mounted = Mounted(dir.clone());
        rescan_then_hint_for_a_new_file(&mut hints, &dir, "montado.pdf").await;
        std::mem::forget(mounted);
        run(&["umount", target]);
        rescan_then_hint_for_a_new_file(&mut hints, &dir, "desmontado.pdf").await;
    }

    #[test]
    fn walk_finds_nested_files_and_skips_symlinks_and_symlinked_folders() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("a/b")).unwrap();
        std::fs::write(dir.path().join("top.pdf"), b"x").unwrap();
        std::fs::write(dir.path().join("a/b/deep.pdf"), b"x").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", dir.path().join("link")).unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("doc.pdf"), b"x").unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("symlinked_folder")).unwrap();
        let found = walk(dir.path());
        assert_eq!(found, vec![dir.path().join("a/b/deep.pdf"), dir.path().join("top.pdf")]);
    }
}
