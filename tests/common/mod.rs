//! Shared test harness: a PostgreSQL schema or a SQLite file holding the Django table, the
//! S3 test server started by `scripts/s3-test-server.sh`, and the real binary run as a child.
//!
//! Endpoints come from the environment, with the defaults the scripts use:
//! `CONFRONTA_TEST_PG_URL` (postgres://root@127.0.0.1:5432/test) and
//! `CONFRONTA_TEST_S3_ENDPOINT` (http://127.0.0.1:39000) with its access and secret keys.

#![allow(dead_code)]

pub mod buckets;
pub mod cases;
pub mod config;
pub mod django;
pub mod notify;
pub mod proxy;
pub mod report;
pub mod scripted_s3;
pub mod small_disk;

pub use config::TestConfig;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use confronta_sync::config::{MinioConfig, Secret};
use confronta_sync::object_name::ObjectName;
use confronta_sync::store::{ObjectStore, S3Store};

/// What Django's migrations create on PostgreSQL (the file bench/bench.py reads too).
pub const DDL_POSTGRES: &str = include_str!("../fixtures/ventas.postgres.sql");

/// What Django's migrations create on SQLite (the file scripts/try-it.sh reads too).
pub const DDL_SQLITE: &str = include_str!("../fixtures/ventas.sqlite.sql");

pub fn pg_base_url() -> String {
    std::env::var("CONFRONTA_TEST_PG_URL").unwrap_or_else(|_| "postgres://root@127.0.0.1:5432/test".into())
}

pub struct S3Env {
    pub endpoint: String,
    pub access_key: String,
    pub secret_key: String,
    pub bucket: String,
}

pub fn s3_env() -> S3Env {
    let var = |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.to_owned());
    S3Env {
        endpoint: var("CONFRONTA_TEST_S3_ENDPOINT", "http://127.0.0.1:39000"),
        access_key: var("CONFRONTA_TEST_S3_ACCESS_KEY", "GK0123456789abcdef01234567"),
        secret_key: var(
            "CONFRONTA_TEST_S3_SECRET_KEY",
            "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        ),
        bucket: var("CONFRONTA_TEST_S3_BUCKET", "telefonica-crea-online"),
    }
}

/// Writes `text` at `path` with mode 0600 (also when the file already exists with another mode).
pub fn write_private(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// A short unique name for schemas and object prefixes.
///
/// The time alone is not enough: two tests starting together on two threads can read the same
/// nanosecond, and then shared one bucket prefix (one's cleanup deleted the other's objects:
/// the stale-row test's O1 went missing in a full run) or one schema. A counter makes each name
/// this process hands out its own.
pub fn unique(label: &str) -> String {
    static HANDED_OUT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    let count = HANDED_OUT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{label}_{}_{:x}_{count}", std::process::id(), nanos & 0xffff_ffff_ffff)
}

/// A database holding the Django table: a fresh PostgreSQL schema or a SQLite file.
pub enum TestDb {
    Postgres { schema: String, admin: tokio_postgres::Client },
    Sqlite { path: PathBuf },
}

impl TestDb {
    pub async fn postgres() -> TestDb {
        let admin = pg_connect(&pg_base_url()).await;
        let schema = unique("cs_test");
        admin.batch_execute(&format!("CREATE SCHEMA {schema}")).await.unwrap();
        admin.batch_execute(&format!("SET search_path = {schema}")).await.unwrap();
        admin.batch_execute(DDL_POSTGRES).await.unwrap();
        TestDb::Postgres { schema, admin }
    }

    pub async fn sqlite(dir: &Path) -> TestDb {
        let path = dir.join("db.sqlite3");
        let connection = rusqlite::Connection::open(&path).unwrap();
        connection.execute_batch(DDL_SQLITE).unwrap();
        TestDb::Sqlite { path }
    }

    /// The URL the daemon is configured with.
    pub fn url(&self) -> String {
        match self {
            TestDb::Postgres { schema, .. } => {
                let base = pg_base_url();
                let joiner = if base.contains('?') { '&' } else { '?' };
                format!("{base}{joiner}options=-c%20search_path%3D{schema}")
            }
            TestDb::Sqlite { path } => format!("sqlite://{}", path.display()),
        }
    }

    pub async fn execute(&self, sql: &str) {
        match self {
            TestDb::Postgres { admin, .. } => {
                admin.batch_execute(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
            }
            TestDb::Sqlite { path } => {
                rusqlite::Connection::open(path)
                    .unwrap()
                    .execute_batch(sql)
                    .unwrap_or_else(|e| panic!("{sql}: {e}"));
            }
        }
    }

    /// Inserts a venta and returns its id, as the companion's `save()` does: a venta saved
    /// with a file carries the time of that assignment (`confronta_asignada_en`).
    pub async fn insert_venta(&self, numero: &str, confronta: Option<&str>) -> i64 {
        match self {
            TestDb::Postgres { admin, .. } => admin
                .query_one(
                    "INSERT INTO telefonica_ventaportabilidad (numero, confronta, confronta_subido_a_minio, confronta_asignada_en) \
                     VALUES ($1, $2::varchar, false, CASE WHEN $2::varchar IS NULL THEN NULL ELSE clock_timestamp() END) RETURNING id",
                    &[&numero, &confronta],
                )
                .await
                .unwrap()
                .get(0),
            TestDb::Sqlite { path } => {
                let connection = rusqlite::Connection::open(path).unwrap();
                connection
                    .execute(
                        "INSERT INTO telefonica_ventaportabilidad (numero, confronta, confronta_subido_a_minio, confronta_asignada_en) \
                         VALUES (?1, ?2, 0, CASE WHEN ?2 IS NULL THEN NULL ELSE strftime('%Y-%m-%d %H:%M:%f', 'now') END)",
                        rusqlite::params![numero, confronta],
                    )
                    .unwrap();
                connection.last_insert_rowid()
            }
        }
    }

    /// Saves venta `id` with a new file at `confronta`, as the companion's `save()` does: the
    /// path, the flag back to false and the time of the assignment; the sidecar's columns kept.
    pub async fn assign(&self, id: i64, confronta: &str) {
        let now = match self {
            TestDb::Postgres { .. } => "clock_timestamp()",
            TestDb::Sqlite { .. } => "strftime('%Y-%m-%d %H:%M:%f', 'now')",
        };
        self.execute(&format!(
            "UPDATE telefonica_ventaportabilidad SET confronta = '{confronta}', confronta_subido_a_minio = false, \
             confronta_asignada_en = {now} WHERE id = {id}"
        ))
        .await;
    }

    /// Moves venta `id`'s last assignment a day back: its file was given long ago.
    pub async fn assigned_a_day_ago(&self, id: i64) {
        let then = match self {
            TestDb::Postgres { .. } => "now() - interval '1 day'",
            TestDb::Sqlite { .. } => "strftime('%Y-%m-%d %H:%M:%f', 'now', '-1 day')",
        };
        self.execute(&format!(
            "UPDATE telefonica_ventaportabilidad SET confronta_asignada_en = {then} WHERE id = {id}"
        ))
        .await;
    }

    pub async fn row(&self, id: i64) -> Option<Row> {
        let sql = "SELECT CAST(id AS bigint), numero, confronta, confronta_minio_url, confronta_minio_object_name, \
                   confronta_subido_a_minio, confronta_sha256, confronta_sync_error FROM telefonica_ventaportabilidad WHERE id = ";
        match self {
            TestDb::Postgres { admin, .. } => {
                admin.query_opt(&format!("{sql} $1"), &[&id]).await.unwrap().map(|r| Row {
                    id: r.get(0),
                    numero: r.get(1),
                    confronta: r.get(2),
                    url: r.get(3),
                    object_name: r.get(4),
                    subido: r.get(5),
                    sha256: r.get(6),
                    sync_error: r.get(7),
                })
            }
            TestDb::Sqlite { path } => {
                let connection = rusqlite::Connection::open(path).unwrap();
                let mut query = connection.prepare(&format!("{sql} ?1")).unwrap();
                let mut rows = query
                    .query_map([id], |r| {
                        Ok(Row {
                            id: r.get(0)?,
                            numero: r.get(1)?,
                            confronta: r.get(2)?,
                            url: r.get(3)?,
                            object_name: r.get(4)?,
                            subido: r.get(5)?,
                            sha256: r.get(6)?,
                            sync_error: r.get(7)?,
                        })
                    })
                    .unwrap();
                rows.next().map(|r| r.unwrap())
            }
        }
    }

    pub async fn drop_schema(&self) {
        if let TestDb::Postgres { schema, admin } = self {
            let _ = admin.batch_execute(&format!("DROP SCHEMA {schema} CASCADE")).await;
        }
    }
}

/// `TestDb::assign` from a thread that cannot await (the reliability harness's writer), on its
/// own connection: Django's save after it wrote the file.
pub fn assign_blocking(db_url: &str, id: i64, confronta: &str) {
    let sql_now = if db_url.starts_with("sqlite://") {
        "strftime('%Y-%m-%d %H:%M:%f', 'now')"
    } else {
        "clock_timestamp()"
    };
    let sql = format!(
        "UPDATE telefonica_ventaportabilidad SET confronta = '{}', confronta_subido_a_minio = false, \
         confronta_asignada_en = {sql_now} WHERE id = {id}",
        confronta.replace('\'', "''")
    );
    let db_url = db_url.to_owned();
    // Its own thread and runtime: the caller may be inside one.
    std::thread::spawn(move || match db_url.strip_prefix("sqlite://") {
        Some(path) => rusqlite::Connection::open(path)
            .unwrap()
            .execute_batch(&sql)
            .unwrap_or_else(|e| panic!("{sql}: {e}")),
        None => {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(async {
                let client = pg_connect(&db_url).await;
                client.batch_execute(&sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
            });
        }
    })
    .join()
    .unwrap();
}

pub async fn pg_connect(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to PostgreSQL at {url}: {e}"));
    tokio::spawn(connection);
    client
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub id: i64,
    pub numero: String,
    pub confronta: Option<String>,
    pub url: Option<String>,
    pub object_name: Option<String>,
    pub subido: bool,
    pub sha256: Option<String>,
    /// Why the daemon refused the row's file, if it did.
    pub sync_error: Option<String>,
}

/// The media folder, journal, config and bucket prefix of one test.
pub struct World {
    pub temp: tempfile::TempDir,
    pub media_root: PathBuf,
    pub db: TestDb,
    pub prefix: String,
    pub store: Arc<S3Store>,
}

impl World {
    pub async fn new(backend: Backend) -> World {
        let temp = tempfile::tempdir().unwrap();
        let media_root = temp.path().join("media");
        std::fs::create_dir_all(media_root.join("confrontas")).unwrap();
        let db = match backend {
            Backend::Postgres => TestDb::postgres().await,
            Backend::Sqlite => TestDb::sqlite(temp.path()).await,
        };
        let env = s3_env();
        let minio = minio_config(&env, "x/{id}_{sha256}");
        let store = Arc::new(S3Store::new(&minio, &Secret::new(env.secret_key.clone())).unwrap());
        World { temp, media_root, db, prefix: unique("t"), store }
    }

    pub fn dir(&self) -> PathBuf {
        self.media_root.join("confrontas")
    }

    pub fn journal_path(&self) -> PathBuf {
        self.temp.path().join("state/journal.sqlite3")
    }

    /// The default quarantine folder: beside the journal, outside MEDIA_ROOT (which Django
    /// serves).
    pub fn quarantine_dir(&self) -> PathBuf {
        self.journal_path().parent().unwrap().join("quarantine")
    }

    /// Where `confrontas/<name>` goes when the daemon quarantines it.
    pub fn quarantined(&self, name: &str) -> PathBuf {
        self.quarantine_dir().join("confrontas").join(name)
    }

    /// This world's config at test speeds (`config::quick`), for the test to adjust and
    /// `write()`. Writing it also writes the secret key file it names, mode 0600.
    pub fn config(&self) -> TestConfig {
        TestConfig::placed(
            self.temp.path().join("config.toml"),
            &config::Placement {
                media_root: &self.media_root,
                database_url: self.db.url(),
                s3: &s3_env(),
                secret_key_file: &self.temp.path().join("minio-secret"),
                prefix: &self.prefix,
                journal: &self.journal_path(),
            },
        )
    }

    /// Writes `bytes` at `confrontas/<name>` through Django's small-upload path.
    pub fn write_in_place(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.dir().join(name);
        django::write_in_place(&path, bytes);
        path
    }

    /// Writes `bytes` at `confrontas/<name>` through Django's large-upload path (a temp file
    /// outside the folder renamed in).
    pub fn rename_in(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.dir().join(name);
        django::rename_in(self.temp.path(), &path, bytes);
        path
    }

    pub fn object(&self, name: &str) -> ObjectName {
        ObjectName::from_stored(name)
    }

    pub async fn object_bytes(&self, name: &str) -> Vec<u8> {
        self.store.get(&self.object(name)).await.unwrap().to_vec()
    }

    pub async fn objects_under_prefix(&self) -> Vec<String> {
        let entries = self.store.list(&format!("{}/", self.prefix)).await.unwrap();
        entries.into_iter().map(|entry| entry.name).collect()
    }

    pub async fn cleanup(&self) {
        for name in self.objects_under_prefix().await {
            let _ = self.store.delete(&ObjectName::from_stored(name)).await;
        }
        self.db.drop_schema().await;
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

pub fn minio_config(env: &S3Env, object_name: &str) -> MinioConfig {
    let text = format!(
        "endpoint = \"{}\"\nbucket = \"{}\"\naccess_key = \"{}\"\nobject_name = \"{object_name}\"\n",
        env.endpoint, env.bucket, env.access_key
    );
    toml::from_str(&text).unwrap()
}

/// Runs `confronta-sync --rescan` with `config` under strace, tracing the system calls `calls`
/// (strace's `-e trace=` list) of every thread; returns its exit status and the trace, a line
/// per call (`PID call(arguments) = result`). For the tests of what reaches the disk, and in
/// which order.
pub fn rescan_under_strace(world: &World, config: &Path, calls: &str) -> (std::process::ExitStatus, String) {
    let trace = world.temp.path().join("strace.out");
    let status = Command::new("strace")
        .args(["-f", "-qq", "-e", &format!("trace={calls}"), "-o"])
        .arg(&trace)
        .arg(env!("CARGO_BIN_EXE_confronta-sync"))
        .arg("--config")
        .arg(config)
        .arg("--rescan")
        .env("RUST_LOG", "error")
        .env_remove("CONFRONTA_SYNC_SECRET_KEY")
        .stdin(Stdio::null())
        .status()
        .expect("strace (Debian's strace package) runs the rescan");
    (status, std::fs::read_to_string(&trace).unwrap_or_default())
}

/// The real binary, running as a child process; killed when dropped.
pub struct Sidecar {
    pub child: Child,
    pub log: PathBuf,
}

impl Sidecar {
    /// The daemon's command line as every test runs it: debug logs, no secret from the
    /// environment, no standard input.
    fn command(binary: &Path, config: &Path, args: &[&str], env: &[(&str, &str)]) -> Command {
        let mut command = Command::new(binary);
        command
            .arg("--config")
            .arg(config)
            .args(args)
            .env("RUST_LOG", "confronta_sync=debug")
            .env_remove("CONFRONTA_SYNC_SECRET_KEY")
            .stdin(Stdio::null());
        for (key, value) in env {
            command.env(key, value);
        }
        command
    }

    /// Starts the daemon with stderr going to a log file beside the config.
    fn spawn(mut command: Command, config: &Path) -> Sidecar {
        let log = config.with_file_name(format!("sidecar-{}.log", unique("run")));
        let log_file = std::fs::File::create(&log).unwrap();
        let child = command.stdout(Stdio::null()).stderr(log_file).spawn().unwrap();
        Sidecar { child, log }
    }

    pub fn start(config: &Path, args: &[&str], env: &[(&str, &str)]) -> Sidecar {
        let binary = Path::new(env!("CARGO_BIN_EXE_confronta-sync"));
        Sidecar::spawn(Sidecar::command(binary, config, args, env), config)
    }

    /// Like `start`, as the unprivileged user `uid` (root reads files whatever their mode).
    pub fn start_as(config: &Path, uid: u32, env: &[(&str, &str)]) -> Sidecar {
        use std::os::unix::fs::PermissionsExt;
        use std::os::unix::process::CommandExt;
        // The build folder may sit in a checkout other users cannot enter: run a copy from
        // beside the config, which the test has opened up.
        let binary = config.with_file_name("confronta-sync-copy");
        std::fs::copy(env!("CARGO_BIN_EXE_confronta-sync"), &binary).unwrap();
        std::fs::set_permissions(&binary, std::fs::Permissions::from_mode(0o755)).unwrap();
        let mut command = Sidecar::command(&binary, config, &[], env);
        command.uid(uid).gid(uid);
        Sidecar::spawn(command, config)
    }

    /// Runs the binary to completion and returns (exit code, stdout, stderr).
    pub fn run(config: &Path, args: &[&str]) -> (i32, String, String) {
        Sidecar::run_with(config, args, &[])
    }

    /// Like `run`, with `env` added to its environment.
    pub fn run_with(config: &Path, args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
        let binary = Path::new(env!("CARGO_BIN_EXE_confronta-sync"));
        let output = Sidecar::command(binary, config, args, env).output().unwrap();
        (
            output.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }

    /// Waits until the daemon has finished starting and watches the folder, so files written
    /// next arrive as events rather than through the start-up walk.
    pub async fn wait_watching(&self) {
        eventually("the daemon watches the folder", Duration::from_secs(60), || async {
            self.log_text().contains("watching").then_some(())
        })
        .await;
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, once the daemon has installed its handlers (before that the signal's default
    /// action kills it, which no exit code describes), then waits up to 30 s for its exit code.
    pub fn terminate(&mut self) -> Option<i32> {
        poll_blocking(Duration::from_secs(10), Duration::from_millis(20), || {
            (self.child.try_wait().unwrap().is_some()
                || self.log_text().contains("signal handlers installed"))
            .then_some(())
        });
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        self.wait_exit(Duration::from_secs(30))
    }

    /// Waits up to `limit` for the daemon to exit by itself; its exit code, or `None` if it is
    /// still running.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<i32> {
        poll_blocking(limit, Duration::from_millis(50), || self.child.try_wait().unwrap())
            .and_then(|s| s.code())
    }

    pub fn assert_running(&mut self) {
        if let Some(status) = self.child.try_wait().unwrap() {
            panic!("sidecar exited with {status}; log:\n{}", self.log_text());
        }
    }
}

impl Drop for Sidecar {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // A failing test's temp dir goes with it: show the end of the daemon's log first.
        if std::thread::panicking() {
            let log = self.log_text();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            eprintln!("--- last lines of {} ---", self.log.display());
            for line in tail.into_iter().rev() {
                eprintln!("{line}");
            }
        }
    }
}

/// Gives venta `id` the file `name` holding `bytes`, as Django's save of a new file does, and
/// waits (a minute at most) until the running daemon recorded it and removed the local file.
pub async fn move_file(world: &World, id: i64, name: &str, bytes: &[u8]) {
    let limit = Duration::from_secs(60);
    let path = world.write_in_place(name, bytes);
    world.db.assign(id, &format!("confrontas/{name}")).await;
    let sha = sha256_hex(bytes);
    eventually(&format!("venta {id} recorded with {name}"), limit, || async {
        world.db.row(id).await.filter(|row| row.subido && row.sha256.as_deref() == Some(sha.as_str()))
    })
    .await;
    eventually(&format!("{} removed", path.display()), limit, || async { (!path.exists()).then_some(()) })
        .await;
}

/// Polls `check` until it returns `Some`, or panics with `what` after `limit`. A liveness bound
/// for asynchronous effects, not a performance assertion.
pub async fn eventually<T, F, Fut>(what: &str, limit: Duration, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    match poll_until(limit, Duration::from_millis(100), check).await {
        Some(value) => value,
        None => panic!("timed out after {limit:?} waiting for: {what}"),
    }
}

/// Polls `check` every `every` until it returns `Some`, or gives up after `limit` with `None`:
/// `eventually` for a harness that records a timeout as a finding instead of failing there.
pub async fn poll_until<T, F, Fut>(limit: Duration, every: Duration, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = check().await {
            return Some(value);
        }
        if Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(every).await;
    }
}

/// `poll_until` for the synchronous helpers (a child's exit), which sleep the thread instead.
pub fn poll_blocking<T>(limit: Duration, every: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = check() {
            return Some(value);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(every);
    }
}

/// Deterministic pseudo-random bytes behind a PDF header, so failures reproduce and the
/// daemon's type check (magic bytes) accepts them as a document.
pub fn sample_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut bytes = random_bytes(seed, len);
    let header = b"%PDF-1.7\n";
    let n = header.len().min(len);
    bytes[..n].copy_from_slice(&header[..n]);
    bytes
}

/// Deterministic pseudo-random bytes with no recognisable type.
pub fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (state >> 33) as u8
        })
        .collect()
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    confronta_sync::hash::Sha256Digest::of_bytes(bytes).to_hex()
}

/// A free port on 127.0.0.1 for a daemon's metrics endpoint, never one handed out before in
/// this process: the port is free only until a daemon binds it, and two daemons configured
/// before either starts (or tests running at the same time) were once given the same one (the
/// second daemon exited 2, address in use).
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

/// GitHub's anchor for a Markdown heading: what a `#section` link must say.
pub fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}
