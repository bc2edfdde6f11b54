//! `RelativeMediaPath`: a path relative to MEDIA_ROOT, exactly as Django stores it in the row.

use std::fmt;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

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

    #[test]
    fn extension_of_names_without_one_is_empty() {
        for name in ["confrontas/README", "confrontas/.hidden", "confrontas/x."] {
            assert_eq!(RelativeMediaPath::parse(name).unwrap().extension(), "", "{name}");
        }
    }
}
