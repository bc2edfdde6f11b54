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
    /// One line per venta of a `--rescan --venta` run, in the order given (empty otherwise).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub results: Vec<VentaResult>,
}

/// What a `--rescan --venta` run did with one venta's file, for the Django command's per-venta
/// lines.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct VentaResult {
    pub venta_id: i64,
    /// The local path the row names, if any.
    pub path: Option<String>,
    /// `moved`, `kept`, `failed`, `waiting`, `busy`, `missing` or `nothing`.
    pub outcome: &'static str,
    pub object: Option<String>,
    /// The reason's label (`quarantined`, `ambiguous_owner`, `s3_unavailable`, …).
    pub reason: Option<String>,
    pub message: Option<String>,
}

impl VentaResult {
    /// A venta whose row names no local file that exists.
    pub(super) fn missing(venta_id: i64, path: Option<String>, message: String) -> VentaResult {
        VentaResult {
            venta_id,
            path,
            outcome: "missing",
            object: None,
            reason: Some(crate::error::Reason::LocalFileMissing.as_str().to_owned()),
            message: Some(message),
        }
    }

    /// The last outcome of the venta's file.
    pub(super) fn of(
        venta_id: i64,
        path: &RelativeMediaPath,
        outcome: &crate::pipeline::Outcome,
    ) -> VentaResult {
        use crate::pipeline::Outcome;
        let (label, object, failure) = match outcome {
            Outcome::Moved { object, .. } => ("moved", Some(object.clone()), None),
            Outcome::Nothing => ("nothing", None, None),
            Outcome::WaitingForRow(why) | Outcome::Orphan(why) => ("waiting", None, Some(why.failure(path))),
            Outcome::Busy => ("busy", None, None),
            Outcome::Retry(f) | Outcome::Fatal(f) => ("failed", None, Some(f.clone())),
            Outcome::Kept(f) => ("kept", None, Some(f.clone())),
        };
        VentaResult {
            venta_id,
            path: Some(path.to_string()),
            outcome: label,
            object,
            reason: failure.as_ref().map(|f| f.reason.as_str().to_owned()),
            message: failure.map(|f| f.message),
        }
    }
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
