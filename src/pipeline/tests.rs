//! Unit tests of the pipeline: content types, backoff, and the driver read against the journal.

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

/// The journal's recovery table and the driver's arms are the same table (issue 15 item 2): one
/// bullet a comment, in the same order, each naming the states its arm matches.
#[test]
fn the_driver_arms_read_as_the_journals_recovery_table() {
    let journal = include_str!("../journal/mod.rs");
    let table = &journal[journal.find("# What a restart does in each state").expect("the table")..];
    let table = &table[..table.find("# Rows that named a missing file").expect("the end of the table")];
    let bullets: Vec<String> = table
        .lines()
        .filter_map(|line| line.strip_prefix("//! - "))
        .map(|bullet| label(bullet).replace('`', ""))
        .collect();

    let driver = include_str!("mod.rs");
    let drive = &driver[driver.find("async fn drive").expect("the driver")..];
    let lines: Vec<&str> =
        drive.lines().map(str::trim).take_while(|line| !line.starts_with("match step")).collect();
    let arms: Vec<(String, String)> = lines
        .windows(2)
        .filter_map(|pair| Some((pair[0].strip_prefix("// ")?, pair[1])))
        .map(|(comment, arm)| (label(comment).to_owned(), states_of(arm)))
        .collect();

    let comments: Vec<&str> = arms.iter().map(|(comment, _)| comment.as_str()).collect();
    assert_eq!(comments, bullets, "the driver's comments and the journal's table");
    for (comment, states) in &arms {
        if !comment.starts_with('…') && !comment.starts_with("any other state") {
            assert_eq!(comment, states, "the arm under `// {comment}` matches other states");
        }
    }
}

/// What a bullet or comment is about: up to its first colon, or `…` for a continuation.
fn label(text: &str) -> &str {
    if text.starts_with('…') {
        return "…";
    }
    text.split(':').next().unwrap_or(text)
}

/// The journal states an arm's pattern names, as the journal spells them.
fn states_of(arm: &str) -> String {
    let first = arm.trim_start_matches('(').split(',').next().unwrap_or_default();
    first
        .split('|')
        .map(|state| {
            let state = state.trim();
            FileState::all()
                .find(|known| format!("{known:?}") == state)
                .map_or_else(|| state.to_owned(), |known| known.as_str().to_owned())
        })
        .collect::<Vec<_>>()
        .join(", ")
}
