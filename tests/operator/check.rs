//! `check` looks at what would stop the daemon, or leave it running uselessly, before a start
//! does (issue 25 item 6): the watched, journal and quarantine folders, clamd, the metrics
//! address and who can read the secret key; and the operator commands work with each way the
//! docs give to pass the secret.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::common::*;

/// The user `check` judges the files for when run as root, instead of `confronta-sync`
/// (which this machine does not have).
const SERVICE_USER_ENV: &str = "CONFRONTA_SYNC_SERVICE_USER";

/// A read-only tmpfs mounted over a folder for the test's length. Tests run as root, whom no
/// mode bit stops: only a read-only file system refuses root a write.
struct ReadOnly(PathBuf);

impl ReadOnly {
    fn mount(dir: &Path) -> ReadOnly {
        std::fs::create_dir_all(dir).unwrap();
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "ro,size=1m", "tmpfs"])
            .arg(dir)
            .status()
            .unwrap()
            .success();
        assert!(mounted, "this test needs to mount a tmpfs (root)");
        ReadOnly(dir.to_owned())
    }
}

impl Drop for ReadOnly {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// The line of `stdout` that holds `needle`; fails the test, showing `stdout`, when none does.
fn line<'a>(stdout: &'a str, needle: &str) -> &'a str {
    let found = report::line_with(stdout, needle);
    assert!(!found.is_empty(), "no line holds {needle:?}:\n{stdout}");
    found
}

/// Runs `check` with `env` added: its exit code, stdout and stderr.
fn check(config: &Path, env: &[(&str, &str)]) -> (i32, String, String) {
    Sidecar::run_with(config, &["check"], env)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watched_folder_the_daemon_cannot_write_is_named_with_its_fix() {
    let world = World::new(Backend::Postgres).await;
    let config = world.config().write();
    let dir = world.dir();
    {
        let _read_only = ReadOnly::mount(&dir);
        let (code, stdout, stderr) = check(&config, &[]);
        assert_eq!(code, 2, "a folder the daemon cannot remove files from stops it\n{stdout}\n{stderr}");
        let found = line(&stdout, &format!("problem: watched folder {}: not writable", dir.display()));
        assert!(found.contains("read-only file system"), "{found}");
    }
    std::fs::remove_dir(&dir).unwrap();
    let (code, stdout, stderr) = check(&config, &[]);
    assert_eq!(code, 2, "{stdout}\n{stderr}");
    line(&stdout, &format!("problem: watched folder {}: does not exist", dir.display()));
    world.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_journal_folder_the_daemon_cannot_write_is_named() {
    let world = World::new(Backend::Postgres).await;
    // The quarantine folder elsewhere, so that only the journal's folder is at fault.
    let quarantine = world.temp.path().join("quarantine");
    let config = world.config().set("validation.quarantine_dir", quarantine.display().to_string()).write();
    let state = world.journal_path().parent().unwrap().to_owned();
    let _read_only = ReadOnly::mount(&state);
    let (code, stdout, stderr) = check(&config, &[]);
    assert_eq!(code, 2, "{stdout}\n{stderr}");
    let found = line(&stdout, &format!("problem: journal folder {}: not writable", state.display()));
    assert!(found.contains("read-only file system"), "{found}");
    world.cleanup().await;
}

/// clamd down does not stop the daemon (each file waits for it, `clamd unreachable`), so it is
/// a warning: the exit code stays 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_clamd_is_a_warning() {
    let world = World::new(Backend::Postgres).await;
    let socket = world.temp.path().join("clamd.ctl");
    let config = world.config().set("validation.clamd_socket", socket.display().to_string()).write();
    let (code, stdout, stderr) = check(&config, &[]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    line(&stdout, &format!("warning: clamd at {}: unreachable", socket.display()));
    world.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_metrics_address_in_use_is_named() {
    let world = World::new(Backend::Postgres).await;
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap();
    let config = world.config().set("metrics.listen", address.to_string()).write();
    let (code, stdout, stderr) = check(&config, &[]);
    assert_eq!(code, 2, "the daemon would exit 2 on it\n{stdout}\n{stderr}");
    line(&stdout, &format!("problem: metrics address {address}: in use"));
    drop(taken);
    let (code, stdout, stderr) = check(&config, &[]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    line(&stdout, &format!("ok: metrics address {address}: free"));
    world.cleanup().await;
}

/// Run as root, `check` judges the secret key file for the service user, whose read root's own
/// read says nothing about (the finding: a key only root could read passed `check` as root,
/// then the service exited 2).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_as_root_check_asks_whether_the_service_user_can_read_the_secret() {
    let world = World::new(Backend::Postgres).await;
    // Everything else open to `nobody`, so that only the secret's mode is at fault.
    std::fs::set_permissions(world.temp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let config = world.config().write();
    let secret = world.temp.path().join("minio-secret");
    let as_nobody = [(SERVICE_USER_ENV, "nobody")];
    let (code, stdout, stderr) = check(&config, &as_nobody);
    assert_eq!(code, 2, "{stdout}\n{stderr}");
    let found = line(
        &stdout,
        &format!("problem: secret key file {}: not readable by uid 65534 (nobody)", secret.display()),
    );
    assert!(found.contains("chgrp"), "the line gives the fix: {found}");

    // The packaged way: root-owned, the service's group, 0640.
    std::os::unix::fs::chown(&secret, Some(0), Some(65534)).unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o640)).unwrap();
    let (_, stdout, _) = check(&config, &as_nobody);
    line(&stdout, &format!("ok: secret key file {}: readable by uid 65534 (nobody)", secret.display()));
    assert!(!stdout.contains("problem: secret key"), "{stdout}");
    world.cleanup().await;
}

/// Every way the docs give to pass the secret works for `check`, `--rescan` and `status`: the
/// key file, and the variable in the command's own environment. Neither is an error naming
/// both, except for `status`, which needs no key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_commands_work_with_each_way_to_pass_the_secret() {
    let world = World::new(Backend::Postgres).await;
    let with_file = world.config().write();
    let (code, stdout, stderr) = check(&with_file, &[]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    line(&stdout, "ok: secret key file");
    line(&stdout, &format!("ok: watched folder {}", world.dir().display()));
    for args in [&["--rescan"][..], &["status"]] {
        let (code, stdout, stderr) = Sidecar::run(&with_file, args);
        assert_eq!(code, 0, "{args:?}\n{stdout}\n{stderr}");
    }

    let secret = std::fs::read_to_string(world.temp.path().join("minio-secret")).unwrap();
    let without_file = world.config().remove("minio.secret_key_file").write();
    let from_env = [("CONFRONTA_SYNC_SECRET_KEY", secret.trim())];
    let (code, stdout, stderr) = check(&without_file, &from_env);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    line(&stdout, "ok: secret key: from CONFRONTA_SYNC_SECRET_KEY");
    for args in [&["--rescan"][..], &["status"]] {
        let (code, stdout, stderr) = Sidecar::run_with(&without_file, args, &from_env);
        assert_eq!(code, 0, "{args:?}\n{stdout}\n{stderr}");
    }

    let (code, stdout, stderr) = check(&without_file, &[]);
    assert_eq!(code, 2, "{stdout}\n{stderr}");
    line(
        &stdout,
        "problem: secret key: minio.secret_key_file is not set and CONFRONTA_SYNC_SECRET_KEY is empty",
    );
    let (code, stdout, stderr) = Sidecar::run(&without_file, &["status"]);
    assert_eq!(code, 0, "status reads no object\n{stdout}\n{stderr}");
    world.cleanup().await;
}
