//! The `confronta-sync` binary: parse the command line, run, exit with the code it returns.

use clap::Parser;

fn main() {
    let cli = confronta_sync::app::Cli::parse();
    // Test builds read FAILPOINTS from the environment; release builds have no failpoints.
    #[cfg(feature = "failpoints")]
    let scenario = fail::FailScenario::setup();
    let code = confronta_sync::app::main_with(cli);
    #[cfg(feature = "failpoints")]
    scenario.teardown();
    std::process::exit(code);
}
