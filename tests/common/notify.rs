//! A datagram socket standing in for systemd's `NOTIFY_SOCKET`: it keeps every message the
//! daemon sends, with when it arrived.

use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::eventually;

pub struct NotifySocket {
    pub path: PathBuf,
    messages: Arc<Mutex<Vec<(Instant, String)>>>,
}

impl NotifySocket {
    pub fn bind(path: PathBuf) -> NotifySocket {
        let socket = UnixDatagram::bind(&path).unwrap();
        socket.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
        let messages = Arc::new(Mutex::new(Vec::new()));
        let collected = messages.clone();
        std::thread::spawn(move || {
            let mut buffer = [0u8; 4096];
            // Ends with the test process; a read timeout only lets the loop turn.
            loop {
                if let Ok(n) = socket.recv(&mut buffer) {
                    let text = String::from_utf8_lossy(&buffer[..n]).into_owned();
                    collected.lock().unwrap().push((Instant::now(), text));
                }
            }
        });
        NotifySocket { path, messages }
    }

    /// Messages holding `text`, received in `from..to`.
    pub fn count(&self, text: &str, from: Instant, to: Instant) -> usize {
        let messages = self.messages.lock().unwrap();
        messages.iter().filter(|(at, message)| *at >= from && *at < to && message.contains(text)).count()
    }

    /// Watchdog pings received in `from..to`.
    pub fn pings(&self, from: Instant, to: Instant) -> usize {
        self.count("WATCHDOG=1", from, to)
    }

    /// When each message holding `text` arrived, in order.
    pub fn arrivals(&self, text: &str) -> Vec<Instant> {
        let messages = self.messages.lock().unwrap();
        messages.iter().filter(|(_, message)| message.contains(text)).map(|(at, _)| *at).collect()
    }

    /// Waits up to `limit` for a message holding `text` received since `from`; returns it.
    pub async fn wait_for(&self, text: &str, from: Instant, limit: Duration) -> String {
        eventually(&format!("{text} on NOTIFY_SOCKET"), limit, || async {
            let messages = self.messages.lock().unwrap();
            messages
                .iter()
                .find(|(at, message)| *at >= from && message.contains(text))
                .map(|(_, m)| m.clone())
        })
        .await
    }
}
