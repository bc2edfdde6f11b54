//! Unit tests of the journal: round trips, group commit, the lock, corrupt and locked journals,
//! the unfinished index and pruning.

use super::upkeep::give_back_pages;
use super::*;

fn entry(path: &str) -> JournalEntry {
    let mut entry = JournalEntry {
        state: FileState::Hashed,
        ..JournalEntry::new(RelativeMediaPath::parse(path).unwrap(), 1000)
    };
    entry.venta_id = Some(7);
    entry.object_name = Some("confrontas/x.pdf".into());
    entry.identity =
        Some(FileIdentity { dev: 1, inode: 2, size: 3, mtime_ns: 4, ctime_ns: 5, btime_ns: Some(6) });
    entry.validated_with = Some("types=pdf".into());
    entry.row_assigned = Some("2026-01-01 09:00:00+00".into());
    entry.note_failure(crate::error::Reason::S3Unavailable, "object store unreachable");
    entry.hash = Some(StoredHash {
        sha256: Sha256Digest::of_bytes(b"x"),
        part_digests: vec![Sha256Digest::of_bytes(b"a"), Sha256Digest::of_bytes(b"b")],
        content_type: "application/pdf".into(),
    });
    entry
}

#[tokio::test]
async fn entries_roundtrip_and_unfinished_skips_terminal_states() {
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::open(&dir.path().join("j.sqlite3")).unwrap();
    let first = entry("confrontas/a.pdf");
    journal.put(&first).await.unwrap();
    let mut done = entry("confrontas/b.pdf");
    done.state = FileState::Removed;
    journal.put(&done).await.unwrap();

    let stamped = |mut entry: JournalEntry| {
        entry.updated_ms = 0;
        entry
    };
    let read = journal.get(&first.path).await.unwrap().expect("written");
    assert!(read.updated_ms >= first.updated_ms, "writes stamp their time");
    assert_eq!(stamped(read), stamped(first.clone()));
    let unfinished: Vec<_> = journal.unfinished().await.unwrap().into_iter().map(stamped).collect();
    assert_eq!(unfinished, vec![stamped(first)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_share_commits_and_all_land() {
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::open(&dir.path().join("j.sqlite3")).unwrap();
    let writes = (0..200).map(|n| {
        let journal = journal.clone();
        tokio::spawn(async move { journal.put(&entry(&format!("confrontas/{n}.pdf"))).await })
    });
    for write in writes.collect::<Vec<_>>() {
        write.await.unwrap().unwrap();
    }
    assert_eq!(journal.all().await.unwrap().len(), 200);
}

/// `removed` is committed without its own fsync; the connection's later commits must still be
/// fsynced, and the entry readable at once.
#[tokio::test]
async fn an_unsynced_write_lands_and_leaves_later_commits_fsynced() {
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::open(&dir.path().join("j.sqlite3")).unwrap();
    let mut done = entry("confrontas/a.pdf");
    done.state = FileState::Removed;
    journal.put_unsynced(&done).await.unwrap();
    assert_eq!(journal.get(&done.path).await.unwrap().expect("written").state, FileState::Removed);
    // PRAGMA synchronous: 2 is FULL, 1 NORMAL. A later fsynced write sets FULL again.
    let synchronous = || journal.with(|c| c.query_row("PRAGMA synchronous", [], |row| row.get::<_, i64>(0)));
    assert_eq!(synchronous().await.unwrap(), 1, "the unsynced write committed at NORMAL");
    journal.put(&entry("confrontas/b.pdf")).await.unwrap();
    assert_eq!(synchronous().await.unwrap(), 2, "an fsynced write commits at FULL");
}

/// `status` folds over the entries and lets SQLite compute the upload times, rather than
/// loading the journal (issue 17 item 9): the same figures as before.
#[tokio::test]
async fn fold_visits_every_entry_and_upload_times_are_the_nearest_rank_p95() {
    let journal = Journal::in_memory().unwrap();
    assert_eq!(journal.upload_times().await.unwrap(), (0, None, None));
    for n in 1..=20i64 {
        let mut removed = entry(&format!("confrontas/{n}.pdf"));
        removed.state = FileState::Removed;
        removed.upload_ms = Some(n);
        journal.put(&removed).await.unwrap();
    }
    let mut pending = entry("confrontas/pendiente.pdf");
    pending.upload_ms = Some(1_000);
    journal.put(&pending).await.unwrap();
    assert_eq!(journal.upload_times().await.unwrap(), (20, Some(10.5), Some(19)));
    let (entries, removed) = journal
        .fold((0, 0), |(entries, removed), entry| {
            *entries += 1;
            *removed += u32::from(entry.state == FileState::Removed);
        })
        .await
        .unwrap();
    assert_eq!((entries, removed), (21, 20));
}

/// Issue 15: `error_class` is written and read as an `ErrorClass`, with the labels earlier
/// versions stored, and an unknown label is an error rather than a guess.
#[tokio::test]
async fn error_class_is_stored_as_its_label() {
    let journal = Journal::in_memory().unwrap();
    for class in [ErrorClass::Transient, ErrorClass::Rejected, ErrorClass::Fatal] {
        let mut failed = entry("confrontas/a.pdf");
        failed.error_class = Some(class);
        journal.put(&failed).await.unwrap();
        let read = journal.get(&failed.path).await.unwrap().expect("written");
        assert_eq!(read.error_class, Some(class));
        let stored: String = journal
            .with(|c| c.query_row("SELECT error_class FROM files", [], |row| row.get(0)))
            .await
            .unwrap();
        assert_eq!(stored, class.as_str());
    }
}

#[test]
fn a_journal_that_cannot_be_written_is_transient_and_one_that_cannot_be_opened_fatal() {
    let io = JournalError::Io { path: "/j".into(), message: "disk full".into() };
    assert_eq!(io.class(), ErrorClass::Transient);
    let locked = JournalError::Locked { path: "/j".into(), lock: "/j.lock".into() };
    assert_eq!(locked.class(), ErrorClass::Fatal);
}

#[test]
fn a_second_open_of_the_same_journal_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.sqlite3");
    let _first = Journal::open(&path).unwrap();
    let err = Journal::open(&path).err().expect("second open must fail");
    assert!(matches!(err, JournalError::Locked { .. }), "{err}");
}

/// Names in `dir` that hold `corrupt-`, sorted.
fn moved_aside(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.contains("corrupt-"))
        .collect();
    names.sort();
    names
}

/// Issue 12 item 6: the WAL may hold the last committed writes, so it goes aside with the
/// journal it belongs to instead of being deleted.
#[tokio::test]
async fn a_corrupt_journal_moves_aside_with_its_wal_and_shm_kept() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.sqlite3");
    std::fs::write(&path, b"this is not a sqlite database, just garbage bytes....").unwrap();
    std::fs::write(dir.path().join("j.sqlite3-wal"), b"the wal's bytes").unwrap();
    std::fs::write(dir.path().join("j.sqlite3-shm"), b"the shm's bytes").unwrap();
    let journal = Journal::open(&path).unwrap();
    assert!(journal.unfinished().await.unwrap().is_empty());

    let aside = moved_aside(dir.path());
    assert_eq!(aside.len(), 3, "{aside:?}");
    let main = &aside[0];
    assert!(main.starts_with("j.corrupt-"), "{aside:?}");
    assert_eq!(
        std::fs::read(dir.path().join(main)).unwrap(),
        b"this is not a sqlite database, just garbage bytes...."
    );
    assert_eq!(std::fs::read(dir.path().join(format!("{main}-wal"))).unwrap(), b"the wal's bytes");
    // The -shm is only an index SQLite rebuilds from the -wal at every open, so its bytes
    // are SQLite's; what matters is that it went aside with the rest.
    assert!(dir.path().join(format!("{main}-shm")).exists(), "{aside:?}");
}

/// Issue 12 item 6: a journal SQLite cannot lock (another program holds it) is not corrupt.
/// It used to be moved aside and rebuilt empty, throwing away every entry.
#[tokio::test]
async fn a_locked_journal_is_left_alone_and_named_in_the_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.sqlite3");
    let journal = Journal::open(&path).unwrap();
    journal.put(&entry("confrontas/a.pdf")).await.unwrap();
    drop(journal);

    // Not our flock on j.sqlite3.lock: SQLite's own lock on the database file.
    let holder = Connection::open(&path).unwrap();
    holder.execute_batch("PRAGMA locking_mode = EXCLUSIVE; BEGIN EXCLUSIVE;").unwrap();
    holder.execute("UPDATE files SET attempts = attempts + 1", []).unwrap();
    let err = Journal::open(&path).err().expect("a locked journal cannot be opened");
    let shown = err.to_string();
    assert!(shown.contains(&path.display().to_string()) && shown.contains("locked"), "{shown}");
    assert!(moved_aside(dir.path()).is_empty(), "nothing moved aside");

    holder.execute_batch("ROLLBACK").unwrap();
    drop(holder);
    let reopened = Journal::open(&path).unwrap();
    let kept = reopened.get(&RelativeMediaPath::parse("confrontas/a.pdf").unwrap()).await.unwrap();
    assert!(kept.is_some(), "the entry survived");
}

/// Issue 17 item 4: `unfinished()` scanned every entry, removed ones included, under the
/// mutex the writer needs; pruning was one DELETE of everything at start-up.
#[tokio::test]
async fn unfinished_reads_only_its_index_and_pruning_goes_a_batch_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::open(&dir.path().join("j.sqlite3")).unwrap();
    let plan: Vec<String> = journal
        .with(|c| {
            let mut query = c.prepare(&format!(
                "EXPLAIN QUERY PLAN SELECT {COLUMNS} FROM files WHERE {UNFINISHED} ORDER BY first_seen_ms"
            ))?;
            let rows = query.query_map([], |row| row.get::<_, String>(3))?;
            rows.collect()
        })
        .await
        .unwrap();
    assert!(plan.iter().any(|step| step.contains("files_unfinished")), "{plan:?}");
    assert!(!plan.iter().any(|step| step.contains("TEMP B-TREE")), "no sort: {plan:?}");

    let old = now_ms() - 100_000;
    journal
        .with(move |c| {
            c.execute(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 25) \
                 INSERT INTO files (path, state, first_seen_ms, updated_ms) \
                 SELECT 'confrontas/' || i || '.pdf', 'removed', ?1, ?1 FROM n",
                params![old],
            )
        })
        .await
        .unwrap();
    let mut kept = entry("confrontas/kept.pdf");
    kept.state = FileState::Removed;
    journal.put(&kept).await.unwrap();
    journal.put(&entry("confrontas/unfinished.pdf")).await.unwrap();
    assert_eq!(journal.prune_removed(50_000, 10).await.unwrap(), 10);
    assert_eq!(journal.prune_removed(50_000, 10).await.unwrap(), 10);
    assert_eq!(journal.prune_removed(50_000, 10).await.unwrap(), 5);
    assert_eq!(journal.prune_removed(50_000, 10).await.unwrap(), 0);
    journal.with(|c| give_back_pages(c, 100)).await.unwrap();
    let left: Vec<String> =
        journal.all().await.unwrap().into_iter().map(|e| e.path.as_str().to_owned()).collect();
    assert_eq!(left.len(), 2, "recently removed and unfinished entries stay: {left:?}");
}

#[test]
fn every_state_parses_back() {
    for state in FileState::all() {
        assert_eq!(FileState::parse(state.as_str()), Some(state));
    }
}

/// Issue 27 item 3: a version-1 journal (`tests/fixtures/journal-v1.sqlite3`, made with version
/// 1's tables) opens as version 2: each reason's code moved from the start of `last_error` to
/// its own column (a refusal's `quarantined: ` too; a sentence without a known code stays
/// whole), the legacy `uploaded` state is `verified`, and the history and marks are kept.
#[tokio::test]
async fn a_version_1_journal_is_migrated_to_version_2() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.sqlite3");
    let fixture = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/journal-v1.sqlite3");
    std::fs::copy(fixture, &path).unwrap();
    let journal = Journal::open(&path).unwrap();
    let get = |name: &'static str| {
        let journal = &journal;
        let path = RelativeMediaPath::parse(name).unwrap();
        async move { journal.get(&path).await.unwrap().unwrap_or_else(|| panic!("{name} kept")) }
    };
    use crate::error::Reason;
    let uploaded = get("confrontas/subida.pdf").await;
    assert_eq!(uploaded.state, FileState::Verified);
    assert_eq!(uploaded.object_name.as_deref(), Some("p/venta_7.pdf"));
    assert!(uploaded.hash.is_some() && uploaded.identity.is_some(), "{uploaded:?}");
    let failed = get("confrontas/caida.pdf").await;
    assert_eq!(failed.reason, Some(Reason::S3Unavailable));
    assert_eq!(
        failed.last_error.as_deref(),
        Some("object store at http://minio:9000 unreachable: connection refused")
    );
    let refused = get("confrontas/rechazada.exe").await;
    assert_eq!((refused.state, refused.reason), (FileState::Refusing, Some(Reason::Quarantined)));
    assert_eq!(
        refused.last_error.as_deref(),
        Some("type_not_allowed: extension .exe is not in allowed_types")
    );
    let unlabelled = get("confrontas/rara.pdf").await;
    assert_eq!(unlabelled.reason, None);
    assert_eq!(
        unlabelled.last_error.as_deref(),
        Some("a sentence a version once wrote without a reason label")
    );
    assert_eq!(journal.objects_of(10).await.unwrap().len(), 1, "the recorded history is kept");
    let marks =
        journal.missing_marks(&RelativeMediaPath::parse("confrontas/IMG_0001.jpg").unwrap()).await.unwrap();
    assert_eq!(marks.len(), 1, "the stale-row marks are kept");
    drop(journal);
    let version: String = rusqlite::Connection::open(&path)
        .unwrap()
        .query_row("SELECT value FROM meta WHERE key = 'schema_version'", [], |row| row.get(0))
        .unwrap();
    assert_eq!(version, "2");
    // Opening it again changes nothing more.
    let again = Journal::open(&path).unwrap();
    assert_eq!(again.get(&failed.path).await.unwrap().unwrap().reason, Some(Reason::S3Unavailable));
}

/// The select list and the written columns are one list.
#[test]
fn the_select_list_is_the_column_list() {
    assert_eq!(super::schema::COLUMNS, super::schema::COLUMN_NAMES.join(", "));
}

/// Issue 24 item 9: a stale-row mark is committed with its fsync even right after an unsynced
/// `removed` left the shared connection at NORMAL (a power cut could undo the mark, and a stale
/// row then own the next file saved under its path).
#[tokio::test]
async fn a_missing_mark_is_fsynced_even_after_an_unsynced_write() {
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::open(&dir.path().join("j.sqlite3")).unwrap();
    let mut done = entry("confrontas/a.pdf");
    done.state = FileState::Removed;
    journal.put_unsynced(&done).await.unwrap();
    let synchronous = || journal.with(|c| c.query_row("PRAGMA synchronous", [], |row| row.get::<_, i64>(0)));
    assert_eq!(synchronous().await.unwrap(), 1, "the unsynced write left NORMAL");
    journal.note_missing(&done.path, 7, Some("2026-01-01".into())).await.unwrap();
    assert_eq!(synchronous().await.unwrap(), 2, "the mark committed at FULL");
}

/// The dry run's copy attaches the journal read-only through a URI: a `#` or `?` in its path
/// must not cut the URI short (SQLite then attached and created another file, read-write, and
/// the copy came out empty, so the dry run forgot the stale-row marks).
#[tokio::test]
async fn the_dry_run_copy_reads_a_journal_whose_path_holds_uri_characters() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j#1?x=y.sqlite3");
    let journal = Journal::open(&path).unwrap();
    let file = RelativeMediaPath::parse("confrontas/IMG_0001.jpg").unwrap();
    journal.note_missing(&file, 12, Some("2026-01-01".into())).await.unwrap();
    drop(journal);
    let copy = Journal::in_memory_copy_of(&path).unwrap();
    assert_eq!(copy.missing_marks(&file).await.unwrap().len(), 1, "the copy holds the mark");
    let made: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name == "j" || name.starts_with("j#1?") && !name.contains("sqlite3"))
        .collect();
    assert!(made.is_empty(), "the copy made other files: {made:?}");
}

/// A reader (`status`, `explain`) of a journal the daemon has not migrated yet says so, and a
/// journal a newer version wrote is refused before anything in it changes.
#[tokio::test]
async fn readers_name_an_unmigrated_journal_and_a_newer_one_is_left_as_it_is() {
    let dir = tempfile::tempdir().unwrap();
    let old = dir.path().join("old.sqlite3");
    let fixture = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/journal-v1.sqlite3");
    std::fs::copy(fixture, &old).unwrap();
    let error = Journal::open_read_only(&old).err().expect("a version-1 journal is not read as version 2");
    assert!(error.to_string().contains("start the daemon once"), "{error}");

    let newer = dir.path().join("newer.sqlite3");
    std::fs::copy(fixture, &newer).unwrap();
    let raw = rusqlite::Connection::open(&newer).unwrap();
    raw.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'", []).unwrap();
    raw.execute_batch("DROP TABLE recorded_objects").unwrap();
    drop(raw);
    assert!(matches!(Journal::open(&newer), Err(JournalError::TooNew { found: 99, .. })));
    let raw = rusqlite::Connection::open(&newer).unwrap();
    let tables: i64 = raw
        .query_row("SELECT count(*) FROM sqlite_master WHERE name = 'recorded_objects'", [], |row| row.get(0))
        .unwrap();
    assert_eq!(tables, 0, "nothing was made in the newer journal before it was refused");
}

/// A failed fsync anywhere (the writer's, or a direct write's such as a stale-row mark) leaves
/// the journal unusable for every later write: they share the flag.
#[tokio::test]
async fn once_an_fsync_failed_no_write_is_taken() {
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::open(&dir.path().join("j.sqlite3")).unwrap();
    journal.put(&entry("confrontas/a.pdf")).await.unwrap();
    // What `on_blocking_thread` does when a direct write's fsync fails.
    journal.unusable.store(true, std::sync::atomic::Ordering::SeqCst);
    let refused = journal.put(&entry("confrontas/b.pdf")).await;
    assert!(matches!(refused, Err(JournalError::Unusable { .. })), "{refused:?}");
    assert_eq!(refused.unwrap_err().class(), ErrorClass::Fatal);
}
