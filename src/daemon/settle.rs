//! Settling: when a file found without a close event counts as complete, and the files whose
//! mtime is ahead of the wall clock.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use tracing::{debug, warn};

use crate::media_path::RelativeMediaPath;

/// Files whose mtime is ahead of the wall clock, with that mtime and when it was first seen
/// on the monotonic clock (see `settle_left`). Kept across retries, so a file waiting for its
/// row is logged and settled once; left when the file is gone or its mtime is past, and pruned
/// to the files the scheduler still holds as it grows.
#[derive(Debug, Default)]
pub(super) struct FutureMtimes {
    seen: HashMap<RelativeMediaPath, (SystemTime, Instant)>,
}

impl FutureMtimes {
    /// How long until the file's mtime is `settle` old: a file whose size and mtime held still
    /// that long is complete. Zero for a missing file (the pipeline handles that), and for a
    /// file not written since its writer closed it at `closed_at`. `held` says which files the
    /// scheduler still holds (pending or in flight), for the pruning.
    pub(super) fn settle_remaining(
        &mut self,
        media_root: &Path,
        path: &RelativeMediaPath,
        settle: Duration,
        closed_at: Option<SystemTime>,
        held: impl Fn(&RelativeMediaPath) -> bool,
    ) -> Duration {
        let absolute = path.to_absolute(media_root);
        let Ok(meta) = std::fs::symlink_metadata(&absolute) else {
            self.seen.remove(path);
            return Duration::ZERO;
        };
        let Ok(modified) = meta.modified() else {
            return settle;
        };
        let now = SystemTime::now();
        let held_since = match modified.duration_since(now) {
            Ok(ahead) => Some(self.first_seen(path, modified, ahead, settle, held)),
            Err(_) => {
                self.seen.remove(path);
                None
            }
        };
        settle_left(modified, now, settle, closed_at, held_since.map(|seen| seen.elapsed()))
    }

    /// When `path` was first seen with the future mtime `modified` (now, if this is the first
    /// time), logged once per file and mtime.
    fn first_seen(
        &mut self,
        path: &RelativeMediaPath,
        modified: SystemTime,
        ahead: Duration,
        settle: Duration,
        held: impl Fn(&RelativeMediaPath) -> bool,
    ) -> Instant {
        match self.seen.get(path) {
            Some((mtime, seen)) if *mtime == modified => *seen,
            _ => {
                // Sub-second skew is an NFS server's clock, not worth a warning per file.
                if ahead >= Duration::from_secs(1) {
                    warn!(path = %path, ahead_s = ahead.as_secs(), settle_ms = settle.as_millis() as u64, "the file's mtime is in the future (a clock stepped back, or a copy kept its source's time); it is taken once it holds still for settle_ms, measured from now");
                } else {
                    debug!(path = %path, ahead_ms = ahead.as_millis() as u64, "the file's mtime is in the future; settle_ms is measured from now");
                }
                let seen = Instant::now();
                self.seen.insert(path.clone(), (modified, seen));
                // Moved files are never looked at again: prune them at each doubling, which
                // keeps the map to about twice what is pending at amortised constant cost.
                let len = self.seen.len();
                if len >= 1024 && len.is_power_of_two() {
                    // `path` itself may not be pending yet (a first offer asks before it is).
                    self.seen.retain(|kept, _| kept == path || held(kept));
                }
                seen
            }
        }
    }
}

/// The settle time left for a file last modified at `modified`: none if its writer closed it
/// at `closed_at` and it has not been written since, else what remains of `settle` since the
/// last write.
///
/// An mtime ahead of `now` (a clock stepped back, a copy that kept its source's time) says
/// nothing about when writing stopped, and waiting for the wall clock to reach it stalled such a
/// file for as long as it is ahead. Its settle time is measured instead on the monotonic clock:
/// `held` is how long the file has been seen with that same mtime.
pub(super) fn settle_left(
    modified: SystemTime,
    now: SystemTime,
    settle: Duration,
    closed_at: Option<SystemTime>,
    held: Option<Duration>,
) -> Duration {
    if closed_at.is_some_and(|closed| modified <= closed) {
        return Duration::ZERO;
    }
    let age = match now.duration_since(modified) {
        Ok(age) => age,
        Err(_) => held.unwrap_or(Duration::ZERO),
    };
    settle.saturating_sub(age)
}
