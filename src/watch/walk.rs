//! The folder walk: every regular file under the watched folder, for a rescan or when events
//! were lost.

use std::path::{Path, PathBuf};

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
