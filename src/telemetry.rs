//! Metrics: names, labels and the optional Prometheus endpoint (`[metrics] listen`).
//!
//! The rest of the code records through the functions here, so every metric name lives in one
//! file. Without a listener no recorder is installed and recording costs next to nothing.
//!
//! The endpoint is served here rather than by the exporter's own listener, which held every
//! connection it accepted for as long as the peer kept it open and retried a failed accept at
//! once: 1,100 idle connections took 1,127 descriptors, and under systemd's default limit of
//! 1,024 the daemon could open no file, journal or socket. Here at most `MAX_CONNECTIONS` are
//! served at once (any more are closed as soon as accepted), each must send its request within
//! `HEADER_READ_TIMEOUT` and be done within `CONNECTION_DEADLINE`, and a failed accept (EMFILE)
//! pauses the listener for `ACCEPT_PAUSE` instead of spinning.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::error::{ErrorClass, Reason};

const LATENCY_BUCKETS: &[f64] =
    &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];

/// Connections served at once. A scraper needs one; a few Prometheus replicas and an operator's
/// curl fit easily.
pub const MAX_CONNECTIONS: usize = 16;
/// How long a connection may take to send its request's headers: a scraper sends them at once.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one connection may last in all, answer included (one request per connection).
pub const CONNECTION_DEADLINE: Duration = Duration::from_secs(30);
/// How long the listener waits after a failed accept (out of descriptors, say) before the next.
const ACCEPT_PAUSE: Duration = Duration::from_secs(1);
/// How often histograms are folded in, as the exporter's own listener did.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// Serves `GET /metrics` on `listen`. Must run inside the tokio runtime.
pub fn serve(listen: SocketAddr) -> Result<(), String> {
    let failed = |e: &dyn std::fmt::Display| format!("metrics endpoint on {listen}: {e}");
    let listener = std::net::TcpListener::bind(listen).map_err(|e| failed(&e))?;
    listener.set_nonblocking(true).map_err(|e| failed(&e))?;
    let listener = TcpListener::from_std(listener).map_err(|e| failed(&e))?;
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
        .map_err(|e| failed(&e))?
        .install_recorder()
        .map_err(|e| failed(&e))?;
    describe();
    register_at_zero();
    let upkeep = handle.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(UPKEEP_EVERY);
        loop {
            every.tick().await;
            upkeep.run_upkeep();
        }
    });
    tokio::spawn(accept_scrapers(listener, handle));
    Ok(())
}

/// Accepts connections for ever, serving at most `MAX_CONNECTIONS` at once.
async fn accept_scrapers(listener: TcpListener, handle: PrometheusHandle) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut refused_logged: Option<Instant> = None;
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(error) => {
                // Out of descriptors (EMFILE, ENFILE) or memory: accepting again at once would
                // only fail again, on a core, and flood the log.
                tracing::warn!(%error, pause = ?ACCEPT_PAUSE, "metrics endpoint: cannot accept a connection");
                tokio::time::sleep(ACCEPT_PAUSE).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            // Every slot is taken: closing at once costs the descriptor only for this instant,
            // and leaves nothing queued. Said at most once a minute.
            if refused_logged.is_none_or(|at| at.elapsed() > Duration::from_secs(60)) {
                tracing::warn!(
                    limit = MAX_CONNECTIONS,
                    "metrics endpoint: every connection slot is taken; closing new connections until one is free"
                );
                refused_logged = Some(Instant::now());
            }
            drop(stream);
            continue;
        };
        let handle = handle.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let handle = handle.clone();
                async move { Ok::<_, std::convert::Infallible>(answer(&handle, &request)) }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .keep_alive(false)
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            // A peer that reads the answer slowly, or not at all, is cut off too.
            let _ = tokio::time::timeout(CONNECTION_DEADLINE, connection).await;
            drop(slot);
        });
    }
}

/// The answer to one request: the metrics for `GET /metrics`, 404 for any other path.
fn answer(handle: &PrometheusHandle, request: &Request<Incoming>) -> Response<Full<Bytes>> {
    let (status, body) = match (request.method(), request.uri().path()) {
        (&hyper::Method::GET, "/metrics") => (StatusCode::OK, handle.render()),
        (_, "/metrics") => (StatusCode::METHOD_NOT_ALLOWED, String::new()),
        _ => (StatusCode::NOT_FOUND, String::new()),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    response
}

/// What kind of series a metric is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    /// Prometheus's name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// One metric the endpoint serves: the endpoint's `# HELP` lines and `docs/metrics.md` are both
/// made from this table, so the two cannot say different things.
#[derive(Debug, Clone, Copy)]
pub struct Metric {
    pub name: &'static str,
    pub kind: Kind,
    /// `None`, or the unit the exporter appends to the help.
    pub unit: Option<metrics::Unit>,
    /// The label names; `label_values` gives each one's values.
    pub labels: &'static [&'static str],
    pub help: &'static str,
}

/// Every metric, in the order an operator reads them.
pub const METRICS: &[Metric] = {
    use metrics::Unit::{Bytes, Seconds};
    use Kind::{Counter, Gauge, Histogram};
    const fn m(
        name: &'static str,
        kind: Kind,
        unit: Option<metrics::Unit>,
        labels: &'static [&'static str],
        help: &'static str,
    ) -> Metric {
        Metric { name, kind, unit, labels, help }
    }
    &[
        m(
            "confronta_files_total",
            Counter,
            None,
            &["outcome"],
            "Pipeline runs by outcome (moved, kept, retry, waiting_for_row, orphan, busy, nothing, fatal)",
        ),
        m("confronta_bytes_total", Counter, Some(Bytes), &[], "Bytes of local files moved into the object store"),
        m("confronta_errors_total", Counter, None, &["class", "reason"], "Failures by class and reason"),
        m("confronta_upload_seconds", Histogram, Some(Seconds), &[], "Time to upload one file"),
        m("confronta_verify_seconds", Histogram, Some(Seconds), &[], "Time to verify one uploaded object"),
        m("confronta_record_seconds", Histogram, Some(Seconds), &[], "Time of the row's compare-and-set"),
        m("confronta_in_flight", Gauge, None, &[], "Files being processed now"),
        m("confronta_waiting_for_row", Gauge, None, &[], "Files waiting for Django to commit their row"),
        m("confronta_orphans", Gauge, None, &[], "Files no row has pointed at for orphan_after_s"),
        m(
            "confronta_up",
            Gauge,
            None,
            &["service"],
            "Whether a service (s3, db) answered its last request (1) or not (0)",
        ),
        m(
            "confronta_oldest_pending_seconds",
            Gauge,
            Some(Seconds),
            &[],
            "How long the oldest due file (waiting for a slot, or in flight) has been due; 0 when none is",
        ),
        m(
            "confronta_last_moved_timestamp_seconds",
            Gauge,
            Some(Seconds),
            &[],
            "Unix time at which a file last moved into the object store (absent until one has)",
        ),
        m(
            "confronta_task_panics_total",
            Counter,
            None,
            &[],
            "Pipeline tasks that panicked (each file's run is one task)",
        ),
        m(
            "confronta_journal_blocked",
            Gauge,
            None,
            &[],
            "Whether the journal cannot be written (1: no new file is taken and nothing is deleted) or can (0)",
        ),
        m("confronta_start_time_seconds", Gauge, Some(Seconds), &[], "Unix time at which the daemon started"),
    ]
};

/// The values a label of `METRICS` takes.
pub fn label_values(label: &str) -> Vec<&'static str> {
    match label {
        "outcome" => OUTCOMES.to_vec(),
        "class" => {
            [ErrorClass::Transient, ErrorClass::Rejected, ErrorClass::Fatal].map(ErrorClass::as_str).to_vec()
        }
        "reason" => Reason::all().map(Reason::as_str).collect(),
        "service" => SERVICES.to_vec(),
        other => panic!("label {other} has no known values; add them to telemetry::label_values"),
    }
}

/// The `service` labels of `confronta_up` (`pipeline::health` gives them).
pub const SERVICES: [&str; 2] = ["s3", "db"];

fn describe() {
    for metric in METRICS {
        let (name, help) = (metric.name, metric.help);
        match (metric.kind, metric.unit) {
            (Kind::Counter, Some(unit)) => metrics::describe_counter!(name, unit, help),
            (Kind::Counter, None) => metrics::describe_counter!(name, help),
            (Kind::Gauge, Some(unit)) => metrics::describe_gauge!(name, unit, help),
            (Kind::Gauge, None) => metrics::describe_gauge!(name, help),
            (Kind::Histogram, Some(unit)) => metrics::describe_histogram!(name, unit, help),
            (Kind::Histogram, None) => metrics::describe_histogram!(name, help),
        }
    }
}

/// The outcome labels of `confronta_files_total` (`daemon::scheduler` gives them).
pub const OUTCOMES: [&str; 8] =
    ["moved", "kept", "retry", "waiting_for_row", "orphan", "busy", "nothing", "fatal"];

/// Puts the series the alert rules read on the page at 0 from the start. A counter that first
/// appears at 1 has no earlier sample, so `increase()` misses that first event (the first panic,
/// the first quarantined file after a restart), and a series that is absent makes a rule such as
/// "nothing moved for 15 minutes" silent after every restart instead of false.
fn register_at_zero() {
    for outcome in OUTCOMES {
        metrics::counter!("confronta_files_total", "outcome" => outcome).absolute(0);
    }
    metrics::counter!("confronta_bytes_total").absolute(0);
    metrics::counter!("confronta_errors_total", "class" => "rejected", "reason" => "quarantined").absolute(0);
    metrics::counter!("confronta_task_panics_total").absolute(0);
    // A histogram with no sample yet is rendered with its buckets at 0: the step-time panels
    // show a verify step that small files skip (their PUT's answer verifies them) as none, not
    // as a metric that does not exist.
    for step in [Step::Upload, Step::Verify, Step::Record] {
        let _registered = metrics::histogram!(step_metric(step));
    }
    journal_blocked(false);
    let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    metrics::gauge!("confronta_start_time_seconds").set(now.as_secs_f64());
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
    metrics::histogram!(step_metric(step)).record(elapsed.as_secs_f64());
}

fn step_metric(step: Step) -> &'static str {
    match step {
        Step::Upload => "confronta_upload_seconds",
        Step::Verify => "confronta_verify_seconds",
        Step::Record => "confronta_record_seconds",
    }
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

/// Says that a pipeline task panicked.
pub fn task_panicked() {
    metrics::counter!("confronta_task_panics_total").increment(1);
}

/// Says whether the journal can be written (`daemon::scheduler` blocks new files while it cannot).
pub fn journal_blocked(blocked: bool) {
    metrics::gauge!("confronta_journal_blocked").set(if blocked { 1.0 } else { 0.0 });
}

pub fn service_up(service: &'static str, up: bool) {
    metrics::gauge!("confronta_up", "service" => service).set(if up { 1.0 } else { 0.0 });
}
