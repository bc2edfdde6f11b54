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

/// A named pause point for the crash and race tests (`FAILPOINTS=before_record=return(3000)`
/// pauses 3000 ms there). Compiles to nothing unless the `failpoints` feature is on.
pub async fn pause_point(name: &str) {
    #[cfg(feature = "failpoints")]
    {
        let pause: Option<u64> = fail::eval(name, |arg| arg.and_then(|ms| ms.parse().ok()).unwrap_or(0));
        if let Some(ms) = pause {
            tracing::debug!(failpoint = name, ms, "paused by failpoint");
            tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
        }
    }
    #[cfg(not(feature = "failpoints"))]
    let _ = name;
}
