//! The metadata service's request handler.
//!
//! Mutations go through the Raft log, queries through ReadIndex (so they are
//! linearizable), Raft traffic straight to the loop. Data-server heartbeats
//! stay in the leader's memory: liveness is soft state, not log entries.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use protobuf::Message as PbMessage;
use shardline_proto::v1 as pb;
use shardline_proto::v1::meta_request::Body;
use shardline_proto::v1::meta_response::Body as RBody;
use shardline_rpc::{Frame, Handler};
use shardline_types::ErrorCode;
use tokio::sync::oneshot;

use crate::namespace::OpError;
use crate::node::{unavailable, Input, NodeStatus, Shared};
use crate::state_machine::is_mutation;
use crate::wire::{error_response, ok};

struct Liveness {
    seen: Instant,
    used_bytes: u64,
    capacity_bytes: u64,
    shard_count: u64,
}

pub struct MetaService {
    loop_tx: Mutex<Sender<Input>>,
    shared: Arc<Shared>,
    liveness: Mutex<HashMap<u64, Liveness>>,
    started: Instant,
    down_after: Duration,
    data_shards: usize,
    self_addr: String,
}

impl MetaService {
    pub fn new(
        loop_tx: Sender<Input>,
        shared: Arc<Shared>,
        down_after: Duration,
        data_shards: usize,
        self_addr: String,
    ) -> Self {
        MetaService {
            loop_tx: Mutex::new(loop_tx),
            shared,
            liveness: Mutex::new(HashMap::new()),
            started: Instant::now(),
            down_after,
            data_shards,
            self_addr,
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

    async fn status(&self) -> pb::MetaResponse {
        let (tx, rx) = oneshot::channel::<NodeStatus>();
        if !self.send(Input::Status { reply: tx }) {
            return unavailable("metadata server is shutting down");
        }
        let Ok(st) = rx.await else {
            return unavailable("metadata server is shutting down");
        };
        let me = pb::MetaServerInfo {
            id: st.id,
            addr: self.self_addr.clone(),
            role: st.role.clone(),
            term: st.term,
            commit_index: st.commit,
            applied_index: st.applied,
        };
        let mut status = pb::ClusterStatus { meta: vec![me], epoch: st.placement.epoch, ..Default::default() };
        if st.role == "leader" {
            let live = self.liveness.lock().unwrap_or_else(|e| e.into_inner());
            let mut up = std::collections::HashSet::new();
            for s in &st.placement.servers {
                let (state, used, cap, shards) = match live.get(&s.id) {
                    Some(l) if l.seen.elapsed() < self.down_after => {
                        ("up", l.used_bytes, l.capacity_bytes, l.shard_count)
                    }
                    Some(l) => ("down", l.used_bytes, l.capacity_bytes, l.shard_count),
                    None if self.started.elapsed() < self.down_after => ("unknown", 0, s.capacity_bytes, 0),
                    None => ("down", 0, s.capacity_bytes, 0),
                };
                if state != "down" {
                    up.insert(s.id);
                }
                status.data.push(pb::DataServerInfo {
                    id: s.id,
                    addr: s.addr.clone(),
                    state: state.into(),
                    used_bytes: used,
                    capacity_bytes: cap,
                    shard_count: shards,
                });
            }
            for g in &st.placement.groups {
                let alive = g.targets.iter().filter(|t| up.contains(t)).count();
                status.pgs_total += 1;
                if alive == g.targets.len() {
                    status.pgs_healthy += 1;
                } else if alive >= self.data_shards {
                    status.pgs_degraded += 1;
                } else {
                    status.pgs_unavailable += 1;
                }
            }
        }
        ok(RBody::Status(status))
    }

    fn heartbeat(&self, hb: &pb::Heartbeat) -> pb::MetaResponse {
        let leader = self.shared.leader.load(Ordering::Relaxed);
        let mut live = self.liveness.lock().unwrap_or_else(|e| e.into_inner());
        live.insert(
            hb.id,
            Liveness {
                seen: Instant::now(),
                used_bytes: hb.used_bytes,
                capacity_bytes: hb.capacity_bytes,
                shard_count: hb.shard_count,
            },
        );
        let _ = leader;
        ok(RBody::Empty(pb::Empty {}))
    }

    async fn dispatch(&self, req: pb::MetaRequest) -> pb::MetaResponse {
        let Some(body) = req.body.as_ref() else {
            return error_response(&OpError::new(ErrorCode::InvalidArgument, "empty request"));
        };
        match body {
            Body::Raft(batch) => {
                let mut msgs = Vec::with_capacity(batch.messages.len());
                for m in &batch.messages {
                    match raft::prelude::Message::parse_from_bytes(m) {
                        Ok(m) => msgs.push(m),
                        Err(_) => return error_response(&OpError::new(ErrorCode::InvalidArgument, "bad raft message")),
                    }
                }
                self.send(Input::Raft(msgs));
                ok(RBody::Empty(pb::Empty {}))
            }
            Body::Status(_) => self.status().await,
            Body::Heartbeat(hb) => {
                // Liveness is tracked by the leader; others redirect.
                let resp = self
                    .ask(|reply| Input::Read {
                        req: pb::MetaRequest { body: Some(Body::GetPlacement(pb::GetPlacement {})), ..req.clone() },
                        reply,
                    })
                    .await;
                if resp.error.is_some() {
                    return resp;
                }
                self.heartbeat(hb)
            }
            b if is_mutation(b) => self.ask(|reply| Input::Propose { req, reply }).await,
            _ => self.ask(|reply| Input::Read { req, reply }).await,
        }
    }
}

impl Handler for MetaService {
    async fn handle(&self, request: Frame) -> Frame {
        let resp = match request.decode::<pb::MetaRequest>() {
            Ok(req) => self.dispatch(req).await,
            Err(e) => error_response(&OpError::new(ErrorCode::InvalidArgument, format!("undecodable request: {e}"))),
        };
        Frame::from_message(&resp, bytes::Bytes::new())
    }
}
