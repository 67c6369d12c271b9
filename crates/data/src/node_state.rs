//! What a running data server knows beyond its disk: the newest placement
//! epoch, a cached placement map, its peers, and rebuild progress.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use shardline_proto::v1 as pb;
use shardline_rpc::{MetaClient, Pool, Role, Tls};
use shardline_types::NodeId;

use crate::caps::CapPolicy;
use crate::throttle::TokenBucket;
use crate::DataError;

/// The scrub running now, reported in heartbeats (`total` 0: none).
#[derive(Default)]
pub struct ScrubProgress {
    pub checked: AtomicU64,
    pub total: AtomicU64,
}

/// Cumulative rebuild progress, reported in heartbeats.
#[derive(Default)]
pub struct RebuildProgress {
    pub chunks_done: AtomicU64,
    pub chunks_total: AtomicU64,
    pub bytes: AtomicU64,
}

pub struct NodeState {
    pub id: NodeId,
    pub meta: MetaClient,
    /// Connections to peer data servers (rebuild and scrub read from them).
    pub peers: Pool,
    /// The rebuild throttle: one budget for this server, shared by all its
    /// rebuild tasks.
    pub rebuild_throttle: TokenBucket,
    /// The budget this server was started with (`--rebuild-rate`), used
    /// whenever the cluster sets no move budget of its own.
    pub own_rebuild_rate: u64,
    /// Scrubbing is stopped cluster-wide (`admin scrub stop`), as the last
    /// heartbeat reply said.
    pub scrub_paused: std::sync::atomic::AtomicBool,
    /// A release of handed-over slots is running (`release.rs`).
    pub releasing: std::sync::atomic::AtomicBool,
    pub progress: RebuildProgress,
    pub scrub_progress: ScrubProgress,
    /// Rebuild tasks (pg, shard index) being worked on now.
    pub running: Mutex<HashSet<(u32, u32)>>,
    /// Capability checks on shard requests, and tokens for peer reads.
    pub caps: CapPolicy,
    /// The smallest garbage-collection grace a request may ask for.
    pub gc_min_grace: Duration,
    epoch: AtomicU64,
    placement: RwLock<Option<Arc<pb::PlacementMap>>>,
}

impl NodeState {
    /// `rebuild_rate`: the server's rebuild budget in bytes per second.
    /// `tls`: the server's identity, for dialing its peers.
    pub fn new(
        id: NodeId,
        meta: MetaClient,
        rebuild_rate: u64,
        tls: Arc<Tls>,
        caps: CapPolicy,
        gc_min_grace: Duration,
    ) -> Self {
        NodeState {
            caps,
            gc_min_grace,
            id,
            meta,
            peers: Pool::new(tls.clone(), Role::Data, Duration::from_secs(2), Duration::from_secs(30))
                .integrity_only(tls.accepts_integrity_only()),
            rebuild_throttle: TokenBucket::new(rebuild_rate),
            own_rebuild_rate: rebuild_rate,
            releasing: std::sync::atomic::AtomicBool::new(false),
            scrub_paused: std::sync::atomic::AtomicBool::new(false),
            progress: RebuildProgress::default(),
            scrub_progress: ScrubProgress::default(),
            running: Mutex::new(HashSet::new()),
            epoch: AtomicU64::new(0),
            placement: RwLock::new(None),
        }
    }

    /// The newest placement epoch this server has seen.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Relaxed)
    }

    /// Record an epoch learned from the metadata service.
    pub fn observe_epoch(&self, epoch: u64) {
        self.epoch.fetch_max(epoch, Ordering::Relaxed);
    }

    /// Refuse requests made with a map older than the newest seen (with
    /// capabilities, the epoch the token was issued under). Epoch 0 is older
    /// than any map: there is no way around the check.
    pub fn check_epoch(&self, request: u64) -> Result<(), DataError> {
        let current = self.epoch();
        if request < current {
            return Err(DataError::StaleEpoch { request, current });
        }
        Ok(())
    }

    /// The placement map, refreshed when older than the newest epoch seen.
    pub async fn placement(&self) -> Result<Arc<pb::PlacementMap>, DataError> {
        if let Some(map) = self.placement.read().unwrap_or_else(|e| e.into_inner()).clone() {
            if map.epoch >= self.epoch() {
                return Ok(map);
            }
        }
        let resp = self
            .meta
            .call(pb::meta_request::Body::GetPlacement(pb::GetPlacement {}))
            .await
            .map_err(|e| DataError::Unavailable(format!("fetch the placement map: {e}")))?;
        let Some(pb::meta_response::Body::Placement(map)) = resp.body else {
            return Err(DataError::Unavailable("metadata service sent no placement map".into()));
        };
        self.observe_epoch(map.epoch);
        let map = Arc::new(map);
        *self.placement.write().unwrap_or_else(|e| e.into_inner()) = Some(map.clone());
        Ok(map)
    }

    /// Per shard index of group `pg`, the addresses of old holders that
    /// still keep copies (slots handed over by a drain or rebalance).
    pub fn previous_holders(map: &pb::PlacementMap, pg: u32) -> Vec<Vec<String>> {
        let width = map.width as usize;
        let mut out = vec![Vec::new(); width];
        let Some(group) = map.groups.iter().find(|g| g.id == pg) else { return out };
        for h in &group.previous {
            if let (Some(slot), Some(s)) =
                (out.get_mut(h.shard_index as usize), map.servers.iter().find(|s| s.id == h.server))
            {
                slot.push(s.addr.clone());
            }
        }
        out
    }

    /// Addresses of a group's targets in shard order.
    pub fn targets(map: &pb::PlacementMap, pg: u32) -> Result<Vec<String>, DataError> {
        let group = map
            .groups
            .iter()
            .find(|g| g.id == pg)
            .ok_or_else(|| DataError::Unavailable(format!("no placement group {pg}")))?;
        group
            .targets
            .iter()
            .map(|id| {
                map.servers
                    .iter()
                    .find(|s| s.id == *id)
                    .map(|s| s.addr.clone())
                    .ok_or_else(|| DataError::Unavailable(format!("data server {id} has no address")))
            })
            .collect()
    }
}
