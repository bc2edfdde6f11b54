//! Observers of the scheduler's events: the rescan's progress bar and systemd's STATUS line
//! and watchdog. They show what the scheduler says (`scheduler::Event`) and never change it;
//! the driver loop hands them the events.

use std::io::Write;

use tracing::{error, info};

use super::scheduler::{Event, Status};

/// Something that follows the run through its events.
pub(super) trait Observer {
    fn observe(&mut self, event: &Event);
}

/// The rescan's progress bar: one step per file settled for this run (a retried one is not
/// yet). Drawn on a terminal; elsewhere hidden, unless `CONFRONTA_SYNC_PROGRESS=lines` asks for
/// each state of the bar as a plain line on stderr (a log, or a test reading the bar).
pub(super) struct Progress {
    bar: indicatif::ProgressBar,
    lines: bool,
}

impl Progress {
    pub(super) fn new(total: u64) -> Progress {
        let lines = std::env::var("CONFRONTA_SYNC_PROGRESS").is_ok_and(|value| value == "lines");
        let target = if lines {
            // No rate limit: every step is a line, so the bar's movement is all in the output.
            indicatif::ProgressDrawTarget::term_like(Box::new(Lines))
        } else {
            // `stderr()` draws only on a terminal (and hides itself elsewhere).
            indicatif::ProgressDrawTarget::stderr()
        };
        let bar = indicatif::ProgressBar::with_draw_target(Some(total), target).with_style(
            indicatif::ProgressStyle::with_template(
                "{bar:40} {pos}/{len} files  {elapsed_precise}  eta {eta}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        // Drawn at once, at 0: the bar is seen to start where it starts.
        bar.tick();
        Progress { bar, lines }
    }
}

impl Observer for Progress {
    fn observe(&mut self, event: &Event) {
        match event {
            Event::Settled => self.bar.inc(1),
            // On a terminal the bar leaves no trace once the summary follows; as lines, its last
            // state stays, as every other did.
            Event::Stopped if self.lines => self.bar.abandon(),
            Event::Stopped => self.bar.finish_and_clear(),
            Event::Heartbeat(_) => {}
        }
    }
}

/// A draw target that writes each drawing of the bar as a line of its own on stderr.
#[derive(Debug)]
struct Lines;

impl indicatif::TermLike for Lines {
    fn width(&self) -> u16 {
        100
    }
    fn move_cursor_up(&self, _: usize) -> std::io::Result<()> {
        Ok(())
    }
    fn move_cursor_down(&self, _: usize) -> std::io::Result<()> {
        Ok(())
    }
    fn move_cursor_right(&self, _: usize) -> std::io::Result<()> {
        Ok(())
    }
    fn move_cursor_left(&self, _: usize) -> std::io::Result<()> {
        Ok(())
    }
    fn write_line(&self, line: &str) -> std::io::Result<()> {
        writeln!(std::io::stderr().lock(), "{line}")
    }
    fn write_str(&self, text: &str) -> std::io::Result<()> {
        // A drawing ends without a newline (a terminal overwrites it next time): one line each.
        if text.trim().is_empty() {
            return Ok(());
        }
        writeln!(std::io::stderr().lock(), "{text}")
    }
    fn clear_line(&self) -> std::io::Result<()> {
        Ok(())
    }
    fn flush(&self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// systemd's STATUS line, and its watchdog: fed only while due files progress
/// (`scheduler::progressing`), with one loud line when that stops and one when it resumes.
pub(super) struct Systemd {
    watchdog: bool,
    stalled: bool,
}

impl Systemd {
    pub(super) fn new() -> Systemd {
        Systemd { watchdog: crate::signals::watchdog_interval().is_some(), stalled: false }
    }

    fn heartbeat(&mut self, status: &Status) {
        if status.progressing {
            if self.watchdog {
                crate::signals::notify(&[sd_notify::NotifyState::Watchdog]);
            }
            if std::mem::take(&mut self.stalled) {
                info!("files progress again");
            }
        } else if !std::mem::replace(&mut self.stalled, true) {
            error!(
                stall_timeout_s = status.stall.as_secs(),
                watchdog = self.watchdog,
                "files are due but nothing has progressed for service.stall_timeout_s; systemd's watchdog is no longer fed"
            );
        }
        let line = format!(
            "moved {}, in flight {}, waiting for row {}, orphans {}, failed {}",
            status.moved, status.in_flight, status.waiting_for_row, status.orphans, status.kept
        );
        crate::signals::notify(&[sd_notify::NotifyState::Status(&line)]);
    }
}

impl Observer for Systemd {
    fn observe(&mut self, event: &Event) {
        if let Event::Heartbeat(status) = event {
            self.heartbeat(status);
        }
    }
}
