//! The one Raft Ready loop, on its own thread.
//!
//! Order per Ready (raft-rs's five_mem_node, with its asynchronous ready):
//! send messages (a leader's appends leave before its own write, so
//! followers write while it does, Raft thesis §10.2.1) → apply a snapshot →
//! apply committed entries (a leader; a follower applies them last, after
//! its acknowledgement of the new entries left) → hand entries and hard
//! state to the log → `advance_append_async` → `on_persist_ready` once the
//! log is durable.
//! The log is written here when nothing else waits (no hand-over between
//! threads on the path of a lone request); when more input waits, the log
//! writer thread (`log_writer.rs`) writes while the loop goes on, and
//! batches queued meanwhile share one fsync (group commit). Messages that
//! must follow the write (a follower's acknowledgement, a vote) leave from
//! whichever thread wrote, right after the fsync. Proposals and ReadIndex
//! requests that arrive together are handled in one round. While the leader
//! holds its read lease (`lease.rs`, renewed by each ReadIndex round)
//! queries skip the round.
//!
//! Every `snapshot_every` applied entries (more in a large namespace:
//! [`snapshot_job::interval`]) the loop copies the state machine (O(1): its
//! tables are persistent maps) and a job (`snapshot_job.rs`) encodes and stores it off the loop; the
//! loop then compacts the log behind it, keeping half an interval of
//! entries for followers that are only a little behind. A follower further
//! behind receives the snapshot, and the loop replaces its state machine
//! with it.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use protobuf::Message as PbMessage;
use raft::prelude::{ConfChange, Entry, EntryType, MessageType, Snapshot, SnapshotMetadata};
use raft::{RawNode, SnapshotStatus, StateRole, Storage};
use shardline_proto::v1 as pb;
use shardline_rpc::code_to_wire;
use shardline_types::ErrorCode;

use crate::lease::ReadLease;
use crate::log_cache::LogCache;
use crate::log_writer::Batch;
use crate::membership;
use crate::node_io::{decode_entry, encode_entry, role_name, ReadBatch};
pub use crate::node_io::{unavailable, Input, NodeStatus, Reply, Shared};
use crate::pending_change::{not_taken, PendingChange, Settled};
use crate::raft_store::RaftStore;
use crate::read_view::ReadView;
use crate::snapshot;
use crate::snapshot_job::{self, Saved};
use crate::state_machine::StateMachine;
use crate::transport::Peers;
use crate::write_stats::Stage;
use crate::MetaError;

/// Election timeout in ticks (randomised up to twice this).
const ELECTION_TICK: usize = 10;

/// A client waiting for its proposal to be applied.
struct Waiting {
    reply: Reply,
    /// When the loop took the proposal.
    picked: Instant,
}

pub struct Node {
    id: u64,
    raw: RawNode<LogCache>,
    store: RaftStore,
    /// The state machine, shared with the request handlers.
    view: Arc<ReadView>,
    peers: Peers,
    shared: Arc<Shared>,
    pending_writes: HashMap<(u64, u64), Vec<Waiting>>,
    /// ReadIndex rounds in flight: when each started and the reads it serves.
    reads_to_index: HashMap<Vec<u8>, (Instant, ReadBatch)>,
    lease: ReadLease,
    /// Reads to answer once the state machine has applied their index.
    reads_waiting: Vec<(u64, ReadBatch)>,
    read_seq: u64,
    /// When the last round that only keeps the read lease started.
    lease_round: Option<Instant>,
    /// Take a snapshot every this many applied entries (at least).
    snapshot_every: u64,
    /// Index of the latest snapshot (taken or received).
    snapshot_index: u64,
    /// The proposed membership change's log index and its waiting client.
    pending_conf: PendingChange,
    /// Snapshot at the next opportunity (after a membership change, so a
    /// new member is in the snapshot it will be sent).
    snapshot_soon: bool,
    /// The last Ready handed to the log writer, and the last it reported
    /// durable.
    handed: u64,
    persisted: u64,
    /// A log write failed (reported by the writer).
    failed: Option<String>,
    /// Inputs taken off the channel early (see `input_waiting`).
    peeked: VecDeque<Input>,
    /// A snapshot job is running; how long the loop spent copying for it.
    snapshot_running: Option<Duration>,
}

impl Node {
    pub fn new(
        id: u64,
        store: RaftStore,
        sm: StateMachine,
        mut peers: Peers,
        shared: Arc<Shared>,
        snapshot_every: u64,
        tick: Duration,
    ) -> Result<Self, MetaError> {
        let mut sm = sm;
        let snap = store.snapshot();
        let snapshot_index = snap.get_metadata().index;
        if snapshot_index > 0 {
            let (restored, members) = snapshot::decode(&snap.data)?;
            sm = restored;
            for (id, addr) in members {
                peers.set(id, addr);
            }
            tracing::info!(id, index = snapshot_index, "state machine restored from snapshot");
        }
        let cfg = raft::Config {
            id,
            election_tick: ELECTION_TICK,
            heartbeat_tick: 2,
            max_size_per_msg: 4 << 20,
            max_inflight_msgs: 256,
            check_quorum: true,
            pre_vote: true,
            // A moved commit index is not sent on its own: followers learn
            // it with the next append or heartbeat (every 2 ticks). That
            // halves the Raft messages of a lone write (4 instead of 8:
            // the append and its acknowledgement to each follower), which
            // on a busy machine cost more than the writes themselves.
            // Only the leader answers clients, so nothing waits for a
            // follower to apply; membership changes still broadcast it.
            skip_bcast_commit: true,
            applied: snapshot_index,
            ..Default::default()
        };
        cfg.validate()?;
        let logger = slog::Logger::root(slog::Discard, slog::o!());
        let raw = RawNode::new(&cfg, store.cache(), &logger)?;
        Ok(Node {
            id,
            raw,
            store,
            view: Arc::new(ReadView::new(sm)),
            peers,
            shared,
            pending_writes: HashMap::new(),
            reads_to_index: HashMap::new(),
            lease: ReadLease::new(tick, ELECTION_TICK, Instant::now()),
            reads_waiting: Vec::new(),
            read_seq: 0,
            lease_round: None,
            snapshot_every: snapshot_every.max(1),
            snapshot_index,
            pending_conf: PendingChange::default(),
            snapshot_soon: false,
            handed: 0,
            persisted: 0,
            failed: None,
            peeked: VecDeque::new(),
            snapshot_running: None,
        })
    }

    /// Run until the input channel closes or storage fails; `tick` is the
    /// one given to [`Node::new`].
    pub fn run(mut self, rx: Receiver<Input>, tick: Duration) -> Result<(), MetaError> {
        let mut next_tick = Instant::now() + tick;
        loop {
            if self.shared.stop.load(Ordering::Relaxed) {
                return Ok(());
            }
            let timeout = next_tick.saturating_duration_since(Instant::now());
            let first = match self.peeked.pop_front() {
                Some(input) => Ok(input),
                None => rx.recv_timeout(timeout),
            };
            match first {
                Ok(input) => {
                    let mut reads = Vec::new();
                    self.handle(input, &mut reads);
                    while let Some(input) = self.peeked.pop_front().or_else(|| rx.try_recv().ok()) {
                        self.handle(input, &mut reads);
                    }
                    self.start_reads(reads);
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return Ok(()),
            }
            if let Some(e) = self.failed.take() {
                return Err(MetaError::Store(e));
            }
            if Instant::now() >= next_tick {
                self.raw.tick();
                next_tick += tick;
                if next_tick < Instant::now() {
                    next_tick = Instant::now() + tick;
                }
            }
            self.refresh_lease();
            self.on_ready(&rx)?;
            self.publish_read_permission();
        }
    }

    /// Let the request handlers answer queries themselves while that is
    /// linearizable (see `read_view.rs`).
    fn publish_read_permission(&self) {
        let raft = &self.raw.raft;
        let ok = raft.state == StateRole::Leader
            && raft.commit_to_current_term()
            && raft.raft_log.applied >= raft.raft_log.committed;
        self.view.allow_until(if ok { self.lease.until() } else { None });
    }

    /// Leadership or membership changed: no more lease reads, here or in
    /// the request handlers.
    fn end_lease(&mut self) {
        self.lease.end();
        self.view.allow_until(None);
    }

    /// The state machine as the request handlers share it.
    pub fn read_view(&self) -> Arc<ReadView> {
        self.view.clone()
    }

    fn handle(&mut self, input: Input, reads: &mut ReadBatch) {
        match input {
            Input::Raft(msgs) => {
                let may_vote = self.lease.may_vote(Instant::now());
                for mut m in msgs {
                    // Read for each message: one before it (a snapshot) may have moved the log's end.
                    let last = self.raw.raft.raft_log.last_index();
                    let vote = matches!(m.get_msg_type(), MessageType::MsgRequestVote | MessageType::MsgRequestPreVote);
                    if vote && !may_vote {
                        continue; // see lease.rs: a fresh server casts no vote yet
                    }
                    // Checks that need the log (raft_guard.rs).
                    if !crate::raft_guard::fit_to_log(&mut m, last) {
                        tracing::warn!(
                            from = m.from,
                            index = m.index,
                            last,
                            "ignored an append response beyond the log"
                        );
                        continue;
                    }
                    // Messages from unknown or stale peers are refused by raft.
                    let _ = self.raw.step(m);
                }
            }
            Input::Propose { req, reply, queued } => {
                let picked = Instant::now();
                self.shared.stats.record(Stage::Queue, picked.saturating_duration_since(queued));
                if self.raw.raft.state != StateRole::Leader {
                    let _ = reply.send(self.not_leader());
                    return;
                }
                if let Err(e) = self.raw.propose(vec![], encode_entry(&req)) {
                    let _ = reply.send(unavailable(&format!("propose: {e}")));
                    return;
                }
                self.pending_writes.entry((req.client_id, req.request_id)).or_default().push(Waiting { reply, picked });
            }
            Input::Read { req, reply } => {
                let raft = &self.raw.raft;
                if raft.state != StateRole::Leader {
                    let _ = reply.send(self.not_leader());
                } else if self.lease.holds(Instant::now()) && raft.commit_to_current_term() {
                    // Under the lease: answered once the current commit is applied.
                    let index = raft.raft_log.committed;
                    match self.reads_waiting.last_mut() {
                        Some((i, batch)) if *i == index => batch.push((req, reply)),
                        _ => self.reads_waiting.push((index, vec![(req, reply)])),
                    }
                } else {
                    reads.push((req, reply));
                }
            }
            Input::SnapshotSent { peer, delivered } => {
                let status = if delivered { SnapshotStatus::Finish } else { SnapshotStatus::Failure };
                self.raw.report_snapshot(peer, status);
            }
            Input::ConfChange { change, reply } => self.propose_conf_change(change, reply),
            Input::Persisted(number) => {
                self.persisted = self.persisted.max(number);
                self.raw.on_persist_ready(number);
            }
            Input::LogFailed(e) => self.failed = Some(e),
            Input::SnapshotSaved(saved) => {
                if let Err(e) = self.snapshot_saved(saved) {
                    self.failed = Some(e.to_string());
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
                    placement: self.view.sm().placement_map(),
                    open_holders: self.view.sm().open_holders(),
                });
            }
        }
    }

    /// One ReadIndex round for a batch of queries.
    fn start_reads(&mut self, reads: ReadBatch) {
        if reads.is_empty() {
            return;
        }
        self.read_seq += 1;
        let ctx = self.read_seq.to_le_bytes().to_vec();
        let started = Instant::now();
        self.raw.read_index(ctx.clone());
        self.reads_to_index.insert(ctx, (started, reads));
    }

    /// Keep the read lease from lapsing while this server leads: with less
    /// than half of it left, a ReadIndex round that serves no read (one
    /// heartbeat exchange). Otherwise only a read that found the lease
    /// lapsed started a round, so an idle leader lost it every 0.7 s, and
    /// what needs it in the request handlers — lease reads, the metadata
    /// cache's grants and watches — failed or waited meanwhile.
    fn refresh_lease(&mut self) {
        let now = Instant::now();
        if self.raw.raft.state != StateRole::Leader || !self.lease.wants_refresh(now, self.lease_round) {
            return;
        }
        self.lease_round = Some(now);
        self.read_seq += 1;
        let ctx = self.read_seq.to_le_bytes().to_vec();
        self.raw.read_index(ctx.clone());
        self.reads_to_index.insert(ctx, (now, Vec::new()));
    }

    /// Whether an input arrived since the loop last looked (kept for the
    /// next round).
    fn input_waiting(&mut self, rx: &Receiver<Input>) -> bool {
        if self.peeked.is_empty() {
            if let Ok(input) = rx.try_recv() {
                self.peeked.push_back(input);
            }
        }
        !self.peeked.is_empty()
    }

    /// Handle Readies until raft-rs has nothing more for now.
    fn on_ready(&mut self, rx: &Receiver<Input>) -> Result<(), MetaError> {
        while self.raw.has_ready() {
            self.one_ready(rx)?;
        }
        self.serve_reads();
        self.maybe_snapshot()
    }

    fn one_ready(&mut self, rx: &Receiver<Input>) -> Result<(), MetaError> {
        let mut ready = self.raw.ready();
        if let Some(ss) = ready.ss() {
            self.shared.leader.store(ss.leader_id, Ordering::Relaxed);
            self.lease.end();
            self.view.allow_until(None);
            let mut since = self.shared.leader_since.lock().unwrap_or_else(|e| e.into_inner());
            if ss.raft_state != StateRole::Leader {
                *since = None;
                drop(since);
                self.fail_pending();
            } else if since.is_none() {
                *since = Some(Instant::now());
            }
        }
        // A leader's appends leave now: followers write while it does.
        if !ready.messages().is_empty() {
            self.peers.send(ready.take_messages());
        }
        let has_snapshot = *ready.snapshot() != Snapshot::default();
        if has_snapshot {
            self.install_snapshot(ready.snapshot())?;
        }
        for rs in ready.take_read_states() {
            if let Some((started, batch)) = self.reads_to_index.remove(&rs.request_ctx) {
                self.lease.confirmed(started);
                self.reads_waiting.push((rs.index, batch));
            }
        }
        // A leader applies first: its answers wait for that. A follower
        // learns of a commit with the next append (commits are not broadcast
        // on their own), and nobody waits for its apply: it acknowledges the
        // new entries first.
        let committed = ready.take_committed_entries();
        let (apply_now, apply_after) =
            if self.raw.raft.state == StateRole::Leader { (committed, Vec::new()) } else { (Vec::new(), committed) };
        self.apply(apply_now)?;
        let number = ready.number();
        let batch = Batch {
            number,
            entries: ready.take_entries(),
            hard_state: ready.hs().cloned(),
            sync: ready.must_sync(),
            messages: ready.take_persisted_messages(),
            queued: Instant::now(),
        };
        self.raw.advance_append_async(ready);
        let writer_idle = self.handed <= self.persisted;
        if !batch.sync && writer_idle {
            // Nothing to make durable and nothing ahead of it at the writer:
            // no need for a trip through it (a moved commit index is not
            // written on its own).
            if let Some(hs) = &batch.hard_state {
                self.store.cache().wl().hard_state = hs.clone();
            }
            self.peers.send(batch.messages);
            self.raw.on_persist_ready(number);
        } else if has_snapshot || (writer_idle && !self.input_waiting(rx)) {
            // Nothing else to do meanwhile: write here, sparing the hand-over
            // to the writer thread and back (a snapshot's Ready is made
            // durable whole before going on, so raft-rs may count the
            // snapshot as applied).
            self.store.append_now(batch)?;
            (self.handed, self.persisted) = (number, number);
            self.raw.on_persist_ready(number);
        } else {
            // Other work is waiting: the writer thread writes while this
            // loop goes on (pipelining; batches queued meanwhile share one
            // fsync).
            self.store.append(batch)?;
            self.handed = number;
        }
        self.apply(apply_after)?;
        self.raw.advance_apply();
        Ok(())
    }

    /// A snapshot from the leader: persist it, then replace the state machine.
    fn install_snapshot(&mut self, snap: &Snapshot) -> Result<(), MetaError> {
        let index = snap.get_metadata().index;
        let (sm, members) = snapshot::decode(&snap.data)?;
        // What was handed to the log writer before goes to disk first.
        self.store.barrier()?;
        self.store.apply_snapshot(snap)?;
        *self.view.sm_mut() = sm;
        for (id, addr) in members {
            self.peers.set(id, addr);
        }
        self.snapshot_index = index;
        tracing::info!(id = self.id, index, "installed snapshot from the leader");
        Ok(())
    }

    /// Every `snapshot_every` applied entries: snapshot the state machine
    /// and compact the log, keeping half an interval of entries. The loop
    /// only copies the state machine; a job encodes and stores it
    /// (`snapshot_job.rs`) and reports back with `Input::SnapshotSaved`.
    #[allow(clippy::field_reassign_with_default)] // protobuf 2 structs carry private fields
    fn maybe_snapshot(&mut self) -> Result<(), MetaError> {
        let applied = self.raw.raft.raft_log.applied;
        if self.snapshot_running.is_some()
            || applied <= self.snapshot_index
            || (!self.snapshot_soon
                && applied
                    < self.snapshot_index
                        + snapshot_job::interval(self.snapshot_every, self.view.sm().ns.inode_count()))
        {
            return Ok(());
        }
        self.snapshot_soon = false;
        let started = Instant::now();
        let mut meta = SnapshotMetadata::default();
        meta.index = applied;
        meta.term = self.raw.store().term(applied)?;
        meta.set_conf_state(self.raw.store().rl().conf_state.clone());
        let plan = self.store.plan_snapshot(meta, applied.saturating_sub(self.snapshot_every / 2))?;
        let sm = self.view.sm().clone();
        snapshot_job::spawn(self.store.saver(), sm, self.peers.members(), plan, self.store.notifier()?)?;
        self.snapshot_running = Some(started.elapsed());
        Ok(())
    }

    /// A snapshot job is done: compact the log behind its snapshot.
    fn snapshot_saved(&mut self, saved: Result<Option<Saved>, String>) -> Result<(), MetaError> {
        let copied = self.snapshot_running.take();
        let Some(saved) = saved.map_err(MetaError::Store)? else { return Ok(()) };
        let (index, bytes, took) = (saved.plan.meta.index, saved.data.len(), saved.took);
        if self.store.finish_snapshot(saved)? {
            self.snapshot_index = self.snapshot_index.max(index);
            tracing::info!(id = self.id, index, bytes, loop_stalled = ?copied.unwrap_or_default(), job = ?took,
                "snapshot taken");
        }
        Ok(())
    }

    fn apply(&mut self, entries: Vec<Entry>) -> Result<(), MetaError> {
        for entry in entries {
            let membership = entry.get_entry_type() == EntryType::EntryConfChangeV2 && !entry.data.is_empty();
            self.apply_one(&entry)?;
            match self.pending_conf.applied(entry.index, membership) {
                Some(Settled::Applied(reply)) => {
                    let _ = reply.send(membership::members_response(&self.raw, &self.peers));
                }
                Some(Settled::Dropped(reply)) => {
                    let _ = reply.send(not_taken());
                }
                None => {}
            }
        }
        Ok(())
    }

    fn apply_one(&mut self, entry: &Entry) -> Result<(), MetaError> {
        if entry.data.is_empty() {
            return Ok(()); // a new leader's empty entry, or a change raft-rs dropped
        }
        match entry.get_entry_type() {
            EntryType::EntryNormal => {
                let started = Instant::now();
                let (now, req, rules) = decode_entry(&entry.data)?;
                let resp = self.view.sm_mut().apply_with(&req, now, rules);
                if let Some(waiting) = self.pending_writes.remove(&(req.client_id, req.request_id)) {
                    let stats = &self.shared.stats;
                    for w in waiting {
                        stats.record(Stage::Replicate, started.saturating_duration_since(w.picked));
                        stats.record(Stage::Apply, started.elapsed());
                        let _ = w.reply.send(resp.clone());
                    }
                }
            }
            EntryType::EntryConfChange => {
                self.end_lease();
                let cc = ConfChange::parse_from_bytes(&entry.data)?;
                let cs = self.raw.apply_conf_change(&cc)?;
                self.store.save_conf_state(&cs)?;
            }
            EntryType::EntryConfChangeV2 => self.apply_membership(entry)?,
        }
        Ok(())
    }

    /// Propose adding or removing one metadata server. One change at a time.
    fn propose_conf_change(&mut self, change: pb::MetaMembershipChange, reply: Reply) {
        if self.raw.raft.state != StateRole::Leader {
            let _ = reply.send(self.not_leader());
            return;
        }
        if self.pending_conf.is_some() {
            let _ = reply.send(unavailable("another membership change is in progress"));
            return;
        }
        let voters = self.raw.raft.prs().conf().to_conf_state().voters;
        match membership::conf_change(&change, &voters) {
            Err(e) => {
                let _ = reply.send(crate::wire::error_response(&e));
            }
            Ok(cc) => match self.raw.propose_conf_change(membership::encode_context(&change.addr, &voters, &cc), cc) {
                Ok(()) => self.pending_conf.start(self.raw.raft.raft_log.last_index(), reply),
                Err(e) => {
                    let _ = reply.send(unavailable(&format!("propose membership change: {e}")));
                }
            },
        }
    }

    /// A committed membership change: apply it to Raft, the transport and
    /// the durable member list, and answer the client that proposed it.
    fn apply_membership(&mut self, entry: &Entry) -> Result<(), MetaError> {
        let cc = raft::prelude::ConfChangeV2::parse_from_bytes(&entry.data)?;
        // A new quorum: the old one's promise no longer covers it.
        self.end_lease();
        let (addr, voters_after) = membership::decode_context(&entry.context);
        let known = self.raw.raft.prs().conf().to_conf_state().voters;
        match voters_after {
            // Joined empty and meeting the log before any snapshot: no
            // voters to change yet, so take the ones the entry lists.
            Some(after) if known.is_empty() && !after.is_empty() => {
                for id in after {
                    let mut single = raft::prelude::ConfChangeSingle::default();
                    single.set_change_type(raft::prelude::ConfChangeType::AddNode);
                    single.node_id = id;
                    let mut one = raft::prelude::ConfChangeV2::default();
                    one.set_changes(vec![single].into());
                    let cs = self.raw.apply_conf_change(&one)?;
                    self.store.save_conf_state(&cs)?;
                }
                tracing::info!(id = self.id, "joined: took the voters listed by the first membership change");
            }
            _ => match self.raw.apply_conf_change(&cc) {
                Ok(cs) => self.store.save_conf_state(&cs)?,
                // Committed but invalid (e.g. removing the last voter): every
                // server skips it the same way.
                Err(e) => tracing::warn!(id = self.id, error = %e, "ignored an invalid membership change"),
            },
        }
        membership::update_peers(&mut self.peers, &cc, addr);
        self.store.save_members(&self.peers.members())?;
        self.snapshot_soon = true;
        Ok(())
    }

    fn serve_reads(&mut self) {
        let applied = self.raw.raft.raft_log.applied;
        let (ready, waiting): (Vec<_>, Vec<_>) = self.reads_waiting.drain(..).partition(|(idx, _)| *idx <= applied);
        self.reads_waiting = waiting;
        for (_, batch) in ready {
            for (req, reply) in batch {
                let _ = reply.send(self.view.sm().read(&req));
            }
        }
    }

    /// Lost leadership: tell waiting clients to retry elsewhere. A proposal
    /// that still commits later is deduplicated when the client retries.
    fn fail_pending(&mut self) {
        let resp = self.not_leader();
        if let Some(reply) = self.pending_conf.take() {
            let _ = reply.send(resp.clone());
        }
        for (_, waiting) in self.pending_writes.drain() {
            for w in waiting {
                let _ = w.reply.send(resp.clone());
            }
        }
        for batch in
            self.reads_to_index.drain().map(|(_, (_, b))| b).chain(self.reads_waiting.drain(..).map(|(_, b)| b))
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
            dirs: Vec::new(),
            ..Default::default()
        }
    }
}
