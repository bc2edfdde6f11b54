//! The reference generated from the command line's own definition: man pages (`clap_mangen`)
//! and bash, zsh and fish completions (`clap_complete`), as ripgrep's `--generate` makes them.
//!
//! `confronta-sync generate KIND` is for the packaging script (`packaging/build-deb.py`), not
//! for operators: it is added to the parser here, beside `Cli`, rather than to `Cli` itself,
//! so the pages and completions, which are made from `Cli` alone, never offer it (neither
//! generator leaves out a hidden subcommand).

use std::path::PathBuf;

use clap::{Args, CommandFactory, FromArgMatches, ValueEnum};

use super::Cli;
use crate::exit;

/// What the command line asks for: a run, or a reference to generate.
#[derive(Debug)]
pub enum Invocation {
    Run(Cli),
    Generate(Generate),
}

/// `confronta-sync generate KIND [DIR]`.
#[derive(Debug, Args)]
pub struct Generate {
    /// What to write: the man pages into DIR (one per command), or a shell's completions on
    /// stdout.
    #[arg(value_enum)]
    pub kind: Reference,
    /// The folder the man pages go to.
    #[arg(value_name = "DIR", required_if_eq("kind", "man"))]
    pub dir: Option<PathBuf>,
}

/// The references there are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Reference {
    Man,
    CompleteBash,
    CompleteZsh,
    CompleteFish,
}

const GENERATE: &str = "generate";

/// Parses the process's arguments; exits (2, with clap's message) on a usage error, and 0
/// after `--help` or `--version`.
pub fn parse_command_line() -> Invocation {
    let generate = Generate::augment_args(clap::Command::new(GENERATE)).hide(true);
    let matches = Cli::command().subcommand(generate).get_matches();
    let parsed = match matches.subcommand() {
        Some((GENERATE, sub)) => Generate::from_arg_matches(sub).map(Invocation::Generate),
        _ => Cli::from_arg_matches(&matches).map(Invocation::Run),
    };
    parsed.unwrap_or_else(|e| e.exit())
}

/// Writes the reference `what` asks for; the exit code.
pub fn write_reference(what: &Generate) -> i32 {
    let shell = match what.kind {
        Reference::Man => None,
        Reference::CompleteBash => Some(clap_complete::Shell::Bash),
        Reference::CompleteZsh => Some(clap_complete::Shell::Zsh),
        Reference::CompleteFish => Some(clap_complete::Shell::Fish),
    };
    let result = match (shell, &what.dir) {
        (Some(shell), _) => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "confronta-sync",
                &mut std::io::stdout().lock(),
            );
            Ok(())
        }
        (None, Some(dir)) => clap_mangen::generate_to(Cli::command(), dir)
            .map_err(|e| format!("cannot write the man pages into {}: {e}", dir.display())),
        (None, None) => Err("generate man needs the folder to write the pages into".to_owned()),
    };
    match result {
        Ok(()) => exit::OK,
        Err(e) => {
            eprintln!("confronta-sync: {e}");
            exit::FAILURES
        }
    }
}
