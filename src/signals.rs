//! Signals and systemd: SIGTERM/SIGINT become the one shutdown input every task watches,
//! SIGHUP reloads the log level, and `sd_notify` messages tell systemd where we are.

use std::path::PathBuf;
use std::time::Duration;

use futures_util::StreamExt;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook_tokio::{Handle, Signals};
use tokio::sync::watch;
use tracing::{info, warn};

use crate::config::Config;
use crate::logging::Logging;

/// How long in-flight files get to reach a journaled state after SIGTERM.
pub const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);

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
pub fn listen(
    config_path: PathBuf,
    logging: Logging,
    shutdown: watch::Sender<bool>,
) -> std::io::Result<SignalTask> {
    let mut signals = Signals::new([SIGTERM, SIGINT, SIGHUP])?;
    let handle = signals.handle();
    tokio::spawn(async move {
        let mut stopping = false;
        while let Some(signal) = signals.next().await {
            match signal {
                SIGHUP => reload(&config_path, &logging),
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

fn reload(config_path: &std::path::Path, logging: &Logging) {
    match Config::load(config_path) {
        Ok(config) => match logging.set_level(&config.log.level) {
            Ok(()) => info!(level = %config.log.level, "configuration reloaded"),
            Err(e) => {
                warn!(error = %e, "reloaded configuration has a bad log level; keeping the old one")
            }
        },
        Err(e) => {
            warn!(error = %e, "configuration reload failed; keeping the running configuration")
        }
    }
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
