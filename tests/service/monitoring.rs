//! The alert rules and the dashboard the package ships (`packaging/monitoring/`) against the
//! daemon that feeds them: every series they read is one a running daemon exports, every alert
//! links a runbook section that exists, and the gauges the alerts added say what they claim.
//! The rules' own behaviour is unit-tested by `promtool test rules`
//! (`packaging/monitoring/test-rules.sh`, run by `scripts/test.sh`).

use crate::metrics;

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::time::Duration;

use crate::common::{anchor, eventually, free_port, sample_bytes, Backend, Sidecar, World};

const WAIT: Duration = Duration::from_secs(90);

fn repo_file(path: &str) -> String {
    let full = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}

fn rules() -> String {
    repo_file("packaging/monitoring/confronta-sync.rules.yml")
}

/// Every query string of the dashboard (its panels' `expr`s and its variables' queries).
fn dashboard_queries() -> Vec<String> {
    fn walk(value: &serde_json::Value, out: &mut Vec<String>) {
        match value {
            serde_json::Value::Object(map) => {
                for (key, value) in map {
                    match value {
                        serde_json::Value::String(text) if key == "expr" || key == "query" => {
                            out.push(text.clone())
                        }
                        _ => walk(value, out),
                    }
                }
            }
            serde_json::Value::Array(items) => items.iter().for_each(|item| walk(item, out)),
            _ => {}
        }
    }
    let dashboard: serde_json::Value =
        serde_json::from_str(&repo_file("packaging/monitoring/confronta-sync.dashboard.json")).unwrap();
    let mut queries = Vec::new();
    walk(&dashboard, &mut queries);
    queries
}

/// A series a query selects: its metric name and the `label="value"` pairs it must carry
/// (matchers other than `=` only name the label).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Selector {
    metric: String,
    equal: Vec<(String, String)>,
    labels: Vec<String>,
}

/// The selectors of our metrics (`confronta_...`, with their `{...}` when given) in `text`.
fn selectors(text: &str) -> BTreeSet<Selector> {
    let mut found = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("confronta_") {
        let before = rest[..at].chars().next_back();
        let tail = &rest[at..];
        let end = tail.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(tail.len());
        let metric = tail[..end].to_owned();
        rest = &tail[end..];
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
            continue;
        }
        let mut selector = Selector { metric, equal: Vec::new(), labels: Vec::new() };
        if let Some(inside) = rest.strip_prefix('{').and_then(|r| r.split_once('}')).map(|(inside, _)| inside)
        {
            for matcher in inside.split(',').map(str::trim).filter(|m| !m.is_empty()) {
                let name_end = matcher.find(['=', '!']).unwrap_or_else(|| panic!("matcher {matcher:?}"));
                let (label, op_value) = matcher.split_at(name_end);
                let label = label.trim().to_owned();
                if let Some(value) = op_value.strip_prefix('=').filter(|v| !v.starts_with('~')) {
                    selector.equal.push((label.clone(), value.trim().trim_matches('"').to_owned()));
                }
                selector.labels.push(label);
            }
        }
        found.insert(selector);
    }
    found
}

/// The exported series: name → the label sets it has.
fn exported(series: &HashMap<String, f64>) -> HashMap<String, Vec<HashMap<String, String>>> {
    let mut by_name: HashMap<String, Vec<HashMap<String, String>>> = HashMap::new();
    for key in series.keys() {
        let (name, labels) = key.split_once('{').unwrap_or((key.as_str(), ""));
        let labels = labels
            .trim_end_matches('}')
            .split(',')
            .filter_map(|pair| pair.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.trim_matches('"').to_owned()))
            .collect();
        by_name.entry(name.to_owned()).or_default().push(labels);
    }
    by_name
}

/// The labels Prometheus adds to every series it scrapes: no daemon exports them.
const TARGET_LABELS: [&str; 2] = ["instance", "job"];

/// Whether `selector` finds at least one exported series.
fn selects(selector: &Selector, exported: &HashMap<String, Vec<HashMap<String, String>>>) -> bool {
    let own = |label: &String| !TARGET_LABELS.contains(&label.as_str());
    exported.get(&selector.metric).is_some_and(|sets| {
        sets.iter().any(|labels| {
            selector.equal.iter().filter(|(k, _)| own(k)).all(|(k, v)| labels.get(k) == Some(v))
                && selector.labels.iter().filter(|k| own(k)).all(|k| labels.contains_key(k))
        })
    })
}

/// Issue 25 item 2: a rule over a metric the daemon does not export never fires (the alerts for
/// task panics and a blocked journal needed two new ones). A daemon that has moved one file
/// exports every series a rule or a panel selects, label values included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_series_a_rule_or_a_panel_selects_is_exported() {
    let rules = selectors(&rules());
    let panels: BTreeSet<Selector> = dashboard_queries().iter().flat_map(|q| selectors(q)).collect();
    assert!(rules.len() >= 8, "the rules select only {rules:?}");
    assert!(panels.len() >= 10, "the dashboard selects only {panels:?}");

    let world = World::new(Backend::Postgres).await;
    let port = free_port();
    let config = world.config().set("metrics.listen", format!("127.0.0.1:{port}")).write();
    let mut sidecar = Sidecar::start(&config, &[], &[]);
    sidecar.wait_watching().await;
    let id = world.db.insert_venta("PORTA-MON", Some("confrontas/monitoring.pdf")).await;
    let path = world.write_in_place("monitoring.pdf", &sample_bytes(25, 8_000));
    eventually("the file moved", WAIT, || async {
        world.db.row(id).await.filter(|row| row.subido && !path.exists())
    })
    .await;
    let series = eventually("a scrape that counts the move", WAIT, || async {
        let series = tokio::task::spawn_blocking(move || metrics::scrape(port)).await.unwrap()?;
        (metrics::sum(&series, "confronta_files_total", &["outcome=\"moved\""]) == 1.0).then_some(series)
    })
    .await;
    let exported = exported(&series);
    let missing: Vec<String> = rules
        .iter()
        .map(|s| ("rules", s))
        .chain(panels.iter().map(|s| ("dashboard", s)))
        .filter(|(_, selector)| !selects(selector, &exported))
        .map(|(file, selector)| format!("{file}: {selector:?}"))
        .collect();
    // The page describes every metric as `telemetry::METRICS` (and so docs/metrics.md) does.
    let page = tokio::task::spawn_blocking(move || metrics::page(port)).await.unwrap().unwrap();
    for metric in confronta_sync::telemetry::METRICS {
        let help = format!("# HELP {} {}", metric.name, metric.help);
        let kind = format!("# TYPE {} {}", metric.name, metric.kind.as_str());
        assert!(page.lines().any(|line| line == help), "the page lacks {help:?}:\n{page}");
        assert!(page.lines().any(|line| line == kind), "the page lacks {kind:?}:\n{page}");
    }
    sidecar.assert_running();
    assert!(missing.is_empty(), "selected but not exported:\n{}\nexported: {:?}", missing.join("\n"), {
        let mut names: Vec<&String> = exported.keys().collect();
        names.sort();
        names
    });
    world.cleanup().await;
}

/// Issue 25 item 2: every alert carries a `runbook_url` into `docs/runbook.md`, at a section
/// that exists, and every alert has its section (one per alert, no shared catch-all).
#[test]
fn every_alert_links_its_own_runbook_section() {
    let rules = rules();
    let runbook = repo_file("docs/runbook.md");
    let anchors: BTreeSet<String> =
        runbook.lines().filter_map(|line| line.strip_prefix("## ")).map(anchor).collect();
    let alerts: Vec<&str> = rules.lines().filter_map(|l| l.trim().strip_prefix("- alert: ")).collect();
    let links: Vec<&str> = rules
        .lines()
        .filter_map(|l| l.trim().strip_prefix("runbook_url: "))
        .map(|l| l.trim_matches('"'))
        .collect();
    assert!(alerts.len() >= 8, "{alerts:?}");
    assert_eq!(alerts.len(), links.len(), "an alert without a runbook_url: {alerts:?} {links:?}");
    let mut seen = BTreeSet::new();
    for (alert, link) in alerts.iter().zip(&links) {
        let target = link.strip_prefix("docs/runbook.md#").unwrap_or_else(|| panic!("{alert}: {link}"));
        assert!(anchors.contains(target), "{alert}: docs/runbook.md has no section #{target} ({anchors:?})");
        assert!(seen.insert(target), "{alert} shares its runbook section #{target}");
        assert_eq!(target, anchor(alert), "{alert}'s section is named after it");
    }
}

/// Issue 25 item 2: `confronta_journal_blocked` is 1 while the journal cannot be written (its
/// disk full: files wait, nothing is deleted) and 0 once it can again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_journal_gauge_says_when_the_journal_cannot_be_written() {
    let world = World::new(Backend::Postgres).await;
    let disk = crate::common::small_disk::SmallJournalDisk::mount(&world);
    let port = free_port();
    let config = world.config().set("metrics.listen", format!("127.0.0.1:{port}")).write();
    let mut sidecar = Sidecar::start(&config, &[], &[]);
    sidecar.wait_watching().await;
    let blocked = move || async move {
        let series = tokio::task::spawn_blocking(move || metrics::scrape(port)).await.unwrap()?;
        series.get("confronta_journal_blocked").copied()
    };
    assert_eq!(blocked().await, Some(0.0), "the gauge is exported, at 0, from the start");

    // One file moves first (the journal has been written), then the disk is filled.
    let first = world.db.insert_venta("PORTA-JA", Some("confrontas/antes.pdf")).await;
    let first_path = world.write_in_place("antes.pdf", &sample_bytes(27, 3_000));
    eventually("a first file moved", WAIT, || async {
        world.db.row(first).await.filter(|row| row.subido && !first_path.exists())
    })
    .await;
    let reader = disk.fill();
    let id = world.db.insert_venta("PORTA-JB", Some("confrontas/bloqueado.pdf")).await;
    let path = world.write_in_place("bloqueado.pdf", &sample_bytes(26, 3_000));
    eventually("the gauge at 1 while the journal is full", WAIT, || async {
        (blocked().await == Some(1.0)).then_some(())
    })
    .await;
    assert!(path.exists(), "nothing is deleted while the journal cannot be written:\n{}", sidecar.log_text());

    reader.execute_batch("COMMIT").unwrap();
    drop(reader);
    std::fs::remove_file(disk.filler()).unwrap();
    eventually("the file moved once the journal had room", WAIT, || async {
        world.db.row(id).await.filter(|row| row.subido && !path.exists())
    })
    .await;
    eventually("the gauge back at 0", WAIT, || async { (blocked().await == Some(0.0)).then_some(()) }).await;
    sidecar.assert_running();
    world.cleanup().await;
}

/// Issue 24 item 3: a run that panics is contained. Its file's claim on the row is released
/// (PostgreSQL's advisory lock: a claim held for the process's life kept the file, and any
/// rescan, off the row for good), the panic is counted (`confronta_task_panics_total`, which
/// the `TaskPanics` alert reads) and journaled with reason `task_panicked`, and the file moves
/// on its retry. The panic is a failpoint's (`before_upload=1*return(panic)`: once).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_that_panics_is_counted_and_its_file_moves_on_the_retry() {
    let world = World::new(Backend::Postgres).await;
    let port = free_port();
    let config = world.config().set("metrics.listen", format!("127.0.0.1:{port}")).write();
    let mut sidecar = Sidecar::start(&config, &[], &[("FAILPOINTS", "before_upload=1*return(panic)")]);
    sidecar.wait_watching().await;
    let id = world.db.insert_venta("PORTA-PANIC", Some("confrontas/panico.pdf")).await;
    let path = world.write_in_place("panico.pdf", &sample_bytes(27, 6_000));
    eventually("the file moved on its retry", WAIT, || async {
        world.db.row(id).await.filter(|row| row.subido && !path.exists())
    })
    .await;
    let log = sidecar.log_text();
    assert!(log.contains("panicked by failpoint before_upload"), "the failpoint fired:\n{log}");
    assert!(log.contains("the file's run panicked"), "the panic is logged as contained:\n{log}");
    assert!(log.contains("task_panicked"), "and journaled with its reason:\n{log}");
    eventually("a scrape that counts the panic", WAIT, || async {
        let series = tokio::task::spawn_blocking(move || metrics::scrape(port)).await.unwrap()?;
        (metrics::sum(&series, "confronta_task_panics_total", &[]) == 1.0).then_some(())
    })
    .await;
    sidecar.assert_running();
    world.cleanup().await;
}
