//! The reliability harness's support code (issue 5): the S3 servers it starts for itself, the
//! per-case world and its invariant checks, PostgreSQL roles and audit, metrics scraping, and
//! the generated report. The cases themselves are in `tests/reliability.rs`.

pub mod metrics;
pub mod pg;
pub mod report;
pub mod s3server;
pub mod world;
