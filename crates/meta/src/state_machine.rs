//! The replicated state machine: namespace + registry + request dedup.
//!
//! `apply` executes one committed mutation; `read` answers a query. Both are
//! deterministic functions of the state, the request and (for `apply`) the
//! leader-assigned time, with no I/O.

use imbl::{OrdMap, Vector};

use shardline_proto::v1 as pb;
use shardline_proto::v1::meta_request::Body;
use shardline_proto::v1::meta_response::Body as RBody;
use shardline_types::{ErrorCode, Layout};

use crate::namespace::{Kind, Namespace, NewInode, OpError};
use crate::registry::Registry;
use crate::wire::*;

/// How many recent responses are remembered per client for deduplication.
const DEDUP_PER_CLIENT: usize = 128;
/// How many clients' responses are remembered. Past this, those that sent
/// their last mutation longest ago (by the leader's clock in the log, so
/// every replica forgets the same ones) are forgotten, down to 7/8 of it.
pub const DEDUP_CLIENTS: usize = 4096;

/// One client's recent responses, oldest first, and when (leader time, ns)
/// its last mutation was applied. Persistent, like the namespace's tables
/// (`namespace.rs`), so a snapshot's copy of thousands of clients' responses
/// is O(1).
#[derive(Clone, Default)]
pub(crate) struct ClientRecent {
    pub last_ns: i64,
    pub responses: Vector<(u64, pb::MetaResponse)>,
}

#[derive(Clone)]
pub struct StateMachine {
    pub ns: Namespace,
    pub registry: Registry,
    recent: OrdMap<u64, ClientRecent>,
    /// The rules of the entry being applied (not state: set per entry).
    rules: ApplyRules,
}

/// How an entry applies, fixed by the log format it was written in, so a
/// log replays exactly as it first applied whatever build replays it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApplyRules {
    /// Entry format 1: a chunk commit applies whatever its epoch, and a
    /// registering data server takes placement slots at once.
    V1,
    /// Entry format 2 (the current one): a chunk commit written for a
    /// group's targets older than their last change is refused as stale,
    /// and a data server joining a cluster that holds data waits for a
    /// rebalance.
    V2,
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
            | Body::SetServerState(_)
            | Body::RebuildDone(_)
            | Body::SetAttr(_)
            | Body::Link(_)
            | Body::Symlink(_)
            | Body::SetXattr(_)
            | Body::RemoveXattr(_)
            | Body::Open(_)
            | Body::Release(_)
            | Body::SetLayout(_)
            | Body::Mknod(_)
            | Body::ExpireClients(_)
            | Body::DrainDataServer(_)
            | Body::RemoveDataServer(_)
            | Body::ReleaseDone(_)
            | Body::SetRepair(_)
            | Body::SetScrub(_)
            | Body::RewrapKey(_)
    ) || matches!(body, Body::Rebalance(r) if !r.dry_run)
}

/// Most chunks one `GetChunks` reply carries (about 2 MB of headers; a
/// 4 MiB-chunk file of 200 GiB fits one page).
pub const MAX_CHUNK_PAGE: usize = 50_000;

/// Inodes statfs reports as the total: there is no fixed limit.
const FILES_TOTAL: u64 = 1 << 32;

impl StateMachine {
    pub fn new(layout: Layout, pg_count: u32) -> Self {
        StateMachine {
            ns: Namespace::new(layout),
            registry: Registry::new(layout.width(), pg_count),
            recent: OrdMap::new(),
            rules: ApplyRules::V2,
        }
    }

    /// Apply one committed mutation under the current rules. A retried
    /// request (same client and request id) gets the original response back.
    pub fn apply(&mut self, req: &pb::MetaRequest, now: i64) -> pb::MetaResponse {
        self.apply_with(req, now, ApplyRules::V2)
    }

    /// Apply one committed entry under the rules of the format it was
    /// written in.
    pub fn apply_with(&mut self, req: &pb::MetaRequest, now: i64, rules: ApplyRules) -> pb::MetaResponse {
        self.rules = rules;
        if let Some(resp) =
            self.recent.get(&req.client_id).and_then(|c| c.responses.iter().find(|(id, _)| *id == req.request_id))
        {
            return resp.1.clone();
        }
        let allowed = self.permitted(req);
        let touched = self.touched_by(req.body.as_ref());
        let resp = match allowed.and_then(|()| self.apply_body(req.body.as_ref(), req.client_id, now)) {
            Ok(mut r) => {
                r.dirs = self.changed_dirs(req.body.as_ref());
                r.touched = touched;
                r
            }
            Err(e) => error_response(&e),
        };
        let c = self.recent.entry(req.client_id).or_default();
        c.last_ns = now;
        c.responses.push_back((req.request_id, resp.clone()));
        if c.responses.len() > DEDUP_PER_CLIENT {
            c.responses.pop_front();
        }
        if self.recent.len() > DEDUP_CLIENTS {
            self.forget_oldest_clients();
        }
        resp
    }

    /// Whether the request's caller (set by the service from a client
    /// certificate, `perm.rs`) may make it against the state now.
    fn permitted(&self, req: &pb::MetaRequest) -> Result<(), OpError> {
        match (&req.caller, &req.body) {
            (Some(caller), Some(body)) => crate::perm::check(&self.ns, caller, body),
            _ => Ok(()),
        }
    }

    /// Bound the duplicate-request cache: forget the clients heard from
    /// longest ago (ties by id), down to 7/8 of [`DEDUP_CLIENTS`].
    /// Deterministic: every replica applies the same entries.
    fn forget_oldest_clients(&mut self) {
        let keep = DEDUP_CLIENTS * 7 / 8;
        let mut by_age: Vec<(i64, u64)> = self.recent.iter().map(|(id, c)| (c.last_ns, *id)).collect();
        by_age.sort_unstable();
        let drop = by_age.len().saturating_sub(keep);
        for (_, id) in by_age.into_iter().take(drop) {
            self.recent.remove(&id);
        }
    }

    /// Clients in the duplicate-request cache (tests).
    pub fn dedup_clients(&self) -> usize {
        self.recent.len()
    }

    /// After a successful namespace change, the directories whose entries
    /// it changed, as they are now.
    fn changed_dirs(&self, body: Option<&Body>) -> Vec<pb::Attr> {
        let dirs = match body {
            Some(Body::Create(c)) => vec![c.parent],
            Some(Body::Mkdir(c)) => vec![c.parent],
            Some(Body::Mknod(c)) => vec![c.parent],
            Some(Body::Symlink(c)) => vec![c.parent],
            Some(Body::Link(c)) => vec![c.new_parent],
            Some(Body::Unlink(c)) => vec![c.parent],
            Some(Body::Rmdir(c)) => vec![c.parent],
            Some(Body::Rename(c)) => {
                let mut dirs = vec![c.parent];
                dirs.extend(Some(c.new_parent).filter(|p| *p != c.parent));
                // A moved directory's ctime and ".." changed too.
                let moved = self.ns.lookup(c.new_parent, &c.new_name).ok().filter(|i| i.kind == Kind::Directory);
                dirs.extend(moved.map(|i| i.ino));
                dirs
            }
            _ => return Vec::new(),
        };
        dirs.into_iter().filter_map(|d| self.ns.get(d).ok()).map(attr_to_wire).collect()
    }

    /// Apply `body`, sent by `client`.
    fn apply_body(&mut self, body: Option<&Body>, client: u64, now: i64) -> Result<pb::MetaResponse, OpError> {
        let ns = &mut self.ns;
        Ok(match body {
            Some(Body::Create(c)) => {
                let attrs = NewInode {
                    mode: c.mode,
                    uid: c.uid,
                    gid: c.gid,
                    key: key_from_wire(c.key.as_ref()),
                    manifest: manifest_from_wire(c.manifest.as_ref()),
                };
                ok(RBody::Attr(attr_to_wire(&ns.create(c.parent, &c.name, attrs, c.exclusive, now)?)))
            }
            Some(Body::Mkdir(c)) => {
                let attrs = NewInode { mode: c.mode, uid: c.uid, gid: c.gid, key: None, manifest: None };
                ok(RBody::Attr(attr_to_wire(&ns.mkdir(c.parent, &c.name, attrs, now)?)))
            }
            Some(Body::Unlink(c)) => ok(RBody::Released(released_to_wire(&ns.unlink(c.parent, &c.name, now)?))),
            Some(Body::Rmdir(c)) => {
                ns.rmdir(c.parent, &c.name, now)?;
                ok(RBody::Empty(pb::Empty {}))
            }
            Some(Body::Rename(c)) => {
                let mut wire = released_to_wire(&ns.rename(c.parent, &c.name, c.new_parent, &c.new_name, now)?);
                // The moved inode as it is now, so the writer's cache learns
                // both names; not when both stay (two links to one inode).
                if ns.lookup(c.parent, &c.name).is_err() {
                    wire.attr = ns.lookup(c.new_parent, &c.new_name).ok().map(attr_to_wire);
                }
                ok(RBody::Released(wire))
            }
            Some(Body::CommitChunk(c)) => {
                let chunk =
                    c.chunk.as_ref().ok_or_else(|| OpError::new(ErrorCode::InvalidArgument, "missing chunk"))?;
                // Shards sent to a group's targets as of an epoch before
                // they last changed may miss the new target, whose rebuild
                // may have listed the group's chunks already: such a
                // commit would leave the chunk short of a shard that
                // nothing restores. Checked here, in log order with the
                // map changes. (Epoch 0: requests that predate epochs.)
                // Entries of format 1 predate the check and replay without it.
                let changed = self.registry.pg_epoch(chunk.pg).unwrap_or(0);
                if self.rules != ApplyRules::V1 && c.epoch != 0 && c.epoch < changed {
                    return Err(OpError::new(
                        ErrorCode::StaleEpoch,
                        format!(
                            "placement group {} changed targets at epoch {changed}, after the write's epoch {}",
                            chunk.pg, c.epoch
                        ),
                    ));
                }
                let released = ns.commit_chunk(
                    c.ino,
                    chunk_from_wire(chunk),
                    c.new_size,
                    manifest_from_wire(c.manifest.as_ref()),
                    now,
                )?;
                let mut wire = released_to_wire(&released);
                wire.attr = Some(pb::Attr { key: None, ..attr_to_wire(ns.get(c.ino)?) });
                ok(RBody::Released(wire))
            }
            Some(Body::Register(r)) => {
                // Before any data exists a joining server takes slots at once;
                // after, only a rebalance gives it some (entries of format 1
                // predate that and replay as they applied: slots at once).
                let remap = self.rules == ApplyRules::V1 || !ns.holds_chunks();
                let epoch = self
                    .registry
                    .register(r.id, &r.addr, r.capacity_bytes, &r.rack, remap)
                    .map_err(|e| OpError::new(ErrorCode::PermissionDenied, e))?;
                ok(RBody::Registered(pb::Registered { epoch }))
            }
            Some(
                b @ (Body::DrainDataServer(_)
                | Body::RemoveDataServer(_)
                | Body::Rebalance(_)
                | Body::ReleaseDone(_)
                | Body::SetRepair(_)
                | Body::SetScrub(_)),
            ) => self.apply_move(b)?,
            Some(Body::RewrapKey(r)) => self.apply_rewrap(r)?,
            Some(Body::SetServerState(s)) => {
                self.registry.set_state(&s.down, &s.up);
                ok(RBody::Empty(pb::Empty {}))
            }
            Some(Body::RebuildDone(d)) => {
                self.registry.rebuild_done(d.server, d.pg, d.shard_index);
                ok(RBody::Empty(pb::Empty {}))
            }
            Some(Body::SetAttr(c)) => {
                let (attr, released) = ns.set_attr(c.ino, &set_attrs_from_wire(c, now), now)?;
                ok(RBody::AttrReleased(pb::AttrReleased {
                    attr: Some(attr_to_wire(&attr)),
                    released: Some(released_to_wire(&released)),
                }))
            }
            Some(Body::Link(c)) => ok(RBody::Attr(attr_to_wire(&ns.link(c.ino, c.new_parent, &c.new_name, now)?))),
            Some(Body::Symlink(c)) => {
                let attrs = NewInode { mode: c.mode, uid: c.uid, gid: c.gid, key: None, manifest: None };
                ok(RBody::Attr(attr_to_wire(&ns.symlink(c.parent, &c.name, &c.target, attrs, now)?)))
            }
            Some(Body::Mknod(c)) => {
                let attrs = NewInode { mode: c.mode, uid: c.uid, gid: c.gid, key: None, manifest: None };
                let kind = kind_from_wire(c.kind)?;
                ok(RBody::Attr(attr_to_wire(&ns.mknod(c.parent, &c.name, kind, attrs, c.rdev, now)?)))
            }
            Some(Body::SetXattr(c)) => {
                ns.set_xattr(c.ino, &c.name, &c.value, xattr_mode_from_wire(c.mode)?, now)?;
                ok(RBody::Empty(pb::Empty {}))
            }
            Some(Body::RemoveXattr(c)) => {
                ns.remove_xattr(c.ino, &c.name, now)?;
                ok(RBody::Empty(pb::Empty {}))
            }
            Some(Body::Open(c)) => ok(RBody::Attr(attr_to_wire(&ns.open(c.ino, client)?))),
            Some(Body::Release(c)) => ok(RBody::Released(released_to_wire(&ns.release(c.ino, client)?))),
            Some(Body::ExpireClients(e)) => {
                let freed: usize = e.clients.iter().map(|&c| ns.expire_client(c).len()).sum();
                // Their chunks are left to the data servers' garbage collection.
                tracing::info!(clients = e.clients.len(), files_freed = freed, "client leases expired");
                ok(RBody::Empty(pb::Empty {}))
            }
            Some(Body::SetLayout(c)) => {
                let layout =
                    c.layout.as_ref().ok_or_else(|| OpError::new(ErrorCode::InvalidArgument, "missing layout"))?;
                let width = self.registry.width();
                ok(RBody::Attr(attr_to_wire(&ns.set_layout(c.ino, layout_from_wire(layout), width, now)?)))
            }
            _ => return Err(OpError::new(ErrorCode::InvalidArgument, "not a mutation")),
        })
    }

    /// Answer a query against the current state.
    pub fn read(&self, req: &pb::MetaRequest) -> pb::MetaResponse {
        match self.permitted(req).and_then(|()| self.read_body(req.body.as_ref())) {
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
                let attr = |ino| if r.with_attrs { ns.get(ino).ok().map(attr_to_wire) } else { None };
                ok(RBody::Entries(pb::DirEntries {
                    entries: entries
                        .into_iter()
                        .map(|(name, ino, kind)| pb::DirEntry {
                            name,
                            ino,
                            kind: kind_to_wire(kind) as i32,
                            attr: attr(ino),
                        })
                        .collect(),
                    more,
                }))
            }
            Some(Body::GetChunks(g)) => {
                let inode = ns.get(g.ino)?;
                let limit = if g.limit == 0 { MAX_CHUNK_PAGE } else { (g.limit as usize).min(MAX_CHUNK_PAGE) };
                let mut page = inode.chunks.range(g.from_index..);
                let chunks: Vec<pb::Chunk> = page.by_ref().take(limit).map(|(_, c)| chunk_to_wire(c)).collect();
                let more = page.next().is_some();
                if more && g.limit == 0 {
                    return Err(OpError::new(
                        ErrorCode::InvalidArgument,
                        format!("file has more than {MAX_CHUNK_PAGE} chunks: the client must page its chunk list"),
                    ));
                }
                ok(RBody::Chunks(pb::ChunkList { attr: Some(attr_to_wire(inode)), chunks, more }))
            }
            Some(Body::GetPlacement(_)) => ok(RBody::Placement(self.placement_map())),
            Some(Body::ListPgChunks(l)) => {
                let limit = if l.limit == 0 { 1000 } else { l.limit.min(10_000) as usize };
                let (chunks, more) = ns.chunks_in_pg(l.pg, (l.after_file, l.after_chunk), limit);
                ok(RBody::PgChunks(pb::PgChunks {
                    chunks: chunks
                        .into_iter()
                        .map(|(inode, c)| pb::PgChunk {
                            file_id: inode.ino,
                            chunk_index: c.index,
                            version: c.version,
                            sealed_len: c.sealed_len,
                            data_shards: c.k(&inode.layout),
                            parity_shards: inode.layout.parity_shards,
                        })
                        .collect(),
                    more,
                }))
            }
            Some(Body::Readlink(r)) => ok(RBody::LinkTarget(pb::LinkTarget { target: ns.readlink(r.ino)?.to_vec() })),
            Some(Body::GetXattr(g)) => {
                ok(RBody::XattrValue(pb::XattrValue { value: ns.get_xattr(g.ino, &g.name)?.to_vec() }))
            }
            Some(Body::ListXattr(l)) => ok(RBody::XattrNames(pb::XattrNames { names: ns.list_xattr(l.ino)? })),
            Some(Body::Statfs(_)) => ok(RBody::FsStats(self.fs_stats())),
            Some(Body::CheckLive(c)) => ok(RBody::Liveness(pb::Liveness {
                live: c.chunks.iter().map(|v| ns.is_live(v.file_id, v.chunk_index, v.version)).collect(),
            })),
            Some(Body::GrantCaps(g)) => {
                self.check_grant(g)?;
                // The service fills in the tokens (crates/meta/src/caps.rs).
                ok(RBody::Caps(pb::Caps::default()))
            }
            Some(Body::Heartbeat(h)) => ok(RBody::Heartbeat(pb::HeartbeatReply {
                epoch: self.registry.epoch(),
                rebuild: self
                    .registry
                    .tasks_for(h.id)
                    .into_iter()
                    .map(|(pg, shard_index)| pb::RebuildTask { pg, shard_index })
                    .collect(),
                release: self
                    .registry
                    .releases_for(h.id)
                    .into_iter()
                    .map(|(pg, shard_index)| pb::RebuildTask { pg, shard_index })
                    .collect(),
                rebuild_rate: self.registry.rebuild_rate_share(),
                scrub_paused: self.registry.scrub_paused(),
            })),
            Some(Body::Rebalance(r)) if r.dry_run => self.plan_rebalance(),
            Some(Body::ListFileKeys(l)) => self.list_file_keys(l),
            Some(Body::CountFileKeys(_)) => self.count_file_keys(),
            _ => return Err(OpError::new(ErrorCode::InvalidArgument, "not a query")),
        })
    }

    /// Whether capabilities may be granted as `g` asks: a known operation,
    /// a bounded list, a regular file, and for put no live version (a
    /// committed chunk is never overwritten in place).
    fn check_grant(&self, g: &pb::GrantCaps) -> Result<(), OpError> {
        if crate::caps::granted_ops(g.ops).is_none() {
            return Err(OpError::new(ErrorCode::InvalidArgument, "capabilities are granted for get (1) or put (2)"));
        }
        if g.chunks.is_empty() || g.chunks.len() > crate::caps::MAX_GRANT_CHUNKS {
            return Err(OpError::new(
                ErrorCode::InvalidArgument,
                format!("a grant names 1 to {} chunk versions", crate::caps::MAX_GRANT_CHUNKS),
            ));
        }
        let inode = self.ns.get(g.ino)?;
        if inode.kind != Kind::Regular {
            return Err(OpError::new(ErrorCode::InvalidArgument, format!("inode {} is not a regular file", g.ino)));
        }
        if g.ops == shardline_crypto::cap_ops::PUT {
            if let Some(c) = g.chunks.iter().find(|c| self.ns.is_live(g.ino, c.index, c.version)) {
                return Err(OpError::new(
                    ErrorCode::PermissionDenied,
                    format!(
                        "chunk {} version {:x} is live: committed chunks are never overwritten",
                        c.index, c.version
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The placement map's epoch.
    pub fn epoch(&self) -> u64 {
        self.registry.epoch()
    }

    /// File-system usage for statfs: the registered capacity of every data
    /// server that is not down, as usable bytes under the root's k/(k+m).
    /// Free is reported equal to total here: live usage arrives in
    /// heartbeats, the leader's soft state, and the service replaces both
    /// with the servers' reports (`fs_usage.rs`) before answering.
    pub fn fs_stats(&self) -> pb::FsStats {
        let raw: u64 =
            self.registry.servers().filter(|s| !s.down).map(|s| s.capacity_bytes).fold(0, u64::saturating_add);
        let root = self.ns.get(shardline_types::ROOT_INO).map(|i| i.layout).unwrap_or_default();
        let usable = (u128::from(raw) * u128::from(root.data_shards) / (root.width().max(1) as u128)) as u64;
        let files = self.ns.inode_count() as u64;
        pb::FsStats {
            total_bytes: usable,
            free_bytes: usable,
            raw_capacity_bytes: raw,
            files,
            files_free: FILES_TOTAL.saturating_sub(files),
            name_max: crate::namespace::MAX_NAME_LEN as u32,
            block_size: 4096,
        }
    }

    /// The clients holding any open (their leases matter).
    pub fn open_holders(&self) -> Vec<u64> {
        self.ns.open_holders().into_iter().collect()
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
                .map(|(i, g)| pb::PlacementGroup {
                    id: i as u32,
                    targets: g.clone(),
                    rebuilding: r.rebuilding().keys().filter(|(pg, _)| *pg == i as u32).map(|(_, s)| *s).collect(),
                    previous: r
                        .handoffs()
                        .filter(|(pg, _, _)| *pg == i as u32)
                        .map(|&(_, shard_index, server)| pb::SlotHolder { shard_index, server })
                        .collect(),
                })
                .collect(),
            servers: r
                .servers()
                .map(|s| pb::DataServerInfo {
                    id: s.id,
                    addr: s.addr.clone(),
                    state: match (s.down, s.draining) {
                        (true, _) => "down".into(),
                        (false, true) => "draining".into(),
                        (false, false) => "up".into(),
                    },
                    capacity_bytes: s.capacity_bytes,
                    rack: s.rack.clone(),
                    ..Default::default()
                })
                .collect(),
        }
    }
}

#[path = "state_machine_snapshot.rs"]
mod snapshot;

#[path = "state_machine_moves.rs"]
mod moves;

#[path = "state_machine_keys.rs"]
mod keys;

#[path = "state_machine_touched.rs"]
mod touched;

#[cfg(test)]
#[path = "state_machine_manifest_tests.rs"]
mod manifest_tests;
#[cfg(test)]
#[path = "state_machine_posix_tests.rs"]
mod posix_tests;

#[cfg(test)]
mod tests {
    use super::*;
    use shardline_types::ROOT_INO;

    fn create(client: u64, id: u64, name: &str) -> pb::MetaRequest {
        pb::MetaRequest {
            client_id: client,
            request_id: id,
            caller: None,
            cache: false,
            body: Some(Body::Create(pb::Create {
                parent: ROOT_INO,
                name: name.into(),
                mode: 0o644,
                key: Some(pb::WrappedKey {
                    kek_id: "k".into(),
                    kek_version: 1,
                    suite: 1,
                    wrapped: vec![1, 2],
                    format: 0,
                }),
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
