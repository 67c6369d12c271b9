//! Accept loop: one task per connection, requests answered in order.

use std::future::Future;
use std::sync::Arc;

use tokio::io::{BufReader, BufWriter};
use tokio::net::TcpListener;

use crate::frame::{read_frame, write_frame, Frame};

/// Answers one request frame with one response frame.
pub trait Handler: Send + Sync + 'static {
    fn handle(&self, request: Frame) -> impl Future<Output = Frame> + Send;
}

/// Serve `listener` forever with `handler`.
pub async fn serve<H: Handler>(listener: TcpListener, handler: Arc<H>) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let handler = handler.clone();
        tokio::spawn(async move {
            let (r, w) = stream.into_split();
            let mut r = BufReader::with_capacity(256 << 10, r);
            let mut w = BufWriter::with_capacity(256 << 10, w);
            loop {
                let frame = match read_frame(&mut r).await {
                    Ok(Some(f)) => f,
                    Ok(None) => break,
                    Err(e) => {
                        tracing::debug!(%peer, error = %e, "dropping connection");
                        break;
                    }
                };
                let resp = handler.handle(frame).await;
                if let Err(e) = write_frame(&mut w, &resp).await {
                    tracing::debug!(%peer, error = %e, "write response failed");
                    break;
                }
            }
        });
    }
}
