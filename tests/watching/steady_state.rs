//! Issue 17 (items 3, 4 and 8): a daemon that runs for years neither repeats work without end
//! nor grows without end, and tells how long its oldest due file has waited.
//!
//! - 2,000 orphans with a 5 s reconcile interval: once they are orphans, a minute costs a small
//!   multiple of 2,000 pipeline runs, not one run per orphan per pass;
//! - a journal holding a million removed entries: the daemon watches within seconds, and
//!   entries that age past the retention while it runs are pruned while it runs;
//! - a database that refuses a file's request (42501) is logged and journaled once per file
//!   version, not once per reconcile pass;
//! - the progress metrics are on the metrics endpoint.

#[allow(dead_code)]
#[path = "../reliability_support/metrics.rs"]
mod metrics;
#[allow(dead_code)]
#[path = "../reliability_support/pg.rs"]
mod pg;

use std::time::{Duration, Instant};

use crate::common::notify::NotifySocket;
use crate::common::*;
use metrics::{scrape, sum};

const WAIT: Duration = Duration::from_secs(120);

/// The world's config with a metrics endpoint on `port` and the retry cap raised to
/// `retry_max_s` (the harness's 2 s would make every wait short).
fn config_with(world: &World, port: u16, retry_max_s: i64) -> TestConfig {
    world.config().set("pipeline.retry_max_s", retry_max_s).set("metrics.listen", format!("127.0.0.1:{port}"))
}

/// Every pipeline run the daemon counted, whatever its outcome.
fn runs(port: u16) -> Option<f64> {
    scrape(port).map(|series| sum(&series, "confronta_files_total", &[]))
}

/// Issue 17 item 3: orphans used to be offered again by every reconcile pass (their journal
/// entries are unfinished), which cut their `retry_max` wait short: 2,000 orphans cost 2,000
/// runs every 5 s, forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_orphans_cost_a_small_multiple_of_two_thousand_runs_a_minute() {
    const ORPHANS: usize = 2_000;
    let world = World::new(Backend::Postgres).await;
    for index in 0..ORPHANS {
        std::fs::write(world.dir().join(format!("orphan_{index:05}.pdf")), sample_bytes(index as u64, 600))
            .unwrap();
    }
    let port = free_port();
    let config = config_with(&world, port, 60)
        .set("watch.orphan_after_s", 1)
        .set("watch.reconcile_interval_s", 5)
        .write();
    let mut sidecar = Sidecar::start(&config, &[], &[]);
    sidecar.wait_watching().await;
    eventually("every file reported as an orphan", WAIT, || async {
        let series = scrape(port)?;
        (sum(&series, "confronta_files_total", &["outcome=\"orphan\""]) >= ORPHANS as f64).then_some(())
    })
    .await;

    let before = runs(port).expect("metrics endpoint answers");
    let began = Instant::now();
    tokio::time::sleep(Duration::from_secs(60)).await;
    let after = runs(port).expect("metrics endpoint answers");
    let elapsed = began.elapsed();
    sidecar.assert_running();
    let reruns = after - before;
    eprintln!("{reruns} pipeline runs in {elapsed:?} with {ORPHANS} orphans");
    // With `retry_max_s = 60` (jittered by ±25 %) an orphan runs at most twice a minute.
    assert!(
        reruns <= (3 * ORPHANS) as f64,
        "{reruns} pipeline runs in {elapsed:?} for {ORPHANS} orphans: they are re-run on every reconcile pass"
    );
    // The files are kept, never deleted.
    assert_eq!(std::fs::read_dir(world.dir()).unwrap().count(), ORPHANS);
    world.cleanup().await;
}

const DAY_MS: i64 = 24 * 3600 * 1000;

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}

/// Entries in the journal at `journal` that are `removed`.
fn removed_entries(journal: &std::path::Path) -> i64 {
    let connection =
        rusqlite::Connection::open_with_flags(journal, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    connection.busy_timeout(Duration::from_secs(10)).unwrap();
    connection.query_row("SELECT count(*) FROM files WHERE state = 'removed'", [], |r| r.get(0)).unwrap()
}

/// Issue 17 item 4: the journal was pruned only at start-up, in one DELETE before READY: a
/// year without a restart meant millions of rows deleted before the daemon watched anything,
/// and a journal that only grew while it ran.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_journal_of_a_million_removed_entries_starts_in_seconds_and_is_pruned_while_running() {
    const OLD: i64 = 900_000;
    const AGING: i64 = 100_000;
    let world = World::new(Backend::Postgres).await;
    let port = free_port();
    let config = config_with(&world, port, 2).write();
    // A first run creates the journal with its schema.
    let mut first = Sidecar::start(&config, &[], &[]);
    first.wait_watching().await;
    assert_eq!(first.terminate(), Some(0));

    // 900,000 entries removed 40 days ago (past the 30-day retention), and 100,000 that pass
    // it 30 s from now, while the daemon runs. Each row is the size a real one has.
    let journal = world.journal_path();
    let built = Instant::now();
    {
        let connection = rusqlite::Connection::open(&journal).unwrap();
        let insert = |count: i64, offset: i64, updated_ms: i64| {
            connection
                .execute(
                    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?1) \
                     INSERT INTO files (path, state, venta_id, sha256, size, dev, inode, mtime_ns, part_digests, \
                     content_type, object_name, attempts, first_seen_ms, updated_ms, upload_ms, ctime_ns, \
                     validated_with) \
                     SELECT 'confrontas/2025/old_' || (i + ?2) || '.pdf', 'removed', i + ?2, \
                     lower(hex(randomblob(32))), 123456, 2049, i + ?2, ?3 * 1000000, '', 'application/pdf', \
                     'ventas/venta_PORTA' || (i + ?2) || '_confronta_' || (i + ?2) || '_' || lower(hex(randomblob(6))) || '.pdf', \
                     1, ?3, ?3, 120, ?3 * 1000000, 'types=pdf,png,jpg;max=50000000' FROM n",
                    rusqlite::params![count, offset, updated_ms],
                )
                .unwrap();
        };
        insert(OLD, 0, now_ms() - 40 * DAY_MS);
        // Past the retention 30 s from now: well after the daemon is up.
        insert(AGING, OLD, now_ms() - 30 * DAY_MS + 30_000);
    }
    eprintln!("built the journal in {:?}", built.elapsed());
    assert_eq!(removed_entries(&journal), OLD + AGING);

    let started = Instant::now();
    let mut sidecar = Sidecar::start(&config, &[], &[]);
    sidecar.wait_watching().await;
    let to_watching = started.elapsed();
    eprintln!("start-up to watching: {to_watching:?}");
    // Generous for a loaded two-core machine; the old start-up deleted the 900,000 entries first.
    assert!(to_watching < Duration::from_secs(8), "start-up to watching took {to_watching:?}");

    // Files still move while the journal is pruned.
    world.write_in_place("during_prune.pdf", &sample_bytes(7, 5_000));
    let id = world.db.insert_venta("PORTA-PRUNE", Some("confrontas/during_prune.pdf")).await;
    eventually("the file moved while the journal was pruned", WAIT, || async {
        world.db.row(id).await.is_some_and(|row| row.subido).then_some(())
    })
    .await;

    // Every entry past the retention goes while the daemon runs, including those that passed
    // it after the start; the entry of the file just moved stays.
    let pruned = eventually("the journal pruned while running", Duration::from_secs(180), || async {
        let left = removed_entries(&journal);
        (left <= 1).then_some(started.elapsed())
    })
    .await;
    eprintln!("pruned {} entries within {pruned:?} of the start", OLD + AGING);
    sidecar.assert_running();
    assert_eq!(removed_entries(&journal), 1, "the file moved during the prune keeps its entry");
    world.cleanup().await;
}

/// Issue 17 item 8: the metrics that say whether files progress.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_oldest_pending_and_last_moved_metrics_are_served() {
    let world = World::new(Backend::Postgres).await;
    let port = free_port();
    let config = config_with(&world, port, 2).write();
    let sidecar = Sidecar::start(&config, &[], &[]);
    sidecar.wait_watching().await;
    let before_move = now_ms() as f64 / 1000.0;
    world.write_in_place("metrics.pdf", &sample_bytes(3, 3_000));
    let id = world.db.insert_venta("PORTA-METRICS", Some("confrontas/metrics.pdf")).await;
    eventually("the file moved", WAIT, || async {
        world.db.row(id).await.is_some_and(|row| row.subido).then_some(())
    })
    .await;
    let series = eventually("the progress metrics are served", WAIT, || async {
        let series = scrape(port)?;
        (sum(&series, "confronta_last_moved_timestamp_seconds", &[]) > 0.0).then_some(series)
    })
    .await;
    let last_moved = sum(&series, "confronta_last_moved_timestamp_seconds", &[]);
    assert!(
        last_moved >= before_move.floor() && last_moved <= now_ms() as f64 / 1000.0 + 1.0,
        "last moved at {last_moved}, the file moved after {before_move}"
    );
    assert!(series.contains_key("confronta_oldest_pending_seconds"), "{series:?}");
    assert_eq!(sum(&series, "confronta_oldest_pending_seconds", &[]), 0.0, "nothing is waiting");
    world.cleanup().await;
}

/// Issue 17 item 3: a refused database answer (here SELECT revoked, 42501) kept the file without
/// a journal entry saying so: each reconcile pass offered its unfinished entry again, and each
/// run logged "file kept" again, forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_database_answer_is_logged_and_journaled_once_per_file_version() {
    let world = World::new(Backend::Postgres).await;
    let role = pg::DaemonRole::create(&world.db, "refused").await;
    let port = free_port();
    // Two-second reconcile passes and retries: a dozen chances to repeat itself below.
    let config = config_with(&world, port, 2).set("database.url", role.url()).write();
    let sidecar = Sidecar::start(&config, &[], &[]);
    sidecar.wait_watching().await;
    // A file whose row is not there yet: journaled as waiting for it.
    world.write_in_place("refused.pdf", &sample_bytes(11, 4_000));
    let path = "confrontas/refused.pdf";
    let journal = world.journal_path();
    let state = |journal: &std::path::Path| {
        let connection =
            rusqlite::Connection::open_with_flags(journal, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
                .ok()?;
        connection
            .query_row("SELECT state FROM files WHERE path = ?1", [path], |r| r.get::<_, String>(0))
            .ok()
    };
    eventually("the file waits for its row", WAIT, || async {
        (state(&journal).as_deref() == Some("waiting_for_row")).then_some(())
    })
    .await;

    let (admin, schema) = pg::admin(&world.db);
    admin
        .batch_execute(&format!("REVOKE SELECT ON {schema}.telefonica_ventaportabilidad FROM {}", role.name))
        .await
        .unwrap();
    eventually("the refusal is journaled", WAIT, || async {
        (state(&journal).as_deref() == Some("rejected")).then_some(())
    })
    .await;
    // Long enough for several reconcile passes and retries.
    tokio::time::sleep(Duration::from_secs(15)).await;
    let log = sidecar.log_text();
    let kept_lines = log.lines().filter(|l| l.contains("file kept") && l.contains("refused.pdf")).count();
    assert_eq!(kept_lines, 1, "\"file kept\" logged {kept_lines} times for one file version");
    assert_eq!(state(&journal).as_deref(), Some("rejected"));
    assert!(world.dir().join("refused.pdf").exists(), "the file is kept");
    drop(sidecar);
    world.cleanup().await;
}

/// Issue 17 item 8: `WATCHDOG=1` was sent on every heartbeat, files moving or not. A file held
/// 60 s before its upload (a hung peer, as far as the daemon can tell) with
/// `stall_timeout_s = 30`: the pings stop after 30 s, and start again once it moves.
#[cfg(feature = "failpoints")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watchdog_stops_while_nothing_progresses_and_resumes_after() {
    let world = World::new(Backend::Postgres).await;
    let port = free_port();
    let config = config_with(&world, port, 2).set("service.stall_timeout_s", 30).write();
    let notify = NotifySocket::bind(world.temp.path().join("notify.sock"));
    let socket = notify.path.display().to_string();
    let sidecar = Sidecar::start(
        &config,
        &[],
        &[
            ("NOTIFY_SOCKET", socket.as_str()),
            // A ping every second.
            ("WATCHDOG_USEC", "2000000"),
            ("FAILPOINTS", "before_upload=return(60000)"),
        ],
    );
    sidecar.wait_watching().await;
    world.write_in_place("stall.pdf", &sample_bytes(5, 4_000));
    let id = world.db.insert_venta("PORTA-STALL", Some("confrontas/stall.pdf")).await;
    eventually("the upload is held", WAIT, || async {
        sidecar.log_text().contains("paused by failpoint").then_some(())
    })
    .await;
    let held = Instant::now();
    eventually("the stall is reported", Duration::from_secs(50), || async {
        sidecar.log_text().contains("nothing has progressed").then_some(())
    })
    .await;
    let reported = Instant::now();
    assert!(notify.pings(held, held + Duration::from_secs(20)) > 0, "pings while within the bound");
    tokio::time::sleep(Duration::from_secs(8)).await;
    let silent = notify.pings(reported + Duration::from_millis(1_500), Instant::now());
    assert_eq!(silent, 0, "{silent} pings while nothing progressed");

    eventually("the file moved once the upload went on", WAIT, || async {
        world.db.row(id).await.is_some_and(|row| row.subido).then_some(())
    })
    .await;
    let moved = Instant::now();
    eventually("pings again", Duration::from_secs(20), || async {
        (notify.pings(moved, Instant::now()) > 0).then_some(())
    })
    .await;
    assert!(sidecar.log_text().contains("files progress again"));
    world.cleanup().await;
}
