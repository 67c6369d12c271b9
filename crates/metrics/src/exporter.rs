//! The `/metrics` HTTP endpoint (`--metrics-listen ADDR`): a small HTTP
//! server on its own threads that answers `GET /metrics` with every metric
//! of the process in the Prometheus text format, and 404 otherwise.
//!
//! Only the request head is read (at most [`MAX_HEAD`] bytes, within
//! [`READ_TIMEOUT`]); a body is never read, each answer closes its
//! connection, and at most [`MAX_CONNECTIONS`] are served at once (more are
//! closed on arrival). It replaced tiny_http, which aborted the whole
//! process on one request announcing a huge `Content-Length` (it allocated
//! the rest of the body to discard it): found by `tests/security_fuzz.rs`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use prometheus::{Encoder, TextEncoder};

/// Longest request head read (request line and headers).
pub const MAX_HEAD: usize = 8 << 10;
/// A request head must arrive within this; an answer be written within it too.
pub const READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections served at once.
pub const MAX_CONNECTIONS: usize = 32;

/// Every registered metric of this process in the Prometheus text format.
pub fn encode() -> String {
    let mut buf = Vec::new();
    // Encoding into a Vec fails only on an inconsistent family; such a
    // family is skipped rather than failing the whole scrape.
    if let Err(e) = TextEncoder::new().encode(&prometheus::gather(), &mut buf) {
        tracing::warn!(error = %e, "a metric family could not be encoded");
    }
    String::from_utf8_lossy(&buf).into_owned()
}

/// A running `/metrics` endpoint; stops when dropped.
pub struct MetricsServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl MetricsServer {
    /// Listen on `addr` (port 0 picks a free port; see [`Self::addr`]).
    pub fn start(addr: &str) -> std::io::Result<MetricsServer> {
        let listener = TcpListener::bind(addr).map_err(|e| std::io::Error::other(format!("metrics on {addr}: {e}")))?;
        let bound = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let thread = std::thread::Builder::new().name("metrics".into()).spawn(move || serve(&listener, &stopping))?;
        Ok(MetricsServer { addr: bound, stop, thread: Some(thread) })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

fn serve(listener: &TcpListener, stop: &AtomicBool) {
    let active = Arc::new(AtomicUsize::new(0));
    for conn in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(conn) = conn else {
            std::thread::sleep(Duration::from_millis(20));
            continue;
        };
        if active.fetch_add(1, Ordering::SeqCst) >= MAX_CONNECTIONS {
            active.fetch_sub(1, Ordering::SeqCst);
            continue; // dropped: closed on arrival
        }
        let active = Arc::clone(&active);
        let spawned = std::thread::Builder::new().name("metrics-conn".into()).spawn(move || {
            answer(conn);
            active.fetch_sub(1, Ordering::SeqCst);
        });
        if spawned.is_err() {
            tracing::warn!("could not start a thread for a metrics request");
        }
    }
}

/// Read one request head and answer it; the connection then closes.
fn answer(mut conn: TcpStream) {
    let _ = conn.set_read_timeout(Some(READ_TIMEOUT));
    let _ = conn.set_write_timeout(Some(READ_TIMEOUT));
    let Some(head) = read_head(&mut conn) else { return };
    let (status, body) = match request_line(&head) {
        Some(("GET", path)) if path.split('?').next() == Some("/metrics") => ("200 OK", encode()),
        Some(_) => ("404 Not Found", "only GET /metrics is served here\n".to_string()),
        None => ("400 Bad Request", "not an HTTP request\n".to_string()),
    };
    let reply = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    // A scraper that hung up is not this server's problem.
    let _ = conn.write_all(reply.as_bytes());
    let _ = conn.flush();
}

/// The bytes up to the end of the head (`\r\n\r\n`, or `\n\n`), None when
/// the peer stops, stalls, or sends more than [`MAX_HEAD`] first.
fn read_head(conn: &mut TcpStream) -> Option<Vec<u8>> {
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    loop {
        let n = conn.read(&mut buf).ok()?;
        if n == 0 {
            return None;
        }
        head.extend_from_slice(&buf[..n]);
        if head.windows(4).any(|w| w == b"\r\n\r\n") || head.windows(2).any(|w| w == b"\n\n") {
            return Some(head);
        }
        if head.len() > MAX_HEAD {
            return None;
        }
    }
}

/// Method and target of a request line `METHOD TARGET HTTP/x.y`.
fn request_line(head: &[u8]) -> Option<(&str, &str)> {
    let line = head.split(|&b| b == b'\n').next()?;
    let line = std::str::from_utf8(line).ok()?.trim_end_matches('\r');
    let mut parts = line.split(' ');
    let (method, target, version) = (parts.next()?, parts.next()?, parts.next()?);
    (parts.next().is_none() && version.starts_with("HTTP/1.")).then_some((method, target))
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(addr: SocketAddr, path: &str) -> String {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    }

    #[test]
    fn serves_registered_metrics_in_text_format_and_404_elsewhere() {
        crate::requests_total().with_label_values(&["test", "probe", "ok"]).inc();
        let server = MetricsServer::start("127.0.0.1:0").unwrap();
        let body = get(server.addr(), "/metrics");
        assert!(body.starts_with("HTTP/1.1 200"), "{body}");
        let text = body.split("\r\n\r\n").nth(1).unwrap();
        let lines = text.lines().map(|l| Ok(l.to_string()));
        let scrape = prometheus_parse::Scrape::parse(lines).unwrap();
        let probe = scrape
            .samples
            .iter()
            .find(|s| s.metric == "shardline_requests_total" && s.labels.get("op") == Some("probe"))
            .expect("the probe counter is exported");
        assert!(matches!(probe.value, prometheus_parse::Value::Counter(v) if v >= 1.0));
        assert!(get(server.addr(), "/other").starts_with("HTTP/1.1 404"));
        assert!(get(server.addr(), "/metrics?x=1").starts_with("HTTP/1.1 200"));
    }

    /// Found by `tests/security_fuzz.rs`: with tiny_http, one request
    /// announcing a body of 99999999999999 bytes aborted the whole process
    /// (it allocated the rest of the body to throw it away). No request
    /// may stop the endpoint; each gets an answer or a closed connection.
    #[test]
    fn fuzz_metrics_request_announcing_a_huge_body_does_not_abort_the_process() {
        let server = MetricsServer::start("127.0.0.1:0").unwrap();
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("a body announced huge", b"POST /metrics HTTP/1.1\r\nContent-Length: 99999999999999\r\n\r\nab".to_vec()),
            (
                "a GET announcing a body",
                b"GET /metrics HTTP/1.1\r\nContent-Length: 18446744073709551615\r\n\r\n".to_vec(),
            ),
            ("binary junk", (0..8192u32).map(|i| (i * 7) as u8).collect()),
            ("a truncated request line", b"GET /metr".to_vec()),
            ("a head of 200 KB", [b"GET /metrics HTTP/1.1\r\nX: ".to_vec(), vec![b'a'; 200_000]].concat()),
            ("a broken chunked body", b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n".to_vec()),
            ("a bad method and version", b"\x00\x01 / HTTP/9.9\r\n\r\n".to_vec()),
        ];
        for (case, bytes) in cases {
            let mut s = std::net::TcpStream::connect(server.addr()).unwrap_or_else(|e| panic!("{case}: {e}"));
            s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
            let _ = s.write_all(&bytes);
            let _ = s.shutdown(std::net::Shutdown::Write);
            let mut out = Vec::new();
            let _ = s.read_to_end(&mut out);
            assert!(get(server.addr(), "/metrics").starts_with("HTTP/1.1 200"), "after {case}");
        }
    }

    #[test]
    fn connections_past_the_cap_are_closed_and_the_endpoint_recovers() {
        let server = MetricsServer::start("127.0.0.1:0").unwrap();
        let held: Vec<TcpStream> = (0..MAX_CONNECTIONS).map(|_| TcpStream::connect(server.addr()).unwrap()).collect();
        // Past the cap: closed without an answer (once every held one is counted).
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let mut s = TcpStream::connect(server.addr()).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
            let _ = write!(s, "GET /metrics HTTP/1.1\r\n\r\n");
            let mut out = Vec::new();
            let _ = s.read_to_end(&mut out);
            if out.is_empty() {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "a connection past the cap was served");
        }
        drop(held);
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while !get(server.addr(), "/metrics").starts_with("HTTP/1.1 200") {
            assert!(std::time::Instant::now() < deadline, "the endpoint did not recover");
        }
    }
}
