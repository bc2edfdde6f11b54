//! The counts a run reports: the rescan summary, the daemon's last words, and `status`.

use crate::media_path::RelativeMediaPath;
use crate::pipeline::Failure;

/// Lines kept in `Summary::problems`; past them only `problems_omitted` counts, so a daemon
/// that runs for years (or a rescan of a million refused files) holds a bounded list.
pub(super) const MAX_PROBLEMS: usize = 1_000;

/// Counts of what happened, for the rescan summary and `status`.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Summary {
    pub moved: u64,
    pub bytes: u64,
    pub failed: u64,
    pub kept: u64,
    pub orphans: u64,
    pub busy: u64,
    /// Reason label → count, for failures and kept files.
    pub reasons: std::collections::BTreeMap<String, u64>,
    /// Human-readable lines naming each file that did not move and why: the first
    /// `MAX_PROBLEMS` of them.
    pub problems: Vec<String>,
    /// Problems past the first `MAX_PROBLEMS`, counted but not kept.
    pub problems_omitted: u64,
}

impl Summary {
    pub(super) fn count_reason(&mut self, failure: &Failure, path: &RelativeMediaPath) {
        *self.reasons.entry(failure.reason.as_str().to_owned()).or_default() += 1;
        if self.problems.len() < MAX_PROBLEMS {
            self.problems.push(format!("{path}: {}: {}", failure.reason, failure.message));
        } else {
            self.problems_omitted += 1;
        }
    }
}
