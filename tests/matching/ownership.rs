//! Which sale a file belongs to: the one whose row was written naming its path after the file
//! appeared (issue 23). Django hands a free name to the next upload, so a row that named a path
//! while no file stood there must never take the file the next sale saves under that name.
//!
//! Every test here runs at the daemon's shipped timers (`TestConfig::at_defaults`): the rule
//! has to hold in the first minutes after start and right after any write to the old row, not
//! only once some timer has run out.

use std::time::Duration;

use crate::common::report::{Observed, Report};
use crate::common::*;
use confronta_sync::hash::hash_file;
use confronta_sync::store::{ObjectStore, UploadRequest};

const WAIT: Duration = Duration::from_secs(60);
const NAME: &str = "IMG_0001.jpg";
const PATH: &str = "confrontas/IMG_0001.jpg";

/// Bytes the type check takes for a JPEG (a phone photo).
fn jpeg_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut bytes = random_bytes(seed, len);
    bytes[..4].copy_from_slice(&[0xFF, 0xD8, 0xFF, 0xE0]);
    bytes
}

/// Sale V1: its document is object O1, and a day ago it was corrected with `IMG_0001.jpg`,
/// whose file never arrived (or was deleted since), so its row names a free path.
struct StaleRow {
    world: World,
    v1: i64,
    old: Vec<u8>,
    old_object: String,
}

impl StaleRow {
    async fn new(backend: Backend) -> StaleRow {
        let world = World::new(backend).await;
        let old = jpeg_bytes(1, 20_000);
        let old_object = format!("{}/o1.jpg", world.prefix);
        let source = world.temp.path().join("o1.jpg");
        std::fs::write(&source, &old).unwrap();
        let hash = hash_file(&source, None).unwrap();
        let request = UploadRequest {
            path: &source,
            hash: &hash,
            content_type: "image/jpeg",
            multipart_threshold: u64::MAX,
            part_size: 5 << 20,
            if_absent: false,
        };
        world.store.upload(&world.object(&old_object), request).await.unwrap();
        let v1 = world.db.insert_venta("PORTA-V1", None).await;
        world
            .db
            .execute(&format!(
                "UPDATE telefonica_ventaportabilidad SET confronta = '{PATH}', confronta_minio_object_name = '{old_object}', \
                 confronta_minio_url = 'http://s3/{old_object}', confronta_subido_a_minio = false, confronta_sha256 = '{}' WHERE id = {v1}",
                sha256_hex(&old)
            ))
            .await;
        world.db.assigned_a_day_ago(v1).await;
        StaleRow { world, v1, old, old_object }
    }

    /// This world's daemon config at the shipped timers.
    fn config(&self) -> std::path::PathBuf {
        self.world.config().at_defaults().write()
    }

    /// Another agent saves `IMG_0001.jpg` for a new sale V2, as Django does: the file, then
    /// V2's INSERT 400 ms later. Returns V2 and the new bytes.
    async fn new_sale_reuses_the_name(&self) -> (i64, Vec<u8>) {
        let new = jpeg_bytes(2, 30_000);
        self.world.write_in_place(NAME, &new);
        tokio::time::sleep(Duration::from_millis(400)).await;
        let v2 = self.world.db.insert_venta("PORTA-V2", Some(PATH)).await;
        (v2, new)
    }

    /// Once the file has left the folder: V2 holds the new bytes, V1 still holds O1, and O1 is
    /// still in the bucket with its bytes.
    async fn assert_new_sale_got_it(&self, v2: i64, new: &[u8]) {
        let world = &self.world;
        let local = world.dir().join(NAME);
        eventually("the new file leaves the folder", WAIT, || async { (!local.exists()).then_some(()) })
            .await;
        let row1 = world.db.row(self.v1).await.unwrap();
        assert_eq!(
            row1.object_name.as_deref(),
            Some(self.old_object.as_str()),
            "V1 still points at O1: {row1:?}"
        );
        assert_eq!(row1.sha256.as_deref(), Some(sha256_hex(&self.old).as_str()), "V1's checksum is O1's");
        let row2 = world.db.row(v2).await.unwrap();
        assert!(row2.subido, "V2 is recorded: {row2:?}");
        assert_eq!(row2.sha256.as_deref(), Some(sha256_hex(new).as_str()), "the new bytes are on V2");
        assert_eq!(world.object_bytes(&self.old_object).await, self.old, "O1 still exists with its bytes");
    }

    /// Makes the journal's note of V1's missing file an hour old, as a daemon that has been
    /// running for a while has it.
    fn age_the_missing_mark(&self) {
        let journal = open_journal(&self.world.journal_path());
        let aged = journal
            .execute("UPDATE missing_rows SET seen_ms = seen_ms - 3600000 WHERE venta_id = ?1", [self.v1])
            .unwrap();
        assert_eq!(aged, 1, "the daemon noted V1 naming a missing file");
    }
}

/// Waits until the daemon's start-up scan has noted the stale row (its first look at it). Waiting
/// for "watching" is not enough: the scan reads the rows after it, and under load a file written
/// in between was taken as the stale row's backlog (seen once in `.ci/run`, and once in this
/// file's own run beside the other tests).
async fn wait_for_the_start_up_scan(sidecar: &Sidecar) {
    wait_log(sidecar, "row points at a missing local file").await;
}

async fn wait_log(sidecar: &Sidecar, needle: &str) {
    eventually(&format!("log line {needle:?}"), WAIT, || async {
        sidecar.log_text().contains(needle).then_some(())
    })
    .await;
}

/// Path 1 of issue 23: a freshly started daemon (a new journal) and a new sale saving the same
/// name the moment the daemon has first looked at the old row. The old row's file was given a day
/// ago; a file that appears now is not its. The daemon's first look is its start-up scan, which
/// reads the rows a moment after "watching": a file saved before that read finds the row naming a
/// file on disk, which the rule takes as backlog (the row's own), so the new sale saves once the
/// scan has noted the row (see `wait_for_the_start_up_scan`).
async fn a_name_reused_right_after_start_goes_to_the_new_sale(backend: Backend) {
    let stale = StaleRow::new(backend).await;
    let sidecar = Sidecar::start(&stale.config(), &[], &[]);
    wait_for_the_start_up_scan(&sidecar).await;
    let (v2, new) = stale.new_sale_reuses_the_name().await;
    stale.assert_new_sale_got_it(v2, &new).await;
    drop(sidecar);
    let world = &stale.world;
    let (label, group) = match backend {
        Backend::Postgres => ("PostgreSQL", "right-sale-1-reused-names-postgres"),
        Backend::Sqlite => ("SQLite", "right-sale-1-reused-names-sqlite"),
    };
    let row1 = world.db.row(stale.v1).await.unwrap();
    Report::new(group).row(
        &format!(
            "{label}, daemon just started: IMG_0001.jpg reused while an older venta (object O1, given its file a day \
             ago) names it with its file missing; the new sale commits 400 ms after the file"
        ),
        "the new bytes land on the new sale; the older venta and O1 untouched",
        &Observed::new()
            .upload(world, NAME, v2)
            .await
            .count("SHA-256 of the new bytes", &sha256_hex(&new)[..12])
            .row(world, stale.v1)
            .await
            .count("its object", row1.object_name.as_deref().and_then(|name| name.rsplit('/').next()).unwrap_or("NULL"))
            .stored(world, &stale.old_object)
            .await,
    );
    stale.world.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_reused_right_after_start_goes_to_the_new_sale_postgres() {
    a_name_reused_right_after_start_goes_to_the_new_sale(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_reused_right_after_start_goes_to_the_new_sale_sqlite() {
    a_name_reused_right_after_start_goes_to_the_new_sale(Backend::Sqlite).await;
}

/// A connection to the daemon's journal beside the daemon, waiting out its writer's short locks.
fn open_journal(path: &std::path::Path) -> rusqlite::Connection {
    let journal = rusqlite::Connection::open(path).unwrap();
    journal.busy_timeout(Duration::from_secs(10)).unwrap();
    journal
}

/// Makes the journal at `path` (created here if the daemon has not run yet) refuse every new
/// missing-row mark with an error, as a full disk or an I/O error refuses a write, until
/// `accept_missing_marks`. Only those writes fail: the rest of the journal works.
fn refuse_missing_marks(path: &std::path::Path) {
    drop(confronta_sync::journal::Journal::open(path).unwrap());
    let journal = open_journal(path);
    journal
        .execute_batch(
            "CREATE TRIGGER refuse_marks BEFORE INSERT ON missing_rows \
             BEGIN SELECT RAISE(ABORT, 'the test refuses missing-row marks'); END;",
        )
        .unwrap();
}

fn accept_missing_marks(path: &std::path::Path) {
    let journal = open_journal(path);
    journal.execute_batch("DROP TRIGGER refuse_marks").unwrap();
}

/// The start-up scan's marks are what hold a stale row back, so while one cannot be written no
/// file is matched: the daemon keeps the files waiting and writes the mark again until it
/// lands. Before, it logged the failed write and matched files anyway, and V1, with no mark,
/// took the file the new sale saved under its free name.
async fn a_start_up_mark_the_journal_refuses_keeps_files_waiting_until_it_is_written(backend: Backend) {
    let stale = StaleRow::new(backend).await;
    let journal = stale.world.journal_path();
    refuse_missing_marks(&journal);
    let sidecar = Sidecar::start(&stale.config(), &[], &[]);
    sidecar.wait_watching().await;
    wait_log(&sidecar, "cannot note the missing file in the journal").await;
    let (v2, new) = stale.new_sale_reuses_the_name().await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        stale.world.dir().join(NAME).exists(),
        "the file waits while V1's mark cannot be written; log:\n{}",
        sidecar.log_text()
    );
    let row1 = stale.world.db.row(stale.v1).await.unwrap();
    assert_eq!(row1.object_name.as_deref(), Some(stale.old_object.as_str()), "V1 untouched: {row1:?}");
    accept_missing_marks(&journal);
    stale.assert_new_sale_got_it(v2, &new).await;
    drop(sidecar);
    stale.world.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_up_mark_the_journal_refuses_keeps_files_waiting_until_it_is_written_postgres() {
    a_start_up_mark_the_journal_refuses_keeps_files_waiting_until_it_is_written(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_up_mark_the_journal_refuses_keeps_files_waiting_until_it_is_written_sqlite() {
    a_start_up_mark_the_journal_refuses_keeps_files_waiting_until_it_is_written(Backend::Sqlite).await;
}

/// A failed fsync while the start-up scan writes a mark leaves a journal that takes no more
/// writes: the daemon stops with the journal's exit code, as on a run's failed fsync, instead of
/// trying the mark again on a journal that could report as written what the disk dropped. The
/// restart writes the mark, and the reused name goes to the new sale.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_fsync_of_a_start_up_mark_stops_the_daemon_and_the_restart_writes_it() {
    let stale = StaleRow::new(Backend::Postgres).await;
    let config = stale.config();
    let mut sidecar = Sidecar::start(&config, &[], &[("FAILPOINTS", "journal_mark_fsync=1*return")]);
    let code = sidecar.wait_exit(WAIT);
    let log = sidecar.log_text();
    assert_eq!(code, Some(5), "the daemon stops with the journal's exit code:\n{log}");
    assert!(log.contains("an fsync failed"), "and says why:\n{log}");
    let sidecar = Sidecar::start(&config, &[], &[]);
    wait_for_the_start_up_scan(&sidecar).await;
    let (v2, new) = stale.new_sale_reuses_the_name().await;
    stale.assert_new_sale_got_it(v2, &new).await;
    drop(sidecar);
    stale.world.cleanup().await;
}

/// Path 2 of issue 23: a back-office edit of the old row (any column but its file) is no claim
/// on a file saved after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_to_the_stale_row_is_no_claim_on_a_file_saved_after_it() {
    let stale = StaleRow::new(Backend::Postgres).await;
    let sidecar = Sidecar::start(&stale.config(), &[], &[]);
    wait_log(&sidecar, "row points at a missing local file").await;
    stale.age_the_missing_mark();
    // Someone edits V1 (its state, say), which writes the row without giving it a file.
    let v1 = stale.v1;
    stale
        .world
        .db
        .execute(&format!("UPDATE telefonica_ventaportabilidad SET numero = numero WHERE id = {v1}"))
        .await;
    let (v2, new) = stale.new_sale_reuses_the_name().await;
    stale.assert_new_sale_got_it(v2, &new).await;
    drop(sidecar);
    stale.world.cleanup().await;
}

/// Path 3 of issue 23: on SQLite, the file a new sale saves under the stale row's name waits
/// for that sale's INSERT instead of being kept before it commits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_sqlite_a_reused_name_waits_for_the_new_sale_s_insert() {
    let stale = StaleRow::new(Backend::Sqlite).await;
    let sidecar = Sidecar::start(&stale.config(), &[], &[]);
    wait_log(&sidecar, "row points at a missing local file").await;
    stale.age_the_missing_mark();
    let (v2, new) = stale.new_sale_reuses_the_name().await;
    stale.assert_new_sale_got_it(v2, &new).await;
    drop(sidecar);
    stale.world.cleanup().await;
}

/// The stale row's own new upload under the same name (its owner corrects it again) carries
/// the evidence a bare write lacks: the save assigned a file, so the file is that sale's.
async fn the_stale_row_s_own_new_upload_moves_to_it(backend: Backend) {
    let stale = StaleRow::new(backend).await;
    let sidecar = Sidecar::start(&stale.config(), &[], &[]);
    wait_log(&sidecar, "row points at a missing local file").await;
    stale.age_the_missing_mark();
    let world = &stale.world;
    let new = jpeg_bytes(3, 25_000);
    let local = world.write_in_place(NAME, &new);
    world.db.assign(stale.v1, PATH).await;
    eventually("the new file leaves the folder", WAIT, || async { (!local.exists()).then_some(()) }).await;
    let row1 = world.db.row(stale.v1).await.unwrap();
    assert!(row1.subido, "V1 is recorded: {row1:?}");
    assert_eq!(row1.sha256.as_deref(), Some(sha256_hex(&new).as_str()), "V1 holds its new upload");
    drop(sidecar);
    world.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stale_row_s_own_new_upload_moves_to_it_postgres() {
    the_stale_row_s_own_new_upload_moves_to_it(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stale_row_s_own_new_upload_moves_to_it_sqlite() {
    the_stale_row_s_own_new_upload_moves_to_it(Backend::Sqlite).await;
}

/// Item 2 of issue 23: the way out when nothing can tell. A file only the stale row names waits
/// (`status` says why); `adopt --dry-run` shows what would happen and changes nothing; `adopt`
/// refuses while another row names the path, and otherwise gives the file to the venta, which
/// the daemon then moves.
async fn adopt_gives_the_file_to_the_venta_an_operator_names(backend: Backend) {
    let stale = StaleRow::new(backend).await;
    let config = stale.config();
    let sidecar = Sidecar::start(&config, &[], &[]);
    wait_log(&sidecar, "row points at a missing local file").await;
    let world = &stale.world;
    // V1's own document, restored by hand from a backup: nothing says it is V1's.
    let restored = jpeg_bytes(4, 22_000);
    let local = world.write_in_place(NAME, &restored);
    wait_log(&sidecar, "only a row that named this path while no file was there points at it").await;
    let (code, stdout, stderr) = Sidecar::run(&config, &["status"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("ambiguous_owner 1"), "status names why the file waits: {stdout}");

    let v1 = stale.v1.to_string();
    let (code, stdout, stderr) = Sidecar::run(&config, &["adopt", PATH, "--venta", &v1, "--dry-run"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains(&format!("would give venta {v1} the file {PATH}")), "{stdout}");
    assert!(stdout.contains("ambiguous_owner"), "the dry run shows why the daemon waits: {stdout}");
    assert!(local.exists() && !world.db.row(stale.v1).await.unwrap().subido, "the dry run changed nothing");

    // Another row naming the path is written after the file appeared: the daemon would
    // rightly give it the file, so it is stopped while that row exists.
    drop(sidecar);
    let other = world.db.insert_venta("PORTA-OTRA", Some(PATH)).await;
    let (code, stdout, stderr) = Sidecar::run(&config, &["adopt", PATH, "--venta", &v1]);
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(stderr.contains(&format!("venta {other} also names {PATH}")), "{stderr}");
    world.db.execute(&format!("DELETE FROM telefonica_ventaportabilidad WHERE id = {other}")).await;

    let (code, stdout, stderr) = Sidecar::run(&config, &["adopt", PATH, "--venta", &v1]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let sidecar = Sidecar::start(&config, &[], &[]);
    eventually("the adopted file moves", WAIT, || async { (!local.exists()).then_some(()) }).await;
    let row1 = world.db.row(stale.v1).await.unwrap();
    assert!(row1.subido, "{row1:?}");
    assert_eq!(row1.sha256.as_deref(), Some(sha256_hex(&restored).as_str()), "V1 holds the adopted file");
    drop(sidecar);
    stale.world.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adopt_gives_the_file_to_the_venta_an_operator_names_postgres() {
    adopt_gives_the_file_to_the_venta_an_operator_names(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adopt_gives_the_file_to_the_venta_an_operator_names_sqlite() {
    adopt_gives_the_file_to_the_venta_an_operator_names(Backend::Sqlite).await;
}

/// Item 3 of issue 23: a database restored from before a record (an async standby promoted, a
/// commit lost to a power cut) makes the row name its local file again, long gone, and forget
/// its object. Nothing references the object then; `orphans --delete-objects` must still keep
/// it (the journal recorded it for the venta and never saw the venta move on), and `repair`
/// points the row back at it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restored_database_loses_no_document_and_repair_points_the_row_back() {
    let world = World::new(Backend::Postgres).await;
    let config = world.config().write();
    let sidecar = Sidecar::start(&config, &[], &[]);
    sidecar.wait_watching().await;
    let bytes = jpeg_bytes(5, 18_000);
    let local = world.write_in_place("restaurada.jpg", &bytes);
    let id = world.db.insert_venta("PORTA-RESTORE", Some("confrontas/restaurada.jpg")).await;
    eventually("the file moves", WAIT, || async { (!local.exists()).then_some(()) }).await;
    let recorded = world.db.row(id).await.unwrap();
    let object = recorded.object_name.clone().expect("recorded");

    // The restore: the row as the backup had it, before the record.
    world
        .db
        .execute(&format!(
            "UPDATE telefonica_ventaportabilidad SET confronta = 'confrontas/restaurada.jpg', confronta_minio_url = NULL, \
             confronta_minio_object_name = NULL, confronta_subido_a_minio = false, confronta_sha256 = NULL WHERE id = {id}"
        ))
        .await;
    wait_log(&sidecar, "(a database restore?)").await;
    let (code, stdout, stderr) =
        Sidecar::run(&config, &["orphans", "--older-than", "0s", "--delete-objects"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert_eq!(
        world.object_bytes(&object).await,
        bytes,
        "the only copy of the venta's document is kept: {stdout}"
    );

    let (code, stdout, stderr) = Sidecar::run(&config, &["repair", "--dry-run"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains(&format!("would point venta {id:>8}  {object}")), "{stdout}");
    assert_eq!(world.db.row(id).await.unwrap().object_name, None, "the dry run changed nothing");

    let (code, stdout, stderr) = Sidecar::run(&config, &["repair"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let row = world.db.row(id).await.unwrap();
    assert_eq!(row, recorded, "the row is as the record left it");
    let (_, stdout, _) = Sidecar::run(&config, &["repair"]);
    assert!(stdout.contains("1 current, 0 re-pointed"), "{stdout}");
    drop(sidecar);
    world.cleanup().await;
}
