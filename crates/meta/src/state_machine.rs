//! The replicated state machine: namespace + registry + request dedup.
//!
//! `apply` executes one committed mutation; `read` answers a query. Both are
//! deterministic functions of the state, the request and (for `apply`) the
//! leader-assigned time, with no I/O.

use std::collections::{BTreeMap, VecDeque};

use shardline_proto::v1 as pb;
use shardline_proto::v1::meta_request::Body;
use shardline_proto::v1::meta_response::Body as RBody;
use shardline_types::{ErrorCode, Layout};

use crate::namespace::{Namespace, NewInode, OpError};
use crate::registry::Registry;
use crate::wire::*;

/// How many recent responses are remembered per client for deduplication.
const DEDUP_PER_CLIENT: usize = 128;

pub struct StateMachine {
    pub ns: Namespace,
    pub registry: Registry,
    recent: BTreeMap<u64, VecDeque<(u64, pb::MetaResponse)>>,
}

/// Whether a request changes state (and so goes through the Raft log).
pub fn is_mutation(body: &Body) -> bool {
    matches!(
        body,
        Body::Create(_)
            | Body::Mkdir(_)
            | Body::Unlink(_)
            | Body::Rmdir(_)
            | Body::Rename(_)
            | Body::CommitChunk(_)
            | Body::Register(_)
    )
}

impl StateMachine {
    pub fn new(layout: Layout, pg_count: u32) -> Self {
        StateMachine {
            ns: Namespace::new(layout),
            registry: Registry::new(layout.width(), pg_count),
            recent: BTreeMap::new(),
        }
    }

    /// Apply one committed mutation. A retried request (same client and
    /// request id) gets the original response back.
    pub fn apply(&mut self, req: &pb::MetaRequest, now: i64) -> pb::MetaResponse {
        if let Some(resp) = self.recent.get(&req.client_id).and_then(|q| q.iter().find(|(id, _)| *id == req.request_id))
        {
            return resp.1.clone();
        }
        let resp = match self.apply_body(req.body.as_ref(), now) {
            Ok(r) => r,
            Err(e) => error_response(&e),
        };
        let q = self.recent.entry(req.client_id).or_default();
        q.push_back((req.request_id, resp.clone()));
        if q.len() > DEDUP_PER_CLIENT {
            q.pop_front();
        }
        resp
    }

    fn apply_body(&mut self, body: Option<&Body>, now: i64) -> Result<pb::MetaResponse, OpError> {
        let ns = &mut self.ns;
        Ok(match body {
            Some(Body::Create(c)) => {
                let attrs = NewInode { mode: c.mode, uid: c.uid, gid: c.gid, key: key_from_wire(c.key.as_ref()) };
                ok(RBody::Attr(attr_to_wire(&ns.create(c.parent, &c.name, attrs, c.exclusive, now)?)))
            }
            Some(Body::Mkdir(c)) => {
                let attrs = NewInode { mode: c.mode, uid: c.uid, gid: c.gid, key: None };
                ok(RBody::Attr(attr_to_wire(&ns.mkdir(c.parent, &c.name, attrs, now)?)))
            }
            Some(Body::Unlink(c)) => ok(RBody::Released(released_to_wire(&ns.unlink(c.parent, &c.name, now)?))),
            Some(Body::Rmdir(c)) => {
                ns.rmdir(c.parent, &c.name, now)?;
                ok(RBody::Empty(pb::Empty {}))
            }
            Some(Body::Rename(c)) => {
                ok(RBody::Released(released_to_wire(&ns.rename(c.parent, &c.name, c.new_parent, &c.new_name, now)?)))
            }
            Some(Body::CommitChunk(c)) => {
                let chunk =
                    c.chunk.as_ref().ok_or_else(|| OpError::new(ErrorCode::InvalidArgument, "missing chunk"))?;
                ok(RBody::Released(released_to_wire(&ns.commit_chunk(
                    c.ino,
                    chunk_from_wire(chunk),
                    c.new_size,
                    now,
                )?)))
            }
            Some(Body::Register(r)) => {
                let epoch = self.registry.register(r.id, &r.addr, r.capacity_bytes);
                ok(RBody::Registered(pb::Registered { epoch }))
            }
            _ => return Err(OpError::new(ErrorCode::InvalidArgument, "not a mutation")),
        })
    }

    /// Answer a query against the current state.
    pub fn read(&self, req: &pb::MetaRequest) -> pb::MetaResponse {
        match self.read_body(req.body.as_ref()) {
            Ok(r) => r,
            Err(e) => error_response(&e),
        }
    }

    fn read_body(&self, body: Option<&Body>) -> Result<pb::MetaResponse, OpError> {
        let ns = &self.ns;
        Ok(match body {
            Some(Body::Lookup(l)) => ok(RBody::Attr(attr_to_wire(ns.lookup(l.parent, &l.name)?))),
            Some(Body::Getattr(g)) => ok(RBody::Attr(attr_to_wire(ns.get(g.ino)?))),
            Some(Body::Readdir(r)) => {
                let (entries, more) =
                    ns.readdir(r.ino, &r.after, if r.limit == 0 { 1000 } else { r.limit as usize })?;
                ok(RBody::Entries(pb::DirEntries {
                    entries: entries
                        .into_iter()
                        .map(|(name, ino, kind)| pb::DirEntry { name, ino, kind: kind_to_wire(kind) as i32 })
                        .collect(),
                    more,
                }))
            }
            Some(Body::GetChunks(g)) => {
                let inode = ns.get(g.ino)?;
                ok(RBody::Chunks(pb::ChunkList {
                    attr: Some(attr_to_wire(inode)),
                    chunks: inode.chunks.values().map(chunk_to_wire).collect(),
                }))
            }
            Some(Body::GetPlacement(_)) => ok(RBody::Placement(self.placement_map())),
            _ => return Err(OpError::new(ErrorCode::InvalidArgument, "not a query")),
        })
    }

    pub fn placement_map(&self) -> pb::PlacementMap {
        let r = &self.registry;
        pb::PlacementMap {
            epoch: r.epoch(),
            width: r.width() as u32,
            groups: r
                .groups()
                .iter()
                .enumerate()
                .map(|(i, g)| pb::PlacementGroup { id: i as u32, targets: g.clone() })
                .collect(),
            servers: r
                .servers()
                .map(|s| pb::DataServerInfo {
                    id: s.id,
                    addr: s.addr.clone(),
                    state: String::new(),
                    used_bytes: 0,
                    capacity_bytes: s.capacity_bytes,
                    shard_count: 0,
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shardline_types::ROOT_INO;

    fn create(client: u64, id: u64, name: &str) -> pb::MetaRequest {
        pb::MetaRequest {
            client_id: client,
            request_id: id,
            body: Some(Body::Create(pb::Create {
                parent: ROOT_INO,
                name: name.into(),
                mode: 0o644,
                key: Some(pb::WrappedKey { kek_id: "k".into(), kek_version: 1, suite: 1, wrapped: vec![1, 2] }),
                exclusive: true,
                ..Default::default()
            })),
        }
    }

    #[test]
    fn retried_request_returns_original_outcome() {
        let mut sm = StateMachine::new(Layout::default(), 16);
        let first = sm.apply(&create(7, 1, "a"), 1);
        assert!(first.error.is_none());
        // Same request id again: the original success, not EEXIST.
        assert_eq!(sm.apply(&create(7, 1, "a"), 2), first);
        // A new request id is a new operation.
        assert!(sm.apply(&create(7, 2, "a"), 3).error.is_some());
    }
}
