//! The daemon's walks of the watched folder, off the scheduler loop. A walk stats every entry,
//! and a large backlog on NFS or a cold disk takes minutes: run on the loop, it held back
//! dispatch, STATUS and systemd's watchdog (which then killed a daemon that had moved nothing,
//! again at every start). Here each walk runs on a blocking thread and streams the files it
//! finds over a bounded channel, so the loop offers them as they come and files move before
//! the walk ends.

use std::path::PathBuf;

use tokio::sync::mpsc;
use tracing::debug;

use crate::watch::Walk;

/// Paths a walk may find ahead of the loop: enough to keep it busy, small enough that a walk
/// of a huge folder never holds more than this many in memory.
const WALK_BUFFER: usize = 1024;

/// At most one walk at a time, and one more asked for while it runs.
pub(super) struct FolderWalks {
    dir: PathBuf,
    running: Option<mpsc::Receiver<PathBuf>>,
    /// Another walk was asked for while one ran: a file written since that walk passed its
    /// folder is found by the next.
    again: bool,
    found: u64,
}

impl FolderWalks {
    pub(super) fn new(dir: PathBuf) -> FolderWalks {
        FolderWalks { dir, running: None, again: false, found: 0 }
    }

    /// Starts a walk, or asks for one more after the one running.
    pub(super) fn request(&mut self) {
        if self.running.is_some() {
            self.again = true;
        } else {
            self.start();
        }
    }

    pub(super) fn is_running(&self) -> bool {
        self.running.is_some()
    }

    /// The next file the running walk found; `None` once it ended (then the walk asked for
    /// meanwhile starts). Cancel-safe, as `select!` needs: a path is taken only when returned.
    pub(super) async fn next(&mut self) -> Option<PathBuf> {
        let receiver = self.running.as_mut()?;
        match receiver.recv().await {
            Some(path) => {
                self.found += 1;
                Some(path)
            }
            None => {
                debug!(count = self.found, folder = %self.dir.display(), "walked folder");
                self.running = None;
                self.found = 0;
                if std::mem::take(&mut self.again) {
                    self.start();
                }
                None
            }
        }
    }

    fn start(&mut self) {
        let (sender, receiver) = mpsc::channel(WALK_BUFFER);
        let dir = self.dir.clone();
        tokio::task::spawn_blocking(move || {
            for path in Walk::new(&dir) {
                // The loop stopped listening (shutdown): the walk has no one to tell.
                if sender.blocking_send(path).is_err() {
                    break;
                }
            }
        });
        self.running = Some(receiver);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every file is streamed, then the walk ends; one asked for meanwhile runs after it.
    #[tokio::test]
    async fn a_walk_streams_every_file_and_a_second_one_asked_for_meanwhile_follows() {
        let temp = tempfile::tempdir().unwrap();
        for name in ["a.pdf", "b.pdf", "c.pdf"] {
            std::fs::write(temp.path().join(name), b"x").unwrap();
        }
        let mut walks = FolderWalks::new(temp.path().to_owned());
        walks.request();
        walks.request();
        let mut found = Vec::new();
        let mut ended = 0;
        while walks.is_running() {
            match walks.next().await {
                Some(path) => found.push(path.file_name().unwrap().to_string_lossy().into_owned()),
                None => ended += 1,
            }
        }
        found.sort();
        assert_eq!(found, ["a.pdf", "a.pdf", "b.pdf", "b.pdf", "c.pdf", "c.pdf"]);
        assert_eq!(ended, 2, "two walks ran");
    }
}
