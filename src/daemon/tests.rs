//! Unit tests of the scheduler's rules: settling, which offer may cut a wait short, the
//! watchdog's progress test and the bounded problem list.

use std::time::{Duration, Instant, SystemTime};

use super::scheduler::{may_cut_short, progressing, Carry, Hold, Pending, Source};
use super::settle::settle_left;
use super::summary::{Summary, MAX_PROBLEMS};
use crate::error::Reason;
use crate::media_path::RelativeMediaPath;
use crate::pipeline::Failure;

#[test]
fn a_file_closed_and_not_written_since_needs_no_settle_time() {
    let settle = Duration::from_millis(500);
    let written = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
    let now = written + Duration::from_millis(100);
    let closed = written + Duration::from_millis(1);
    assert_eq!(settle_left(written, now, settle, Some(closed), None), Duration::ZERO);
    // Without a close, 400 ms of the 500 are left.
    assert_eq!(settle_left(written, now, settle, None, None), Duration::from_millis(400));
    // Written again after the close: settling applies again, from the new write.
    let rewritten = closed + Duration::from_millis(50);
    assert_eq!(settle_left(rewritten, now, settle, Some(closed), None), Duration::from_millis(451));
    // An old file is settled whatever else is known.
    assert_eq!(settle_left(written, written + settle * 2, settle, None, None), Duration::ZERO);
}

/// Issue 17, item 6: a file ten minutes in the future waited ten minutes; it now waits
/// `settle` from when it was first seen so, whatever the wall clock says.
#[test]
fn a_future_mtime_settles_on_the_monotonic_clock() {
    let settle = Duration::from_millis(500);
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
    let future = now + Duration::from_secs(600);
    assert_eq!(settle_left(future, now, settle, None, Some(Duration::ZERO)), settle);
    assert_eq!(
        settle_left(future, now, settle, None, Some(Duration::from_millis(300))),
        Duration::from_millis(200)
    );
    assert_eq!(settle_left(future, now, settle, None, Some(settle)), Duration::ZERO);
    // A close before the future mtime was set does not count as the end of writing.
    assert_eq!(
        settle_left(future, now, settle, Some(now), Some(Duration::from_millis(100))),
        Duration::from_millis(400)
    );
}

/// Issue 17 item 8: the watchdog used to be fed whenever the loop turned, files moving or
/// not. A fake clock: `start` plus seconds.
#[test]
fn the_watchdog_is_fed_only_while_due_files_progress() {
    let start = Instant::now();
    let at = |s: u64| start + Duration::from_secs(s);
    let stall = Duration::from_secs(60);
    let check = |now: u64, oldest_due: Option<u64>, last_progress: u64| {
        progressing(at(now), oldest_due.map(at), at(last_progress), stall)
    };
    // Nothing due: nothing can be stuck, however long nothing happened.
    assert!(check(10_000, None, 0));
    // Due for 30 s with no progress since: within the bound.
    assert!(check(130, Some(100), 0));
    // Due for 61 s with no progress since: stalled.
    assert!(!check(161, Some(100), 0));
    // Due for an hour (a backlog's oldest file waits for a slot) while others finish: fine.
    assert!(check(3_700, Some(100), 3_650));
    // ... until nothing has finished for over the bound.
    assert!(!check(3_711, Some(100), 3_650));
    // Progress before the file became due says nothing about it.
    assert!(!check(1_061, Some(1_000), 999));
}

fn pending(hold: Hold) -> Pending {
    Pending { due: Instant::now(), hold, carry: Carry::default() }
}

/// Issue 17 item 3: orphans and files waiting for their row used to be brought forward by
/// every offer, so each reconcile pass (which offers every unfinished journal entry) ran
/// them all again.
#[test]
fn only_news_of_the_file_or_its_row_cuts_a_wait_for_a_row_short() {
    let waiting = pending(Hold::Row);
    assert!(!may_cut_short(&waiting, Source::Known), "the journal and walks repeat old news");
    assert!(may_cut_short(&waiting, Source::Watcher), "the file was written again");
    assert!(may_cut_short(&waiting, Source::Row), "a row names the file now");
    let mut spent = pending(Hold::Row);
    spent.carry.row_news_spent = true;
    assert!(!may_cut_short(&spent, Source::Row), "a row that did not own the file, seen again");
    assert!(may_cut_short(&spent, Source::Watcher));
    for source in [Source::Known, Source::Row, Source::Watcher] {
        assert!(!may_cut_short(&pending(Hold::Backoff), source), "{source:?} cut a backoff short");
        assert!(may_cut_short(&pending(Hold::Open), source), "{source:?}");
    }
}

#[test]
fn the_problem_list_is_bounded() {
    let mut summary = Summary::default();
    let path = RelativeMediaPath::parse("confrontas/a.pdf").unwrap();
    for _ in 0..MAX_PROBLEMS + 5 {
        summary.count_reason(&Failure::new(Reason::DbRefused, "permission denied"), &path);
    }
    assert_eq!(summary.problems.len(), MAX_PROBLEMS);
    assert_eq!(summary.problems_omitted, 5);
    assert_eq!(summary.reasons["db_refused"], MAX_PROBLEMS as u64 + 5);
}
