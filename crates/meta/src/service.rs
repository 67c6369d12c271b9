//! The metadata service's request handler.
//!
//! Mutations go through the Raft log, queries through ReadIndex (so they are
//! linearizable), Raft traffic straight to the loop. Data-server heartbeats
//! are soft state in the leader's memory; the leader's [`MetaService::monitor`]
//! turns missed or resumed heartbeats into replicated up/down changes, which
//! remap placement groups and hand out rebuild tasks.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use shardline_proto::v1 as pb;
use shardline_proto::v1::meta_request::Body;
use shardline_proto::v1::meta_response::Body as RBody;
use shardline_rpc::{Frame, Handler, Principal, Role};
use shardline_types::ErrorCode;
use tokio::sync::oneshot;

use crate::authz::authorize;
use crate::caps::CapIssuer;
use crate::fs_usage::{with_live_usage, UsageReport};
use crate::namespace::OpError;
use crate::node::{unavailable, Input, NodeStatus, Shared};
use crate::read_view::ReadView;
use crate::snapshot_stream::Reassembly;
use crate::state_machine::is_mutation;
use crate::wire::{error_response, ok};
use crate::write_stats::Stage;

/// Per data server: (slots it is the target of, slots it handed over not
/// yet released, their shard bytes, shard bytes of its slots).
#[derive(Default)]
struct MovesSummary {
    per_server: HashMap<u64, (u32, u32, u64, u64)>,
    pending: u32,
    pending_bytes: u64,
    rate: u64,
    repair_paused: bool,
}

/// Client id the leader uses for its own proposals.
const MONITOR_CLIENT_ID: u64 = u64::MAX;

struct Liveness {
    seen: Instant,
    report: pb::Heartbeat,
}

pub struct MetaService {
    id: u64,
    loop_tx: Mutex<Sender<Input>>,
    shared: Arc<Shared>,
    liveness: Mutex<HashMap<u64, Liveness>>,
    down_after: Duration,
    data_shards: usize,
    self_addr: String,
    monitor_seq: AtomicU64,
    /// Snapshots arriving in parts from peers.
    snapshots: Reassembly,
    /// A client holding opens that is silent this long loses them.
    client_lease: Duration,
    /// When each client last sent a request here.
    clients_seen: Mutex<HashMap<u64, Instant>>,
    /// The state machine, for queries answered here under the read lease.
    view: Arc<ReadView>,
    /// Shard capabilities added to chunk lists, released chunks and grants.
    caps: CapIssuer,
    /// Metadata cache sessions (None: caching is off).
    leases: Option<crate::cache_leases::CacheLeases>,
}

/// What the request handlers are told at start.
pub struct ServiceConfig {
    pub id: u64,
    /// A data server silent this long is reported down.
    pub down_after: Duration,
    pub data_shards: usize,
    /// This server's address, as `admin status` shows it.
    pub self_addr: String,
    /// A client holding opens that is silent this long loses them.
    pub client_lease: Duration,
    /// Issues shard capabilities (none when capabilities are off).
    pub caps: CapIssuer,
    /// The metadata cache lease (zero: clients may not cache).
    pub cache_lease: Duration,
}

impl MetaService {
    pub fn new(cfg: ServiceConfig, loop_tx: Sender<Input>, shared: Arc<Shared>, view: Arc<ReadView>) -> Self {
        MetaService {
            id: cfg.id,
            loop_tx: Mutex::new(loop_tx),
            shared,
            liveness: Mutex::new(HashMap::new()),
            down_after: cfg.down_after,
            data_shards: cfg.data_shards,
            self_addr: cfg.self_addr,
            monitor_seq: AtomicU64::new(0),
            snapshots: Reassembly::default(),
            client_lease: cfg.client_lease,
            clients_seen: Mutex::new(HashMap::new()),
            view,
            caps: cfg.caps,
            leases: (!cfg.cache_lease.is_zero()).then(|| crate::cache_leases::CacheLeases::new(cfg.cache_lease)),
        }
    }

    fn send(&self, input: Input) -> bool {
        self.loop_tx.lock().unwrap_or_else(|e| e.into_inner()).send(input).is_ok()
    }

    async fn ask(&self, make: impl FnOnce(oneshot::Sender<pb::MetaResponse>) -> Input) -> pb::MetaResponse {
        let (tx, rx) = oneshot::channel();
        if !self.send(make(tx)) {
            return unavailable("metadata server is shutting down");
        }
        match tokio::time::timeout(Duration::from_secs(10), rx).await {
            Ok(Ok(resp)) => resp,
            _ => unavailable("metadata request timed out"),
        }
    }

    pub(crate) async fn node_status(&self) -> Option<NodeStatus> {
        let (tx, rx) = oneshot::channel::<NodeStatus>();
        if !self.send(Input::Status { reply: tx }) {
            return None;
        }
        rx.await.ok()
    }

    /// How long this server has been leader (None when it is not).
    fn leader_for(&self) -> Option<Duration> {
        self.shared.leader_since.lock().unwrap_or_else(|e| e.into_inner()).map(|t| t.elapsed())
    }

    /// The cluster's status. `with_bytes`: add the shard bytes servers
    /// hold and have yet to hand off, which sums the bytes of every chunk in
    /// the namespace — for an operator's request, not for the gauges the
    /// monitor refreshes every second (with millions of chunks that scan
    /// held a request thread for a noticeable time, every second).
    pub(crate) async fn status(&self, with_bytes: bool) -> pb::MetaResponse {
        let Some(st) = self.node_status().await else { return unavailable("metadata server is shutting down") };
        let me = pb::MetaServerInfo {
            id: st.id,
            addr: self.self_addr.clone(),
            role: st.role.clone(),
            term: st.term,
            commit_index: st.commit,
            applied_index: st.applied,
        };
        let mut status = pb::ClusterStatus { meta: vec![me], epoch: st.placement.epoch, ..Default::default() };
        if st.role != "leader" {
            return ok(RBody::Status(status));
        }
        let moves = self.moves_summary(with_bytes);
        status.moves_pending = moves.pending;
        status.moves_pending_bytes = moves.pending_bytes;
        status.move_rate = moves.rate;
        status.repair_paused = moves.repair_paused;
        status.scrub_paused = self.view.sm().registry.scrub_paused();
        let live = self.liveness.lock().unwrap_or_else(|e| e.into_inner());
        let mut available = std::collections::HashSet::new();
        for s in &st.placement.servers {
            let mut info = s.clone();
            if let Some(m) = moves.per_server.get(&s.id) {
                (info.slots, info.moving_out, info.moving_out_bytes, info.held_bytes) = *m;
            }
            if info.state == "draining" && info.slots == 0 && info.moving_out == 0 {
                info.state = "drained".into();
            }
            if let Some(l) = live.get(&s.id) {
                info.used_bytes = l.report.used_bytes;
                info.capacity_bytes = l.report.capacity_bytes;
                info.shard_count = l.report.shard_count;
                info.rebuild_chunks_done = l.report.rebuild_chunks_done;
                info.rebuild_chunks_total = l.report.rebuild_chunks_total;
                info.rebuild_bytes = l.report.rebuild_bytes;
                (info.scrub_checked, info.scrub_total) = (l.report.scrub_checked, l.report.scrub_total);
                info.store = l.report.store.clone();
            }
            let heard = live.get(&s.id).is_some_and(|l| l.seen.elapsed() < self.down_after);
            if s.state == "up" && !heard {
                info.state = "unresponsive".into();
            }
            if info.state == "up" {
                available.insert(s.id);
            }
            status.data.push(info);
        }
        for g in &st.placement.groups {
            let serving = g
                .targets
                .iter()
                .enumerate()
                .filter(|(i, t)| available.contains(t) && !g.rebuilding.contains(&(*i as u32)));
            let serving = serving.count();
            status.pgs_total += 1;
            status.rebuilds_pending += g.rebuilding.len() as u32;
            if serving == g.targets.len() {
                status.pgs_healthy += 1;
            } else if serving >= self.data_shards {
                status.pgs_degraded += 1;
            } else {
                status.pgs_unavailable += 1;
            }
        }
        ok(RBody::Status(status))
    }

    /// Hand-offs (and with `with_bytes` held and moving bytes) per server,
    /// from the state machine.
    fn moves_summary(&self, with_bytes: bool) -> MovesSummary {
        let sm = self.view.sm();
        let bytes = if with_bytes { sm.pg_bytes() } else { Vec::new() };
        let r = &sm.registry;
        let mut out = MovesSummary { rate: r.move_rate(), repair_paused: r.repair_paused(), ..Default::default() };
        for s in r.servers() {
            out.per_server.insert(s.id, (r.slots_of(s.id) as u32, 0, 0, r.held_bytes_of(s.id, &bytes)));
        }
        for &(pg, _, from) in r.handoffs() {
            let b = bytes.get(pg as usize).copied().unwrap_or(0);
            out.pending += 1;
            out.pending_bytes += b;
            if let Some(e) = out.per_server.get_mut(&from) {
                e.1 += 1;
                e.2 += b;
            }
        }
        out
    }

    /// On the leader: mark data servers down after `down_after` without a
    /// heartbeat (and up again when they come back), and drop the opens of
    /// clients silent for the client lease. Runs forever.
    pub async fn monitor(self: Arc<Self>) {
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        for n in 0u64.. {
            tick.tick().await;
            if n % 4 == 0 {
                self.publish_metrics().await;
            }
            // A new leader first waits a full timeout so every live server
            // and client has had the chance to reach it.
            let Some(led) = self.leader_for() else { continue };
            if led <= self.down_after.min(self.client_lease) {
                continue;
            }
            let Some(st) = self.node_status().await else { return };
            if led > self.down_after {
                self.check_data_servers(&st).await;
            }
            if led > self.client_lease {
                self.expire_clients(&st).await;
            }
        }
    }

    async fn check_data_servers(&self, st: &NodeStatus) {
        let (mut down, mut up) = (Vec::new(), Vec::new());
        {
            let live = self.liveness.lock().unwrap_or_else(|e| e.into_inner());
            for s in &st.placement.servers {
                let heard = live.get(&s.id).is_some_and(|l| l.seen.elapsed() < self.down_after);
                match (s.state.as_str(), heard) {
                    ("up", false) => down.push(s.id),
                    ("down", true) => up.push(s.id),
                    _ => {}
                }
            }
        }
        if down.is_empty() && up.is_empty() {
            return;
        }
        tracing::warn!(?down, ?up, "data server state changed; remapping placement groups");
        self.propose_as_monitor(Body::SetServerState(pb::SetServerState { down, up }), "data server state change")
            .await;
    }

    /// Clients holding opens that have not reached this server for the
    /// client lease lose them (a crashed mount's unlinked files go).
    async fn expire_clients(&self, st: &NodeStatus) {
        let expired: Vec<u64> = {
            let mut seen = self.clients_seen.lock().unwrap_or_else(|e| e.into_inner());
            seen.retain(|_, at| at.elapsed() < 2 * self.client_lease);
            st.open_holders
                .iter()
                .filter(|c| seen.get(c).is_none_or(|at| at.elapsed() > self.client_lease))
                .copied()
                .collect()
        };
        if expired.is_empty() {
            return;
        }
        tracing::warn!(clients = expired.len(), "client leases ran out; dropping their opens");
        self.propose_as_monitor(Body::ExpireClients(pb::ExpireClients { clients: expired }), "client lease expiry")
            .await;
    }

    async fn propose_as_monitor(&self, body: Body, what: &str) {
        let req = pb::MetaRequest {
            client_id: MONITOR_CLIENT_ID ^ self.id,
            request_id: rand_request_id(&self.monitor_seq),
            caller: None,
            cache: false,
            body: Some(body),
        };
        let resp = self.ask(|reply| Input::Propose { req, reply, queued: Instant::now() }).await;
        if let Some(e) = resp.error {
            tracing::info!(error = %e.message, "could not record a {what}");
        }
    }

    /// The usage reports of the data servers heard from within `down_after`.
    fn recent_usage(&self) -> Vec<UsageReport> {
        let live = self.liveness.lock().unwrap_or_else(|e| e.into_inner());
        live.values()
            .filter(|l| l.seen.elapsed() < self.down_after)
            .map(|l| (l.report.capacity_bytes, l.report.used_bytes))
            .collect()
    }

    /// Answer `req`, then add the shard capabilities its answer carries
    /// (`caps.rs`): tokens are made fresh for every answer, a deduplicated
    /// retry's included, and never stored. Counted and timed in metrics.
    async fn dispatch(&self, mut req: pb::MetaRequest) -> pb::MetaResponse {
        let timer = shardline_metrics::RequestTimer::start("meta", crate::op_names::op_name(req.body.as_ref()));
        crate::caps::strip_request_caps(&mut req);
        let (body, caller) = (req.body.clone(), req.caller.clone());
        let mut resp = self.dispatch_inner(req).await;
        let epoch = self.view.sm().epoch();
        self.caps.attach(body.as_ref(), &mut resp, epoch);
        crate::perm::filter_response(caller.as_ref(), body.as_ref(), &mut resp);
        timer.finish(resp.error.is_none());
        resp
    }

    async fn dispatch_inner(&self, req: pb::MetaRequest) -> pb::MetaResponse {
        let Some(body) = req.body.as_ref() else {
            return error_response(&OpError::new(ErrorCode::InvalidArgument, "empty request"));
        };
        match body {
            Body::Raft(batch) => {
                // A snapshot is decoded to be checked: off the async threads.
                let size: usize = batch.messages.iter().map(Vec::len).sum();
                let (me, batch) = (self.id, batch.clone());
                let checked = if size > (1 << 20) {
                    tokio::task::spawn_blocking(move || crate::raft_guard::parse_checked(&batch, me))
                        .await
                        .unwrap_or_else(|e| Err(format!("check task failed: {e}")))
                } else {
                    crate::raft_guard::parse_checked(&batch, me)
                };
                let msgs = match checked {
                    Ok(msgs) => msgs,
                    Err(why) => {
                        tracing::warn!(from = req_from(&req), %why, "refused a raft message");
                        let msg = format!("bad raft message: {why}");
                        return error_response(&OpError::new(ErrorCode::InvalidArgument, msg));
                    }
                };
                self.send(Input::Raft(msgs));
                ok(RBody::Empty(pb::Empty {}))
            }
            Body::Status(_) => self.status(true).await,
            Body::Statfs(_) => {
                let mut resp = self.query(req).await;
                if let Some(RBody::FsStats(stats)) = resp.body.take() {
                    resp.body = Some(RBody::FsStats(with_live_usage(stats, &self.recent_usage())));
                }
                resp
            }
            // Cluster-wide scrub/GC tokens: admin only (authz.rs).
            Body::GrantAdminCap(g) => match self.caps.grant_admin(g, self.view.sm().epoch()) {
                Ok(caps) => ok(RBody::Caps(caps)),
                Err(e) => error_response(&e),
            },
            Body::MetaMembership(change) => {
                let change = change.clone();
                self.ask(|reply| Input::ConfChange { change, reply }).await
            }
            Body::Heartbeat(hb) => {
                // Answered by the leader (ReadIndex confirms it), which keeps
                // liveness; the reply carries the epoch and rebuild tasks.
                let hb = hb.clone();
                let resp = self.query(req).await;
                if resp.error.is_none() {
                    let mut live = self.liveness.lock().unwrap_or_else(|e| e.into_inner());
                    live.insert(hb.id, Liveness { seen: Instant::now(), report: hb });
                }
                resp
            }
            b if leader_only(b) => error_response(&OpError::new(
                ErrorCode::InvalidArgument,
                "this request is made by the metadata leader itself, not by clients",
            )),
            b if is_mutation(b) => {
                let queued = Instant::now();
                let before = self.change_start(&req);
                let named = before.inos();
                let mut resp = self.ask(|reply| Input::Propose { req, reply, queued }).await;
                self.after_change(before, &mut resp).await;
                // A change that failed changed nothing but saw the state
                // (no such name, one already there): like a read, it is
                // answered only once other changes' recalls of it are over.
                if resp.error.is_some() {
                    self.settle(&named).await;
                }
                self.shared.stats.record(Stage::Total, queued.elapsed());
                resp
            }
            Body::CacheWatch(w) => self.cache_watch(req.client_id, w).await,
            b => {
                let inos = cache_service::read_inos(b);
                let resp = if req.cache { self.cached_query(req).await } else { self.query(req).await };
                self.settle(&inos).await;
                resp
            }
        }
    }

    /// A query: answered here under the leader's read lease, else by the
    /// Ready loop (lease or ReadIndex).
    async fn query(&self, req: pb::MetaRequest) -> pb::MetaResponse {
        match self.view.read(&req) {
            Some(resp) => resp,
            None => self.ask(|reply| Input::Read { req, reply }).await,
        }
    }
}

/// The peer a Raft envelope names.
fn req_from(req: &pb::MetaRequest) -> u64 {
    match &req.body {
        Some(Body::Raft(b)) => b.from,
        _ => 0,
    }
}

/// Requests only the leader's own monitor proposes: refused from the network
/// (a client must not drop other clients' opens).
fn leader_only(body: &Body) -> bool {
    matches!(body, Body::ExpireClients(_))
}

fn rand_request_id(seq: &AtomicU64) -> u64 {
    let t =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0);
    t ^ seq.fetch_add(1, Ordering::Relaxed).rotate_left(48)
}

impl MetaService {
    /// A decoded request its sender may make.
    async fn handle_allowed(&self, mut req: pb::MetaRequest, payload: bytes::Bytes) -> pb::MetaResponse {
        match req.body.as_mut() {
            // Any request renews its client's lease on opens.
            Some(b) if req.client_id != 0 && !matches!(b, Body::Raft(_)) => {
                self.clients_seen.lock().unwrap_or_else(|e| e.into_inner()).insert(req.client_id, Instant::now());
                self.dispatch(req).await
            }
            // A snapshot message (or a part of one) rides in the payload.
            Some(Body::Raft(batch)) if !payload.is_empty() => match batch.snapshot_part.take() {
                None => {
                    batch.messages.push(payload.to_vec());
                    self.dispatch(req).await
                }
                Some(part) => match self.snapshots.add(batch.from, &part, &payload) {
                    Ok(Some(whole)) => {
                        tracing::info!(from = batch.from, bytes = whole.len(), "snapshot received in parts");
                        batch.messages.push(whole);
                        self.dispatch(req).await
                    }
                    Ok(None) => ok(RBody::Empty(pb::Empty {})),
                    Err(e) => error_response(&OpError::new(ErrorCode::InvalidArgument, e)),
                },
            },
            _ => self.dispatch(req).await,
        }
    }
}

impl Handler for MetaService {
    async fn handle(&self, peer: &Principal, request: Frame) -> Frame {
        let resp = match request.decode::<pb::MetaRequest>() {
            // Nothing is looked at, recorded or reassembled for a refused request.
            Ok(mut req) => match authorize(peer, &req).and_then(|()| {
                // Who the request acts as comes from the certificate only.
                // (A certificate without a uid mapping says which user it
                // acts for, and is checked as that user.)
                req.caller = if peer.is(Role::Client) {
                    Some(crate::perm::caller_of(&peer.user, req.caller.as_ref()))
                } else {
                    None
                };
                crate::identity::apply(&peer.user, &mut req)
            }) {
                Ok(()) => self.handle_allowed(req, request.payload).await,
                Err(e) => {
                    tracing::info!(%peer, error = %e.message, "request refused");
                    error_response(&e)
                }
            },
            Err(e) => error_response(&OpError::new(ErrorCode::InvalidArgument, format!("undecodable request: {e}"))),
        };
        Frame::from_message(&resp, bytes::Bytes::new())
    }
}

#[path = "cache_service.rs"]
mod cache_service;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_expiry_is_refused_from_clients() {
        assert!(leader_only(&Body::ExpireClients(pb::ExpireClients { clients: vec![1] })));
        assert!(!leader_only(&Body::Release(pb::Release { ino: 1 })));
        assert!(!leader_only(&Body::Getattr(pb::GetAttr { ino: 1 })));
    }
}
