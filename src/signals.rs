//! Signals and systemd: SIGTERM/SIGINT become the one shutdown input every task watches,
//! SIGHUP reloads the log level and the live settings, and `sd_notify` messages (the `sd-notify`
//! crate) tell systemd where we are.

use std::path::PathBuf;
use std::time::Duration;

use futures_util::StreamExt;
use sd_notify::NotifyState;
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
                    notify(&[NotifyState::Reloading]);
                    if let Some(config) = reload(&config_path, &running, &logging, &settings) {
                        running = config;
                    }
                    notify(&[NotifyState::Ready]);
                }
                _ if stopping => {
                    warn!(
                        signal,
                        "second stop signal: exiting now; unfinished files resume on the next start"
                    );
                    std::process::exit(crate::exit::FAILURES);
                }
                _ => {
                    info!(signal, "stop signal received; finishing in-flight files");
                    notify(&[NotifyState::Stopping]);
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
                    std::process::exit(crate::exit::FAILURES);
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

/// Half the systemd watchdog period, when systemd asked this process for pings
/// (`WatchdogSec=`, which sets `WATCHDOG_USEC` and `WATCHDOG_PID`).
pub fn watchdog_interval() -> Option<Duration> {
    sd_notify::watchdog_enabled().map(|period| period / 2)
}

/// Sends `states` to systemd in one `sd_notify` message when it runs us as `Type=notify`
/// (`NOTIFY_SOCKET` set); otherwise does nothing. A failed send is logged and the daemon goes
/// on: a missed READY or STATUS is systemd's to time out on, never a reason to stop moving files.
pub fn notify(states: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(states) {
        warn!(error = %e, "cannot notify systemd");
    }
}
