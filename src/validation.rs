//! What a file must be before it may leave the machine: an allowed type by its extension and
//! by its magic bytes, no larger than `max_bytes`, and clean by clamd when one is configured.
//! A file that fails is moved to the quarantine folder with a `.reason` note beside it.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::config::ValidationConfig;
use crate::hash::{open_regular, FileIdentity, HEAD_BYTES};
use crate::media_path::{remove_file_durably, rename_durably, symlink_metadata_no_follow, RelativeMediaPath};

/// How long one clamd scan may take before it counts as clamd being unreachable.
const SCAN_TIMEOUT: Duration = Duration::from_secs(120);

/// The answer for one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Fine to upload; the content type comes from the magic bytes.
    Accept { content_type: String },
    /// Refused for good: move it to quarantine, for this reason.
    Quarantine(String),
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
}

impl Validator {
    pub fn new(config: &ValidationConfig, quarantine_dir: PathBuf) -> Validator {
        Validator {
            allowed: config.allowed_types.iter().map(|t| normalise(t.trim_start_matches('.'))).collect(),
            max_bytes: (config.max_bytes > 0).then_some(config.max_bytes),
            clamd_socket: config.clamd_socket.clone(),
            quarantine_dir,
        }
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
            return Verdict::Quarantine(format!("{} bytes is over max_bytes ({max})", identity.size));
        }
        if identity.size == 0 {
            return Verdict::Quarantine("empty file".into());
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
                return Verdict::Quarantine(format!("{shown} is not in allowed_types"));
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
                    return Verdict::Quarantine(format!(
                        "content is {} ({}), which is not in allowed_types",
                        kind.mime_type(),
                        kind.extension()
                    ))
                }
                None => {
                    return Verdict::Quarantine(
                        "content is not a recognised document or image (magic bytes)".into(),
                    )
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
                Scan::Infected(signature) => return Verdict::Quarantine(format!("clamd found {signature}")),
                Scan::TooLarge(message) => return Verdict::Keep(format!("clamd cannot scan it: {message}")),
                Scan::Unavailable(message) => return Verdict::Retry(format!("clamd unreachable: {message}")),
            }
        }
        Verdict::Accept { content_type: content_type.unwrap_or_default() }
    }

    /// Moves the file to the quarantine folder, keeping its relative path, and writes the reason
    /// beside it. Returns where it went. The move is a rename (same filesystem) or, across
    /// filesystems, a durable copy followed by the unlink.
    pub fn quarantine(
        &self,
        absolute: &Path,
        path: &RelativeMediaPath,
        reason: &str,
    ) -> Result<PathBuf, String> {
        let mut target = self.quarantine_dir.join(path.as_str());
        let mut n = 1;
        while target.exists() {
            target = self.quarantine_dir.join(format!("{}.{n}", path.as_str()));
            n += 1;
        }
        let parent = target.parent().expect("quarantine targets have a parent").to_owned();
        std::fs::create_dir_all(&parent).map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
        let note = format!(
            "{reason}\noriginal path: {}\nquarantined at: {}\n",
            path,
            humantime::format_rfc3339_seconds(std::time::SystemTime::now())
        );
        let note_path = PathBuf::from(format!("{}.reason", target.display()));
        std::fs::write(&note_path, note).map_err(|e| format!("cannot write {}: {e}", note_path.display()))?;
        // The file's side is reached without following a symlink, and its folder is fsynced
        // by the rename or the unlink; the quarantine side is the operator's own folder.
        match rename_durably(absolute, &target) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EXDEV) => {
                copy_durably(absolute, &target)?;
                remove_file_durably(absolute)
                    .map_err(|e| format!("cannot remove {}: {e}", absolute.display()))?;
            }
            Err(e) => return Err(format!("cannot move {} to {}: {e}", absolute.display(), target.display())),
        }
        std::fs::File::open(&parent)
            .and_then(|d| d.sync_all())
            .map_err(|e| format!("cannot fsync {}: {e}", parent.display()))?;
        Ok(target)
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

fn copy_durably(from: &Path, to: &Path) -> Result<(), String> {
    let (mut source, _) = open_regular(from).map_err(|e| e.to_string())?;
    let mut target = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(to)
        .map_err(|e| format!("cannot create {}: {e}", to.display()))?;
    std::io::copy(&mut source, &mut target).map_err(|e| format!("cannot copy to {}: {e}", to.display()))?;
    target.sync_all().map_err(|e| format!("cannot fsync {}: {e}", to.display()))
}

enum Scan {
    Clean,
    Infected(String),
    TooLarge(String),
    Unavailable(String),
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
            ("a.pdf", b"MZ\x90\0 this is an exe", "quarantine"),
            ("a.exe", b"%PDF-1.7\n", "quarantine"),
            ("sin_extension", b"%PDF-1.7\n", "quarantine"),
            ("a.pdf", b"just text", "quarantine"),
            ("a.pdf", b"", "quarantine"),
            ("a.pdf", &[b'%'; 1001], "quarantine"),
        ];
        for (name, bytes, expected) in cases {
            let verdict = check(&v, name, bytes).await;
            match (&verdict, expected) {
                (Verdict::Accept { content_type }, wanted) => assert_eq!(content_type, wanted, "{name}"),
                (Verdict::Quarantine(_), "quarantine") => {}
                _ => panic!("{name}: {verdict:?}, expected {expected}"),
            }
        }
    }

    #[tokio::test]
    async fn an_empty_allow_list_accepts_any_type() {
        let v = validator(&[], 0);
        assert!(matches!(check(&v, "x.bin", b"random").await, Verdict::Accept { .. }));
    }
}
