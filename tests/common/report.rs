//! The table rows a test reports (docs/hostile-inputs.md, rendered by scripts/render-report.py):
//! each row's "observed" column is an `Observed`, built from what the test saw (where the file
//! ended up, the object, the row, the daemon's log line, its exit), never typed by hand.

use std::fmt::Write as _;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

use super::{Row, Sidecar, World};

/// What a test saw of one outcome, as the report's "observed" cell.
#[derive(Debug, Default, Clone)]
pub struct Observed {
    parts: Vec<String>,
}

/// Where a file given to the daemon ended up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilePlace {
    /// Still at its path in the folder (for a symlink: the link itself).
    Left,
    /// Moved to the quarantine folder with its `.reason` beside it.
    Quarantined,
    /// Gone from the folder and not in the default quarantine.
    Removed,
}

impl FilePlace {
    pub fn of(world: &World, name: &str) -> FilePlace {
        if std::fs::symlink_metadata(world.dir().join(name)).is_ok() {
            FilePlace::Left
        } else if world.quarantined(name).exists() {
            FilePlace::Quarantined
        } else {
            FilePlace::Removed
        }
    }
}

impl Observed {
    pub fn new() -> Observed {
        Observed::default()
    }

    /// Where `confrontas/<name>` is now.
    pub fn file(mut self, world: &World, name: &str) -> Observed {
        self.parts.push(file_text(world, name));
        self
    }

    /// Whether `path` (outside what the daemon may touch, or a name no row can hold) is still
    /// there.
    pub fn path(mut self, label: &str, path: &Path) -> Observed {
        let text = if std::fs::symlink_metadata(path).is_ok() { "still there" } else { "GONE" };
        self.parts.push(format!("{label} {text}"));
        self
    }

    /// The state of venta `id`'s row.
    pub async fn row(mut self, world: &World, id: i64) -> Observed {
        self.parts.push(row_text(world, id).await);
        self
    }

    /// The objects under the world's prefix that belong to venta `id`.
    pub async fn object(mut self, world: &World, id: i64) -> Observed {
        self.parts.push(object_text(world, id).await);
        self
    }

    /// Whether the object named `object` (a full name, prefix included) is in the bucket.
    pub async fn stored(mut self, world: &World, object: &str) -> Observed {
        let present = world.objects_under_prefix().await.iter().any(|name| name == object);
        let short = object.strip_prefix(&format!("{}/", world.prefix)).unwrap_or(object);
        self.parts.push(format!("object {short} {}", if present { "present" } else { "MISSING" }));
        self
    }

    /// The whole outcome of one upload: its file, its row and its object.
    pub async fn upload(mut self, world: &World, name: &str, id: i64) -> Observed {
        let text = format!(
            "{}: {}, {}, {}",
            name.escape_debug(),
            file_text(world, name),
            row_text(world, id).await,
            object_text(world, id).await
        );
        self.parts.push(text);
        self
    }

    /// The daemon's log line the test waited for, without its timestamp, level and target.
    pub fn log(mut self, line: &str) -> Observed {
        self.parts.push(format!("log: {}", log_message(line)));
        self
    }

    /// A line the command printed.
    pub fn output(mut self, line: &str) -> Observed {
        self.parts.push(format!("printed: {}", log_message(line)));
        self
    }

    /// Whether the daemon is still running, and if not how it ended.
    pub fn daemon(mut self, sidecar: &mut Sidecar) -> Observed {
        let text = match sidecar.child.try_wait().unwrap() {
            None => "daemon running".to_owned(),
            Some(status) => format!("daemon exited: {status}"),
        };
        self.parts.push(text);
        self
    }

    /// An exit code and the line of the output that explains it.
    pub fn exit(mut self, code: i32, line: &str) -> Observed {
        self.parts.push(format!("exit {code}: {}", log_message(line)));
        self
    }

    /// A quantity the test measured, e.g. `count("files moved", 3)`.
    pub fn count(mut self, what: &str, n: impl std::fmt::Display) -> Observed {
        self.parts.push(format!("{what}: {n}"));
        self
    }

    pub fn text(&self) -> String {
        self.parts.join("; ")
    }
}

/// The first line of `text` that contains `needle` (the one a test asserted on), or "".
pub fn line_with<'a>(text: &'a str, needle: &str) -> &'a str {
    text.lines().find(|line| line.contains(needle)).unwrap_or("")
}

fn file_text(world: &World, name: &str) -> String {
    match FilePlace::of(world, name) {
        FilePlace::Left => {
            let path = world.dir().join(name);
            match std::fs::symlink_metadata(&path).map(|m| m.file_type()) {
                Ok(t) if t.is_symlink() => "link left in place".to_owned(),
                Ok(t) if t.is_fifo() => "FIFO left in place".to_owned(),
                _ => {
                    format!("file left in place ({} bytes)", std::fs::metadata(&path).map_or(0, |m| m.len()))
                }
            }
        }
        FilePlace::Quarantined => {
            let reason =
                std::fs::read_to_string(world.quarantined(&format!("{name}.reason"))).unwrap_or_default();
            format!(
                "file in quarantine/confrontas/, .reason '{}'",
                reason.lines().next().unwrap_or("").trim()
            )
        }
        FilePlace::Removed => "gone from the folder".to_owned(),
    }
}

async fn row_text(world: &World, id: i64) -> String {
    match world.db.row(id).await {
        None => format!("venta {id}: no row"),
        Some(row) => format!("{} {}", row.numero, describe_row(&row)),
    }
}

async fn object_text(world: &World, id: i64) -> String {
    let marker = format!("_confronta_{id}_");
    let names: Vec<String> =
        world.objects_under_prefix().await.into_iter().filter(|name| name.contains(&marker)).collect();
    match names.as_slice() {
        [] => "no object".to_owned(),
        [one] => format!("object {}", one.strip_prefix(&format!("{}/", world.prefix)).unwrap_or(one)),
        many => format!("{} objects", many.len()),
    }
}

/// One group's rows, written as JSON lines under target/reports/hostile/ (or
/// `$CONFRONTA_REPORT_DIR/hostile`) when the test ends without a panic, so a row stands only
/// for a case that passed.
pub struct Report {
    group: &'static str,
    rows: Vec<serde_json::Value>,
}

impl Report {
    pub fn new(group: &'static str) -> Report {
        Report { group, rows: Vec::new() }
    }

    /// Records a case; call it after the case's assertions.
    pub fn row(&mut self, case: &str, expected: &str, observed: &Observed) {
        self.rows.push(
            serde_json::json!({"group": self.group, "case": case, "expected": expected, "observed": observed.text()}),
        );
    }
}

impl Drop for Report {
    fn drop(&mut self) {
        if std::thread::panicking() {
            return;
        }
        let dir = report_dir().join("hostile");
        std::fs::create_dir_all(&dir).unwrap();
        let mut text = String::new();
        for row in &self.rows {
            let _ = writeln!(text, "{row}");
        }
        std::fs::write(dir.join(format!("{}.jsonl", self.group)), text).unwrap();
    }
}

/// Where reports go: `$CONFRONTA_REPORT_DIR`, else target/reports.
pub fn report_dir() -> PathBuf {
    std::env::var("CONFRONTA_REPORT_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/reports"))
}

fn describe_row(row: &Row) -> String {
    let quoted =
        |value: &Option<String>| value.as_deref().map_or_else(|| "NULL".to_owned(), |v| format!("'{v}'"));
    if row.subido {
        format!("row recorded (sha256 {})", row.sha256.as_deref().map_or("NULL", |s| &s[..12.min(s.len())]))
    } else if row.sync_error.is_some() {
        format!("row: confronta {}, confronta_sync_error {}", quoted(&row.confronta), quoted(&row.sync_error))
    } else {
        format!("row not recorded (confronta {})", quoted(&row.confronta))
    }
}

/// A log line without its timestamp, level and target: the message and its fields.
fn log_message(line: &str) -> String {
    let rest = ["ERROR", "WARN", "INFO", "DEBUG", "TRACE"]
        .iter()
        .find_map(|level| line.split_once(&format!(" {level} ")).map(|(_, rest)| rest))
        .unwrap_or(line)
        .trim();
    // The span ("file{path=… object=…}: ") and the target ("confronta_sync::pipeline: ") say
    // where, not what; the message and its fields follow them.
    let rest = match rest.find("confronta_sync::").map(|at| &rest[at..]) {
        Some(from_target) => from_target.split_once(": ").map_or(from_target, |(_, message)| message),
        None => rest,
    };
    let rest = without_temp_dirs(rest);
    let rest = rest.as_str();
    let mut text: String = rest.chars().take(240).collect();
    if rest.chars().count() > 240 {
        text.push('…');
    }
    text
}

/// `text` with each test temp dir (`/tmp/.tmpAbC123`) shown as `$TMP`, so a regenerated report
/// differs only where an outcome did.
fn without_temp_dirs(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("/tmp/.tmp") {
        out.push_str(&rest[..at]);
        out.push_str("$TMP");
        let after = &rest[at + "/tmp/.tmp".len()..];
        rest = after.trim_start_matches(|c: char| c.is_ascii_alphanumeric() || c == '_');
    }
    out.push_str(rest);
    out
}
