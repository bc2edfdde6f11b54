//! Whether the object store and the database answer: one log line per outage, not one per retry.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

use tracing::{debug, info, warn};

use crate::journal::now_ms;
use crate::telemetry;

/// Logs one line when a service goes down and one when it comes back, not one per retry.
///
/// A server that is restarting often answers some requests before it can serve them all (a
/// SeaweedFS or MinIO node accepting connections before its volumes or drives are ready), so a
/// failure within `FLAP_WINDOW_MS` of a recovery is the same outage: the gauge follows every
/// change, the log says it at debug level only.
pub(super) struct Health {
    name: &'static str,
    /// The `service` label of `confronta_up`.
    label: &'static str,
    down: AtomicBool,
    /// Until when (ms since the epoch) a new failure still belongs to the last outage.
    same_outage_until_ms: AtomicI64,
    /// The current outage was not announced (it began inside the window), so neither is its end.
    quiet: AtomicBool,
}

const FLAP_WINDOW_MS: i64 = 30_000;

impl Health {
    pub(super) fn new(name: &'static str, label: &'static str) -> Self {
        telemetry::service_up(label, true);
        Health {
            name,
            label,
            down: AtomicBool::new(false),
            same_outage_until_ms: AtomicI64::new(0),
            quiet: AtomicBool::new(false),
        }
    }

    pub(super) fn down(&self, error: &str) {
        if !self.down.swap(true, Ordering::SeqCst) {
            telemetry::service_up(self.label, false);
            if now_ms() < self.same_outage_until_ms.load(Ordering::SeqCst) {
                self.quiet.store(true, Ordering::SeqCst);
                debug!(
                    service = self.name,
                    error, "service failing again right after it recovered; same outage"
                );
            } else {
                warn!(
                    service = self.name,
                    error, "service unavailable; files wait and are retried with backoff"
                );
            }
        }
    }

    pub(super) fn up(&self) {
        if self.down.swap(false, Ordering::SeqCst) {
            telemetry::service_up(self.label, true);
            if self.quiet.swap(false, Ordering::SeqCst) {
                debug!(service = self.name, "service answering again");
            } else {
                info!(service = self.name, "service recovered");
                self.same_outage_until_ms.store(now_ms() + FLAP_WINDOW_MS, Ordering::SeqCst);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_right_after_a_recovery_is_the_same_outage() {
        let health = Health::new("object store", "s3_test");
        health.down("refused");
        assert!(!health.quiet.load(Ordering::SeqCst), "the first failure is announced");
        health.up();
        health.down("volumes not ready");
        assert!(health.quiet.load(Ordering::SeqCst), "a failure inside the window is not a new outage");
        health.up();
        assert!(!health.quiet.load(Ordering::SeqCst) && !health.down.load(Ordering::SeqCst));
        health.same_outage_until_ms.store(0, Ordering::SeqCst);
        health.down("refused again, much later");
        assert!(!health.quiet.load(Ordering::SeqCst), "after the window it is a new outage");
    }
}
