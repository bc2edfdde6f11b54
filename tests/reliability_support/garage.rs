//! garage S3 servers the harness starts for itself: a single node for the S3 outage case
//! (which stops and restarts it) and a 3-node cluster with `replication_factor = 3` for the
//! node-loss case. Both bind to 127.0.0.1 only, on ports in 39410-39499, and are stopped by
//! their PID when the case ends (or when the value is dropped, on a failure).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use confronta_sync::config::Secret;
use confronta_sync::store::{ObjectStore, S3Store};

use crate::common::{minio_config, S3Env};

/// The fixed test credentials, as `scripts/s3-test-server.sh` uses them.
pub const ACCESS_KEY: &str = "GK0123456789abcdef01234567";
pub const SECRET_KEY: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
pub const BUCKET: &str = "telefonica-crea-online";

const FIRST_PORT: u16 = 39410;
const LAST_PORT: u16 = 39499;
static NEXT_PORT: AtomicU16 = AtomicU16::new(FIRST_PORT);

/// Three consecutive free ports (S3, RPC, admin) in the harness's range. A counter keeps the
/// cases of one run apart; the bind probe skips ports another process holds.
pub fn port_block() -> u16 {
    for _ in 0..((LAST_PORT - FIRST_PORT) / 3 + 1) {
        let mut base = NEXT_PORT.fetch_add(3, Ordering::SeqCst);
        if base + 2 > LAST_PORT {
            NEXT_PORT.store(FIRST_PORT + 3, Ordering::SeqCst);
            base = FIRST_PORT;
        }
        if (base..base + 3).all(|port| TcpListener::bind(("127.0.0.1", port)).is_ok()) {
            return base;
        }
    }
    panic!("no three free ports left in 127.0.0.1:{FIRST_PORT}-{LAST_PORT}");
}

/// The garage binary: `CONFRONTA_TEST_GARAGE`, else the one `scripts/s3-test-server.sh`
/// caches (building it there if it is missing).
pub fn garage_binary() -> PathBuf {
    if let Ok(path) = std::env::var("CONFRONTA_TEST_GARAGE") {
        return PathBuf::from(path);
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/s3-test-server.sh");
    let output = Command::new(script)
        .arg("path")
        .stderr(Stdio::inherit())
        .output()
        .expect("run s3-test-server.sh path");
    assert!(output.status.success(), "scripts/s3-test-server.sh path failed");
    let path = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    PathBuf::from(path)
}

/// One garage process and its folders; start and stop it as often as the case needs.
pub struct GarageNode {
    pub dir: PathBuf,
    pub s3_port: u16,
    binary: PathBuf,
    single: bool,
    child: Option<Child>,
}

impl GarageNode {
    /// Writes the node's config. `replication` 1 means a `--single-node --default-bucket`
    /// server; 3 a cluster member that `Cluster::start` wires up.
    fn new(dir: &Path, replication: u32) -> GarageNode {
        let s3_port = port_block();
        std::fs::create_dir_all(dir.join("meta")).unwrap();
        std::fs::create_dir_all(dir.join("data")).unwrap();
        let consistency = if replication > 1 { "consistency_mode = \"consistent\"\n" } else { "" };
        let text = format!(
            r#"metadata_dir = "{dir}/meta"
data_dir = "{dir}/data"
db_engine = "sqlite"
metadata_fsync = false
data_fsync = false
replication_factor = {replication}
{consistency}rpc_bind_addr = "127.0.0.1:{rpc}"
rpc_public_addr = "127.0.0.1:{rpc}"
rpc_secret = "{secret:064}"

[s3_api]
s3_region = "us-east-1"
api_bind_addr = "127.0.0.1:{s3}"
root_domain = ".s3.localhost"

[admin]
api_bind_addr = "127.0.0.1:{admin}"
admin_token = "confronta-sync-reliability"
"#,
            dir = dir.display(),
            rpc = s3_port + 1,
            admin = s3_port + 2,
            s3 = s3_port,
            secret = 4242,
        );
        std::fs::write(dir.join("garage.toml"), text).unwrap();
        GarageNode {
            dir: dir.to_owned(),
            s3_port,
            binary: garage_binary(),
            single: replication == 1,
            child: None,
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.s3_port)
    }

    /// Starts the server on its folders (the same data as before, after a stop).
    pub fn start(&mut self) {
        assert!(self.child.is_none(), "garage node already running");
        let log =
            std::fs::OpenOptions::new().create(true).append(true).open(self.dir.join("garage.log")).unwrap();
        let mut command = Command::new(&self.binary);
        command
            .arg("-c")
            .arg(self.dir.join("garage.toml"))
            .arg("server")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        if self.single {
            command
                .args(["--single-node", "--default-bucket"])
                .env("GARAGE_DEFAULT_ACCESS_KEY", ACCESS_KEY)
                .env("GARAGE_DEFAULT_SECRET_KEY", SECRET_KEY)
                .env("GARAGE_DEFAULT_BUCKET", BUCKET);
        }
        self.child = Some(command.spawn().expect("start garage"));
    }

    /// SIGTERM, then SIGKILL after 10 s; waits for the process either way.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if child.try_wait().ok().flatten().is_some() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGKILL: the node is lost, not shut down.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new(&self.binary)
            .arg("-c")
            .arg(self.dir.join("garage.toml"))
            .args(args)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .output()
            .expect("run the garage CLI")
    }

    /// Runs a CLI command until it succeeds (a node that just started may not take RPC yet,
    /// and a node just connected may not be known to the layout yet), for at most 30 s.
    async fn cli_ok(&self, args: &[&str]) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let output = self.cli(args);
            if output.status.success() {
                return String::from_utf8_lossy(&output.stdout).into_owned();
            }
            assert!(
                Instant::now() < deadline,
                "garage {args:?} failed: {}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for GarageNode {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn s3_env_for(endpoint: &str) -> S3Env {
    S3Env {
        endpoint: endpoint.to_owned(),
        access_key: ACCESS_KEY.into(),
        secret_key: SECRET_KEY.into(),
        bucket: BUCKET.into(),
    }
}

pub fn store_for(env: &S3Env) -> Arc<S3Store> {
    let config = minio_config(env, "x/{id}_{sha256}");
    Arc::new(S3Store::new(&config, &Secret::new(env.secret_key.clone())).unwrap())
}

/// Polls until a client can use the bucket through `endpoint` (and can write and read it back).
pub async fn wait_ready(endpoint: &str, limit: Duration) {
    let store = store_for(&s3_env_for(endpoint));
    let deadline = Instant::now() + limit;
    loop {
        if store.check_bucket().await.is_ok() {
            return;
        }
        assert!(Instant::now() < deadline, "garage at {endpoint} not ready after {limit:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A single-node garage with the test bucket and key.
pub async fn single_node(dir: &Path) -> GarageNode {
    let mut node = GarageNode::new(dir, 1);
    node.start();
    wait_ready(&node.endpoint(), Duration::from_secs(30)).await;
    node
}

/// Three garage nodes, one zone each, `replication_factor = 3`, `consistency_mode =
/// "consistent"`, with the test key and bucket. Node 0 is the one the daemon talks to.
pub struct Cluster {
    pub nodes: Vec<GarageNode>,
}

impl Cluster {
    pub async fn start(dir: &Path) -> Cluster {
        let mut nodes: Vec<GarageNode> =
            (0..3).map(|index| GarageNode::new(&dir.join(format!("node{index}")), 3)).collect();
        for node in &mut nodes {
            node.start();
        }
        // Each node answers `node id` once its RPC side is up.
        let mut ids = Vec::new();
        for node in &nodes {
            let deadline = Instant::now() + Duration::from_secs(30);
            let id = loop {
                let output = node.cli(&["node", "id", "-q"]);
                if output.status.success() {
                    break String::from_utf8_lossy(&output.stdout).trim().to_owned();
                }
                assert!(Instant::now() < deadline, "garage node in {} never answered", node.dir.display());
                tokio::time::sleep(Duration::from_millis(100)).await;
            };
            ids.push(id);
        }
        let first = &nodes[0];
        for id in &ids[1..] {
            first.cli_ok(&["node", "connect", id]).await;
        }
        for (index, id) in ids.iter().enumerate() {
            let short = &id[..16];
            first.cli_ok(&["layout", "assign", "-z", &format!("dc{}", index + 1), "-c", "1G", short]).await;
        }
        first.cli_ok(&["layout", "apply", "--version", "1"]).await;
        first.cli_ok(&["key", "import", "--yes", "-n", "reliability", ACCESS_KEY, SECRET_KEY]).await;
        first.cli_ok(&["bucket", "create", BUCKET]).await;
        first
            .cli_ok(&["bucket", "allow", "--read", "--write", "--owner", BUCKET, "--key", "reliability"])
            .await;
        for node in &nodes {
            wait_ready(&node.endpoint(), Duration::from_secs(60)).await;
        }
        Cluster { nodes }
    }

    /// `garage status` as node 0 sees it.
    pub fn status(&self) -> String {
        let output = self.nodes[0].cli(&["status"]);
        String::from_utf8_lossy(&output.stdout).into_owned()
    }
}
