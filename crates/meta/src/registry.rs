//! The data-server registry and the placement-group map, as plain values.
//!
//! Registration is replicated through Raft; the map is recomputed (by the
//! pure functions in `shardline_types::placement`) whenever the set of
//! registered servers changes, and every change bumps the epoch.

use std::collections::BTreeMap;

use shardline_types::{build_groups, NodeId};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerRecord {
    pub id: NodeId,
    pub addr: String,
    pub capacity_bytes: u64,
}

#[derive(Debug, Clone)]
pub struct Registry {
    servers: BTreeMap<NodeId, ServerRecord>,
    epoch: u64,
    width: usize,
    pg_count: u32,
    groups: Vec<Vec<NodeId>>,
}

impl Registry {
    /// `width`: shards per chunk (k+m) of the cluster's layout.
    pub fn new(width: usize, pg_count: u32) -> Self {
        Registry { servers: BTreeMap::new(), epoch: 0, width, pg_count, groups: Vec::new() }
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

    /// Add or update a server; returns the (possibly new) epoch.
    pub fn register(&mut self, id: NodeId, addr: &str, capacity_bytes: u64) -> u64 {
        let record = ServerRecord { id, addr: addr.to_string(), capacity_bytes };
        match self.servers.insert(id, record.clone()) {
            Some(old) if old.addr == record.addr => {}
            Some(_) => self.epoch += 1,
            None => {
                self.epoch += 1;
                self.rebuild();
            }
        }
        self.epoch
    }

    fn rebuild(&mut self) {
        let ids: Vec<NodeId> = self.servers.keys().copied().collect();
        if let Ok(groups) = build_groups(&ids, self.pg_count, self.width) {
            self.groups = groups;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_appears_once_enough_servers_register() {
        let mut r = Registry::new(3, 8);
        r.register(1, "a", 0);
        r.register(2, "b", 0);
        assert_eq!(r.pg_count(), 0);
        let e = r.register(3, "c", 0);
        assert_eq!(r.pg_count(), 8);
        assert!(r.groups().iter().all(|g| g.len() == 3));
        assert_eq!(r.register(3, "c", 10), e, "same address: no new epoch");
        assert!(r.register(3, "c2", 10) > e);
    }
}
