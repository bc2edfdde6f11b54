//! Log output: stderr (which journald captures) and, when `[log] dir` is set, daily-rotated
//! files. The level comes from `RUST_LOG` when set, else from `[log] level`, and can be changed
//! at run time through the returned handle (SIGHUP reloads it).
//!
//! When stderr is a journald stream, each line starts with its syslog priority (`<3>` error,
//! `<4>` warning, `<6>` info, `<7>` debug and trace), which journald reads and strips, so
//! `journalctl -p warning -u confronta-sync` shows the warnings and errors; without the prefix
//! every line would be stored as info.

use tracing::{Event, Level, Subscriber};
use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::fmt::format::{FormatEvent, FormatFields, Writer};
use tracing_subscriber::fmt::FmtContext;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
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
    let journald = stderr_is_journal_stream();
    let stderr = match (json, journald) {
        (true, false) => fmt::layer().json().with_writer(std::io::stderr).boxed(),
        (true, true) => fmt::layer()
            .fmt_fields(fmt::format::JsonFields::new())
            .event_format(SyslogPriority(fmt::format().json()))
            .with_writer(std::io::stderr)
            .boxed(),
        (false, false) => fmt::layer().with_ansi(ansi).with_writer(std::io::stderr).boxed(),
        (false, true) => fmt::layer()
            .event_format(SyslogPriority(fmt::format()))
            .with_ansi(false)
            .with_writer(std::io::stderr)
            .boxed(),
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

/// Whether stderr is the journald stream systemd connected it to: `JOURNAL_STREAM` holds that
/// stream's `<device>:<inode>`, and it must be stderr's own, because the variable is inherited by
/// children whose stderr is something else (a pipe to a test, a redirect to a file), where a
/// `<4>` would only be noise.
fn stderr_is_journal_stream() -> bool {
    use std::os::fd::AsFd;
    use std::os::unix::fs::MetadataExt;
    let Some((device, inode)) = std::env::var("JOURNAL_STREAM").ok().and_then(|stream| {
        let (device, inode) = stream.split_once(':')?;
        Some((device.parse::<u64>().ok()?, inode.parse::<u64>().ok()?))
    }) else {
        return false;
    };
    let Ok(stderr) = std::io::stderr().as_fd().try_clone_to_owned() else {
        return false;
    };
    std::fs::File::from(stderr).metadata().is_ok_and(|meta| meta.dev() == device && meta.ino() == inode)
}

/// An event format that starts each line with the event's syslog priority, for journald
/// (`SyslogLevelPrefix=`, on by default), then writes what the wrapped format writes.
struct SyslogPriority<F>(F);

impl<S, N, F> FormatEvent<S, N> for SyslogPriority<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        let priority = match *event.metadata().level() {
            Level::ERROR => 3,
            Level::WARN => 4,
            Level::INFO => 6,
            Level::DEBUG | Level::TRACE => 7,
        };
        write!(writer, "<{priority}>")?;
        self.0.format_event(ctx, writer, event)
    }
}
