//! The operator's commands against real PostgreSQL and the S3 test server: `--rescan` with
//! `--dry-run` and `--limit`, `verify`, `orphans`, `presign`, `status`; and what start-up does
//! with a journal it cannot open.

use std::path::Path;
use std::time::Duration;

use crate::common::*;
use confronta_sync::hash::{hash_file, Sha256Digest};
use confronta_sync::journal::{EntryFixture, FileState, Journal};
use confronta_sync::media_path::RelativeMediaPath;
use confronta_sync::store::{ObjectStore, UploadRequest};
use futures_util::StreamExt;

/// Everything an operator command could change: the table, the objects, the folder, the journal.
async fn snapshot(world: &World) -> (Vec<Option<Row>>, Vec<String>, Vec<(String, Vec<u8>)>, Option<Vec<u8>>) {
    let mut rows = Vec::new();
    for id in 1..=40 {
        rows.push(world.db.row(id).await);
    }
    let mut objects = world.objects_under_prefix().await;
    objects.sort();
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(world.dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(&p).unwrap()))
        .collect();
    files.sort();
    let journal = std::fs::read(world.journal_path()).ok();
    (rows, objects, files, journal)
}

/// An object name the test config's template could have made (`orphans` lists only those):
/// venta `numero`, id `id`, and a checksum part made from the id.
fn our_name(world: &World, numero: &str, id: i64) -> String {
    format!("{}/venta_{numero}_confronta_{id}_{id:012x}.pdf", world.prefix)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rescan_dry_run_changes_nothing_limit_moves_exactly_n_and_a_full_run_reports_the_missing_file() {
    let world = World::new(Backend::Postgres).await;
    let config = world.config().write();
    const FILES: usize = 25;
    for index in 0..FILES {
        let name = format!("backlog_{index:02}.pdf");
        world.write_in_place(&name, &sample_bytes(500 + index as u64, 3_000 + index));
        world.db.insert_venta(&format!("PORTA-B{index:02}"), Some(&format!("confrontas/{name}"))).await;
    }
    world.write_in_place("huerfano.pdf", b"no row points at me");
    let missing = world.db.insert_venta("PORTA-MISSING", Some("confrontas/no_existe.pdf")).await;
    // Let every file be older than settle_ms, as a real backlog is.
    tokio::time::sleep(Duration::from_millis(200)).await;

    let before = snapshot(&world).await;
    let (code, stdout, stderr) = Sidecar::run(&config, &["--rescan", "--dry-run"]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert_eq!(stdout.matches("would upload to").count(), FILES, "{stdout}");
    assert!(
        stdout.contains("confrontas/huerfano.pdf  no venta  -  would skip: no row points at this file"),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("venta {missing} points at a local file that does not exist")),
        "{stdout}"
    );
    // The same answer as one JSON document (written file by file, so it is checked whole here).
    let (code, stdout, stderr) = Sidecar::run(&config, &["--rescan", "--dry-run", "--json"]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let plan: serde_json::Value =
        serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}\n{stderr}"));
    assert_eq!(plan["dry_run"], true, "{plan}");
    assert_eq!(plan["would_move"], FILES, "{plan}");
    assert_eq!(plan["would_skip"], 1, "{plan}");
    assert_eq!(plan["files"].as_array().map(Vec::len), Some(FILES + 1), "{plan}");
    assert_eq!(plan["files"][0]["path"].as_str().map(|p| p.starts_with("confrontas/")), Some(true), "{plan}");
    assert!(plan["rows_missing_their_file"].to_string().contains(&format!("venta {missing}")), "{plan}");
    // No file at all is still one valid document.
    let (code, stdout, stderr) = Sidecar::run(&config, &["--rescan", "--dry-run", "--json", "--limit", "0"]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let empty: serde_json::Value =
        serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}\n{stderr}"));
    assert_eq!(empty["files"], serde_json::json!([]), "{empty}");
    assert_eq!(empty["would_move"], 0, "{empty}");
    assert_eq!(
        snapshot(&world).await,
        before,
        "--dry-run changed the table, the bucket, the folder or the journal"
    );

    let (code, stdout, stderr) = Sidecar::run(&config, &["--rescan", "--limit", "10", "--json"]);
    let summary: serde_json::Value =
        serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}\n{stderr}"));
    assert_eq!(summary["moved"], 10, "{summary}");
    assert_eq!(world.objects_under_prefix().await.len(), 10, "exactly ten objects after --limit 10");
    let local_left = std::fs::read_dir(world.dir()).unwrap().count();
    assert_eq!(local_left, FILES + 1 - 10, "exactly ten local files removed");
    assert_eq!(code, 1, "the row with a missing file is a failure: {summary}");

    let (code, stdout, stderr) = Sidecar::run(&config, &["--rescan"]);
    assert_eq!(code, 1, "a row whose local file is missing makes the run fail\n{stdout}\n{stderr}");
    assert!(stdout.contains(&format!("{} succeeded", FILES - 10)), "{stdout}");
    assert!(stdout.contains("confrontas/no_existe.pdf: local_file_missing"), "{stdout}");
    assert!(stdout.contains("confrontas/huerfano.pdf: no_row"), "{stdout}");
    assert_eq!(world.objects_under_prefix().await.len(), FILES, "every file with a row is in the bucket");
    let left: Vec<String> = std::fs::read_dir(world.dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left, vec!["huerfano.pdf".to_owned()], "only the orphan is left");
    assert_eq!(
        world.db.row(missing).await.unwrap().confronta.as_deref(),
        Some("confrontas/no_existe.pdf"),
        "row untouched"
    );

    let (code, stdout, _) = Sidecar::run(&config, &["status", "--json"]);
    assert_eq!(code, 0);
    let status: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(status["rows_in_minio"], FILES as i64, "{status}");
    assert_eq!(status["rows_local"], 1, "{status}");
    assert_eq!(status["journal_states"]["removed"], FILES as i64, "{status}");
    assert_eq!(status["uploads_timed"], FILES as i64, "{status}");
    world.cleanup().await;
}

/// Issue 12 item 6: a journal SQLite cannot lock at start-up (another program holds it) is not
/// corrupt. It used to be moved aside and rebuilt empty, and the daemon ran on without its
/// entries; now it is left as it is and the daemon exits 5 naming it.
/// Issue 27 item 4: the rescan's progress bar was created and never advanced. It observes the
/// scheduler's events now; stderr is no terminal here, so `CONFRONTA_SYNC_PROGRESS=lines` draws
/// each state of the bar as a line, and the output shows it move from 0 to every file, a file
/// at a time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rescan_s_progress_bar_moves_a_file_at_a_time_to_the_end() {
    let world = World::new(Backend::Postgres).await;
    let config = world.config().write();
    const FILES: u64 = 6;
    for index in 0..FILES {
        let name = format!("barra_{index:02}.pdf");
        world.write_in_place(&name, &sample_bytes(700 + index, 2_000 + index as usize));
        world.db.insert_venta(&format!("PORTA-P{index:02}"), Some(&format!("confrontas/{name}"))).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;

    let (code, stdout, stderr) =
        Sidecar::run_with(&config, &["--rescan"], &[("CONFRONTA_SYNC_PROGRESS", "lines")]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(stdout.contains(&format!("{FILES} succeeded")), "{stdout}");
    // "{bar} 3/6 files  00:00:00  eta 0s": the position before "files".
    let positions: Vec<(u64, u64)> = stderr
        .lines()
        .filter_map(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            let at = words.iter().position(|word| *word == "files")?;
            let (pos, len) = words.get(at.checked_sub(1)?)?.split_once('/')?;
            Some((pos.parse().ok()?, len.parse().ok()?))
        })
        .collect();
    assert!(positions.iter().all(|(_, len)| *len == FILES), "{positions:?}\n{stderr}");
    let steps: Vec<u64> = positions.iter().map(|(pos, _)| *pos).collect();
    assert!(steps.windows(2).all(|pair| pair[0] <= pair[1]), "the bar went back: {steps:?}");
    let mut seen = steps.clone();
    seen.dedup();
    assert_eq!(seen, (0..=FILES).collect::<Vec<_>>(), "the bar did not move a file at a time:\n{stderr}");

    // Without the variable, and no terminal, the bar is hidden: the output is the summary alone.
    world.write_in_place("otro.pdf", &sample_bytes(799, 2_000));
    world.db.insert_venta("PORTA-P99", Some("confrontas/otro.pdf")).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (code, stdout, stderr) = Sidecar::run(&config, &["--rescan"]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(!stderr.contains(" files  "), "a hidden bar drew:\n{stderr}");
    world.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_journal_locked_at_start_up_is_not_rebuilt_and_the_daemon_exits_5() {
    let world = World::new(Backend::Sqlite).await;
    let config = world.config().write();
    let journal_path = world.journal_path();
    let entry_path = RelativeMediaPath::parse("confrontas/en_curso.pdf").unwrap();
    {
        let journal = Journal::open(&journal_path).unwrap();
        let entry = EntryFixture { state: FileState::Hashed, ..EntryFixture::new(entry_path.clone(), 1_000) };
        journal.put(&entry.entry()).await.unwrap();
    }
    // SQLite's own lock on the database file (not the daemon's flock on journal.sqlite3.lock),
    // held the way a second program with the journal open in a transaction would.
    let holder = rusqlite::Connection::open(&journal_path).unwrap();
    holder.execute_batch("PRAGMA locking_mode = EXCLUSIVE; BEGIN EXCLUSIVE;").unwrap();
    holder.execute("UPDATE files SET attempts = attempts + 1", []).unwrap();

    let mut sidecar = Sidecar::start(&config, &[], &[]);
    let code = sidecar.wait_exit(Duration::from_secs(60));
    let log = sidecar.log_text();
    assert_eq!(code, Some(5), "the daemon must stop with the journal exit code\n{log}");
    assert!(log.contains(&journal_path.display().to_string()) && log.contains("locked"), "{log}");

    holder.execute_batch("ROLLBACK").unwrap();
    drop(holder);
    let state_dir: Vec<String> = std::fs::read_dir(journal_path.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(!state_dir.iter().any(|name| name.contains("corrupt")), "nothing moved aside: {state_dir:?}");
    let journal = Journal::open_read_only(&journal_path).unwrap();
    let kept = journal.get(&entry_path).await.unwrap().expect("the entry is still in the journal");
    assert_eq!(kept.state(), FileState::Hashed);
    world.cleanup().await;
}

/// Moves one file for venta `numero` through a rescan and returns (id, object name, bytes).
async fn moved_one(world: &World, config: &Path, name: &str, seed: u64) -> (i64, String, Vec<u8>) {
    let bytes = sample_bytes(seed, 12_345);
    world.write_in_place(name, &bytes);
    let id = world.db.insert_venta(&format!("PORTA-{seed}"), Some(&format!("confrontas/{name}"))).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (code, stdout, stderr) = Sidecar::run(config, &["--rescan"]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let object = world.db.row(id).await.unwrap().object_name.unwrap();
    (id, object, bytes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_catches_an_object_changed_behind_its_back() {
    let world = World::new(Backend::Postgres).await;
    let config = world.config().write();
    let (_, good_object, _) = moved_one(&world, &config, "bueno.pdf", 601).await;
    let (bad_id, bad_object, _) = moved_one(&world, &config, "malo.pdf", 602).await;

    let (code, stdout, _) = Sidecar::run(&config, &["verify"]);
    assert_eq!(code, 0, "{stdout}");
    assert!(stdout.contains("2 rows checked, 2 ok"), "{stdout}");

    // Someone overwrites the object with other bytes, bypassing the daemon.
    let tampered = world.temp.path().join("tampered.pdf");
    std::fs::write(&tampered, sample_bytes(999, 12_345)).unwrap();
    let hash = hash_file(&tampered, None).unwrap();
    let request = UploadRequest {
        path: &tampered,
        hash: &hash,
        content_type: "application/pdf",
        multipart_threshold: u64::MAX,
        part_size: 5 << 20,
        if_absent: false,
    };
    world.store.upload(&world.object(&bad_object), request).await.unwrap();

    for args in [&["verify"][..], &["verify", "--deep"][..]] {
        let (code, stdout, _) = Sidecar::run(&config, args);
        assert_eq!(code, 1, "{args:?}: {stdout}");
        assert!(stdout.contains(&format!("MISMATCH  venta {bad_id:>8}  {bad_object}")), "{args:?}: {stdout}");
        assert!(stdout.contains("ok        venta") && stdout.contains(&good_object), "{args:?}: {stdout}");
        assert!(stdout.contains("2 rows checked, 1 ok, 1 mismatched"), "{args:?}: {stdout}");
    }
    world.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orphans_finds_a_planted_object_and_file_and_deletes_only_the_unreferenced_object() {
    let world = World::new(Backend::Postgres).await;
    let config = world.config().write();
    let (_, referenced, _) = moved_one(&world, &config, "referenciado.pdf", 701).await;

    let planted_file = world.write_in_place("plantado.pdf", b"nobody's confronta");
    let planted_source = world.temp.path().join("planted-object");
    std::fs::write(&planted_source, b"an object no row references").unwrap();
    let hash = hash_file(&planted_source, None).unwrap();
    let planted_object = our_name(&world, "X", 0);
    let request = UploadRequest {
        path: &planted_source,
        hash: &hash,
        content_type: "application/pdf",
        multipart_threshold: u64::MAX,
        part_size: 5 << 20,
        if_absent: false,
    };
    world.store.upload(&world.object(&planted_object), request).await.unwrap();

    let (code, stdout, stderr) = Sidecar::run(&config, &["orphans", "--older-than", "0s"]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(stdout.contains("orphan file    confrontas/plantado.pdf"), "{stdout}");
    assert!(stdout.contains(&format!("orphan object  {planted_object}")), "{stdout}");
    assert!(!stdout.contains(&referenced), "a referenced object is no orphan: {stdout}");

    let (code, stdout, _) = Sidecar::run(&config, &["orphans", "--older-than", "0s", "--delete-objects"]);
    assert_eq!(code, 0, "{stdout}");
    assert!(stdout.contains(&format!("orphan object  {planted_object}  (deleted)")), "{stdout}");
    let objects = world.objects_under_prefix().await;
    assert_eq!(objects, vec![referenced], "only the unreferenced object was deleted");
    assert!(planted_file.exists(), "orphans never deletes a local file");

    let (_, stdout, _) = Sidecar::run(&config, &["orphans"]);
    assert!(stdout.contains("0 files, 0 objects"), "the default --older-than 1h hides fresh ones: {stdout}");
    world.cleanup().await;
}

fn curl(url: &str, out: &Path) -> String {
    let output = std::process::Command::new("curl")
        .args(["-s", "-o"])
        .arg(out)
        .args(["-w", "%{http_code}", url])
        .output()
        .expect("curl runs");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presign_serves_the_exact_bytes_until_it_expires() {
    let world = World::new(Backend::Postgres).await;
    let config = world.config().write();
    let (id, _, bytes) = moved_one(&world, &config, "presign.pdf", 801).await;

    let (code, stdout, stderr) =
        Sidecar::run(&config, &["presign", "--venta", &id.to_string(), "--expiry", "2s"]);
    assert_eq!(code, 0, "{stderr}");
    let url = stdout.trim().to_owned();
    let download = world.temp.path().join("download");
    assert_eq!(curl(&url, &download), "200");
    assert_eq!(Sha256Digest::of_bytes(&std::fs::read(&download).unwrap()), Sha256Digest::of_bytes(&bytes));

    tokio::time::sleep(Duration::from_secs(3)).await;
    let status = curl(&url, &download);
    assert!(status == "403" || status == "400", "an expired URL is refused, got HTTP {status}");

    let (code, _, stderr) = Sidecar::run(&config, &["presign", "--venta", &id.to_string(), "--expiry", "8d"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("expiry must be between 1s and 7d"), "{stderr}");
    let (code, _, stderr) = Sidecar::run(&config, &["presign", "--venta", "999999"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("venta 999999 does not exist"), "{stderr}");
    world.cleanup().await;
}

/// A rescan takes its walk a window of 1,024 files at a time (so a 100,000-file backlog is
/// never pending whole): a backlog larger than the window still moves every file, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rescan_larger_than_its_walk_window_moves_every_file() {
    const FILES: usize = 1_300;
    let world = World::new(Backend::Postgres).await;
    let config = world.config().write();
    world
        .db
        .execute(&format!(
            "INSERT INTO telefonica_ventaportabilidad (numero, confronta) \
             SELECT 'PORTA-W' || n, 'confrontas/ventana_' || n || '.pdf' FROM generate_series(1, {FILES}) AS n"
        ))
        .await;
    for n in 1..=FILES {
        std::fs::write(world.dir().join(format!("ventana_{n}.pdf")), sample_bytes(n as u64, 1_000)).unwrap();
    }
    // Older than settle_ms, as a real backlog is.
    tokio::time::sleep(Duration::from_millis(200)).await;

    let (code, stdout, stderr) = Sidecar::run(&config, &["--rescan", "--json"]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let summary: serde_json::Value =
        serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}\n{stderr}"));
    assert_eq!(summary["moved"], FILES, "{summary}");
    assert_eq!(std::fs::read_dir(world.dir()).unwrap().count(), 0, "every local file removed");
    assert_eq!(world.objects_under_prefix().await.len(), FILES, "one object per file");
    world.cleanup().await;
}

/// The binary with `CONFRONTA_SYNC_PAGE_ROWS` set, stdout piped for the test to read as it goes.
fn paged_command(config: &Path, args: &[&str], page_rows: usize) -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_confronta-sync"));
    command
        .arg("--config")
        .arg(config)
        .args(args)
        .env("CONFRONTA_SYNC_PAGE_ROWS", page_rows.to_string())
        .env_remove("CONFRONTA_SYNC_SECRET_KEY")
        .stdin(std::process::Stdio::null());
    command
}

/// Runs the binary to completion with `page_rows` rows a page; returns (exit code, stdout).
fn run_paged(config: &Path, args: &[&str], page_rows: usize) -> (i32, String) {
    let output = paged_command(config, args, page_rows).output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.code().is_some(), "{args:?} was killed: {stdout}");
    (output.status.code().unwrap(), stdout + &String::from_utf8_lossy(&output.stderr))
}

/// Uploads `bytes` as `object` the way the daemon does (with its checksum).
async fn put_object(world: &World, object: &str, bytes: &[u8]) -> String {
    let source = world.temp.path().join(format!("source-{}", unique("o")));
    std::fs::write(&source, bytes).unwrap();
    let hash = hash_file(&source, None).unwrap();
    let request = UploadRequest {
        path: &source,
        hash: &hash,
        content_type: "application/pdf",
        multipart_threshold: u64::MAX,
        part_size: 5 << 20,
        if_absent: false,
    };
    world.store.upload(&world.object(object), request).await.unwrap();
    std::fs::remove_file(&source).unwrap();
    hash.sha256.to_hex()
}

/// Issue 17 item 9: `verify` and `orphans` walk the table (and the listing) a page at a time.
/// With two rows a page, every row is checked exactly once, `--limit` stops mid-page, and
/// `orphans --delete-objects` deletes exactly the unreferenced objects of every listing page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_and_orphans_are_right_across_pages() {
    let world = World::new(Backend::Postgres).await;
    let config = world.config().write();
    let insert = |object: String, sha: String| {
        format!(
            "INSERT INTO telefonica_ventaportabilidad (numero, confronta, confronta_minio_object_name, \
             confronta_subido_a_minio, confronta_sha256) VALUES ('PORTA-P', '', '{object}', true, '{sha}')"
        )
    };
    let mut referenced = Vec::new();
    for n in 0..5 {
        let object = format!("{}/pagina_{n}.pdf", world.prefix);
        let sha = put_object(&world, &object, &sample_bytes(900 + n, 2_000)).await;
        world.db.execute(&insert(object.clone(), sha)).await;
        referenced.push(object);
    }
    // A row whose object is missing, and one whose object holds other bytes.
    world.db.execute(&insert(format!("{}/pagina_falta.pdf", world.prefix), "ab".repeat(32))).await;
    let changed = format!("{}/pagina_cambiada.pdf", world.prefix);
    put_object(&world, &changed, b"other bytes").await;
    world.db.execute(&insert(changed.clone(), "cd".repeat(32))).await;
    referenced.push(changed);
    // A row still local is not verified.
    world.db.insert_venta("PORTA-L", Some("confrontas/local.pdf")).await;
    let mut orphans = Vec::new();
    for n in 0..5 {
        let object = our_name(&world, "HUERFANO", n as i64);
        put_object(&world, &object, &sample_bytes(950 + n, 100)).await;
        orphans.push(object);
    }

    for args in [&["verify"][..], &["verify", "--deep"][..]] {
        let (code, out) = run_paged(&config, args, 2);
        assert_eq!(code, 1, "{args:?}: {out}");
        assert!(out.contains("verify: 7 rows checked, 5 ok, 2 mismatched"), "{args:?}: {out}");
        for object in &referenced[..5] {
            assert_eq!(out.matches(&format!("{object}  2000 bytes")).count(), 1, "{args:?} {object}: {out}");
        }
        assert_eq!(out.matches("MISMATCH").count(), 2, "{args:?}: {out}");
        assert!(out.contains("pagina_falta.pdf  -: object is missing"), "{args:?}: {out}");
        assert!(out.contains("pagina_cambiada.pdf  11 bytes"), "{args:?}: {out}");
    }
    let (code, out) = run_paged(&config, &["verify", "--limit", "3"], 2);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("verify: 3 rows checked, 3 ok, 0 mismatched"), "{out}");

    let (code, out) = run_paged(&config, &["orphans", "--older-than", "0s"], 2);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("0 files, 5 objects"), "{out}");
    for object in &orphans {
        assert_eq!(out.matches(&format!("orphan object  {object}\n")).count(), 1, "{object}: {out}");
    }
    for object in &referenced {
        assert!(!out.contains(object.as_str()), "{object} is referenced: {out}");
    }
    let (code, out) = run_paged(&config, &["orphans", "--older-than", "0s", "--delete-objects"], 2);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("0 files, 5 objects, 5 objects deleted"), "{out}");
    let mut left = world.objects_under_prefix().await;
    left.sort();
    let mut expected = referenced.clone();
    expected.sort();
    assert_eq!(left, expected, "exactly the unreferenced objects were deleted");
    world.cleanup().await;
}

/// Reads the child's stdout line by line; after the first line, runs `meanwhile` (while the
/// child, blocked on a full pipe, cannot have reached the end of its walk), then reads the
/// rest. Returns the whole output.
async fn read_streamed<F, Fut>(mut command: std::process::Command, meanwhile: F) -> (String, String)
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    use std::io::BufRead;
    let mut child =
        command.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    // The child cannot be more than a pipe buffer (64 KiB) and a page ahead of this reader.
    meanwhile().await;
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    child.wait().unwrap();
    (first + &rest, stderr)
}

/// Issue 17 item 9: `verify` printed nothing until it had read every row and checked every
/// object. Now the first line is out while later pages are still unread: a row added after
/// the first line was printed is still checked (with the whole table read up front, it was not).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_prints_as_it_goes_and_reads_later_pages_afterwards() {
    const ROWS: usize = 1_500;
    let world = World::new(Backend::Postgres).await;
    let config = world.config().write();
    // Long object names make each line ~270 bytes: 1,500 lines are six pipe buffers.
    world
        .db
        .execute(&format!(
            "INSERT INTO telefonica_ventaportabilidad (numero, confronta, confronta_minio_object_name, \
             confronta_subido_a_minio, confronta_sha256) \
             SELECT 'PORTA-S' || n, '', '{prefix}/' || lpad(n::text, 6, '0') || '_' || repeat('x', 200), true, \
             repeat('ab', 32) FROM generate_series(1, {ROWS}) AS n",
            prefix = world.prefix
        ))
        .await;
    let late = format!("{}/tarde.pdf", world.prefix);
    let (out, stderr) = read_streamed(paged_command(&config, &["verify"], 50), || async {
        world
            .db
            .execute(&format!(
                "INSERT INTO telefonica_ventaportabilidad (numero, confronta, confronta_minio_object_name, \
                 confronta_subido_a_minio, confronta_sha256) VALUES ('PORTA-T', '', '{late}', true, '{}')",
                "ab".repeat(32)
            ))
            .await;
    })
    .await;
    assert!(out.contains(&format!("{late}  -: object is missing")), "the later row was checked\n{stderr}");
    assert!(
        out.contains(&format!("verify: {} rows checked, 0 ok, {} mismatched", ROWS + 1, ROWS + 1)),
        "{stderr}"
    );
    world.cleanup().await;
}

/// Issue 17 item 9: `orphans` listed the whole prefix before printing an object. Now it prints
/// each listing page as it comes: an object added after the first line was printed (sorting
/// after every other) is still reported.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orphans_prints_as_it_goes_and_lists_later_pages_afterwards() {
    const OBJECTS: usize = 600;
    let world = World::new(Backend::Postgres).await;
    let config = world.config().write();
    let names: Vec<String> = (0..OBJECTS).map(|n| our_name(&world, &"Y".repeat(200), n as i64)).collect();
    futures_util::stream::iter(names.iter())
        .for_each_concurrent(16, |name| {
            let world = &world;
            async move {
                put_object(world, name, b"%PDF-1.7 orphan").await;
            }
        })
        .await;
    let late = our_name(&world, "ZZ", 999_999);
    let (out, stderr) =
        read_streamed(paged_command(&config, &["orphans", "--older-than", "0s"], 50), || async {
            put_object(&world, &late, b"%PDF-1.7 late").await;
        })
        .await;
    assert!(out.contains(&format!("orphan object  {late}\n")), "the later object was listed\n{stderr}");
    assert!(out.contains(&format!("0 files, {} objects", OBJECTS + 1)), "{stderr}");
    world.cleanup().await;
}

/// `verify | head`: once the reader has gone, the next line cannot be written. Printing with
/// `println!` panicked there ("failed printing to stdout", exit 101); now the walk stops, and
/// the command exits 1 without a panic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_stops_quietly_when_its_reader_goes_away() {
    use std::io::BufRead;
    let world = World::new(Backend::Postgres).await;
    let config = world.config().write();
    world
        .db
        .execute(&format!(
            "INSERT INTO telefonica_ventaportabilidad (numero, confronta, confronta_minio_object_name, \
             confronta_subido_a_minio, confronta_sha256) \
             SELECT 'PORTA-H' || n, '', '{prefix}/' || lpad(n::text, 6, '0') || '_' || repeat('x', 200), true, \
             repeat('ab', 32) FROM generate_series(1, 1500) AS n",
            prefix = world.prefix
        ))
        .await;
    let mut child = paged_command(&config, &["verify"], 50)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    assert!(first.starts_with("MISMATCH"), "{first}");
    drop(stdout);
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    let status = child.wait().unwrap();
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(status.code(), Some(1), "{stderr}");
    world.cleanup().await;
}

/// The Django command's batch (issue 26, item 5): `--rescan --venta ID…` takes exactly the files
/// those ventas' rows name, in the order given, and its JSON has one result per venta; a file
/// no given venta names is left for later. The dry run lists the same ventas' files.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rescan_of_given_ventas_takes_only_their_files_and_reports_each() {
    let world = World::new(Backend::Postgres).await;
    let config = world.config().write();
    let good = sample_bytes(801, 3_000);
    world.write_in_place("buena.pdf", &good);
    let good_id = world.db.insert_venta("PORTA-BUENA", Some("confrontas/buena.pdf")).await;
    world.write_in_place("mala.pdf", b"MZ\x90\x00 not a document at all");
    let bad_id = world.db.insert_venta("PORTA-MALA", Some("confrontas/mala.pdf")).await;
    let missing_id = world.db.insert_venta("PORTA-FALTA", Some("confrontas/falta.pdf")).await;
    let other = world.write_in_place("otra.pdf", &sample_bytes(802, 3_000));
    let other_id = world.db.insert_venta("PORTA-OTRA", Some("confrontas/otra.pdf")).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    let ids = [missing_id, good_id, bad_id].map(|id| id.to_string());
    let venta_args: Vec<&str> = ids.iter().flat_map(|id| ["--venta", id.as_str()]).collect();

    let mut args = vec!["--rescan", "--dry-run", "--json"];
    args.extend(&venta_args);
    let (code, stdout, stderr) = Sidecar::run(&config, &args);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let plan: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    let paths: Vec<&str> =
        plan["files"].as_array().unwrap().iter().map(|f| f["path"].as_str().unwrap()).collect();
    assert_eq!(paths, ["confrontas/buena.pdf", "confrontas/mala.pdf"], "{stdout}");

    let mut args = vec!["--rescan", "--json"];
    args.extend(&venta_args);
    let (code, stdout, stderr) = Sidecar::run(&config, &args);
    assert_eq!(code, 1, "the refused file failed: {stdout}\n{stderr}");
    let summary: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    let results = summary["results"].as_array().unwrap();
    let line = |n: usize| (results[n]["venta_id"].as_i64().unwrap(), results[n]["outcome"].as_str().unwrap());
    assert_eq!(
        (line(0), line(1), line(2)),
        ((missing_id, "missing"), (good_id, "moved"), (bad_id, "kept")),
        "{stdout}"
    );
    assert_eq!(results[0]["reason"], "local_file_missing", "{stdout}");
    assert_eq!(results[2]["reason"], "quarantined", "{stdout}");
    let recorded = world.db.row(good_id).await.unwrap();
    assert_eq!(results[1]["object"].as_str(), recorded.object_name.as_deref(), "{stdout}");
    assert!(
        other.exists() && !world.db.row(other_id).await.unwrap().subido,
        "a venta not given is left alone"
    );
    world.cleanup().await;
}

/// Issue 27 item 5: the dry run is the real run without its writes. Over a mixed folder (a
/// valid file, files validation refuses by type and by size, a file no row names, one two rows
/// name, and a stale row's reused name) the verdict `--rescan --dry-run --json` gives each file
/// is what `--rescan` then does to it: moved (uploaded or recorded), quarantined, or kept. The
/// dry run's twin of the pipeline used to skip validation and the ownership rule, so it
/// promised "would upload" for files the real run refuses or keeps.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dry_run_s_verdict_for_every_file_is_what_the_real_run_then_does() {
    let world = World::new(Backend::Postgres).await;
    let config = world.config().write();
    let pdf = |seed: u64, len: usize| sample_bytes(seed, len);
    let mut jpeg = random_bytes(7, 20_000);
    jpeg[..4].copy_from_slice(&[0xFF, 0xD8, 0xFF, 0xE0]);

    // The stale row: venta V1 was given IMG_0001.jpg a day ago, and its file never arrived.
    // A daemon's start sees V1 naming a free path and remembers it in the journal.
    let stale = world.db.insert_venta("PORTA-STALE", Some("confrontas/IMG_0001.jpg")).await;
    world.db.assigned_a_day_ago(stale).await;
    let mut sidecar = Sidecar::start(&config, &[], &[]);
    sidecar.wait_watching().await;
    let journal = world.journal_path();
    eventually("the daemon notes V1 naming a missing file", Duration::from_secs(30), || async {
        let connection =
            rusqlite::Connection::open_with_flags(&journal, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
                .ok()?;
        let marks: i64 = connection
            .query_row("SELECT count(*) FROM missing_rows WHERE venta_id = ?1", [stale], |row| row.get(0))
            .ok()?;
        (marks > 0).then_some(())
    })
    .await;
    assert_eq!(sidecar.terminate(), Some(0), "{}", sidecar.log_text());

    let files: [(&str, Vec<u8>, &[&str]); 6] = [
        ("valida.pdf", pdf(600, 3_000), &["PORTA-OK"]),
        ("programa.exe", pdf(601, 2_000), &["PORTA-EXE"]),
        ("enorme.pdf", pdf(602, 50 * 1024 * 1024 + 1), &["PORTA-BIG"]), // max_bytes at its default
        ("huerfano.pdf", pdf(603, 2_500), &[]),
        ("doble.pdf", pdf(604, 2_600), &["PORTA-D1", "PORTA-D2"]),
        ("IMG_0001.jpg", jpeg, &[]),
    ];
    for (name, bytes, numeros) in &files {
        world.write_in_place(name, bytes);
        for numero in *numeros {
            world.db.insert_venta(numero, Some(&format!("confrontas/{name}"))).await;
        }
    }
    // Every file older than settle_ms, as a backlog's are.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let (code, stdout, stderr) = Sidecar::run(&config, &["--rescan", "--dry-run", "--json"]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let plan: serde_json::Value =
        serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}\n{stderr}"));
    let promised: std::collections::BTreeMap<String, String> = plan["files"]
        .as_array()
        .unwrap_or_else(|| panic!("{plan}"))
        .iter()
        .map(|file| {
            let name = file["path"].as_str().unwrap().trim_start_matches("confrontas/").to_owned();
            let action = file["action"].as_str().unwrap_or("");
            let said = if action.starts_with("would upload") || action.starts_with("already uploaded") {
                "moved"
            } else if action.starts_with("would quarantine") {
                "quarantine"
            } else {
                "keep"
            };
            // The verdict for scripts says the same as the sentence.
            let verdict = match file["verdict"].as_str() {
                Some("upload" | "record") => "moved",
                Some(other) => other,
                None => "none",
            };
            assert_eq!(verdict, said, "{file}");
            (name, said.to_owned())
        })
        .collect();

    let (_, stdout, stderr) = Sidecar::run(&config, &["--rescan", "--json"]);
    let mut done = std::collections::BTreeMap::new();
    for (name, _, _) in &files {
        let outcome = if world.quarantined(name).exists() {
            "quarantine"
        } else if world.dir().join(name).exists() {
            "keep"
        } else {
            "moved"
        };
        done.insert(name.to_string(), outcome.to_owned());
    }
    assert_eq!(
        promised, done,
        "the dry run's verdicts (left) against what the real run did (right)\nrescan: {stdout}\n{stderr}"
    );
    // And the verdicts are the right ones, not merely the same.
    let expected: std::collections::BTreeMap<String, String> = [
        ("valida.pdf", "moved"),
        ("programa.exe", "quarantine"),
        ("enorme.pdf", "quarantine"),
        ("huerfano.pdf", "keep"),
        ("doble.pdf", "keep"),
        ("IMG_0001.jpg", "keep"),
    ]
    .into_iter()
    .map(|(name, verdict)| (name.to_owned(), verdict.to_owned()))
    .collect();
    assert_eq!(done, expected, "what the real run did");
    world.cleanup().await;
}

/// Issue 25 item 6: `--dry-run` writes nothing anywhere, not even the start-up probe's scratch
/// object (which a bucket with versioning keeps, and object lock keeps for years).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_leaves_no_probe_object_on_a_versioned_bucket() {
    use crate::common::buckets::{Setup, TestBucket};
    let bucket = TestBucket::create("cs-dry", Setup { versioning: true, ..Setup::default() }).await;
    let world = World::new(Backend::Postgres).await;
    let config = world.config().set("minio.bucket", bucket.name.as_str()).write();
    world.write_in_place("valida.pdf", &sample_bytes(610, 3_000));
    world.db.insert_venta("PORTA-DRY", Some("confrontas/valida.pdf")).await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    let (code, stdout, stderr) = Sidecar::run(&config, &["--rescan", "--dry-run"]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(stdout.contains("would upload to"), "{stdout}");
    let versions = bucket.versions("").await;
    assert!(versions.is_empty(), "the dry run wrote to the bucket: {versions:?}\n{stderr}");
    assert!(!world.journal_path().exists(), "the dry run made a journal");
    world.cleanup().await;
    bucket.cleanup().await;
}

/// The rescan's progress bar moves (issue 25, issue 27 item 4): it was created and never
/// advanced, so an operator watching a backlog saw `0/N` until the end. Run under a terminal
/// (`script` gives the command a pty, as an operator's shell does), its output shows positions
/// past 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rescan_s_progress_bar_moves_as_files_settle() {
    let world = World::new(Backend::Postgres).await;
    let config = world.config().write();
    const FILES: usize = 30;
    for index in 0..FILES {
        let name = format!("barra_{index:02}.pdf");
        world.write_in_place(&name, &sample_bytes(700 + index as u64, 20_000));
        world.db.insert_venta(&format!("PORTA-BAR{index:02}"), Some(&format!("confrontas/{name}"))).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let binary = env!("CARGO_BIN_EXE_confronta-sync");
    let line = format!("'{binary}' --config '{}' --rescan", config.display());
    let output = std::process::Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .env("RUST_LOG", "error")
        .env_remove("CONFRONTA_SYNC_SECRET_KEY")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("script (util-linux) runs the rescan under a pty");
    let shown = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{shown}");
    let positions: Vec<u64> = shown
        .split(['\r', '\n'])
        .filter_map(|draw| {
            let (before, _) = draw.split_once(&format!("/{FILES} files"))?;
            before.rsplit(' ').next()?.parse().ok()
        })
        .collect();
    assert!(
        positions.iter().any(|&position| position > 0),
        "the bar never moved past 0; its draws: {positions:?}\n{shown:?}"
    );
    for index in 0..FILES {
        let local = world.dir().join(format!("barra_{index:02}.pdf"));
        assert!(!local.exists(), "{} moved", local.display());
    }
    world.cleanup().await;
}

/// The dry run carries out what the journal already decided, as the real run does: a file
/// recorded before a stop (killed between the row's compare-and-set and the unlink) is only
/// removed. The dry run used to ask for the row by path, which no longer names the file, and
/// promised to keep it ("no row points at this file") while the real run removed it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dry_run_finishes_a_file_recorded_before_a_stop_as_the_real_run_does() {
    let world = World::new(Backend::Postgres).await;
    let config = world.config().write();
    let mut sidecar = Sidecar::start(&config, &[], &[("FAILPOINTS", "after_record=return(kill)")]);
    sidecar.wait_watching().await;
    let local = world.write_in_place("grabada.pdf", &sample_bytes(620, 4_000));
    let id = world.db.insert_venta("PORTA-GRABADA", Some("confrontas/grabada.pdf")).await;
    sidecar.wait_exit(Duration::from_secs(60));
    assert!(sidecar.log_text().contains("killed by failpoint"), "{}", sidecar.log_text());
    assert!(world.db.row(id).await.unwrap().subido && local.exists(), "recorded, the local copy still there");

    let (code, stdout, stderr) = Sidecar::run(&config, &["--rescan", "--dry-run", "--json"]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let plan: serde_json::Value =
        serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}\n{stderr}"));
    let file = &plan["files"][0];
    assert_eq!(file["path"], "confrontas/grabada.pdf", "{plan}");
    assert_eq!(file["verdict"], "remove", "{plan}");
    assert!(file["action"].as_str().unwrap_or("").starts_with("already recorded"), "{plan}");

    let (code, stdout, stderr) = Sidecar::run(&config, &["--rescan"]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(!local.exists(), "the real run removed the local copy, as the dry run said");
    world.cleanup().await;
}
