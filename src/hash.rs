//! Streaming SHA-256 of a local file, plus the identity (device, inode, size, mtime, ctime,
//! birth time) that later proves the file is still the one that was hashed.

use std::fmt;
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use base64::Engine as _;
use rustix::fs::{Mode, OFlags};
use sha2::{Digest as _, Sha256};

use crate::media_path::{open_no_follow, symlink_metadata_no_follow, NoFollowError};

/// How much of the file start is kept for content sniffing.
pub const HEAD_BYTES: usize = 8192;
const READ_BUFFER: usize = 1024 * 1024;

/// A SHA-256 digest.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Sha256Digest([u8; 32]);

impl Sha256Digest {
    pub fn of_bytes(bytes: &[u8]) -> Self {
        Sha256Digest(Sha256::digest(bytes).into())
    }

    pub fn from_hex(hex_text: &str) -> Option<Self> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(hex_text, &mut out).ok()?;
        Some(Sha256Digest(out))
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// The form S3 uses in `x-amz-checksum-sha256`.
    pub fn to_base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.0)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

/// SHA-256 of data that arrives in pieces (an object hashed as it downloads), with its length.
#[derive(Default)]
pub struct Sha256Stream {
    hasher: Sha256,
    length: u64,
}

impl Sha256Stream {
    pub fn update(&mut self, chunk: &[u8]) {
        self.hasher.update(chunk);
        self.length += chunk.len() as u64;
    }

    /// The digest and the number of bytes hashed.
    pub fn finish(self) -> (Sha256Digest, u64) {
        (Sha256Digest(self.hasher.finalize().into()), self.length)
    }
}

impl fmt::Debug for Sha256Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sha256Digest({})", self.to_hex())
    }
}

impl fmt::Display for Sha256Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// What identifies one version of a local file: if any field changes, it is not the file that
/// was hashed any more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileIdentity {
    pub dev: u64,
    pub inode: u64,
    pub size: u64,
    pub mtime_ns: i64,
    /// Changes with every write and metadata change, and, unlike the mtime, cannot be set back:
    /// a file rewritten in place with its size and mtime restored still differs here.
    pub ctime_ns: i64,
    /// The birth time where the filesystem records one (statx); a file replaced under the same
    /// inode number differs here.
    pub btime_ns: Option<i64>,
}

impl FileIdentity {
    pub fn of_metadata(meta: &std::fs::Metadata) -> Self {
        FileIdentity {
            dev: meta.dev(),
            inode: meta.ino(),
            size: meta.size(),
            mtime_ns: meta.mtime() * 1_000_000_000 + meta.mtime_nsec(),
            ctime_ns: meta.ctime() * 1_000_000_000 + meta.ctime_nsec(),
            btime_ns: meta
                .created()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map(|d| d.as_nanos() as i64),
        }
    }

    /// Same inode, size and mtime: only the ctime (a chmod, as Django's
    /// `FILE_UPLOAD_PERMISSIONS` does right after writing, or a rewrite with the mtime set
    /// back) can tell them apart, so the bytes must be compared before trusting it.
    pub fn same_but_ctime(&self, other: &FileIdentity) -> bool {
        self.dev == other.dev
            && self.inode == other.inode
            && self.size == other.size
            && self.mtime_ns == other.mtime_ns
            && self.btime_ns == other.btime_ns
    }

    /// The identity of the file at `path`, following no symlink, final or on the way.
    pub fn of_path(path: &Path) -> Result<Self, NoFollowError> {
        Ok(FileIdentity::of_metadata(&symlink_metadata_no_follow(path)?))
    }
}

/// The result of hashing one file.
#[derive(Debug, Clone)]
pub struct FileHash {
    pub sha256: Sha256Digest,
    pub identity: FileIdentity,
    /// SHA-256 of each `part_size` slice when the file goes up in parts, else empty.
    pub part_digests: Vec<Sha256Digest>,
    /// The first bytes, for content-type sniffing.
    pub head: Vec<u8>,
}

impl FileHash {
    /// The checksum S3 reports for the object: the plain digest for a single PUT, or the
    /// digest of the part digests with a `-N` suffix for a multipart upload.
    pub fn expected_s3_checksum(&self) -> String {
        if self.part_digests.is_empty() {
            self.sha256.to_base64()
        } else {
            let mut combined = Sha256::new();
            for part in &self.part_digests {
                combined.update(part.as_bytes());
            }
            let digest = Sha256Digest(combined.finalize().into());
            format!("{}-{}", digest.to_base64(), self.part_digests.len())
        }
    }
}

/// Errors while reading a local file.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{path} is not a regular file")]
    NotRegular { path: String },
    #[error("{path} is reached through {folder}, a symlinked folder; symlinked folders are never followed")]
    SymlinkedFolder { path: String, folder: String },
    #[error("{path} changed while it was being read")]
    ChangedWhileReading { path: String },
    #[error("cannot read {path}: {source}")]
    Io { path: String, source: std::io::Error },
}

impl ReadError {
    pub fn is_not_found(&self) -> bool {
        matches!(self, ReadError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
    }
}

/// Opens `path` for reading without following a symlink (the file's or a folder's on the way),
/// and checks it is a regular file.
pub fn open_regular(path: &Path) -> Result<(File, FileIdentity), ReadError> {
    let shown = || path.display().to_string();
    // O_NONBLOCK: opening a FIFO must not wait for a writer.
    let file = open_no_follow(path, OFlags::RDONLY | OFlags::NONBLOCK).map_err(|error| match error {
        NoFollowError::SymlinkedFolder { path, folder } => ReadError::SymlinkedFolder { path, folder },
        // O_NOFOLLOW on a final symlink fails with ELOOP: it is not a file we may read.
        error if error.raw_os_error() == Some(libc::ELOOP) => ReadError::NotRegular { path: shown() },
        NoFollowError::Io { source, .. } => ReadError::Io { path: shown(), source },
    })?;
    let meta = file.metadata().map_err(|source| ReadError::Io { path: shown(), source })?;
    if !meta.file_type().is_file() {
        return Err(ReadError::NotRegular { path: shown() });
    }
    Ok((file, FileIdentity::of_metadata(&meta)))
}

/// Hashes the file at `path` in one streaming pass with a fixed buffer, so memory stays bounded
/// whatever the size. When `part_size` is given, each part's digest is computed in the same pass.
pub fn hash_file(path: &Path, part_size: Option<u64>) -> Result<FileHash, ReadError> {
    hash_file_with(path, part_size, Durability::AsFound)
}

/// `hash_file`, then the file's bytes made durable on the descriptor they were read through
/// (never reopened by name, which could be another file by then) and its folder's entry too.
/// Django never fsyncs an upload: without this, a power cut after the upload could bring the
/// file back empty or cut short, taken for a new version while the verified object, the only
/// good copy, is left behind. The pipeline hashes this way before it journals `hashed`.
pub fn hash_file_durably(path: &Path, part_size: Option<u64>) -> Result<FileHash, ReadError> {
    hash_file_with(path, part_size, Durability::Synced)
}

/// Whether `hash_file_with` makes the file durable once it is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Durability {
    AsFound,
    Synced,
}

fn hash_file_with(
    path: &Path,
    part_size: Option<u64>,
    durability: Durability,
) -> Result<FileHash, ReadError> {
    let shown = || path.display().to_string();
    let (mut file, identity) = open_regular(path)?;
    let mut whole = Sha256::new();
    let mut head = Vec::new();
    // No bigger than the file: zeroing a 1 MiB buffer for a 200 KiB file was a measurable share
    // of the daemon's CPU.
    let buffer_len = (identity.size as usize).clamp(4096, READ_BUFFER);
    let mut total = 0u64;
    let mut read_chunk = |buffer: &mut [u8]| -> Result<usize, ReadError> {
        loop {
            match file.read(buffer) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(source) => return Err(ReadError::Io { path: shown(), source }),
            }
        }
    };
    let mut take_chunk = |chunk: &[u8]| {
        whole.update(chunk);
        if head.len() < HEAD_BYTES {
            let take = (HEAD_BYTES - head.len()).min(chunk.len());
            head.extend_from_slice(&chunk[..take]);
        }
        total += chunk.len() as u64;
    };
    let part_digests = match part_size {
        None => {
            let mut buffer = vec![0u8; buffer_len];
            loop {
                let read = read_chunk(&mut buffer)?;
                if read == 0 {
                    break;
                }
                take_chunk(&buffer[..read]);
            }
            Vec::new()
        }
        // A file that goes up in parts needs two SHA-256 of every byte (the whole file's for the
        // row, each part's for S3), and one core hashes at only half the speed of the disk's
        // page cache. The part digests are taken on a second thread, fed the same buffers, so a
        // large file is hashed in about the time of one digest.
        Some(size) => std::thread::scope(|scope| -> Result<Vec<Sha256Digest>, ReadError> {
            let (full_tx, full_rx) = std::sync::mpsc::sync_channel::<(Vec<u8>, usize)>(PART_BUFFERS);
            let (empty_tx, empty_rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(PART_BUFFERS);
            for _ in 0..PART_BUFFERS {
                // Cannot fail: the channel has room for every buffer, and each is allocated
                // when it is first read into.
                let _ = empty_tx.send(Vec::new());
            }
            let parts = scope.spawn(move || {
                let mut parts = PartDigests::new(size);
                for (buffer, read) in full_rx {
                    parts.update(&buffer[..read]);
                    // The reader may have stopped early (an error); a closed return channel
                    // only means the buffer is not needed any more.
                    let _ = empty_tx.send(buffer);
                }
                parts.finish()
            });
            let mut outcome = Ok(());
            while let Ok(mut buffer) = empty_rx.recv() {
                buffer.resize(buffer_len, 0);
                let read = match read_chunk(&mut buffer) {
                    Ok(0) => break,
                    Ok(read) => read,
                    Err(error) => {
                        outcome = Err(error);
                        break;
                    }
                };
                take_chunk(&buffer[..read]);
                if full_tx.send((buffer, read)).is_err() {
                    break;
                }
            }
            drop(full_tx);
            let digests = parts.join().expect("the part hasher does not panic");
            outcome.map(|()| digests)
        })?,
    };
    let after = FileIdentity::of_metadata(
        &file.metadata().map_err(|source| ReadError::Io { path: shown(), source })?,
    );
    if after != identity || total != identity.size {
        return Err(ReadError::ChangedWhileReading { path: shown() });
    }
    if durability == Durability::Synced {
        file.sync_data().map_err(|source| ReadError::Io { path: shown(), source })?;
        if let Some(folder) = path.parent() {
            let folder =
                rustix::fs::open(folder, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
                    .map_err(|e| ReadError::Io { path: folder.display().to_string(), source: e.into() })?;
            rustix::fs::fsync(&folder).map_err(|e| ReadError::Io { path: shown(), source: e.into() })?;
        }
    }
    Ok(FileHash { sha256: Sha256Digest(whole.finalize().into()), identity, part_digests, head })
}

/// Buffers in flight between the reader and the part hasher: enough that neither waits on the
/// other, few enough to stay inside the memory budget (3 MiB).
const PART_BUFFERS: usize = 3;

/// The digest of each `size`-byte slice of a stream.
struct PartDigests {
    size: u64,
    hasher: Sha256,
    filled: u64,
    digests: Vec<Sha256Digest>,
}

impl PartDigests {
    fn new(size: u64) -> PartDigests {
        PartDigests { size, hasher: Sha256::new(), filled: 0, digests: Vec::new() }
    }

    fn update(&mut self, mut chunk: &[u8]) {
        while !chunk.is_empty() {
            let take = ((self.size - self.filled) as usize).min(chunk.len());
            self.hasher.update(&chunk[..take]);
            self.filled += take as u64;
            chunk = &chunk[take..];
            if self.filled == self.size {
                let done = std::mem::replace(&mut self.hasher, Sha256::new());
                self.digests.push(Sha256Digest(done.finalize().into()));
                self.filled = 0;
            }
        }
    }

    /// The digests; an empty stream has one part, the digest of nothing.
    fn finish(mut self) -> Vec<Sha256Digest> {
        if self.filled > 0 || self.digests.is_empty() {
            self.digests.push(Sha256Digest(self.hasher.finalize().into()));
        }
        self.digests
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn digest_matches_known_vector() {
        assert_eq!(
            Sha256Digest::of_bytes(b"abc").to_hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn file_hash_matches_in_memory_hash_and_parts_cover_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.bin");
        let data: Vec<u8> = (0..(3 * READ_BUFFER + 17)).map(|i| (i % 251) as u8).collect();
        std::fs::File::create(&path).unwrap().write_all(&data).unwrap();

        let part = 1_000_000u64;
        let hashed = hash_file(&path, Some(part)).unwrap();
        assert_eq!(hashed.sha256, Sha256Digest::of_bytes(&data));
        assert_eq!(hashed.identity.size, data.len() as u64);
        assert_eq!(hashed.head, data[..HEAD_BYTES]);
        let expected_parts: Vec<_> = data.chunks(part as usize).map(Sha256Digest::of_bytes).collect();
        assert_eq!(hashed.part_digests, expected_parts);
        assert!(hashed.expected_s3_checksum().ends_with(&format!("-{}", expected_parts.len())));
    }

    #[test]
    fn part_digests_on_their_own_thread_match_for_every_boundary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.bin");
        let part = 4096u64;
        // Empty, one byte, a part exactly, a read buffer exactly, and neither.
        for len in [0usize, 1, 4096, READ_BUFFER, 2 * READ_BUFFER + 4095] {
            let data: Vec<u8> = (0..len).map(|i| (i % 253) as u8).collect();
            std::fs::write(&path, &data).unwrap();
            let hashed = hash_file(&path, Some(part)).unwrap();
            assert_eq!(hashed.sha256, Sha256Digest::of_bytes(&data), "{len} bytes");
            let mut expected: Vec<_> = data.chunks(part as usize).map(Sha256Digest::of_bytes).collect();
            if expected.is_empty() {
                expected.push(Sha256Digest::of_bytes(b""));
            }
            assert_eq!(hashed.part_digests, expected, "{len} bytes");
            assert_eq!(hashed.head, data[..len.min(HEAD_BYTES)], "{len} bytes");
        }
    }

    #[test]
    fn symlinks_are_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target");
        std::fs::write(&target, b"secret").unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(matches!(hash_file(&link, None), Err(ReadError::NotRegular { .. })));
    }

    #[test]
    fn base64_roundtrip_of_empty_digest() {
        assert_eq!(Sha256Digest::of_bytes(b"").to_base64(), "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=");
    }
}
