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

/// A walk taken one file at a time, depth first: a rescan pulls files from it only as fast as it
/// can work on them, so a large backlog is never pending all at once.
pub struct Walk {
    root: PathBuf,
    entries: walkdir::IntoIter,
}

impl Walk {
    pub fn new(dir: &Path) -> Walk {
        // `follow_links(false)`: a symlinked folder is listed as a link and never descended
        // into, since it may point anywhere. `dir` itself is followed (walkdir's root rule),
        // as `read_dir` would: MEDIA_ROOT and the watched folder may be links to another disk.
        // `min_depth(1)`: the folder itself is never a candidate, even if a file stands there.
        let entries = walkdir::WalkDir::new(dir).follow_links(false).min_depth(1).into_iter();
        Walk { root: dir.to_owned(), entries }
    }
}

impl Iterator for Walk {
    type Item = PathBuf;

    fn next(&mut self) -> Option<PathBuf> {
        loop {
            // Where the tests make each entry slow, as a cold disk or NFS does.
            crate::error::pause_point_blocking("walk_entry");
            match self.entries.next()? {
                Ok(entry) if entry.file_type().is_file() => return Some(entry.into_path()),
                // Folders are descended into by walkdir; symlinks, FIFOs and sockets are never
                // candidates.
                Ok(_) => {}
                // A folder or entry that cannot be read is skipped, and the walk goes on; the
                // next walk tries it again. The error names the path where walkdir knows it.
                Err(e) => tracing::warn!(folder = %self.root.display(), error = %e, "cannot list folder"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deeper than the handles walkdir keeps open (10), with a FIFO, links to a file and to a
    /// folder at the bottom: every regular file is found, once, and nothing behind a link.
    #[test]
    fn a_walk_deeper_than_walkdirs_open_handles_finds_every_file_and_no_link() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("outside.pdf"), b"x").unwrap();
        let mut folder = dir.path().to_owned();
        let mut expected = Vec::new();
        for depth in 0..15 {
            for name in ["a.pdf", "b.pdf"] {
                let file = folder.join(format!("{depth}{name}"));
                std::fs::write(&file, b"x").unwrap();
                expected.push(file);
            }
            folder = folder.join(format!("level{depth}"));
            std::fs::create_dir(&folder).unwrap();
        }
        use rustix::fs::{mknodat, FileType, Mode, CWD};
        mknodat(CWD, folder.join("fifo"), FileType::Fifo, Mode::from_raw_mode(0o600), 0).unwrap();
        std::os::unix::fs::symlink(&expected[0], folder.join("link.pdf")).unwrap();
        std::os::unix::fs::symlink(outside.path(), folder.join("linked_folder")).unwrap();
        expected.sort();
        assert_eq!(walk(dir.path()), expected);
        assert_eq!(Walk::new(dir.path()).count(), expected.len());
    }
}
