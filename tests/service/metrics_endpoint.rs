//! The Prometheus endpoint cannot be used against the daemon: a flood of idle connections is
//! capped, timed out and never takes the descriptors the daemon needs to move files.

use crate::metrics;

use std::time::Duration;

use crate::common::{eventually, free_port, sample_bytes, Backend, Sidecar, World};

/// The daemon's open descriptors.
fn descriptors(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map(|entries| entries.count()).unwrap_or(0)
}

/// Issue 24, item 4 (reproduced): 1,100 idle connections to `/metrics` were all held (1,127
/// descriptors open in the daemon); under systemd's default `LimitNOFILE` of 1,024 that left it
/// none for its files, journal and sockets. The daemon here runs under that same limit; 2,000
/// idle connections later a file still moves, its descriptors stay few, and a scrape is answered.
#[tokio::test]
async fn a_flood_of_idle_connections_leaves_the_daemon_its_descriptors_and_its_files_moving() {
    let world = World::new(Backend::Postgres).await;
    let port = free_port();
    let config = world.config().set("metrics.listen", format!("127.0.0.1:{port}")).write();
    let mut sidecar = Sidecar::start(&config, &[], &[]);
    sidecar.wait_watching().await;
    let pid = sidecar.child.id();
    // systemd's default for a service: 1,024 descriptors.
    let limit = libc::rlimit { rlim_cur: 1024, rlim_max: 1024 };
    assert_eq!(unsafe { libc::prlimit(pid as i32, libc::RLIMIT_NOFILE, &limit, std::ptr::null_mut()) }, 0);
    let before = descriptors(pid);

    // Connections that never send a byte, as a port scanner or a slowloris client leaves them.
    // A daemon that stops accepting lets its backlog fill, and then a connection attempt hangs:
    // the flood stops there, with what it opened.
    let mut idle = Vec::with_capacity(2000);
    for _ in 0..2000 {
        let connect = tokio::net::TcpStream::connect(("127.0.0.1", port));
        match tokio::time::timeout(Duration::from_secs(2), connect).await {
            Ok(Ok(stream)) => idle.push(stream),
            Ok(Err(e)) => panic!("connecting to the metrics endpoint: {e}"),
            Err(_) => break,
        }
    }
    eprintln!("{} idle connections open", idle.len());

    let bytes = sample_bytes(24, 20_000);
    let id = world.db.insert_venta("PORTA-FLOOD", Some("confrontas/flood.pdf")).await;
    let path = world.write_in_place("flood.pdf", &bytes);
    eventually("the file moved during the flood", Duration::from_secs(60), || async {
        world.db.row(id).await.filter(|row| row.subido && !path.exists())
    })
    .await;
    let during = descriptors(pid);
    sidecar.assert_running();
    assert!(
        during <= before + confronta_sync::telemetry::MAX_CONNECTIONS + 32,
        "the daemon holds {during} descriptors with 2,000 idle connections open ({before} before)"
    );
    // The idle connections it served are closed after the header deadline; then a scraper is
    // answered again, the flood still open.
    let series = eventually("a scrape answered during the flood", Duration::from_secs(60), || async {
        tokio::task::spawn_blocking(move || metrics::scrape(port)).await.unwrap()
    })
    .await;
    assert_eq!(metrics::sum(&series, "confronta_files_total", &["outcome=\"moved\""]), 1.0, "{series:?}");
    drop(idle);
    world.cleanup().await;
}
