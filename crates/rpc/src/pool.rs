//! Client side: a pool of idle connections per address.
//!
//! A call checks out a connection (or dials one: TCP, then the TLS
//! handshake, checking that the server holds a certificate of the role the
//! pool talks to), sends one request, reads one response and returns the
//! connection. A connection that failed mid-call is dropped, never reused;
//! one idle for [`MAX_IDLE_AGE`] is closed rather than reused (servers
//! close connections idle much longer, see `server.rs`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::BufStream;
use tokio::net::TcpStream;

use crate::frame::{read_frame, write_frame, Frame};
use crate::principal::Role;
use crate::tls::Tls;
use crate::RpcError;

/// Idle connections older than this are not reused.
pub const MAX_IDLE_AGE: Duration = Duration::from_secs(60);

struct Conn {
    stream: BufStream<crate::tls::ClientStream>,
    idle_since: Instant,
}

/// Connection pool; cheap to share behind an `Arc`.
pub struct Pool {
    idle: Mutex<HashMap<String, Vec<Conn>>>,
    tls: Arc<Tls>,
    /// The role every server this pool dials must hold.
    server_role: Role,
    /// Offer the integrity-only transport (`integrity.rs`) to servers.
    integrity_only: bool,
    connect_timeout: Duration,
    request_timeout: Duration,
    max_idle_per_addr: usize,
    dials: AtomicU64,
    calls: AtomicU64,
}

/// What a pool has done since it was made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// Connections dialed (each a TCP handshake).
    pub dials: u64,
    /// Requests sent.
    pub calls: u64,
}

impl Pool {
    /// A pool for servers of `server_role`, dialed as `tls`.
    pub fn new(tls: Arc<Tls>, server_role: Role, connect_timeout: Duration, request_timeout: Duration) -> Self {
        Pool {
            idle: Mutex::new(HashMap::new()),
            tls,
            server_role,
            integrity_only: false,
            connect_timeout,
            request_timeout,
            max_idle_per_addr: 32,
            dials: AtomicU64::new(0),
            calls: AtomicU64::new(0),
        }
    }

    /// Offer the integrity-only transport to the servers dialed (those
    /// that accept it use it; the others stay fully encrypted).
    pub fn integrity_only(mut self, on: bool) -> Self {
        self.integrity_only = on;
        self
    }

    pub fn stats(&self) -> PoolStats {
        PoolStats { dials: self.dials.load(Ordering::Relaxed), calls: self.calls.load(Ordering::Relaxed) }
    }

    /// Send `request` to `addr` and wait for its response.
    pub async fn call(&self, addr: &str, request: &Frame) -> Result<Frame, RpcError> {
        self.call_with_timeout(addr, request, self.request_timeout).await
    }

    /// As [`Pool::call`] with an explicit timeout for this request.
    pub async fn call_with_timeout(&self, addr: &str, request: &Frame, timeout: Duration) -> Result<Frame, RpcError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let mut conn = match self.checkout(addr) {
            Some(c) => c,
            None => self.dial(addr).await?,
        };
        let io = async {
            write_frame(&mut conn.stream, request).await?;
            read_frame(&mut conn.stream).await
        };
        let result = match tokio::time::timeout(timeout, io).await {
            Err(_) => return Err(RpcError::Timeout { addr: addr.to_string(), millis: timeout.as_millis() as u64 }),
            Ok(Err(e)) => return Err(RpcError::io(addr, e)),
            Ok(Ok(None)) => {
                return Err(RpcError::Io {
                    addr: addr.to_string(),
                    source: std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "peer closed the connection"),
                })
            }
            Ok(Ok(Some(f))) => f,
        };
        self.checkin(addr, conn);
        Ok(result)
    }

    /// Forget idle connections to `addr` (after it restarted, say).
    pub fn forget(&self, addr: &str) {
        self.idle.lock().unwrap_or_else(|e| e.into_inner()).remove(addr);
    }

    fn checkout(&self, addr: &str) -> Option<Conn> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let list = idle.get_mut(addr)?;
        // The most recently used first; older ones are dropped as stale.
        list.retain(|c| c.idle_since.elapsed() < MAX_IDLE_AGE);
        list.pop()
    }

    fn checkin(&self, addr: &str, mut conn: Conn) {
        conn.idle_since = Instant::now();
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let list = idle.entry(addr.to_string()).or_default();
        if list.len() < self.max_idle_per_addr {
            list.push(conn);
        }
    }

    async fn dial(&self, addr: &str) -> Result<Conn, RpcError> {
        self.dials.fetch_add(1, Ordering::Relaxed);
        let stream = match tokio::time::timeout(self.connect_timeout, TcpStream::connect(addr)).await {
            Err(_) => {
                return Err(RpcError::Timeout {
                    addr: addr.to_string(),
                    millis: self.connect_timeout.as_millis() as u64,
                })
            }
            Ok(Err(e)) => return Err(RpcError::Connect { addr: addr.to_string(), source: e }),
            Ok(Ok(s)) => s,
        };
        let _ = stream.set_nodelay(true);
        let handshake = self.tls.connect_with(stream, self.server_role, self.integrity_only);
        let stream = match tokio::time::timeout(self.connect_timeout, handshake).await {
            Err(_) => {
                return Err(RpcError::Timeout {
                    addr: addr.to_string(),
                    millis: self.connect_timeout.as_millis() as u64,
                })
            }
            Ok(Err(e)) => return Err(RpcError::handshake(addr, e)),
            Ok(Ok(s)) => s,
        };
        Ok(Conn { stream: BufStream::with_capacity(256 << 10, 256 << 10, stream), idle_since: Instant::now() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::TestPki;
    use crate::principal::Principal;
    use crate::server::{serve, Handler};

    struct Echo;
    impl Handler for Echo {
        async fn handle(&self, _peer: &Principal, request: Frame) -> Frame {
            Frame::new(request.payload, request.header)
        }
    }

    #[tokio::test]
    async fn calls_reuse_connections_and_swap_parts() {
        let pki = TestPki::new().unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        tokio::spawn(serve(listener, Arc::new(Echo), pki.identity(Role::Data, &[1]).unwrap()));
        let client = pki.identity(Role::Client, &[]).unwrap();
        let pool = Pool::new(client, Role::Data, Duration::from_secs(2), Duration::from_secs(5));
        for i in 0..3u8 {
            let resp = pool.call(&addr, &Frame::new(vec![i], vec![7u8; 200_000])).await.unwrap();
            assert_eq!(resp.header.len(), 200_000);
            assert_eq!(&resp.payload[..], &[i]);
        }
        assert_eq!(pool.idle.lock().unwrap().get(&addr).map(|v| v.len()), Some(1));
        assert_eq!(pool.stats(), PoolStats { dials: 1, calls: 3 });
    }

    #[tokio::test]
    async fn refused_connection_is_unavailable() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        drop(listener);
        let client = TestPki::new().unwrap().identity(Role::Client, &[]).unwrap();
        let pool = Pool::new(client, Role::Data, Duration::from_secs(2), Duration::from_secs(5));
        let err = pool.call(&addr, &Frame::default()).await.unwrap_err();
        assert!(err.is_unavailable(), "{err}");
    }
}
