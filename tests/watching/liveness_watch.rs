//! Issue 17, items 5 to 7: the watcher keeps hearing the folder when it is removed and made
//! again, a dead watcher thread neither spins the loop nor stays dead, a file with an mtime in
//! the future waits `settle_ms` and no longer, and a multipart upload that lost a part resumes
//! from that part. The real binary against real PostgreSQL and the real S3 test server.

use std::time::{Duration, Instant};

use crate::common::*;

const WAIT: Duration = Duration::from_secs(60);

/// The object name the default-shaped test template gives.
fn expected_object(world: &World, numero: &str, id: i64, bytes: &[u8], ext: &str) -> String {
    format!("{}/venta_{numero}_confronta_{id}_{}{ext}", world.prefix, &sha256_hex(bytes)[..12])
}

/// Waits until venta `id` is recorded with `object` and its local file is gone.
async fn wait_moved(world: &World, id: i64, local: &std::path::Path, object: &str, limit: Duration) {
    let row = eventually(&format!("venta {id} recorded"), limit, || async {
        world.db.row(id).await.filter(|row| row.subido)
    })
    .await;
    assert_eq!(row.object_name.as_deref(), Some(object), "object name of venta {id}");
    eventually(&format!("{} removed", local.display()), limit, || async { (!local.exists()).then_some(()) })
        .await;
}

/// Lines of the daemon's log that contain every one of `needles`.
fn log_lines(sidecar: &Sidecar, needles: &[&str]) -> Vec<String> {
    sidecar
        .log_text()
        .lines()
        .filter(|line| needles.iter().all(|needle| line.contains(needle)))
        .map(str::to_owned)
        .collect()
}

/// Issue 17, item 5: `mv confrontas x && mkdir confrontas` left the daemon deaf to the new
/// folder (a file with a row moved only at the next reconcile pass, one without a row was never
/// seen). Reconcile passes are ten minutes apart here: only the watcher can find them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_folder_moved_away_and_made_again_is_watched_again() {
    let world = World::new(Backend::Postgres).await;
    let config = world.config().set("watch.reconcile_interval_s", 600).write();
    let mut sidecar = Sidecar::start(&config, &[], &[]);
    sidecar.wait_watching().await;

    std::fs::rename(world.dir(), world.media_root.join("x")).unwrap();
    std::fs::create_dir(world.dir()).unwrap();
    let began = Instant::now();
    let bytes = sample_bytes(70, 30_000);
    let with_row = world.write_in_place("con_fila.pdf", &bytes);
    let id = world.db.insert_venta("PORTA-REHECHA", Some("confrontas/con_fila.pdf")).await;
    let lonely = world.write_in_place("sin_fila.pdf", &sample_bytes(71, 30_000));

    let object = expected_object(&world, "PORTA-REHECHA", id, &bytes, ".pdf");
    // Generous for a loaded 2-core machine; before the fix it waited for the reconcile pass.
    wait_moved(&world, id, &with_row, &object, Duration::from_secs(10)).await;
    let moved_after = began.elapsed();
    eventually("the file without a row seen", Duration::from_secs(10), || async {
        (!log_lines(&sidecar, &["sin_fila.pdf", "no row points at this file yet"]).is_empty()).then_some(())
    })
    .await;
    let seen_after = began.elapsed();
    eprintln!(
        "recreated folder: with row moved after {moved_after:?}, without row seen after {seen_after:?}"
    );
    assert!(lonely.exists(), "a file without a row is kept");
    assert!(
        !log_lines(&sidecar, &["watching the folder again"]).is_empty(),
        "the daemon says it watches the new folder"
    );
    sidecar.assert_running();
    world.cleanup().await;
}

/// Issue 17, item 6: a file whose mtime is ten minutes ahead (a clock stepped back, a copy that
/// kept its source's time) stalled until the wall clock caught up. It now waits `settle_ms` of
/// monotonic time, and one line says why it waited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_with_an_mtime_in_the_future_waits_settle_ms_and_is_logged_once() {
    let world = World::new(Backend::Postgres).await;
    let config = world.config().set("watch.settle_ms", 1000).set("watch.reconcile_interval_s", 600).write();
    let mut sidecar = Sidecar::start(&config, &[], &[]);
    sidecar.wait_watching().await;

    let bytes = sample_bytes(72, 30_000);
    let outside = world.temp.path().join("futuro.pdf");
    std::fs::write(&outside, &bytes).unwrap();
    let touched =
        std::process::Command::new("touch").arg("-d").arg("+10 min").arg(&outside).status().unwrap();
    assert!(touched.success(), "touch -d '+10 min'");
    let path = world.dir().join("futuro.pdf");
    // And one without a row: its lookups are retried, and its warning must not be.
    let lonely = world.temp.path().join("futuro_sin_fila.pdf");
    std::fs::write(&lonely, sample_bytes(75, 30_000)).unwrap();
    let touched = std::process::Command::new("touch").arg("-d").arg("+10 min").arg(&lonely).status().unwrap();
    assert!(touched.success(), "touch -d '+10 min'");
    std::fs::rename(&lonely, world.dir().join("futuro_sin_fila.pdf")).unwrap();
    let began = Instant::now();
    std::fs::rename(&outside, &path).unwrap();
    let id = world.db.insert_venta("PORTA-FUTURO", Some("confrontas/futuro.pdf")).await;

    let object = expected_object(&world, "PORTA-FUTURO", id, &bytes, ".pdf");
    wait_moved(&world, id, &path, &object, Duration::from_secs(30)).await;
    let took = began.elapsed();
    eprintln!("future mtime: moved after {took:?} (settle_ms 1000)");
    // It still waited out its settle time: its mtime says nothing about when writing stopped.
    assert!(took >= Duration::from_millis(900), "taken after {took:?}, before settle_ms");
    let lines = log_lines(&sidecar, &["futuro.pdf", "mtime is in the future"]);
    assert_eq!(lines.len(), 1, "one line says the mtime is in the future: {lines:#?}");
    // Its row is looked for again at 10 ms, doubling to retry_max_s (2 s): about eight times
    // in the next three seconds, each of which once logged the warning again.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let lines = log_lines(&sidecar, &["futuro_sin_fila.pdf", "mtime is in the future"]);
    assert_eq!(lines.len(), 1, "its future mtime is logged once, not per retry: {lines:#?}");
    sidecar.assert_running();
    world.cleanup().await;
}

/// Issue 17, item 5: a watcher thread that ended left the loop polling a closed channel, a busy
/// loop on a core. Now the loop starts a new watcher (and walks the folder), and never spins.
#[cfg(feature = "failpoints")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_watcher_is_started_again_and_never_spins_the_loop() {
    let world = World::new(Backend::Postgres).await;
    let config = world.config().set("watch.reconcile_interval_s", 600).write();
    let mut sidecar = Sidecar::start(&config, &[], &[("FAILPOINTS", "watcher_thread=1*return")]);
    sidecar.wait_watching().await;
    eventually("the watcher's end noticed", WAIT, || async {
        (!log_lines(&sidecar, &["folder watcher stopped"]).is_empty()).then_some(())
    })
    .await;

    // CPU time of the whole daemon over a few idle seconds; a busy loop burns a core.
    let cpu = |pid: u32| {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        let after_name = &stat[stat.rfind(')').unwrap() + 2..];
        let fields: Vec<&str> = after_name.split(' ').collect();
        // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
        let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
        Duration::from_millis(ticks * 1000 / 100)
    };
    let pid = sidecar.child.id();
    let before = cpu(pid);
    tokio::time::sleep(Duration::from_secs(4)).await;
    let used = cpu(pid) - before;
    eprintln!("dead watcher: {used:?} of CPU over 4 s idle");
    assert!(used < Duration::from_millis(500), "the idle daemon used {used:?} of CPU in 4 s: a busy loop");

    // The new watcher hears a file written now (reconcile passes are ten minutes apart).
    let bytes = sample_bytes(73, 30_000);
    let path = world.write_in_place("vigia.pdf", &bytes);
    let id = world.db.insert_venta("PORTA-VIGIA", Some("confrontas/vigia.pdf")).await;
    let object = expected_object(&world, "PORTA-VIGIA", id, &bytes, ".pdf");
    wait_moved(&world, id, &path, &object, Duration::from_secs(20)).await;
    sidecar.assert_running();
    world.cleanup().await;
}

/// Issue 17, item 7: one failed part restarted the whole upload. Now the parts the server
/// already holds are not sent again: part 3 of 3 fails once, and three parts are sent in all.
#[cfg(feature = "failpoints")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multipart_upload_resumes_from_the_part_that_failed() {
    let world = World::new(Backend::Postgres).await;
    let config = world
        .config()
        .set("minio.multipart_threshold_bytes", 5242880)
        .set("minio.part_size_bytes", 5242880)
        .write();
    // The third part sent fails, once.
    let mut sidecar = Sidecar::start(&config, &[], &[("FAILPOINTS", "upload_part=2*off->1*return")]);
    sidecar.wait_watching().await;

    let bytes = sample_bytes(74, 2 * 5 * 1024 * 1024 + 1_000);
    let path = world.rename_in("partes.pdf", &bytes);
    let id = world.db.insert_venta("PORTA-PARTES", Some("confrontas/partes.pdf")).await;
    let object = expected_object(&world, "PORTA-PARTES", id, &bytes, ".pdf");
    wait_moved(&world, id, &path, &object, WAIT).await;
    assert!(world.object_bytes(&object).await == bytes, "the object holds the file's bytes");

    let failed = log_lines(&sidecar, &["failpoint upload_part"]);
    assert!(!failed.is_empty(), "the failpoint failed a part");
    let sent = log_lines(&sidecar, &["part uploaded", &object]);
    assert_eq!(sent.len(), 3, "parts sent (1 and 2 once, 3 after its failure): {sent:#?}");
    assert!(!log_lines(&sidecar, &["resuming the multipart upload", &object]).is_empty());
    sidecar.assert_running();
    world.cleanup().await;
}

/// Issue 17, item 7: `check` says the largest file the settings allow and how it goes up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_says_the_largest_file_the_settings_allow() {
    let world = World::new(Backend::Postgres).await;
    let config = world.config().write();
    let (code, stdout, stderr) = Sidecar::run(&config, &["check"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stdout.contains("largest file: 50.00 MiB (validation.max_bytes); files over 5.00 MiB go up in parts of 5.00 MiB, the largest in 10 parts"),
        "{stdout}"
    );
    world.cleanup().await;
}
