//! What `check` and start-up find wrong with the sales table before any file moves: a column of
//! the wrong type (refused, exit 3, naming the column and the type expected), and an index the
//! daemon's queries rely on that is missing (a warning naming the SQL that adds it). Rows of a
//! wrongly typed column read mid-run are an error naming the column, never a panic.

use crate::common::{Backend, Sidecar, World};
use confronta_sync::db::DbErrorKind;

/// The SQL each backend needs to turn `numero` into an integer column, as a config mapping
/// another column (or a migration gone wrong) would leave it.
fn numero_as_integer(backend: Backend) -> &'static str {
    match backend {
        Backend::Postgres => {
            "ALTER TABLE telefonica_ventaportabilidad ALTER COLUMN numero TYPE integer USING 0"
        }
        // SQLite cannot change a column's type; a table declared that way stands in for it.
        Backend::Sqlite => {
            "DROP TABLE telefonica_ventaportabilidad; CREATE TABLE telefonica_ventaportabilidad (\
             id integer NOT NULL PRIMARY KEY AUTOINCREMENT, numero integer NOT NULL, \
             confronta varchar(100) NULL, confronta_minio_url varchar(200) NULL, \
             confronta_minio_object_name varchar(500) NULL, confronta_subido_a_minio bool NOT NULL DEFAULT 0, \
             confronta_sha256 varchar(64) NULL, confronta_sync_error text NULL, confronta_asignada_en datetime NULL)"
        }
    }
}

/// Issue 24, item 3 (reproduced): with `numero` an integer column, `check` exited 0 and then
/// every file's task panicked ("error retrieving column 1"). Now `check` and the daemon's
/// start-up refuse with exit 3, naming the column and the type expected.
#[tokio::test]
async fn a_wrongly_typed_column_is_refused_at_check_and_start_up_naming_it() {
    for backend in [Backend::Postgres, Backend::Sqlite] {
        let world = World::new(backend).await;
        world.db.execute(numero_as_integer(backend)).await;
        let config = world.config().write();

        let (code, _, stderr) = Sidecar::run(&config, &["check"]);
        assert_eq!(code, 3, "{backend:?}: check must refuse the table: {stderr}");
        for needle in ["numero", "database.columns.numero", "text"] {
            assert!(stderr.contains(needle), "{backend:?}: check's error names {needle}: {stderr}");
        }

        let mut daemon = Sidecar::start(&config, &[], &[]);
        let code = daemon.wait_exit(std::time::Duration::from_secs(60));
        assert_eq!(code, Some(3), "{backend:?}: start-up must refuse the table: {}", daemon.log_text());
        assert!(daemon.log_text().contains("database.columns.numero"), "{}", daemon.log_text());
        world.cleanup().await;
    }
}

/// Issue 24, item 3: a column whose type changed under a running daemon (a migration) makes
/// the row lookup fail with an error naming the column; PostgreSQL's `Row::get` panicked.
#[tokio::test]
async fn a_wrongly_typed_value_read_mid_run_is_an_error_naming_the_column() {
    for backend in [Backend::Postgres, Backend::Sqlite] {
        let world = World::new(backend).await;
        world.db.execute(numero_as_integer(backend)).await;
        world
            .db
            .execute("INSERT INTO telefonica_ventaportabilidad (numero, confronta) VALUES (42, 'confrontas/a.pdf')")
            .await;
        let config = confronta_sync::config::Config::load(&world.config().write()).unwrap();
        let db = confronta_sync::db::connect(&config.database).await.unwrap();
        let error = db.find_by_confronta("confrontas/a.pdf").await.expect_err("numero is no text");
        assert_eq!(error.kind, DbErrorKind::Schema, "{backend:?}: {error}");
        assert!(error.message.contains("numero"), "{backend:?}: the error names the column: {error}");
        world.cleanup().await;
    }
}

/// A sha256 column too short for a hex SHA-256 would refuse every record.
#[tokio::test]
async fn a_column_too_short_for_its_values_is_refused_naming_its_length() {
    let world = World::new(Backend::Postgres).await;
    world
        .db
        .execute("ALTER TABLE telefonica_ventaportabilidad ALTER COLUMN confronta_sha256 TYPE varchar(32)")
        .await;
    let (code, _, stderr) = Sidecar::run(&world.config().write(), &["check"]);
    assert_eq!(code, 3, "{stderr}");
    for needle in ["confronta_sha256", "database.columns.sha256", "32", "64"] {
        assert!(stderr.contains(needle), "check's error names {needle}: {stderr}");
    }
    world.cleanup().await;
}

/// The statements of one shipped `packaging/sql` file for `backend`: the file itself for
/// PostgreSQL, its commented `SQLite:` form for SQLite.
fn shipped_sql(file: &str, backend: Backend) -> String {
    let text =
        std::fs::read_to_string(format!("{}/packaging/sql/{file}", env!("CARGO_MANIFEST_DIR"))).unwrap();
    match backend {
        Backend::Postgres => text,
        Backend::Sqlite => {
            let sqlite =
                text.split("-- SQLite:").nth(1).unwrap_or_else(|| panic!("{file} has no SQLite form"));
            sqlite.lines().filter_map(|line| line.strip_prefix("--   ")).collect::<Vec<_>>().join("\n")
        }
    }
}

const INDEX_FILES: [&str; 3] =
    ["add_confronta_index.sql", "add_confronta_pending_index.sql", "add_confronta_object_name_index.sql"];

/// Issue 24, item 7: `check` warns of each index the daemon relies on that the table lacks
/// (the row lookup by `confronta`, the reconcile pass's partial index of pending rows, the
/// reference check by object name), naming the shipped SQL that adds it; once the shipped SQL
/// ran, it says nothing.
#[tokio::test]
async fn check_warns_of_each_missing_index_until_the_shipped_sql_adds_it() {
    for backend in [Backend::Postgres, Backend::Sqlite] {
        let world = World::new(backend).await;
        let config = world.config().write();
        let (code, _, stderr) = Sidecar::run(&config, &["check"]);
        assert_eq!(code, 0, "{backend:?}: a missing index is a warning, not a refusal: {stderr}");
        for file in INDEX_FILES {
            let warned = stderr.lines().filter(|line| line.contains("WARN") && line.contains(file)).count();
            assert_eq!(warned, 1, "{backend:?}: one warning names {file}: {stderr}");
        }
        for file in INDEX_FILES {
            world.db.execute(&shipped_sql(file, backend)).await;
        }
        let (code, _, stderr) = Sidecar::run(&config, &["check"]);
        assert_eq!(code, 0, "{stderr}");
        assert!(!stderr.contains("index"), "{backend:?}: with every index there, no warning: {stderr}");
        world.cleanup().await;
    }
}
