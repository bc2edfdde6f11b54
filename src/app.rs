//! The operations the binary offers, their start-up checks, and the exit code each ends with.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use tokio::sync::{mpsc, watch};
use tracing::{debug, error, info, warn};

use crate::commands::{CommandError, OrphanEvent, ReportError};
use crate::config::{ConditionalWrites, Config, ConfigError};
use crate::daemon::{self, Stop, Summary};
use crate::db::{self, DbErrorKind, SalesDb};
use crate::error::Reason;
use crate::journal::{Journal, JournalError};
use crate::logging::{self, Logging};
use crate::pipeline::{Failure, Pipeline, PlanAction};
use crate::store::{Capabilities, ObjectStore, S3Store, StoreErrorKind, PROBE_PREFIX};

/// Exit codes, documented in the README.
/// How long the journal remembers a removed file (for `status`'s upload times).
const JOURNAL_RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);
/// How often the running daemon forgets entries past `JOURNAL_RETENTION`: the first time at
/// start-up, then once a minute, so a day's removals never pile up into one long prune.
const JOURNAL_UPKEEP_EVERY: Duration = Duration::from_secs(60);

pub mod exit {
    /// Everything done.
    pub const OK: i32 = 0;
    /// The run finished but some files failed (rescan), or a fatal error stopped the daemon.
    pub const FAILURES: i32 = 1;
    /// Bad command line or configuration.
    pub const CONFIG: i32 = 2;
    /// The database is unreachable, refuses the credentials, or lacks the table or a column.
    pub const DATABASE: i32 = 3;
    /// The object store is unreachable, refuses the credentials, or lacks the bucket.
    pub const OBJECT_STORE: i32 = 4;
    /// The journal is locked by another daemon or cannot be opened.
    pub const JOURNAL: i32 = 5;
    /// The log destination cannot be set up.
    pub const LOGGING: i32 = 6;
}

/// Command line.
#[derive(Debug, Parser)]
#[command(
    name = "confronta-sync",
    version,
    about = "Moves Django confronta uploads into MinIO, records them in the sales table and removes the local copy, crash-safely",
    after_help = "Exit codes: 0 ok, 1 files failed, 2 usage or config, 3 database, 4 object store, 5 journal, 6 logging."
)]
pub struct Cli {
    /// Configuration file (TOML).
    #[arg(
        long,
        short,
        global = true,
        default_value = "/etc/confronta-sync/config.toml",
        value_name = "PATH"
    )]
    pub config: PathBuf,

    /// One-shot catch-up: move every file already in the folder, then exit.
    #[arg(long)]
    pub rescan: bool,

    /// With --rescan: print what would happen to each file and change nothing anywhere.
    #[arg(long, requires = "rescan")]
    pub dry_run: bool,

    /// With --rescan: run at most N files.
    #[arg(long, value_name = "N", requires = "rescan")]
    pub limit: Option<u64>,

    /// With --rescan: print the summary as JSON on stdout.
    #[arg(long, requires = "rescan")]
    pub json: bool,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check the configuration, the database columns and the bucket, then exit.
    Check,
    /// Check that every row marked as in MinIO has its object with the row's SHA-256.
    /// Changes nothing; exits 1 if any object is missing or differs.
    Verify {
        /// Download each object and hash it, instead of trusting the stored checksum.
        #[arg(long)]
        deep: bool,
        /// Check at most N rows.
        #[arg(long, value_name = "N")]
        limit: Option<i64>,
    },
    /// Where things stand: rows in MinIO vs still local, journal states, failures, upload times.
    Status {
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Local files no row points at, and objects under the prefix no row references.
    Orphans {
        /// Only report what is at least this old (e.g. 30m, 24h, 7d).
        #[arg(long, value_name = "DUR", default_value = "1h", value_parser = humantime::parse_duration)]
        older_than: Duration,
        /// Delete the unreferenced objects reported (never a referenced one, never a local file).
        #[arg(long)]
        delete_objects: bool,
    },
    /// Print a temporary download URL for a venta's confronta.
    Presign {
        /// The venta's id.
        #[arg(long, value_name = "ID")]
        venta: i64,
        /// How long the URL works (at most 7d).
        #[arg(long, value_name = "DUR", default_value = "1d", value_parser = humantime::parse_duration)]
        expiry: Duration,
    },
}

/// Why a run ends with an error, by cause; each message names what failed.
#[derive(Debug, thiserror::Error)]
pub enum Exit {
    /// The configuration, or something it names (the watched folder, the metrics address), is
    /// unusable.
    #[error("{0}")]
    Config(String),
    #[error("{0}")]
    Logging(String),
    /// Connecting to the database or checking its table failed.
    #[error("{0}")]
    Database(String),
    /// Connecting to the object store, its bucket or the start-up probe failed.
    #[error("{0}")]
    ObjectStore(String),
    #[error("{0}")]
    Journal(String),
    #[error(transparent)]
    Command(#[from] CommandError),
    /// A fatal failure stopped the daemon or the rescan.
    #[error("{}: {}", .0.reason, .0.message)]
    Fatal(Failure),
    /// Anything else: the runtime, the signal handlers, writing the output.
    #[error("{0}")]
    Failed(String),
}

impl Exit {
    /// The one place a cause gets its exit code (documented in `exit` and the README).
    pub fn code(&self) -> i32 {
        match self {
            Exit::Config(_) => exit::CONFIG,
            Exit::Logging(_) => exit::LOGGING,
            Exit::Database(_)
            | Exit::Command(CommandError::Database(_))
            | Exit::Fatal(Failure {
                reason: Reason::DbUnavailable | Reason::DbRefused | Reason::DbSchema | Reason::DbRowLocked,
                ..
            }) => exit::DATABASE,
            Exit::ObjectStore(_) | Exit::Command(CommandError::Store(_)) => exit::OBJECT_STORE,
            Exit::Journal(_) | Exit::Command(CommandError::Journal(_)) => exit::JOURNAL,
            Exit::Command(CommandError::Invalid(_)) | Exit::Fatal(_) | Exit::Failed(_) => exit::FAILURES,
        }
    }
}

impl From<ConfigError> for Exit {
    fn from(e: ConfigError) -> Self {
        Exit::Config(e.to_string())
    }
}

/// Parses nothing, decides nothing: runs what `cli` asks for and returns the exit code.
pub fn main_with(cli: Cli) -> i32 {
    let config = match Config::load(&cli.config) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("confronta-sync: {e}");
            return Exit::from(e).code();
        }
    };
    let logging = match logging::init(&config.log) {
        Ok(logging) => logging,
        Err(e) => {
            let e = Exit::Logging(format!("cannot set up logging: {e}"));
            eprintln!("confronta-sync: {e}");
            return e.code();
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            let e = Exit::Failed(format!("cannot start the async runtime: {e}"));
            eprintln!("confronta-sync: {e}");
            return e.code();
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Some(Command::Check) => check(&config).await,
            Some(Command::Verify { deep, limit }) => verify(&config, deep, limit).await,
            Some(Command::Status { json }) => status(&config, json).await,
            Some(Command::Orphans { older_than, delete_objects }) => {
                orphans(&config, older_than, delete_objects).await
            }
            Some(Command::Presign { venta, expiry }) => presign(&config, venta, expiry).await,
            None if cli.rescan && cli.dry_run => run_dry_run(&config, cli.limit, cli.json).await,
            None if cli.rescan => run_rescan(&config, cli.limit, cli.json).await,
            None => run_daemon(&cli.config, config, logging).await,
        }
    });
    // Abandoned tasks (after a shutdown timeout) must not hold the process open.
    runtime.shutdown_timeout(Duration::from_secs(1));
    match result {
        Ok(code) => code,
        Err(e) => {
            // Logging is up by now, so this reaches stderr (journald) and the log files.
            error!(exit_code = e.code(), "{e}");
            e.code()
        }
    }
}

/// What start-up checks produce: the connected edges, verified.
struct Started {
    pipeline: Arc<Pipeline>,
}

/// Which journal a run uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum JournalUse {
    /// The configured journal, locked: the daemon.
    Exclusive,
    /// The configured journal, or a sibling one when a daemon holds it and the database can keep
    /// two processes off one row: `--rescan`.
    ExclusiveOrSibling,
    /// A throwaway in-memory journal: `--dry-run`, which must not write the real one.
    Throwaway,
}

/// Opens and checks the journal, the database and the bucket; any failure is an `Exit`.
async fn start(config: &Config, journal_use: JournalUse) -> Result<Started, Exit> {
    let journal_error = |e: JournalError| Exit::Journal(e.to_string());
    let (db, limits) = connect_db(config).await?;
    let journal = match journal_use {
        JournalUse::Throwaway => Journal::in_memory().map_err(journal_error)?,
        JournalUse::Exclusive => Journal::open(&config.journal.path).map_err(journal_error)?,
        JournalUse::ExclusiveOrSibling => match Journal::open(&config.journal.path) {
            Err(JournalError::Locked { .. }) if db.supports_claims() => {
                let sibling = config.journal.path.with_extension("rescan.sqlite3");
                info!(journal = %sibling.display(), "the daemon holds the journal; this rescan keeps its own, and row claims keep the two apart");
                Journal::open(&sibling).map_err(journal_error)?
            }
            Err(e @ JournalError::Locked { .. }) => {
                return Err(Exit::Journal(format!(
                    "{e}; with a SQLite database stop the daemon before a rescan"
                )))
            }
            other => other.map_err(journal_error)?,
        },
    };
    let (store, capabilities) = connect_store_for_uploads(config).await?;
    let pipeline = Pipeline::new(config, store, db, journal, limits, capabilities);
    Ok(Started { pipeline: Arc::new(pipeline) })
}

async fn connect_db(config: &Config) -> Result<(Arc<dyn SalesDb>, crate::db::SchemaLimits), Exit> {
    let db = db::connect(&config.database).await.map_err(|e| Exit::Database(e.to_string()))?;
    let limits = db.check_schema().await.map_err(|e| {
        let hint = if e.kind == DbErrorKind::Unavailable { " (is the database running?)" } else { "" };
        Exit::Database(format!("{e}{hint}"))
    })?;
    Ok((db, limits))
}

/// Opens the store and checks the bucket (what the read-only operator commands need).
async fn connect_store(config: &Config) -> Result<Arc<dyn ObjectStore>, Exit> {
    let secret = config.minio.secret_key()?;
    let store = S3Store::new(&config.minio, &secret).map_err(|e| Exit::Config(e.to_string()))?;
    store.check_bucket().await.map_err(|e| {
        let what = match e.kind {
            StoreErrorKind::NoSuchBucket => "bucket missing",
            StoreErrorKind::AccessDenied => "credentials refused",
            StoreErrorKind::Unavailable => "unreachable",
            _ => "refused",
        };
        Exit::ObjectStore(format!("object store at {} {what}: {e}", config.minio.endpoint))
    })?;
    Ok(Arc::new(store))
}

/// Opens the store for moving files: checks the bucket, then probes what the server enforces.
/// A server that accepts a PUT with a wrong `x-amz-checksum-sha256` would make every
/// verification pass, so the daemon refuses to start on it.
async fn connect_store_for_uploads(config: &Config) -> Result<(Arc<dyn ObjectStore>, Capabilities), Exit> {
    let store = connect_store(config).await?;
    let capabilities = store.probe().await.map_err(|e| {
        Exit::ObjectStore(format!(
            "object store at {}: the start-up probe under {PROBE_PREFIX} failed: {e}",
            config.minio.endpoint
        ))
    })?;
    if !capabilities.checksum_enforced {
        return Err(Exit::ObjectStore(format!(
            "object store at {} accepted a PUT whose x-amz-checksum-sha256 does not match its bytes; \
             uploads could not be verified there, so nothing is moved (MinIO enforces the header: \
             is a proxy in between dropping it?)",
            config.minio.endpoint
        )));
    }
    match (capabilities.conditional_put, config.minio.conditional_writes) {
        (true, ConditionalWrites::Auto) => {
            info!("the object store honours If-None-Match: *; it refuses overwrites itself")
        }
        (true, ConditionalWrites::Off) => {
            info!("minio.conditional_writes = \"off\": each name is stat'ed before its upload")
        }
        (false, _) => warn!(
            "the object store ignores If-None-Match: * (conditional writes); each name is stat'ed before its upload instead"
        ),
    }
    Ok((store, capabilities))
}

async fn check(config: &Config) -> Result<i32, Exit> {
    connect_db(config).await?;
    let (_, capabilities) = connect_store_for_uploads(config).await?;
    println!("configuration, database columns and bucket {} are fine", config.minio.bucket);
    println!(
        "object store: checksums enforced; conditional writes (If-None-Match: *) {}; small uploads verified {}",
        if capabilities.conditional_put { "honoured" } else { "not honoured: each name is stat'ed first" },
        if capabilities.checksum_answered {
            "by the PUT's answer (it carries the checksum it checked)"
        } else {
            "by a stat after the PUT (its answer carries no checksum)"
        }
    );
    println!("{}", upload_limits(config));
    Ok(exit::OK)
}

/// The largest file the settings let through, and how it goes up: `validation.max_bytes`
/// (or, with no limit there, S3's largest object) cut into `part_size_bytes` parts, grown where
/// more than S3's 10,000 would be needed. A grown part is read into memory whole while it is
/// sent, so an operator sizing `max_bytes` sees what that costs.
fn upload_limits(config: &Config) -> String {
    use crate::store::{part_size_for, MAX_OBJECT_BYTES, MAX_PARTS};
    use indicatif::HumanBytes;
    let (largest, source) = match config.validation.max_bytes {
        0 => (MAX_OBJECT_BYTES, "no validation.max_bytes: S3's largest object"),
        max => (max, "validation.max_bytes"),
    };
    let threshold = config.minio.multipart_threshold_bytes;
    if largest <= threshold {
        return format!("largest file: {} ({source}), sent in one PUT", HumanBytes(largest));
    }
    let configured = config.minio.part_size_bytes;
    let part = part_size_for(largest, configured);
    let grown = if part > configured {
        format!(
            "; files over {} ({MAX_PARTS} parts of part_size_bytes) go up in larger parts, up to {} each, read into memory whole while it is sent",
            HumanBytes(configured * MAX_PARTS),
            HumanBytes(part)
        )
    } else {
        String::new()
    };
    format!(
        "largest file: {} ({source}); files over {} go up in parts of {}, the largest in {} parts{grown}",
        HumanBytes(largest),
        HumanBytes(threshold),
        HumanBytes(part),
        largest.div_ceil(part)
    )
}

async fn verify(config: &Config, deep: bool, limit: Option<i64>) -> Result<i32, Exit> {
    let (db, _) = connect_db(config).await?;
    let store = connect_store(config).await?;
    let progress = if std::io::stderr().is_terminal() {
        // The bar's length costs one count of the table; only worth it when someone watches.
        let in_minio = db.count_rows(&dir_prefix(config)).await.map(|counts| counts.in_minio).unwrap_or(0);
        progress_bar(Some(limit.unwrap_or(i64::MAX).min(in_minio).max(0) as u64), "rows checked")
    } else {
        indicatif::ProgressBar::hidden()
    };
    let summary = crate::commands::verify(&db, &store, deep, limit, page_rows(), |report| {
        let size = report.size.map(|s| format!("{s} bytes")).unwrap_or_else(|| "-".into());
        progress.inc(1);
        progress.suspend(|| match &report.problem {
            None => writeln!(
                std::io::stdout(),
                "ok        venta {:>8}  {}  {size}",
                report.venta_id,
                report.object
            ),
            Some(problem) => writeln!(
                std::io::stdout(),
                "MISMATCH  venta {:>8}  {}  {size}: {problem}",
                report.venta_id,
                report.object
            ),
        })
    })
    .await;
    progress.finish_and_clear();
    let summary = match summary {
        Ok(summary) => summary,
        Err(ReportError::Output(e)) => return Ok(output_closed("verify", &e)),
        Err(ReportError::Failed(e)) => return Err(e.into()),
    };
    println!(
        "verify: {} rows checked, {} ok, {} mismatched",
        summary.checked,
        summary.checked - summary.mismatched,
        summary.mismatched
    );
    Ok(if summary.mismatched == 0 { exit::OK } else { exit::FAILURES })
}

/// Whoever read the report went away (`verify | head`): the walk stopped there, which is no
/// failure of the database or the store, and printing more would only fail again.
fn output_closed(command: &str, error: &std::io::Error) -> i32 {
    debug!(command, %error, "the report's reader went away; stopped");
    exit::FAILURES
}

/// Rows per page of `verify` and `orphans`. `CONFRONTA_SYNC_PAGE_ROWS` overrides it so that
/// the tests can walk many pages over a small table; operators have no reason to set it.
fn page_rows() -> usize {
    std::env::var("CONFRONTA_SYNC_PAGE_ROWS")
        .ok()
        .and_then(|text| text.parse().ok())
        .filter(|rows| *rows > 0)
        .unwrap_or(crate::commands::DEFAULT_PAGE_ROWS)
}

/// A progress bar on stderr, drawn only when stderr is a terminal; `total` unknown makes it a
/// counter. Lines printed through `suspend` pass above it without tearing.
fn progress_bar(total: Option<u64>, what: &str) -> indicatif::ProgressBar {
    let (bar, template) = match total {
        Some(total) => {
            (indicatif::ProgressBar::new(total), "{bar:40} {pos}/{len} {msg} ({per_sec}, eta {eta})")
        }
        None => (indicatif::ProgressBar::new_spinner(), "{spinner} {pos} {msg} ({per_sec})"),
    };
    bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
    if let Ok(style) = indicatif::ProgressStyle::with_template(template) {
        bar.set_style(style);
    }
    bar.set_message(what.to_owned());
    bar
}

async fn status(config: &Config, json: bool) -> Result<i32, Exit> {
    let (db, _) = connect_db(config).await?;
    // A journal that does not exist yet simply has nothing to report.
    let journal = if config.journal.path.exists() {
        Some(Journal::open_read_only(&config.journal.path).map_err(|e| Exit::Journal(e.to_string()))?)
    } else {
        None
    };
    let report = crate::commands::status(&db, journal.as_ref(), &dir_prefix(config)).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report).unwrap_or_default());
        return Ok(exit::OK);
    }
    println!(
        "rows: {} in MinIO, {} still local ({:.1}% in MinIO)",
        report.rows_in_minio, report.rows_local, report.percent_in_minio
    );
    let states: Vec<String> = report.journal_states.iter().map(|(state, n)| format!("{state} {n}")).collect();
    println!("journal: {}", if states.is_empty() { "empty".into() } else { states.join(", ") });
    println!("waiting for their row: {}, orphans: {}", report.waiting_for_row, report.orphans);
    let reasons: Vec<String> =
        report.failures_by_reason.iter().map(|(reason, n)| format!("{reason} {n}")).collect();
    println!("failures by reason: {}", if reasons.is_empty() { "none".into() } else { reasons.join(", ") });
    match (report.upload_ms_mean, report.upload_ms_p95) {
        (Some(mean), Some(p95)) => {
            println!("upload time: mean {mean:.0} ms, p95 {p95} ms over {} files", report.uploads_timed)
        }
        _ => println!("upload time: no uploads yet"),
    }
    for (class, line) in &report.last_errors {
        println!("last {class} error: {line}");
    }
    Ok(exit::OK)
}

async fn orphans(config: &Config, older_than: Duration, delete_objects: bool) -> Result<i32, Exit> {
    let (db, _) = connect_db(config).await?;
    let store = connect_store(config).await?;
    let template = crate::object_name::ObjectNameTemplate::parse(&config.minio.object_name)
        .map_err(|e| Exit::Config(e.to_string()))?;
    // The daemon's journal and a rescan's sibling journal name the objects being worked on.
    let mut journals = Vec::new();
    for path in [config.journal.path.clone(), config.journal.path.with_extension("rescan.sqlite3")] {
        if path.exists() {
            journals.push(Journal::open_read_only(&path).map_err(|e| Exit::Journal(e.to_string()))?);
        }
    }
    let progress = if std::io::stderr().is_terminal() {
        progress_bar(None, "")
    } else {
        indicatif::ProgressBar::hidden()
    };
    let summary = crate::commands::orphans(
        &db,
        &store,
        &journals,
        &config.watch.media_root,
        &config.watched_dir(),
        template.prefix(),
        older_than,
        delete_objects,
        page_rows(),
        |event| match event {
            OrphanEvent::File(file) => {
                progress.suspend(|| writeln!(std::io::stdout(), "orphan file    {file}"))
            }
            OrphanEvent::ReferencesRead(count) => {
                progress.set_message("references read");
                progress.set_position(count);
                Ok(())
            }
            OrphanEvent::ObjectsListed(count) => {
                progress.set_message("objects listed");
                progress.set_position(count);
                Ok(())
            }
            OrphanEvent::Object { name, deleted } => {
                let deleted = if deleted { "  (deleted)" } else { "" };
                progress.suspend(|| writeln!(std::io::stdout(), "orphan object  {name}{deleted}"))
            }
        },
    )
    .await;
    progress.finish_and_clear();
    let summary = match summary {
        Ok(summary) => summary,
        Err(ReportError::Output(e)) => return Ok(output_closed("orphans", &e)),
        Err(ReportError::Failed(e)) => return Err(e.into()),
    };
    println!(
        "orphans older than {}: {} files, {} objects{}",
        humantime::format_duration(older_than),
        summary.files,
        summary.objects,
        if delete_objects { format!(", {} objects deleted", summary.deleted) } else { String::new() }
    );
    Ok(exit::OK)
}

async fn presign(config: &Config, venta: i64, expiry: Duration) -> Result<i32, Exit> {
    let (db, _) = connect_db(config).await?;
    let store = connect_store(config).await?;
    let url = crate::commands::presign(&db, &store, venta, expiry).await?;
    println!("{url}");
    Ok(exit::OK)
}

async fn run_dry_run(config: &Config, limit: Option<u64>, json: bool) -> Result<i32, Exit> {
    let started = start(config, JournalUse::Throwaway).await?;
    let (paths, summary) = crate::pipeline::dry_run_candidates(config, started.pipeline.clone(), limit).await;
    let mut would_move = 0u64;
    let mut bytes = 0u64;
    // Printed as each plan is made: a 100,000-file backlog's answer is never held whole.
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let output_failed = |e: std::io::Error| Exit::Failed(format!("cannot write the dry run: {e}"));
    if json {
        write!(out, "{{\"dry_run\": true, \"files\": [").map_err(output_failed)?;
    }
    for (index, path) in paths.iter().enumerate() {
        let plan = started.pipeline.plan(path).await;
        let venta = plan
            .venta
            .as_ref()
            .map(|(id, numero)| format!("venta {id} ({numero})"))
            .unwrap_or_else(|| "no venta".into());
        let size = plan.size.map(|s| format!("{s} bytes")).unwrap_or_else(|| "-".into());
        let action = match &plan.action {
            PlanAction::Upload => {
                would_move += 1;
                bytes += plan.size.unwrap_or(0);
                format!("would upload to {}", plan.object.as_deref().unwrap_or(""))
            }
            PlanAction::RecordExisting => {
                would_move += 1;
                format!("already uploaded as {}; would record", plan.object.as_deref().unwrap_or(""))
            }
            PlanAction::Skip(reason) => format!("would skip: {reason}"),
        };
        if json {
            let line = serde_json::json!({"path": path.as_str(), "venta": plan.venta.as_ref().map(|v| v.0), "numero": plan.venta.as_ref().map(|v| &v.1), "object": plan.object, "size": plan.size, "action": action});
            write!(out, "{}{line}", if index == 0 { "" } else { ", " }).map_err(output_failed)?;
        } else {
            writeln!(out, "{path}  {venta}  {size}  {action}").map_err(output_failed)?;
        }
    }
    let skipped = paths.len() as u64 - would_move;
    let written = if json {
        writeln!(
            out,
            "], \"would_move\": {would_move}, \"would_skip\": {skipped}, \"bytes\": {bytes}, \"rows_missing_their_file\": {}}}",
            serde_json::json!(summary.problems)
        )
    } else {
        summary.problems.iter().try_for_each(|problem| writeln!(out, "  {problem}")).and_then(|()| {
            if summary.problems_omitted > 0 {
                writeln!(out, "  … and {} more (see the log)", summary.problems_omitted)?;
            }
            writeln!(
                out,
                "dry run: {} files, {would_move} would move ({bytes} bytes), {skipped} would be skipped, {} rows point at a missing file; nothing was changed",
                paths.len(),
                summary.failed
            )
        })
    };
    written.and_then(|()| out.flush()).map_err(output_failed)?;
    Ok(exit::OK)
}

fn dir_prefix(config: &Config) -> String {
    format!("{}/", config.watch.dir.trim_end_matches('/'))
}

async fn run_daemon(config_path: &Path, config: Config, logging: Logging) -> Result<i32, Exit> {
    // The recorder goes in first, so that what start-up records (services up) is kept.
    if let Some(listen) = config.metrics.listen {
        crate::telemetry::serve(listen).map_err(Exit::Config)?;
        info!(%listen, "metrics endpoint serving /metrics");
    }
    // Signals first: a SIGTERM during the start-up checks must stop the daemon cleanly, not kill
    // it with the default action.
    let (shutdown_tx, mut shutdown_rx) = watch::channel(false);
    let (settings_tx, settings_rx) = watch::channel(daemon::LiveSettings::of(&config));
    let signals =
        crate::signals::listen(config_path.to_owned(), config.clone(), logging, settings_tx, shutdown_tx)
            .map_err(|e| Exit::Failed(format!("cannot install signal handlers: {e}")))?;
    // Until here a SIGTERM takes the default action (systemd counts that as a clean stop); the
    // tests wait for this line before they send one.
    debug!("signal handlers installed");
    let started = tokio::select! {
        started = start(&config, JournalUse::Exclusive) => started?,
        _ = shutdown_rx.changed() => {
            info!("stopped during start-up");
            return Ok(exit::OK);
        }
    };
    // Thirty days of finished files are enough for `status`'s upload times. They are pruned
    // while the daemon runs, a batch at a time: never one long DELETE before READY.
    tokio::spawn(started.pipeline.journal().clone().keep_small(
        JOURNAL_RETENTION,
        JOURNAL_UPKEEP_EVERY,
        shutdown_rx.clone(),
    ));

    let (hint_tx, hint_rx) = mpsc::channel(crate::watch::HINT_QUEUE);
    let overflowed = Arc::new(AtomicBool::new(false));
    let dir = config.watched_dir();
    let poll = config.watch.poll_interval_ms.map(Duration::from_millis);
    let _watcher = crate::watch::watch(&dir, hint_tx, overflowed.clone(), poll)
        .map_err(|e| Exit::Config(format!("cannot watch {}: {e}", dir.display())))?;
    crate::signals::notify_systemd("READY=1");

    let (stop, summary) =
        daemon::run(&config, started.pipeline, hint_rx, overflowed, settings_rx, shutdown_rx).await;
    signals.close();
    crate::signals::notify_systemd("STOPPING=1");
    info!(moved = summary.moved, bytes = summary.bytes, "stopped");
    match stop {
        Stop::Finished => Ok(exit::OK),
        Stop::Fatal(failure) => Err(Exit::Fatal(failure)),
    }
}

async fn run_rescan(config: &Config, limit: Option<u64>, json: bool) -> Result<i32, Exit> {
    let started = start(config, JournalUse::ExclusiveOrSibling).await?;
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    crate::signals::stop_on_ctrl_c(shutdown_tx);
    let began = Instant::now();
    let (stop, summary) = daemon::rescan(config, started.pipeline, limit, shutdown_rx).await;
    let elapsed = began.elapsed();
    print_summary(&summary, elapsed, json);
    if let Stop::Fatal(failure) = stop {
        return Err(Exit::Fatal(failure));
    }
    Ok(if summary.failed > 0 || summary.kept > 0 { exit::FAILURES } else { exit::OK })
}

fn print_summary(summary: &Summary, elapsed: Duration, json: bool) {
    // Kept files (rejected, row changed) failed to move; files without a row and rows another
    // sidecar held are skipped, and neither changes the exit code.
    let succeeded = summary.moved;
    let failed = summary.failed + summary.kept;
    let skipped = summary.orphans + summary.busy;
    if json {
        let mut value = serde_json::to_value(summary).unwrap_or_default();
        value["succeeded"] = serde_json::json!(succeeded);
        value["failed_total"] = serde_json::json!(failed);
        value["skipped"] = serde_json::json!(skipped);
        value["total"] = serde_json::json!(succeeded + failed + skipped);
        value["elapsed_s"] = serde_json::json!(elapsed.as_secs_f64());
        println!("{value}");
        return;
    }
    for problem in &summary.problems {
        println!("  {problem}");
    }
    if summary.problems_omitted > 0 {
        println!("  … and {} more (see the log)", summary.problems_omitted);
    }
    let reasons: Vec<String> = summary.reasons.iter().map(|(reason, n)| format!("{reason} {n}")).collect();
    println!(
        "rescan: {succeeded} succeeded, {failed} failed, {skipped} skipped, {} total; {} bytes in {:.1}s{}",
        succeeded + failed + skipped,
        summary.bytes,
        elapsed.as_secs_f64(),
        if reasons.is_empty() { String::new() } else { format!(" (reasons: {})", reasons.join(", ")) }
    );
    if failed > 0 {
        warn!(failed, "rescan finished with failures");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(minio: &str, validation: &str) -> Config {
        let text = format!(
            "[watch]\nmedia_root = \"/m\"\n[database]\nurl = \"sqlite:///db\"\n[minio]\nendpoint = \"http://127.0.0.1:9\"\n\
             access_key = \"k\"\n{minio}\n[validation]\n{validation}\n[journal]\npath = \"/j\"\n"
        );
        Config::parse(&text, Path::new("t.toml")).unwrap()
    }

    /// Issue 15: the exit code follows the cause, never the text of a reason.
    #[test]
    fn each_cause_exits_with_its_documented_code() {
        use crate::db::DbError;
        use crate::store::StoreError;
        let store_error = || StoreError { kind: StoreErrorKind::Unavailable, message: "down".into() };
        let journal_error = || JournalError::Io { path: "/j".into(), message: "disk full".into() };
        let fatal = |reason| Exit::Fatal(Failure::new(reason, "stopped"));
        let cases = [
            (Exit::from(Config::parse("[nope]", Path::new("t.toml")).unwrap_err()), exit::CONFIG),
            (Exit::Config("cannot watch /m".into()), exit::CONFIG),
            (Exit::Logging("cannot set up logging".into()), exit::LOGGING),
            (Exit::Database("no column".into()), exit::DATABASE),
            (Exit::ObjectStore("bucket missing".into()), exit::OBJECT_STORE),
            (Exit::Journal("locked".into()), exit::JOURNAL),
            (CommandError::from(DbError::new(DbErrorKind::Unavailable, "down")).into(), exit::DATABASE),
            (CommandError::from(store_error()).into(), exit::OBJECT_STORE),
            (CommandError::from(journal_error()).into(), exit::JOURNAL),
            (CommandError::Invalid("venta 9 does not exist".into()).into(), exit::FAILURES),
            (fatal(Reason::DbSchema), exit::DATABASE),
            (fatal(Reason::DbUnavailable), exit::DATABASE),
            (fatal(Reason::S3Refused), exit::FAILURES),
            (fatal(Reason::Journal), exit::FAILURES),
            (Exit::Failed("cannot install signal handlers".into()), exit::FAILURES),
        ];
        for (cause, code) in cases {
            assert_eq!(cause.code(), code, "{cause:?}");
        }
        assert_eq!(fatal(Reason::DbSchema).to_string(), "db_schema: stopped");
    }

    /// Issue 17, item 7: `check` says the largest file the settings allow and how it goes up.
    #[test]
    fn check_names_the_largest_file_and_its_parts() {
        let cases = [
            ("", "", "largest file: 50.00 MiB (validation.max_bytes); files over 5.00 MiB go up in parts of 5.00 MiB, the largest in 10 parts"),
            ("multipart_threshold_bytes = 104857600", "", "largest file: 50.00 MiB (validation.max_bytes), sent in one PUT"),
            ("", "max_bytes = 107374182400", "largest file: 100.00 GiB (validation.max_bytes); files over 5.00 MiB go up in parts of 11.00 MiB, the largest in 9310 parts; files over 48.83 GiB (10000 parts of part_size_bytes) go up in larger parts, up to 11.00 MiB each, read into memory whole while it is sent"),
            ("", "max_bytes = 0", "largest file: 5.00 TiB (no validation.max_bytes: S3's largest object); files over 5.00 MiB go up in parts of 525.00 MiB, the largest in 9987 parts; files over 48.83 GiB (10000 parts of part_size_bytes) go up in larger parts, up to 525.00 MiB each, read into memory whole while it is sent"),
        ];
        for (minio, validation, expected) in cases {
            assert_eq!(upload_limits(&config(minio, validation)), expected, "{minio} {validation}");
        }
    }
}
