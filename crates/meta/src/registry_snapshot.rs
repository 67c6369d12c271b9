//! Registry ⇄ snapshot v1 conversion (a child of `registry` so it sees the
//! private fields).

use super::{Registry, ServerRecord};
use crate::snapshot::{corrupt, v1};
use crate::MetaError;

impl Registry {
    pub(crate) fn to_snapshot(&self) -> v1::Registry {
        v1::Registry {
            servers: self
                .servers
                .values()
                .map(|s| v1::Server {
                    id: s.id,
                    addr: s.addr.clone(),
                    capacity_bytes: s.capacity_bytes,
                    rack: s.rack.clone(),
                    down: s.down,
                    draining: s.draining,
                    pending: s.pending,
                })
                .collect(),
            epoch: self.epoch,
            width: self.width as u64,
            pg_count: self.pg_count,
            groups: self.groups.iter().map(|g| v1::Group { targets: g.clone() }).collect(),
            rebuilding: self
                .rebuilding
                .iter()
                .map(|(&(pg, shard_index), &server)| v1::Rebuild { pg, shard_index, server })
                .collect(),
            pg_epochs: self.pg_epochs.clone(),
            handoffs: self
                .handoffs
                .iter()
                .map(|&(pg, shard_index, server)| v1::Rebuild { pg, shard_index, server })
                .collect(),
            removed: self.removed.iter().copied().collect(),
            move_rate: self.move_rate,
            repair_paused: self.repair_paused,
            scrub_paused: self.scrub_paused,
        }
    }

    pub(crate) fn from_snapshot(s: v1::Registry) -> Result<Registry, MetaError> {
        let width = usize::try_from(s.width).map_err(|_| corrupt("registry width out of range"))?;
        if s.groups.iter().any(|g| g.targets.len() > width) {
            return Err(corrupt("placement group wider than the layout"));
        }
        Ok(Registry {
            servers: s
                .servers
                .into_iter()
                .map(|v| {
                    let rec = ServerRecord {
                        id: v.id,
                        addr: v.addr,
                        capacity_bytes: v.capacity_bytes,
                        rack: v.rack,
                        down: v.down,
                        draining: v.draining,
                        pending: v.pending,
                    };
                    (rec.id, rec)
                })
                .collect(),
            epoch: s.epoch,
            width,
            pg_count: s.pg_count,
            groups: s.groups.into_iter().map(|g| g.targets).collect(),
            rebuilding: s.rebuilding.into_iter().map(|r| ((r.pg, r.shard_index), r.server)).collect(),
            pg_epochs: s.pg_epochs,
            handoffs: s.handoffs.into_iter().map(|h| (h.pg, h.shard_index, h.server)).collect(),
            removed: s.removed.into_iter().collect(),
            move_rate: s.move_rate,
            repair_paused: s.repair_paused,
            scrub_paused: s.scrub_paused,
        })
    }
}
