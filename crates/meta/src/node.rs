//! The one Raft Ready loop, on its own thread.
//!
//! Order per raft-rs's five_mem_node: send messages → apply snapshot → apply
//! committed entries → persist entries and hard state → send persisted
//! messages → advance → apply what the LightReady committed. Proposals and
//! ReadIndex requests that arrive together are handled in one round, so one
//! fsync covers a whole batch.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use prost::Message as _;
use protobuf::Message as PbMessage;
use raft::prelude::{ConfChange, Entry, EntryType, Message, Snapshot};
use raft::storage::MemStorage;
use raft::{RawNode, StateRole};
use shardline_proto::v1 as pb;
use shardline_rpc::code_to_wire;
use shardline_types::ErrorCode;
use tokio::sync::oneshot;

use crate::raft_store::RaftStore;
use crate::state_machine::StateMachine;
use crate::transport::Peers;
use crate::MetaError;

/// Version byte of a log entry's payload: `[1][now_ns i64 LE][MetaRequest]`.
const ENTRY_FORMAT_V1: u8 = 1;

pub type Reply = oneshot::Sender<pb::MetaResponse>;

/// What the service asks of the loop.
pub enum Input {
    Propose { req: pb::MetaRequest, reply: Reply },
    Read { req: pb::MetaRequest, reply: Reply },
    Raft(Vec<Message>),
    Status { reply: oneshot::Sender<NodeStatus> },
}

/// One metadata server's own view, for `admin status`.
#[derive(Debug, Clone)]
pub struct NodeStatus {
    pub id: u64,
    pub role: String,
    pub term: u64,
    pub leader_id: u64,
    pub commit: u64,
    pub applied: u64,
    pub placement: pb::PlacementMap,
}

/// State shared with the service without going through the loop.
#[derive(Default)]
pub struct Shared {
    /// The current leader's id (0 when unknown).
    pub leader: AtomicU64,
    /// When this server last became leader (None while it is not).
    pub leader_since: std::sync::Mutex<Option<Instant>>,
}

pub struct Node {
    id: u64,
    raw: RawNode<MemStorage>,
    store: RaftStore,
    sm: StateMachine,
    peers: Peers,
    shared: Arc<Shared>,
    pending_writes: HashMap<(u64, u64), Vec<Reply>>,
    reads_to_index: HashMap<Vec<u8>, Vec<(pb::MetaRequest, Reply)>>,
    reads_waiting: Vec<(u64, Vec<(pb::MetaRequest, Reply)>)>,
    read_seq: u64,
}

impl Node {
    pub fn new(
        id: u64,
        store: RaftStore,
        sm: StateMachine,
        peers: Peers,
        shared: Arc<Shared>,
    ) -> Result<Self, MetaError> {
        let cfg = raft::Config {
            id,
            election_tick: 10,
            heartbeat_tick: 2,
            max_size_per_msg: 4 << 20,
            max_inflight_msgs: 256,
            check_quorum: true,
            pre_vote: true,
            ..Default::default()
        };
        cfg.validate()?;
        let logger = slog::Logger::root(slog::Discard, slog::o!());
        let raw = RawNode::new(&cfg, store.mem(), &logger)?;
        Ok(Node {
            id,
            raw,
            store,
            sm,
            peers,
            shared,
            pending_writes: HashMap::new(),
            reads_to_index: HashMap::new(),
            reads_waiting: Vec::new(),
            read_seq: 0,
        })
    }

    /// Run until the input channel closes or storage fails.
    pub fn run(mut self, rx: Receiver<Input>, tick: Duration) -> Result<(), MetaError> {
        let mut next_tick = Instant::now() + tick;
        loop {
            let timeout = next_tick.saturating_duration_since(Instant::now());
            match rx.recv_timeout(timeout) {
                Ok(input) => {
                    let mut reads = Vec::new();
                    self.handle(input, &mut reads);
                    while let Ok(input) = rx.try_recv() {
                        self.handle(input, &mut reads);
                    }
                    self.start_reads(reads);
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return Ok(()),
            }
            if Instant::now() >= next_tick {
                self.raw.tick();
                next_tick += tick;
                if next_tick < Instant::now() {
                    next_tick = Instant::now() + tick;
                }
            }
            self.on_ready()?;
        }
    }

    fn handle(&mut self, input: Input, reads: &mut Vec<(pb::MetaRequest, Reply)>) {
        match input {
            Input::Raft(msgs) => {
                for m in msgs {
                    // Messages from unknown or stale peers are refused by raft.
                    let _ = self.raw.step(m);
                }
            }
            Input::Propose { req, reply } => {
                if self.raw.raft.state != StateRole::Leader {
                    let _ = reply.send(self.not_leader());
                    return;
                }
                let mut data = Vec::with_capacity(9 + req.encoded_len());
                data.push(ENTRY_FORMAT_V1);
                data.extend_from_slice(&now_ns().to_le_bytes());
                req.encode(&mut data).unwrap_or_else(|_| unreachable!("Vec grows"));
                if let Err(e) = self.raw.propose(vec![], data) {
                    let _ = reply.send(unavailable(&format!("propose: {e}")));
                    return;
                }
                self.pending_writes.entry((req.client_id, req.request_id)).or_default().push(reply);
            }
            Input::Read { req, reply } => {
                if self.raw.raft.state != StateRole::Leader {
                    let _ = reply.send(self.not_leader());
                } else {
                    reads.push((req, reply));
                }
            }
            Input::Status { reply } => {
                let r = &self.raw.raft;
                let _ = reply.send(NodeStatus {
                    id: self.id,
                    role: role_name(r.state).to_string(),
                    term: r.term,
                    leader_id: r.leader_id,
                    commit: r.raft_log.committed,
                    applied: r.raft_log.applied,
                    placement: self.sm.placement_map(),
                });
            }
        }
    }

    /// One ReadIndex round for a batch of queries.
    fn start_reads(&mut self, reads: Vec<(pb::MetaRequest, Reply)>) {
        if reads.is_empty() {
            return;
        }
        self.read_seq += 1;
        let ctx = self.read_seq.to_le_bytes().to_vec();
        self.raw.read_index(ctx.clone());
        self.reads_to_index.insert(ctx, reads);
    }

    fn on_ready(&mut self) -> Result<(), MetaError> {
        if !self.raw.has_ready() {
            return Ok(());
        }
        let mut ready = self.raw.ready();
        if let Some(ss) = ready.ss() {
            self.shared.leader.store(ss.leader_id, Ordering::Relaxed);
            let mut since = self.shared.leader_since.lock().unwrap_or_else(|e| e.into_inner());
            if ss.raft_state != StateRole::Leader {
                *since = None;
                drop(since);
                self.fail_pending();
            } else if since.is_none() {
                *since = Some(Instant::now());
            }
        }
        if !ready.messages().is_empty() {
            self.peers.send(ready.take_messages());
        }
        if *ready.snapshot() != Snapshot::default() {
            return Err(MetaError::Store("snapshots are not supported by this version".into()));
        }
        for rs in ready.take_read_states() {
            if let Some(batch) = self.reads_to_index.remove(&rs.request_ctx) {
                self.reads_waiting.push((rs.index, batch));
            }
        }
        self.apply(ready.take_committed_entries())?;
        self.store.persist(ready.entries(), ready.hs())?;
        if !ready.persisted_messages().is_empty() {
            self.peers.send(ready.take_persisted_messages());
        }
        let mut light = self.raw.advance(ready);
        if let Some(commit) = light.commit_index() {
            self.store.set_commit(commit);
        }
        self.peers.send(light.take_messages());
        self.apply(light.take_committed_entries())?;
        self.raw.advance_apply();
        self.serve_reads();
        Ok(())
    }

    fn apply(&mut self, entries: Vec<Entry>) -> Result<(), MetaError> {
        for entry in entries {
            if entry.data.is_empty() {
                continue; // a new leader's empty entry
            }
            match entry.get_entry_type() {
                EntryType::EntryNormal => {
                    let (now, req) = decode_entry(&entry.data)?;
                    let resp = self.sm.apply(&req, now);
                    if let Some(replies) = self.pending_writes.remove(&(req.client_id, req.request_id)) {
                        for r in replies {
                            let _ = r.send(resp.clone());
                        }
                    }
                }
                EntryType::EntryConfChange => {
                    let cc = ConfChange::parse_from_bytes(&entry.data)?;
                    let cs = self.raw.apply_conf_change(&cc)?;
                    self.store.save_conf_state(&cs)?;
                }
                EntryType::EntryConfChangeV2 => {
                    let cc = raft::prelude::ConfChangeV2::parse_from_bytes(&entry.data)?;
                    let cs = self.raw.apply_conf_change(&cc)?;
                    self.store.save_conf_state(&cs)?;
                }
            }
        }
        Ok(())
    }

    fn serve_reads(&mut self) {
        let applied = self.raw.raft.raft_log.applied;
        let (ready, waiting): (Vec<_>, Vec<_>) = self.reads_waiting.drain(..).partition(|(idx, _)| *idx <= applied);
        self.reads_waiting = waiting;
        for (_, batch) in ready {
            for (req, reply) in batch {
                let _ = reply.send(self.sm.read(&req));
            }
        }
    }

    /// Lost leadership: tell waiting clients to retry elsewhere. A proposal
    /// that still commits later is deduplicated when the client retries.
    fn fail_pending(&mut self) {
        let resp = self.not_leader();
        for (_, replies) in self.pending_writes.drain() {
            for r in replies {
                let _ = r.send(resp.clone());
            }
        }
        for (_, batch) in
            self.reads_to_index.drain().chain(self.reads_waiting.drain(..).map(|(i, b)| (i.to_le_bytes().to_vec(), b)))
        {
            for (_, r) in batch {
                let _ = r.send(resp.clone());
            }
        }
    }

    fn not_leader(&self) -> pb::MetaResponse {
        let leader = self.raw.raft.leader_id;
        pb::MetaResponse {
            error: Some(pb::Error {
                code: code_to_wire(ErrorCode::NotLeader) as i32,
                message: format!("metadata server {} is not the leader", self.id),
                retryable: true,
                leader_hint: self.peers.addr_of(leader).unwrap_or_default(),
            }),
            body: None,
        }
    }
}

fn decode_entry(data: &[u8]) -> Result<(i64, pb::MetaRequest), MetaError> {
    if data.len() < 9 || data[0] != ENTRY_FORMAT_V1 {
        return Err(MetaError::CorruptEntry("unknown entry format".into()));
    }
    let mut now = [0u8; 8];
    now.copy_from_slice(&data[1..9]);
    let req = pb::MetaRequest::decode(&data[9..]).map_err(|e| MetaError::CorruptEntry(e.to_string()))?;
    Ok((i64::from_le_bytes(now), req))
}

pub fn unavailable(msg: &str) -> pb::MetaResponse {
    pb::MetaResponse {
        error: Some(pb::Error {
            code: code_to_wire(ErrorCode::Unavailable) as i32,
            message: msg.to_string(),
            retryable: true,
            leader_hint: String::new(),
        }),
        body: None,
    }
}

fn role_name(r: StateRole) -> &'static str {
    match r {
        StateRole::Leader => "leader",
        StateRole::Follower => "follower",
        StateRole::Candidate => "candidate",
        StateRole::PreCandidate => "pre-candidate",
    }
}

fn now_ns() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as i64).unwrap_or(0)
}
