//! `explain` (issue 25, item 1; issue 29, item 4's listing): one file or one sale in one
//! screen, from the real binary against real servers: a moved file, a file waiting for its row,
//! a refused file in quarantine, a venta corrected twice on a versioned bucket, `--json`, and a
//! path nothing knows. Each also checks that `explain` wrote nothing.

use std::path::Path;
use std::time::Duration;

use crate::common::buckets::{Setup, TestBucket};
use crate::common::*;

const WAIT: Duration = Duration::from_secs(60);

/// Bytes no allowed type has: refused by the magic-byte check whatever the name says.
fn executable() -> Vec<u8> {
    [b"MZ\x90\x00 not a document ".as_slice(), &sample_bytes(7, 2_000)].concat()
}

/// Runs `explain` with `args`; returns (exit code, stdout), stderr shown on failure.
fn explain(config: &Path, args: &[&str]) -> (i32, String) {
    let mut all = vec!["explain"];
    all.extend_from_slice(args);
    let (code, stdout, stderr) = Sidecar::run(config, &all);
    assert!(code == 0 || code == 1, "explain {args:?} exited {code}:\n{stdout}\n{stderr}");
    (code, stdout)
}

/// `explain --json` parsed.
fn explain_json(config: &Path, args: &[&str]) -> serde_json::Value {
    let mut all = args.to_vec();
    all.push("--json");
    let (code, stdout) = explain(config, &all);
    assert_eq!(code, 0, "{stdout}");
    serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("explain --json prints one JSON object ({e}):\n{stdout}"))
}

/// The digests of the journal's files (its -wal's, a rescan's sibling), to show that
/// `explain` changed nothing in them. An empty -wal counts as none: SQLite may remove the one
/// the last writer left when a reader closes, which changes no content.
fn journal_bytes(world: &World) -> Vec<(String, Option<String>)> {
    let journal = world.journal_path();
    [journal.clone(), journal.with_extension("sqlite3-wal"), journal.with_extension("rescan.sqlite3")]
        .iter()
        .map(|path| {
            let bytes = std::fs::read(path).ok().filter(|bytes| !bytes.is_empty());
            (path.display().to_string(), bytes.map(|bytes| sha256_hex(&bytes)))
        })
        .collect()
}

/// A file a rescan moved: `explain --venta` shows the row, the object present with its size,
/// and that nothing is left to do; `explain PATH` finds the same through the journal, though
/// no row names the path any more; `--json` carries the same facts.
async fn check_a_moved_file(backend: Backend) {
    let world = World::new(backend).await;
    let config = world.config().write();
    let bytes = sample_bytes(2501, 23_456);
    world.write_in_place("movido.pdf", &bytes);
    let id = world.db.insert_venta("PORTA-EXPL", Some("confrontas/movido.pdf")).await;
    let (code, stdout, stderr) = Sidecar::run(&config, &["--rescan"]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let object = world.db.row(id).await.unwrap().object_name.expect("the rescan recorded the object");
    let before = journal_bytes(&world);

    let (code, stdout) = explain(&config, &["--venta", &id.to_string()]);
    assert_eq!(code, 0, "{stdout}");
    assert!(stdout.contains(&format!("row: venta {id} (PORTA-EXPL)")), "{stdout}");
    assert!(stdout.contains("confronta_subido_a_minio true"), "{stdout}");
    assert!(stdout.contains(&format!("document (current): {object} (present, 23456 bytes)")), "{stdout}");
    assert!(stdout.contains("recorded ") && stdout.contains("from confrontas/movido.pdf"), "{stdout}");
    assert!(stdout.contains(&format!("next: nothing: moved; venta {id} points at {object}")), "{stdout}");
    assert!(stdout.contains("remedy: -"), "{stdout}");

    let (code, stdout) = explain(&config, &["confrontas/movido.pdf"]);
    assert_eq!(code, 0, "{stdout}");
    assert!(stdout.contains("local file: none at"), "{stdout}");
    assert!(stdout.contains("confrontas/movido.pdf removed"), "the journal's entry: {stdout}");
    assert!(stdout.contains(&format!("next: nothing: moved to {object} at ")), "{stdout}");

    let json = explain_json(&config, &["--venta", &id.to_string()]);
    assert_eq!(json["venta"], id);
    assert_eq!(json["found"], true);
    assert_eq!(json["rows"][0]["object_name"], object.as_str());
    assert_eq!(json["rows"][0]["subido_a_minio"], true);
    assert_eq!(json["rows"][0]["sha256"], sha256_hex(&bytes).as_str());
    assert_eq!(json["rows"][0]["sync_error"], serde_json::Value::Null);
    assert_eq!(json["journal"][0]["state"], "removed");
    assert_eq!(json["documents"][0]["object_name"], object.as_str());
    assert_eq!(json["documents"][0]["object"]["present"], true);
    assert_eq!(json["documents"][0]["object"]["size"], 23_456);
    assert_eq!(json["local_file"]["size"], serde_json::Value::Null);
    assert!(json["next"].as_str().unwrap().starts_with("nothing: moved"), "{json}");
    assert_eq!(json["remedy"], serde_json::Value::Null);

    assert_eq!(journal_bytes(&world), before, "explain wrote nothing to the journal");
    world.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_moved_file_is_shown_present_and_done_on_postgres() {
    check_a_moved_file(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_moved_file_is_shown_present_and_done_on_sqlite() {
    check_a_moved_file(Backend::Sqlite).await;
}

/// A file no row names: `explain PATH` says it waits for a row written for it, until when, and
/// that `adopt` gives it to a sale; the daemon's own journal entry shows its wait.
async fn check_a_file_waiting_for_its_row(backend: Backend) {
    let world = World::new(backend).await;
    let config = world.config().write();
    world.write_in_place("sin_fila.pdf", &sample_bytes(2502, 9_000));
    let mut sidecar = Sidecar::start(&config, &[], &[]);
    let path = confronta_sync::media_path::RelativeMediaPath::parse("confrontas/sin_fila.pdf").unwrap();
    eventually("the file journaled as waiting for its row", WAIT, || async {
        let opened = confronta_sync::journal::Journal::open_read_only(&world.journal_path()).ok()?;
        let entry = opened.get(&path).await.ok()??;
        (entry.state() == confronta_sync::journal::FileState::WaitingForRow).then_some(())
    })
    .await;

    // Beside the running daemon, which holds the journal's lock.
    let (code, stdout) = explain(&config, &["confrontas/sin_fila.pdf"]);
    assert_eq!(code, 0, "{stdout}");
    assert!(stdout.contains("local file: ") && stdout.contains("(9000 bytes)"), "{stdout}");
    assert!(stdout.contains("row: none"), "{stdout}");
    assert!(stdout.contains("confrontas/sin_fila.pdf waiting_for_row"), "{stdout}");
    assert!(stdout.contains("next: waits for a row naming it"), "{stdout}");
    assert!(stdout.contains("an orphan from "), "when it becomes an orphan: {stdout}");
    assert!(
        stdout.contains(
            "remedy: if it belongs to a sale: confronta-sync adopt confrontas/sin_fila.pdf --venta <ID>"
        ),
        "{stdout}"
    );
    assert_eq!(sidecar.terminate(), Some(0), "{}", sidecar.log_text());
    assert!(world.dir().join("sin_fila.pdf").exists(), "a file without a row is never deleted");
    world.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_without_a_row_waits_and_names_adopt_on_postgres() {
    check_a_file_waiting_for_its_row(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_without_a_row_waits_and_names_adopt_on_sqlite() {
    check_a_file_waiting_for_its_row(Backend::Sqlite).await;
}

/// A refused file: `explain` finds it in quarantine with its note, the row's
/// `confronta_sync_error`, and says to save the venta again with a valid file; `--venta` too,
/// though the row no longer names the path.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_file_is_found_in_quarantine() {
    let world = World::new(Backend::Postgres).await;
    let config = world.config().write();
    world.write_in_place("programa.pdf", &executable());
    let id = world.db.insert_venta("PORTA-RECH", Some("confrontas/programa.pdf")).await;
    let (_, stdout, stderr) = Sidecar::run(&config, &["--rescan"]);
    assert!(world.quarantined("programa.pdf").exists(), "the rescan quarantined it:\n{stdout}\n{stderr}");
    let sync_error = world.db.row(id).await.unwrap().sync_error.expect("the row says why");

    let (code, stdout) = explain(&config, &["confrontas/programa.pdf"]);
    assert_eq!(code, 0, "{stdout}");
    let quarantined = world.quarantined("programa.pdf");
    assert!(
        stdout.contains(&format!("quarantine: {} ({} bytes)", quarantined.display(), executable().len())),
        "{stdout}"
    );
    assert!(stdout.contains("local file: none at"), "{stdout}");
    assert!(
        stdout.contains("confrontas/programa.pdf rejected") && stdout.contains("last reason: quarantined"),
        "{stdout}"
    );
    assert!(
        stdout
            .contains(&format!("next: nothing: refused and moved to quarantine ({})", quarantined.display())),
        "{stdout}"
    );
    assert!(stdout.contains("remedy: save the venta again with a valid file"), "{stdout}");

    let (code, stdout) = explain(&config, &["--venta", &id.to_string()]);
    assert_eq!(code, 0, "{stdout}");
    assert!(stdout.contains(&format!("confronta_sync_error {sync_error}")), "{stdout}");
    assert!(stdout.contains("venta") && stdout.contains("(file confrontas/programa.pdf)"), "{stdout}");
    assert!(stdout.contains("next: nothing: its last file was refused"), "{stdout}");
    assert!(stdout.contains("remedy: save the venta again with a valid file"), "{stdout}");
    world.cleanup().await;
}

/// Issue 29, item 4: a venta corrected twice on a bucket that keeps versions. `explain
/// --venta` lists its three documents with the times the journal recorded them, the two
/// earlier ones hidden behind delete markers with their versions still in the bucket.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_venta_corrected_twice_on_a_versioned_bucket_lists_every_document() {
    let bucket = TestBucket::create("cs-expl", Setup { versioning: true, ..Setup::default() }).await;
    let world = World::new(Backend::Postgres).await;
    let config = world.config().set("minio.bucket", bucket.name.as_str()).write();
    let id = world.db.insert_venta("PORTA-TRES", None).await;
    let documents = [sample_bytes(2510, 20_000), sample_bytes(2511, 21_000), sample_bytes(2512, 22_000)];
    let mut sidecar = Sidecar::start(&config, &[], &[]);
    for (n, bytes) in documents.iter().enumerate() {
        move_file(&world, id, &format!("version_{n}.pdf"), bytes).await;
    }
    let object_of = |bytes: &[u8]| {
        format!("{}/venta_PORTA-TRES_confronta_{id}_{}.pdf", world.prefix, &sha256_hex(bytes)[..12])
    };
    let names: Vec<String> = documents.iter().map(|bytes| object_of(bytes)).collect();
    eventually("both earlier documents hidden behind delete markers", WAIT, || async {
        for name in &names[..2] {
            if !bucket.versions(name).await.iter().any(|v| v.delete_marker && v.latest) {
                return None;
            }
        }
        Some(())
    })
    .await;

    let json = explain_json(&config, &["--venta", &id.to_string()]);
    let listed = json["documents"].as_array().expect("documents");
    let listed_names: Vec<&str> = listed.iter().map(|d| d["object_name"].as_str().unwrap()).collect();
    assert_eq!(listed_names, names.iter().map(String::as_str).collect::<Vec<_>>(), "oldest first: {json}");
    for (n, document) in listed.iter().enumerate() {
        assert!(document["recorded"].is_string(), "document {n} has its date: {document}");
        assert_eq!(document["from_path"], format!("confrontas/version_{n}.pdf"));
        assert_eq!(document["current"], n == 2, "{document}");
        assert_eq!(document["object"]["present"], n == 2, "{document}");
        let versions = document["versions"].as_array().unwrap();
        let kept = versions.iter().filter(|v| v["delete_marker"] == false).count();
        assert_eq!(kept, 1, "each document's bytes stay as one version: {document}");
        assert!(versions.iter().all(|v| v["modified"].is_string()), "each version has its date: {document}");
        if n < 2 {
            assert!(document["superseded"].is_string(), "{document}");
            assert!(
                versions.iter().any(|v| v["delete_marker"] == true && v["latest"] == true),
                "a delete marker hides it: {document}"
            );
        }
    }

    let (code, stdout) = explain(&config, &["--venta", &id.to_string()]);
    assert_eq!(code, 0, "{stdout}");
    for name in &names[..2] {
        assert!(stdout.contains(&format!("document: {name} (not in the bucket)")), "{stdout}");
    }
    assert!(stdout.contains(&format!("document (current): {} (present, 22000 bytes)", names[2])), "{stdout}");
    assert!(stdout.contains("delete marker") && stdout.contains("(latest)"), "{stdout}");
    assert!(stdout.contains("superseded "), "{stdout}");
    assert_eq!(sidecar.terminate(), Some(0), "{}", sidecar.log_text());
    world.cleanup().await;
    bucket.cleanup().await;
}

/// Nothing knows the path or the venta: exit 1, saying so, and no journal is created.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_path_or_venta_exits_1_and_creates_nothing() {
    let world = World::new(Backend::Sqlite).await;
    let config = world.config().write();
    let (code, stdout) = explain(&config, &["confrontas/nadie.pdf"]);
    assert_eq!(code, 1, "{stdout}");
    assert!(
        stdout.contains("next: nothing: no row, no journal entry and no file knows confrontas/nadie.pdf"),
        "{stdout}"
    );
    let (code, stdout) = explain(&config, &["--venta", "987654"]);
    assert_eq!(code, 1, "{stdout}");
    assert!(stdout.contains("no file knows venta 987654"), "{stdout}");
    let json = explain_json_unknown(&config);
    assert_eq!(json["found"], false);
    assert!(!world.journal_path().exists(), "explain created no journal");
    assert!(!world.quarantine_dir().exists(), "nor the quarantine folder");
    world.cleanup().await;
}

/// `explain --json` of a path nothing knows, which exits 1.
fn explain_json_unknown(config: &Path) -> serde_json::Value {
    let (code, stdout) = explain(config, &["confrontas/nadie.pdf", "--json"]);
    assert_eq!(code, 1, "{stdout}");
    serde_json::from_str(&stdout).unwrap()
}
