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
        // A map, once made, has one group per placement group, and one
        // epoch per group at most (a snapshot from before per-group epochs
        // has none: the missing ones read as 0, "no change recorded", which
        // is what `pg_epoch` answered for them before).
        if !s.groups.is_empty() && s.groups.len() as u64 != u64::from(s.pg_count) {
            return Err(corrupt("placement map with another number of groups than its count"));
        }
        if s.pg_epochs.len() > s.groups.len() {
            return Err(corrupt("more placement-group epochs than groups"));
        }
        let mut pg_epochs = s.pg_epochs;
        pg_epochs.resize(s.groups.len(), 0);
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
            pg_epochs,
            handoffs: s.handoffs.into_iter().map(|h| (h.pg, h.shard_index, h.server)).collect(),
            removed: s.removed.into_iter().collect(),
            move_rate: s.move_rate,
            repair_paused: s.repair_paused,
            scrub_paused: s.scrub_paused,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mapped() -> v1::Registry {
        let mut r = Registry::new(3, 4);
        for id in 1..=4 {
            r.register(id, &format!("h:{id}"), 1 << 30, "", true).expect("register");
        }
        r.to_snapshot()
    }

    /// Found by `fuzz_snapshot_data`: a snapshot whose placement map had
    /// fewer per-group epochs than groups restored, and the next remap
    /// (a data server going down) indexed past them: a panic.
    #[test]
    fn fuzz_snapshot_with_fewer_group_epochs_than_groups_restores_and_remaps() {
        let mut s = mapped();
        assert_eq!(s.groups.len(), 4);
        s.pg_epochs.truncate(1);
        let mut r = Registry::from_snapshot(s.clone()).expect("an older map without every epoch reads");
        assert_eq!(r.pg_epoch(3), Some(0), "a missing epoch reads as no change recorded");
        r.set_state(&[1], &[]);
        assert!(r.epoch() > s.epoch, "the remap ran");
        s.pg_epochs = vec![1; 9];
        assert!(Registry::from_snapshot(s).is_err(), "more epochs than groups");
    }

    #[test]
    fn a_snapshot_with_another_number_of_groups_than_its_count_is_corrupt() {
        let mut s = mapped();
        s.groups.pop();
        assert!(Registry::from_snapshot(s).is_err());
    }
}
