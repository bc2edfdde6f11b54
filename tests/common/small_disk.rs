//! The journal's folder on a small tmpfs that a test can fill, for the disk-full cases: files
//! must wait and nothing may be deleted while the journal cannot be written.

use std::io::Write as _;
use std::path::PathBuf;

use super::World;

/// The journal's folder on a 2 MiB tmpfs (mounting needs root); unmounted when dropped.
pub struct SmallJournalDisk {
    folder: PathBuf,
    journal: PathBuf,
}

impl SmallJournalDisk {
    pub fn mount(world: &World) -> SmallJournalDisk {
        let journal = world.journal_path();
        let folder = journal.parent().unwrap().to_owned();
        std::fs::create_dir_all(&folder).unwrap();
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=2m", "tmpfs"])
            .arg(&folder)
            .status()
            .unwrap()
            .success();
        assert!(mounted, "this test needs to mount a tmpfs (root)");
        SmallJournalDisk { folder, journal }
    }

    /// Fills the disk so that no journal write can land, and returns the reader that makes it
    /// so: `COMMIT` it, drop it and remove `filler()` to give the journal room again.
    ///
    /// A reader holds a snapshot that includes the WAL's frames, so SQLite cannot start the WAL
    /// over from its beginning: every write must grow a file, and the disk is full. The scratch
    /// table puts frames in the WAL that no checkpoint has copied yet, so the snapshot reads
    /// from the WAL, which is what pins it. The TRUNCATE comes first: a WAL file left long by
    /// earlier writes would take the next frames in place without growing, and a file could go
    /// on (rightly: its journal writes succeeded), which is not the case under test.
    pub fn fill(&self) -> rusqlite::Connection {
        let reader = rusqlite::Connection::open(&self.journal).unwrap();
        reader
            .execute_batch(
                "PRAGMA wal_checkpoint(TRUNCATE); PRAGMA wal_autocheckpoint = 0; CREATE TABLE test_pin (x); \
                 BEGIN; SELECT count(*) FROM files;",
            )
            .unwrap();
        let mut filler = std::fs::File::create(self.filler()).unwrap();
        let chunk = vec![0u8; 64 * 1024];
        while filler.write_all(&chunk).is_ok() {}
        let _ = filler.sync_all();
        reader
    }

    /// The file that fills the disk.
    pub fn filler(&self) -> PathBuf {
        self.folder.join("filler")
    }
}

impl Drop for SmallJournalDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(&self.folder).status();
    }
}
