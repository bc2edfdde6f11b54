//! The `confronta-sync` binary: parse the command line, run, exit with the code it returns.

use confronta_sync::app::{self, Invocation};

fn main() {
    not_dumpable();
    limit_malloc_arenas();
    let cli = match app::parse_command_line() {
        Invocation::Run(cli) => cli,
        Invocation::Generate(what) => std::process::exit(app::write_reference(&what)),
    };
    // Test builds read FAILPOINTS from the environment; release builds have no failpoints.
    #[cfg(feature = "failpoints")]
    let scenario = fail::FailScenario::setup();
    let code = app::main_with(cli);
    #[cfg(feature = "failpoints")]
    scenario.teardown();
    std::process::exit(code);
}

/// Makes the process non-dumpable before it reads any secret: another process of the same uid
/// (anything else run under the service's account) can then neither ptrace it nor read its
/// memory, environment or descriptors through /proc, and a crash leaves no core file with the
/// S3 key or the database password in it. root keeps access, as it would anyway.
fn not_dumpable() {
    use rustix::process::{set_dumpable_behavior, DumpableBehavior};
    if let Err(errno) = set_dumpable_behavior(DumpableBehavior::NotDumpable) {
        // Nothing else can be done about it, and the daemon works without it: say so and go on.
        eprintln!("confronta-sync: cannot mark the process non-dumpable: {}", std::io::Error::from(errno));
    }
}

/// Caps glibc's malloc at two arenas before any thread starts. By default each thread that
/// allocates may get an arena of its own (up to eight per core), and tokio's blocking pool
/// starts and retires threads all day (hashing, journal reads), so freed memory stayed spread
/// over many arenas: the daemon's RSS crept from 17.6 to 31.4 MiB in a 150 s soak, and stayed
/// at 20.5 MiB with two arenas (`bench/run.sh --quick --only soak`, `BENCH_SOAK_S=150`, with and
/// without `MALLOC_ARENA_MAX=2`). The daemon's few threads contend little for malloc. An
/// operator's own `MALLOC_ARENA_MAX` wins.
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only sets an allocator parameter; no thread but this one exists yet.
        // No crate wraps mallopt (rustix and nix leave the C allocator alone), so it stays.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 2);
        }
    }
}
