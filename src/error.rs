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
