//! How a failure is handled: the one classification every edge's error maps onto.

/// What the pipeline does after a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    /// Try again later with backoff: the network, a 5xx, a lost database connection.
    Transient,
    /// Give up on this file and keep it where it is: unreadable, invalid, refused for good.
    Rejected,
    /// Stop the daemon: the configuration or the environment is wrong for every file.
    Fatal,
}

impl ErrorClass {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::Transient => "transient",
            ErrorClass::Rejected => "rejected",
            ErrorClass::Fatal => "fatal",
        }
    }
}

/// Implemented by each edge's error type so callers decide without matching on strings.
pub trait Classify {
    fn class(&self) -> ErrorClass;
}

/// A named point where the crash and race tests can intervene. With the `failpoints` feature,
/// `FAILPOINTS=before_record=return(3000)` pauses 3000 ms there and
/// `FAILPOINTS=after_upload=return(kill)` kills the process on the spot with SIGKILL, exactly as
/// `kill -9` would. Compiles to nothing without the feature.
pub async fn pause_point(name: &str) {
    #[cfg(feature = "failpoints")]
    {
        let action: Option<String> = fail::eval(name, |arg| arg.unwrap_or_default());
        match action.as_deref() {
            None => {}
            Some("kill") => {
                tracing::warn!(failpoint = name, "killed by failpoint");
                // SAFETY: sending a signal to our own pid has no memory-safety preconditions.
                unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
            }
            Some(ms) => {
                let ms: u64 = ms.parse().unwrap_or(0);
                tracing::debug!(failpoint = name, ms, "paused by failpoint");
                tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
            }
        }
    }
    #[cfg(not(feature = "failpoints"))]
    let _ = name;
}
