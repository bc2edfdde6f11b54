//! Refusing: bad input gets a clear answer (validation, quarantine, hostile files and names, a full or broken journal), and nothing is lost.
//! One test binary per subject: each file below was its own binary, named after the issue
//! that asked for it; grouped, they link the crate once per subject.

#[path = "../common/mod.rs"]
mod common;

mod hostile;
mod refusing;
