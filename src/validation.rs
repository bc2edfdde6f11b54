//! What a file must be before it may leave the machine: an allowed type by its extension and
//! by its magic bytes, no larger than `max_bytes`, and clean by clamd when one is configured.
//! A file that fails is moved to the quarantine folder, outside MEDIA_ROOT and private to the
//! daemon's user, with a `.reason` note beside it; nothing already there is ever replaced.

use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::config::ValidationConfig;
use crate::hash::{open_regular, FileIdentity, HEAD_BYTES};
use crate::media_path::{
    remove_file_durably, rename_no_replace_durably, symlink_metadata_no_follow, sync_folder_at_path,
    NoFollowError, RelativeMediaPath, SetAside,
};

/// How long one clamd scan may take before it counts as clamd being unreachable.
const SCAN_TIMEOUT: Duration = Duration::from_secs(120);

/// Quarantine folders and files are the daemon user's alone: what is in them was refused,
/// possibly as an executable or a virus.
const PRIVATE_DIR_MODE: u32 = 0o700;
const PRIVATE_FILE_MODE: u32 = 0o600;

/// How many names (`<name>`, `<name>.1`, …) a quarantined file may take before the move is
/// given up; far more than the same upload path is ever refused.
const MAX_QUARANTINE_NAMES: u32 = 1000;

/// Why validation refused a file, as a stable code: the row's `confronta_sync_error` carries it
/// (`<code>: <detail>`), and the Django companion shows a message of its own for each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalCode {
    /// Larger than `max_bytes`.
    TooLarge,
    Empty,
    /// The extension is not an allowed type.
    TypeNotAllowed,
    /// The magic bytes are a known type that is not allowed.
    ContentNotAllowed,
    /// The magic bytes are no known document or image.
    ContentUnrecognised,
    /// clamd found a virus.
    Infected,
}

impl RefusalCode {
    pub const ALL: [RefusalCode; 6] = [
        RefusalCode::TooLarge,
        RefusalCode::Empty,
        RefusalCode::TypeNotAllowed,
        RefusalCode::ContentNotAllowed,
        RefusalCode::ContentUnrecognised,
        RefusalCode::Infected,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RefusalCode::TooLarge => "too_large",
            RefusalCode::Empty => "empty",
            RefusalCode::TypeNotAllowed => "type_not_allowed",
            RefusalCode::ContentNotAllowed => "content_not_allowed",
            RefusalCode::ContentUnrecognised => "content_unrecognised",
            RefusalCode::Infected => "infected",
        }
    }
}

/// A refusal: its code, and the detail an operator reads (`<code>: <detail>` as text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: RefusalCode,
    pub detail: String,
}

impl Refusal {
    fn new(code: RefusalCode, detail: impl Into<String>) -> Refusal {
        Refusal { code, detail: detail.into() }
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.detail)
    }
}

/// The answer for one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Fine to upload; the content type comes from the magic bytes.
    Accept { content_type: String },
    /// Refused for good: move it to quarantine, for this reason.
    Quarantine(Refusal),
    /// Cannot decide now (clamd unreachable, the file unreadable): try again later, upload nothing.
    Retry(String),
    /// Cannot be checked as configured (e.g. larger than clamd accepts): keep it where it is.
    Keep(String),
}

pub struct Validator {
    /// Lowercase extensions without the dot; empty means any type.
    allowed: Vec<String>,
    max_bytes: Option<u64>,
    clamd_socket: Option<PathBuf>,
    quarantine_dir: PathBuf,
    fingerprint: String,
}

impl Validator {
    pub fn new(config: &ValidationConfig, quarantine_dir: PathBuf) -> Validator {
        let mut allowed: Vec<String> =
            config.allowed_types.iter().map(|t| normalise(t.trim_start_matches('.'))).collect();
        let max_bytes = (config.max_bytes > 0).then_some(config.max_bytes);
        let mut sorted = allowed.clone();
        sorted.sort();
        sorted.dedup();
        let fingerprint = format!(
            "types={};max_bytes={};clamd={}",
            sorted.join(","),
            max_bytes.map_or("none".to_owned(), |m| m.to_string()),
            config.clamd_socket.is_some()
        );
        allowed.dedup();
        Validator {
            allowed,
            max_bytes,
            clamd_socket: config.clamd_socket.clone(),
            quarantine_dir,
            fingerprint,
        }
    }

    /// The settings a verdict depends on, as text: a journaled file that passed under other
    /// settings is validated again before it goes on.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// Checks the file at `absolute`, which must still be the version `identity` describes.
    pub async fn check(&self, absolute: &Path, path: &RelativeMediaPath, identity: FileIdentity) -> Verdict {
        // Django never makes hard links; a second name could be someone else's file, and the
        // unlink would leave its data behind anyway.
        if let Ok(meta) = symlink_metadata_no_follow(absolute) {
            use std::os::unix::fs::MetadataExt;
            if meta.nlink() > 1 {
                return Verdict::Keep(format!(
                    "the file has {} hard links; only single-link files are moved",
                    meta.nlink()
                ));
            }
        }
        if let Some(max) = self.max_bytes.filter(|max| identity.size > *max) {
            let detail = format!("{} bytes is over max_bytes ({max})", identity.size);
            return Verdict::Quarantine(Refusal::new(RefusalCode::TooLarge, detail));
        }
        if identity.size == 0 {
            return Verdict::Quarantine(Refusal::new(RefusalCode::Empty, "empty file"));
        }
        let content_type = if self.allowed.is_empty() {
            None
        } else {
            let extension = normalise(path.extension().trim_start_matches('.'));
            if !self.allowed.contains(&extension) {
                let shown = if extension.is_empty() {
                    "no extension".to_owned()
                } else {
                    format!("extension .{extension}")
                };
                let detail = format!("{shown} is not in allowed_types");
                return Verdict::Quarantine(Refusal::new(RefusalCode::TypeNotAllowed, detail));
            }
            let head = match read_head(absolute) {
                Ok(head) => head,
                Err(e) => return Verdict::Retry(e),
            };
            match infer::get(&head) {
                Some(kind) if self.allowed.contains(&normalise(kind.extension())) => {
                    Some(kind.mime_type().to_owned())
                }
                Some(kind) => {
                    let detail = format!(
                        "content is {} ({}), which is not in allowed_types",
                        kind.mime_type(),
                        kind.extension()
                    );
                    return Verdict::Quarantine(Refusal::new(RefusalCode::ContentNotAllowed, detail));
                }
                None => {
                    let detail = "content is not a recognised document or image (magic bytes)";
                    return Verdict::Quarantine(Refusal::new(RefusalCode::ContentUnrecognised, detail));
                }
            }
        };
        if let Some(socket) = &self.clamd_socket {
            let file = match open_regular(absolute) {
                Ok((file, _)) => file,
                Err(e) => return Verdict::Retry(e.to_string()),
            };
            match scan(socket, &file).await {
                Scan::Clean => {}
                Scan::Infected(signature) => {
                    return Verdict::Quarantine(Refusal::new(
                        RefusalCode::Infected,
                        format!("clamd found {signature}"),
                    ))
                }
                Scan::TooLarge(message) => return Verdict::Keep(format!("clamd cannot scan it: {message}")),
                Scan::Unavailable(message) => return Verdict::Retry(format!("clamd unreachable: {message}")),
            }
        }
        Verdict::Accept { content_type: content_type.unwrap_or_default() }
    }

    /// Checks that the quarantine folder can take a file: creates it (0700) if needed, then
    /// writes, fsyncs and removes a scratch file in it. A refused file whose row was already
    /// cleared waits in MEDIA_ROOT until it can move, so start-up and `check` say it now.
    pub fn probe_quarantine(&self) -> Result<(), String> {
        let dir = &self.quarantine_dir;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(PRIVATE_DIR_MODE)
            .create(dir)
            .map_err(|e| format!("quarantine folder {} cannot be created: {e}", dir.display()))?;
        let scratch = dir.join(format!(".confronta-sync-probe-{}", std::process::id()));
        let written = write_new_private(&scratch, b"probe\n");
        let _ = std::fs::remove_file(&scratch);
        written.map_err(|e| format!("quarantine folder {} cannot be written: {e}", dir.display()))
    }

    /// The folder refused files go to.
    pub fn quarantine_dir(&self) -> &Path {
        &self.quarantine_dir
    }

    /// The copies of `path` in the quarantine folder, with their notes, in the order they were
    /// quarantined: `<name>`, `<name>.1`, … as `quarantine` names them, up to the first name
    /// taken by neither a file nor a note. Reads only (`explain`).
    pub fn quarantined(&self, path: &RelativeMediaPath) -> Vec<Quarantined> {
        let first = self.quarantine_dir.join(quarantine_name(path.as_str()));
        let mut found = Vec::new();
        for n in 0..MAX_QUARANTINE_NAMES {
            let target = match n {
                0 => first.clone(),
                n => PathBuf::from(format!("{}.{n}", first.display())),
            };
            let note_path = PathBuf::from(format!("{}.reason", target.display()));
            let size = std::fs::symlink_metadata(&target).ok().map(|meta| meta.len());
            let note = std::fs::read_to_string(&note_path).ok();
            if size.is_none() && note.is_none() {
                break;
            }
            found.push(Quarantined { path: target, size, note });
        }
        found
    }

    /// Moves the file to the quarantine folder, keeping its relative path, and writes the reason
    /// beside it. Returns where it went. The move is a rename (same filesystem) or, across
    /// filesystems, a durable copy followed by the unlink.
    ///
    /// Nothing already in quarantine is ever replaced: when `<name>` (or its note) is taken, the
    /// file goes to the first free `<name>.1`, `<name>.2`, …. A name is claimed by creating its
    /// note with `create_new` and then moving the file with `RENAME_NOREPLACE`, so two daemons,
    /// or a crash that left a note alone, cannot make one refused file overwrite another.
    ///
    /// The copy (across file systems) and the fsyncs wait on the disk, so it runs on a blocking
    /// thread, never on the runtime's workers.
    pub async fn quarantine(
        &self,
        absolute: &Path,
        path: &RelativeMediaPath,
        reason: &str,
    ) -> Result<PathBuf, String> {
        let (dir, absolute, path, reason) =
            (self.quarantine_dir.clone(), absolute.to_owned(), path.clone(), reason.to_owned());
        tokio::task::spawn_blocking(move || quarantine_into(&dir, &absolute, &path, &reason))
            .await
            .unwrap_or_else(|e| Err(format!("the quarantine move did not finish: {e}")))
    }
}

/// One refused file in the quarantine folder (`Validator::quarantined`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Quarantined {
    pub path: PathBuf,
    /// `None` when only its note is there (a move that failed after the note was written).
    pub size: Option<u64>,
    /// The `.reason` note beside it: the reason, the original path, when.
    pub note: Option<String>,
}

/// The longest file name a quarantined file may take, so that `<name>.999.reason` still fits
/// in NAME_MAX (255 bytes on every Linux file system).
const QUARANTINE_NAME_MAX: usize = 255 - ".999.reason".len();

/// `path` as it is kept in quarantine: the same relative path, its file name shortened (its
/// head, a digest of the whole name, its extension) when the name and the note's suffix would
/// not fit in NAME_MAX; the note beside it keeps the original path either way.
fn quarantine_name(path: &str) -> String {
    let (folder, name) = path.rsplit_once('/').map_or(("", path), |(folder, name)| (folder, name));
    if name.len() <= QUARANTINE_NAME_MAX {
        return path.to_owned();
    }
    let extension = name.rsplit_once('.').map(|(_, ext)| ext).filter(|ext| ext.len() <= 10).unwrap_or("");
    let digest = &crate::hash::Sha256Digest::of_bytes(name.as_bytes()).to_hex()[..16];
    let mut head_len = QUARANTINE_NAME_MAX - digest.len() - extension.len() - 2;
    while !name.is_char_boundary(head_len) {
        head_len -= 1;
    }
    let shortened = format!("{}-{digest}.{extension}", &name[..head_len]);
    let shortened = shortened.trim_end_matches('.');
    if folder.is_empty() {
        shortened.to_owned()
    } else {
        format!("{folder}/{shortened}")
    }
}

/// `jpeg` and `jpg`, `tiff` and `tif`, `heif` and `heic` name the same types.
fn normalise(extension: &str) -> String {
    match extension.to_ascii_lowercase().as_str() {
        "jpeg" => "jpg".into(),
        "tiff" => "tif".into(),
        "heif" => "heic".into(),
        other => other.to_owned(),
    }
}

fn read_head(absolute: &Path) -> Result<Vec<u8>, String> {
    let (file, _) = open_regular(absolute).map_err(|e| e.to_string())?;
    let mut head = Vec::with_capacity(HEAD_BYTES);
    file.take(HEAD_BYTES as u64)
        .read_to_end(&mut head)
        .map_err(|e| format!("cannot read {}: {e}", absolute.display()))?;
    Ok(head)
}

/// Creates `path` (failing with `AlreadyExists` if anything is there) readable by its owner
/// only, and makes `bytes` durable in it.
fn write_new_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut file =
        std::fs::OpenOptions::new().write(true).create_new(true).mode(PRIVATE_FILE_MODE).open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// Moves `from` to `to`, failing with `AlreadyExists` if `to` exists, never replacing it.
fn move_no_replace(from: &Path, to: &Path) -> std::io::Result<()> {
    match rename_no_replace_durably(from, to) {
        Ok(()) => Ok(()),
        // Another filesystem (or another mount of the same one, as systemd's ReadWritePaths
        // makes), or a filesystem without RENAME_NOREPLACE (NFS, older kernels): copy instead.
        Err(e) if matches!(e.raw_os_error(), Some(libc::EXDEV | libc::EINVAL | libc::ENOSYS)) => {
            move_no_replace_by_copy(from, to)
        }
        Err(e) => Err(no_follow_as_io(e)),
    }
}

fn move_no_replace_by_copy(from: &Path, to: &Path) -> std::io::Result<()> {
    copy_durably(from, to)?;
    // The copy's entry is durable before the original's removal is (see
    // `rename_no_replace_durably`): never a moment when a power cut keeps neither.
    if let Some(folder) = to.parent() {
        sync_folder_at_path(folder).map_err(no_follow_as_io)?;
    }
    remove_file_durably(from).map_err(no_follow_as_io)
}

/// Keeps the OS error's kind (`AlreadyExists` above all) and the message naming the path.
fn no_follow_as_io(e: NoFollowError) -> std::io::Error {
    let kind = e
        .raw_os_error()
        .map_or(std::io::ErrorKind::Other, |code| std::io::Error::from_raw_os_error(code).kind());
    std::io::Error::new(kind, e.to_string())
}

/// Copies `from` into a new `to` (never an existing one) and fsyncs it; a partial copy is removed.
fn copy_durably(from: &Path, to: &Path) -> std::io::Result<()> {
    let (mut source, _) = open_regular(from).map_err(|e| std::io::Error::other(e.to_string()))?;
    let mut target =
        std::fs::OpenOptions::new().write(true).create_new(true).mode(PRIVATE_FILE_MODE).open(to)?;
    let copied = std::io::copy(&mut source, &mut target).and_then(|_| target.sync_all());
    if copied.is_err() {
        let _ = std::fs::remove_file(to);
    }
    copied
}

enum Scan {
    Clean,
    Infected(String),
    TooLarge(String),
    Unavailable(String),
}
/// `Validator::quarantine`'s move, on the calling thread.
fn quarantine_into(
    quarantine_dir: &Path,
    absolute: &Path,
    path: &RelativeMediaPath,
    reason: &str,
) -> Result<PathBuf, String> {
    let first = quarantine_dir.join(quarantine_name(path.as_str()));
    let parent = first.parent().expect("quarantine targets have a parent").to_owned();
    // Refused files may be executables or viruses: only the daemon's user may reach them.
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(PRIVATE_DIR_MODE)
        .create(&parent)
        .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
    // Each folder on the way is an entry of its parent, durable before a file is moved in:
    // all of them, every time, since an earlier attempt may have made one and stopped before
    // its fsync (a few fsyncs per refusal, which is rare).
    let above_quarantine = quarantine_dir.parent().unwrap_or(quarantine_dir);
    for folder in parent.ancestors().skip(1).take_while(|folder| folder.starts_with(above_quarantine)) {
        sync_folder_at_path(folder).map_err(|e| format!("cannot fsync {}: {e}", folder.display()))?;
    }
    if let Some(target) = finish_an_earlier_move(&first, absolute)? {
        return Ok(target);
    }
    let note = format!(
        "{reason}\noriginal path: {}\nquarantined at: {}\n",
        path,
        humantime::format_rfc3339_seconds(std::time::SystemTime::now())
    );
    for n in 0..MAX_QUARANTINE_NAMES {
        let target = match n {
            0 => first.clone(),
            n => PathBuf::from(format!("{}.{n}", first.display())),
        };
        let note_path = PathBuf::from(format!("{}.reason", target.display()));
        match write_new_private(&note_path, note.as_bytes()) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(format!("cannot write {}: {e}", note_path.display())),
        }
        match move_no_replace(absolute, &target) {
            Ok(()) => {}
            Err(e) => {
                // The note is ours (just created) and without its file would only mislead.
                // It stays when the copy landed but the original could not be removed.
                let taken = e.kind() == std::io::ErrorKind::AlreadyExists;
                if taken || std::fs::symlink_metadata(&target).is_err() {
                    let _ = std::fs::remove_file(&note_path);
                }
                if taken {
                    continue;
                }
                return Err(format!("cannot move {} to {}: {e}", absolute.display(), target.display()));
            }
        }
        if let Err(e) = std::fs::set_permissions(&target, std::fs::Permissions::from_mode(PRIVATE_FILE_MODE))
        {
            // The folder is already private, so the file stays out of reach: say so and go on
            // rather than report a move that happened as failed.
            tracing::warn!(path = %target.display(), error = %e, "quarantined file keeps its mode");
        }
        // Both folders were fsynced by the move, the quarantine's first (its note too).
        return Ok(target);
    }
    Err(format!(
        "{} already holds {MAX_QUARANTINE_NAMES} quarantined files named {}",
        quarantine_dir.display(),
        path
    ))
}

/// The file at `absolute` already in quarantine under one of `first`'s names (the same inode): a
/// move whose new entry was made durable before a power cut lost the removal of the old one
/// (`rename_no_replace_durably`), so the old name came back as a second link. That name is
/// removed, as the move would have, and the file is where the move put it; moving it again
/// would quarantine it twice. The name is set aside and checked again first, as any unlink of
/// a name Django may reuse (`media_path::SetAside`). `None`: no earlier move of this file.
fn finish_an_earlier_move(first: &Path, absolute: &Path) -> Result<Option<PathBuf>, String> {
    use std::os::unix::fs::MetadataExt;
    let inode = |path: &Path| symlink_metadata_no_follow(path).ok().map(|meta| (meta.dev(), meta.ino()));
    let Some(source) = inode(absolute) else { return Ok(None) };
    let mut names = (0..MAX_QUARANTINE_NAMES).map(|n| match n {
        0 => first.to_path_buf(),
        n => PathBuf::from(format!("{}.{n}", first.display())),
    });
    let Some(target) = names
        .by_ref()
        .take_while(|name| name.exists() || PathBuf::from(format!("{}.reason", name.display())).exists())
        .find(|name| inode(name) == Some(source))
    else {
        return Ok(None);
    };
    let fail = |e: NoFollowError| format!("cannot remove {}: {e}", absolute.display());
    let Some(aside) = SetAside::take(absolute).map_err(fail)? else { return Ok(None) };
    if inode(aside.aside_path()) == Some(source) {
        aside.unlink_durably().map_err(fail)?;
        tracing::info!(quarantined = %target.display(), "the refused file was already in quarantine (a move a power cut half undid); its old name is removed");
        Ok(Some(target))
    } else {
        // Another file took the name meanwhile: it is not the refused one, which is in
        // quarantine already. It goes back, and is judged on its own as a new file.
        aside.put_back().map_err(fail)?;
        Ok(Some(target))
    }
}

/// Streams the already opened file to clamd over its Unix socket (INSTREAM). The client opens
/// by path, so it is handed the descriptor's `/proc/self/fd` entry, which names this open file
/// and no path that a symlink could redirect.
async fn scan(socket: &Path, file: &std::fs::File) -> Scan {
    use std::os::fd::AsRawFd;
    let connection = clamav_client::tokio::Socket { socket_path: socket };
    let opened = PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd()));
    let response =
        match tokio::time::timeout(SCAN_TIMEOUT, clamav_client::tokio::scan_file(&opened, connection, None))
            .await
        {
            Ok(Ok(response)) => response,
            Ok(Err(e)) => return Scan::Unavailable(format!("{}: {e}", socket.display())),
            Err(_) => {
                return Scan::Unavailable(format!(
                    "{}: no answer within {}s",
                    socket.display(),
                    SCAN_TIMEOUT.as_secs()
                ))
            }
        };
    let text = String::from_utf8_lossy(&response).trim_end_matches('\0').trim().to_owned();
    if let Some(found) = text.strip_suffix(" FOUND") {
        let signature = found.rsplit(": ").next().unwrap_or(found);
        Scan::Infected(signature.to_owned())
    } else if text.ends_with("OK") {
        Scan::Clean
    } else if text.contains("size limit exceeded") {
        Scan::TooLarge(text)
    } else {
        Scan::Unavailable(format!("unexpected answer {text:?}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn validator(allowed: &[&str], max_bytes: u64) -> Validator {
        let config = ValidationConfig {
            allowed_types: allowed.iter().map(|s| s.to_string()).collect(),
            max_bytes,
            clamd_socket: None,
            quarantine_dir: None,
        };
        Validator::new(&config, PathBuf::from("/nonexistent"))
    }

    async fn check(validator: &Validator, name: &str, bytes: &[u8]) -> Verdict {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("confrontas")).unwrap();
        let absolute = dir.path().join("confrontas").join(name);
        std::fs::write(&absolute, bytes).unwrap();
        let path = RelativeMediaPath::from_absolute(dir.path(), &absolute).unwrap();
        let identity = FileIdentity::of_path(&absolute).unwrap();
        validator.check(&absolute, &path, identity).await
    }

    #[tokio::test]
    async fn allow_list_is_checked_by_extension_and_magic_bytes() {
        let v = validator(&["pdf", "jpg", "jpeg", "png", "tif", "tiff", "heic"], 1000);
        let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";
        let cases: Vec<(&str, &[u8], &str)> = vec![
            ("a.pdf", b"%PDF-1.7\n", "application/pdf"),
            ("a.JPEG", b"\xff\xd8\xff\xe0\0\x10JFIF\0", "image/jpeg"),
            ("a.png", png, "image/png"),
            // A phone photo saved with the other image extension is still an allowed type.
            ("a.jpg", png, "image/png"),
            // Each refusal with its code: what the row's confronta_sync_error starts with, and
            // what the Django companion translates.
            ("a.pdf", b"MZ\x90\0 this is an exe", "content_not_allowed"),
            ("a.exe", b"%PDF-1.7\n", "type_not_allowed"),
            ("sin_extension", b"%PDF-1.7\n", "type_not_allowed"),
            ("a.pdf", b"just text", "content_unrecognised"),
            ("a.pdf", b"", "empty"),
            ("a.pdf", &[b'%'; 1001], "too_large"),
        ];
        for (name, bytes, expected) in cases {
            let verdict = check(&v, name, bytes).await;
            match (&verdict, expected) {
                (Verdict::Accept { content_type }, wanted) => assert_eq!(content_type, wanted, "{name}"),
                (Verdict::Quarantine(refusal), code) => {
                    assert_eq!(refusal.code.as_str(), code, "{name}");
                    assert!(refusal.to_string().starts_with(&format!("{code}: ")), "{name}: {refusal}");
                }
                _ => panic!("{name}: {verdict:?}, expected {expected}"),
            }
        }
    }

    /// The codes are the contract with the Django companion: each reads back, none twice.
    #[test]
    fn refusal_codes_are_distinct_snake_case_words() {
        let mut seen = std::collections::HashSet::new();
        for code in RefusalCode::ALL {
            let text = code.as_str();
            assert!(seen.insert(text), "{code:?}");
            assert!(text.chars().all(|c| c.is_ascii_lowercase() || c == '_'), "{text}");
        }
    }

    /// A media folder with one file at `confrontas/<name>`, and a validator whose quarantine
    /// folder (not created yet) sits beside it.
    fn refused_file(dir: &Path, name: &str, bytes: &[u8]) -> (Validator, PathBuf, RelativeMediaPath) {
        let media_root = dir.join("media");
        std::fs::create_dir_all(media_root.join("confrontas")).unwrap();
        let absolute = media_root.join("confrontas").join(name);
        std::fs::write(&absolute, bytes).unwrap();
        let path = RelativeMediaPath::from_absolute(&media_root, &absolute).unwrap();
        let config = ValidationConfig::default();
        (Validator::new(&config, dir.join("state/quarantine")), absolute, path)
    }

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
    }

    /// Issue 12 item 5: a refused file (an executable, a virus) is readable by its owner only.
    #[tokio::test]
    async fn quarantine_folders_are_private_and_files_owner_only() {
        let dir = tempfile::tempdir().unwrap();
        let (validator, absolute, path) = refused_file(dir.path(), "virus.pdf", b"MZ evil");
        let target = validator.quarantine(&absolute, &path, "clamd found Eicar").await.unwrap();
        let quarantine = dir.path().join("state/quarantine");
        assert_eq!(target, quarantine.join("confrontas/virus.pdf"));
        assert!(!absolute.exists());
        assert_eq!(std::fs::read(&target).unwrap(), b"MZ evil");
        for folder in [quarantine.clone(), quarantine.join("confrontas")] {
            assert_eq!(mode(&folder), 0o700, "{}", folder.display());
        }
        for file in [target.clone(), quarantine.join("confrontas/virus.pdf.reason")] {
            assert_eq!(mode(&file), 0o600, "{}", file.display());
        }
    }

    /// Issue 12 item 5: a name already taken in quarantine, by a file or by a note left alone
    /// (a crash between the note and the move), is never overwritten; the next free name is used.
    #[tokio::test]
    async fn quarantine_never_overwrites_an_earlier_file_or_note() {
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join("state/quarantine/confrontas");
        std::fs::create_dir_all(&folder).unwrap();
        std::fs::write(folder.join("a.pdf.reason"), "an earlier note").unwrap();

        let mut targets = Vec::new();
        for (round, bytes) in [b"first".as_slice(), b"second", b"third"].into_iter().enumerate() {
            let (validator, absolute, path) = refused_file(dir.path(), "a.pdf", bytes);
            let target = validator.quarantine(&absolute, &path, &format!("reason {round}")).await.unwrap();
            targets.push(target);
        }
        assert_eq!(targets, ["a.pdf.1", "a.pdf.2", "a.pdf.3"].map(|name| folder.join(name)));
        assert_eq!(std::fs::read_to_string(folder.join("a.pdf.reason")).unwrap(), "an earlier note");
        assert!(!folder.join("a.pdf").exists(), "the note alone reserved the bare name");
        for (target, (bytes, reason)) in
            targets.iter().zip([("first", "reason 0"), ("second", "reason 1"), ("third", "reason 2")])
        {
            assert_eq!(std::fs::read_to_string(target).unwrap(), bytes);
            let note = std::fs::read_to_string(format!("{}.reason", target.display())).unwrap();
            assert!(note.starts_with(reason), "{note}");
        }
    }

    /// The cross-filesystem fallback claims its target with `create_new` too.
    #[test]
    fn the_copy_fallback_never_replaces_an_existing_file() {
        let dir = tempfile::tempdir().unwrap();
        let (from, to) = (dir.path().join("refused.pdf"), dir.path().join("taken.pdf"));
        std::fs::write(&from, b"refused").unwrap();
        std::fs::write(&to, b"quarantined earlier").unwrap();
        let err = move_no_replace_by_copy(&from, &to).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::AlreadyExists, "{err}");
        assert_eq!(std::fs::read(&to).unwrap(), b"quarantined earlier");
        assert_eq!(std::fs::read(&from).unwrap(), b"refused");

        let fresh = dir.path().join("fresh.pdf");
        move_no_replace_by_copy(&from, &fresh).unwrap();
        assert_eq!(std::fs::read(&fresh).unwrap(), b"refused");
        assert_eq!(mode(&fresh), 0o600);
        assert!(!from.exists());
    }

    #[tokio::test]
    async fn an_empty_allow_list_accepts_any_type() {
        let v = validator(&[], 0);
        assert!(matches!(check(&v, "x.bin", b"random").await, Verdict::Accept { .. }));
    }
}
