//! The data-server registry and the placement-group map, as plain values.
//!
//! Registration and up/down changes are replicated through Raft. Every change
//! of the server set recomputes the map with stable slots
//! (`shardline_types::placement::rebalance`); every slot that changes hands
//! becomes a rebuild task for its new target, and the epoch goes up.
//!
//! Draining, removing and rebalancing (the operator's moves, with the
//! hand-offs that let an old holder release its copies) are in
//! `registry_moves.rs`.

use std::collections::{BTreeMap, BTreeSet};

use shardline_types::{rebalance, Candidate, NodeId};

#[path = "registry_snapshot.rs"]
mod snapshot;

#[cfg(test)]
#[path = "registry_sim_tests.rs"]
mod sim_tests;

#[path = "registry_moves.rs"]
mod moves;
pub use moves::{MovePlan, RemoveRefusal};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerRecord {
    pub id: NodeId,
    pub addr: String,
    pub capacity_bytes: u64,
    pub rack: String,
    pub down: bool,
    /// Being drained: given no slots, its slots handed to others.
    pub draining: bool,
    /// Joined a cluster holding data and not yet placed: placement leaves it
    /// out until a rebalance (so no map change but the operator's moves
    /// data onto it).
    pub pending: bool,
}

#[derive(Debug, Clone)]
pub struct Registry {
    servers: BTreeMap<NodeId, ServerRecord>,
    epoch: u64,
    width: usize,
    pg_count: u32,
    groups: Vec<Vec<NodeId>>,
    /// (pg, shard index) → the server that must rebuild that shard.
    rebuilding: BTreeMap<(u32, u32), NodeId>,
    /// The epoch at which each group's targets last changed: a chunk placed
    /// with an older map may have missed the new target and is refused.
    pg_epochs: Vec<u64>,
    /// (pg, shard index, old holder): slots handed from a live server to
    /// another; the old holder keeps its copies until the new target has
    /// rebuilt the slot, then releases them (`ReleaseDone`).
    handoffs: BTreeSet<(u32, u32, NodeId)>,
    /// Ids removed by the operator: they may not register again.
    removed: BTreeSet<NodeId>,
    /// Cluster-wide budget for moving shards, bytes/s (0: the servers' own).
    move_rate: u64,
    /// No rebuild tasks are handed out (`admin repair stop`).
    repair_paused: bool,
    /// Data servers do not scrub (`admin scrub stop`).
    scrub_paused: bool,
}

impl Registry {
    /// `width`: shards per chunk (k+m) of the cluster's layout.
    pub fn new(width: usize, pg_count: u32) -> Self {
        Registry {
            servers: BTreeMap::new(),
            epoch: 0,
            width,
            pg_count,
            groups: Vec::new(),
            rebuilding: BTreeMap::new(),
            pg_epochs: Vec::new(),
            handoffs: BTreeSet::new(),
            removed: BTreeSet::new(),
            move_rate: 0,
            repair_paused: false,
            scrub_paused: false,
        }
    }

    pub fn epoch(&self) -> u64 {
        self.epoch
    }
    pub fn width(&self) -> usize {
        self.width
    }
    pub fn groups(&self) -> &[Vec<NodeId>] {
        &self.groups
    }
    pub fn servers(&self) -> impl Iterator<Item = &ServerRecord> {
        self.servers.values()
    }
    pub fn contains(&self, id: NodeId) -> bool {
        self.servers.contains_key(&id)
    }
    pub fn pg_count(&self) -> u32 {
        if self.groups.is_empty() {
            0
        } else {
            self.pg_count
        }
    }
    /// The epoch at which `pg`'s targets last changed (None: no such group).
    pub fn pg_epoch(&self, pg: u32) -> Option<u64> {
        self.pg_epochs.get(pg as usize).copied()
    }

    pub fn rebuilding(&self) -> &BTreeMap<(u32, u32), NodeId> {
        &self.rebuilding
    }

    /// Rebuild tasks assigned to `server` (none while repair is paused).
    pub fn tasks_for(&self, server: NodeId) -> Vec<(u32, u32)> {
        if self.repair_paused {
            return Vec::new();
        }
        self.rebuilding.iter().filter(|(_, &s)| s == server).map(|(k, _)| *k).collect()
    }

    /// Add or update a server; returns the (possibly new) epoch. With
    /// `remap` false (the cluster holds data), a new server joins without
    /// taking slots: `admin rebalance` moves them, at the operator's pace.
    pub fn register(
        &mut self,
        id: NodeId,
        addr: &str,
        capacity_bytes: u64,
        rack: &str,
        remap: bool,
    ) -> Result<u64, String> {
        if self.removed.contains(&id) {
            return Err(format!("data server {id} was removed from the cluster; start it with a new id"));
        }
        let old = self.servers.get(&id);
        let draining = old.is_some_and(|s| s.draining);
        let pending = match old {
            Some(s) => s.pending,
            None => !remap && !self.groups.is_empty(),
        };
        let record = ServerRecord {
            id,
            addr: addr.to_string(),
            capacity_bytes,
            rack: rack.to_string(),
            down: false,
            draining,
            pending,
        };
        match self.servers.insert(id, record.clone()) {
            Some(old) if old.addr == record.addr && old.rack == record.rack && !old.down => {}
            Some(old) if old.addr == record.addr && old.rack == record.rack => self.remap(),
            // A new server, with data in the cluster: known (and its address
            // in the map) but given slots only by a rebalance.
            None if pending => self.epoch += 1,
            _ => self.remap(),
        }
        Ok(self.epoch)
    }

    /// Mark servers down or up again, and remap.
    pub fn set_state(&mut self, down: &[NodeId], up: &[NodeId]) -> u64 {
        let mut changed = false;
        for id in down {
            if let Some(s) = self.servers.get_mut(id) {
                changed |= !s.down;
                s.down = true;
            }
        }
        for id in up {
            if let Some(s) = self.servers.get_mut(id) {
                changed |= s.down;
                s.down = false;
            }
        }
        if changed {
            self.remap();
        }
        self.epoch
    }

    /// A target finished rebuilding its shard of a group.
    pub fn rebuild_done(&mut self, server: NodeId, pg: u32, shard: u32) -> bool {
        if self.rebuilding.get(&(pg, shard)) == Some(&server) {
            // Targets do not change, so the epoch does not either: clients'
            // maps stay valid and no request is refused as stale.
            self.rebuilding.remove(&(pg, shard));
            return true;
        }
        false
    }

    /// The servers placement may use: up, not draining, not waiting for a
    /// rebalance.
    fn candidates(&self) -> Vec<Candidate> {
        self.servers
            .values()
            .filter(|s| !s.down && !s.draining && !s.pending)
            .map(|s| Candidate { id: s.id, rack: s.rack.clone() })
            .collect()
    }

    /// With too few placed servers for full groups, slots still held by a
    /// down or draining server go to servers waiting for a rebalance (the
    /// best-scoring one not already in the group): better placed early than
    /// degraded. Nothing else moves.
    fn stand_in(&self, groups: &mut [Vec<NodeId>], placed: &[Candidate]) {
        let spares: Vec<NodeId> =
            self.servers.values().filter(|s| !s.down && !s.draining && s.pending).map(|s| s.id).collect();
        if placed.len() >= self.width || spares.is_empty() {
            return;
        }
        for (pg, g) in groups.iter_mut().enumerate() {
            for i in 0..g.len() {
                if placed.iter().any(|c| c.id == g[i]) {
                    continue;
                }
                let best = spares
                    .iter()
                    .filter(|s| !g.contains(s))
                    .max_by_key(|&&s| (shardline_types::placement::mix64(pg as u64 ^ s.rotate_left(17)), s));
                if let Some(&s) = best {
                    g[i] = s;
                }
            }
        }
    }

    fn remap(&mut self) {
        self.epoch += 1;
        let up = self.candidates();
        if self.groups.is_empty() && up.len() < self.width {
            return;
        }
        let first = self.groups.is_empty();
        let mut new = rebalance(&self.groups, &up, self.width, self.pg_count);
        self.stand_in(&mut new, &up);
        if first {
            self.pg_epochs = vec![self.epoch; new.len()];
        } else {
            for (pg, (old, new)) in self.groups.iter().zip(&new).enumerate() {
                for (slot, (a, b)) in old.iter().zip(new).enumerate() {
                    if a != b {
                        self.rebuilding.insert((pg as u32, slot as u32), *b);
                        self.pg_epochs[pg] = self.epoch;
                        // A live old holder keeps its copies until the new
                        // target has the slot; one given the slot back has
                        // nothing to release.
                        self.handoffs.remove(&(pg as u32, slot as u32, *b));
                        if self.servers.get(a).is_some_and(|s| !s.down) {
                            self.handoffs.insert((pg as u32, slot as u32, *a));
                        }
                    }
                }
            }
        }
        self.groups = new;
    }

    /// Down servers and group members by id, for health counts.
    pub fn down_set(&self) -> BTreeSet<NodeId> {
        self.servers.values().filter(|s| s.down).map(|s| s.id).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_appears_once_enough_servers_register() {
        let mut r = Registry::new(3, 8);
        r.register(1, "a", 0, "", true).unwrap();
        r.register(2, "b", 0, "", true).unwrap();
        assert_eq!(r.pg_count(), 0);
        let e = r.register(3, "c", 0, "", true).unwrap();
        assert_eq!(r.pg_count(), 8);
        assert!(r.groups().iter().all(|g| g.len() == 3));
        assert_eq!(r.register(3, "c", 10, "", true).unwrap(), e, "same address: no new epoch");
        assert!(r.register(3, "c2", 10, "", true).unwrap() > e);
        assert!(r.rebuilding().is_empty(), "the first map needs no rebuild");
    }

    #[test]
    fn a_down_server_hands_its_slots_to_others_as_rebuild_tasks() {
        let mut r = Registry::new(3, 16);
        for i in 1..=5 {
            r.register(i, &format!("s{i}"), 0, "", true).unwrap();
        }
        // Servers 4 and 5 joined an existing map: they took over some slots.
        let joined: Vec<_> = r.rebuilding().iter().map(|(k, v)| (*k, *v)).collect();
        assert!(!joined.is_empty() && joined.iter().all(|(_, s)| *s >= 4));
        for ((pg, slot), s) in joined {
            assert!(r.rebuild_done(s, pg, slot));
        }
        let held: usize = r.groups().iter().filter(|g| g.contains(&2)).count();
        let e = r.set_state(&[2], &[]);
        assert!(r.groups().iter().all(|g| !g.contains(&2) && g.len() == 3));
        assert_eq!(r.rebuilding().len(), held);
        let ((pg, slot), target) = r.rebuilding().iter().next().map(|(k, v)| (*k, *v)).unwrap();
        assert_eq!(r.groups()[pg as usize][slot as usize], target);
        assert!(!r.rebuild_done(99, pg, slot));
        assert!(r.rebuild_done(target, pg, slot));
        assert_eq!(r.epoch(), e, "finishing a rebuild moves no target");
    }
}
#[cfg(test)]
mod join_tests {
    use super::*;

    #[test]
    fn late_joiners_get_slots() {
        let mut r = Registry::new(6, 64);
        for i in [3, 4, 5, 6, 7, 8, 1, 2] {
            r.register(i, &format!("s{i}"), 0, "", true).unwrap();
        }
        for id in 1..=8 {
            let n = r.groups().iter().filter(|g| g.contains(&id)).count();
            assert!(n > 20, "server {id} in {n} groups: {:?}", r.groups());
        }
    }
}
