//! Settling: when a file found without a close event counts as complete, and the files whose
//! mtime is ahead of the wall clock.

use std::time::{Duration, Instant, SystemTime};

use tracing::{debug, warn};

use super::scheduler::Scheduler;
use crate::media_path::RelativeMediaPath;

impl Scheduler {
    /// How long until the file's mtime is `settle` old: a file whose size and mtime held still
    /// that long is complete. Zero for a missing file (the pipeline handles that), and for a
    /// file not written since its writer closed it at `closed_at`.
    pub(super) fn settle_remaining(
        &mut self,
        path: &RelativeMediaPath,
        closed_at: Option<SystemTime>,
    ) -> Duration {
        let absolute = path.to_absolute(&self.media_root);
        let Ok(meta) = std::fs::symlink_metadata(&absolute) else {
            self.future_mtimes.remove(path);
            return Duration::ZERO;
        };
        let Ok(modified) = meta.modified() else {
            return self.settings.settle;
        };
        let now = SystemTime::now();
        let held_since = match modified.duration_since(now) {
            Ok(ahead) => Some(self.future_mtime_seen(path, modified, ahead)),
            Err(_) => {
                self.future_mtimes.remove(path);
                None
            }
        };
        settle_left(modified, now, self.settings.settle, closed_at, held_since.map(|seen| seen.elapsed()))
    }

    /// When `path` was first seen with the future mtime `modified` (now, if this is the first
    /// time), logged once per file and mtime.
    fn future_mtime_seen(
        &mut self,
        path: &RelativeMediaPath,
        modified: SystemTime,
        ahead: Duration,
    ) -> Instant {
        match self.future_mtimes.get(path) {
            Some((mtime, seen)) if *mtime == modified => *seen,
            _ => {
                // Sub-second skew is an NFS server's clock, not worth a warning per file.
                if ahead >= Duration::from_secs(1) {
                    warn!(path = %path, ahead_s = ahead.as_secs(), settle_ms = self.settings.settle.as_millis() as u64, "the file's mtime is in the future (a clock stepped back, or a copy kept its source's time); it is taken once it holds still for settle_ms, measured from now");
                } else {
                    debug!(path = %path, ahead_ms = ahead.as_millis() as u64, "the file's mtime is in the future; settle_ms is measured from now");
                }
                let seen = Instant::now();
                self.future_mtimes.insert(path.clone(), (modified, seen));
                // Moved files are never looked at again: prune them at each doubling, which
                // keeps the map to about twice what is pending at amortised constant cost.
                let len = self.future_mtimes.len();
                if len >= 1024 && len.is_power_of_two() {
                    // `path` itself may not be pending yet (a first offer asks before it is).
                    let (pending, in_flight) = (&self.pending, &self.in_flight);
                    self.future_mtimes.retain(|kept, _| {
                        kept == path || pending.contains_key(kept) || in_flight.contains_key(kept)
                    });
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
