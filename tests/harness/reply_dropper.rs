//! Lost replies, for tests: a proxy in front of one metadata server that
//! relays every request and reply, except that while dropping is on, a
//! `CommitChunk` is relayed to the server and then the connection is closed
//! instead of returning the reply. The commit applied; the client
//! cannot know it did. A hook on `meta_proxy.rs`.

#![allow(dead_code)]

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use prost::Message as _;
use shardline_proto::v1 as pb;
use shardline_rpc::Tls;

use crate::meta_proxy::{Hook, MetaProxy};

#[derive(Default)]
struct Shared {
    drop_commit_replies: AtomicBool,
    dropped: AtomicUsize,
}

pub struct ReplyDropper {
    /// The address it listens on.
    pub addr: String,
    shared: Arc<Shared>,
    _proxy: MetaProxy,
}

impl ReplyDropper {
    /// Listen on `host`:any port and relay to `target`: accept as
    /// `server_tls` (a metadata server's identity), dial as `client_tls`.
    pub fn start(host: &str, target: &str, server_tls: Arc<Tls>, client_tls: Arc<Tls>) -> ReplyDropper {
        let shared = Arc::new(Shared::default());
        let s = shared.clone();
        let hook: Hook = Arc::new(move |request, reply| {
            let is_commit = matches!(
                pb::MetaRequest::decode(request.header.clone()).ok().and_then(|r| r.body),
                Some(pb::meta_request::Body::CommitChunk(_))
            );
            if is_commit && s.drop_commit_replies.load(Ordering::SeqCst) {
                s.dropped.fetch_add(1, Ordering::SeqCst);
                return None;
            }
            Some(reply)
        });
        let proxy = MetaProxy::start(host, target, server_tls, client_tls, hook);
        ReplyDropper { addr: proxy.addr.clone(), shared, _proxy: proxy }
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
