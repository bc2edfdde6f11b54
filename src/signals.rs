//! Signals and systemd: SIGTERM/SIGINT become the one shutdown input every task watches,
//! SIGHUP reloads the log level, and `sd_notify` messages tell systemd where we are.

use std::path::PathBuf;
use std::time::Duration;

use futures_util::StreamExt;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook_tokio::{Handle, Signals};
use tokio::sync::watch;
use tracing::{info, warn};

use crate::config::{Config, LiveSettings};
use crate::logging::Logging;

/// Stops the signal task when dropped or closed.
pub struct SignalTask {
    handle: Handle,
}

impl SignalTask {
    pub fn close(&self) {
        self.handle.close();
    }
}

/// Installs the handlers. The first SIGTERM or SIGINT asks for a clean stop; a second one
/// exits at once, which is safe because every step is journaled before its side effect.
/// SIGHUP re-reads the config at `config_path`: the log level and the `LiveSettings` apply at
/// once, anything else is logged as needing a restart.
pub fn listen(
    config_path: PathBuf,
    running: Config,
    logging: Logging,
    settings: watch::Sender<LiveSettings>,
    shutdown: watch::Sender<bool>,
) -> std::io::Result<SignalTask> {
    let mut signals = Signals::new([SIGTERM, SIGINT, SIGHUP])?;
    let handle = signals.handle();
    tokio::spawn(async move {
        let mut stopping = false;
        let mut running = running;
        while let Some(signal) = signals.next().await {
            match signal {
                SIGHUP => {
                    notify_systemd("RELOADING=1");
                    if let Some(config) = reload(&config_path, &running, &logging, &settings) {
                        running = config;
                    }
                    notify_systemd("READY=1");
                }
                _ if stopping => {
                    warn!(
                        signal,
                        "second stop signal: exiting now; unfinished files resume on the next start"
                    );
                    std::process::exit(crate::app::exit::FAILURES);
                }
                _ => {
                    info!(signal, "stop signal received; finishing in-flight files");
                    notify_systemd("STOPPING=1");
                    stopping = true;
                    let _ = shutdown.send(true);
                }
            }
        }
    });
    Ok(SignalTask { handle })
}

/// For one-shot runs: Ctrl-C (or SIGTERM) stops taking files and lets in-flight ones finish.
pub fn stop_on_ctrl_c(shutdown: watch::Sender<bool>) {
    if let Ok(mut signals) = Signals::new([SIGTERM, SIGINT]) {
        tokio::spawn(async move {
            let mut stopping = false;
            while signals.next().await.is_some() {
                if stopping {
                    std::process::exit(crate::app::exit::FAILURES);
                }
                stopping = true;
                warn!("interrupted: finishing in-flight files; run --rescan again to resume");
                let _ = shutdown.send(true);
            }
        });
    }
}

/// Applies what can change live and returns the new config, or `None` if it cannot be read.
fn reload(
    config_path: &std::path::Path,
    running: &Config,
    logging: &Logging,
    settings: &watch::Sender<LiveSettings>,
) -> Option<Config> {
    let config = match Config::load(config_path) {
        Ok(config) => config,
        Err(e) => {
            warn!(error = %e, "configuration reload failed; keeping the running configuration");
            return None;
        }
    };
    if let Err(e) = logging.set_level(&config.log.level) {
        warn!(error = %e, "reloaded configuration has a bad log level; keeping the old one");
    }
    settings.send_replace(LiveSettings::of(&config));
    let needs_restart: Vec<&str> = [
        (
            "watch.media_root / watch.dir",
            running.watch.media_root != config.watch.media_root || running.watch.dir != config.watch.dir,
        ),
        ("watch.orphan_after_s", running.watch.orphan_after_s != config.watch.orphan_after_s),
        ("database", running.database != config.database),
        ("minio", running.minio != config.minio),
        ("journal", running.journal != config.journal),
        (
            "log.format / log.dir / log.max_files",
            running.log.format != config.log.format
                || running.log.dir != config.log.dir
                || running.log.max_files != config.log.max_files,
        ),
        ("metrics", running.metrics != config.metrics),
        ("service", running.service != config.service),
    ]
    .into_iter()
    .filter_map(|(section, changed)| changed.then_some(section))
    .collect();
    if !needs_restart.is_empty() {
        warn!(sections = ?needs_restart, "these changes cannot apply live and are ignored until a restart");
    }
    info!(level = %config.log.level, "configuration reloaded");
    Some(config)
}

/// Half the systemd watchdog period, when systemd asked for pings (`WatchdogSec=`).
pub fn watchdog_interval() -> Option<Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    if let Ok(pid) = std::env::var("WATCHDOG_PID") {
        if pid.parse::<u32>().ok() != Some(std::process::id()) {
            return None;
        }
    }
    Some(Duration::from_micros(usec / 2))
}

/// Sends one `sd_notify` message when running under systemd with `Type=notify`.
pub fn notify_systemd(message: &str) {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::net::{SocketAddr, UnixDatagram};
    let Some(socket_path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let Ok(socket) = UnixDatagram::unbound() else {
        return;
    };
    let bytes = socket_path.as_encoded_bytes();
    let result = if let Some(name) = bytes.strip_prefix(b"@") {
        SocketAddr::from_abstract_name(name).and_then(|addr| socket.send_to_addr(message.as_bytes(), &addr))
    } else {
        socket.send_to(message.as_bytes(), &socket_path)
    };
    if let Err(e) = result {
        warn!(error = %e, "cannot notify systemd");
    }
}
