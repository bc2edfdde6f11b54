//! PostgreSQL helpers: an audit trigger that counts every write to a row, and a LOGIN role of
//! the daemon's own, so its backends can be cut and its logins refused without touching anyone
//! else's. Roles are cluster-wide; each is unique to its case and dropped at the end (also on a
//! failure, by `Drop`).

use std::time::Duration;

use crate::common::{pg_base_url, pg_connect, unique, TestDb};

/// The admin client and schema of a PostgreSQL `TestDb`.
pub fn admin(db: &TestDb) -> (&tokio_postgres::Client, &str) {
    match db {
        TestDb::Postgres { admin, schema } => (admin, schema.as_str()),
        TestDb::Sqlite { .. } => panic!("the reliability harness runs on PostgreSQL"),
    }
}

/// Every UPDATE of a row inserts one audit line naming the session's role, so "no row
/// written twice" is counted by the database itself, whoever wrote. Django's saves that give a
/// venta its file (they change `confronta_asignada_en`, which the daemon never writes) are not
/// the daemon's writes and are not counted.
pub async fn install_audit(db: &TestDb) {
    let (client, schema) = admin(db);
    client
        .batch_execute(&format!(
            "CREATE TABLE rel_audit (seq bigserial PRIMARY KEY, venta_id bigint NOT NULL, object text, \
               writer text NOT NULL, at timestamptz NOT NULL DEFAULT clock_timestamp());
             CREATE FUNCTION rel_audit_fn() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER \
               SET search_path = {schema} AS $$ BEGIN \
               INSERT INTO rel_audit (venta_id, object, writer) VALUES (NEW.id, NEW.confronta_minio_object_name, session_user); \
               RETURN NEW; END $$;
             CREATE TRIGGER rel_audit_t AFTER UPDATE ON telefonica_ventaportabilidad \
               FOR EACH ROW WHEN (NEW.confronta_asignada_en IS NOT DISTINCT FROM OLD.confronta_asignada_en) \
               EXECUTE FUNCTION rel_audit_fn();"
        ))
        .await
        .expect("install the audit trigger");
}

/// A LOGIN role that may read and update the table (and nothing else), for one daemon.
pub struct DaemonRole {
    pub name: String,
    schema: String,
}

impl DaemonRole {
    pub async fn create(db: &TestDb, label: &str) -> DaemonRole {
        let (client, schema) = admin(db);
        let name = unique(&format!("csrel_{label}")).to_lowercase();
        client
            .batch_execute(&format!(
                "CREATE ROLE {name} LOGIN;
                 GRANT USAGE ON SCHEMA {schema} TO {name};
                 GRANT SELECT, UPDATE ON {schema}.telefonica_ventaportabilidad TO {name};"
            ))
            .await
            .expect("create the daemon's role");
        DaemonRole { name, schema: schema.to_owned() }
    }

    /// The daemon's database URL: the base URL with this role as the user.
    pub fn url(&self) -> String {
        let mut url = url::Url::parse(&pg_base_url()).expect("CONFRONTA_TEST_PG_URL is a URL");
        url.set_username(&self.name).unwrap();
        url.set_password(None).unwrap();
        let joiner = if url.query().is_some() { '&' } else { '?' };
        format!("{url}{joiner}options=-c%20search_path%3D{}", self.schema)
    }

    /// Terminates every backend of this role; returns how many.
    pub async fn terminate_backends(&self, db: &TestDb) -> i64 {
        let (client, _) = admin(db);
        let row = client
            .query_one(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE usename = $1",
                &[&self.name],
            )
            .await
            .unwrap();
        row.get(0)
    }

    pub async fn backends(&self, db: &TestDb) -> i64 {
        let (client, _) = admin(db);
        client
            .query_one("SELECT count(*) FROM pg_stat_activity WHERE usename = $1", &[&self.name])
            .await
            .unwrap()
            .get(0)
    }

    /// How many of this role's backends wait on a lock in an UPDATE.
    pub async fn blocked_updates(&self, db: &TestDb) -> i64 {
        let (client, _) = admin(db);
        client
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE usename = $1 AND wait_event_type = 'Lock' \
                 AND query ILIKE 'UPDATE%'",
                &[&self.name],
            )
            .await
            .unwrap()
            .get(0)
    }

    pub async fn alter(&self, db: &TestDb, what: &str) {
        let (client, _) = admin(db);
        client.batch_execute(&format!("ALTER ROLE {} {what}", self.name)).await.unwrap();
    }

    async fn drop_role(name: &str) {
        let client = pg_connect(&pg_base_url()).await;
        let _ = client
            .batch_execute(&format!(
                "ALTER ROLE {name} NOLOGIN; SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{name}'"
            ))
            .await;
        for _ in 0..50 {
            let left: i64 = client
                .query_one("SELECT count(*) FROM pg_stat_activity WHERE usename = $1", &[&name])
                .await
                .map(|row| row.get(0))
                .unwrap_or(0);
            if left == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let _ = client.batch_execute(&format!("DROP OWNED BY {name}; DROP ROLE IF EXISTS {name}")).await;
    }
}

impl Drop for DaemonRole {
    fn drop(&mut self) {
        // Drop cannot await: a thread with its own runtime drops the role.
        let name = self.name.clone();
        let _ = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(DaemonRole::drop_role(&name))
        })
        .join();
    }
}

/// Drops the case's schema when dropped (also on a failure).
pub struct SchemaGuard {
    pub schema: String,
}

impl Drop for SchemaGuard {
    fn drop(&mut self) {
        let schema = self.schema.clone();
        let _ = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async move {
                let client = pg_connect(&pg_base_url()).await;
                let _ = client.batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE")).await;
            })
        })
        .join();
    }
}

/// Drops the schemas and roles (`csrel_*`) that an earlier run left behind when it was killed
/// before its guards ran: only those whose creating process (the pid in the name) is gone, so a
/// concurrent run keeps its own. Runs once per test process.
pub fn sweep_leftovers() {
    static SWEPT: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    SWEPT.get_or_init(|| {
        let _ = std::thread::spawn(|| {
            tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
                let client = pg_connect(&pg_base_url()).await;
                let dead = |name: &str| {
                    name.split('_')
                        .find_map(|part| part.parse::<u32>().ok())
                        .is_some_and(|pid| !std::path::Path::new(&format!("/proc/{pid}")).exists())
                };
                let schemas = client
                    .query("SELECT nspname::text FROM pg_namespace WHERE nspname LIKE 'csrel\\_%'", &[])
                    .await
                    .unwrap_or_default();
                for row in schemas {
                    let name: String = row.get(0);
                    if dead(&name) {
                        let _ = client.batch_execute(&format!("DROP SCHEMA IF EXISTS {name} CASCADE")).await;
                    }
                }
                let roles = client
                    .query("SELECT rolname::text FROM pg_roles WHERE rolname LIKE 'csrel\\_%'", &[])
                    .await
                    .unwrap_or_default();
                for row in roles {
                    let name: String = row.get(0);
                    if dead(&name) {
                        DaemonRole::drop_role(&name).await;
                    }
                }
            })
        })
        .join();
    });
}
