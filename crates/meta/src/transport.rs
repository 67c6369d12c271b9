//! Raft messages to peers: one sender task per peer, batching whatever is
//! queued into one `RaftBatch` frame. A failed send drops the batch; Raft
//! retransmits what matters. A snapshot message travels alone, in frame
//! payloads, cut into parts (`snapshot_stream.rs`) so that any size fits;
//! whether it was delivered is reported back to the Ready loop (raft-rs
//! waits for that report).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bytes::Bytes;
use protobuf::Message as PbMessage;
use raft::prelude::{Message, MessageType};
use shardline_proto::v1 as pb;
use shardline_rpc::{Frame, Pool, Role, Tls};

use crate::snapshot_stream;
use tokio::sync::mpsc;

/// Called with a peer's id and whether a snapshot was delivered to it.
pub type SnapshotFailed = Arc<dyn Fn(u64, bool) + Send + Sync>;

/// Where each peer's messages are queued; the log writer sends through a
/// clone of it, so a follower's acknowledgement leaves right after its fsync.
#[derive(Clone, Default)]
pub struct Outbox(Arc<RwLock<HashMap<u64, mpsc::UnboundedSender<Message>>>>);

impl Outbox {
    pub fn send(&self, msgs: Vec<Message>) {
        if msgs.is_empty() {
            return;
        }
        let senders = self.0.read().unwrap_or_else(|e| e.into_inner());
        for m in msgs {
            if let Some(tx) = senders.get(&m.to) {
                let _ = tx.send(m);
            }
        }
    }

    #[cfg(test)]
    pub fn set_for_test(&self, id: u64, tx: mpsc::UnboundedSender<Message>) {
        self.set(id, Some(tx));
    }

    fn set(&self, id: u64, tx: Option<mpsc::UnboundedSender<Message>>) {
        let mut senders = self.0.write().unwrap_or_else(|e| e.into_inner());
        match tx {
            Some(tx) => senders.insert(id, tx),
            None => senders.remove(&id),
        };
    }
}

pub struct Peers {
    self_id: u64,
    addrs: HashMap<u64, String>,
    senders: Outbox,
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
        tls: Arc<Tls>,
    ) -> Self {
        let pool = Arc::new(Pool::new(tls, Role::Meta, Duration::from_millis(500), Duration::from_secs(2)));
        let mut peers = Peers {
            self_id,
            addrs: HashMap::new(),
            senders: Outbox::default(),
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
            self.senders.set(id, Some(tx));
        }
        self.addrs.insert(id, addr);
    }

    /// Forget a peer (removed from the cluster): its sender task ends.
    pub fn remove(&mut self, id: u64) {
        if id != self.self_id {
            self.senders.set(id, None);
            self.addrs.remove(&id);
        }
    }

    pub fn send(&self, msgs: Vec<Message>) {
        self.senders.send(msgs);
    }

    /// A handle that sends to the current peers, from any thread.
    pub fn outbox(&self) -> Outbox {
        self.senders.clone()
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
            caller: None,
            cache: false,
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
