//! What `check` looks at on this host before a start would: the folders the daemon reads and
//! writes, clamd, the metrics address and the secret key, each judged for the user the service
//! runs as, one line each.

use std::fmt;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Duration;

use crate::config::{Config, SECRET_KEY_ENV};
use crate::validation::Validator;

/// The user the packaged units run the daemon as (`User=` in `systemd/confronta-sync.service`).
pub const SERVICE_USER: &str = "confronta-sync";
/// Names another service user for `check` run as root: a unit whose `User=` an override
/// changed, and the tests (which have no `confronta-sync` user).
pub const SERVICE_USER_ENV: &str = "CONFRONTA_SYNC_SERVICE_USER";
/// How long clamd and a running daemon's `/metrics` get to answer.
const ANSWER_WITHIN: Duration = Duration::from_secs(3);

/// How much a finding matters to the daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Ok,
    /// The daemon starts and works, worse: files wait, or the answer may change by itself.
    Warning,
    /// The daemon would not start, or could not finish any file: `check` exits 2.
    Problem,
}

/// One line of `check`'s report: what was looked at, and what was found (with the fix).
#[derive(Debug, Clone)]
pub struct Finding {
    pub severity: Severity,
    pub subject: String,
    pub text: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let label = match self.severity {
            Severity::Ok => "ok",
            Severity::Warning => "warning",
            Severity::Problem => "problem",
        };
        write!(f, "{label}: {}: {}", self.subject, self.text)
    }
}

/// Whose access the files are judged for.
#[derive(Debug, Clone)]
pub struct Who {
    uid: u32,
    name: String,
    /// The primary group and every supplementary one.
    groups: Vec<u32>,
    /// This process's own user: the kernel answers (`faccessat`), ACLs and all. Otherwise
    /// (root judging for the service's user) the mode bits, owner and groups are read.
    current: bool,
}

impl fmt::Display for Who {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "uid {} ({})", self.uid, self.name)
    }
}

/// The user to judge for, and the line that says which and why.
pub fn who() -> (Who, Finding) {
    let (uid, gid) = effective_ids();
    let own_name = user_name(uid).unwrap_or_else(|| uid.to_string());
    let current = Who { uid, name: own_name.clone(), groups: own_groups(gid), current: true };
    let finding = |severity, text: String| Finding { severity, subject: "user".into(), text };
    if uid != 0 {
        let line = format!("files judged for {current}, which runs this command");
        return (current.clone(), finding(Severity::Ok, line));
    }
    let service = std::env::var(SERVICE_USER_ENV).ok().filter(|name| !name.is_empty());
    let service = service.unwrap_or_else(|| SERVICE_USER.to_owned());
    match user_by_name(&service) {
        Some((uid, gid)) => {
            let who = Who { uid, name: service.clone(), groups: groups_of(&service, gid), current: false };
            let line = format!(
                "files judged for {who}, the service's user (this command runs as root; by mode, owner and \
                 group: an ACL is not read)"
            );
            (who, finding(Severity::Ok, line))
        }
        None => {
            let line = format!(
                "no user {service} on this host, so files are judged for root, whom only a read-only file system \
                 stops; run check as the unit's User= (sudo -u USER confronta-sync check), or name it in \
                 {SERVICE_USER_ENV}"
            );
            (current, finding(Severity::Warning, line))
        }
    }
}

/// Everything `check` looks at on this host, in the order a start meets it. Writes only the
/// quarantine probe's scratch file, and only as the service's own user: root would make a
/// missing quarantine folder that the service could not write.
pub async fn look(config: &Config) -> Vec<Finding> {
    let (who, user) = who();
    let mut findings = vec![user];
    findings.push(secret(config, &who));
    if let Some(listen) = config.metrics.listen {
        findings.push(metrics(listen, &who));
    }
    findings.push(watched_folder(config, &who));
    findings.push(folder(
        "journal folder",
        config.journal.path.parent().unwrap_or(Path::new("/")),
        &who,
        &format!(
            "the daemon keeps its journal there and exits 5 without it: chown {} it (the package makes \
             /var/lib/confronta-sync so), and list it in the unit's ReadWritePaths=",
            who.name
        ),
    ));
    if let Some(journal) = config.journal.path.exists().then_some(&config.journal.path) {
        if let Err(why) = access(journal, WRITE, &who) {
            findings.push(problem(
                format!("journal {}", journal.display()),
                format!("{why}; the daemon exits 5: chown {} it, with its -wal and -shm", who.name),
            ));
        }
    }
    findings.push(quarantine(config, &who));
    if let Some(socket) = &config.validation.clamd_socket {
        findings.push(clamd(socket, &who).await);
    }
    findings
}

/// The checks a start makes besides its own (which stop it): what would leave files waiting
/// while the daemon runs. Logged as warnings.
pub async fn at_start(config: &Config) -> Vec<Finding> {
    let (uid, gid) = effective_ids();
    let who = Who {
        uid,
        name: user_name(uid).unwrap_or_else(|| uid.to_string()),
        groups: own_groups(gid),
        current: true,
    };
    let mut findings = vec![watched_folder(config, &who)];
    if let Some(socket) = &config.validation.clamd_socket {
        findings.push(clamd(socket, &who).await);
    }
    findings.retain(|finding| finding.severity != Severity::Ok);
    findings
}

const READ: i32 = libc::R_OK;
const WRITE: i32 = libc::W_OK;
const SEARCH: i32 = libc::X_OK;

fn ok(subject: String, text: String) -> Finding {
    Finding { severity: Severity::Ok, subject, text }
}

fn problem(subject: String, text: String) -> Finding {
    Finding { severity: Severity::Problem, subject, text }
}

fn warning(subject: String, text: String) -> Finding {
    Finding { severity: Severity::Warning, subject, text }
}

/// The secret key comes from the environment or from its file, which the service's user must
/// be able to read (root's own read says nothing about that).
fn secret(config: &Config, who: &Who) -> Finding {
    if std::env::var(SECRET_KEY_ENV).is_ok_and(|value| !value.is_empty()) {
        return ok(
            "secret key".into(),
            format!(
                "from {SECRET_KEY_ENV} in this command's environment (minio.secret_key_file is not read); the \
                 service has it only if its unit sets it too"
            ),
        );
    }
    let Some(path) = &config.minio.secret_key_file else {
        return problem(
            "secret key".into(),
            format!(
                "minio.secret_key_file is not set and {SECRET_KEY_ENV} is empty; the daemon exits 2: put the key \
                 in a file (root:{}, mode 0640) and name it in minio.secret_key_file",
                primary_group_name(who)
            ),
        );
    };
    let subject = format!("secret key file {}", path.display());
    let readable = if who.current {
        std::fs::File::open(path).map(drop).map_err(|e| format!("not readable by {who}: {}", os_text(&e)))
    } else {
        access(path, READ, who)
    };
    match readable {
        Ok(()) => ok(subject, format!("readable by {who}")),
        Err(why) => problem(
            subject,
            format!(
                "{why}; the daemon exits 2: chgrp {group} it and chmod 640 it (root-owned, the service's group, \
                 as the package installs it)",
                group = primary_group_name(who)
            ),
        ),
    }
}

/// The daemon binds the address before anything else and exits 2 when it cannot. A running
/// daemon holds its own address, so an address in use whose `/metrics` is ours is fine.
fn metrics(listen: SocketAddr, who: &Who) -> Finding {
    let subject = format!("metrics address {listen}");
    match TcpListener::bind(listen) {
        Ok(listener) => {
            drop(listener);
            let lowest = unprivileged_port_start();
            if who.uid != 0 && listen.port() != 0 && listen.port() < lowest {
                return problem(
                    subject,
                    format!(
                        "port {} is below {lowest} (net.ipv4.ip_unprivileged_port_start), which only root may \
                         bind, and the unit grants {who} no capability; the daemon exits 2: pick a port from \
                         {lowest} up in [metrics] listen",
                        listen.port()
                    ),
                );
            }
            ok(subject, "free".into())
        }
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            if serves_our_metrics(listen) {
                ok(subject, "in use by a running confronta-sync (its /metrics answers)".into())
            } else {
                problem(
                    subject,
                    format!(
                        "in use by another program; the daemon exits 2: pick another address in [metrics] listen, \
                         or stop what holds it (ss -ltnp 'sport = :{}')",
                        listen.port()
                    ),
                )
            }
        }
        Err(e) => problem(
            subject,
            format!("cannot be bound: {}; the daemon exits 2: fix [metrics] listen", os_text(&e)),
        ),
    }
}

/// Whether what listens at `listen` answers `/metrics` with this daemon's metrics.
fn serves_our_metrics(listen: SocketAddr) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&listen, ANSWER_WITHIN) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(ANSWER_WITHIN));
    let _ = stream.set_write_timeout(Some(ANSWER_WITHIN));
    if stream.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").is_err() {
        return false;
    }
    let mut answer = Vec::new();
    let _ = stream.take(1 << 20).read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).contains("confronta_")
}

fn unprivileged_port_start() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start")
        .ok()
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(1024)
}

/// The daemon reads Django's uploads there and unlinks each moved one: a folder it cannot
/// write leaves every file uploaded and recorded but never removed.
fn watched_folder(config: &Config, who: &Who) -> Finding {
    let dir = config.watched_dir();
    let subject = format!("watched folder {}", dir.display());
    if !dir.is_dir() {
        let what = if dir.exists() { "is not a folder" } else { "does not exist" };
        return problem(
            subject,
            format!(
                "{what}; the daemon cannot watch it and exits 2: check watch.media_root and watch.dir, or make it \
                 as Django's upload folder (group-writable and setgid, Django's group)"
            ),
        );
    }
    let fix = format!(
        "the daemon reads Django's uploads there and unlinks each one it moved: give the folder Django's group, \
         group rwx and setgid (chgrp www-data it; chmod 2770 it), make {} a member of that group (adduser {} \
         www-data), mount it read-write, and list MEDIA_ROOT in the unit's ReadWritePaths=",
        who.name, who.name
    );
    if let Err(why) = access(&dir, READ | SEARCH, who) {
        return problem(subject, format!("{why}; {fix}"));
    }
    match access(&dir, WRITE | SEARCH, who) {
        Ok(()) => ok(subject, format!("readable and writable by {who}")),
        Err(why) => problem(subject, format!("{why}; {fix}")),
    }
}

/// A folder the daemon makes if missing (`create_dir_all` at start-up) and writes in.
fn folder(label: &str, dir: &Path, who: &Who, fix: &str) -> Finding {
    let subject = format!("{label} {}", dir.display());
    if dir.is_dir() {
        return match access(dir, WRITE | SEARCH, who) {
            Ok(()) => ok(subject, format!("writable by {who}")),
            Err(why) => problem(subject, format!("{why}; {fix}")),
        };
    }
    // Made at start-up: the nearest folder that exists must take it.
    let parent = dir.ancestors().skip(1).find(|ancestor| ancestor.is_dir()).unwrap_or(Path::new("/"));
    match access(parent, WRITE | SEARCH, who) {
        Ok(()) => ok(subject, format!("does not exist yet; {who} can make it in {}", parent.display())),
        Err(why) => problem(subject, format!("does not exist, and {}: {why}; {fix}", parent.display())),
    }
}

/// As the service's own user, the probe a start makes (a scratch file written, fsynced and
/// removed); as root for another user, only the modes, so that nothing root-owned is made.
fn quarantine(config: &Config, who: &Who) -> Finding {
    let dir = config.quarantine_dir();
    let fix = format!(
        "refused files could not leave MEDIA_ROOT and the daemon exits 2: chown {} it (check \
         validation.quarantine_dir), and list it in the unit's ReadWritePaths=",
        who.name
    );
    if !who.current {
        return folder("quarantine folder", &dir, who, &fix);
    }
    let subject = format!("quarantine folder {}", dir.display());
    match Validator::new(&config.validation, dir.clone()).probe_quarantine() {
        Ok(()) => ok(subject, format!("a scratch file written and removed by {who}")),
        Err(e) => {
            // The probe's error names the folder already.
            let e = e.split_once(": ").map_or(e.as_str(), |(_, rest)| rest).to_owned();
            problem(subject, format!("{e}; {fix}"))
        }
    }
}

/// clamd down does not stop the daemon: each file waits for it (`clamd unreachable`) and is
/// tried again, and clamd is often still loading its database at boot. So a warning.
async fn clamd(socket: &Path, who: &Who) -> Finding {
    let subject = format!("clamd at {}", socket.display());
    if !who.current {
        if let Err(why) = access(socket, WRITE, who) {
            return warning(
                subject,
                format!("{why}: every file would wait for clamd; add {} to clamd's group", who.name),
            );
        }
    }
    let connection = clamav_client::tokio::Socket { socket_path: socket };
    let answer = tokio::time::timeout(ANSWER_WITHIN, clamav_client::tokio::ping(connection)).await;
    let why = match answer {
        Ok(Ok(answer)) if answer == clamav_client::PONG => return ok(subject, "answers PING".into()),
        Ok(Ok(answer)) => format!("answers {:?} to PING", String::from_utf8_lossy(&answer)),
        Ok(Err(e)) => os_text(&e),
        Err(_) => format!("no answer within {}s", ANSWER_WITHIN.as_secs()),
    };
    warning(
        subject,
        format!(
            "unreachable ({why}); every file waits for it (reason clamd_unreachable): start clamd (systemctl start \
             clamav-daemon), or fix validation.clamd_socket"
        ),
    )
}

/// Whether `who` may `want` (`READ`, `WRITE`, `SEARCH`, or'ed) `path`; else why not, naming
/// the user and the mode that stops them.
fn access(path: &Path, want: i32, who: &Who) -> Result<(), String> {
    let verb = if want & WRITE != 0 {
        "writable"
    } else if want & READ != 0 {
        "readable"
    } else {
        "reachable"
    };
    // The kernel's own answer for this process's effective ids (`faccessat` with `AT_EACCESS`).
    let kernel_says = |want: i32| {
        let mut access = rustix::fs::Access::empty();
        if want & READ != 0 {
            access |= rustix::fs::Access::READ_OK;
        }
        if want & WRITE != 0 {
            access |= rustix::fs::Access::WRITE_OK;
        }
        if want & SEARCH != 0 {
            access |= rustix::fs::Access::EXEC_OK;
        }
        rustix::fs::accessat(rustix::fs::CWD, path, access, rustix::fs::AtFlags::EACCESS)
            .map_err(|e| format!("not {verb} by {who}: {}", os_text(&std::io::Error::from(e))))
    };
    if who.current {
        return kernel_says(want);
    }
    // Every folder on the way must let the user through.
    for ancestor in path.ancestors().skip(1) {
        let Ok(meta) = std::fs::metadata(ancestor) else { continue };
        if !allows(&meta, SEARCH, who) {
            return Err(format!(
                "not {verb} by {who}: {} ({}) does not let it through",
                ancestor.display(),
                describe(&meta)
            ));
        }
    }
    let meta = std::fs::metadata(path).map_err(|e| format!("not {verb} by {who}: {}", os_text(&e)))?;
    if !allows(&meta, want, who) {
        return Err(format!("not {verb} by {who}: {}", describe(&meta)));
    }
    if want & WRITE != 0 {
        // A read-only mount refuses everyone, root included: root's own answer shows it.
        kernel_says(WRITE)?;
    }
    Ok(())
}

/// What the mode bits give `who` (owner, else group, else others), as the kernel decides
/// without ACLs.
fn allows(meta: &std::fs::Metadata, want: i32, who: &Who) -> bool {
    if who.uid == 0 {
        return true;
    }
    let mode = meta.mode();
    let bits = if meta.uid() == who.uid {
        (mode >> 6) & 0o7
    } else if who.groups.contains(&meta.gid()) {
        (mode >> 3) & 0o7
    } else {
        mode & 0o7
    };
    bits & want as u32 == want as u32
}

/// `mode 0750 root:www-data`.
fn describe(meta: &std::fs::Metadata) -> String {
    let owner = user_name(meta.uid()).unwrap_or_else(|| meta.uid().to_string());
    let group = group_name(meta.gid()).unwrap_or_else(|| meta.gid().to_string());
    format!("mode {:04o} {owner}:{group}", meta.mode() & 0o7777)
}

/// An OS error as a phrase: "read-only file system", not "Read-only file system (os error 30)".
fn os_text(e: &std::io::Error) -> String {
    let text = e.to_string();
    let text = text.split(" (os error").next().unwrap_or(&text);
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

fn primary_group_name(who: &Who) -> String {
    who.groups.first().and_then(|gid| group_name(*gid)).unwrap_or_else(|| who.name.clone())
}

fn user_by_name(name: &str) -> Option<(u32, u32)> {
    uzers::get_user_by_name(name).map(|user| (user.uid(), user.primary_group_id()))
}

fn user_name(uid: u32) -> Option<String> {
    uzers::get_user_by_uid(uid).map(|user| user.name().to_string_lossy().into_owned())
}

fn group_name(gid: u32) -> Option<String> {
    uzers::get_group_by_gid(gid).map(|group| group.name().to_string_lossy().into_owned())
}

/// `name`'s primary group first, then every group that lists it (`getgrouplist`).
fn groups_of(name: &str, primary: u32) -> Vec<u32> {
    let mut groups = vec![primary];
    for group in uzers::get_user_groups(name, primary).unwrap_or_default() {
        if !groups.contains(&group.gid()) {
            groups.push(group.gid());
        }
    }
    groups
}

/// This process's effective uid and gid.
fn effective_ids() -> (u32, u32) {
    (rustix::process::geteuid().as_raw(), rustix::process::getegid().as_raw())
}

/// This process's effective group first, then its supplementary groups.
fn own_groups(primary: u32) -> Vec<u32> {
    let mut groups = vec![primary];
    for group in uzers::group_access_list().unwrap_or_default() {
        if !groups.contains(&group.gid()) {
            groups.push(group.gid());
        }
    }
    groups
}
