//! Running as a service: SIGTERM mid-run, SIGHUP reload, the Prometheus endpoint, and what
//! systemd hears on `NOTIFY_SOCKET`.

use std::time::{Duration, Instant};

use crate::common::notify::NotifySocket;
use crate::common::*;

const WAIT: Duration = Duration::from_secs(90);

/// Inserts `count` ventas and writes their files; returns (id, path, bytes).
async fn backlog(world: &World, label: &str, count: usize) -> Vec<(i64, std::path::PathBuf, Vec<u8>)> {
    let mut files = Vec::new();
    for index in 0..count {
        let name = format!("{label}_{index:03}.pdf");
        let bytes = sample_bytes(index as u64 + 10_000, 2_000 + index);
        let path = world.write_in_place(&name, &bytes);
        let id = world
            .db
            .insert_venta(&format!("PORTA-{label}{index:03}"), Some(&format!("confrontas/{name}")))
            .await;
        files.push((id, path, bytes));
    }
    files
}

async fn moved_count(world: &World, files: &[(i64, std::path::PathBuf, Vec<u8>)]) -> usize {
    let mut moved = 0;
    for (id, ..) in files {
        moved += usize::from(world.db.row(*id).await.is_some_and(|row| row.subido));
    }
    moved
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_a_200_file_run_exits_0_within_the_timeout_and_a_restart_finishes_every_file() {
    let world = World::new(Backend::Postgres).await;
    let config = world.config().write();
    let files = backlog(&world, "term", 200).await;
    let mut first = Sidecar::start(&config, &[], &[("FAILPOINTS", "after_upload=return(40)")]);
    eventually("the run is under way", WAIT, || async {
        (moved_count(&world, &files).await >= 10).then_some(())
    })
    .await;

    let asked = Instant::now();
    let code = first.terminate();
    let took = asked.elapsed();
    assert_eq!(code, Some(0), "exit code after SIGTERM; log:\n{}", first.log_text());
    // The configured shutdown_timeout_s is 10; the bound below only allows for process start-up noise.
    assert!(took < Duration::from_secs(12), "SIGTERM took {took:?}, longer than the shutdown timeout");
    let done_after_stop = moved_count(&world, &files).await;
    assert!(done_after_stop < files.len(), "the stop must land mid-run");

    let _second = Sidecar::start(&config, &[], &[]);
    eventually("every file recorded after the restart", WAIT, || async {
        (moved_count(&world, &files).await == files.len()).then_some(())
    })
    .await;
    for (id, path, bytes) in &files {
        let row = world.db.row(*id).await.unwrap();
        assert_eq!(world.object_bytes(row.object_name.as_deref().unwrap()).await, *bytes, "venta {id}");
        eventually("local file removed", WAIT, || async { (!path.exists()).then_some(()) }).await;
    }
    assert_eq!(world.objects_under_prefix().await.len(), files.len(), "one object per file");
    world.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_changes_the_log_level_without_losing_work() {
    let world = World::new(Backend::Postgres).await;
    let config = world.config().set("log.level", "info").write();
    // An empty RUST_LOG lets the config's level rule.
    let mut sidecar = Sidecar::start(&config, &[], &[("RUST_LOG", "")]);
    let before = backlog(&world, "hupa", 5).await;
    eventually("first files moved", WAIT, || async {
        (moved_count(&world, &before).await == 5).then_some(())
    })
    .await;
    assert!(!sidecar.log_text().contains("DEBUG"), "no debug lines at level info");

    world.config().set("log.level", "debug").write();
    unsafe { libc::kill(sidecar.child.id() as i32, libc::SIGHUP) };
    eventually("reload logged", WAIT, || async {
        sidecar.log_text().contains("configuration reloaded").then_some(())
    })
    .await;
    let after = backlog(&world, "hupb", 5).await;
    eventually("later files moved", WAIT, || async {
        (moved_count(&world, &after).await == 5).then_some(())
    })
    .await;
    assert!(sidecar.log_text().contains("DEBUG"), "debug lines after the reload:\n{}", sidecar.log_text());
    sidecar.assert_running();
    for (_, path, _) in before.iter().chain(&after) {
        eventually("local file removed", WAIT, || async { (!path.exists()).then_some(()) }).await;
    }
    world.cleanup().await;
}

/// Sends SIGHUP and waits for the reload's `n`th "configuration reloaded" or "reload failed"
/// line, whichever the daemon logs.
async fn reload(sidecar: &Sidecar, n: usize) {
    unsafe { libc::kill(sidecar.child.id() as i32, libc::SIGHUP) };
    eventually("reload answered", WAIT, || async {
        let log = sidecar.log_text();
        let answers = log.matches("configuration reloaded").count() + log.matches("reload failed").count();
        (answers >= n).then_some(())
    })
    .await;
}

/// Issue 24 item 8: SIGHUP logged "configuration reloaded" and went on judging files by the
/// `[validation]` it started with. A lower `max_bytes` must refuse the next file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_judges_the_next_file_by_the_new_validation_rules() {
    let world = World::new(Backend::Postgres).await;
    let config = world.config().write();
    let mut sidecar = Sidecar::start(&config, &[], &[]);
    sidecar.wait_watching().await;
    let before = backlog(&world, "valida", 1).await;
    eventually("the first file moved under the start-up rules", WAIT, || async {
        (moved_count(&world, &before).await == 1).then_some(())
    })
    .await;

    // `backlog`'s files are 2,000 bytes and more.
    world.config().set("validation.max_bytes", 1_000).write();
    reload(&sidecar, 1).await;
    let after = backlog(&world, "validb", 1).await;
    let (id, path, _) = &after[0];
    eventually("the next file refused for its size", WAIT, || async {
        world.quarantined("validb_000.pdf").exists().then_some(())
    })
    .await;
    assert!(!path.exists(), "the refused file left MEDIA_ROOT");
    let row = world.db.row(*id).await.unwrap();
    assert!(
        !row.subido && row.confronta.as_deref().unwrap_or_default().is_empty(),
        "the venta no longer names it: {row:?}"
    );
    assert!(
        row.sync_error.as_deref().is_some_and(|e| e.starts_with("too_large")),
        "the venta says why: {row:?}"
    );
    let log = sidecar.log_text();
    let reloaded = log.lines().find(|line| line.contains("configuration reloaded")).unwrap();
    assert!(reloaded.contains("validation.max_bytes"), "the reload names what it applied: {reloaded}");
    sidecar.assert_running();
    world.cleanup().await;
}

/// Issue 24 item 8: `watch.poll_interval_ms` used to wait for a restart unannounced; a reload
/// now starts the watcher again in the new mode, and files keep moving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_switches_the_watcher_to_polling_and_back() {
    let world = World::new(Backend::Postgres).await;
    let config = world.config().write();
    let mut sidecar = Sidecar::start(&config, &[], &[]);
    sidecar.wait_watching().await;
    world.config().set("watch.poll_interval_ms", 200).write();
    reload(&sidecar, 1).await;
    let polling = backlog(&world, "polling", 1).await;
    eventually("a file moved while polling", WAIT, || async {
        (moved_count(&world, &polling).await == 1).then_some(())
    })
    .await;
    world.config().write();
    reload(&sidecar, 2).await;
    let log = sidecar.log_text();
    let switched: Vec<&str> =
        log.lines().filter(|line| line.contains("started again in its new mode")).collect();
    assert_eq!(switched.len(), 2, "{log}");
    assert!(switched[0].contains("polling every 200 ms") && switched[1].contains("inotify"), "{switched:?}");
    let reloaded = log.lines().find(|line| line.contains("configuration reloaded")).unwrap();
    assert!(reloaded.contains("watch.poll_interval_ms"), "{reloaded}");
    let after = backlog(&world, "inotify", 1).await;
    eventually("a file moved with inotify again", WAIT, || async {
        (moved_count(&world, &after).await == 1).then_some(())
    })
    .await;
    sidecar.assert_running();
    world.cleanup().await;
}

/// Issue 24 item 8: a key that cannot change live is named, with its old and new value (a
/// database URL without its password), as taking effect after a restart; a retired key is
/// named as having no effect; a config that does not load changes nothing and says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_names_each_key_that_needs_a_restart_and_keeps_a_broken_config_out() {
    let world = World::new(Backend::Postgres).await;
    let config = world.config().write();
    let mut sidecar = Sidecar::start(&config, &[], &[]);
    sidecar.wait_watching().await;

    world.config().set("validation.max_byts", 1_000).write();
    reload(&sidecar, 1).await;
    let log = sidecar.log_text();
    let failed = log.lines().find(|line| line.contains("reload failed")).unwrap_or_else(|| panic!("{log}"));
    assert!(failed.contains("keeping the running configuration"), "{failed}");
    // `toml`'s message, with the line it quotes, follows on the next lines.
    assert!(log.contains("unknown field `max_byts`"), "the error names the key:\n{log}");

    let mut with_password = url::Url::parse(&world.db.url()).unwrap();
    with_password.set_password(Some("hunter2")).unwrap();
    world
        .config()
        .set("database.url", with_password.to_string())
        .set("database.pool_size", 7)
        .set("journal.path", world.temp.path().join("elsewhere.sqlite3").display().to_string())
        .set("watch.missing_after_s", 60)
        .write();
    reload(&sidecar, 2).await;
    let log = sidecar.log_text();
    let restart_lines: Vec<&str> =
        log.lines().filter(|line| line.contains("takes effect after a restart")).collect();
    let line_for = |key: &str| {
        restart_lines
            .iter()
            .find(|line| line.contains(&format!("key={key} ")))
            .unwrap_or_else(|| panic!("no restart warning for {key}:\n{log}"))
            .to_string()
    };
    let pool = line_for("database.pool_size");
    assert!(pool.contains("old=4") && pool.contains("new=7"), "{pool}");
    line_for("database.url");
    line_for("journal.path");
    assert!(!log.contains("hunter2"), "a password reached the log:\n{log}");
    assert!(
        log.lines()
            .any(|line| line.contains("watch.missing_after_s") && line.contains("no longer has any effect")),
        "the retired key is named:\n{log}"
    );

    // Nothing live changed, and the daemon goes on with the database it started with.
    let files = backlog(&world, "restart", 1).await;
    eventually("files still move", WAIT, || async { (moved_count(&world, &files).await == 1).then_some(()) })
        .await;
    sidecar.assert_running();
    world.cleanup().await;
}

/// The systemd protocol (`Type=notify`, `WatchdogSec=`), sent through the `sd-notify` crate,
/// heard by a datagram socket standing in for systemd's: READY once the folder is watched,
/// STATUS lines, WATCHDOG=1 every WATCHDOG_USEC / 2 while nothing is stuck, RELOADING=1 and
/// READY=1 again on SIGHUP, STOPPING=1 on SIGTERM; and no pings for a WATCHDOG_PID that names
/// another process (the variables were meant for it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn systemd_hears_ready_status_watchdog_reload_and_stopping() {
    let world = World::new(Backend::Sqlite).await;
    let config = world.config().write();
    let notify = NotifySocket::bind(world.temp.path().join("notify.sock"));
    let socket = notify.path.display().to_string();
    let began = Instant::now();
    let env = [("NOTIFY_SOCKET", socket.as_str()), ("WATCHDOG_USEC", "2000000")];
    let mut sidecar = Sidecar::start(&config, &[], &env);
    notify.wait_for("READY=1", began, WAIT).await;
    let status = notify.wait_for("STATUS=", began, Duration::from_secs(10)).await;
    assert!(status.contains("moved 0, in flight 0"), "{status}");
    let ready = Instant::now();
    notify.wait_for("WATCHDOG=1", ready, Duration::from_secs(5)).await;

    unsafe { libc::kill(sidecar.child.id() as i32, libc::SIGHUP) };
    let reloading = notify.wait_for("RELOADING=1", ready, Duration::from_secs(10)).await;
    notify.wait_for("READY=1", ready, Duration::from_secs(10)).await;
    assert!(!reloading.contains("READY=1"), "READY=1 comes once the reload is done: {reloading:?}");
    let stopped = Instant::now();
    assert_eq!(sidecar.terminate(), Some(0), "{}", sidecar.log_text());
    notify.wait_for("STOPPING=1", stopped, Duration::from_secs(5)).await;

    let other = Instant::now();
    let mut sidecar = Sidecar::start(&config, &[], &[env[0], env[1], ("WATCHDOG_PID", "1")]);
    notify.wait_for("READY=1", other, WAIT).await;
    notify.wait_for("STATUS=", other, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(notify.pings(other, Instant::now()), 0, "pings for another process's watchdog");
    assert_eq!(sidecar.terminate(), Some(0));
    world.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_metrics_endpoint_serves_prometheus_text_with_counts_that_match_the_run() {
    let world = World::new(Backend::Postgres).await;
    let port = free_port();
    let config = world.config().set("metrics.listen", format!("127.0.0.1:{port}")).write();
    let _sidecar = Sidecar::start(&config, &[], &[]);
    let files = backlog(&world, "metrics", 12).await;
    eventually("files moved", WAIT, || async {
        (moved_count(&world, &files).await == files.len()).then_some(())
    })
    .await;
    let total_bytes: usize = files.iter().map(|(_, _, bytes)| bytes.len()).sum();

    let samples = eventually("metrics reflect the run", WAIT, || async {
        let output = std::process::Command::new("curl")
            .args(["-s", &format!("http://127.0.0.1:{port}/metrics")])
            .output()
            .ok()?;
        let text = String::from_utf8(output.stdout).ok()?;
        let lines = text.lines().map(|l| Ok(l.to_owned()));
        let scrape = prometheus_parse::Scrape::parse(lines)
            .expect("the endpoint serves text a Prometheus parser accepts");
        let moved = value(&scrape, "confronta_files_total", Some(("outcome", "moved")));
        (moved == Some(files.len() as f64)).then_some(scrape)
    })
    .await;
    assert_eq!(value(&samples, "confronta_bytes_total", None), Some(total_bytes as f64));
    assert_eq!(value(&samples, "confronta_up", Some(("service", "s3"))), Some(1.0));
    assert_eq!(value(&samples, "confronta_up", Some(("service", "db"))), Some(1.0));
    let uploads =
        samples.samples.iter().find(|s| s.metric == "confronta_upload_seconds").map(|s| match &s.value {
            prometheus_parse::Value::Histogram(buckets) => buckets.last().map(|b| b.count).unwrap_or(0.0),
            _ => -1.0,
        });
    assert_eq!(uploads, Some(files.len() as f64), "one upload timing per file");
    world.cleanup().await;
}

fn value(scrape: &prometheus_parse::Scrape, metric: &str, label: Option<(&str, &str)>) -> Option<f64> {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == metric)
        .find(|s| label.is_none_or(|(key, wanted)| s.labels.get(key) == Some(wanted)))
        .and_then(|s| match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => Some(v),
            _ => None,
        })
}

/// Issue 24 item 2: the start-up walk (one stat per file) no longer runs on the scheduler
/// loop. A backlog on a slow disk (a failpoint makes each entry take 300 ms: 45 files, 13 s,
/// six times `WATCHDOG_USEC`) once kept the loop from feeding systemd's watchdog until the
/// walk ended, so systemd killed a daemon that had moved nothing, at every start. Now the
/// walk streams its files in from a blocking thread: the watchdog is fed throughout and files
/// move before the walk ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_start_up_walk_keeps_the_watchdog_fed_and_files_moving_before_it_ends() {
    let world = World::new(Backend::Postgres).await;
    let config = world.config().write();
    // Five files with their rows, and forty no row names (they stay, so the walk has them all
    // to stat; the five move whether the walk or the start-up reconcile pass offers them).
    let files = backlog(&world, "lento", 5).await;
    for index in 0..40 {
        world.write_in_place(&format!("sin_fila_{index:03}.pdf"), &sample_bytes(20_000 + index, 1_000));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let notify = NotifySocket::bind(world.temp.path().join("notify.sock"));
    let socket = notify.path.display().to_string();
    let began = Instant::now();
    let env = [
        ("NOTIFY_SOCKET", socket.as_str()),
        ("WATCHDOG_USEC", "2000000"),
        ("FAILPOINTS", "walk_entry=return(300)"),
    ];
    let mut sidecar = Sidecar::start(&config, &[], &env);
    notify.wait_for("READY=1", began, WAIT).await;
    let ready = Instant::now();
    // Within the first six seconds (half the walk): fed at least every two seconds, files moved.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let early = Instant::now();
    let pings = notify.pings(ready, early);
    let moved_early = moved_count(&world, &files).await;
    let log = sidecar.log_text();
    assert!(!log.contains("walked folder"), "the walk was meant to be still going at 6 s:\n{log}");
    assert!(pings >= 3, "the watchdog was fed {pings} times in the walk's first 6 s:\n{log}");
    assert!(moved_early > 0, "no file moved in the walk's first 6 s:\n{log}");
    assert_eq!(moved_early, files.len(), "every file with a row moved in the walk's first 6 s:\n{log}");
    eventually("the walk's end", WAIT, || async {
        sidecar.log_text().contains("walked folder count=").then_some(())
    })
    .await;
    let log = sidecar.log_text();
    let counted = log.lines().find(|line| line.contains("walked folder count=")).unwrap_or_default();
    assert!(
        counted.contains("count=4"),
        "the walk found the forty files no row names (and any of the five left): {counted}"
    );
    assert_eq!(sidecar.terminate(), Some(0), "{}", sidecar.log_text());
    world.cleanup().await;
}
