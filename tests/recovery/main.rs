//! Recovery: what a crash, a lost answer or a restart at any step leaves, and that every journal state resumes by its rule (the restart matrix).
//! One test binary per subject: each file below was its own binary, named after the issue
//! that asked for it; grouped, they link the crate once per subject.

#[path = "../common/mod.rs"]
mod common;

mod guarantees;
mod restart_matrix;
