//! The operations the binary offers, their start-up checks, and the exit code each ends with.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use tokio::sync::{mpsc, watch};
use tracing::{error, info, warn};

use crate::config::{Config, ConfigError};
use crate::daemon::{self, Stop, Summary};
use crate::db::{self, DbErrorKind, SalesDb};
use crate::journal::{Journal, JournalError};
use crate::logging::{self, Logging};
use crate::pipeline::Pipeline;
use crate::store::{ObjectStore, S3Store, StoreErrorKind};

/// Exit codes, documented in the README.
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
}

/// An error that ends the process with a specific code.
#[derive(Debug)]
pub struct Exit {
    pub code: i32,
    pub message: String,
}

impl Exit {
    fn new(code: i32, message: impl Into<String>) -> Self {
        Exit {
            code,
            message: message.into(),
        }
    }
}

impl From<ConfigError> for Exit {
    fn from(e: ConfigError) -> Self {
        Exit::new(exit::CONFIG, e.to_string())
    }
}

/// Parses nothing, decides nothing: runs what `cli` asks for and returns the exit code.
pub fn main_with(cli: Cli) -> i32 {
    let config = match Config::load(&cli.config) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("confronta-sync: {e}");
            return exit::CONFIG;
        }
    };
    let logging = match logging::init(&config.log) {
        Ok(logging) => logging,
        Err(e) => {
            eprintln!("confronta-sync: cannot set up logging: {e}");
            return exit::LOGGING;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("confronta-sync: cannot start the async runtime: {e}");
            return exit::FAILURES;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Some(Command::Check) => check(&config).await,
            Some(Command::Verify { deep, limit }) => verify(&config, deep, limit).await,
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
            error!(exit_code = e.code, "{}", e.message);
            e.code
        }
    }
}

/// What start-up checks produce: the connected edges, verified.
struct Started {
    pipeline: Arc<Pipeline>,
}

/// Opens and checks the journal, the database and the bucket; any failure is an `Exit`.
async fn start(config: &Config) -> Result<Started, Exit> {
    let journal = Journal::open(&config.journal.path).map_err(|e| match e {
        JournalError::Locked { .. } | JournalError::Io { .. } | JournalError::TooNew { .. } => {
            Exit::new(exit::JOURNAL, e.to_string())
        }
    })?;
    let (db, limits) = connect_db(config).await?;
    let store = connect_store(config).await?;
    let pipeline = Pipeline::new(config, store, db, journal, limits);
    Ok(Started {
        pipeline: Arc::new(pipeline),
    })
}

async fn connect_db(config: &Config) -> Result<(Arc<dyn SalesDb>, crate::db::SchemaLimits), Exit> {
    let db = db::connect(&config.database)
        .await
        .map_err(|e| Exit::new(exit::DATABASE, e.to_string()))?;
    let limits = db.check_schema().await.map_err(|e| {
        let hint = if e.kind == DbErrorKind::Unavailable {
            " (is the database running?)"
        } else {
            ""
        };
        Exit::new(exit::DATABASE, format!("{e}{hint}"))
    })?;
    Ok((db, limits))
}

async fn connect_store(config: &Config) -> Result<Arc<dyn ObjectStore>, Exit> {
    let secret = config.minio.secret_key()?;
    let store =
        S3Store::new(&config.minio, &secret).map_err(|e| Exit::new(exit::CONFIG, e.to_string()))?;
    store.check_bucket().await.map_err(|e| {
        let what = match e.kind {
            StoreErrorKind::NoSuchBucket => "bucket missing",
            StoreErrorKind::AccessDenied => "credentials refused",
            StoreErrorKind::Unavailable => "unreachable",
            _ => "refused",
        };
        Exit::new(
            exit::OBJECT_STORE,
            format!("object store at {} {what}: {e}", config.minio.endpoint),
        )
    })?;
    Ok(Arc::new(store))
}

async fn check(config: &Config) -> Result<i32, Exit> {
    start(config).await?;
    println!(
        "configuration, database columns and bucket {} are fine",
        config.minio.bucket
    );
    Ok(exit::OK)
}

async fn verify(config: &Config, deep: bool, limit: Option<i64>) -> Result<i32, Exit> {
    let (db, _) = connect_db(config).await?;
    let store = connect_store(config).await?;
    let reports = crate::commands::verify(&db, &store, deep, limit)
        .await
        .map_err(|e| Exit::new(exit::DATABASE, e))?;
    let mut bad = 0;
    for report in &reports {
        let size = report
            .size
            .map(|s| format!("{s} bytes"))
            .unwrap_or_else(|| "-".into());
        match &report.problem {
            None => println!(
                "ok        venta {:>8}  {}  {size}",
                report.venta_id, report.object
            ),
            Some(problem) => {
                bad += 1;
                println!(
                    "MISMATCH  venta {:>8}  {}  {size}: {problem}",
                    report.venta_id, report.object
                );
            }
        }
    }
    println!(
        "verify: {} rows checked, {} ok, {} mismatched",
        reports.len(),
        reports.len() - bad,
        bad
    );
    Ok(if bad == 0 { exit::OK } else { exit::FAILURES })
}

async fn run_daemon(config_path: &Path, config: Config, logging: Logging) -> Result<i32, Exit> {
    let started = start(&config).await?;
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let signals =
        crate::signals::listen(config_path.to_owned(), logging, shutdown_tx).map_err(|e| {
            Exit::new(
                exit::FAILURES,
                format!("cannot install signal handlers: {e}"),
            )
        })?;

    let (hint_tx, hint_rx) = mpsc::channel(4096);
    let overflowed = Arc::new(AtomicBool::new(false));
    let dir = config.watched_dir();
    let _watcher = crate::watch::watch(&dir, hint_tx, overflowed.clone())
        .map_err(|e| Exit::new(exit::CONFIG, format!("cannot watch {}: {e}", dir.display())))?;
    crate::signals::notify_systemd("READY=1");

    let (stop, summary) = daemon::run(
        &config,
        started.pipeline,
        hint_rx,
        overflowed,
        shutdown_rx,
        crate::signals::SHUTDOWN_TIMEOUT,
    )
    .await;
    signals.close();
    crate::signals::notify_systemd("STOPPING=1");
    info!(moved = summary.moved, bytes = summary.bytes, "stopped");
    match stop {
        Stop::Finished => Ok(exit::OK),
        Stop::Fatal(failure) => {
            let code = if failure.reason.starts_with("db") {
                exit::DATABASE
            } else {
                exit::FAILURES
            };
            Err(Exit::new(
                code,
                format!("{}: {}", failure.reason, failure.message),
            ))
        }
    }
}

async fn run_rescan(config: &Config, limit: Option<u64>, json: bool) -> Result<i32, Exit> {
    let started = start(config).await?;
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    crate::signals::stop_on_ctrl_c(shutdown_tx);
    let began = Instant::now();
    let (stop, summary) = daemon::rescan(
        config,
        started.pipeline,
        limit,
        shutdown_rx,
        crate::signals::SHUTDOWN_TIMEOUT,
    )
    .await;
    let elapsed = began.elapsed();
    print_summary(&summary, elapsed, json);
    if let Stop::Fatal(failure) = stop {
        return Err(Exit::new(
            exit::FAILURES,
            format!("{}: {}", failure.reason, failure.message),
        ));
    }
    Ok(if summary.failed > 0 || summary.kept > 0 {
        exit::FAILURES
    } else {
        exit::OK
    })
}

fn print_summary(summary: &Summary, elapsed: Duration, json: bool) {
    if json {
        let mut value = serde_json::to_value(summary).unwrap_or_default();
        value["elapsed_s"] = serde_json::json!(elapsed.as_secs_f64());
        println!("{value}");
        return;
    }
    for problem in &summary.problems {
        println!("  {problem}");
    }
    println!(
        "rescan: {} moved ({} bytes), {} failed, {} kept, {} without a row, {} busy elsewhere, in {:.1}s",
        summary.moved,
        summary.bytes,
        summary.failed,
        summary.kept,
        summary.orphans,
        summary.busy,
        elapsed.as_secs_f64()
    );
    if summary.failed > 0 {
        warn!(failed = summary.failed, "rescan finished with failures");
    }
}
