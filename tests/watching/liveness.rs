//! Never stuck on the database (issue 17, items 1 and 2): a row another transaction holds
//! locked costs only its own file, a PostgreSQL peer that stops answering is marked down within
//! the configured deadline and the daemon recovers when it answers again, and the reconcile
//! query reads the partial index of pending rows instead of the whole table.
//!
//! The time bounds here are liveness bounds (the old code never met them while the lock or the
//! freeze lasted), kept generous for a loaded two-core machine.

use std::time::{Duration, Instant};

use crate::common::proxy::{target_of, via_port, FreezableProxy};
use crate::common::*;
use confronta_sync::config::ColumnNames;
use confronta_sync::db::Statements;

const WAIT: Duration = Duration::from_secs(60);

/// Whether venta `id` is recorded in MinIO and its local file is gone.
async fn moved(world: &World, id: i64, local: &std::path::Path) -> bool {
    let recorded =
        world.db.row(id).await.is_some_and(|row| row.subido && row.confronta.as_deref() == Some(""));
    recorded && !local.exists()
}

/// Sale A's row is held by `SELECT … FOR UPDATE` in another transaction (a slow correction
/// view, a Django worker idle in transaction). Sale B's file, written 1.5 s later, must move
/// while the lock is still held; A's file moves right after the lock goes. Before the fix A's
/// blocked compare-and-set held the one pipelined connection and B waited for the lock too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_row_costs_only_its_own_file() {
    let world = World::new(Backend::Postgres).await;
    let config = world.config().write();
    // Sale A saved with its file, then its row locked before the daemon starts on it.
    let a_path = world.write_in_place("a.pdf", &sample_bytes(1, 40_000));
    let a_id = world.db.insert_venta("PORTA-LOCKED-A", Some("confrontas/a.pdf")).await;
    let locker = pg_connect(&world.db.url()).await;
    locker.batch_execute("BEGIN").await.unwrap();
    locker
        .query(&format!("SELECT id FROM telefonica_ventaportabilidad WHERE id = {a_id} FOR UPDATE"), &[])
        .await
        .unwrap();
    let sidecar = Sidecar::start(&config, &[], &[]);
    sidecar.wait_watching().await;
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let b_written = Instant::now();
    let b_path = world.write_in_place("b.pdf", &sample_bytes(2, 40_000));
    let b_id = world.db.insert_venta("PORTA-FREE-B", Some("confrontas/b.pdf")).await;
    eventually("B's file moves while A's row is locked", Duration::from_secs(5), || async {
        moved(&world, b_id, &b_path).await.then_some(())
    })
    .await;
    let b_took = b_written.elapsed();
    eprintln!("B moved {b_took:?} after it was written, A's row still locked");
    assert!(b_took < Duration::from_secs(5), "B took {b_took:?}");
    // A waits for its lock: its file and its row are as they were.
    assert!(a_path.exists(), "A's file is kept while its row is locked");
    let a_row = world.db.row(a_id).await.unwrap();
    assert_eq!(a_row.confronta.as_deref(), Some("confrontas/a.pdf"));
    assert!(!a_row.subido);

    locker.batch_execute("ROLLBACK").await.unwrap();
    let released = Instant::now();
    eventually("A's file moves once the lock is released", Duration::from_secs(10), || async {
        moved(&world, a_id, &a_path).await.then_some(())
    })
    .await;
    eprintln!("A moved {:?} after its lock was released", released.elapsed());
    let log = sidecar.log_text();
    assert!(!log.contains("service unavailable"), "a locked row is no outage:\n{log}");
    world.cleanup().await;
}

/// The world's config with the database reached through `proxy`, and `database_extra` keys.
fn config_through(world: &World, proxy: &FreezableProxy) -> TestConfig {
    world
        .config()
        .set("database.url", via_port(&world.db.url(), proxy.port))
        .set("database.connect_timeout_s", 1)
        .set("database.keepalive_idle_s", 1)
}

/// The database stops answering mid-run without closing anything. The daemon must mark it down
/// (`confronta_up{service="db"}` 0, the "service unavailable" line) within its deadline, keep
/// the file, and move it once the peer answers again. Before the fix every call waited forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_database_peer_is_marked_down_within_the_deadline_and_recovered_from() {
    let world = World::new(Backend::Postgres).await;
    let proxy = FreezableProxy::start(target_of(&pg_base_url())).await;
    let config = config_through(&world, &proxy)
        .set("database.statement_timeout_ms", 1000)
        .set("database.lock_timeout_ms", 500)
        .write();
    let sidecar = Sidecar::start(&config, &[], &[]);
    sidecar.wait_watching().await;
    let first = world.write_in_place("antes.pdf", &sample_bytes(3, 30_000));
    let first_id = world.db.insert_venta("PORTA-BEFORE", Some("confrontas/antes.pdf")).await;
    eventually("a file moves through the proxy", WAIT, || async {
        moved(&world, first_id, &first).await.then_some(())
    })
    .await;

    proxy.freeze(true);
    let frozen_at = Instant::now();
    let second = world.write_in_place("durante.pdf", &sample_bytes(4, 30_000));
    // Django's own connection does not go through the frozen proxy.
    let second_id = world.db.insert_venta("PORTA-DURING", Some("confrontas/durante.pdf")).await;
    // The deadline is statement_timeout_ms plus the client's margin: 1 s + 2 s here; 15 s leaves
    // room for a loaded machine and still fails on a daemon that waits forever.
    eventually("the database is marked down", Duration::from_secs(15), || async {
        let log = sidecar.log_text();
        log.lines()
            .any(|line| line.contains("service unavailable") && line.contains("database"))
            .then_some(())
    })
    .await;
    eprintln!("database marked down {:?} after the freeze", frozen_at.elapsed());
    assert!(second.exists(), "the file is kept while the database does not answer");
    assert!(!world.db.row(second_id).await.unwrap().subido);

    proxy.freeze(false);
    let resumed = Instant::now();
    eventually("the file moves once the database answers again", WAIT, || async {
        moved(&world, second_id, &second).await.then_some(())
    })
    .await;
    eprintln!("moved {:?} after the peer resumed", resumed.elapsed());
    eventually("the recovery is logged", WAIT, || async {
        sidecar.log_text().contains("service recovered").then_some(())
    })
    .await;
    world.cleanup().await;
}

/// SIGTERM is seen while the database hangs, even with deadlines far off: the reconcile pass
/// waits on its own task, not in the scheduler loop, and the drain gives the hung files up at
/// `shutdown_timeout_s` (they resume on the next start). Before the fix the loop sat in the
/// hung reconcile pass and never saw the signal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_is_seen_while_the_database_peer_is_frozen() {
    let world = World::new(Backend::Postgres).await;
    let proxy = FreezableProxy::start(target_of(&pg_base_url())).await;
    let config = config_through(&world, &proxy)
        .set("database.statement_timeout_ms", 120000)
        .set("service.shutdown_timeout_s", 2)
        .write();
    let mut sidecar = Sidecar::start(&config, &[], &[]);
    sidecar.wait_watching().await;

    proxy.freeze(true);
    let path = world.write_in_place("colgado.pdf", &sample_bytes(5, 30_000));
    let id = world.db.insert_venta("PORTA-HUNG", Some("confrontas/colgado.pdf")).await;
    // Past a reconcile tick (every 2 s in the tests): a pass is now waiting on the frozen peer.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let asked = Instant::now();
    let code = sidecar.terminate();
    eprintln!("exited {:?} after SIGTERM with {code:?}", asked.elapsed());
    assert!(code.is_some(), "the daemon did not stop within 30 s of SIGTERM:\n{}", sidecar.log_text());
    assert!(path.exists(), "the file is kept");

    proxy.freeze(false);
    let _sidecar = Sidecar::start(&config, &[], &[]);
    eventually("the file moves after a restart", WAIT, || async {
        moved(&world, id, &path).await.then_some(())
    })
    .await;
    world.cleanup().await;
}

/// The reconcile query on a table of a million rows, a handful of them pending: with the
/// shipped partial index it reads only pending rows, with the custom plan and with the generic
/// plan a prepared statement ends up using. Without the index it is a sequential scan.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reconcile_query_reads_the_partial_index_on_a_million_rows() {
    let db = TestDb::postgres().await;
    db.execute(
        "INSERT INTO telefonica_ventaportabilidad (numero, confronta, confronta_minio_object_name, confronta_subido_a_minio) \
         SELECT 'PORTA-' || g, CASE WHEN g % 100000 = 0 THEN 'confrontas/f' || g || '.pdf' ELSE '' END, \
         'confrontas/venta_' || g, true FROM generate_series(1, 1000000) AS g; \
         CREATE INDEX telefonica_ventaportabilidad_confronta_idx ON telefonica_ventaportabilidad (confronta); \
         ANALYZE telefonica_ventaportabilidad",
    )
    .await;
    let statements = Statements::new("telefonica_ventaportabilidad", &ColumnNames::default());
    let explain = |generic: bool| {
        let sql = statements.select_local.clone();
        let db = &db;
        async move {
            let TestDb::Postgres { admin, .. } = db else { unreachable!() };
            let mode = if generic { "force_generic_plan" } else { "force_custom_plan" };
            admin
                .batch_execute(&format!("SET plan_cache_mode = {mode}; PREPARE reconcile AS {sql}"))
                .await
                .unwrap();
            let rows = admin
                .simple_query("EXPLAIN EXECUTE reconcile('confrontas/', -9223372036854775808, 10000)")
                .await
                .unwrap();
            admin.batch_execute("DEALLOCATE reconcile").await.unwrap();
            rows.iter()
                .filter_map(|message| match message {
                    tokio_postgres::SimpleQueryMessage::Row(row) => row.get(0).map(str::to_owned),
                    _ => None,
                })
                .collect::<Vec<_>>()
                .join("\n")
        }
    };
    let before = explain(false).await;
    assert!(before.contains("Seq Scan"), "without the partial index the table is scanned:\n{before}");

    db.execute(include_str!("../../packaging/sql/add_confronta_pending_index.sql")).await;
    db.execute("ANALYZE telefonica_ventaportabilidad").await;
    for generic in [false, true] {
        let plan = explain(generic).await;
        assert!(!plan.contains("Seq Scan"), "generic={generic}:\n{plan}");
        assert!(
            plan.contains("telefonica_ventaportabilidad_confronta_pending_idx"),
            "generic={generic}:\n{plan}"
        );
    }
    db.drop_schema().await;
}
