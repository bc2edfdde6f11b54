//! The operations the binary offers, their start-up checks, and the exit code each ends with.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use tokio::sync::{mpsc, watch};
use tracing::{debug, error, info, warn};

use crate::commands::ReportError;
use crate::config::{ConditionalWrites, Config};
use crate::daemon::{self, Stop};
use crate::db::{self, DbErrorKind, SalesDb};
use crate::exit::{self, Exit};
use crate::journal::{Journal, JournalError};
use crate::logging::{self, Logging};
use crate::pipeline::Pipeline;
use crate::report;
use crate::store::{
    BucketSetup, Capabilities, KeptProbe, ObjectStore, Probe, ProbeWrites, S3Store, StoreErrorKind,
    PROBE_PREFIX,
};

/// How long the journal remembers a removed file (for `status`'s upload times).
const JOURNAL_RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);
/// How often the running daemon forgets entries past `JOURNAL_RETENTION`: the first time at
/// start-up, then once a minute, so a day's removals never pile up into one long prune.
const JOURNAL_UPKEEP_EVERY: Duration = Duration::from_secs(60);

mod generate;
mod preflight;

pub use generate::{parse_command_line, write_reference, Generate, Invocation};

/// What `--version` and the man pages show: the crate's version and, when the build knew it,
/// the commit (`0.2.0 (rev 0123456789ab)`; see `build.rs`).
pub const VERSION: &str = env!("CONFRONTA_SYNC_VERSION");

/// Command line.
#[derive(Debug, Parser)]
#[command(
    name = "confronta-sync",
    version = VERSION,
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

    /// With --rescan: take only the file this venta's row names (repeat for more ventas); the
    /// JSON summary then has one result per venta, in the order given.
    #[arg(long = "venta", value_name = "ID", requires = "rescan", conflicts_with = "limit")]
    pub ventas: Vec<i64>,

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
        /// Allow listing the whole bucket when minio.object_name has no folder before its
        /// first placeholder (only names the template could have made are ever reported).
        #[arg(long)]
        whole_bucket: bool,
    },
    /// Give a venta a file the daemon would not match to it alone: a file only a stale row names
    /// (one seen naming the path while no file was there), or one restored by hand. Sets the
    /// row's confronta and assignment time as a new upload does; the daemon then moves it.
    Adopt {
        /// The file, relative to MEDIA_ROOT (confrontas/x.pdf) or absolute.
        #[arg(value_name = "PATH")]
        path: PathBuf,
        /// The venta the file belongs to.
        #[arg(long, value_name = "ID")]
        venta: i64,
        /// Print what would be done and change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Point rows that a database restore sent back to a local file the daemon had already
    /// moved (file gone, object recorded in the journal) at their object again.
    Repair {
        /// Print what would be re-pointed and change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Everything known about one file or one sale: its rows, the journal's record, the object
    /// in the bucket, the local and quarantined file, what the daemon does next and the remedy.
    /// Changes nothing; exits 1 when no row, journal entry or file knows it.
    Explain {
        /// The file, relative to MEDIA_ROOT (confrontas/x.pdf) or absolute.
        #[arg(value_name = "PATH", required_unless_present = "venta", conflicts_with = "venta")]
        path: Option<PathBuf>,
        /// Explain this venta instead, with every document it has had (and, on a bucket that
        /// keeps versions, their versions).
        #[arg(long, value_name = "ID")]
        venta: Option<i64>,
        /// Print as one JSON object.
        #[arg(long)]
        json: bool,
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

/// Parses nothing, decides nothing: runs what `cli` asks for and returns the exit code.
pub fn main_with(cli: Cli) -> i32 {
    let config = match Config::load(&cli.config) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("confronta-sync: {e}");
            return Exit::from(e).code();
        }
    };
    // Before logging and the runtime start their threads: see the function.
    crate::store::settle_proxy_environment(&config.minio);
    let logging = match logging::init(&config.log) {
        Ok(logging) => logging,
        Err(e) => {
            let e = Exit::Logging(format!("cannot set up logging: {e}"));
            eprintln!("confronta-sync: {e}");
            return e.code();
        }
    };
    for retired in config.retired_keys() {
        warn!(config = %cli.config.display(), "{retired}");
    }
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
            Some(Command::Orphans { older_than, delete_objects, whole_bucket }) => {
                orphans(&config, older_than, delete_objects, whole_bucket).await
            }
            Some(Command::Adopt { path, venta, dry_run }) => adopt(&config, &path, venta, dry_run).await,
            Some(Command::Repair { dry_run }) => repair(&config, dry_run).await,
            Some(Command::Explain { path, venta, json }) => {
                explain(&config, path.as_deref(), venta, json).await
            }
            Some(Command::Presign { venta, expiry }) => presign(&config, venta, expiry).await,
            None if cli.rescan && cli.dry_run => run_dry_run(&config, cli.limit, &cli.ventas, cli.json).await,
            None if cli.rescan => run_rescan(&config, cli.limit, &cli.ventas, cli.json).await,
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
    /// An in-memory copy of the configured journal: `--dry-run`, which decides as the real run
    /// does (on what the journal remembers) and must not write the real one.
    Throwaway,
}

/// Opens and checks the journal, the database and the bucket; any failure is an `Exit`.
async fn start(config: &Config, journal_use: JournalUse) -> Result<Started, Exit> {
    let journal_error = |e: JournalError| Exit::Journal(e.to_string());
    let (db, limits) = connect_db(config).await?;
    warn_missing_indexes(db.as_ref(), config).await;
    let journal = match journal_use {
        JournalUse::Throwaway => Journal::in_memory_copy_of(&config.journal.path).map_err(journal_error)?,
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
    if journal_use != JournalUse::Throwaway {
        probe_quarantine(config)?;
        // What would leave every file waiting while the daemon runs: said once, at start.
        for finding in preflight::at_start(config).await {
            warn!("{}: {}", finding.subject, finding.text);
        }
    }
    let (store, capabilities) = if journal_use == JournalUse::Throwaway {
        // `--dry-run` writes nothing anywhere, the probe's scratch objects included (on a bucket
        // with object lock they would stay for years). It uploads nothing, so nothing it does
        // depends on what the probe would learn.
        let unprobed =
            Capabilities { checksum_enforced: true, conditional_put: false, checksum_answered: false };
        (connect_store(config).await?, unprobed)
    } else {
        let (store, checked) = connect_store_for_uploads(config, Some(&journal)).await?;
        (store, checked.probe.capabilities)
    };
    let pipeline = Pipeline::new(config, store, db, journal, limits, capabilities);
    Ok(Started { pipeline: Arc::new(pipeline) })
}

/// Warns of each index the daemon's queries rely on that the table lacks: nothing is wrong
/// without one, but each such query reads the whole table (on the connection the pipeline's
/// row lookups share), which a large table makes slow for every file.
async fn warn_missing_indexes(db: &dyn SalesDb, config: &Config) {
    match db.missing_indexes().await {
        Ok(missing) => {
            for index in missing {
                warn!(
                    table = %config.database.table,
                    "an index the daemon relies on is missing: {}; /usr/share/confronta-sync/sql/{} (packaging/sql/{}) adds it",
                    index.needed_by(),
                    index.sql_file(),
                    index.sql_file()
                );
            }
        }
        Err(e) => warn!(error = %e, "could not read the table's indexes"),
    }
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

/// What opening the store for moving files found: how the bucket is set up, and the probe.
struct StoreCheck {
    bucket: BucketSetup,
    probe: Probe,
}

/// Opens the store for moving files: checks the bucket, then probes what the server enforces.
/// A server that accepts a PUT with a wrong `x-amz-checksum-sha256` would make every
/// verification pass, so the daemon refuses to start on it. The last probe's result for this
/// endpoint and bucket is read from `journal` and kept there: on a bucket that keeps versions
/// it spares the probe's writes (issue 29). A retention asked for on a bucket without object
/// lock could never be applied, so that is refused too, naming the bucket.
async fn connect_store_for_uploads(
    config: &Config,
    journal: Option<&Journal>,
) -> Result<(Arc<dyn ObjectStore>, StoreCheck), Exit> {
    let store = connect_store(config).await?;
    let endpoint = config.minio.endpoint.trim_end_matches('/');
    let bucket = &config.minio.bucket;
    let kept = match journal {
        Some(journal) => journal.kept_probe(endpoint, bucket).await.unwrap_or_else(|e| {
            warn!(error = %e, "cannot read the last probe's result from the journal; probing again");
            None
        }),
        None => None,
    };
    let setup = store.bucket_setup().await.map_err(|e| {
        Exit::ObjectStore(format!(
            "object store at {endpoint}: cannot read how bucket {bucket} is set up: {e}"
        ))
    })?;
    for unknown in &setup.unknown {
        warn!(%bucket, "cannot read how the bucket is set up: {unknown}");
    }
    // Before the probe writes anything: a bucket that cannot take the settings is no place
    // for even a scratch object.
    if let Some(retention) = store.policy().retention {
        if setup.lacks_object_lock() {
            return Err(Exit::ObjectStore(format!(
                "minio.retention_mode = \"{}\" and minio.retention_days = {} ask every object to be retained, \
                 but bucket {bucket} at {endpoint} has no object lock, so no retention can be set on it; make \
                 the bucket with object lock (mc mb --with-lock), or remove both keys: see docs/legal-retention.md",
                retention.mode.as_str(),
                retention.days
            )));
        }
        if setup.object_lock.is_none() {
            warn!(%bucket, "cannot read whether the bucket has object lock; an upload asking for a retention on a bucket without it is refused by the server");
        }
    }
    let probe = store.probe(&setup, kept.as_ref()).await.map_err(|e| {
        Exit::ObjectStore(format!(
            "object store at {}: the start-up probe under {PROBE_PREFIX} failed: {e}",
            config.minio.endpoint
        ))
    })?;
    info!(%bucket, "start-up probe: {}", probe.writes);
    let capabilities = probe.capabilities;
    if !capabilities.checksum_enforced {
        return Err(Exit::ObjectStore(format!(
            "object store at {} accepted a PUT whose x-amz-checksum-sha256 does not match its bytes; \
             uploads could not be verified there, so nothing is moved (MinIO enforces the header: \
             is a proxy in between dropping it?)",
            config.minio.endpoint
        )));
    }
    if let (Some(journal), false) = (journal, matches!(probe.writes, ProbeWrites::Nothing { .. })) {
        let kept = KeptProbe {
            capabilities,
            encryption: store.policy().encryption_text(),
            probed_ms: crate::journal::now_ms(),
        };
        if let Err(e) = journal.keep_probe(endpoint, bucket, &kept).await {
            warn!(error = %e, "cannot keep the probe's result in the journal; the next start probes again");
        }
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
    Ok((store, StoreCheck { bucket: setup, probe }))
}

/// The quarantine folder takes files (`Validator::probe_quarantine`); else a configuration
/// error naming it, since a refused file could not leave MEDIA_ROOT.
fn probe_quarantine(config: &Config) -> Result<(), Exit> {
    let validator = crate::validation::Validator::new(&config.validation, config.quarantine_dir());
    validator.probe_quarantine().map_err(|e| {
        Exit::Config(format!(
            "{e}; refused files could not leave MEDIA_ROOT (check validation.quarantine_dir, its owner and mode, \
             and the unit's ReadWritePaths=)"
        ))
    })
}

/// The host first (folders, clamd, metrics address, secret key: one line each, for the user
/// the service runs as), then the database and the bucket as a start checks them. A problem on
/// the host (the daemon would not start, or could not finish any file) is exit 2, after the
/// database and the bucket have been checked too; a warning leaves the exit code alone.
async fn check(config: &Config) -> Result<i32, Exit> {
    let host = preflight::look(config).await;
    for finding in &host {
        println!("{finding}");
    }
    let problems: Vec<&str> = host
        .iter()
        .filter(|finding| finding.severity == preflight::Severity::Problem)
        .map(|finding| finding.subject.as_str())
        .collect();
    let (db, _) = connect_db(config).await?;
    warn_missing_indexes(db.as_ref(), config).await;
    // The daemon's journal, if there is one, holds the last probe's result: `check` reuses it
    // as a start would, and keeps what it learns for the next start. A journal this user
    // cannot open (`check` run as another user than the daemon's) only costs that reuse.
    let journal = Journal::open_for_probe(&config.journal.path).unwrap_or_else(|e| {
        warn!(error = %e, "cannot open the journal for the last probe's result; probing without it");
        None
    });
    let (_, checked) = connect_store_for_uploads(config, journal.as_ref()).await?;
    report::check(config, &checked.bucket, &checked.probe);
    if !problems.is_empty() {
        return Err(Exit::Config(format!(
            "{}: the problems above would keep the daemon from starting or from finishing any file",
            problems.join(", ")
        )));
    }
    Ok(exit::OK)
}

async fn verify(config: &Config, deep: bool, limit: Option<i64>) -> Result<i32, Exit> {
    let (db, _) = connect_db(config).await?;
    let store = connect_store(config).await?;
    let progress = if std::io::stderr().is_terminal() {
        // The bar's length costs one count of the table; only worth it when someone watches.
        let in_minio = db.count_rows(&dir_prefix(config)).await.map(|counts| counts.in_minio).unwrap_or(0);
        report::progress_bar(Some(limit.unwrap_or(i64::MAX).min(in_minio).max(0) as u64), "rows checked")
    } else {
        indicatif::ProgressBar::hidden()
    };
    let summary = crate::commands::verify(&db, &store, deep, limit, page_rows(), |row| {
        progress.inc(1);
        progress.suspend(|| report::verify_row(&mut std::io::stdout(), row))
    })
    .await;
    progress.finish_and_clear();
    let summary = match summary {
        Ok(summary) => summary,
        Err(ReportError::Output(e)) => return Ok(output_closed("verify", &e)),
        Err(ReportError::Failed(e)) => return Err(e.into()),
    };
    report::verify_summary(&summary);
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

async fn status(config: &Config, json: bool) -> Result<i32, Exit> {
    let (db, _) = connect_db(config).await?;
    // A journal that does not exist yet simply has nothing to report.
    let journal = if config.journal.path.exists() {
        Some(Journal::open_read_only(&config.journal.path).map_err(|e| Exit::Journal(e.to_string()))?)
    } else {
        None
    };
    let status = crate::commands::status(&db, journal.as_ref(), &dir_prefix(config)).await?;
    report::status(&status, json);
    Ok(exit::OK)
}

async fn orphans(
    config: &Config,
    older_than: Duration,
    delete_objects: bool,
    whole_bucket: bool,
) -> Result<i32, Exit> {
    let template = crate::object_name::ObjectNameTemplate::parse(&config.minio.object_name)
        .map_err(|e| Exit::Config(e.to_string()))?;
    if template.prefix().is_empty() && !whole_bucket {
        return Err(Exit::Config(format!(
            "minio.object_name ({}) has no folder before its first placeholder, so orphans would list the \
             whole bucket {}; give the template a folder (the default is confrontas/...), or pass \
             --whole-bucket (only names the template could have made are reported or deleted)",
            config.minio.object_name, config.minio.bucket
        )));
    }
    let (db, _) = connect_db(config).await?;
    let store = connect_store(config).await?;
    // The daemon's journal and a rescan's sibling journal name the objects being worked on,
    // and the objects recorded for each venta.
    let journals = journals_read_only(config)?;
    let progress = report::progress_bar(None, "");
    let summary = crate::commands::orphans(
        &db,
        &store,
        &journals,
        &config.watch.media_root,
        &config.watched_dir(),
        &template,
        older_than,
        delete_objects,
        page_rows(),
        |event| report::orphan_event(&progress, event),
    )
    .await;
    progress.finish_and_clear();
    let summary = match summary {
        Ok(summary) => summary,
        Err(ReportError::Output(e)) => return Ok(output_closed("orphans", &e)),
        Err(ReportError::Failed(e)) => return Err(e.into()),
    };
    report::orphans_summary(&summary, older_than, delete_objects);
    Ok(exit::OK)
}

/// The journals an operator command reads: the daemon's, and a rescan's sibling, where they
/// exist (never created, never locked).
fn journals_read_only(config: &Config) -> Result<Vec<Journal>, Exit> {
    let mut journals = Vec::new();
    for path in [config.journal.path.clone(), config.journal.path.with_extension("rescan.sqlite3")] {
        if path.exists() {
            journals.push(Journal::open_read_only(&path).map_err(|e| Exit::Journal(e.to_string()))?);
        }
    }
    Ok(journals)
}

/// A media file as the operator named it: relative to MEDIA_ROOT (`confrontas/x.pdf`) or
/// absolute under it.
fn media_path_argument(config: &Config, path: &Path) -> Result<crate::media_path::RelativeMediaPath, Exit> {
    if path.is_absolute() {
        crate::media_path::RelativeMediaPath::from_absolute(&config.watch.media_root, path)
    } else {
        crate::media_path::RelativeMediaPath::parse(&path.to_string_lossy())
    }
    .map_err(|e| Exit::Command(crate::commands::CommandError::Invalid(e.to_string())))
}

async fn adopt(config: &Config, path: &Path, venta: i64, dry_run: bool) -> Result<i32, Exit> {
    let media_root = crate::media_path::MediaRoot::resolve(&config.watch.media_root, &config.watch.dir);
    let relative = media_path_argument(config, path)?;
    let (db, _) = connect_db(config).await?;
    let journals = journals_read_only(config)?;
    let plan = crate::commands::plan_adopt(&db, &media_root, journals.first(), &relative, venta).await?;
    if !dry_run {
        crate::commands::adopt(&db, &plan).await?;
        let detail = format!("venta {venta} given {relative} ({} bytes)", plan.size);
        if let Err(e) =
            crate::journal::log_operator_action(&config.journal.path, "adopt", &relative, venta, &detail)
        {
            warn!(error = %e, "the adoption is done but could not be noted in the journal");
        }
    }
    report::adopt_plan(&plan, dry_run);
    Ok(exit::OK)
}

async fn repair(config: &Config, dry_run: bool) -> Result<i32, Exit> {
    let (db, _) = connect_db(config).await?;
    let store = connect_store(config).await?;
    let journals = journals_read_only(config)?;
    let media_root = crate::media_path::MediaRoot::resolve(&config.watch.media_root, &config.watch.dir);
    let url_base = format!("{}/{}", config.minio.public_base_url(), config.minio.bucket);
    let summary =
        crate::commands::repair(&db, &store, &journals, &media_root, &url_base, dry_run, report::repair_line)
            .await?;
    report::repair_summary(&summary, dry_run);
    Ok(if summary.failed == 0 { exit::OK } else { exit::FAILURES })
}

async fn explain(config: &Config, path: Option<&Path>, venta: Option<i64>, json: bool) -> Result<i32, Exit> {
    use crate::commands::{Sources, Subject, Timers};
    let subject = match (path, venta) {
        (Some(path), _) => Subject::Path(media_path_argument(config, path)?),
        (None, Some(venta)) => Subject::Venta(venta),
        (None, None) => return Err(Exit::Config("explain needs a PATH or --venta ID".into())),
    };
    let template = crate::object_name::ObjectNameTemplate::parse(&config.minio.object_name)
        .map_err(|e| Exit::Config(e.to_string()))?;
    let (db, _) = connect_db(config).await?;
    let store = connect_store(config).await?;
    // Read-only, as `status`: never created, never locked, so it runs beside the daemon.
    let journals = journals_read_only(config)?;
    let media_root = crate::media_path::MediaRoot::resolve(&config.watch.media_root, &config.watch.dir);
    let validator = crate::validation::Validator::new(&config.validation, config.quarantine_dir());
    let timers = Timers {
        orphan_after: Duration::from_secs(config.watch.orphan_after_s),
        owner_wait: Duration::from_secs(config.watch.owner_wait_s),
        retry_initial: Duration::from_millis(config.pipeline.retry_initial_ms),
        retry_max: Duration::from_secs(config.pipeline.retry_max_s),
    };
    let sources = Sources {
        db: &db,
        store: &store,
        journals: &journals,
        media_root: &media_root,
        validator: &validator,
        template: &template,
        timers,
    };
    let explanation = crate::commands::explain(&sources, &subject).await?;
    report::explain(&explanation, json);
    Ok(if explanation.found { exit::OK } else { exit::FAILURES })
}

async fn presign(config: &Config, venta: i64, expiry: Duration) -> Result<i32, Exit> {
    let (db, _) = connect_db(config).await?;
    let store = connect_store(config).await?;
    let url = crate::commands::presign(&db, &store, venta, expiry).await?;
    println!("{url}");
    Ok(exit::OK)
}

async fn run_dry_run(config: &Config, limit: Option<u64>, ventas: &[i64], json: bool) -> Result<i32, Exit> {
    let started = start(config, JournalUse::Throwaway).await?;
    let (paths, summary) = if ventas.is_empty() {
        crate::daemon::dry_run_candidates(config, started.pipeline.clone(), limit).await
    } else {
        crate::daemon::dry_run_ventas(config, started.pipeline.clone(), ventas).await
    };
    // Each plan is made when the report asks for it and printed at once: a 100,000-file
    // backlog's answer is never held whole. The report writes synchronously (serde_json), so
    // each plan's queries are waited for in place (`main_with`'s runtime is multi-threaded, as
    // `block_in_place` needs).
    let plans = paths.iter().map(|path| {
        let plan = tokio::task::block_in_place(|| {
            tokio::runtime::Handle::current().block_on(started.pipeline.plan(path))
        });
        (path, plan)
    });
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    report::dry_run(&mut out, plans, &summary, json)
        .and_then(|()| out.flush())
        .map_err(|e| Exit::Failed(format!("cannot write the dry run: {e}")))?;
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
    let (settings_tx, settings_rx) = watch::channel(crate::config::LiveSettings::of(&config));
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
    let watcher = crate::watch::watch(&dir, hint_tx, overflowed.clone(), poll)
        .map_err(|e| Exit::Config(format!("cannot watch {}: {e}", dir.display())))?;
    crate::signals::notify(&[sd_notify::NotifyState::Ready]);

    let (stop, summary) =
        daemon::run(&config, started.pipeline, watcher, hint_rx, overflowed, settings_rx, shutdown_rx).await;
    signals.close();
    crate::signals::notify(&[sd_notify::NotifyState::Stopping]);
    info!(moved = summary.moved, bytes = summary.bytes, "stopped");
    match stop {
        Stop::Finished => Ok(exit::OK),
        Stop::Fatal(failure) => Err(Exit::Fatal(failure)),
    }
}

async fn run_rescan(config: &Config, limit: Option<u64>, ventas: &[i64], json: bool) -> Result<i32, Exit> {
    let started = start(config, JournalUse::ExclusiveOrSibling).await?;
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    crate::signals::stop_on_ctrl_c(shutdown_tx);
    let began = Instant::now();
    let (stop, summary) = if ventas.is_empty() {
        daemon::rescan(config, started.pipeline, limit, shutdown_rx).await
    } else {
        daemon::rescan_ventas(config, started.pipeline, ventas, shutdown_rx).await
    };
    let elapsed = began.elapsed();
    report::rescan_summary(&summary, elapsed, json);
    if let Stop::Fatal(failure) = stop {
        return Err(Exit::Fatal(failure));
    }
    Ok(if summary.failed > 0 || summary.kept > 0 { exit::FAILURES } else { exit::OK })
}
