//! Reads a daemon's Prometheus endpoint (`[metrics] listen`) with a plain HTTP/1.0 GET.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// Series text (name with labels) → value, or `None` if the endpoint does not answer.
pub fn scrape(port: u16) -> Option<HashMap<String, f64>> {
    let body = page(port)?;
    let mut series = HashMap::new();
    for line in body.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        if let Some((name, value)) = line.rsplit_once(' ') {
            if let Ok(value) = value.parse::<f64>() {
                series.insert(name.to_owned(), value);
            }
        }
    }
    Some(series)
}

/// The text of `/metrics` on `port`, comment lines (`# HELP`, `# TYPE`) included.
pub fn page(port: u16) -> Option<String> {
    let mut stream =
        TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_secs(2)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    stream.write_all(b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).ok()?;
    Some(text.split_once("\r\n\r\n")?.1.to_owned())
}

/// Sum of every series of `name` whose labels contain all of `labels` (`key="value"` pieces).
pub fn sum(series: &HashMap<String, f64>, name: &str, labels: &[&str]) -> f64 {
    series
        .iter()
        .filter(|(key, _)| {
            let (metric, rest) = key.split_once('{').unwrap_or((key.as_str(), ""));
            metric == name && labels.iter().all(|label| rest.contains(label))
        })
        .map(|(_, value)| *value)
        .sum()
}

/// Uploads this daemon made: the count of its upload-time histogram.
pub fn uploads(series: &HashMap<String, f64>) -> f64 {
    sum(series, "confronta_upload_seconds_count", &[])
}
