//! Raft messages to peers: one sender task per peer, batching whatever is
//! queued into one `RaftBatch` frame. A failed send drops the batch; Raft
//! retransmits what matters. A snapshot message travels alone, in the frame's
//! payload (snapshots outgrow the header limit); whether it was delivered is
//! reported back to the Ready loop (raft-rs waits for that report).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use protobuf::Message as PbMessage;
use raft::prelude::{Message, MessageType};
use shardline_proto::v1 as pb;
use shardline_rpc::{Frame, Pool};
use tokio::sync::mpsc;

/// Called with a peer's id and whether a snapshot was delivered to it.
pub type SnapshotFailed = Arc<dyn Fn(u64, bool) + Send + Sync>;

pub struct Peers {
    self_id: u64,
    addrs: HashMap<u64, String>,
    senders: HashMap<u64, mpsc::UnboundedSender<Message>>,
    pool: Arc<Pool>,
    rt: tokio::runtime::Handle,
    on_snapshot_failed: SnapshotFailed,
}

impl Peers {
    /// Start sender tasks on `rt` for every peer except `self_id`.
    pub fn start(
        self_id: u64,
        addrs: HashMap<u64, String>,
        rt: &tokio::runtime::Handle,
        on_snapshot_failed: SnapshotFailed,
    ) -> Self {
        let pool = Arc::new(Pool::new(Duration::from_millis(500), Duration::from_secs(2)));
        let mut peers =
            Peers { self_id, addrs: HashMap::new(), senders: HashMap::new(), pool, rt: rt.clone(), on_snapshot_failed };
        for (id, addr) in addrs {
            peers.set(id, addr);
        }
        peers
    }

    /// Learn (or change) a peer's address at run time.
    pub fn set(&mut self, id: u64, addr: String) {
        if self.addrs.get(&id) == Some(&addr) {
            return;
        }
        if id != self.self_id {
            let (tx, rx) = mpsc::unbounded_channel();
            let failed = self.on_snapshot_failed.clone();
            self.rt.spawn(send_loop(self.self_id, id, addr.clone(), rx, self.pool.clone(), failed));
            // Replacing the sender ends the old task.
            self.senders.insert(id, tx);
        }
        self.addrs.insert(id, addr);
    }

    /// Forget a peer (removed from the cluster): its sender task ends.
    pub fn remove(&mut self, id: u64) {
        if id != self.self_id {
            self.senders.remove(&id);
            self.addrs.remove(&id);
        }
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

    /// Every known metadata server (this one included): id → address.
    pub fn members(&self) -> BTreeMap<u64, String> {
        self.addrs.iter().map(|(&id, a)| (id, a.clone())).collect()
    }
}

async fn send_loop(
    from: u64,
    to: u64,
    addr: String,
    mut rx: mpsc::UnboundedReceiver<Message>,
    pool: Arc<Pool>,
    on_snapshot_failed: SnapshotFailed,
) {
    let mut held: Option<Message> = None;
    while let Some(first) = match held.take() {
        Some(m) => Some(m),
        None => rx.recv().await,
    } {
        if first.get_msg_type() == MessageType::MsgSnapshot {
            let payload = Bytes::from(first.write_to_bytes().unwrap_or_default());
            let delivered = send(from, &addr, Vec::new(), payload, &pool).await;
            on_snapshot_failed(to, delivered);
            continue;
        }
        let mut batch = vec![first];
        while let Ok(m) = rx.try_recv() {
            if m.get_msg_type() == MessageType::MsgSnapshot {
                held = Some(m);
                break;
            }
            batch.push(m);
            if batch.len() >= 256 {
                break;
            }
        }
        let messages: Vec<Vec<u8>> = batch.iter().filter_map(|m| m.write_to_bytes().ok()).collect();
        send(from, &addr, messages, Bytes::new(), &pool).await;
    }
}

/// One `RaftBatch` frame; `payload` (if not empty) is one more message.
async fn send(from: u64, addr: &str, messages: Vec<Vec<u8>>, payload: Bytes, pool: &Pool) -> bool {
    let req = pb::MetaRequest {
        client_id: 0,
        request_id: 0,
        body: Some(pb::meta_request::Body::Raft(pb::RaftBatch { from, messages })),
    };
    match pool.call(addr, &Frame::from_message(&req, payload)).await {
        Ok(_) => true,
        Err(e) => {
            tracing::debug!(peer = %addr, error = %e, "raft send failed");
            pool.forget(addr);
            false
        }
    }
}
