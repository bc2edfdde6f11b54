//! Watching: files found and moved end to end (in place, renamed in, in sub-folders, under load), the watcher's liveness, and a steady state that stays small.
//! One test binary per subject: each file below was its own binary, named after the issue
//! that asked for it; grouped, they link the crate once per subject.

#[path = "../common/mod.rs"]
mod common;

mod liveness;
mod liveness_watch;
mod pipeline;
mod steady_state;
