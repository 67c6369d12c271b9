//! A frame-aware TCP proxy in front of one metadata server, for tests of
//! lost replies: it relays every request and reply, except that while
//! dropping is on, a `CommitChunk` is relayed to the server and then the
//! connection is closed instead of returning the reply. The commit applied;
//! the client cannot know it did.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use prost::Message as _;
use shardline_proto::v1 as pb;

#[derive(Default)]
struct Shared {
    stop: AtomicBool,
    drop_commit_replies: AtomicBool,
    dropped: AtomicUsize,
}

pub struct ReplyDropper {
    /// The address it listens on.
    pub addr: String,
    shared: Arc<Shared>,
}

impl ReplyDropper {
    /// Listen on `host`:any port and relay to `target`.
    pub fn start(host: &str, target: &str) -> ReplyDropper {
        let listener = TcpListener::bind(format!("{host}:0")).expect("bind reply dropper");
        let addr = listener.local_addr().expect("dropper address").to_string();
        let shared = Arc::new(Shared::default());
        let (s, t) = (shared.clone(), target.to_string());
        std::thread::spawn(move || accept_loop(listener, t, s));
        ReplyDropper { addr, shared }
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

impl Drop for ReplyDropper {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect_timeout(&self.addr.parse().expect("dropper address"), Duration::from_secs(1));
    }
}

fn accept_loop(listener: TcpListener, target: String, shared: Arc<Shared>) {
    for conn in listener.incoming() {
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(client) = conn else { continue };
        let Ok(server) = TcpStream::connect(&target) else { continue };
        let shared = shared.clone();
        std::thread::spawn(move || relay(client, server, &shared));
    }
}

/// Relay request/reply pairs (the metadata protocol has one request in
/// flight per connection) until either side closes or a reply is dropped.
fn relay(mut client: TcpStream, mut server: TcpStream, shared: &Shared) {
    while let Some(request) = read_raw_frame(&mut client) {
        let is_commit = matches!(
            pb::MetaRequest::decode(header_of(&request)).ok().and_then(|r| r.body),
            Some(pb::meta_request::Body::CommitChunk(_))
        );
        if server.write_all(&request).is_err() {
            break;
        }
        let Some(reply) = read_raw_frame(&mut server) else { break };
        if is_commit && shared.drop_commit_replies.load(Ordering::SeqCst) {
            shared.dropped.fetch_add(1, Ordering::SeqCst);
            break;
        }
        if client.write_all(&reply).is_err() {
            break;
        }
    }
    let _ = client.shutdown(Shutdown::Both);
    let _ = server.shutdown(Shutdown::Both);
}

/// One whole frame as raw bytes: 12-byte preamble (magic, version, header
/// and payload lengths), header, payload.
fn read_raw_frame(s: &mut TcpStream) -> Option<Vec<u8>> {
    let mut frame = vec![0u8; 12];
    s.read_exact(&mut frame).ok()?;
    let header_len = u32::from_le_bytes(frame[4..8].try_into().ok()?) as usize;
    let payload_len = u32::from_le_bytes(frame[8..12].try_into().ok()?) as usize;
    frame.resize(12 + header_len + payload_len, 0);
    s.read_exact(&mut frame[12..]).ok()?;
    Some(frame)
}

fn header_of(frame: &[u8]) -> &[u8] {
    let header_len = u32::from_le_bytes([frame[4], frame[5], frame[6], frame[7]]) as usize;
    &frame[12..12 + header_len]
}
