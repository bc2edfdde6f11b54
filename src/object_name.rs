//! Object names: the `[minio] object_name` template and the values it may use.
//!
//! The default template puts the first twelve hex digits of the content's SHA-256 in the name,
//! so an upload of different content never lands on a name that a row already references.

use std::fmt;

use crate::hash::Sha256Digest;

pub const DEFAULT_TEMPLATE: &str = "confrontas/venta_{numero}_confronta_{id}_{sha256_12}{ext}";

/// Placeholders the template may use.
const PLACEHOLDERS: &[&str] = &["numero", "id", "sha256_12", "sha256", "ext"];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("unknown placeholder {{{0}}}; known: {{numero}} {{id}} {{sha256_12}} {{sha256}} {{ext}}")]
    UnknownPlaceholder(String),
    #[error("unclosed '{{' in template {0:?}")]
    Unclosed(String),
    #[error("template {0:?} must contain {{sha256_12}} or {{sha256}} and {{id}}, so that different content never overwrites an object a row references")]
    NotContentAddressed(String),
    #[error("template {0:?} must be a relative name without '..' segments")]
    Escapes(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Literal(String),
    Placeholder(String),
}

/// A parsed object-name template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectNameTemplate {
    pieces: Vec<Piece>,
}

/// The values a template is rendered with.
pub struct ObjectNameInputs<'a> {
    pub venta_id: i64,
    pub numero: &'a str,
    pub sha256: &'a Sha256Digest,
    /// Lowercased extension with its dot, or `""`.
    pub extension: &'a str,
}

/// A rendered object key, known to stay under the template's literal prefix.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ObjectName(String);

impl ObjectNameTemplate {
    pub fn parse(template: &str) -> Result<Self, TemplateError> {
        let mut pieces = Vec::new();
        let mut rest = template;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                pieces.push(Piece::Literal(rest[..open].to_owned()));
            }
            let close = rest[open..].find('}').ok_or_else(|| TemplateError::Unclosed(template.to_owned()))?;
            let name = &rest[open + 1..open + close];
            if !PLACEHOLDERS.contains(&name) {
                return Err(TemplateError::UnknownPlaceholder(name.to_owned()));
            }
            pieces.push(Piece::Placeholder(name.to_owned()));
            rest = &rest[open + close + 1..];
        }
        if !rest.is_empty() {
            pieces.push(Piece::Literal(rest.to_owned()));
        }
        let uses = |name: &str| pieces.iter().any(|p| *p == Piece::Placeholder(name.into()));
        if !(uses("id") && (uses("sha256_12") || uses("sha256"))) {
            return Err(TemplateError::NotContentAddressed(template.to_owned()));
        }
        if template.starts_with('/') || template.split('/').any(|s| s == ".." || s == ".") {
            return Err(TemplateError::Escapes(template.to_owned()));
        }
        Ok(ObjectNameTemplate { pieces })
    }

    /// The folder part of the literal text before the first placeholder, e.g. `confrontas/`:
    /// every object this template names lives under it.
    pub fn prefix(&self) -> &str {
        match self.pieces.first() {
            Some(Piece::Literal(text)) => text.rfind('/').map_or("", |slash| &text[..=slash]),
            _ => "",
        }
    }

    /// Whether `name` has the shape of a name this template renders: its literal text in
    /// place, and for each placeholder what `render` can put there (a sanitised segment, a
    /// venta id, hex digits, an extension or nothing). The daemon deletes no object whose name
    /// fails this, whatever a row says: a row may hold any text, and a bucket other names.
    pub fn could_have_rendered(&self, name: &str) -> bool {
        matches_pieces(&self.pieces, name)
    }

    /// What every name this template gives venta `venta_id` (numbered `numero`) starts with,
    /// and no other venta's does: the template rendered up to its first placeholder that
    /// depends on the content. `None` where that text cannot tell ventas apart (it does not
    /// end in literal text after `{id}`, so venta 1's would also start venta 12's).
    pub fn venta_prefix(&self, venta_id: i64, numero: &str) -> Option<String> {
        let (head, _) = self.split_at_content();
        let ends_in_literal = matches!(head.last(), Some(Piece::Literal(_)));
        let names_id = head.iter().any(|piece| *piece == Piece::Placeholder("id".into()));
        if !(ends_in_literal && names_id) {
            return None;
        }
        let sha256 = Sha256Digest::of_bytes(b"");
        let inputs = ObjectNameInputs { venta_id, numero, sha256: &sha256, extension: "" };
        Some(ObjectNameTemplate { pieces: head.to_vec() }.render(&inputs).0)
    }

    /// Whether `name`, which starts with `venta_prefix(venta_id, numero)`, is a name this
    /// template gives that venta: the rest has the shape of the content's part (a numero
    /// holding `_confronta_7` would otherwise make venta 9's names start with venta 7's prefix).
    pub fn is_of_venta(&self, name: &str, venta_id: i64, numero: &str) -> bool {
        let Some(prefix) = self.venta_prefix(venta_id, numero) else { return false };
        let (_, tail) = self.split_at_content();
        name.strip_prefix(prefix.as_str()).is_some_and(|rest| matches_pieces(tail, rest))
    }

    /// The pieces before the first placeholder that depends on the content, and the rest.
    fn split_at_content(&self) -> (&[Piece], &[Piece]) {
        let content = |piece: &Piece| matches!(piece, Piece::Placeholder(name) if name.starts_with("sha256") || name == "ext");
        let at = self.pieces.iter().position(content).unwrap_or(self.pieces.len());
        self.pieces.split_at(at)
    }

    pub fn render(&self, inputs: &ObjectNameInputs<'_>) -> ObjectName {
        let mut out = String::new();
        for piece in &self.pieces {
            match piece {
                Piece::Literal(text) => out.push_str(text),
                Piece::Placeholder(name) => match name.as_str() {
                    "numero" => out.push_str(&sanitize_segment(inputs.numero)),
                    "id" => out.push_str(&inputs.venta_id.to_string()),
                    "sha256_12" => out.push_str(&inputs.sha256.to_hex()[..12]),
                    "sha256" => out.push_str(&inputs.sha256.to_hex()),
                    "ext" => out.push_str(&sanitize_extension(inputs.extension)),
                    other => unreachable!("placeholder {other} was validated at parse time"),
                },
            }
        }
        ObjectName(out)
    }
}

impl ObjectName {
    /// Wraps a name read back from the database or the bucket.
    pub fn from_stored(name: impl Into<String>) -> Self {
        ObjectName(name.into())
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ObjectName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Whether `name` has the shape `pieces` render (see `could_have_rendered`).
fn matches_pieces(pieces: &[Piece], rest: &str) -> bool {
    let Some((piece, more)) = pieces.split_first() else {
        return rest.is_empty();
    };
    match piece {
        Piece::Literal(text) => {
            rest.strip_prefix(text.as_str()).is_some_and(|rest| matches_pieces(more, rest))
        }
        Piece::Placeholder(placeholder) => {
            // Every length the placeholder could have taken, shortest first.
            (0..=rest.len())
                .filter(|end| rest.is_char_boundary(*end))
                .any(|end| fits(placeholder, &rest[..end]) && matches_pieces(more, &rest[end..]))
        }
    }
}

/// Whether `value` is what `render` can put in `placeholder`.
fn fits(placeholder: &str, value: &str) -> bool {
    let hex = |len: usize| value.len() == len && value.bytes().all(|b| b.is_ascii_hexdigit());
    match placeholder {
        "numero" => {
            !value.is_empty() && value.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        }
        "id" => value.strip_prefix('-').unwrap_or(value).parse::<u64>().is_ok(),
        "sha256_12" => hex(12),
        "sha256" => hex(64),
        "ext" => value.is_empty() || sanitize_extension(value) == value,
        _ => false,
    }
}

/// Keeps `[A-Za-z0-9_-]` and replaces everything else (slashes, dots, spaces) with `_`, so a
/// value from the row can neither add a path segment nor escape the prefix.
fn sanitize_segment(value: &str) -> String {
    let cleaned: String = value
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' })
        .collect();
    if cleaned.is_empty() {
        "_".into()
    } else {
        cleaned
    }
}

/// Keeps a short `.ext` of ASCII alphanumerics, or nothing.
fn sanitize_extension(extension: &str) -> String {
    let body = extension.trim_start_matches('.');
    if !body.is_empty() && body.len() <= 10 && body.chars().all(|c| c.is_ascii_alphanumeric()) {
        format!(".{}", body.to_ascii_lowercase())
    } else {
        String::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest() -> Sha256Digest {
        Sha256Digest::of_bytes(b"hola")
    }

    #[test]
    fn default_template_follows_the_seed() {
        let template = ObjectNameTemplate::parse(DEFAULT_TEMPLATE).unwrap();
        let sha = digest();
        let name = template.render(&ObjectNameInputs {
            venta_id: 42,
            numero: "PORTA-20240101120000",
            sha256: &sha,
            extension: ".pdf",
        });
        assert_eq!(
            name.as_str(),
            format!("confrontas/venta_PORTA-20240101120000_confronta_42_{}.pdf", &sha.to_hex()[..12])
        );
        assert_eq!(template.prefix(), "confrontas/");
    }

    #[test]
    fn row_values_cannot_escape_the_prefix() {
        let template = ObjectNameTemplate::parse(DEFAULT_TEMPLATE).unwrap();
        let sha = digest();
        let name = template.render(&ObjectNameInputs {
            venta_id: 1,
            numero: "../../etc/x y",
            sha256: &sha,
            extension: ".p/df",
        });
        assert!(name.as_str().starts_with("confrontas/venta_______etc_x_y_confronta_1_"), "{name}");
        assert!(!name.as_str().contains(".."), "{name}");
        assert_eq!(name.as_str().matches('/').count(), 1, "{name}");
    }

    /// Issue 23, item 5: what the daemon may delete is what its template could have named.
    #[test]
    fn a_name_is_ours_only_if_the_template_could_have_rendered_it() {
        let template = ObjectNameTemplate::parse(DEFAULT_TEMPLATE).unwrap();
        let sha = digest();
        for (numero, id, extension) in [("PORTA-1", 7, ".pdf"), ("a b/c", 123456, ".JPEG"), ("", -3, "")] {
            let name = template.render(&ObjectNameInputs { venta_id: id, numero, sha256: &sha, extension });
            assert!(template.could_have_rendered(name.as_str()), "{name}");
        }
        let hex12 = &sha.to_hex()[..12];
        for foreign in [
            "".to_owned(),
            "confrontas/".to_owned(),
            "confrontas/otra_cosa.pdf".to_owned(),
            format!("otras/venta_X_confronta_1_{hex12}.pdf"),
            format!("confrontas/venta_X_confronta_uno_{hex12}.pdf"),
            format!("confrontas/venta_X_confronta_1_{}.pdf", &hex12[..11]),
            format!("confrontas/venta_X/Y_confronta_1_{hex12}.pdf"),
            format!("confrontas/venta_X_confronta_1_{hex12}.pdf.bak"),
            format!(".confronta-sync-probe/venta_X_confronta_1_{hex12}.pdf"),
        ] {
            assert!(!template.could_have_rendered(&foreign), "{foreign:?}");
        }
        let flat = ObjectNameTemplate::parse("{id}_{sha256}").unwrap();
        assert!(flat.could_have_rendered(&format!("12_{}", sha.to_hex())));
        assert!(!flat.could_have_rendered("cualquier/objeto.pdf"));
    }

    #[test]
    fn bad_templates_are_rejected() {
        let cases = [
            ("x/{nope}", "unknown placeholder"),
            ("x/{id", "unclosed"),
            ("x/{numero}{ext}", "must contain"),
            ("../{id}_{sha256}", "'..'"),
        ];
        for (template, expected) in cases {
            let err = ObjectNameTemplate::parse(template).unwrap_err().to_string();
            assert!(err.contains(expected), "{template}: {err}");
        }
    }
}
