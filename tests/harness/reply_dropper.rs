//! A frame-aware proxy in front of one metadata server, for tests of lost
//! replies: it relays every request and reply, except that while dropping
//! is on, a `CommitChunk` is relayed to the server and then the connection
//! is closed instead of returning the reply. The commit applied; the client
//! cannot know it did.
//!
//! Every connection is mutual TLS, so the proxy ends TLS on both sides: it
//! accepts clients with a metadata server's certificate and dials the
//! server with the client's (as a man in the middle that holds both).

#![allow(dead_code)]

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use prost::Message as _;
use shardline_proto::v1 as pb;
use shardline_rpc::{read_frame, write_frame, Role, Tls};
use tokio::net::{TcpListener, TcpStream};

#[derive(Default)]
struct Shared {
    drop_commit_replies: AtomicBool,
    dropped: AtomicUsize,
}

pub struct ReplyDropper {
    /// The address it listens on.
    pub addr: String,
    shared: Arc<Shared>,
    /// Dropping it ends the proxy's runtime and every relay.
    _stop: std::sync::mpsc::Sender<()>,
}

impl ReplyDropper {
    /// Listen on `host`:any port and relay to `target`: accept as
    /// `server_tls` (a metadata server's identity), dial as `client_tls`.
    pub fn start(host: &str, target: &str, server_tls: Arc<Tls>, client_tls: Arc<Tls>) -> ReplyDropper {
        let listener = std::net::TcpListener::bind(format!("{host}:0")).expect("bind reply dropper");
        listener.set_nonblocking(true).expect("non-blocking listener");
        let addr = listener.local_addr().expect("dropper address").to_string();
        let shared = Arc::new(Shared::default());
        let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
        let (s, t) = (shared.clone(), target.to_string());
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("dropper runtime");
            rt.block_on(async move {
                let listener = TcpListener::from_std(listener).expect("tokio listener");
                let stopped = tokio::task::spawn_blocking(move || {
                    let _ = stop_rx.recv();
                });
                tokio::select! {
                    _ = accept_loop(listener, t, s, server_tls, client_tls) => {}
                    _ = stopped => {}
                }
            });
        });
        ReplyDropper { addr, shared, _stop: stop_tx }
    }

    /// Swallow the replies of `CommitChunk` requests from now on (true) or not.
    pub fn drop_commit_replies(&self, on: bool) {
        self.shared.drop_commit_replies.store(on, Ordering::SeqCst);
    }

    /// How many replies were swallowed so far.
    pub fn dropped(&self) -> usize {
        self.shared.dropped.load(Ordering::SeqCst)
    }
}

async fn accept_loop(
    listener: TcpListener,
    target: String,
    shared: Arc<Shared>,
    server_tls: Arc<Tls>,
    client_tls: Arc<Tls>,
) {
    loop {
        let Ok((client, _)) = listener.accept().await else { continue };
        let (shared, target, server_tls, client_tls) =
            (shared.clone(), target.clone(), server_tls.clone(), client_tls.clone());
        tokio::spawn(async move {
            let Ok((client, _)) = server_tls.accept(client).await else { return };
            let Ok(server) = TcpStream::connect(&target).await else { return };
            let Ok(server) = client_tls.connect(server, Role::Meta).await else { return };
            relay(client, server, &shared).await;
        });
    }
}

/// Relay request/reply pairs (the metadata protocol has one request in
/// flight per connection) until either side closes or a reply is dropped.
async fn relay<C, S>(mut client: C, mut server: S, shared: &Shared)
where
    C: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    while let Ok(Some(request)) = read_frame(&mut client).await {
        let is_commit = matches!(
            pb::MetaRequest::decode(request.header.clone()).ok().and_then(|r| r.body),
            Some(pb::meta_request::Body::CommitChunk(_))
        );
        if write_frame(&mut server, &request).await.is_err() {
            break;
        }
        let Ok(Some(reply)) = read_frame(&mut server).await else { break };
        if is_commit && shared.drop_commit_replies.load(Ordering::SeqCst) {
            shared.dropped.fetch_add(1, Ordering::SeqCst);
            break;
        }
        if write_frame(&mut client, &reply).await.is_err() {
            break;
        }
    }
}
