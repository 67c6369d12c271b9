//! Raft messages to peers: one sender task per peer, batching whatever is
//! queued into one `RaftBatch` frame. A failed send drops the batch; Raft
//! retransmits what matters. A snapshot message travels alone, in frame
//! payloads, cut into parts (`snapshot_stream.rs`) so that any size fits;
//! whether it was delivered is reported back to the Ready loop (raft-rs
//! waits for that report).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use protobuf::Message as PbMessage;
use raft::prelude::{Message, MessageType};
use shardline_proto::v1 as pb;
use shardline_rpc::{Frame, Pool};

use crate::snapshot_stream;
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
    /// Snapshot messages are sent in parts of at most this many bytes.
    part_bytes: usize,
}

impl Peers {
    /// Start sender tasks on `rt` for every peer except `self_id`.
    pub fn start(
        self_id: u64,
        addrs: HashMap<u64, String>,
        rt: &tokio::runtime::Handle,
        on_snapshot_failed: SnapshotFailed,
        part_bytes: usize,
    ) -> Self {
        let pool = Arc::new(Pool::new(Duration::from_millis(500), Duration::from_secs(2)));
        let mut peers = Peers {
            self_id,
            addrs: HashMap::new(),
            senders: HashMap::new(),
            pool,
            rt: rt.clone(),
            on_snapshot_failed,
            part_bytes: part_bytes.max(1),
        };
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
            let link = Link { from: self.self_id, to: id, addr: addr.clone(), pool: self.pool.clone() };
            self.rt.spawn(send_loop(link, rx, failed, self.part_bytes));
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

/// Where one sender task sends.
struct Link {
    from: u64,
    to: u64,
    addr: String,
    pool: Arc<Pool>,
}

async fn send_loop(
    link: Link,
    mut rx: mpsc::UnboundedReceiver<Message>,
    on_snapshot_failed: SnapshotFailed,
    part_bytes: usize,
) {
    let mut held: Option<Message> = None;
    let mut transfer = 0u64;
    while let Some(first) = match held.take() {
        Some(m) => Some(m),
        None => rx.recv().await,
    } {
        if first.get_msg_type() == MessageType::MsgSnapshot {
            transfer += 1;
            let msg = Bytes::from(first.write_to_bytes().unwrap_or_default());
            let mut delivered = true;
            for (part, payload) in snapshot_stream::parts(transfer, msg, part_bytes) {
                if !link.send(Vec::new(), payload, Some(part)).await {
                    delivered = false;
                    break;
                }
            }
            on_snapshot_failed(link.to, delivered);
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
        link.send(messages, Bytes::new(), None).await;
    }
}

impl Link {
    /// One `RaftBatch` frame; `payload` (if not empty) is a snapshot part.
    /// Whether the peer took it.
    async fn send(&self, messages: Vec<Vec<u8>>, payload: Bytes, snapshot_part: Option<pb::SnapshotPart>) -> bool {
        // A snapshot part (up to 16 MiB, applied at the end) gets longer.
        let timeout = Duration::from_secs(if snapshot_part.is_some() { 30 } else { 2 });
        let req = pb::MetaRequest {
            client_id: 0,
            request_id: 0,
            body: Some(pb::meta_request::Body::Raft(pb::RaftBatch { from: self.from, messages, snapshot_part })),
        };
        let sent = self.pool.call_with_timeout(&self.addr, &Frame::from_message(&req, payload), timeout).await;
        let refused = match sent {
            Ok(frame) => match frame.decode::<pb::MetaResponse>() {
                Ok(resp) => resp.error.map(|e| e.message),
                Err(e) => Some(format!("undecodable answer: {e}")),
            },
            Err(e) => {
                self.pool.forget(&self.addr);
                Some(e.to_string())
            }
        };
        match refused {
            None => true,
            Some(error) => {
                tracing::debug!(peer = %self.addr, %error, "raft send failed");
                false
            }
        }
    }
}
