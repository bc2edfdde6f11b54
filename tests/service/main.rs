//! The service: systemd's protocol, metrics and alerts, log levels, least privilege, transport (TLS, proxies), the object store's answers and legal retention.
//! One test binary per subject: each file below was its own binary, named after the issue
//! that asked for it; grouped, they link the crate once per subject.

#[path = "../common/mod.rs"]
mod common;
// The Prometheus scrape and parse the reliability harness uses too.
#[allow(dead_code)]
#[path = "../reliability_support/metrics.rs"]
mod metrics;

mod journald_levels;
mod least_privilege;
mod metrics_endpoint;
mod monitoring;
mod object_store_answers;
mod retention;
mod service;
mod transport;
