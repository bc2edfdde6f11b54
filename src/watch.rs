//! Event source: turns inotify events under the watched folder into "this path may be complete"
//! hints, and a folder walk that finds every file when events cannot be trusted.
//!
//! The watcher never touches the network, the database or the journal: it only forwards paths.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use notify::event::{AccessKind, AccessMode, CreateKind, ModifyKind, RenameMode};
use notify::{Event, EventKind, PollWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc;

/// A hint from the watcher.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchHint {
    /// inotify saw the file closed after writing, or renamed in: its writer is done with it.
    Closed(PathBuf),
    /// The poller saw the file appear or change: it is complete once it holds still.
    MaybeComplete(PathBuf),
    /// Events were lost (overflow, a folder moved in): walk the folder.
    Rescan,
}

/// Keeps the watcher alive; dropping it stops the events.
pub struct FolderWatcher {
    _watcher: Box<dyn Watcher + Send>,
}

/// Starts watching `dir` recursively, sending hints to `hints`. With `poll`, the folder is
/// scanned at that interval instead of using inotify (for NFS and other shared mounts, where
/// inotify sees only local writes).
///
/// `overflowed` is raised when a hint had to be dropped because the channel was full; the
/// daemon then walks the folder, which finds every file a dropped hint named.
pub fn watch(
    dir: &Path,
    hints: mpsc::Sender<WatchHint>,
    overflowed: Arc<AtomicBool>,
    poll: Option<Duration>,
) -> notify::Result<FolderWatcher> {
    let polling = poll.is_some();
    let handler = move |result: notify::Result<Event>| {
        let hint = match result {
            Ok(event) => classify(&event, polling),
            // The backend lost track (e.g. inotify queue overflow): only a walk is safe.
            Err(_) => Some(WatchHint::Rescan),
        };
        if let Some(hint) = hint {
            // Never block the notify thread: when the daemon is behind, drop the hint and ask
            // for a walk instead, which finds the same file (the hint carried nothing else).
            if hints.try_send(hint).is_err() {
                overflowed.store(true, Ordering::SeqCst);
            }
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
    Ok(FolderWatcher { _watcher: watcher })
}

/// Which events say a file may be complete. With inotify, create and plain modify never do:
/// Django writes small uploads in place in chunks, so only the close after writing marks the
/// end, and its large uploads are renamed in whole. A poller sees no closes, only changes;
/// there the settle time alone decides.
fn classify(event: &Event, polling: bool) -> Option<WatchHint> {
    if event.need_rescan() {
        return Some(WatchHint::Rescan);
    }
    if polling && matches!(event.kind, EventKind::Create(_) | EventKind::Modify(_)) {
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

/// Every regular file under `dir`, recursively, without following symlinks, sorted. Unreadable
/// sub-folders are logged and skipped; they cannot hide a file from a later walk.
pub fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    walk_each(dir, |file| files.push(file));
    files.sort();
    files
}

/// [`walk`] without the list: hands each file to `found` as it is listed, so a backlog of
/// 100,000 files is never held as absolute paths all at once.
pub fn walk_each(dir: &Path, found: impl FnMut(PathBuf)) {
    Walk::new(dir).for_each(found);
}

/// A walk taken one file at a time, in directory order: a rescan pulls files from it only as
/// fast as it can work on them, so a large backlog is never pending all at once.
pub struct Walk {
    folders: Vec<PathBuf>,
    entries: Option<std::fs::ReadDir>,
}

impl Walk {
    pub fn new(dir: &Path) -> Walk {
        Walk { folders: vec![dir.to_owned()], entries: None }
    }
}

impl Iterator for Walk {
    type Item = PathBuf;

    fn next(&mut self) -> Option<PathBuf> {
        loop {
            let Some(entries) = self.entries.as_mut() else {
                let folder = self.folders.pop()?;
                match std::fs::read_dir(&folder) {
                    Ok(entries) => self.entries = Some(entries),
                    Err(e) => tracing::warn!(folder = %folder.display(), error = %e, "cannot list folder"),
                }
                continue;
            };
            match entries.next() {
                None => self.entries = None,
                Some(Ok(entry)) => match entry.file_type() {
                    Ok(kind) if kind.is_dir() => self.folders.push(entry.path()),
                    Ok(kind) if kind.is_file() => return Some(entry.path()),
                    // Symlinks, FIFOs and sockets are never candidates, and a symlinked folder
                    // is never descended into: it may point anywhere.
                    _ => {}
                },
                // An entry that cannot be read is skipped; the next walk tries it again.
                Some(Err(_)) => {}
            }
        }
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
                WatchHint::Closed(p) | WatchHint::MaybeComplete(p) => {
                    p.starts_with(media.path().join("evil"))
                }
                WatchHint::Rescan => false,
            };
            assert!(!seen.iter().any(through_link), "poll {poll:?}: {seen:?}");
        }
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
