//! confronta-sync: a sidecar that moves Django confronta uploads from MEDIA_ROOT into MinIO,
//! records each object in the sales table, and removes the local copy only once both are
//! durable. See ARCHITECTURE.md for the map and the invariants.

// The library has no `unsafe` of its own: the `*at` calls and the rest go through rustix and
// uzers. The binary's one block (`mallopt`, which no crate wraps) is in main.rs.
#![forbid(unsafe_code)]

pub mod app;
pub mod commands;
pub mod config;
pub mod daemon;
pub mod db;
pub mod error;
pub mod exit;
pub mod hash;
pub mod journal;
pub mod logging;
pub mod media_path;
pub mod object_name;
pub mod pipeline;
pub mod reference;
pub mod report;
pub mod s3_limits;
pub mod signals;
pub mod store;
pub mod telemetry;
#[cfg(any(test, feature = "fakes"))]
pub mod testing;
pub mod validation;
pub mod watch;
