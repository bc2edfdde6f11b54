//! Operator commands: `--rescan` (with `--dry-run`, `--limit`, `--venta`), `verify`, `orphans`, `presign`, `status`, `explain`, `check`, and the command-line reference.
//! One test binary per subject: each file below was its own binary, named after the issue
//! that asked for it; grouped, they link the crate once per subject.

#[path = "../common/mod.rs"]
mod common;

mod check;
mod cli_reference;
mod docs_reference;
mod explain;
mod operator;
mod schema_checks;
