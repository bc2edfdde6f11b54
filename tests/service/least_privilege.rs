//! What the daemon does itself to keep its secrets from the rest of the host (issue 24 item 6);
//! the user, the modes and the units are checked by `tests/deb/run.sh` on the installed package.

use crate::common::{s3_env, Sidecar, TestConfig};
use std::os::unix::fs::{MetadataExt, PermissionsExt};

/// The uid the daemon runs as here: `nobody`, not root (root's processes are root's either way).
const NOBODY: u32 = 65534;

/// Issue 24 item 6: the process is not dumpable, so another process of its own uid (code run by
/// a compromised neighbour under the same account) can neither ptrace it nor read its memory or
/// environment through /proc, and it leaves no core file holding the S3 key. The kernel shows
/// it: a non-dumpable process's /proc files belong to root instead of its own uid. The daemon
/// is caught waiting on a database that never answers (a listener that accepts and stays
/// silent), well past the start of `main`.
#[test]
fn the_daemon_is_not_dumpable() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let config = TestConfig::placed(
        dir.path().join("config.toml"),
        &crate::common::config::Placement {
            media_root: &dir.path().join("media"),
            database_url: format!("postgres://root@127.0.0.1:{port}/test"),
            s3: &s3_env(),
            secret_key_file: &dir.path().join("minio-secret"),
            prefix: "dumpable",
            journal: &dir.path().join("state/journal.sqlite3"),
        },
    )
    .write();
    std::os::unix::fs::chown(&config, Some(NOBODY), Some(NOBODY)).unwrap();
    let mut sidecar = Sidecar::start_as(&config, NOBODY, &[]);
    // The daemon has loaded its config and is connecting: it is past every start-up step that
    // could come before the prctl.
    let (_connection, _) = silent.accept().unwrap();
    let status = std::fs::metadata(format!("/proc/{}/status", sidecar.child.id())).unwrap();
    sidecar.assert_running();
    assert_eq!(
        (status.uid(), status.gid()),
        (0, 0),
        "/proc/<pid>/status belongs to {}:{}: the daemon (uid {NOBODY}) is dumpable",
        status.uid(),
        status.gid()
    );
}
