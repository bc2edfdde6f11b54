//! Metrics: names, labels and the optional Prometheus endpoint (`[metrics] listen`).
//!
//! The rest of the code records through the functions here, so every metric name lives in one
//! file. Without a listener no recorder is installed and recording costs next to nothing.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime};

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};

const LATENCY_BUCKETS: &[f64] =
    &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];

/// Serves `GET /metrics` on `listen`. Must run inside the tokio runtime.
pub fn serve(listen: SocketAddr) -> Result<(), String> {
    PrometheusBuilder::new()
        .with_http_listener(listen)
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
        .map_err(|e| e.to_string())?
        .install()
        .map_err(|e| format!("metrics endpoint on {listen}: {e}"))?;
    describe();
    Ok(())
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(
        "confronta_files_total",
        "Pipeline runs by outcome (moved, kept, retry, waiting_for_row, orphan, busy, nothing, fatal)"
    );
    describe_counter!(
        "confronta_bytes_total",
        Unit::Bytes,
        "Bytes of local files moved into the object store"
    );
    describe_counter!("confronta_errors_total", "Failures by class and reason");
    describe_histogram!("confronta_upload_seconds", Unit::Seconds, "Time to upload one file");
    describe_histogram!("confronta_verify_seconds", Unit::Seconds, "Time to verify one uploaded object");
    describe_histogram!("confronta_record_seconds", Unit::Seconds, "Time of the row's compare-and-set");
    describe_gauge!("confronta_in_flight", "Files being processed now");
    describe_gauge!("confronta_waiting_for_row", "Files waiting for Django to commit their row");
    describe_gauge!("confronta_orphans", "Files no row has pointed at for orphan_after_s");
    describe_gauge!("confronta_up", "Whether a service (s3, db) answered its last request (1) or not (0)");
    describe_gauge!(
        "confronta_oldest_pending_seconds",
        Unit::Seconds,
        "How long the oldest due file (waiting for a slot, or in flight) has been due; 0 when none is"
    );
    describe_gauge!(
        "confronta_last_moved_timestamp_seconds",
        Unit::Seconds,
        "Unix time at which a file last moved into the object store (absent until one has)"
    );
}

pub fn outcome(label: &'static str, bytes: u64) {
    metrics::counter!("confronta_files_total", "outcome" => label).increment(1);
    if bytes > 0 {
        metrics::counter!("confronta_bytes_total").increment(bytes);
    }
}

pub fn error(class: &'static str, reason: &'static str) {
    metrics::counter!("confronta_errors_total", "class" => class, "reason" => reason).increment(1);
}

pub fn step_time(step: Step, elapsed: Duration) {
    let name = match step {
        Step::Upload => "confronta_upload_seconds",
        Step::Verify => "confronta_verify_seconds",
        Step::Record => "confronta_record_seconds",
    };
    metrics::histogram!(name).record(elapsed.as_secs_f64());
}

/// The timed pipeline steps.
#[derive(Debug, Clone, Copy)]
pub enum Step {
    Upload,
    Verify,
    Record,
}

/// Current counts the scheduler knows.
pub fn gauges(in_flight: usize, waiting_for_row: usize, orphans: usize) {
    metrics::gauge!("confronta_in_flight").set(in_flight as f64);
    metrics::gauge!("confronta_waiting_for_row").set(waiting_for_row as f64);
    metrics::gauge!("confronta_orphans").set(orphans as f64);
}

/// Says that a file just moved.
pub fn moved_now() {
    let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    metrics::gauge!("confronta_last_moved_timestamp_seconds").set(now.as_secs_f64());
}

/// How long the oldest due file has been due.
pub fn oldest_pending(waited: Duration) {
    metrics::gauge!("confronta_oldest_pending_seconds").set(waited.as_secs_f64());
}

/// When something last progressed, in milliseconds since `progress_epoch()`.
static PROGRESS_MS: AtomicU64 = AtomicU64::new(0);

fn progress_epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// Says that work progressed: a pipeline run ended, the journal committed a step, a part went
/// up. The watchdog is fed only while this happens (`daemon::scheduler::progressing`). Lock-free: it is
/// called from the journal's writer thread and from upload tasks.
pub fn progressed() {
    PROGRESS_MS.fetch_max(progress_epoch().elapsed().as_millis() as u64, Ordering::Relaxed);
}

/// When `progressed` was last called (the first call's instant if it never was since).
pub fn last_progress() -> Instant {
    progress_epoch() + Duration::from_millis(PROGRESS_MS.load(Ordering::Relaxed))
}

pub fn service_up(service: &'static str, up: bool) {
    metrics::gauge!("confronta_up", "service" => service).set(if up { 1.0 } else { 0.0 });
}
