//! A compromised metadata server, for integrity tests: a frame-aware proxy
//! in front of one metadata server that relays every request and reply but
//! rewrites what the replies say about one file (its attributes and chunk
//! list) the way a server under an attacker's control could. Like
//! `reply_dropper.rs`, it ends TLS on both sides: it accepts clients with a
//! metadata server's certificate and dials the server with the client's.

#![allow(dead_code)]

use std::sync::{Arc, Mutex};

use shardline_proto::v1 as pb;
use shardline_proto::v1::meta_response::Body as RBody;
use shardline_rpc::{read_frame, write_frame, Frame, Role, Tls};
use tokio::net::{TcpListener, TcpStream};

/// What the proxy does to the replies about the target file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tamper {
    /// Relay them unchanged.
    None,
    /// Answer without the file's manifest.
    DropManifest,
    /// Answer as an empty file: no chunks, size 0, no manifest.
    Empty,
    /// As `Empty`, and the wrapped key's format downgraded to 1 (no
    /// manifest required).
    EmptyDowngraded,
}

struct Shared {
    target: u64,
    tamper: Tamper,
}

pub struct MetaTamper {
    /// The address it listens on.
    pub addr: String,
    shared: Arc<Mutex<Shared>>,
    _stop: std::sync::mpsc::Sender<()>,
}

impl MetaTamper {
    /// Listen on `host`:any port and relay to `target`: accept as
    /// `server_tls` (a metadata server's identity), dial as `client_tls`.
    pub fn start(host: &str, target: &str, server_tls: Arc<Tls>, client_tls: Arc<Tls>) -> MetaTamper {
        let listener = std::net::TcpListener::bind(format!("{host}:0")).expect("bind tamper proxy");
        listener.set_nonblocking(true).expect("non-blocking listener");
        let addr = listener.local_addr().expect("proxy address").to_string();
        let shared = Arc::new(Mutex::new(Shared { target: 0, tamper: Tamper::None }));
        let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
        let (s, t) = (shared.clone(), target.to_string());
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("proxy runtime");
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
        MetaTamper { addr, shared, _stop: stop_tx }
    }

    /// Tamper with replies about file `ino` from now on.
    pub fn set(&self, ino: u64, tamper: Tamper) {
        let mut s = self.shared.lock().unwrap_or_else(|e| e.into_inner());
        s.target = ino;
        s.tamper = tamper;
    }
}

async fn accept_loop(
    listener: TcpListener,
    target: String,
    shared: Arc<Mutex<Shared>>,
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

async fn relay<C, S>(mut client: C, mut server: S, shared: &Mutex<Shared>)
where
    C: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    while let Ok(Some(request)) = read_frame(&mut client).await {
        if write_frame(&mut server, &request).await.is_err() {
            break;
        }
        let Ok(Some(mut reply)) = read_frame(&mut server).await else { break };
        let (target, tamper) = {
            let s = shared.lock().unwrap_or_else(|e| e.into_inner());
            (s.target, s.tamper)
        };
        if tamper != Tamper::None {
            if let Ok(mut resp) = reply.decode::<pb::MetaResponse>() {
                if rewrite(&mut resp, target, tamper) {
                    reply = Frame::from_message(&resp, reply.payload.clone());
                }
            }
        }
        if write_frame(&mut client, &reply).await.is_err() {
            break;
        }
    }
}

/// Rewrite what `resp` says about file `ino`; whether anything changed.
fn rewrite(resp: &mut pb::MetaResponse, ino: u64, tamper: Tamper) -> bool {
    let (attr, chunks) = match resp.body.as_mut() {
        Some(RBody::Attr(a)) => (a, None),
        Some(RBody::Chunks(list)) => match list.attr.as_mut() {
            Some(a) => (a, Some(&mut list.chunks)),
            None => return false,
        },
        _ => return false,
    };
    if attr.ino != ino {
        return false;
    }
    attr.manifest = None;
    if matches!(tamper, Tamper::Empty | Tamper::EmptyDowngraded) {
        attr.size = 0;
        if let Some(c) = chunks {
            c.clear();
        }
    }
    if tamper == Tamper::EmptyDowngraded {
        if let Some(k) = attr.key.as_mut() {
            k.format = 1;
        }
    }
    true
}
