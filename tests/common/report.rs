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
    /// Gone from the folder and not in quarantine.
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
        let text = match FilePlace::of(world, name) {
            FilePlace::Left => {
                let path = world.dir().join(name);
                let kind = std::fs::symlink_metadata(&path).map(|m| m.file_type()).ok();
                match kind {
                    Some(t) if t.is_symlink() => "link left in place".to_owned(),
                    Some(t) if t.is_fifo() => "FIFO left in place".to_owned(),
                    Some(t) if t.is_dir() => "folder left in place".to_owned(),
                    _ => format!("file left in place ({} bytes)", size(&path)),
                }
            }
            FilePlace::Quarantined => {
                let reason =
                    std::fs::read_to_string(world.quarantined(&format!("{name}.reason"))).unwrap_or_default();
                format!("file in quarantine/confrontas/ (reason file: '{}')", first_line(&reason))
            }
            FilePlace::Removed => "local file removed".to_owned(),
        };
        self.parts.push(text);
        self
    }

    /// Whether a file outside the watched folder is still there.
    pub fn outside_file(mut self, label: &str, path: &Path) -> Observed {
        let text = if std::fs::symlink_metadata(path).is_ok() { "untouched" } else { "GONE" };
        self.parts.push(format!("{label} {text}"));
        self
    }

    /// The state of venta `id`'s row.
    pub async fn row(mut self, world: &World, id: i64) -> Observed {
        let text = match world.db.row(id).await {
            None => format!("venta {id}: no row"),
            Some(row) => describe_row(&row),
        };
        self.parts.push(text);
        self
    }

    /// The objects under the world's prefix that belong to venta `id`.
    pub async fn object(mut self, world: &World, id: i64) -> Observed {
        let marker = format!("_confronta_{id}_");
        let names: Vec<String> =
            world.objects_under_prefix().await.into_iter().filter(|name| name.contains(&marker)).collect();
        let text = match names.as_slice() {
            [] => "no object".to_owned(),
            [one] => format!("object {}", one.strip_prefix(&format!("{}/", world.prefix)).unwrap_or(one)),
            many => format!("{} objects", many.len()),
        };
        self.parts.push(text);
        self
    }

    /// The file, its row and its object: the whole outcome for one upload.
    pub async fn upload(self, world: &World, name: &str, id: i64) -> Observed {
        self.file(world, name).row(world, id).await.object(world, id).await
    }

    /// The daemon's log line the test waited for, without its timestamp and level.
    pub fn log(mut self, line: &str) -> Observed {
        self.parts.push(format!("log: {}", log_message(line)));
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

    /// An exit code and the line of stderr that explains it.
    pub fn exit(mut self, code: Option<i32>, stderr: &str) -> Observed {
        let code = code.map_or_else(|| "none (still running)".to_owned(), |c| c.to_string());
        let line = stderr.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("");
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
    pub fn row(&mut self, case: &str, expected: &str, observed: &str) {
        self.rows.push(
            serde_json::json!({"group": self.group, "case": case, "expected": expected, "observed": observed}),
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

pub fn describe_row(row: &Row) -> String {
    let quoted =
        |value: &Option<String>| value.as_deref().map_or_else(|| "NULL".to_owned(), |v| format!("'{v}'"));
    if row.subido {
        format!("row recorded (sha256 {})", row.sha256.as_deref().map_or("NULL", |s| &s[..12.min(s.len())]))
    } else if row.sync_error.is_some() {
        format!("row: confronta {}, confronta_sync_error {}", quoted(&row.confronta), quoted(&row.sync_error))
    } else {
        format!("row unchanged (confronta {})", quoted(&row.confronta))
    }
}

/// A log line without its timestamp, level and target: the message and its fields.
fn log_message(line: &str) -> String {
    let rest = ["ERROR", "WARN", "INFO", "DEBUG", "TRACE"]
        .iter()
        .find_map(|level| line.split_once(&format!(" {level} ")).map(|(_, rest)| rest))
        .unwrap_or(line)
        .trim();
    // The target ("confronta_sync::pipeline: ") says where, not what.
    let rest = match rest.split_once(": ") {
        Some((target, message)) if target.contains("::") || target == "confronta_sync" => message,
        _ => rest,
    };
    let mut text: String = rest.chars().take(200).collect();
    if rest.chars().count() > 200 {
        text.push('…');
    }
    text
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or("").trim()
}

fn size(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}
