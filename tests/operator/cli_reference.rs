//! The reference an operator gets from the package, generated from the CLI definition itself:
//! the man pages and the bash, zsh and fish completions (`confronta-sync generate ...`, which
//! `packaging/build-deb.py` runs), and `--version` naming the commit it was built from.

use std::path::Path;
use std::process::Command;

use clap::CommandFactory;
use confronta_sync::app::Cli;

fn binary() -> Command {
    Command::new(env!("CARGO_BIN_EXE_confronta-sync"))
}

/// Runs `confronta-sync generate <args>`; its stdout, or a panic naming what it said.
fn generate(args: &[&str]) -> String {
    let output = binary().arg("generate").args(args).output().unwrap();
    assert!(
        output.status.success(),
        "generate {args:?} exited {:?}: {}",
        output.status.code(),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// Every command an operator can run, with its long options: (page name, `--flags`), from the
/// same definition the parser uses. Hidden commands and options are left out, as the pages do.
fn visible_commands() -> Vec<(String, Vec<String>)> {
    let cli = Cli::command();
    let longs = |command: &clap::Command| -> Vec<String> {
        command
            .get_arguments()
            .filter(|arg| !arg.is_hide_set())
            .filter_map(|arg| arg.get_long().map(|long| format!("--{long}")))
            .collect()
    };
    let mut commands = vec![("confronta-sync".to_owned(), longs(&cli))];
    for sub in cli.get_subcommands().filter(|sub| !sub.is_hide_set()) {
        commands.push((format!("confronta-sync-{}", sub.get_name()), longs(sub)));
    }
    commands
}

/// roff as a reader sees it: `\-` is a plain hyphen.
fn unroff(page: &str) -> String {
    page.replace("\\-", "-")
}

/// Issue 25 item 4: a page per command, each naming every option the parser takes, and the
/// main page listing every command (there were no pages at all).
#[test]
fn the_man_pages_name_every_command_and_option() {
    let dir = tempfile::tempdir().unwrap();
    generate(&["man", dir.path().to_str().unwrap()]);
    let commands = visible_commands();
    let mut written: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    written.sort();
    let mut expected: Vec<String> = commands.iter().map(|(page, _)| format!("{page}.1")).collect();
    expected.sort();
    assert_eq!(written, expected, "one page per visible command, and no other");

    let main = unroff(&std::fs::read_to_string(dir.path().join("confronta-sync.1")).unwrap());
    for (page, flags) in &commands {
        let text = unroff(&std::fs::read_to_string(dir.path().join(format!("{page}.1"))).unwrap());
        assert!(text.starts_with(".ie"), "{page}.1 is not a roff page: {}", &text[..text.len().min(80)]);
        for flag in flags {
            assert!(text.contains(flag.as_str()), "{page}.1 does not mention {flag}");
        }
        if let Some(command) = page.strip_prefix("confronta-sync-") {
            assert!(
                main.contains(&format!("confronta-sync-{command}(1)")),
                "the main page does not list {command}"
            );
        }
    }
    assert!(main.contains(env!("CARGO_PKG_VERSION")), "the main page carries no version");
    assert!(!main.contains("generate"), "the hidden generate command shows in the main page");
}

/// Issue 25 item 4: completions for the three shells offer every command and option, and not
/// the hidden `generate`; bash's script registers itself when sourced.
#[test]
fn the_completions_offer_every_command_and_option() {
    for shell in ["bash", "zsh", "fish"] {
        let script = generate(&[&format!("complete-{shell}")]);
        for (page, flags) in visible_commands() {
            if let Some(command) = page.strip_prefix("confronta-sync-") {
                assert!(script.contains(command), "{shell} completion does not offer {command}");
            }
            for flag in flags {
                let name = flag.trim_start_matches('-');
                assert!(script.contains(name), "{shell} completion does not offer {flag} of {page}");
            }
        }
        assert!(!script.contains("generate"), "{shell} completion offers the hidden generate command");
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("confronta-sync");
    std::fs::write(&file, generate(&["complete-bash"])).unwrap();
    let registered = Command::new("bash")
        .arg("-c")
        .arg(format!("source {} && complete -p confronta-sync", file.display()))
        .output()
        .unwrap();
    assert!(
        registered.status.success(),
        "sourcing the bash completion registers nothing: {}",
        String::from_utf8_lossy(&registered.stderr)
    );
}

/// An unknown kind of reference is a usage error (exit 2) naming the kinds there are.
#[test]
fn generate_refuses_an_unknown_kind() {
    let output = binary().args(["generate", "complete-tcsh"]).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(said.contains("complete-bash"), "{said}");
}

/// Issue 25 item 4: `--version` names the commit the binary was built from (`build.rs` reads
/// `git rev-parse`); this checkout is a git work tree, so the commit is known here.
#[test]
fn version_names_the_commit_it_was_built_from() {
    let head = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")))
        .output()
        .unwrap();
    assert!(head.status.success(), "this test runs in the project's git work tree");
    let head = String::from_utf8(head.stdout).unwrap().trim().to_owned();
    let output = binary().arg("--version").output().unwrap();
    assert!(output.status.success());
    assert_eq!(
        String::from_utf8(output.stdout).unwrap(),
        format!("confronta-sync {} (rev {head})\n", env!("CARGO_PKG_VERSION"))
    );
}
