//! A compromised metadata server, for integrity tests: a frame-aware proxy
//! in front of one metadata server that relays every request and reply but
//! rewrites what the replies say about one file (its attributes and chunk
//! list) the way a server under an attacker's control could: a hook on
//! `meta_proxy.rs`, which ends TLS on both sides.

#![allow(dead_code)]

use std::sync::{Arc, Mutex};

use shardline_proto::v1 as pb;
use shardline_proto::v1::meta_response::Body as RBody;
use shardline_rpc::{Frame, Tls};

use crate::meta_proxy::{Hook, MetaProxy};

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
    _proxy: MetaProxy,
}

impl MetaTamper {
    /// Listen on `host`:any port and relay to `target`: accept as
    /// `server_tls` (a metadata server's identity), dial as `client_tls`.
    pub fn start(host: &str, target: &str, server_tls: Arc<Tls>, client_tls: Arc<Tls>) -> MetaTamper {
        let shared = Arc::new(Mutex::new(Shared { target: 0, tamper: Tamper::None }));
        let s = shared.clone();
        let hook: Hook = Arc::new(move |_request, mut reply| {
            let (target, tamper) = {
                let s = s.lock().unwrap_or_else(|e| e.into_inner());
                (s.target, s.tamper)
            };
            if tamper != Tamper::None {
                if let Ok(mut resp) = reply.decode::<pb::MetaResponse>() {
                    if rewrite(&mut resp, target, tamper) {
                        reply = Frame::from_message(&resp, reply.payload.clone());
                    }
                }
            }
            Some(reply)
        });
        let proxy = MetaProxy::start(host, target, server_tls, client_tls, hook);
        MetaTamper { addr: proxy.addr.clone(), shared, _proxy: proxy }
    }

    /// Tamper with replies about file `ino` from now on.
    pub fn set(&self, ino: u64, tamper: Tamper) {
        let mut s = self.shared.lock().unwrap_or_else(|e| e.into_inner());
        s.target = ino;
        s.tamper = tamper;
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
