//! A scripted HTTP endpoint that plays a misbehaving S3 server: every request is recorded and
//! answered as the test's script says (a status with headers and a body, or silence: the
//! request is read and never answered, as behind a blackholed link). Used by
//! `tests/service/object_store_answers.rs` (MinIO's and proxies' "try again" answers) and
//! `tests/service/transport.rs` (deadlines). Speaks just enough HTTP/1.1: keep-alive, Content-Length
//! bodies, `Expect: 100-continue`.
//!
//! `ScriptedFront` puts the same script in front of a real server for a while (the reliability
//! harness's MinIO that loses its quorum for some seconds, then has it again).

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// One request as the endpoint read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub method: String,
    /// Path and query, as sent.
    pub target: String,
    pub body_len: usize,
}

impl Seen {
    /// Whether the query string has `name` (as `name=` or a bare `name`).
    pub fn has_query(&self, name: &str) -> bool {
        self.target.split_once('?').is_some_and(|(_, query)| {
            query.split('&').any(|pair| pair == name || pair.starts_with(&format!("{name}=")))
        })
    }

    /// The value of query parameter `name`.
    pub fn query(&self, name: &str) -> Option<&str> {
        let (_, query) = self.target.split_once('?')?;
        query.split('&').find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
    }
}

/// What the endpoint answers to one request.
#[derive(Debug, Clone)]
pub enum Answer {
    Http {
        status: u16,
        headers: Vec<(String, String)>,
        body: String,
    },
    /// Read the request, then say nothing and keep the connection open.
    Silence,
}

impl Answer {
    /// An S3 XML error, as MinIO writes it; to a HEAD, which has no body, MinIO sends the code
    /// in `x-minio-error-code` instead (`writeErrorResponseHeadersOnly`).
    pub fn s3_error(status: u16, code: &str, message: &str) -> Answer {
        Answer::Http {
            status,
            headers: vec![
                ("Content-Type".into(), "application/xml".into()),
                (HEAD_ONLY_CODE.into(), code.into()),
            ],
            body: format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{message}</Message>\
                 <Resource>/b/k</Resource><RequestId>1</RequestId><HostId>h</HostId></Error>"
            ),
        }
    }

    /// A proxy's HTML page.
    pub fn html(status: u16, title: &str) -> Answer {
        Answer::Http {
            status,
            headers: vec![("Content-Type".into(), "text/html".into())],
            body: format!("<html><head><title>{title}</title></head><body><h1>{title}</h1></body></html>"),
        }
    }

    pub fn ok(headers: &[(&str, &str)], body: &str) -> Answer {
        Answer::Http {
            status: 200,
            headers: headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            body: body.to_owned(),
        }
    }
}

/// The header MinIO names a HEAD's error in; sent only to a HEAD.
const HEAD_ONLY_CODE: &str = "x-minio-error-code";

type Script = dyn Fn(&Seen) -> Answer + Send + Sync;

/// The endpoint: its address, and every request it has read so far.
pub struct ScriptedS3 {
    pub port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl ScriptedS3 {
    /// Starts answering on 127.0.0.1 as `script` says.
    pub async fn start(script: impl Fn(&Seen) -> Answer + Send + Sync + 'static) -> ScriptedS3 {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let script: Arc<Script> = Arc::new(script);
        let log = seen.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream, script.clone(), log.clone()));
            }
        });
        ScriptedS3 { port, seen }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

/// A front between a client and a real S3 server at `upstream` (`host:port`). While its script
/// is on, every request is read and answered as the script says, each answer closing its
/// connection (`Connection: close`); while it is off, each new connection is forwarded byte for
/// byte. Turning the script on cuts every forwarded connection, so a client's pooled connection
/// cannot slip past it; one it opens next meets the script.
pub struct ScriptedFront {
    pub port: u16,
    on: watch::Sender<bool>,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl ScriptedFront {
    /// Starts forwarding to `upstream`, the script off.
    pub async fn start(
        upstream: String,
        script: impl Fn(&Seen) -> Answer + Send + Sync + 'static,
    ) -> ScriptedFront {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let script: Arc<Script> = Arc::new(move |request: &Seen| match script(request) {
            Answer::Http { status, mut headers, body } => {
                headers.push(("Connection".into(), "close".into()));
                Answer::Http { status, headers, body }
            }
            Answer::Silence => Answer::Silence,
        });
        let (on, _) = watch::channel(false);
        let (log, switch) = (seen.clone(), on.clone());
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                if *switch.borrow() {
                    tokio::spawn(serve(stream, script.clone(), log.clone()));
                } else {
                    tokio::spawn(forward(stream, upstream.clone(), switch.subscribe()));
                }
            }
        });
        ScriptedFront { port, on, seen }
    }

    /// Turns the script on (cutting the forwarded connections) or off.
    pub fn script(&self, on: bool) {
        self.on.send_replace(on);
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Every request the script answered so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

/// Copies one connection both ways to `upstream` until either side closes or the script goes on.
async fn forward(mut client: TcpStream, upstream: String, mut on: watch::Receiver<bool>) {
    let Ok(mut server) = TcpStream::connect(&upstream).await else { return };
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
        _ = on.wait_for(|on| *on) => {}
    }
}

async fn serve(stream: tokio::net::TcpStream, script: Arc<Script>, seen: Arc<Mutex<Vec<Seen>>>) {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).await.unwrap_or(0) == 0 {
            return;
        }
        let mut parts = line.split_whitespace();
        let (method, target) = (parts.next().unwrap_or("").to_owned(), parts.next().unwrap_or("").to_owned());
        let (mut length, mut expect_continue) = (0usize, false);
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header).await.unwrap_or(0) == 0 {
                return;
            }
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            let (name, value) = header.split_once(':').unwrap_or((header, ""));
            match name.trim().to_ascii_lowercase().as_str() {
                "content-length" => length = value.trim().parse().unwrap_or(0),
                "expect" => expect_continue = value.trim().eq_ignore_ascii_case("100-continue"),
                _ => {}
            }
        }
        if expect_continue && write.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await.is_err() {
            return;
        }
        let mut body = vec![0u8; length];
        if reader.read_exact(&mut body).await.is_err() {
            return;
        }
        let request = Seen { method: method.clone(), target, body_len: length };
        seen.lock().unwrap().push(request.clone());
        match script(&request) {
            Answer::Silence => {
                // Hold the connection open, saying nothing, until the client gives up.
                let mut sink = Vec::new();
                let _ = reader.read_to_end(&mut sink).await;
                return;
            }
            Answer::Http { status, headers, body } => {
                let mut head = format!("HTTP/1.1 {status} Scripted\r\n");
                for (name, value) in &headers {
                    if name == HEAD_ONLY_CODE && method != "HEAD" {
                        continue;
                    }
                    head.push_str(&format!("{name}: {value}\r\n"));
                }
                // A HEAD's answer says how long the body would be and sends none.
                let sent: &[u8] = if method == "HEAD" { b"" } else { body.as_bytes() };
                if !headers.iter().any(|(name, _)| name.eq_ignore_ascii_case("content-length")) {
                    head.push_str(&format!(
                        "Content-Length: {}\r\n",
                        if method == "HEAD" { 0 } else { body.len() }
                    ));
                }
                head.push_str("\r\n");
                if write.write_all(head.as_bytes()).await.is_err() || write.write_all(sent).await.is_err() {
                    return;
                }
            }
        }
    }
}
