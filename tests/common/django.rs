//! Django's two ways of putting an upload into MEDIA_ROOT, which the daemon must both handle:
//! a small upload written in place, and a large one spooled to a temp file and renamed in.

use std::io::Write;
use std::path::Path;

/// The small-upload path (`MemoryFileUploadHandler`): create with O_EXCL, several chunked
/// writes of Django's 64 KiB `File.DEFAULT_CHUNK_SIZE`, then close. The daemon may see the file
/// while it is still growing. Nothing is fsynced, as Django does not: making an upload durable
/// is the daemon's job (`hash_file_durably`).
pub fn write_in_place(path: &Path, bytes: &[u8]) {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
    for chunk in bytes.chunks(64 * 1024) {
        file.write_all(chunk).unwrap();
    }
}

/// The large-upload path (`TemporaryFileUploadHandler`): the whole file written under
/// `scratch` (outside the watched folder), then renamed to `path`, so the daemon only ever sees
/// it complete.
pub fn rename_in(scratch: &Path, path: &Path, bytes: &[u8]) {
    let name = path.file_name().expect("an upload has a file name").to_string_lossy();
    let temp = scratch.join(format!("upload-{name}.part"));
    std::fs::write(&temp, bytes).unwrap_or_else(|e| panic!("write {}: {e}", temp.display()));
    std::fs::rename(&temp, path).unwrap_or_else(|e| panic!("rename into {}: {e}", path.display()));
}
