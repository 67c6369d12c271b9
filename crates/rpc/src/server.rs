//! Accept loop: a TLS handshake per connection, then requests answered in
//! order, each with the peer's verified [`Principal`].
//!
//! Limits keep one peer from taking a server down: a cap on open
//! connections, a deadline for the handshake, an idle timeout between
//! requests, a deadline for the rest of a frame once it has started and for
//! writing the response (a slow or stalled peer), and a budget of memory for
//! large frames shared by every connection (a frame past
//! [`ServerLimits::large_frame`] waits for its share before it is read).
//! Bad input — garbage, a truncated frame, an oversized length — ends that
//! connection only.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufStream};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::frame::{read_body, read_preamble, write_frame, Frame};
use crate::principal::Principal;
use crate::tls::Tls;

/// Answers one request frame with one response frame.
pub trait Handler: Send + Sync + 'static {
    /// `peer`: who sent it, from its certificate.
    fn handle(&self, peer: &Principal, request: Frame) -> impl Future<Output = Frame> + Send;
}

/// What one server allows its peers.
#[derive(Debug, Clone)]
pub struct ServerLimits {
    /// Connections open at once; more are closed as they arrive.
    pub max_connections: usize,
    /// A TLS handshake must finish within this.
    pub handshake_timeout: Duration,
    /// A connection with no request for this long is closed (clients'
    /// pools drop idle connections well before, see `pool.rs`).
    pub idle_timeout: Duration,
    /// Once a frame has started, the rest of it must arrive within this;
    /// a response must be written within it too.
    pub frame_timeout: Duration,
    /// Frames longer than this (header + payload) draw on `large_budget`.
    pub large_frame: usize,
    /// Bytes of large frames held at once by all connections together.
    pub large_budget: usize,
}

impl Default for ServerLimits {
    fn default() -> Self {
        ServerLimits {
            max_connections: 4096,
            handshake_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(300),
            frame_timeout: Duration::from_secs(60),
            large_frame: 64 << 10,
            large_budget: 1 << 30,
        }
    }
}

/// Serve `listener` forever with `handler`, with the default limits.
pub async fn serve<H: Handler>(listener: TcpListener, handler: Arc<H>, tls: Arc<Tls>) {
    serve_with(listener, handler, tls, ServerLimits::default()).await
}

/// Serve `listener` forever with `handler` under `limits`.
pub async fn serve_with<H: Handler>(listener: TcpListener, handler: Arc<H>, tls: Arc<Tls>, limits: ServerLimits) {
    let limits = Arc::new(limits);
    let connections = Arc::new(Semaphore::new(limits.max_connections));
    // Permits are KiB so that any budget fits a semaphore's u32 count.
    let budget = Arc::new(Semaphore::new(kib(limits.large_budget) as usize));
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = connections.clone().try_acquire_owned() else {
            tracing::debug!(%peer, "connection refused: too many open connections");
            continue;
        };
        let _ = stream.set_nodelay(true);
        let (handler, tls, limits, budget) = (handler.clone(), tls.clone(), limits.clone(), budget.clone());
        tokio::spawn(async move {
            let _permit = permit;
            let (stream, principal) = match tokio::time::timeout(limits.handshake_timeout, tls.accept(stream)).await {
                Ok(Ok(x)) => x,
                Ok(Err(e)) => {
                    tracing::info!(%peer, error = %e, "TLS handshake refused");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "TLS handshake timed out");
                    return;
                }
            };
            let mut conn = BufStream::with_capacity(256 << 10, 256 << 10, stream);
            if let Err(why) = connection(&mut conn, &principal, &*handler, &limits, &budget).await {
                tracing::debug!(%peer, %principal, "closing connection: {why}");
            }
        });
    }
}

/// Serve one connection's requests in order until it ends.
pub(crate) async fn connection<S, H>(
    conn: &mut BufStream<S>,
    principal: &Principal,
    handler: &H,
    limits: &ServerLimits,
    budget: &Arc<Semaphore>,
) -> Result<(), String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    H: Handler,
{
    loop {
        // Idle until the next frame's first byte (or the end of the stream).
        match tokio::time::timeout(limits.idle_timeout, conn.fill_buf()).await {
            Err(_) => return Err("idle".into()),
            Ok(Err(e)) => return Err(e.to_string()),
            Ok(Ok([])) => return Ok(()),
            Ok(Ok(_)) => {}
        }
        let deadline = tokio::time::Instant::now() + limits.frame_timeout;
        let pre = match tokio::time::timeout_at(deadline, read_preamble(conn)).await {
            Err(_) => return Err("frame preamble too slow".into()),
            Ok(Err(e)) => return Err(e.to_string()),
            Ok(Ok(None)) => return Ok(()),
            Ok(Ok(Some(p))) => p,
        };
        let _reserved = if pre.body_len() > limits.large_frame {
            let want = kib(pre.body_len().min(limits.large_budget));
            match tokio::time::timeout_at(deadline, budget.clone().acquire_many_owned(want)).await {
                Ok(Ok(permit)) => Some(permit),
                Ok(Err(_)) => return Err("server shutting down".into()),
                Err(_) => return Err("no memory for a large frame in time".into()),
            }
        } else {
            None
        };
        let frame = match tokio::time::timeout_at(deadline, read_body(conn, pre)).await {
            Err(_) => return Err("frame body too slow".into()),
            Ok(Err(e)) => return Err(e.to_string()),
            Ok(Ok(f)) => f,
        };
        let resp = handler.handle(principal, frame).await;
        match tokio::time::timeout(limits.frame_timeout, write_frame(conn, &resp)).await {
            Err(_) => return Err("peer too slow reading the response".into()),
            Ok(Err(e)) => return Err(format!("write response: {e}")),
            Ok(Ok(())) => {}
        }
    }
}

fn kib(bytes: usize) -> u32 {
    bytes.div_ceil(1024).min(u32::MAX as usize) as u32
}

#[cfg(test)]
#[path = "server_tests.rs"]
mod tests;
