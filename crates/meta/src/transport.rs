//! Raft messages to peers: one sender task per peer, batching whatever is
//! queued into one `RaftBatch` frame. A failed send drops the batch; Raft
//! retransmits what matters.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use protobuf::Message as PbMessage;
use raft::prelude::Message;
use shardline_proto::v1 as pb;
use shardline_rpc::{Frame, Pool};
use tokio::sync::mpsc;

pub struct Peers {
    self_id: u64,
    addrs: HashMap<u64, String>,
    senders: HashMap<u64, mpsc::UnboundedSender<Message>>,
}

impl Peers {
    /// Start sender tasks on `rt` for every peer except `self_id`.
    pub fn start(self_id: u64, addrs: HashMap<u64, String>, rt: &tokio::runtime::Handle) -> Self {
        let pool = Arc::new(Pool::new(Duration::from_millis(500), Duration::from_secs(2)));
        let mut senders = HashMap::new();
        for (&id, addr) in &addrs {
            if id == self_id {
                continue;
            }
            let (tx, rx) = mpsc::unbounded_channel();
            rt.spawn(send_loop(self_id, addr.clone(), rx, pool.clone()));
            senders.insert(id, tx);
        }
        Peers { self_id, addrs, senders }
    }

    pub fn send(&self, msgs: Vec<Message>) {
        for m in msgs {
            if let Some(tx) = self.senders.get(&m.to) {
                let _ = tx.send(m);
            }
        }
    }

    pub fn addr_of(&self, id: u64) -> Option<String> {
        self.addrs.get(&id).cloned()
    }

    pub fn self_id(&self) -> u64 {
        self.self_id
    }
}

async fn send_loop(from: u64, addr: String, mut rx: mpsc::UnboundedReceiver<Message>, pool: Arc<Pool>) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while let Ok(m) = rx.try_recv() {
            batch.push(m);
            if batch.len() >= 256 {
                break;
            }
        }
        let messages: Vec<Vec<u8>> = batch.iter().filter_map(|m| m.write_to_bytes().ok()).collect();
        let req = pb::MetaRequest {
            client_id: 0,
            request_id: 0,
            body: Some(pb::meta_request::Body::Raft(pb::RaftBatch { from, messages })),
        };
        if let Err(e) = pool.call(&addr, &Frame::from_message(&req, Bytes::new())).await {
            tracing::debug!(peer = %addr, error = %e, "raft send failed");
            pool.forget(&addr);
        }
    }
}
