//! What the tests report, and the one writer of every report they leave: docs/hostile-inputs.md
//! (from `Report`, the rows of tests/refusing/hostile.rs and tests/recovery/guarantees.rs) and docs/reliability.md
//! (tests/reliability_support/report.rs) both go through `write_markdown`. Each row's "observed"
//! column is built from what the test saw (an `Observed`: where the file ended up, the object,
//! the row, the daemon's log line, its exit; or a reliability case's notes), never typed by hand.

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
        if let Some(doc) = std::env::var_os("CONFRONTA_HOSTILE_REPORT").filter(|doc| !doc.is_empty()) {
            render_hostile(&dir, &PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(doc));
        }
    }
}

/// docs/hostile-inputs.md from every group's rows written so far (two test binaries write
/// groups; the last group to finish leaves the whole table, `scripts/hostile-report.sh`).
fn render_hostile(dir: &Path, doc: &Path) {
    // Groups of one binary end on several threads; one render at a time, each from every file.
    static RENDER: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one_at_a_time = RENDER.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|entry| Some(entry.ok()?.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "jsonl"))
        .collect();
    files.sort();
    let mut rows = Vec::new();
    for file in files {
        for line in std::fs::read_to_string(&file).unwrap().lines().filter(|line| !line.trim().is_empty()) {
            let row: serde_json::Value = serde_json::from_str(line).unwrap();
            rows.push(
                ["group", "case", "expected", "observed"]
                    .map(|key| row[key].as_str().unwrap_or("").to_owned())
                    .to_vec(),
            );
        }
    }
    let prose = vec![
        "Generated by `scripts/hostile-report.sh` from what `tests/refusing/hostile.rs` and `tests/recovery/guarantees.rs`"
            .to_owned(),
        "saw (the observed column is built from the file, row, object, log line or exit code each case"
            .to_owned(),
        "checked; a row is written only when its case passed); do not edit by hand.".to_owned(),
        format!("Commit {}, {} UTC, {} cases.", git_describe(), utc_now(), rows.len()),
    ];
    write_markdown(
        doc,
        "Hostile inputs: every bad input gets a clear answer",
        &prose,
        &["group", "case", "expected", "observed"],
        &rows,
    );
}

/// Writes a report: `# title`, the prose lines, then a table of `columns` and `rows` (cells
/// escaped for Markdown). Written to a temporary file and renamed into place, so two tests
/// finishing together never leave half a report.
pub fn write_markdown(path: &Path, title: &str, prose: &[String], columns: &[&str], rows: &[Vec<String>]) {
    let mut text = format!("# {title}\n\n");
    for line in prose {
        let _ = writeln!(text, "{line}");
    }
    let _ = writeln!(text);
    let _ = writeln!(text, "| {} |", columns.join(" | "));
    let _ = writeln!(text, "|{}", "---|".repeat(columns.len()));
    for row in rows {
        let cells: Vec<String> = row.iter().map(|text| cell(text)).collect();
        let _ = writeln!(text, "| {} |", cells.join(" | "));
    }
    if let Some(parent) = path.parent() {
        let _ = std::fs::create_dir_all(parent);
    }
    let temp = path.with_extension(format!("md.{}.tmp", std::process::id()));
    std::fs::write(&temp, text).expect("write the report");
    std::fs::rename(&temp, path).expect("move the report in place");
}

/// A table cell: a `|` would end it and a newline the row.
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

/// The commit the report comes from, `-dirty` when tracked files outside docs/ differ from it
/// (the reports live in docs/, and rewriting one must not make its own commit look dirty).
pub fn git_describe() -> String {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    let Some(commit) = git(&["rev-parse", "--short=12", "HEAD"]) else { return "unknown".into() };
    match git(&["status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)docs"]) {
        Some(changes) if changes.is_empty() => commit,
        _ => format!("{commit}-dirty"),
    }
}

/// `YYYY-MM-DD HH:MM` for now, in UTC.
pub fn utc_now() -> String {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02} {:02}:{:02}", rem / 3600, rem % 3600 / 60)
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
