//! A frame-aware proxy in front of one metadata server, for tests that play
//! a man in the middle: it relays every request and reply, and hands each
//! reply to a hook that may pass it, rewrite it or drop it (closing the
//! connection). `meta_tamper.rs` and `reply_dropper.rs` are such hooks.
//!
//! Every connection is mutual TLS, so the proxy ends TLS on both sides: it
//! accepts clients with a metadata server's certificate and dials the
//! server with the client's (as a man in the middle that holds both).

#![allow(dead_code)]

use std::sync::Arc;

use shardline_rpc::{read_frame, write_frame, Frame, Role, Tls};
use tokio::net::{TcpListener, TcpStream};

/// What to send back for `request`, given the server's `reply`: `None`
/// closes the connection instead.
pub type Hook = Arc<dyn Fn(&Frame, Frame) -> Option<Frame> + Send + Sync>;

pub struct MetaProxy {
    /// The address it listens on.
    pub addr: String,
    /// Dropping it ends the proxy's runtime and every relay.
    _stop: std::sync::mpsc::Sender<()>,
}

impl MetaProxy {
    /// Listen on `host`:any port and relay to `target`: accept as
    /// `server_tls` (a metadata server's identity), dial as `client_tls`.
    pub fn start(host: &str, target: &str, server_tls: Arc<Tls>, client_tls: Arc<Tls>, hook: Hook) -> MetaProxy {
        let listener = std::net::TcpListener::bind(format!("{host}:0")).expect("bind metadata proxy");
        listener.set_nonblocking(true).expect("non-blocking listener");
        let addr = listener.local_addr().expect("proxy address").to_string();
        let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
        let target = target.to_string();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("proxy runtime");
            rt.block_on(async move {
                let listener = TcpListener::from_std(listener).expect("tokio listener");
                let stopped = tokio::task::spawn_blocking(move || {
                    let _ = stop_rx.recv();
                });
                tokio::select! {
                    _ = accept_loop(listener, target, hook, server_tls, client_tls) => {}
                    _ = stopped => {}
                }
            });
        });
        MetaProxy { addr, _stop: stop_tx }
    }
}

async fn accept_loop(listener: TcpListener, target: String, hook: Hook, server_tls: Arc<Tls>, client_tls: Arc<Tls>) {
    loop {
        let Ok((client, _)) = listener.accept().await else { continue };
        let (hook, target, server_tls, client_tls) =
            (hook.clone(), target.clone(), server_tls.clone(), client_tls.clone());
        tokio::spawn(async move {
            let Ok((client, _)) = server_tls.accept(client).await else { return };
            let Ok(server) = TcpStream::connect(&target).await else { return };
            let Ok(server) = client_tls.connect(server, Role::Meta).await else { return };
            relay(client, server, &hook).await;
        });
    }
}

/// Relay request/reply pairs (the metadata protocol has one request in
/// flight per connection) until either side closes or the hook drops a reply.
async fn relay<C, S>(mut client: C, mut server: S, hook: &Hook)
where
    C: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    while let Ok(Some(request)) = read_frame(&mut client).await {
        if write_frame(&mut server, &request).await.is_err() {
            break;
        }
        let Ok(Some(reply)) = read_frame(&mut server).await else { break };
        let Some(reply) = hook(&request, reply) else { break };
        if write_frame(&mut client, &reply).await.is_err() {
            break;
        }
    }
}
