//! S3 servers the harness starts for itself: a single node for the S3 outage case (which stops
//! and restarts it) and a replicated cluster for the node-loss case. The kind follows
//! `CONFRONTA_TEST_S3_SERVER`, as `scripts/s3-test-server.sh` does: SeaweedFS by default (`weed
//! mini` for the single node; a master, three volume servers keeping two copies of each volume,
//! a filer and the S3 gateway for the cluster), or garage (one node; three nodes with
//! `replication_factor = 3`). Every process binds to 127.0.0.1 only, on ports in 39410-39499
//! (SeaweedFS's gRPC twins at +10000), and is stopped by its PID when the case ends or when the
//! value is dropped, on a failure.

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
/// SeaweedFS puts each server's gRPC port at its HTTP port plus this.
const GRPC_OFFSET: u16 = 10000;
static NEXT_PORT: AtomicU16 = AtomicU16::new(FIRST_PORT);

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    SeaweedFs,
    Garage,
}

/// The server kind `CONFRONTA_TEST_S3_SERVER` selects (SeaweedFS when unset).
pub fn kind() -> Kind {
    match std::env::var("CONFRONTA_TEST_S3_SERVER").as_deref() {
        Ok("garage") => Kind::Garage,
        Ok("seaweedfs") | Ok("") | Err(_) => Kind::SeaweedFs,
        Ok(other) => panic!("CONFRONTA_TEST_S3_SERVER must be seaweedfs or garage, not {other:?}"),
    }
}

fn free(port: u16) -> bool {
    TcpListener::bind(("127.0.0.1", port)).is_ok()
}

/// `count` consecutive free ports in the harness's range (and, for SeaweedFS, their gRPC twins).
/// A counter keeps the cases of one run apart; the bind probe skips ports another process holds.
pub fn port_block(count: u16) -> u16 {
    for _ in 0..((LAST_PORT - FIRST_PORT) / count + 1) {
        let mut base = NEXT_PORT.fetch_add(count, Ordering::SeqCst);
        if base + count - 1 > LAST_PORT {
            NEXT_PORT.store(FIRST_PORT + count, Ordering::SeqCst);
            base = FIRST_PORT;
        }
        if (base..base + count).all(|port| free(port) && free(port + GRPC_OFFSET)) {
            return base;
        }
    }
    panic!("no {count} free ports left in 127.0.0.1:{FIRST_PORT}-{LAST_PORT}");
}

/// The server's binary: `CONFRONTA_TEST_S3_BINARY`, else the one `scripts/s3-test-server.sh`
/// caches (installing it there if it is missing).
pub fn server_binary() -> PathBuf {
    if let Ok(path) = std::env::var("CONFRONTA_TEST_S3_BINARY") {
        return PathBuf::from(path);
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/s3-test-server.sh");
    let output = Command::new(script)
        .arg("path")
        .stderr(Stdio::inherit())
        .output()
        .expect("run s3-test-server.sh path");
    assert!(output.status.success(), "scripts/s3-test-server.sh path failed");
    PathBuf::from(String::from_utf8_lossy(&output.stdout).trim())
}

/// One server process, its command line and its log; start and stop it as often as the case
/// needs.
pub struct Process {
    pub name: String,
    dir: PathBuf,
    program: PathBuf,
    args: Vec<String>,
    env: Vec<(&'static str, String)>,
    child: Option<Child>,
}

impl Process {
    fn new(name: &str, dir: &Path, program: &Path, args: Vec<String>) -> Process {
        std::fs::create_dir_all(dir).unwrap();
        Process {
            name: name.to_owned(),
            dir: dir.to_owned(),
            program: program.to_owned(),
            args,
            env: Vec::new(),
            child: None,
        }
    }

    fn env(mut self, key: &'static str, value: &str) -> Process {
        self.env.push((key, value.to_owned()));
        self
    }

    /// Starts the process on its folder (the same data as before, after a stop). Its working
    /// directory is that folder, so whatever it writes beside itself stays in the case's temp dir.
    pub fn start(&mut self) {
        assert!(self.child.is_none(), "{} already running", self.name);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(format!("{}.log", self.name)))
            .unwrap();
        let mut command = Command::new(&self.program);
        command
            .args(&self.args)
            .current_dir(&self.dir)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        for (key, value) in &self.env {
            command.env(key, value);
        }
        self.child = Some(command.spawn().unwrap_or_else(|e| panic!("start {}: {e}", self.name)));
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

    /// Whether the process has exited on its own since it was started (a port it needed was
    /// taken, say); it is then no longer running and may be started again.
    fn exited(&mut self) -> bool {
        let gone = matches!(self.child.as_mut().map(Child::try_wait), Some(Ok(Some(_))));
        if gone {
            self.child = None;
        }
        gone
    }

    /// The last `count` lines of the process's log, for a failure message.
    fn log_tail(&self, count: usize) -> String {
        let text = std::fs::read_to_string(self.dir.join(format!("{}.log", self.name))).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(count)..].join("\n")
    }

    /// SIGKILL: the node is lost, not shut down.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

fn seaweedfs_args(pairs: &[(&str, String)]) -> Vec<String> {
    pairs.iter().map(|(key, value)| format!("-{key}={value}")).collect()
}

fn garage_config(dir: &Path, s3_port: u16, replication: u32) -> PathBuf {
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
api_bind_addr = "127.0.0.1:{s3_port}"
root_domain = ".s3.localhost"

[admin]
api_bind_addr = "127.0.0.1:{admin}"
admin_token = "confronta-sync-reliability"
"#,
        dir = dir.display(),
        rpc = s3_port + 1,
        admin = s3_port + 2,
        secret = 4242,
    );
    let path = dir.join("garage.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// A single S3 server with the test bucket and key: `weed mini`, or garage `--single-node`.
pub struct SingleNode {
    pub process: Process,
    pub s3_port: u16,
}

impl SingleNode {
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.s3_port)
    }

    pub fn start(&mut self) {
        self.process.start();
    }

    pub fn stop(&mut self) {
        self.process.stop();
    }
}

/// Starts a single node in `dir` and waits until the bucket answers.
pub async fn single_node(dir: &Path) -> SingleNode {
    let binary = server_binary();
    let process = match kind() {
        Kind::SeaweedFs => {
            let port = port_block(5);
            let args = seaweedfs_args(&[
                ("dir", dir.join("data").display().to_string()),
                ("ip", "127.0.0.1".into()),
                ("ip.bind", "127.0.0.1".into()),
                ("s3.port", port.to_string()),
                ("master.port", (port + 1).to_string()),
                ("filer.port", (port + 2).to_string()),
                ("volume.port", (port + 3).to_string()),
                ("admin.port", (port + 4).to_string()),
                ("admin.ui", "false".into()),
                ("webdav", "false".into()),
                ("master.telemetry", "false".into()),
                ("s3.port.iceberg", "0".into()),
                ("s3.port.lance", "0".into()),
                ("bucket", BUCKET.into()),
            ]);
            std::fs::create_dir_all(dir.join("data")).unwrap();
            let mut args_with_mini = vec!["mini".to_owned()];
            args_with_mini.extend(args);
            let process = Process::new("weed-mini", dir, &binary, args_with_mini)
                .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
                .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY);
            (process, port)
        }
        Kind::Garage => {
            let port = port_block(3);
            let config = garage_config(dir, port, 1);
            let args = vec![
                "-c".into(),
                config.display().to_string(),
                "server".into(),
                "--single-node".into(),
                "--default-bucket".into(),
            ];
            let process = Process::new("garage", dir, &binary, args)
                .env("GARAGE_DEFAULT_ACCESS_KEY", ACCESS_KEY)
                .env("GARAGE_DEFAULT_SECRET_KEY", SECRET_KEY)
                .env("GARAGE_DEFAULT_BUCKET", BUCKET);
            (process, port)
        }
    };
    let (process, s3_port) = process;
    let mut node = SingleNode { process, s3_port };
    node.start();
    wait_ready(&node.endpoint(), Duration::from_secs(60)).await;
    node
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
        assert!(Instant::now() < deadline, "S3 server at {endpoint} not ready after {limit:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A command's standard output if it succeeded, else what it printed.
fn succeeded(output: Output) -> Result<String, String> {
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    if output.status.success() {
        Ok(stdout)
    } else {
        Err(format!("{stdout}{}", String::from_utf8_lossy(&output.stderr)))
    }
}

/// Repeats an attempt until it succeeds (a server that just started may not answer yet), for at
/// most 30 s; returns what it gave.
async fn until_ok(what: &str, mut attempt: impl FnMut() -> Result<String, String>) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match attempt() {
            Ok(out) => return out,
            Err(why) => assert!(Instant::now() < deadline, "{what} failed: {why}"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// How many volume servers SeaweedFS's master at `master_port` lists (each data node in its
/// `/dir/status` carries one `PublicUrl`); 0 when the master does not answer.
fn seaweedfs_volume_servers(master_port: u16) -> usize {
    let output = Command::new("curl")
        .args(["-s", "--max-time", "5", &format!("http://127.0.0.1:{master_port}/dir/status")])
        .output()
        .expect("run curl");
    String::from_utf8_lossy(&output.stdout).matches("\"PublicUrl\"").count()
}

/// Waits until the master lists `wanted` volume servers. The case is "one node of three lost":
/// `wait_ready`'s test write succeeds once two have registered, and losing one of those leaves a
/// single server, no pair to put a new volume on (`defaultReplication = 001`), and nothing
/// writable (seen once in CI: 26 of 60 files moved, then none, and the master listing one server
/// after the loss). A process that exited on its own meanwhile (a port or its gRPC twin held for
/// a moment as the local end of an outgoing connection, as `scripts/s3-test-server.sh` also
/// retries) is started again, at most 5 times in all; past that, or after 60 s, the setup fails
/// naming the process and its log.
async fn wait_for_volume_servers(processes: &mut [Process], master_port: u16, wanted: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut restarts = 0;
    loop {
        for process in processes.iter_mut() {
            if process.exited() {
                assert!(
                    restarts < 5,
                    "SeaweedFS cluster: {} exited at start, the cluster's exit number {}; its log ends:\n{}",
                    process.name,
                    restarts + 1,
                    process.log_tail(20)
                );
                restarts += 1;
                tokio::time::sleep(Duration::from_secs(1)).await;
                process.start();
            }
        }
        let listed = seaweedfs_volume_servers(master_port);
        if listed >= wanted {
            return;
        }
        if Instant::now() > deadline {
            let logs: Vec<String> = processes
                .iter()
                .filter(|p| p.name.starts_with("volume"))
                .map(|p| format!("{}:\n{}", p.name, p.log_tail(10)))
                .collect();
            panic!("SeaweedFS cluster: the master lists {listed} of {wanted} volume servers after 60 s; their logs end:\n{}", logs.join("\n"));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A replicated cluster that survives losing one storage node. SeaweedFS: one master with
/// `defaultReplication = 001` (two copies of each volume, on two volume servers), three volume
/// servers, a filer and the S3 gateway the daemon talks to. garage: three nodes, one zone each,
/// `replication_factor = 3`, `consistency_mode = "consistent"`, the daemon talking to node 0.
pub struct Cluster {
    pub kind: Kind,
    pub endpoint: String,
    processes: Vec<Process>,
    /// The process `lose_node` kills: a volume server (SeaweedFS) or a node other than the
    /// endpoint (garage).
    victim: usize,
    /// SeaweedFS's master, asked in `status`.
    master_port: u16,
    /// garage's node-0 config, for its CLI.
    garage_config: Option<PathBuf>,
}

impl Cluster {
    pub async fn start(dir: &Path) -> Cluster {
        match kind() {
            Kind::SeaweedFs => Cluster::start_seaweedfs(dir).await,
            Kind::Garage => Cluster::start_garage(dir).await,
        }
    }

    async fn start_seaweedfs(dir: &Path) -> Cluster {
        let binary = server_binary();
        let base = port_block(6);
        let (master, filer, s3) = (base, base + 4, base + 5);
        let loopback = || [("ip", "127.0.0.1".to_owned()), ("ip.bind", "127.0.0.1".to_owned())];
        let mut processes = Vec::new();
        let mut args = vec!["master".to_owned()];
        args.extend(seaweedfs_args(&loopback()));
        args.extend(seaweedfs_args(&[
            ("port", master.to_string()),
            ("mdir", dir.join("master").display().to_string()),
            ("defaultReplication", "001".into()),
            ("volumeSizeLimitMB", "64".into()),
            ("telemetry", "false".into()),
        ]));
        std::fs::create_dir_all(dir.join("master")).unwrap();
        processes.push(Process::new("master", &dir.join("master"), &binary, args));
        for index in 0..3u16 {
            let folder = dir.join(format!("volume{index}"));
            let mut args = vec!["volume".to_owned()];
            args.extend(seaweedfs_args(&loopback()));
            args.extend(seaweedfs_args(&[
                ("port", (base + 1 + index).to_string()),
                ("dir", folder.display().to_string()),
                ("mserver", format!("127.0.0.1:{master}")),
                ("max", "30".into()),
            ]));
            processes.push(Process::new(&format!("volume{index}"), &folder, &binary, args));
        }
        let mut args = vec!["filer".to_owned()];
        args.extend(seaweedfs_args(&loopback()));
        args.extend(seaweedfs_args(&[
            ("port", filer.to_string()),
            ("master", format!("127.0.0.1:{master}")),
            ("localSocket", dir.join("filer.sock").display().to_string()),
        ]));
        processes.push(Process::new("filer", &dir.join("filer"), &binary, args));
        let identities = format!(
            r#"{{"identities":[{{"name":"test","credentials":[{{"accessKey":"{ACCESS_KEY}","secretKey":"{SECRET_KEY}"}}],"actions":["Admin","Read","Write","List","Tagging"]}}]}}"#
        );
        std::fs::create_dir_all(dir.join("s3")).unwrap();
        std::fs::write(dir.join("s3/identities.json"), identities).unwrap();
        let mut args = vec!["s3".to_owned()];
        args.extend(seaweedfs_args(&[
            ("ip.bind", "127.0.0.1".into()),
            ("port", s3.to_string()),
            ("filer", format!("127.0.0.1:{filer}")),
            ("config", dir.join("s3/identities.json").display().to_string()),
            ("port.iceberg", "0".into()),
            ("port.lance", "0".into()),
            ("localSocket", dir.join("s3.sock").display().to_string()),
        ]));
        processes.push(Process::new("s3", &dir.join("s3"), &binary, args));
        for process in &mut processes {
            process.start();
        }
        let endpoint = format!("http://127.0.0.1:{s3}");
        // The gateway has no `-bucket`: create it with a signed PUT once the filer answers.
        let url = format!("{endpoint}/{BUCKET}");
        until_ok("creating the bucket on the SeaweedFS cluster", || {
            let output = Command::new("curl")
                .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "5"])
                .args([
                    "--aws-sigv4",
                    "aws:amz:us-east-1:s3",
                    "--user",
                    &format!("{ACCESS_KEY}:{SECRET_KEY}"),
                ])
                .args(["-X", "PUT", &url])
                .output()
                .expect("run curl");
            let code = String::from_utf8_lossy(&output.stdout).into_owned();
            // 409: a retry after a PUT whose answer was lost found the bucket there already.
            if code == "200" || code == "409" {
                Ok(code)
            } else {
                Err(format!("HTTP {code}"))
            }
        })
        .await;
        wait_ready(&endpoint, Duration::from_secs(60)).await;
        wait_for_volume_servers(&mut processes, master, 3).await;
        Cluster {
            kind: Kind::SeaweedFs,
            endpoint,
            processes,
            victim: 3,
            master_port: master,
            garage_config: None,
        }
    }

    async fn start_garage(dir: &Path) -> Cluster {
        let binary = server_binary();
        let mut processes = Vec::new();
        let mut configs = Vec::new();
        let mut endpoint = String::new();
        for index in 0..3 {
            let folder = dir.join(format!("node{index}"));
            let port = port_block(3);
            if index == 0 {
                endpoint = format!("http://127.0.0.1:{port}");
            }
            let config = garage_config(&folder, port, 3);
            let args = vec!["-c".to_owned(), config.display().to_string(), "server".to_owned()];
            processes.push(Process::new("garage", &folder, &binary, args));
            configs.push(config);
        }
        for process in &mut processes {
            process.start();
        }
        let cli = |config: &Path, args: &[&str]| {
            Command::new(&binary)
                .arg("-c")
                .arg(config)
                .args(args)
                .env("RUST_LOG", "warn")
                .stdin(Stdio::null())
                .output()
                .expect("run the garage CLI")
        };
        let cli = |config: &Path, args: &[&str]| succeeded(cli(config, args));
        // Each node answers `node id` once its RPC side is up.
        let mut ids = Vec::new();
        for config in &configs {
            ids.push(
                until_ok("garage node id", || cli(config, &["node", "id", "-q"])).await.trim().to_owned(),
            );
        }
        let first = &configs[0];
        for id in &ids[1..] {
            until_ok("garage node connect", || cli(first, &["node", "connect", id])).await;
        }
        for (index, id) in ids.iter().enumerate() {
            let zone = format!("dc{}", index + 1);
            until_ok("garage layout assign", || {
                cli(first, &["layout", "assign", "-z", &zone, "-c", "1G", &id[..16]])
            })
            .await;
        }
        until_ok("garage layout apply", || cli(first, &["layout", "apply", "--version", "1"])).await;
        until_ok("garage key import", || {
            cli(first, &["key", "import", "--yes", "-n", "reliability", ACCESS_KEY, SECRET_KEY])
        })
        .await;
        until_ok("garage bucket create", || cli(first, &["bucket", "create", BUCKET])).await;
        until_ok("garage bucket allow", || {
            cli(first, &["bucket", "allow", "--read", "--write", "--owner", BUCKET, "--key", "reliability"])
        })
        .await;
        wait_ready(&endpoint, Duration::from_secs(60)).await;
        Cluster {
            kind: Kind::Garage,
            endpoint,
            processes,
            victim: 2,
            master_port: 0,
            garage_config: Some(first.clone()),
        }
    }

    /// Kills one storage node with SIGKILL: lost, not shut down.
    pub fn lose_node(&mut self) {
        self.processes[self.victim].kill();
    }

    /// What the cluster says of its nodes after a loss, for the report.
    /// Also names each process that exited on its own (the victim is killed, not counted), with
    /// the end of its log: CI shows the case's note, and the cluster's logs go with its machine.
    pub fn status(&mut self) -> String {
        let exited: Vec<String> = self
            .processes
            .iter_mut()
            .filter_map(|p| {
                p.exited().then(|| {
                    format!(
                        "{} exited, its log ends: {}",
                        p.name,
                        p.log_tail(3).replace('\n', " / ").replace('|', "¦")
                    )
                })
            })
            .collect();
        let exited = if exited.is_empty() { "no other process exited".to_owned() } else { exited.join("; ") };
        let listed = match self.kind {
            Kind::SeaweedFs => {
                format!("volume servers the master lists: {}", seaweedfs_volume_servers(self.master_port))
            }
            Kind::Garage => {
                let config = self.garage_config.as_ref().unwrap();
                let output = Command::new(server_binary())
                    .arg("-c")
                    .arg(config)
                    .arg("status")
                    .env("RUST_LOG", "warn")
                    .output()
                    .expect("run the garage CLI");
                let text = String::from_utf8_lossy(&output.stdout);
                let failed = text
                    .lines()
                    .skip_while(|l| !l.contains("FAILED NODES"))
                    .skip(2)
                    .filter(|l| !l.trim().is_empty())
                    .count();
                format!("failed nodes per `garage status`: {failed}")
            }
        };
        format!("{listed}; {exited}")
    }

    pub fn stop(&mut self) {
        for process in self.processes.iter_mut().rev() {
            process.stop();
        }
    }
}
