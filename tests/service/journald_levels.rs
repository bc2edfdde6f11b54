//! Log levels journald understands: under systemd, stderr is a journal stream (`JOURNAL_STREAM`
//! names its device and inode), and each line starts with its syslog priority (`<3>` error,
//! `<4>` warning, `<6>` info, `<7>` debug), so `journalctl -p warning` shows the warnings.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::common::{free_port, s3_env, TestConfig};

/// A config whose database refuses connections (a closed port, so the run ends at once with
/// exit 3 and an error line) and which keeps a retired key (a warning line).
fn config(dir: &Path) -> PathBuf {
    let closed = free_port();
    TestConfig::placed(
        dir.join("config.toml"),
        &crate::common::config::Placement {
            media_root: &dir.join("media"),
            database_url: format!("postgres://root@127.0.0.1:{closed}/test"),
            s3: &s3_env(),
            secret_key_file: &dir.join("minio-secret"),
            prefix: "journald",
            journal: &dir.join("state/journal.sqlite3"),
        },
    )
    .set("watch.missing_after_s", 60)
    .write()
}

/// Runs `check` with stderr written to `log`, `JOURNAL_STREAM` set to `stream` (when given);
/// returns the exit code and what reached stderr.
fn check_with_stream(dir: &Path, stream: Option<&dyn Fn(&std::fs::File) -> String>) -> (Option<i32>, String) {
    let config = config(dir);
    let log = dir.join("stderr.log");
    let file = std::fs::File::create(&log).unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_confronta-sync"));
    command
        .arg("--config")
        .arg(&config)
        .arg("check")
        .env("RUST_LOG", "confronta_sync=debug")
        .env_remove("JOURNAL_STREAM");
    if let Some(stream) = stream {
        command.env("JOURNAL_STREAM", stream(&file));
    }
    let status = command.stdin(Stdio::null()).stdout(Stdio::null()).stderr(file).status().unwrap();
    (status.code(), std::fs::read_to_string(&log).unwrap())
}

/// What systemd puts in `JOURNAL_STREAM` for the stream behind `file`: `<device>:<inode>`.
fn stream_of(file: &std::fs::File) -> String {
    let meta = file.metadata().unwrap();
    format!("{}:{}", meta.dev(), meta.ino())
}

/// The syslog priority each level word of the text format is given.
fn priority_of(line: &str) -> Option<&'static str> {
    [(" ERROR ", "<3>"), (" WARN ", "<4>"), (" INFO ", "<6>"), (" DEBUG ", "<7>"), (" TRACE ", "<7>")]
        .into_iter()
        .find(|(word, _)| line.contains(word))
        .map(|(_, priority)| priority)
}

/// Issue 25 item 4: on a journal stream every line carries the priority of its level, so the
/// warning about a retired key is `<4>` and the database error `<3>` (before, every line
/// reached journald as priority 6, info, and `journalctl -p warning` showed none of them).
#[test]
fn on_a_journal_stream_each_line_starts_with_its_priority() {
    let dir = tempfile::tempdir().unwrap();
    let (code, stderr) = check_with_stream(dir.path(), Some(&stream_of));
    assert_eq!(code, Some(3), "{stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert!(lines.iter().any(|l| l.starts_with("<4>") && l.contains("missing_after_s")), "{stderr}");
    assert!(lines.iter().any(|l| l.starts_with("<3>") && l.contains("127.0.0.1")), "{stderr}");
    for line in lines {
        let expected = priority_of(line).unwrap_or_else(|| panic!("a line with no level: {line:?}"));
        assert!(line.starts_with(expected), "{line:?} should start with {expected}");
    }
}

/// Outside journald (a terminal, a file, a pipe), and when `JOURNAL_STREAM` names another
/// stream than stderr (a child of a service whose stderr was redirected), lines stay plain.
#[test]
fn elsewhere_lines_carry_no_priority() {
    let elsewhere: &dyn Fn(&std::fs::File) -> String = &|_| "1:1".to_owned();
    for stream in [None, Some(elsewhere)] {
        let dir = tempfile::tempdir().unwrap();
        let (code, stderr) = check_with_stream(dir.path(), stream);
        assert_eq!(code, Some(3), "{stderr}");
        assert!(stderr.lines().any(|l| l.contains(" WARN ")), "{stderr}");
        assert!(!stderr.lines().any(|l| l.starts_with('<')), "{stderr}");
    }
}
