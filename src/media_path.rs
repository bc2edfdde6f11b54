//! `RelativeMediaPath`: a path relative to MEDIA_ROOT, exactly as Django stores it in the row,
//! and the only way the daemon reaches such a file on disk: from a media root resolved once at
//! start-up, one path component at a time, never following a symlink.

use std::ffi::{CStr, CString, OsStr};
use std::fmt;
use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use rustix::fs::{
    fsync, openat, openat2, renameat_with, statat, unlinkat, AtFlags, FileType, Mode, OFlags, RenameFlags,
    ResolveFlags, CWD,
};
use rustix::io::Errno;
use sha2::{Digest as _, Sha256};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MediaPathError {
    #[error("path {0} is not under the media root")]
    OutsideMediaRoot(String),
    #[error("path {0} is not valid UTF-8, so no Django row can name it")]
    NotUtf8(String),
    #[error("path {0:?} has an empty, '.' or '..' segment")]
    BadSegment(String),
    #[error("path {0:?} is empty or absolute")]
    EmptyOrAbsolute(String),
}

/// A `/`-separated path relative to MEDIA_ROOT with no `.`, `..` or empty segments, so it can
/// neither escape the media root nor name the same file two ways.
///
/// Shared, not owned: the scheduler keeps each pending path in a map and a timer heap, and a
/// 100,000-file backlog would otherwise hold every path twice.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RelativeMediaPath(Arc<str>);

impl RelativeMediaPath {
    /// Validates a path string as stored in the `confronta` column.
    pub fn parse(value: &str) -> Result<Self, MediaPathError> {
        if value.is_empty() || value.starts_with('/') {
            return Err(MediaPathError::EmptyOrAbsolute(value.to_owned()));
        }
        if value.contains('\0')
            || value.split('/').any(|segment| segment.is_empty() || segment == "." || segment == "..")
        {
            return Err(MediaPathError::BadSegment(value.to_owned()));
        }
        Ok(RelativeMediaPath(Arc::from(value)))
    }

    /// The relative path of `absolute`, which must lie under `media_root`.
    pub fn from_absolute(media_root: &Path, absolute: &Path) -> Result<Self, MediaPathError> {
        let relative = absolute
            .strip_prefix(media_root)
            .map_err(|_| MediaPathError::OutsideMediaRoot(absolute.display().to_string()))?;
        let mut segments = Vec::new();
        for component in relative.components() {
            match component {
                Component::Normal(segment) => match segment.to_str() {
                    Some(text) => segments.push(text),
                    None => return Err(MediaPathError::NotUtf8(absolute.display().to_string())),
                },
                _ => return Err(MediaPathError::BadSegment(relative.display().to_string())),
            }
        }
        RelativeMediaPath::parse(&segments.join("/"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn to_absolute(&self, media_root: &Path) -> PathBuf {
        media_root.join(&*self.0)
    }

    /// The file name's extension, lowercased, with its dot (`.pdf`), or `""`.
    pub fn extension(&self) -> String {
        let name = self.0.rsplit('/').next().unwrap_or("");
        match name.rfind('.') {
            Some(dot) if dot > 0 && dot + 1 < name.len() => name[dot..].to_lowercase(),
            _ => String::new(),
        }
    }
}

/// MEDIA_ROOT and the watched folder as they were at start-up, with the operator's symlinks
/// (a media root on another disk, say) resolved once. Every path built from it is free of
/// symlinks, so the no-follow functions below accept it, and a symlink that appears later,
/// anywhere along it, is refused rather than followed.
#[derive(Debug, Clone)]
pub struct MediaRoot {
    root: PathBuf,
    /// `watch.dir` with a trailing `/`, the prefix of every path Django stores.
    watched_prefix: String,
    watched: PathBuf,
}

impl MediaRoot {
    /// Resolves `media_root` and `media_root/dir` now. A folder that does not exist yet is
    /// resolved as far as it exists; the rest must then be created without symlinks.
    pub fn resolve(media_root: &Path, dir: &str) -> MediaRoot {
        let root = canonical_as_far_as_exists(media_root);
        let watched = canonical_as_far_as_exists(&media_root.join(dir));
        if root != media_root || watched != media_root.join(dir) {
            tracing::info!(media_root = %root.display(), folder = %watched.display(), "media root resolved through symlinks at start-up");
        }
        MediaRoot { root, watched_prefix: format!("{}/", dir.trim_end_matches('/')), watched }
    }

    /// Where `path` lies on disk: under the resolved watched folder when it names a file in it
    /// (every path Django stores does), else under the resolved media root.
    pub fn to_absolute(&self, path: &RelativeMediaPath) -> PathBuf {
        match path.as_str().strip_prefix(&self.watched_prefix) {
            Some(rest) => self.watched.join(rest),
            None => self.root.join(path.as_str()),
        }
    }
}

fn canonical_as_far_as_exists(path: &Path) -> PathBuf {
    let mut missing = Vec::new();
    let mut existing = path;
    loop {
        if let Ok(resolved) = existing.canonicalize() {
            return missing.iter().rev().fold(resolved, |at, name| at.join(name));
        }
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                missing.push(name.to_owned());
                existing = parent;
            }
            _ => return path.to_owned(),
        }
    }
}

/// Why a file could not be reached without following a symlink.
#[derive(Debug, thiserror::Error)]
pub enum NoFollowError {
    #[error("{path} is reached through {folder}, a symlinked folder; symlinked folders are never followed")]
    SymlinkedFolder { path: String, folder: String },
    #[error("cannot reach {path}: {source}")]
    Io { path: String, source: std::io::Error },
}

impl NoFollowError {
    pub fn is_not_found(&self) -> bool {
        matches!(self, NoFollowError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
    }

    /// The OS error number, for callers that tell ELOOP (a final symlink) or EXDEV apart.
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
            NoFollowError::Io { source, .. } => source.raw_os_error(),
            NoFollowError::SymlinkedFolder { .. } => None,
        }
    }
}

/// Opens `path` with `flags` plus `O_NOFOLLOW`, so neither the file nor any folder on the way
/// may be a symlink (the folders are reached as `Parent::open` says).
pub fn open_no_follow(path: &Path, flags: OFlags) -> Result<File, NoFollowError> {
    let parent = Parent::open(path)?;
    let fd = parent.openat(flags | OFlags::NOFOLLOW)?;
    Ok(File::from(fd))
}

/// [`std::fs::symlink_metadata`] that follows no symlink on the way either. Opening with
/// `O_PATH` reads no data and cannot block on a FIFO; a final symlink is reported as one.
pub fn symlink_metadata_no_follow(path: &Path) -> Result<std::fs::Metadata, NoFollowError> {
    let file = open_no_follow(path, OFlags::PATH)?;
    file.metadata().map_err(|source| io_error(path, source))
}

/// Unlinks the file at `path` (not through any symlink) and fsyncs its folder, so the removal
/// survives a power cut. A file already gone is not an error.
pub fn remove_file_durably(path: &Path) -> Result<(), NoFollowError> {
    let parent = Parent::open(path)?;
    unlink_if_there(parent.fd(), &parent.name, path)?;
    sync_folder(parent.fd(), path)
}

/// Renames the file at `from` (not through any symlink) to `to`, an operator-configured path
/// such as the quarantine folder, never replacing what is at `to` (`RENAME_NOREPLACE`: EEXIST
/// when it is taken), and fsyncs the folder it left.
pub fn rename_no_replace_durably(from: &Path, to: &Path) -> Result<(), NoFollowError> {
    let parent = Parent::open(from)?;
    let target = c_path(to)?;
    renameat_with(parent.fd(), &parent.name, CWD, &target, RenameFlags::NOREPLACE)
        .map_err(|errno| io_error(from, errno.into()))?;
    // The new entry first, then the removal: in the other order a power cut between the two
    // fsyncs could keep the removal and lose the entry, and the file with it. Their errors come
    // after a rename that happened: carried without the errno, so no caller takes one for the
    // rename's own (and, say, falls back to copying a file that is already moved).
    let after_the_rename = |e: NoFollowError| NoFollowError::Io {
        path: from.display().to_string(),
        source: std::io::Error::other(format!("moved to {}, then {e}", to.display())),
    };
    if let Some(folder) = to.parent() {
        sync_folder_at_path(folder).map_err(after_the_rename)?;
    }
    // Where a power cut tells the two orders apart (tests/reliability_support/power_loss.rs).
    // (This file is also compiled into bench/hasher, which gives `error` a stub of its own.)
    crate::error::pause_point_blocking("quarantine_moved");
    sync_folder(parent.fd(), from).map_err(after_the_rename)
}

/// Fsyncs the folder at `folder` (a path of ours: the quarantine, where a file just arrived).
pub fn sync_folder_at_path(folder: &Path) -> Result<(), NoFollowError> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let opened =
        rustix::fs::open(folder, flags, Mode::empty()).map_err(|errno| io_error(folder, errno.into()))?;
    match fsync(&opened) {
        // A file system that cannot fsync a folder (some FUSE ones) says EINVAL: there is
        // nothing more to make durable there, and retrying would never end.
        Err(rustix::io::Errno::INVAL) => Ok(()),
        other => other.map_err(|errno| io_error(folder, errno.into())),
    }
}

/// The prefix of the private name a file is moved to before it is unlinked (`SetAside`). The
/// scheduler never offers a path whose name starts with it (`is_set_aside`).
pub const SET_ASIDE_PREFIX: &str = ".confronta-sync-unlink-";

/// Whether `path` names a file this daemon moved aside to unlink it.
pub fn is_set_aside(path: &Path) -> bool {
    path.file_name().is_some_and(|name| name.as_bytes().starts_with(SET_ASIDE_PREFIX.as_bytes()))
}

/// A file moved to a private name in its own folder, so that the file checked is the file
/// unlinked. Checking a name and then unlinking the name are two lookups: Django may delete
/// the file and save another under the free name in between, and that one would go. Moved
/// aside (`RENAME_NOREPLACE`), the file keeps its inode under a name nobody else uses; the
/// caller checks that inode, then `unlink_durably` or `put_back`.
///
/// The private name is derived from the file's name (`SET_ASIDE_PREFIX` and a digest of it),
/// so a crash between the move and the unlink leaves a file that the next run for the same
/// path finds again (`take` returns it first, `leftover` set).
pub struct SetAside {
    dir: Option<OwnedFd>,
    name: CString,
    private: CString,
    /// The path the file came from, and where it is now.
    path: PathBuf,
    private_path: PathBuf,
    /// Found already aside (an earlier run stopped between the move and the unlink), rather
    /// than moved by this call.
    pub leftover: bool,
}

impl SetAside {
    /// Moves the file at `path` (reached without following a symlink) aside; `Ok(None)` when
    /// nothing stands there. Fails (EEXIST) while an earlier run's file is still aside for
    /// the same path: `leftover` finds that one first.
    pub fn take(path: &Path) -> Result<Option<SetAside>, NoFollowError> {
        let aside = SetAside::at(path, false)?;
        match aside.rename(&aside.name, &aside.private) {
            Ok(()) => Ok(Some(aside)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_error(path, e)),
        }
    }

    /// The file an earlier run moved aside from `path` and did not unlink (it stopped in
    /// between), if there is one; it is left where it is for the caller to check.
    pub fn leftover(path: &Path) -> Result<Option<SetAside>, NoFollowError> {
        let aside = SetAside::at(path, true)?;
        Ok(aside.exists_at(&aside.private)?.then_some(aside))
    }

    fn at(path: &Path, leftover: bool) -> Result<SetAside, NoFollowError> {
        let parent = Parent::open(path)?;
        let private_name = aside_name(parent.name.as_bytes());
        let private = CString::new(private_name.as_bytes()).map_err(|e| io_error(path, e.into()))?;
        let private_path = path.with_file_name(&private_name);
        let Parent { dir, name, .. } = parent;
        Ok(SetAside { dir, name, private, path: path.to_owned(), private_path, leftover })
    }

    /// Where the file is now, to check it.
    pub fn aside_path(&self) -> &Path {
        &self.private_path
    }

    /// Unlinks the file from its private name and fsyncs the folder, which makes the move
    /// and the removal durable together.
    pub fn unlink_durably(self) -> Result<(), NoFollowError> {
        unlink_if_there(self.fd(), &self.private, &self.private_path)?;
        sync_folder(self.fd(), &self.path)
    }

    /// Moves the file back to its name, never over a file that has taken the name since: that
    /// one is an error naming both, and the file stays aside, where nothing deletes it.
    pub fn put_back(self) -> Result<(), NoFollowError> {
        match self.rename(&self.private, &self.name) {
            Ok(()) => sync_folder(self.fd(), &self.path),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let message = format!(
                    "another file took {} while it was checked; the file that stood there is kept as {}",
                    self.path.display(),
                    self.private_path.display()
                );
                Err(io_error(&self.path, std::io::Error::new(std::io::ErrorKind::AlreadyExists, message)))
            }
            Err(e) => Err(io_error(&self.private_path, e)),
        }
    }

    fn fd(&self) -> BorrowedFd<'_> {
        folder_fd(&self.dir)
    }

    fn rename(&self, from: &CStr, to: &CStr) -> std::io::Result<()> {
        // Both names are in the same folder, so the move never leaves it.
        Ok(renameat_with(self.fd(), from, self.fd(), to, RenameFlags::NOREPLACE)?)
    }

    fn exists_at(&self, name: &CStr) -> Result<bool, NoFollowError> {
        match statat(self.fd(), name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(_) => Ok(true),
            Err(Errno::NOENT) => Ok(false),
            Err(errno) => Err(io_error(&self.private_path, errno.into())),
        }
    }
}

/// The private name a file named `name` is set aside under: short whatever `name`'s length
/// (a digest of it), and the same for the same name, so a run finds an earlier run's.
fn aside_name(name: &[u8]) -> String {
    // sha2 directly rather than `hash::Sha256Digest`: `hash` opens files through this module,
    // and the two would import each other.
    let digest = hex::encode(Sha256::digest(name));
    format!("{SET_ASIDE_PREFIX}{}", &digest[..16])
}

/// How `Parent::open` reaches the folder holding a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Resolver {
    /// One `openat2` with `RESOLVE_NO_SYMLINKS` (Linux 5.6 and later): the kernel refuses a
    /// symlink anywhere on the way, in one call rather than one per folder.
    Openat2,
    /// `openat(O_NOFOLLOW)` one folder at a time: for kernels without `openat2` or a seccomp
    /// filter that refuses it, and to name the symlinked folder `openat2` found (it only says
    /// ELOOP).
    Walk,
}

/// Set once `openat2` answered ENOSYS (an older kernel) or EPERM (a seccomp filter, as some
/// container runtimes install): every later path goes straight to the walk.
static OPENAT2_REFUSED: AtomicBool = AtomicBool::new(false);

/// The folder holding a file, opened without following a symlink, and the file's name in it.
struct Parent<'a> {
    /// `None` is the working directory (a relative path with a single component).
    dir: Option<OwnedFd>,
    name: CString,
    path: &'a Path,
}

impl<'a> Parent<'a> {
    /// With `openat2` while the kernel takes it, else with the walk.
    fn open(path: &'a Path) -> Result<Parent<'a>, NoFollowError> {
        if OPENAT2_REFUSED.load(Ordering::Relaxed) {
            return Parent::open_with(path, Resolver::Walk);
        }
        match Parent::open_with(path, Resolver::Openat2) {
            Err(error) if matches!(error.raw_os_error(), Some(libc::ENOSYS | libc::EPERM)) => {
                if !OPENAT2_REFUSED.swap(true, Ordering::Relaxed) {
                    tracing::info!(%error, "openat2 is not available; media paths are opened one folder at a time");
                }
                Parent::open_with(path, Resolver::Walk)
            }
            // A symlinked folder on the way: the walk finds which one, for the message.
            Err(error) if error.raw_os_error() == Some(libc::ELOOP) => {
                Parent::open_with(path, Resolver::Walk)
            }
            opened => opened,
        }
    }

    fn open_with(path: &'a Path, resolver: Resolver) -> Result<Parent<'a>, NoFollowError> {
        let mut components: Vec<Component> = path.components().collect();
        let Some(Component::Normal(name)) = components.pop() else {
            let message = "the path does not end in a file name";
            return Err(io_error(path, std::io::Error::new(std::io::ErrorKind::InvalidInput, message)));
        };
        let mut folders = Vec::with_capacity(components.len());
        for component in components {
            match component {
                Component::RootDir => folders.push(Path::new("/").as_os_str()),
                Component::CurDir => {}
                Component::Normal(segment) => folders.push(segment),
                // `..` could climb back out of a folder reached safely; no media path has one.
                Component::ParentDir | Component::Prefix(_) => {
                    let message = "the path has a '..' segment";
                    let error = std::io::Error::new(std::io::ErrorKind::InvalidInput, message);
                    return Err(io_error(path, error));
                }
            }
        }
        let dir = match resolver {
            Resolver::Openat2 => {
                open_folder_at_once(&folders).map_err(|errno| io_error(path, errno.into()))?
            }
            Resolver::Walk => walk_to_folder(path, &folders)?,
        };
        let name = CString::new(name.as_bytes()).map_err(|e| io_error(path, e.into()))?;
        Ok(Parent { dir, name, path })
    }

    fn fd(&self) -> BorrowedFd<'_> {
        folder_fd(&self.dir)
    }

    fn openat(&self, flags: OFlags) -> Result<OwnedFd, NoFollowError> {
        openat(self.fd(), self.name.as_c_str(), flags | OFlags::CLOEXEC, Mode::empty())
            .map_err(|errno| io_error(self.path, errno.into()))
    }
}

/// The folder made of `folders` in one `openat2` call that fails (ELOOP) at any symlink;
/// `None` for the working directory.
fn open_folder_at_once(folders: &[&OsStr]) -> rustix::io::Result<Option<OwnedFd>> {
    if folders.is_empty() {
        return Ok(None);
    }
    let folder: PathBuf = folders.iter().collect();
    let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
    openat2(CWD, &folder, flags, Mode::empty(), ResolveFlags::NO_SYMLINKS).map(Some)
}

/// The folder made of `folders`, opened one at a time with `O_NOFOLLOW`, naming the first
/// that is a symlink.
fn walk_to_folder(path: &Path, folders: &[&OsStr]) -> Result<Option<OwnedFd>, NoFollowError> {
    let mut dir: Option<OwnedFd> = None;
    let mut walked = PathBuf::new();
    for &next in folders {
        walked.push(next);
        let at = folder_fd(&dir);
        // O_PATH: a folder only needs to be searchable to be passed through, as with open(2).
        let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        match openat(at, next, flags, Mode::empty()) {
            Ok(fd) => dir = Some(fd),
            Err(_) if is_symlink_at(at, next) => {
                return Err(NoFollowError::SymlinkedFolder {
                    path: path.display().to_string(),
                    folder: walked.display().to_string(),
                });
            }
            Err(errno) => return Err(io_error(path, errno.into())),
        }
    }
    Ok(dir)
}

/// The folder a descriptor holds, or the working directory for `None`.
fn folder_fd(dir: &Option<OwnedFd>) -> BorrowedFd<'_> {
    dir.as_ref().map_or(CWD, |fd| fd.as_fd())
}

/// Unlinks `name` in the folder `at`; a name already gone is not an error.
fn unlink_if_there(at: BorrowedFd<'_>, name: &CStr, shown: &Path) -> Result<(), NoFollowError> {
    match unlinkat(at, name, AtFlags::empty()) {
        Ok(()) | Err(Errno::NOENT) => Ok(()),
        Err(errno) => Err(io_error(shown, errno.into())),
    }
}

/// fsyncs the folder `at`, which needs a readable descriptor rather than the `O_PATH` one.
fn sync_folder(at: BorrowedFd<'_>, shown: &Path) -> Result<(), NoFollowError> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let folder = openat(at, ".", flags, Mode::empty()).map_err(|errno| io_error(shown, errno.into()))?;
    fsync(&folder).map_err(|errno| io_error(shown, errno.into()))
}

/// Whether `name` in the folder `at` is a symlink; asked only after opening it as a folder
/// failed, since O_NOFOLLOW|O_DIRECTORY reports a symlink as ELOOP or ENOTDIR by kernel.
fn is_symlink_at(at: BorrowedFd<'_>, name: &OsStr) -> bool {
    statat(at, name, AtFlags::SYMLINK_NOFOLLOW)
        .is_ok_and(|stat| FileType::from_raw_mode(stat.st_mode) == FileType::Symlink)
}

fn c_path(path: &Path) -> Result<CString, NoFollowError> {
    CString::new(path.as_os_str().as_bytes()).map_err(|e| io_error(path, e.into()))
}

fn io_error(path: &Path, source: std::io::Error) -> NoFollowError {
    NoFollowError::Io { path: path.display().to_string(), source }
}

impl fmt::Display for RelativeMediaPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for RelativeMediaPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_accepts_django_names_and_rejects_escapes() {
        let cases: &[(&str, bool)] = &[
            ("confrontas/foto_dni.pdf", true),
            ("confrontas/año señal ó.pdf", true),
            ("confrontas/2024/01/x.png", true),
            ("", false),
            ("/etc/passwd", false),
            ("confrontas/../etc/passwd", false),
            ("confrontas//x.pdf", false),
            ("./x.pdf", false),
        ];
        for (input, ok) in cases {
            assert_eq!(RelativeMediaPath::parse(input).is_ok(), *ok, "{input:?}");
        }
    }

    #[test]
    fn from_absolute_strips_the_media_root() {
        let path = RelativeMediaPath::from_absolute(
            Path::new("/srv/media"),
            Path::new("/srv/media/confrontas/niño.PDF"),
        )
        .unwrap();
        assert_eq!(path.as_str(), "confrontas/niño.PDF");
        assert_eq!(path.extension(), ".pdf");
        assert!(RelativeMediaPath::from_absolute(Path::new("/srv/media"), Path::new("/tmp/x")).is_err());
    }

    #[test]
    fn non_utf8_names_are_rejected() {
        use std::os::unix::ffi::OsStrExt;
        let raw = std::ffi::OsStr::from_bytes(b"/m/confrontas/\xff.pdf");
        let err = RelativeMediaPath::from_absolute(Path::new("/m"), Path::new(raw)).unwrap_err();
        assert!(matches!(err, MediaPathError::NotUtf8(_)));
    }

    /// Issue 12, item 7: a symlinked folder on the way is refused by every operation, naming
    /// the link, and the file behind it is left as it was.
    #[test]
    fn no_follow_operations_refuse_a_symlinked_folder() {
        let media = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("doc.pdf"), b"%PDF-1.7").unwrap();
        std::os::unix::fs::symlink(outside.path(), media.path().join("evil")).unwrap();
        let through_link = media.path().join("evil/doc.pdf");
        let elsewhere = media.path().join("moved.pdf");
        let refused: [(&str, Result<(), NoFollowError>); 4] = [
            ("open", open_no_follow(&through_link, OFlags::RDONLY).map(drop)),
            ("stat", symlink_metadata_no_follow(&through_link).map(drop)),
            ("unlink", remove_file_durably(&through_link)),
            ("rename", rename_no_replace_durably(&through_link, &elsewhere)),
        ];
        let link = media.path().join("evil").display().to_string();
        for (operation, result) in refused {
            match result {
                Err(NoFollowError::SymlinkedFolder { folder, .. }) => assert_eq!(folder, link, "{operation}"),
                other => panic!("{operation}: {other:?}"),
            }
        }
        assert_eq!(std::fs::read(outside.path().join("doc.pdf")).unwrap(), b"%PDF-1.7");
        assert!(!elsewhere.exists());
    }

    #[test]
    fn no_follow_operations_work_on_plain_paths() {
        let media = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(media.path().join("confrontas/2026")).unwrap();
        let file = media.path().join("confrontas/2026/doc.pdf");
        std::fs::write(&file, b"%PDF-1.7").unwrap();
        assert!(symlink_metadata_no_follow(&file).unwrap().is_file());
        assert!(open_no_follow(&file, OFlags::RDONLY).is_ok());
        let moved = media.path().join("moved.pdf");
        rename_no_replace_durably(&file, &moved).unwrap();
        assert!(symlink_metadata_no_follow(&file).unwrap_err().is_not_found());
        remove_file_durably(&moved).unwrap();
        assert!(!moved.exists());
        // A final symlink is reported as one, never followed.
        std::os::unix::fs::symlink("/etc/passwd", media.path().join("link")).unwrap();
        assert!(symlink_metadata_no_follow(&media.path().join("link")).unwrap().file_type().is_symlink());
        let opened = open_no_follow(&media.path().join("link"), OFlags::RDONLY);
        assert_eq!(opened.unwrap_err().raw_os_error(), Some(libc::ELOOP));
    }

    /// Issue 27 item 6: `openat2` and the walk it falls back to reach the same folder, and
    /// both refuse a symlinked one (`openat2` with ELOOP, the walk naming it).
    fn check_resolver(resolver: Resolver) {
        use std::os::unix::fs::MetadataExt;
        let media = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let folder = media.path().join("confrontas/2026");
        std::fs::create_dir_all(&folder).unwrap();
        std::os::unix::fs::symlink(outside.path(), media.path().join("confrontas/evil")).unwrap();
        let (file, through_link) = (folder.join("doc.pdf"), media.path().join("confrontas/evil/doc.pdf"));
        let parent = Parent::open_with(&file, resolver).unwrap();
        let opened = rustix::fs::fstat(parent.dir.as_ref().unwrap()).unwrap();
        let expected = std::fs::metadata(&folder).unwrap();
        assert_eq!((opened.st_dev, opened.st_ino), (expected.dev(), expected.ino()), "{resolver:?}");
        assert_eq!(parent.name.as_bytes(), b"doc.pdf", "{resolver:?}");
        // A single component is a name in the working directory.
        assert!(Parent::open_with(Path::new("doc.pdf"), resolver).unwrap().dir.is_none());
        let refused = Parent::open_with(&through_link, resolver);
        match (resolver, refused) {
            (Resolver::Openat2, Err(error)) => assert_eq!(error.raw_os_error(), Some(libc::ELOOP)),
            (Resolver::Walk, Err(NoFollowError::SymlinkedFolder { folder, .. })) => {
                assert_eq!(folder, media.path().join("confrontas/evil").display().to_string())
            }
            (_, other) => panic!("{resolver:?}: {:?}", other.map(|parent| parent.name)),
        }
    }

    #[test]
    fn openat2_reaches_the_folder_and_refuses_a_symlink_on_the_way() {
        let probe = std::env::temp_dir().join("x");
        if let Err(error) = Parent::open_with(&probe, Resolver::Openat2) {
            if matches!(error.raw_os_error(), Some(libc::ENOSYS | libc::EPERM)) {
                eprintln!("openat2 is not available here ({error}); only the walk is tested");
                return;
            }
        }
        check_resolver(Resolver::Openat2);
    }

    #[test]
    fn the_walk_without_openat2_reaches_the_folder_and_names_a_symlinked_one() {
        check_resolver(Resolver::Walk);
    }

    #[test]
    fn the_media_root_is_resolved_once_and_watched_paths_map_under_the_watched_folder() {
        let base = tempfile::tempdir().unwrap();
        let disk = base.path().join("disk");
        std::fs::create_dir_all(disk.join("confrontas")).unwrap();
        // The operator's link: MEDIA_ROOT itself is a symlink to another disk.
        std::os::unix::fs::symlink(&disk, base.path().join("media")).unwrap();
        let root = MediaRoot::resolve(&base.path().join("media"), "confrontas");
        let canonical = disk.canonicalize().unwrap();
        let path = RelativeMediaPath::parse("confrontas/2026/doc.pdf").unwrap();
        assert_eq!(root.to_absolute(&path), canonical.join("confrontas/2026/doc.pdf"));
        let other = RelativeMediaPath::parse("otros/doc.pdf").unwrap();
        assert_eq!(root.to_absolute(&other), canonical.join("otros/doc.pdf"));
        // A folder that does not exist yet is resolved as far as it exists.
        let later = MediaRoot::resolve(&base.path().join("media"), "nuevas");
        let path = RelativeMediaPath::parse("nuevas/doc.pdf").unwrap();
        assert_eq!(later.to_absolute(&path), canonical.join("nuevas/doc.pdf"));
    }

    #[test]
    fn extension_of_names_without_one_is_empty() {
        for name in ["confrontas/README", "confrontas/.hidden", "confrontas/x."] {
            assert_eq!(RelativeMediaPath::parse(name).unwrap().extension(), "", "{name}");
        }
    }
}
