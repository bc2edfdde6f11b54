//! Unit tests of the pipeline: content types, backoff, and where a run starts for each journal state.

use super::*;

#[test]
fn content_type_comes_from_magic_bytes_before_the_extension() {
    assert_eq!(sniff_content_type(b"%PDF-1.7\n", ".png"), "application/pdf");
    assert_eq!(sniff_content_type(b"\x89PNG\r\n\x1a\n0000", ".pdf"), "image/png");
    assert_eq!(sniff_content_type(b"plain", ".jpg"), "image/jpeg");
    assert_eq!(sniff_content_type(b"plain", ".exe"), "application/octet-stream");
}

#[test]
fn backoff_doubles_and_caps() {
    let initial = Duration::from_secs(1);
    let max = Duration::from_secs(60);
    let first = backoff(0, initial, max);
    assert!(first >= Duration::from_millis(750) && first <= Duration::from_millis(1250), "{first:?}");
    let late = backoff(30, initial, max);
    assert!(late <= Duration::from_secs(75) && late >= Duration::from_secs(45), "{late:?}");
}

/// Where a run starts for each journal state, with and without a file at the path: the
/// journal's recovery table (`journal` module's doc comment) as data. `Stage::at_open` matches
/// without a wildcard, so a new state does not compile until it has its line; this says which
/// line each has. What each stage then does is the restart matrix's (tests/recovery).
#[test]
fn every_journal_state_starts_its_run_at_the_stage_the_recovery_table_gives() {
    let file = FileIdentity { dev: 1, inode: 2, size: 3, mtime_ns: 4, ctime_ns: 5, btime_ns: None };
    let stage_name = |stage: Stage| match stage {
        Stage::Recorded(RowCheck::ReadAgain) => "finish the removal, the row read again",
        Stage::Recorded(RowCheck::JustRecorded { .. }) => "finish the removal, the row not read again",
        Stage::Refusing(None) => "carry out the journaled refusal",
        Stage::Refusing(Some(_)) => "carry out this run's refusal",
        Stage::Finished => "nothing",
        Stage::Gone => "the file is gone",
        Stage::Unclaimed(at) => {
            assert_eq!(at, file);
            "match, claim and hash"
        }
        Stage::Resumed(at) => {
            assert_eq!(at, file);
            "resume: the row by id, then match and reuse the hash"
        }
        Stage::Claimed(_) | Stage::Stored(_) | Stage::Verified(_) => "a run never starts past its claim",
    };
    let table = [
        ("recorded", "finish the removal, the row read again", "finish the removal, the row read again"),
        ("refusing", "carry out the journaled refusal", "carry out the journaled refusal"),
        ("removed", "nothing", "nothing"),
        ("rejected", "nothing", "nothing"),
        ("row_changed", "nothing", "nothing"),
        ("seen", "match, claim and hash", "the file is gone"),
        ("waiting_for_row", "match, claim and hash", "the file is gone"),
        ("failed", "match, claim and hash", "the file is gone"),
        ("orphan", "match, claim and hash", "the file is gone"),
        ("hashed", "resume: the row by id, then match and reuse the hash", "the file is gone"),
        ("verified", "resume: the row by id, then match and reuse the hash", "the file is gone"),
    ];
    assert_eq!(table.len(), FileState::all().count(), "one line per journal state");
    for (state, with_file, without_file) in table {
        let state = FileState::parse(state).expect("a journal state");
        assert_eq!(stage_name(Stage::at_open(state, Some(file))), with_file, "{state:?} with its file");
        assert_eq!(stage_name(Stage::at_open(state, None)), without_file, "{state:?} with no file");
    }

    // The journal's table (its `//!` comment) says the same, in the same order: its first six
    // lines name the states `at_open` treats alike (one line, the file gone, names none), each
    // state once.
    let journal = include_str!("../journal/mod.rs");
    let text = &journal[journal.find("# What a restart does in each state").expect("the table")..];
    let text = &text[..text.find("# Rows that named a missing file").expect("the end of the table")];
    let lines: Vec<&str> = text.lines().filter_map(|line| line.strip_prefix("//! - ")).take(6).collect();
    let mut named = Vec::new();
    for line in &lines {
        let head = line.split(':').next().unwrap_or_default();
        let states: Vec<FileState> =
            head.split(", ").filter_map(|word| FileState::parse(word.trim_matches('`'))).collect();
        if head.starts_with("any other state") {
            continue;
        }
        assert!(!states.is_empty(), "the table's line {line:?} names no state");
        let stages: Vec<&str> =
            states.iter().map(|state| stage_name(Stage::at_open(*state, Some(file)))).collect();
        assert!(stages.windows(2).all(|pair| pair[0] == pair[1]), "{head}: started at {stages:?}");
        named.extend(states);
    }
    let order: Vec<&str> = table.iter().map(|(state, ..)| *state).collect();
    assert_eq!(
        named.iter().map(|state| state.as_str()).collect::<Vec<_>>(),
        order.iter().copied().filter(|state| named.iter().any(|n| n.as_str() == *state)).collect::<Vec<_>>(),
        "the journal's table and this one, in the same order"
    );
    assert_eq!(named.len(), FileState::all().count(), "every state has its line in the journal's table");
}
