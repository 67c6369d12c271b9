//! The `/metrics` HTTP endpoint (`--metrics-listen ADDR`): a small HTTP
//! server on its own thread that answers `GET /metrics` with every metric
//! of the process in the Prometheus text format, and 404 otherwise.

use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;

use prometheus::{Encoder, TextEncoder};

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
    server: Arc<tiny_http::Server>,
    addr: SocketAddr,
    thread: Option<JoinHandle<()>>,
}

impl MetricsServer {
    /// Listen on `addr` (port 0 picks a free port; see [`Self::addr`]).
    pub fn start(addr: &str) -> std::io::Result<MetricsServer> {
        let server =
            tiny_http::Server::http(addr).map_err(|e| std::io::Error::other(format!("metrics on {addr}: {e}")))?;
        let bound = server
            .server_addr()
            .to_ip()
            .ok_or_else(|| std::io::Error::other(format!("metrics on {addr}: not an IP address")))?;
        let server = Arc::new(server);
        let serving = Arc::clone(&server);
        let thread = std::thread::Builder::new().name("metrics".into()).spawn(move || serve(&serving))?;
        Ok(MetricsServer { server, addr: bound, thread: Some(thread) })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

fn serve(server: &tiny_http::Server) {
    for request in server.incoming_requests() {
        let path = request.url().split('?').next().unwrap_or("");
        let response = if *request.method() == tiny_http::Method::Get && path == "/metrics" {
            let header = tiny_http::Header::from_bytes(&b"Content-Type"[..], &b"text/plain; version=0.0.4"[..])
                .expect("static header is valid");
            tiny_http::Response::from_string(encode()).with_header(header)
        } else {
            tiny_http::Response::from_string("only GET /metrics is served here\n").with_status_code(404)
        };
        // A scraper that hung up is not this server's problem.
        let _ = request.respond(response);
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

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
    }
}
