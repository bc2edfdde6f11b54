//! Signals and systemd: SIGTERM/SIGINT become the one shutdown input every task watches,
//! SIGHUP reloads the log level and the live settings and names every other key it changed, and `sd_notify` messages (the `sd-notify`
//! crate) tell systemd where we are.

use std::path::PathBuf;
use std::time::Duration;

use futures_util::StreamExt;
use sd_notify::NotifyState;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook_tokio::{Handle, Signals};
use tokio::sync::watch;
use tracing::{error, info, warn};

use crate::config::reload::{changes, KeyClass};
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
/// once; every other key changed is named in a warning as taking effect after a restart.
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
        let started = running;
        let mut applied = started.clone();
        while let Some(signal) = signals.next().await {
            match signal {
                SIGHUP => {
                    notify(&[NotifyState::Reloading]);
                    if let Some(config) = reload(&config_path, &started, &applied, &logging, &settings) {
                        applied = config;
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

/// Applies what can change live and returns the new config, or `None` if it does not load (the
/// running configuration stays whole). `started` is the config the daemon started with, which
/// the keys that need a restart still come from; `applied`, the last one taken live.
fn reload(
    config_path: &std::path::Path,
    started: &Config,
    applied: &Config,
    logging: &Logging,
    settings: &watch::Sender<LiveSettings>,
) -> Option<Config> {
    let refused = |e: &dyn std::fmt::Display| {
        error!(error = %e, "configuration reload failed; keeping the running configuration");
    };
    let config = Config::load(config_path).map_err(|e| refused(&e)).ok()?;
    let changed = changes(started, applied, &config).map_err(|e| refused(&e)).ok()?;
    let mut live = Vec::new();
    let mut waiting = Vec::new();
    for change in &changed {
        match change.class {
            KeyClass::Live => live.push(change.key.as_str()),
            KeyClass::Restart => {
                waiting.push(change.key.as_str());
                warn!(key = %change.key, old = %change.old, new = %change.new, "configuration key changed; it takes effect after a restart, the running value stays until then");
            }
            KeyClass::Retired => {
                warn!(key = %change.key, "configuration key changed, but it no longer has any effect; remove it")
            }
        }
    }
    if applied.log.level != config.log.level {
        // The level was checked at load; only a logger gone away fails here.
        if let Err(e) = logging.set_level(&config.log.level) {
            warn!(error = %e, "cannot change the log level; keeping the old one");
        }
    }
    settings.send_replace(LiveSettings::of(&config));
    let list = |keys: &[&str]| if keys.is_empty() { "none".to_owned() } else { keys.join(", ") };
    info!(applied = %list(&live), after_restart = %list(&waiting), "configuration reloaded");
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
