//! The reliability harness's support code (issue 5): the S3 servers it starts for itself, the
//! per-case world and its invariant checks, PostgreSQL roles and audit, metrics scraping, and
//! the generated report. The cases themselves are in `tests/reliability.rs`, except the power
//! cut at every pause point, which is `power_loss` with its recorder.

pub mod metrics;
pub mod pg;
pub mod power_loss;
pub mod report;
pub mod s3server;
pub mod world;
