//! Cases as data: a table of cases where each runs and reports on its own. A failing case is
//! recorded and the next one still runs, so the first failure never hides the rest; the test
//! fails at the end, naming every case that failed and why.

use std::future::Future;
use std::panic::AssertUnwindSafe;

use futures_util::FutureExt;

/// The cases of one test, run in order.
#[derive(Default)]
pub struct Cases {
    ran: Vec<String>,
    failed: Vec<String>,
}

impl Cases {
    pub fn new() -> Cases {
        Cases::default()
    }

    /// Runs one case; its panics (a failed assertion, a wait that timed out) are its failure.
    pub async fn run<F, Fut>(&mut self, name: &str, case: F)
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = ()>,
    {
        self.ran.push(name.to_owned());
        if let Err(panic) = AssertUnwindSafe(case()).catch_unwind().await {
            let said = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|text| (*text).to_owned()))
                .unwrap_or_else(|| "a panic without a message".to_owned());
            eprintln!("case failed: {name}: {said}");
            self.failed.push(format!("{name}: {said}"));
        }
    }

    /// Fails the test if any case failed, listing each.
    pub fn finish(self) {
        assert!(
            self.failed.is_empty(),
            "{} of {} cases failed:\n- {}",
            self.failed.len(),
            self.ran.len(),
            self.failed.join("\n- ")
        );
    }
}
