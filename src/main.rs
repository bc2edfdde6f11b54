//! The `confronta-sync` binary: parse the command line, run, exit with the code it returns.

use clap::Parser;

fn main() {
    let cli = confronta_sync::app::Cli::parse();
    std::process::exit(confronta_sync::app::main_with(cli));
}
