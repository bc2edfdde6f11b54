//! Matching: which sale a file belongs to (the ownership rule at the shipped timers, and its property-based model of Django's saves), on both databases.
//! One test binary per subject: each file below was its own binary, named after the issue
//! that asked for it; grouped, they link the crate once per subject.

#[path = "../common/mod.rs"]
mod common;

mod db_conformance;
mod ownership;
mod ownership_model;
