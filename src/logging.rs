//! Log output: stderr (which journald captures) and, when `[log] dir` is set, daily-rotated
//! files. The level comes from `RUST_LOG` when set, else from `[log] level`, and can be changed
//! at run time through the returned handle (SIGHUP reloads it).

use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{fmt, reload, EnvFilter, Layer, Registry};

use crate::config::{LogConfig, LogFormat};

/// Keeps the file writer flushing and lets the level change at run time.
pub struct Logging {
    _file_guard: Option<WorkerGuard>,
    filter: reload::Handle<EnvFilter, Registry>,
}

impl Logging {
    /// Applies a new level (from a reloaded config); `RUST_LOG` still wins when set.
    pub fn set_level(&self, level: &str) -> Result<(), String> {
        let filter = build_filter(level)?;
        self.filter.reload(filter).map_err(|e| e.to_string())
    }
}

fn build_filter(level: &str) -> Result<EnvFilter, String> {
    match std::env::var("RUST_LOG") {
        Ok(from_env) if !from_env.is_empty() => {
            EnvFilter::try_new(from_env).map_err(|e| format!("RUST_LOG: {e}"))
        }
        _ => EnvFilter::try_new(level).map_err(|e| format!("log.level {level:?}: {e}")),
    }
}

/// Installs the global subscriber. Call once, before anything logs.
pub fn init(config: &LogConfig) -> Result<Logging, String> {
    let (filter, handle) = reload::Layer::new(build_filter(&config.level)?);
    let json = config.format == LogFormat::Json;
    // Colours only on a terminal: journald and log collectors would store the escape codes.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr()) && std::env::var_os("NO_COLOR").is_none();
    let stderr = if json {
        fmt::layer().json().with_writer(std::io::stderr).boxed()
    } else {
        fmt::layer().with_ansi(ansi).with_writer(std::io::stderr).boxed()
    };
    let (file_layer, guard) = match &config.dir {
        Some(dir) => {
            let appender = tracing_appender::rolling::RollingFileAppender::builder()
                .rotation(tracing_appender::rolling::Rotation::DAILY)
                .filename_prefix("confronta-sync")
                .filename_suffix("log")
                .max_log_files(config.max_files.max(1))
                .build(dir)
                .map_err(|e| format!("log.dir {}: {e}", dir.display()))?;
            let (writer, guard) = tracing_appender::non_blocking(appender);
            let layer = if json {
                fmt::layer().json().with_ansi(false).with_writer(writer).boxed()
            } else {
                fmt::layer().with_ansi(false).with_writer(writer).boxed()
            };
            (Some(layer), Some(guard))
        }
        None => (None, None),
    };
    tracing_subscriber::registry()
        .with(filter)
        .with(stderr)
        .with(file_layer)
        .try_init()
        .map_err(|e| e.to_string())?;
    Ok(Logging { _file_guard: guard, filter: handle })
}
