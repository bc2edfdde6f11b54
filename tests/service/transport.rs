//! How the daemon reaches its servers: PostgreSQL over TLS as `sslmode` says (against a
//! PostgreSQL started here with a certificate of a test CA), MinIO behind a private CA
//! (`minio.ca_file`, or the system's store) for both HTTP clients, a proxy only when configured,
//! and a PUT deadline that scales with the body, so a blackholed server is noticed in seconds.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::common::scripted_s3::{Answer, ScriptedS3};
use crate::common::{Backend, S3Env, Sidecar, World};
use confronta_sync::config::Secret;
use confronta_sync::hash::hash_file;
use confronta_sync::object_name::ObjectName;
use confronta_sync::store::{ObjectStore, S3Store, StoreErrorKind, UploadRequest};

/// Runs `command`, panicking with its output if it fails.
fn run(command: &mut Command) {
    let output = command.output().unwrap_or_else(|e| panic!("{command:?}: {e}"));
    assert!(output.status.success(), "{command:?}: {}", String::from_utf8_lossy(&output.stderr));
}

/// A test CA and a certificate it issued for `localhost` only (no IP address), in `dir`.
struct Certificates {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

fn certificates(dir: &Path, name: &str) -> Certificates {
    let file = |suffix: &str| dir.join(format!("{name}-{suffix}"));
    let (ca_key, ca, key, csr, cert, ext) = (
        file("ca.key"),
        file("ca.pem"),
        file("server.key"),
        file("server.csr"),
        file("server.pem"),
        file("ext.cnf"),
    );
    let openssl = || Command::new("openssl");
    run(openssl()
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj"])
        .arg(format!("/CN={name} test CA"))
        .arg("-keyout")
        .arg(&ca_key)
        .arg("-out")
        .arg(&ca));
    run(openssl()
        .args(["req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&csr));
    std::fs::write(&ext, "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n").unwrap();
    run(openssl()
        .args(["x509", "-req", "-days", "2", "-CAcreateserial", "-in"])
        .arg(&csr)
        .arg("-CA")
        .arg(&ca)
        .arg("-CAkey")
        .arg(&ca_key)
        .arg("-out")
        .arg(&cert)
        .arg("-extfile")
        .arg(&ext));
    Certificates { ca, cert, key }
}

/// The `postgres` account: initdb refuses to run as root.
fn postgres_account() -> (u32, u32) {
    let name = std::ffi::CString::new("postgres").unwrap();
    let entry = unsafe { libc::getpwnam(name.as_ptr()) };
    assert!(!entry.is_null(), "no postgres user on this machine");
    unsafe { ((*entry).pw_uid, (*entry).pw_gid) }
}

const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

/// A PostgreSQL of its own, accepting TCP connections only over TLS (with a certificate for
/// `localhost` of a test CA) and plain ones on its UNIX socket; stopped when dropped.
struct TlsPostgres {
    dir: tempfile::TempDir,
    port: u16,
    certificates: Certificates,
    account: (u32, u32),
}

impl TlsPostgres {
    fn start() -> TlsPostgres {
        use std::os::unix::process::CommandExt;
        let account = postgres_account();
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::chown(dir.path(), Some(account.0), Some(account.1)).unwrap();
        let certificates = certificates(dir.path(), "pg");
        for file in [&certificates.cert, &certificates.key] {
            std::os::unix::fs::chown(file, Some(account.0), Some(account.1)).unwrap();
        }
        let as_postgres = |program: &str| {
            let mut command = Command::new(Path::new(PG_BIN).join(program));
            command.uid(account.0).gid(account.1).current_dir(dir.path());
            command
        };
        let data = dir.path().join("data");
        run(as_postgres("initdb").arg("-D").arg(&data).args(["-A", "trust", "-U", "root", "--no-sync"]));
        let port = crate::common::free_port();
        let conf = format!(
            "listen_addresses = '127.0.0.1'\nport = {port}\nunix_socket_directories = '{}'\nssl = on\n\
             ssl_cert_file = '{}'\nssl_key_file = '{}'\nfsync = off\n",
            dir.path().display(),
            certificates.cert.display(),
            certificates.key.display()
        );
        let mut postgresql_conf =
            std::fs::OpenOptions::new().append(true).open(data.join("postgresql.conf")).unwrap();
        std::io::Write::write_all(&mut postgresql_conf, conf.as_bytes()).unwrap();
        std::fs::write(
            data.join("pg_hba.conf"),
            "local all all trust\nhostssl all all 127.0.0.1/32 trust\nhostnossl all all 127.0.0.1/32 reject\n",
        )
        .unwrap();
        run(as_postgres("pg_ctl")
            .arg("-D")
            .arg(&data)
            .arg("-l")
            .arg(dir.path().join("log"))
            .args(["-w", "start"]));
        TlsPostgres { dir, port, certificates, account }
    }

    /// A plain connection over the UNIX socket, for the test's own set-up.
    async fn admin(&self) -> tokio_postgres::Client {
        let (client, connection) = tokio_postgres::Config::new()
            .host_path(self.dir.path())
            .port(self.port)
            .user("root")
            .dbname("postgres")
            .connect(tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        client
    }

    fn url(&self, host: &str, params: &str) -> String {
        format!("postgres://root@{host}:{}/postgres?{params}", self.port)
    }
}

impl Drop for TlsPostgres {
    fn drop(&mut self) {
        use std::os::unix::process::CommandExt;
        let _ = Command::new(Path::new(PG_BIN).join("pg_ctl"))
            .uid(self.account.0)
            .gid(self.account.1)
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .args(["-m", "immediate", "stop"])
            .output();
    }
}

/// Issue 24, item 5: PostgreSQL over TLS as libpq's `sslmode` and `sslrootcert` say. Before,
/// every connection was plain (`NoTls`): `sslmode=require` failed and `verify-full` was not
/// understood. The server here refuses plain TCP connections, so each success went over TLS.
// Multi-threaded: the relays run while the test waits on the binary, blocking its thread.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_over_tls_is_verified_as_sslmode_says() {
    let pg = TlsPostgres::start();
    pg.admin().await.batch_execute(crate::common::DDL_POSTGRES).await.unwrap();
    let temp = tempfile::tempdir().unwrap();
    let other = certificates(temp.path(), "other");
    let ca = pg.certificates.ca.display().to_string();
    let cases = [
        (pg.url("localhost", &format!("sslmode=verify-full&sslrootcert={ca}")), None),
        // verify-ca checks the chain, not the name: 127.0.0.1 is not in the certificate.
        (pg.url("127.0.0.1", &format!("sslmode=verify-ca&sslrootcert={ca}")), None),
        (pg.url("localhost", "sslmode=require"), None),
        (pg.url("127.0.0.1", &format!("sslmode=verify-full&sslrootcert={ca}")), Some("certificate")),
        (
            pg.url("localhost", &format!("sslmode=verify-full&sslrootcert={}", other.ca.display())),
            Some("certificate"),
        ),
        // The system's store does not hold the test CA.
        (pg.url("localhost", "sslmode=verify-full"), Some("certificate")),
        // libpq's `require` with a root certificate verifies the chain too.
        (
            pg.url("localhost", &format!("sslmode=require&sslrootcert={}", other.ca.display())),
            Some("certificate"),
        ),
        (pg.url("localhost", "sslmode=disable"), Some("no encryption")),
    ];
    for (url, refused) in cases {
        let config: confronta_sync::config::DatabaseConfig =
            toml::from_str(&format!("url = {url:?}")).unwrap();
        let checked = match confronta_sync::db::connect(&config).await {
            Ok(db) => db.check_schema().await.map(|_| ()),
            Err(e) => Err(e),
        };
        match (refused, checked) {
            (None, Ok(())) => {}
            (None, Err(e)) => panic!("{url}: {e}"),
            (Some(needle), Err(e)) => {
                assert!(e.to_string().contains(needle), "{url}: the error says {needle}: {e}")
            }
            (Some(_), Ok(())) => panic!("{url}: connected, but it must be refused"),
        }
    }

    // The binary: `check` passes over verify-full, and a wrong root stops it with exit 3.
    let world = World::new(Backend::Sqlite).await;
    let url = pg.url("localhost", &format!("sslmode=verify-full&sslrootcert={ca}"));
    let (code, _, stderr) = Sidecar::run(&world.config().set("database.url", url).write(), &["check"]);
    assert_eq!(code, 0, "{stderr}");
    let url = pg.url("localhost", &format!("sslmode=verify-full&sslrootcert={}", other.ca.display()));
    let (code, _, stderr) = Sidecar::run(&world.config().set("database.url", url).write(), &["check"]);
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains("certificate"), "{stderr}");
    world.cleanup().await;
}

/// A TLS front for `target` (the S3 test server) with `certificates`' server certificate.
async fn tls_front(certificates: &Certificates, target: String) -> u16 {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let chain =
        CertificateDer::pem_file_iter(&certificates.cert).unwrap().collect::<Result<Vec<_>, _>>().unwrap();
    let key = PrivateKeyDer::from_pem_file(&certificates.key).unwrap();
    let config =
        rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let (acceptor, target) = (acceptor.clone(), target.clone());
            tokio::spawn(async move {
                let Ok(mut client) = acceptor.accept(client).await else { return };
                let Ok(mut server) = tokio::net::TcpStream::connect(&target).await else { return };
                let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
            });
        }
    });
    port
}

fn s3_host_port() -> String {
    crate::common::s3_env().endpoint.trim_start_matches("http://").trim_end_matches('/').to_owned()
}

/// Issue 24, item 5: a MinIO behind a private CA. `check` runs the probe, which goes through
/// both HTTP clients (the SDK's stat, listing and delete; our signed PUTs): with `minio.ca_file`
/// (or the CA in the system's store, here through `SSL_CERT_FILE`) it passes, without it the
/// certificate is refused (exit 4). Before, `minio.ca_file` was an unknown key and the system's
/// store was not read.
// Multi-threaded: the relays run while the test waits on the binary, blocking its thread.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_ca_minio_works_through_ca_file_or_the_system_store() {
    let world = World::new(Backend::Sqlite).await;
    let certificates = certificates(world.temp.path(), "minio");
    let port = tls_front(&certificates, s3_host_port()).await;
    let endpoint = format!("https://localhost:{port}");
    let config = world.config().set("minio.endpoint", endpoint.as_str());

    let path = config.clone().set("minio.ca_file", certificates.ca.display().to_string()).write();
    let (code, _, stderr) = Sidecar::run(&path, &["check"]);
    assert_eq!(code, 0, "with minio.ca_file: {stderr}");

    let path = config.write();
    let (code, _, stderr) = Sidecar::run(&path, &["check"]);
    assert_eq!(code, 4, "without the CA: {stderr}");
    assert!(stderr.to_ascii_lowercase().contains("certificate"), "{stderr}");

    let ca = certificates.ca.display().to_string();
    let mut daemon = Sidecar::start(&path, &["check"], &[("SSL_CERT_FILE", ca.as_str())]);
    let code = daemon.wait_exit(Duration::from_secs(60));
    assert_eq!(code, Some(0), "with the CA in the system's store: {}", daemon.log_text());
    world.cleanup().await;
}

/// A TCP listener that counts its connections and relays them to `target`, if given.
async fn counting_relay(target: Option<String>) -> (u16, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let count = Arc::new(AtomicUsize::new(0));
    let counted = count.clone();
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
            let Some(target) = target.clone() else { continue };
            tokio::spawn(async move {
                let Ok(mut server) = tokio::net::TcpStream::connect(&target).await else { return };
                let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
            });
        }
    });
    (port, count)
}

/// Issue 24, item 5: a proxy only when configured. A proxy in the environment (meant for a shell
/// session, say) took the bucket's traffic; now it is ignored, and `minio.proxy` is used.
// Multi-threaded: the relays run while the test waits on the binary, blocking its thread.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_is_used_only_when_configured() {
    let world = World::new(Backend::Sqlite).await;
    let (sink, sunk) = counting_relay(None).await;
    let proxy = format!("http://127.0.0.1:{sink}");
    let env =
        [("HTTP_PROXY", proxy.as_str()), ("HTTPS_PROXY", proxy.as_str()), ("ALL_PROXY", proxy.as_str())];
    let mut daemon = Sidecar::start(&world.config().write(), &["check"], &env);
    let code = daemon.wait_exit(Duration::from_secs(60));
    assert_eq!(code, Some(0), "{}", daemon.log_text());
    assert_eq!(sunk.load(Ordering::SeqCst), 0, "the environment's proxy was used");

    let (relay, relayed) = counting_relay(Some(s3_host_port())).await;
    let config = world.config().set("minio.proxy", format!("http://127.0.0.1:{relay}")).write();
    let (code, _, stderr) = Sidecar::run(&config, &["check"]);
    assert_eq!(code, 0, "through minio.proxy: {stderr}");
    assert!(relayed.load(Ordering::SeqCst) > 0, "minio.proxy was not used");
    world.cleanup().await;
}

/// Issue 24, item 5: a PUT's deadline scales with its body. A server that takes the request and
/// never answers held a small file for the flat 300 s; at the shipped rate (128 KiB/s) a 1,000
/// byte PUT now gives up after 21 s (20 s, plus one for the body).
#[tokio::test]
async fn a_blackholed_put_is_given_up_after_a_deadline_scaled_to_its_size() {
    let temp = tempfile::tempdir().unwrap();
    let path = temp.path().join("small.pdf");
    std::fs::write(&path, crate::common::sample_bytes(5, 1000)).unwrap();
    let hash = hash_file(&path, None).unwrap();
    let server = ScriptedS3::start(|_| Answer::Silence).await;
    let env = S3Env {
        endpoint: server.endpoint(),
        access_key: "k".into(),
        secret_key: "s".into(),
        bucket: "bucket".into(),
    };
    let store =
        S3Store::new(&crate::common::minio_config(&env, "x/{id}_{sha256}"), &Secret::new("s")).unwrap();
    let request = UploadRequest {
        path: &path,
        hash: &hash,
        content_type: "application/pdf",
        multipart_threshold: 5 << 20,
        part_size: 5 << 20,
        if_absent: false,
    };
    // A liveness bound for the test, well above the deadline expected.
    let name = ObjectName::from_stored("x/1_a.pdf");
    let upload = store.upload(&name, request);
    let error = tokio::time::timeout(Duration::from_secs(120), upload)
        .await
        .expect("the PUT was still waiting after 120 s")
        .unwrap_err();
    assert_eq!(error.kind, StoreErrorKind::Unavailable, "{error}");
    assert!(error.message.contains("no answer within 21s"), "{error}");
}
