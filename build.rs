//! Build script: the version `--version` and the man pages show (`CONFRONTA_SYNC_VERSION`),
//! that is the crate's version and the commit it was built from: `0.2.0 (rev 0123456789ab)`.
//!
//! The commit comes from `git rev-parse` in a git checkout of this project. A source tarball
//! has no `.git` (or sits inside another project's checkout), and a machine may have no git:
//! then `CONFRONTA_SYNC_COMMIT` from the environment is used when set (a packager who knows
//! the commit), and otherwise the version stands alone. A build never fails for want of git.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=CONFRONTA_SYNC_COMMIT");
    let own_checkout = in_own_checkout();
    let commit = match std::env::var("CONFRONTA_SYNC_COMMIT") {
        Ok(given) if !given.trim().is_empty() => Some(given.trim().to_owned()),
        _ if own_checkout => git(&["rev-parse", "--short=12", "HEAD"]),
        _ => None,
    };
    let version = std::env::var("CARGO_PKG_VERSION").unwrap_or_default();
    match commit {
        Some(commit) => println!("cargo:rustc-env=CONFRONTA_SYNC_VERSION={version} (rev {commit})"),
        None => println!("cargo:rustc-env=CONFRONTA_SYNC_VERSION={version}"),
    }
    if !own_checkout {
        return;
    }
    // A new commit, a checkout or a fetch into packed refs changes what HEAD names; only files
    // that exist are named (cargo reruns the script at every build for a missing one).
    for path in ["HEAD", "packed-refs"].iter().filter_map(|name| git(&["rev-parse", "--git-path", name])) {
        rerun_if_exists(PathBuf::from(path));
    }
    if let Some(reference) = git(&["symbolic-ref", "-q", "HEAD"]) {
        if let Some(path) = git(&["rev-parse", "--git-path", &reference]) {
            rerun_if_exists(PathBuf::from(path));
        }
    }
}

/// Whether the package's folder is the top of a git work tree, and not a tarball unpacked
/// somewhere inside another one (whose commit would say nothing about this source).
fn in_own_checkout() -> bool {
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").map(PathBuf::from).ok();
    let top = git(&["rev-parse", "--show-toplevel"]).map(PathBuf::from);
    match (manifest_dir.and_then(|d| d.canonicalize().ok()), top.and_then(|t| t.canonicalize().ok())) {
        (Some(manifest_dir), Some(top)) => manifest_dir == top,
        _ => false,
    }
}

/// What `git args` prints, trimmed, when git is there and succeeds.
fn git(args: &[&str]) -> Option<String> {
    let output = Command::new("git").args(args).output().ok()?;
    let text = String::from_utf8(output.stdout).ok()?;
    (output.status.success() && !text.trim().is_empty()).then(|| text.trim().to_owned())
}

fn rerun_if_exists(path: PathBuf) {
    let path = if path.is_relative() {
        PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default()).join(path)
    } else {
        path
    };
    if path.exists() {
        println!("cargo:rerun-if-changed={}", path.display());
    }
}
