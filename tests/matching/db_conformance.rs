//! The SQL adapter's conformance suite: the same checks against PostgreSQL and SQLite.

use crate::common::*;
use confronta_sync::config::ColumnNames;
use confronta_sync::db::{
    DbErrorKind, PostgresSalesDb, RecordOutcome, RecordRequest, SalesDb, SqliteSalesDb, Statements,
};

fn statements() -> Statements {
    Statements::new("telefonica_ventaportabilidad", &ColumnNames::default())
}

async fn open(db: &TestDb) -> Box<dyn SalesDb> {
    match db {
        TestDb::Postgres { .. } => Box::new(PostgresSalesDb::connect(&db.url(), statements()).await.unwrap()),
        TestDb::Sqlite { path } => Box::new(SqliteSalesDb::open(path, statements()).unwrap()),
    }
}

/// Runs `check` on a fresh PostgreSQL schema and a fresh SQLite file.
async fn on_both<F, Fut>(check: F)
where
    F: Fn(TestDb) -> Fut,
    Fut: std::future::Future<Output = TestDb>,
{
    let db = check(TestDb::postgres().await).await;
    db.drop_schema().await;
    let dir = tempfile::tempdir().unwrap();
    check(TestDb::sqlite(dir.path()).await).await;
}

fn record<'a>(id: i64, confronta: &'a str, previous: Option<&'a str>, object: &'a str) -> RecordRequest<'a> {
    RecordRequest {
        venta_id: id,
        expected_confronta: confronta,
        expected_object_name: previous,
        url: "http://s3/b/o",
        object_name: object,
        sha256_hex: "ab",
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_check_reports_the_declared_lengths() {
    on_both(|db| async move {
        let limits = open(&db).await.check_schema().await.unwrap();
        assert_eq!(limits.url_max_len, Some(200));
        assert_eq!(limits.object_name_max_len, Some(500));
        db
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_check_names_a_missing_column_and_a_missing_table() {
    on_both(|db| async move {
        db.execute("ALTER TABLE telefonica_ventaportabilidad DROP COLUMN confronta_minio_object_name").await;
        let err = open(&db).await.check_schema().await.unwrap_err().to_string();
        assert!(err.contains("missing column confronta_minio_object_name"), "{err}");
        db.execute("DROP TABLE telefonica_ventaportabilidad").await;
        let err = open(&db).await.check_schema().await.unwrap_err().to_string();
        assert!(err.contains("table telefonica_ventaportabilidad does not exist"), "{err}");
        db
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn find_by_confronta_matches_the_exact_path_only() {
    on_both(|db| async move {
        let id = db.insert_venta("PORTA-1", Some("confrontas/a.pdf")).await;
        db.insert_venta("PORTA-2", Some("confrontas/a.pdf.bak")).await;
        db.insert_venta("PORTA-3", None).await;
        let sales = open(&db).await;
        let rows = sales.find_by_confronta("confrontas/a.pdf").await.unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].id, id);
        assert_eq!(rows[0].numero, "PORTA-1");
        assert!(!rows[0].subido_a_minio);
        assert!(sales.find_by_confronta("confrontas/none.pdf").await.unwrap().is_empty());
        db
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn record_is_a_compare_and_set_that_applies_once() {
    on_both(|db| async move {
        let id = db.insert_venta("PORTA-1", Some("confrontas/a.pdf")).await;
        let sales = open(&db).await;
        assert_eq!(
            sales.record(&record(id, "confrontas/other.pdf", None, "o1")).await.unwrap(),
            RecordOutcome::RowChanged,
            "a different path does not match"
        );
        assert_eq!(
            sales.record(&record(id, "confrontas/a.pdf", Some("older"), "o1")).await.unwrap(),
            RecordOutcome::RowChanged,
            "a different previous object does not match"
        );
        assert_eq!(
            sales.record(&record(id, "confrontas/a.pdf", None, "o1")).await.unwrap(),
            RecordOutcome::Recorded
        );
        assert_eq!(
            sales.record(&record(id, "confrontas/a.pdf", None, "o1")).await.unwrap(),
            RecordOutcome::RowChanged,
            "a second record of the same path changes nothing"
        );
        let row = db.row(id).await.unwrap();
        assert_eq!(row.confronta.as_deref(), Some(""));
        assert_eq!(row.object_name.as_deref(), Some("o1"));
        assert_eq!(row.url.as_deref(), Some("http://s3/b/o"));
        assert_eq!(row.sha256.as_deref(), Some("ab"));
        assert!(row.subido);
        assert_eq!(
            sales.record(&record(999_999, "confrontas/a.pdf", None, "o1")).await.unwrap(),
            RecordOutcome::RowChanged,
            "a missing row records nothing"
        );
        db
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrected_venta_records_against_its_previous_object() {
    on_both(|db| async move {
        let id = db.insert_venta("PORTA-1", Some("confrontas/a.pdf")).await;
        let sales = open(&db).await;
        sales.record(&record(id, "confrontas/a.pdf", None, "o1")).await.unwrap();
        db.execute(&format!(
            "UPDATE telefonica_ventaportabilidad SET confronta = 'confrontas/b.pdf' WHERE id = {id}"
        ))
        .await;
        let row = &sales.find_by_confronta("confrontas/b.pdf").await.unwrap()[0];
        assert_eq!(row.minio_object_name.as_deref(), Some("o1"));
        assert_eq!(
            sales.record(&record(id, "confrontas/b.pdf", Some("o1"), "o2")).await.unwrap(),
            RecordOutcome::Recorded
        );
        assert_eq!(sales.get(id).await.unwrap().unwrap().minio_object_name.as_deref(), Some("o2"));
        db
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_rows_and_referenced_objects_are_listed() {
    on_both(|db| async move {
        let local = db.insert_venta("PORTA-1", Some("confrontas/a.pdf")).await;
        db.insert_venta("PORTA-2", Some("otros/b.pdf")).await;
        db.insert_venta("PORTA-3", Some("")).await;
        let moved = db.insert_venta("PORTA-4", Some("confrontas/c.pdf")).await;
        let sales = open(&db).await;
        sales.record(&record(moved, "confrontas/c.pdf", None, "o4")).await.unwrap();
        let rows = sales.rows_with_local_file("confrontas/", i64::MIN, 100).await.unwrap();
        assert_eq!(rows.iter().map(|r| r.id).collect::<Vec<_>>(), vec![local]);
        assert_eq!(sales.referenced_objects(i64::MIN, 100).await.unwrap(), vec![(moved, "o4".to_owned())]);

        // Paging: one row per page, each page after the last id seen, ends with an empty page.
        let later = db.insert_venta("PORTA-5", Some("confrontas/e.pdf")).await;
        let first = sales.rows_with_local_file("confrontas/", i64::MIN, 1).await.unwrap();
        assert_eq!(first.iter().map(|r| r.id).collect::<Vec<_>>(), vec![local]);
        let second = sales.rows_with_local_file("confrontas/", local, 1).await.unwrap();
        assert_eq!(second.iter().map(|r| r.id).collect::<Vec<_>>(), vec![later]);
        assert!(sales.rows_with_local_file("confrontas/", later, 1).await.unwrap().is_empty());
        db
    })
    .await;
}

/// The report queries `verify` and `orphans` page through (issue 17 item 9): rows in MinIO and
/// referenced objects one page after the last id seen, and the batch re-check before a delete.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_queries_page_by_id_and_check_a_batch_of_objects_at_once() {
    on_both(|db| async move {
        let sales = open(&db).await;
        let mut moved = Vec::new();
        for n in 0..3 {
            let path = format!("confrontas/m{n}.pdf");
            let id = db.insert_venta(&format!("PORTA-M{n}"), Some(&path)).await;
            sales.record(&record(id, &path, None, &format!("obj{n}"))).await.unwrap();
            moved.push(id);
        }
        db.insert_venta("PORTA-L", Some("confrontas/local.pdf")).await;

        let first = sales.rows_in_minio(i64::MIN, 2).await.unwrap();
        assert_eq!(first.iter().map(|r| r.id).collect::<Vec<_>>(), moved[..2]);
        let second = sales.rows_in_minio(moved[1], 2).await.unwrap();
        assert_eq!(second.iter().map(|r| r.id).collect::<Vec<_>>(), moved[2..]);
        assert!(sales.rows_in_minio(moved[2], 2).await.unwrap().is_empty());

        let first = sales.referenced_objects(i64::MIN, 2).await.unwrap();
        assert_eq!(first, vec![(moved[0], "obj0".to_owned()), (moved[1], "obj1".to_owned())]);
        let second = sales.referenced_objects(moved[1], 2).await.unwrap();
        assert_eq!(second, vec![(moved[2], "obj2".to_owned())]);
        assert!(sales.referenced_objects(moved[2], 2).await.unwrap().is_empty());

        let asked: Vec<String> = ["obj2", "nadie", "obj0", "o'quote"].iter().map(|s| s.to_string()).collect();
        let mut found = sales.referenced_among(&asked).await.unwrap();
        found.sort();
        assert_eq!(found, vec!["obj0".to_owned(), "obj2".to_owned()]);
        assert!(sales.referenced_among(&[]).await.unwrap().is_empty());
        db
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_claims_keep_two_sidecars_off_one_row() {
    let db = TestDb::postgres().await;
    let first = open(&db).await;
    let second = open(&db).await;
    assert!(first.try_claim(7).await.unwrap());
    assert!(!second.try_claim(7).await.unwrap(), "the second sidecar must not work on the row");
    assert!(second.try_claim(8).await.unwrap(), "other rows stay free");
    first.release_claim(7).await;
    assert!(second.try_claim(7).await.unwrap(), "released claims can be taken");
    second.release_claim(7).await;
    second.release_claim(8).await;
    db.drop_schema().await;
}

/// Regression: claim keys once named only the table, so the same venta id in two schemas (two
/// CRMs on one server, or parallel tests) looked busy to each other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_claims_in_different_schemas_do_not_collide() {
    let first_db = TestDb::postgres().await;
    let second_db = TestDb::postgres().await;
    let first = open(&first_db).await;
    let second = open(&second_db).await;
    assert!(first.try_claim(7).await.unwrap());
    assert!(second.try_claim(7).await.unwrap(), "venta 7 of another schema is another row");
    first.release_claim(7).await;
    second.release_claim(7).await;
    first_db.drop_schema().await;
    second_db.drop_schema().await;
}

/// Statements are prepared once per connection. A migration that changes a selected column's
/// type makes PostgreSQL refuse the old plan ("cached plan must not change result type"); the
/// adapter prepares the statement again and the call succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_prepared_statements_survive_a_migration() {
    let db = TestDb::postgres().await;
    let id = db.insert_venta("PORTA-1", Some("confrontas/a.pdf")).await;
    let sales = open(&db).await;
    assert_eq!(sales.find_by_confronta("confrontas/a.pdf").await.unwrap()[0].id, id);
    // Prepare the compare-and-set too (this one matches nothing).
    let unmatched = sales.record(&record(id, "confrontas/other.pdf", None, "o0")).await.unwrap();
    assert_eq!(unmatched, RecordOutcome::RowChanged);
    db.execute("ALTER TABLE telefonica_ventaportabilidad ALTER COLUMN confronta TYPE varchar(255)").await;
    let rows = sales.find_by_confronta("confrontas/a.pdf").await.unwrap();
    assert_eq!(rows[0].id, id, "the statement is prepared again after the migration");
    let recorded = sales.record(&record(id, "confrontas/a.pdf", None, "o1")).await.unwrap();
    assert_eq!(recorded, RecordOutcome::Recorded);
    db.drop_schema().await;
}

/// Issue 28: the files that record at the same moment share one statement and one commit, and
/// each row is still judged on its own: a row whose compare-and-set fails is `RowChanged`, a
/// row another transaction holds locked waits out `lock_timeout` alone (`RowLocked`), and the
/// others are recorded, in one transaction (their new versions share one `xmin`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_records_arriving_together_share_a_commit_and_are_judged_alone() {
    let db = TestDb::postgres().await;
    let mut ids = Vec::new();
    for n in 0..4 {
        ids.push(db.insert_venta(&format!("PORTA-{n}"), Some(&format!("confrontas/{n}.pdf"))).await);
    }
    let sales = open(&db).await;
    let locker = pg_connect(&db.url()).await;
    locker.batch_execute("BEGIN").await.unwrap();
    locker
        .query(&format!("SELECT id FROM telefonica_ventaportabilidad WHERE id = {} FOR UPDATE", ids[3]), &[])
        .await
        .unwrap();
    let requests = [
        record(ids[0], "confrontas/0.pdf", None, "o0"),
        record(ids[1], "confrontas/not-its-path.pdf", None, "o1"),
        record(ids[2], "confrontas/2.pdf", None, "o2"),
        record(ids[3], "confrontas/3.pdf", None, "o3"),
    ];
    let outcomes = futures_util::future::join_all(requests.iter().map(|r| sales.record(r))).await;
    locker.batch_execute("ROLLBACK").await.unwrap();
    assert_eq!(outcomes[0].as_ref().unwrap(), &RecordOutcome::Recorded);
    assert_eq!(outcomes[1].as_ref().unwrap(), &RecordOutcome::RowChanged);
    assert_eq!(outcomes[2].as_ref().unwrap(), &RecordOutcome::Recorded);
    let locked = outcomes[3].as_ref().unwrap_err();
    assert_eq!(locked.kind, DbErrorKind::RowLocked, "{locked}");
    for (n, recorded) in [(0, true), (1, false), (2, true), (3, false)] {
        let row = db.row(ids[n]).await.unwrap();
        assert_eq!(row.subido, recorded, "venta {n}");
        let expected = if recorded { String::new() } else { format!("confrontas/{n}.pdf") };
        assert_eq!(row.confronta.as_deref(), Some(expected.as_str()), "venta {n}");
    }
    let checker = pg_connect(&db.url()).await;
    let xmins: Vec<String> = checker
        .query(
            &format!(
                "SELECT xmin::text FROM telefonica_ventaportabilidad WHERE id IN ({}, {})",
                ids[0], ids[2]
            ),
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(xmins.len(), 2);
    assert_eq!(xmins[0], xmins[1], "the two rows recorded together were written by one transaction");
    db.drop_schema().await;
}

/// Issue 28: the lookup takes the claim in its own statement, and the compare-and-set ends it
/// whatever it says, so a second sidecar is kept off the row until then and only until then.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_lookup_claims_the_row_and_the_record_releases_it() {
    let db = TestDb::postgres().await;
    let a = db.insert_venta("PORTA-A", Some("confrontas/a.pdf")).await;
    let b = db.insert_venta("PORTA-B", Some("confrontas/b.pdf")).await;
    let first = open(&db).await;
    let second = open(&db).await;
    for (id, path) in [(a, "confrontas/a.pdf"), (b, "confrontas/b.pdf")] {
        let found = first.find_and_claim(path).await.unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!((found[0].row.id, found[0].claimed), (id, true));
        let other = second.find_and_claim(path).await.unwrap();
        assert_eq!((other[0].row.id, other[0].claimed), (id, false), "the second sidecar is kept off");
    }
    assert!(first.find_and_claim("confrontas/none.pdf").await.unwrap().is_empty());
    // Recorded, and a compare-and-set that failed: both end the first sidecar's claim.
    assert_eq!(
        first.record(&record(a, "confrontas/a.pdf", None, "oa")).await.unwrap(),
        RecordOutcome::Recorded
    );
    assert_eq!(
        first.record(&record(b, "confrontas/elsewhere.pdf", None, "ob")).await.unwrap(),
        RecordOutcome::RowChanged
    );
    assert!(second.try_claim(a).await.unwrap(), "the recorded row's claim was released");
    assert!(second.try_claim(b).await.unwrap(), "the unrecorded row's claim was released");
    second.release_claim(a).await;
    second.release_claim(b).await;
    db.drop_schema().await;
}
