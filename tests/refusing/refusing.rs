//! A refused file leaves MEDIA_ROOT: the row stops naming it, then the file goes to quarantine,
//! and a move that fails is tried again until it succeeds, never left half done (issue 23,
//! item 4). Django serves MEDIA_ROOT, and once the row is cleared nothing else would ever move
//! the file.

use std::time::Duration;

use crate::common::*;

const WAIT: Duration = Duration::from_secs(60);

/// Bytes no allowed type has: refused by the magic-byte check whatever the name says.
fn executable() -> Vec<u8> {
    [b"MZ\x90\x00 not a document ".as_slice(), &sample_bytes(7, 2_000)].concat()
}

async fn wait_log(sidecar: &Sidecar, needle: &str) {
    eventually(&format!("log line {needle:?}"), WAIT, || async {
        sidecar.log_text().contains(needle).then_some(())
    })
    .await;
}

/// The quarantine folder cannot take the file for a while (here a file stands where its
/// `confrontas/` folder must be made; in production a path outside `ReadWritePaths=`, a full
/// disk): the refusal is retried, and the file moves once the folder can take it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_file_whose_move_to_quarantine_fails_is_moved_once_it_can_be() {
    let world = World::new(Backend::Postgres).await;
    let config = world.config().write();
    let sidecar = Sidecar::start(&config, &[], &[]);
    sidecar.wait_watching().await;
    let blocker = world.quarantine_dir().join("confrontas");
    std::fs::create_dir_all(world.quarantine_dir()).unwrap();
    std::fs::write(&blocker, b"in the way").unwrap();

    let path = world.write_in_place("programa.pdf", &executable());
    let id = world.db.insert_venta("PORTA-BLOQUEO", Some("confrontas/programa.pdf")).await;
    let row = eventually("the refusal recorded on the row", WAIT, || async {
        world.db.row(id).await.filter(|row| row.sync_error.is_some())
    })
    .await;
    assert_eq!(row.confronta.as_deref(), Some(""), "the row no longer names the refused path");
    wait_log(&sidecar, "refused file not yet moved to quarantine").await;
    assert!(path.exists(), "the move failed, so the file is still in MEDIA_ROOT");

    std::fs::remove_file(&blocker).unwrap();
    eventually("the refused file moved to quarantine", WAIT, || async {
        (!path.exists() && world.quarantined("programa.pdf").exists()).then_some(())
    })
    .await;
    assert_eq!(std::fs::read(world.quarantined("programa.pdf")).unwrap(), executable());
    drop(sidecar);
    world.cleanup().await;
}

/// A name as long as a file system allows (Django caps `upload_to` names at the FileField's
/// `max_length`, which a CRM may raise): its quarantine note would not fit NAME_MAX.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_file_with_the_longest_name_still_goes_to_quarantine() {
    let world = World::new(Backend::Sqlite).await;
    let config = world.config().write();
    let sidecar = Sidecar::start(&config, &[], &[]);
    sidecar.wait_watching().await;
    let name = format!("{}.pdf", "ñ".repeat(125));
    assert_eq!(name.len(), 254);
    let path = world.write_in_place(&name, &executable());
    // SQLite does not enforce varchar(100); a CRM's column may be wider anyway.
    let id = world.db.insert_venta("PORTA-LARGO", Some(&format!("confrontas/{name}"))).await;
    eventually("the long-named refused file leaves MEDIA_ROOT", WAIT, || async {
        (!path.exists()).then_some(())
    })
    .await;
    let row = world.db.row(id).await.unwrap();
    assert_eq!(row.confronta.as_deref(), Some(""), "{row:?}");
    let kept: Vec<_> = std::fs::read_dir(world.quarantine_dir().join("confrontas"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    let file =
        kept.iter().find(|p| !p.to_string_lossy().ends_with(".reason")).expect("the file in quarantine");
    assert_eq!(std::fs::read(file).unwrap(), executable());
    let note = std::fs::read_to_string(format!("{}.reason", file.display())).unwrap();
    assert!(note.contains(&format!("original path: confrontas/{name}")), "{note}");
    drop(sidecar);
    world.cleanup().await;
}

/// `check` and start-up probe the quarantine folder: one that cannot be written is an error
/// naming it (exit 2), not a surprise at the first refused file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unwritable_quarantine_folder_is_refused_at_start_up_and_by_check() {
    let world = World::new(Backend::Sqlite).await;
    let blocked = world.temp.path().join("not-a-folder");
    std::fs::write(&blocked, b"a file where the folder should be").unwrap();
    let config = world.config().set("validation.quarantine_dir", blocked.display().to_string()).write();
    let (code, stdout, stderr) = Sidecar::run(&config, &["check"]);
    assert_eq!(code, 2, "check: {stdout}\n{stderr}");
    assert!(stderr.contains(&format!("quarantine folder {}", blocked.display())), "check: {stderr}");
    let mut daemon = Sidecar::start(&config, &[], &[]);
    assert_eq!(daemon.wait_exit(Duration::from_secs(30)), Some(2), "the daemon:\n{}", daemon.log_text());
    assert!(
        daemon.log_text().contains(&format!("quarantine folder {}", blocked.display())),
        "{}",
        daemon.log_text()
    );
    world.cleanup().await;
}

/// Issue 24 item 9: a refused file's move to quarantine makes the destination's entry durable
/// before the source's removal. The other order let a power cut between the two fsyncs keep
/// the removal and lose the new entry: the only copy of the refused document gone. strace shows
/// the first fsync after the rename on the quarantine folder.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_quarantine_entry_is_durable_before_the_source_s_removal() {
    let world = World::new(Backend::Postgres).await;
    let config = world.config().write();
    world.write_in_place("programa.exe", &executable());
    world.db.insert_venta("PORTA-Q-ORDER", Some("confrontas/programa.exe")).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, text) =
        rescan_under_strace(&world, &config, "open,openat,openat2,renameat2,fsync,fdatasync,close");
    assert!(status.code().is_some(), "the rescan under strace: {status}");
    assert!(world.quarantined("programa.exe").exists(), "the refused file is in quarantine");

    // What each descriptor of each thread was opened on, and the fsyncs after the rename.
    let mut opened = std::collections::HashMap::new();
    let mut renamed = false;
    let mut first_sync_after = None;
    for line in text.lines() {
        let Some((pid, call)) = line.split_once(' ') else { continue };
        let call = call.trim_start();
        let result = call.rsplit("= ").next().and_then(|fd| fd.trim().parse::<i64>().ok());
        if call.starts_with("open") {
            if let (Some(fd), Some(name)) = (result, call.split('"').nth(1)) {
                opened.insert((pid.to_owned(), fd), name.to_owned());
            }
        } else if call.starts_with("renameat2(") && call.contains("\"programa.exe\"") && result == Some(0) {
            renamed = true;
        } else if let Some(rest) = call.strip_prefix("fsync(") {
            let fd = rest.split(')').next().and_then(|fd| fd.parse::<i64>().ok());
            if renamed && first_sync_after.is_none() {
                first_sync_after =
                    fd.map(|fd| opened.get(&(pid.to_owned(), fd)).cloned().unwrap_or_default());
            }
        }
    }
    assert!(renamed, "the refused file was renamed into quarantine:\n{text}");
    let first = first_sync_after.unwrap_or_default();
    assert!(
        first.ends_with("quarantine/confrontas"),
        "the first fsync after the rename is of {first:?}, not the quarantine folder:\n{text}"
    );
    world.cleanup().await;
}
