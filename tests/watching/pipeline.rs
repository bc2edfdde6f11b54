//! End-to-end behaviour of the daemon: the real binary against real PostgreSQL (or SQLite)
//! and the real S3 test server.

use std::time::Duration;

use crate::common::*;

const WAIT: Duration = Duration::from_secs(60);

enum Write {
    InPlace,
    RenameIn,
}

/// The object name the default-shaped test template gives.
fn expected_object(world: &World, numero: &str, id: i64, bytes: &[u8], ext: &str) -> String {
    format!("{}/venta_{numero}_confronta_{id}_{}{ext}", world.prefix, &sha256_hex(bytes)[..12])
}

/// Waits until venta `id` is recorded, then checks the row, the object's bytes and that the
/// local file is gone.
async fn assert_moved(world: &World, id: i64, local: &std::path::Path, bytes: &[u8], object: &str) {
    let row = eventually(&format!("venta {id} recorded"), WAIT, || async {
        world.db.row(id).await.filter(|row| row.subido)
    })
    .await;
    let env = s3_env();
    assert_eq!(row.object_name.as_deref(), Some(object), "object name of venta {id}");
    assert_eq!(row.sha256.as_deref(), Some(sha256_hex(bytes).as_str()), "checksum of venta {id}");
    assert_eq!(row.url, Some(format!("{}/{}/{object}", env.endpoint, env.bucket)), "url of venta {id}");
    assert_eq!(row.confronta.as_deref(), Some(""), "local path cleared for venta {id}");
    assert!(world.object_bytes(object).await == bytes, "object bytes of venta {id} equal the original");
    eventually(&format!("{} removed", local.display()), WAIT, || async { (!local.exists()).then_some(()) })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moves_files_written_in_place_renamed_in_multipart_and_with_spanish_names() {
    let world = World::new(Backend::Postgres).await;
    let config = world
        .config()
        .set("minio.multipart_threshold_bytes", 5242880)
        .set("minio.part_size_bytes", 5242880)
        .write();
    let cases: Vec<(&str, &str, usize, Write)> = vec![
        ("en_sitio.pdf", ".pdf", 200_000, Write::InPlace),
        ("renombrado.png", ".png", 300_000, Write::RenameIn),
        ("grande.pdf", ".pdf", 12 * 1024 * 1024 + 5, Write::RenameIn),
        ("DNI señora Muñoz José ñandú.PDF", ".pdf", 70_000, Write::InPlace),
    ];
    let mut expectations = Vec::new();
    for (index, (_, ext, size, _)) in cases.iter().enumerate() {
        let numero = format!("PORTA-2024010112000{index}");
        // The venta first (its id names the object); its file is given to it below, as
        // Django's save does: the file, then the row.
        let id = world.db.insert_venta(&numero, None).await;
        let bytes = sample_bytes(index as u64, *size);
        let object = expected_object(&world, &numero, id, &bytes, ext);
        expectations.push((id, bytes, object));
    }
    let mut sidecar = Sidecar::start(&config, &[], &[]);
    let mut paths = Vec::new();
    for ((name, _, _, how), (id, bytes, _)) in cases.iter().zip(&expectations) {
        paths.push(match how {
            Write::InPlace => world.write_in_place(name, bytes),
            Write::RenameIn => world.rename_in(name, bytes),
        });
        world.db.assign(*id, &format!("confrontas/{name}")).await;
    }
    for ((id, bytes, object), path) in expectations.iter().zip(&paths) {
        assert_moved(&world, *id, path, bytes, object).await;
    }
    sidecar.assert_running();
    assert_eq!(world.objects_under_prefix().await.len(), cases.len(), "one object per file");
    world.cleanup().await;
}

/// A close after writing, or a rename in, is the writer saying it is done: such a file is taken
/// at once, whatever `settle_ms` says. A file found by the start-up walk has no such signal
/// and waits until its mtime is `settle_ms` old.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_file_is_taken_at_once_and_a_walked_one_waits_to_settle() {
    let world = World::new(Backend::Postgres).await;
    let config = world.config().set("watch.settle_ms", 60000).write();
    let walked_bytes = sample_bytes(30, 20_000);
    let walked = world.write_in_place("encontrado.pdf", &walked_bytes);
    let walked_id = world.db.insert_venta("PORTA-WALKED", Some("confrontas/encontrado.pdf")).await;
    let sidecar = Sidecar::start(&config, &[], &[]);
    sidecar.wait_watching().await;

    // The third is Django's order: the file first, the row a moment later. The daemon reaches
    // it before the row exists, and its retry must not fall back to waiting out settle_ms.
    let mut closed = Vec::new();
    let cases =
        [("cerrado.pdf", false, false), ("renombrado.pdf", true, false), ("fila_despues.pdf", false, true)];
    for (index, (name, rename, row_after)) in cases.into_iter().enumerate() {
        let numero = format!("PORTA-CLOSED-{index}");
        let confronta = format!("confrontas/{name}");
        let bytes = sample_bytes(31 + index as u64, 20_000);
        let path = if rename { world.rename_in(name, &bytes) } else { world.write_in_place(name, &bytes) };
        if row_after {
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        let id = world.db.insert_venta(&numero, Some(&confronta)).await;
        let object = expected_object(&world, &numero, id, &bytes, ".pdf");
        closed.push((id, bytes, object, path));
    }
    // Well inside the 60 s settle time: only the close (or rename) can have let them through.
    for (id, _, _, _) in &closed {
        eventually(&format!("venta {id} recorded"), Duration::from_secs(30), || async {
            world.db.row(*id).await.filter(|row| row.subido)
        })
        .await;
    }
    for (id, bytes, object, path) in &closed {
        assert_moved(&world, *id, path, bytes, object).await;
    }
    assert!(walked.exists(), "the walked file must wait out settle_ms");
    let row = world.db.row(walked_id).await.unwrap();
    assert!(!row.subido, "the walked file's row must not be recorded yet");
    drop(sidecar);
    world.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_waits_for_its_row_and_a_file_without_one_is_kept_as_an_orphan() {
    let world = World::new(Backend::Postgres).await;
    let config = world.config().set("watch.orphan_after_s", 1).write();
    let mut sidecar = Sidecar::start(&config, &[], &[]);

    let early = sample_bytes(10, 5_000);
    let early_path = world.write_in_place("antes_de_la_fila.jpg", &early);
    let lonely = sample_bytes(11, 5_000);
    let lonely_path = world.write_in_place("sin_fila.pdf", &lonely);

    // Django saves the file before the row commits; the row arrives a little later.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(early_path.exists(), "a file whose row has not committed yet is kept");
    let id = world.db.insert_venta("PORTA-EARLY", Some("confrontas/antes_de_la_fila.jpg")).await;
    let object = expected_object(&world, "PORTA-EARLY", id, &early, ".jpg");
    assert_moved(&world, id, &early_path, &early, &object).await;

    eventually("the orphan reported", WAIT, || async {
        sidecar.log_text().contains("orphan: no row points at this file").then_some(())
    })
    .await;
    assert!(lonely_path.exists(), "a file no row points at is never deleted");
    assert_eq!(std::fs::read(&lonely_path).unwrap(), lonely, "and never changed");
    sidecar.assert_running();
    world.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replaced_confronta_is_uploaded_and_the_old_object_retired() {
    let world = World::new(Backend::Postgres).await;
    let config = world.config().write();
    let _sidecar = Sidecar::start(&config, &[], &[]);

    let first = sample_bytes(20, 40_000);
    let first_path = world.write_in_place("original.pdf", &first);
    let id = world.db.insert_venta("PORTA-CORR", Some("confrontas/original.pdf")).await;
    let first_object = expected_object(&world, "PORTA-CORR", id, &first, ".pdf");
    assert_moved(&world, id, &first_path, &first, &first_object).await;

    // The venta is corrected: Django saves a new file and points the row at it.
    let second = sample_bytes(21, 50_000);
    let second_path = world.write_in_place("corregido.pdf", &second);
    world.db.assign(id, "confrontas/corregido.pdf").await;
    let second_object = expected_object(&world, "PORTA-CORR", id, &second, ".pdf");
    assert_moved(&world, id, &second_path, &second, &second_object).await;

    let objects = eventually("old object deleted", WAIT, || async {
        let objects = world.objects_under_prefix().await;
        (!objects.contains(&first_object)).then_some(objects)
    })
    .await;
    assert_eq!(objects, vec![second_object], "only the new object remains");
    world.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_deleted_mid_flight_keeps_the_file_for_the_next_row_and_the_object_for_the_orphan_report() {
    let world = World::new(Backend::Postgres).await;
    let config = world.config().write();
    // Pause between verify and record so the row can vanish in between.
    let mut sidecar = Sidecar::start(&config, &[], &[("FAILPOINTS", "before_record=return(3000)")]);

    let bytes = sample_bytes(30, 30_000);
    let path = world.write_in_place("borrada.pdf", &bytes);
    let id = world.db.insert_venta("PORTA-GONE", Some("confrontas/borrada.pdf")).await;
    let object = expected_object(&world, "PORTA-GONE", id, &bytes, ".pdf");
    eventually("object uploaded", WAIT, || async {
        world.objects_under_prefix().await.contains(&object).then_some(())
    })
    .await;
    world.db.execute(&format!("DELETE FROM telefonica_ventaportabilidad WHERE id = {id}")).await;

    eventually("row change noticed", WAIT, || async {
        sidecar.log_text().contains("was deleted or its confronta replaced").then_some(())
    })
    .await;
    assert_eq!(std::fs::read(&path).unwrap(), bytes, "the local file is kept, unchanged");
    assert!(world.db.row(id).await.is_none(), "no row was resurrected");
    assert_eq!(world.object_bytes(&object).await, bytes, "the object stays for the orphan report");
    sidecar.assert_running();

    // The kept file is not given up for the rest of the run: the next save that assigns it
    // (here a new sale; `adopt` works the same way) takes it without a restart.
    let next = world.db.insert_venta("PORTA-NEXT", Some("confrontas/borrada.pdf")).await;
    eventually("the kept file moves to the next row that names it", WAIT, || async {
        (!path.exists()).then_some(())
    })
    .await;
    let row = world.db.row(next).await.unwrap();
    assert!(row.subido, "{row:?}");
    assert_eq!(row.sha256.as_deref(), Some(sha256_hex(&bytes).as_str()));
    world.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_while_files_are_in_flight_then_restart_records_every_file_exactly_once() {
    let world = World::new(Backend::Postgres).await;
    let config = world.config().write();
    const FILES: usize = 40;
    let mut expected = Vec::new();
    for index in 0..FILES {
        let numero = format!("PORTA-K{index:03}");
        let name = format!("kill_{index:03}.pdf");
        let bytes = sample_bytes(1000 + index as u64, 20_000 + index * 100);
        let path = world.write_in_place(&name, &bytes);
        let id = world.db.insert_venta(&numero, Some(&format!("confrontas/{name}"))).await;
        let object = expected_object(&world, &numero, id, &bytes, ".pdf");
        expected.push((id, path, bytes, object));
    }

    // Slow every step down so that the kill lands with files between upload and removal.
    let mut first = Sidecar::start(
        &config,
        &[],
        &[("FAILPOINTS", "after_upload=return(150);before_record=return(150);after_record=return(150)")],
    );
    eventually("some files moved", WAIT, || async {
        let mut moved = 0;
        for (id, ..) in &expected {
            if world.db.row(*id).await.is_some_and(|row| row.subido) {
                moved += 1;
            }
        }
        (moved >= 5).then_some(())
    })
    .await;
    first.kill9();
    let moved_before: usize = {
        let mut moved = 0;
        for (_, path, ..) in &expected {
            moved += usize::from(!path.exists());
        }
        moved
    };
    assert!(moved_before < FILES, "the kill must land before the end of the run");

    let mut second = Sidecar::start(&config, &[], &[]);
    for (id, path, bytes, object) in &expected {
        assert_moved(&world, *id, path, bytes, object).await;
    }
    second.assert_running();
    let mut objects = world.objects_under_prefix().await;
    objects.sort();
    let mut wanted: Vec<String> = expected.iter().map(|(.., object)| object.clone()).collect();
    wanted.sort();
    assert_eq!(objects, wanted, "exactly one object per file, nothing extra");
    world.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moves_a_file_with_the_embedded_sqlite_database() {
    let world = World::new(Backend::Sqlite).await;
    let config = world.config().write();
    let _sidecar = Sidecar::start(&config, &[], &[]);
    let bytes = sample_bytes(40, 10_000);
    let path = world.write_in_place("sqlite.png", &bytes);
    let id = world.db.insert_venta("PORTA-SQLITE", Some("confrontas/sqlite.png")).await;
    let object = expected_object(&world, "PORTA-SQLITE", id, &bytes, ".png");
    assert_moved(&world, id, &path, &bytes, &object).await;
    world.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_up_names_the_missing_column_and_exits_with_the_database_code() {
    let world = World::new(Backend::Postgres).await;
    world.db.execute("ALTER TABLE telefonica_ventaportabilidad DROP COLUMN confronta_sha256").await;
    let config = world.config().write();
    let (code, _, stderr) = Sidecar::run(&config, &["check"]);
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains("missing column confronta_sha256"), "{stderr}");
    world.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_up_refuses_a_missing_bucket_and_an_unknown_config_key() {
    let world = World::new(Backend::Sqlite).await;
    let config = world.config().set("minio.bucket", "no-such-bucket-here").write();
    let (code, _, stderr) = Sidecar::run(&config, &["check"]);
    assert_eq!(code, 4, "{stderr}");
    assert!(stderr.contains("no-such-bucket-here"), "{stderr}");

    let config = world.config().set("watch.setle_ms", 5).write();
    let (code, _, stderr) = Sidecar::run(&config, &["check"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("unknown field `setle_ms`"), "{stderr}");
    assert!(!stderr.contains(&s3_env().secret_key), "the secret never reaches the output");

    let config = world.config().set("surprise.key", 1).write();
    let (code, _, stderr) = Sidecar::run(&config, &["check"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("unknown field `surprise`"), "{stderr}");
}

/// Issue 12, item 8: a database password or the S3 secret key in a file every local user can
/// read is refused before anything connects, and the password never reaches the output.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_up_refuses_a_password_or_secret_key_others_can_read() {
    use std::os::unix::fs::PermissionsExt;
    let chmod = |path: &std::path::Path, mode: u32| {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap()
    };
    let world = World::new(Backend::Sqlite).await;
    let config = world.config().write();
    let text = std::fs::read_to_string(&config).unwrap();
    let sqlite_url = world.db.url();
    // Nothing listens on port 1: once the file's mode is right, the connection is what fails.
    let passwords = [
        "postgres://crm:hunter2@127.0.0.1:1/crm",
        "postgres://crm@127.0.0.1:1/crm?password=hunter2",
        "postgres://crm@127.0.0.1:1/crm?sslmode=disable&password=hunter2",
    ];
    for url in passwords {
        std::fs::write(&config, text.replace(&sqlite_url, url)).unwrap();
        chmod(&config, 0o644);
        let (code, _, stderr) = Sidecar::run(&config, &["check"]);
        assert_eq!(code, 2, "{url}: {stderr}");
        assert!(stderr.contains(&config.display().to_string()), "{url}: names the file: {stderr}");
        assert!(stderr.contains("644") && stderr.contains("chmod 640"), "{url}: {stderr}");
        assert!(!stderr.contains("hunter2"), "{url}: {stderr}");
        chmod(&config, 0o640);
        let (code, _, stderr) = Sidecar::run(&config, &["check"]);
        assert_eq!(code, 3, "{url}: with mode 640 the config is taken: {stderr}");
        assert!(!stderr.contains("hunter2"), "{url}: the connection error redacts it: {stderr}");
    }

    std::fs::write(&config, &text).unwrap();
    let secret_file = world.temp.path().join("minio-secret");
    chmod(&secret_file, 0o644);
    let (code, _, stderr) = Sidecar::run(&config, &["check"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains(&secret_file.display().to_string()), "names the secret file: {stderr}");
    assert!(stderr.contains("644") && stderr.contains("chmod 640"), "{stderr}");
    assert!(!stderr.contains(&s3_env().secret_key), "{stderr}");
    chmod(&secret_file, 0o640);
    let (code, stdout, stderr) = Sidecar::run(&config, &["check"]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polling_mode_moves_files_without_inotify() {
    let world = World::new(Backend::Postgres).await;
    // A long reconcile interval, so only the poller can find the file in time.
    let config =
        world.config().set("watch.poll_interval_ms", 200).set("watch.reconcile_interval_s", 3600).write();
    let _sidecar = Sidecar::start(&config, &[], &[]);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let bytes = sample_bytes(50, 8_000);
    let path = world.write_in_place("sondeo.pdf", &bytes);
    let id = world.db.insert_venta("PORTA-POLL", Some("confrontas/sondeo.pdf")).await;
    let object = expected_object(&world, "PORTA-POLL", id, &bytes, ".pdf");
    assert_moved(&world, id, &path, &bytes, &object).await;
    world.cleanup().await;
}
