//! The operator's moves on the registry: draining a data server, removing
//! one, and rebalancing placement after servers were added; the hand-offs
//! that let an old holder release its copies once the new target has them;
//! and what a move plan costs in shard bytes. Pure, like the registry.
//!
//! A move is a placement-group slot changing hands. Its new target rebuilds
//! the slot from k peers (the ordinary rebuild task); its old holder keeps
//! serving nothing new but keeps its copies until then, and is told to
//! release them afterwards (`releases_for`, answered by `ReleaseDone`).
//! Bytes per slot come from the namespace: a slot of group `pg` holds one
//! shard of every chunk placed in `pg` (`pg_bytes[pg]`).

use std::collections::BTreeMap;

use shardline_types::NodeId;

use super::Registry;

/// What a drain or rebalance moves, in slots and shard bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MovePlan {
    /// Slots that change hands.
    pub moves: u32,
    /// Shard bytes those slots hold (what the new targets rebuild).
    pub bytes: u64,
    /// The least any plan reaching the same goal must move: for a drain,
    /// everything the server holds; for a rebalance, what the servers under
    /// the mean must receive to reach it.
    pub minimum_bytes: u64,
    /// Largest minus smallest held shard bytes over placement servers.
    pub spread_before: u64,
    pub spread_after: u64,
}

/// Why a data server may not be removed yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemoveRefusal {
    Unknown,
    /// Still the target of this many slots.
    HoldsSlots(usize),
    /// Slots it handed over that are not rebuilt yet (its copies count
    /// towards k for them).
    Moving(usize),
}

impl std::fmt::Display for RemoveRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RemoveRefusal::Unknown => write!(f, "no such data server"),
            RemoveRefusal::HoldsSlots(n) => write!(
                f,
                "it holds shards of {n} placement-group slots needed to reach k; drain it first (shardline admin drain)"
            ),
            RemoveRefusal::Moving(n) => {
                write!(f, "{n} of its placement-group slots are still being moved off it; wait for the drain to finish")
            }
        }
    }
}

impl Registry {
    pub fn move_rate(&self) -> u64 {
        self.move_rate
    }

    pub fn repair_paused(&self) -> bool {
        self.repair_paused
    }

    pub fn set_repair_paused(&mut self, paused: bool) {
        self.repair_paused = paused;
    }

    pub fn scrub_paused(&self) -> bool {
        self.scrub_paused
    }

    pub fn set_scrub_paused(&mut self, paused: bool) {
        self.scrub_paused = paused;
    }

    pub fn set_move_rate(&mut self, rate: u64) {
        self.move_rate = rate;
    }

    /// Each rebuilding server's share of the cluster-wide move budget: split
    /// evenly among the servers with rebuild tasks (0: no budget set, each
    /// server keeps its own rate).
    pub fn rebuild_rate_share(&self) -> u64 {
        if self.move_rate == 0 {
            return 0;
        }
        let mut receivers: Vec<NodeId> = self.rebuilding.values().copied().collect();
        receivers.sort_unstable();
        receivers.dedup();
        let n = receivers.len().max(1) as u64;
        (self.move_rate / n).max(1)
    }

    /// (pg, slot, old holder) of every hand-off not yet released.
    pub fn handoffs(&self) -> impl Iterator<Item = &(u32, u32, NodeId)> {
        self.handoffs.iter()
    }

    /// Slots `server` handed over whose new target has rebuilt them: its
    /// copies may go.
    pub fn releases_for(&self, server: NodeId) -> Vec<(u32, u32)> {
        self.handoffs
            .iter()
            .filter(|(pg, slot, from)| *from == server && !self.rebuilding.contains_key(&(*pg, *slot)))
            .map(|(pg, slot, _)| (*pg, *slot))
            .collect()
    }

    /// `server` deleted its copies of a slot it handed over.
    pub fn release_done(&mut self, server: NodeId, pg: u32, slot: u32) -> bool {
        if self.rebuilding.contains_key(&(pg, slot)) {
            return false;
        }
        self.handoffs.remove(&(pg, slot, server))
    }

    /// Slots `id` is the target of.
    pub fn slots_of(&self, id: NodeId) -> usize {
        self.groups.iter().map(|g| g.iter().filter(|&&s| s == id).count()).sum()
    }

    /// Start draining `id` (again: a no-op that returns the same plan
    /// shape, so a crashed `admin drain` is simply run again), or with
    /// `cancel` take it back into placement.
    pub fn drain(&mut self, id: NodeId, cancel: bool, pg_bytes: &[u64]) -> Result<MovePlan, String> {
        let Some(s) = self.servers.get(&id) else { return Err(format!("no data server {id}")) };
        if s.draining != cancel {
            // Already in the asked state: nothing new moves.
            let mut plan = self.plan_against(&self.groups.clone(), pg_bytes);
            plan.minimum_bytes = 0;
            return Ok(plan);
        }
        let others = self.servers.values().filter(|o| o.id != id && !o.down && !o.draining && !o.pending).count();
        if !cancel && others < self.width {
            let hint =
                if self.servers.values().any(|o| o.pending) { " (rebalance first to place new servers)" } else { "" };
            return Err(format!(
                "draining data server {id} would leave {others} servers for placement; every chunk needs {}{hint}",
                self.width
            ));
        }
        let held = self.held_bytes(pg_bytes);
        let before = self.groups.clone();
        if let Some(s) = self.servers.get_mut(&id) {
            s.draining = !cancel;
        }
        self.remap();
        let mut plan = self.plan_between(&before, pg_bytes);
        plan.minimum_bytes = if cancel { 0 } else { held.get(&id).copied().unwrap_or(0) };
        Ok(plan)
    }

    /// Forget `id`: refused while it is a target of any slot or a slot it
    /// handed over is not rebuilt yet. Its pending releases are dropped.
    pub fn remove(&mut self, id: NodeId) -> Result<u64, RemoveRefusal> {
        if !self.servers.contains_key(&id) {
            return Err(RemoveRefusal::Unknown);
        }
        let slots = self.slots_of(id);
        if slots > 0 {
            return Err(RemoveRefusal::HoldsSlots(slots));
        }
        let moving = self
            .handoffs
            .iter()
            .filter(|(pg, slot, from)| *from == id && self.rebuilding.contains_key(&(*pg, *slot)))
            .count();
        if moving > 0 {
            return Err(RemoveRefusal::Moving(moving));
        }
        self.handoffs.retain(|(_, _, from)| *from != id);
        self.servers.remove(&id);
        self.removed.insert(id);
        self.epoch += 1;
        Ok(self.epoch)
    }

    /// Recompute placement over every up, non-draining server; with
    /// `dry_run` only say what would move.
    pub fn rebalance_now(&mut self, dry_run: bool, pg_bytes: &[u64]) -> MovePlan {
        let before = self.groups.clone();
        if dry_run {
            return self.clone().rebalance_now(false, pg_bytes);
        }
        for s in self.servers.values_mut() {
            s.pending = false;
        }
        self.remap();
        self.plan_between(&before, pg_bytes)
    }

    /// Shard bytes each placement server (up, not draining) is the target
    /// of; servers with no slots count as 0.
    fn held_bytes(&self, pg_bytes: &[u64]) -> BTreeMap<NodeId, u64> {
        let mut held: BTreeMap<NodeId, u64> =
            self.servers.values().filter(|s| !s.down && !s.draining).map(|s| (s.id, 0)).collect();
        for (pg, g) in self.groups.iter().enumerate() {
            let b = pg_bytes.get(pg).copied().unwrap_or(0);
            for s in g {
                *held.entry(*s).or_insert(0) += b;
            }
        }
        held
    }

    /// Shard bytes held per server, for status.
    pub fn held_bytes_of(&self, id: NodeId, pg_bytes: &[u64]) -> u64 {
        self.groups
            .iter()
            .enumerate()
            .map(|(pg, g)| g.iter().filter(|&&s| s == id).count() as u64 * pg_bytes.get(pg).copied().unwrap_or(0))
            .sum()
    }

    /// The plan that took the map from `before` to the current one.
    fn plan_between(&self, before: &[Vec<NodeId>], pg_bytes: &[u64]) -> MovePlan {
        let mut plan = self.plan_against(before, pg_bytes);
        for (pg, (old, new)) in before.iter().zip(&self.groups).enumerate() {
            for (a, b) in old.iter().zip(new) {
                if a != b {
                    plan.moves += 1;
                    plan.bytes += pg_bytes.get(pg).copied().unwrap_or(0);
                }
            }
        }
        plan
    }

    /// Spreads before (`before`'s holdings) and after (the current map),
    /// and the rebalance minimum: what the servers under the mean must
    /// receive to reach it.
    fn plan_against(&self, before: &[Vec<NodeId>], pg_bytes: &[u64]) -> MovePlan {
        let mut was = self.clone();
        was.groups = before.to_vec();
        let old = was.held_bytes(pg_bytes);
        let new = self.held_bytes(pg_bytes);
        let spread =
            |m: &BTreeMap<NodeId, u64>| m.values().max().copied().unwrap_or(0) - m.values().min().copied().unwrap_or(0);
        let total: u64 = new.values().sum();
        let n = new.len().max(1) as u64;
        let mean = total / n;
        let minimum_bytes = new.keys().map(|id| mean.saturating_sub(old.get(id).copied().unwrap_or(0))).sum();
        MovePlan { moves: 0, bytes: 0, minimum_bytes, spread_before: spread(&old), spread_after: spread(&new) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster(n: u64, width: usize, pgs: u32) -> Registry {
        let mut r = Registry::new(width, pgs);
        for i in 1..=n {
            r.register(i, &format!("s{i}"), 0, "", true).unwrap();
        }
        for ((pg, slot), s) in r.rebuilding.clone() {
            r.rebuild_done(s, pg, slot);
        }
        for (pg, slot, from) in r.handoffs.clone() {
            r.release_done(from, pg, slot);
        }
        r
    }

    fn finish(r: &mut Registry) {
        for ((pg, slot), s) in r.rebuilding.clone() {
            assert!(r.rebuild_done(s, pg, slot));
        }
    }

    #[test]
    fn a_drain_moves_exactly_what_the_server_held_and_then_it_can_go() {
        let mut r = cluster(7, 6, 32);
        let bytes = vec![100; 32];
        let held = r.held_bytes_of(3, &bytes);
        assert_eq!(r.remove(3), Err(RemoveRefusal::HoldsSlots(r.slots_of(3))));
        let plan = r.drain(3, false, &bytes).unwrap();
        assert_eq!(plan.bytes, held);
        assert_eq!(plan.minimum_bytes, held);
        assert_eq!(r.slots_of(3), 0);
        assert!(matches!(r.remove(3), Err(RemoveRefusal::Moving(_))));
        assert!(r.releases_for(3).is_empty(), "nothing to release before the targets rebuilt");
        finish(&mut r);
        let releases = r.releases_for(3);
        assert_eq!(releases.len() as u64 * 100, held);
        for (pg, slot) in releases {
            assert!(r.release_done(3, pg, slot));
        }
        assert_eq!(r.handoffs().count(), 0);
        assert!(r.remove(3).is_ok());
        assert!(r.register(3, "s3", 0, "", true).is_err(), "a removed id stays out");
    }

    #[test]
    fn draining_below_the_width_is_refused() {
        let mut r = cluster(6, 6, 16);
        assert!(r.drain(2, false, &[]).unwrap_err().contains("would leave 5"));
        assert_eq!(r.drain(9, false, &[]).unwrap_err(), "no data server 9");
    }

    #[test]
    fn servers_added_to_a_cluster_with_data_wait_for_a_rebalance() {
        let mut r = cluster(6, 6, 64);
        let bytes = vec![60; 64];
        for i in 7..=9 {
            r.register(i, &format!("s{i}"), 0, "", false).unwrap();
        }
        assert_eq!(r.slots_of(8), 0);
        // A new server flapping down and up (its first heartbeat late) is
        // still not placed: only the operator's rebalance moves data.
        r.set_state(&[8], &[]);
        r.set_state(&[], &[8]);
        assert_eq!(r.slots_of(8), 0);
        assert!(r.rebuilding.is_empty());
        // A placed server failing: a waiting one stands in rather than
        // leaving groups degraded.
        let mut failed = r.clone();
        let held = failed.slots_of(1);
        failed.set_state(&[1], &[]);
        assert_eq!(failed.slots_of(1), 0);
        assert_eq!((7..=9).map(|i| failed.slots_of(i)).sum::<usize>(), held);
        let dry = r.rebalance_now(true, &bytes);
        assert_eq!(r.slots_of(8), 0, "a dry run changes nothing");
        assert!(r.rebuilding.is_empty());
        let plan = r.rebalance_now(false, &bytes);
        assert_eq!(plan, dry);
        assert!(plan.spread_after < plan.spread_before, "{plan:?}");
        // 6 * 64 slots over 9 servers: the new ones need ~1/3 of them.
        assert!(plan.bytes >= plan.minimum_bytes && plan.minimum_bytes > 0, "{plan:?}");
        assert_eq!(plan.moves as usize, r.rebuilding.len());
        assert_eq!(r.handoffs().count(), r.rebuilding.len(), "every slot left a live holder");
        r.set_repair_paused(true);
        assert!(r.tasks_for(8).is_empty(), "no tasks while repair is paused");
        r.set_repair_paused(false);
        assert!(!r.tasks_for(8).is_empty());
    }
}

#[cfg(test)]
mod snapshot_tests {
    use super::*;
    use crate::snapshot::v1;
    use prost::Message;

    /// The registry's snapshot message as written before drains existed
    /// (tags 1-7 of `Registry`, 1-5 of `Server`).
    #[derive(Clone, PartialEq, prost::Message)]
    struct OldServer {
        #[prost(uint64, tag = "1")]
        id: u64,
        #[prost(string, tag = "2")]
        addr: String,
        #[prost(uint64, tag = "3")]
        capacity_bytes: u64,
        #[prost(string, tag = "4")]
        rack: String,
        #[prost(bool, tag = "5")]
        down: bool,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    struct OldRegistry {
        #[prost(message, repeated, tag = "1")]
        servers: Vec<OldServer>,
        #[prost(uint64, tag = "2")]
        epoch: u64,
        #[prost(uint64, tag = "3")]
        width: u64,
        #[prost(uint32, tag = "4")]
        pg_count: u32,
    }

    #[test]
    fn moves_survive_a_snapshot_and_older_registries_decode() {
        let mut r = Registry::new(3, 8);
        for i in 1..=5 {
            r.register(i, &format!("s{i}"), 0, "", true).unwrap();
        }
        r.drain(2, false, &[10; 8]).unwrap();
        r.register(9, "s9", 0, "", false).unwrap();
        r.set_move_rate(5_000_000);
        r.set_repair_paused(true);
        r.set_scrub_paused(true);
        let back = Registry::from_snapshot(r.to_snapshot()).unwrap();
        assert_eq!(back.to_snapshot(), r.to_snapshot());
        assert!(back.servers().any(|s| s.id == 2 && s.draining));
        assert!(back.servers().any(|s| s.id == 9 && s.pending));
        assert_eq!(back.handoffs().count(), r.handoffs().count());
        assert!(back.repair_paused() && back.scrub_paused() && back.move_rate() == 5_000_000);

        let old = OldRegistry {
            servers: vec![OldServer { id: 1, addr: "a".into(), capacity_bytes: 7, rack: String::new(), down: true }],
            epoch: 4,
            width: 3,
            pg_count: 8,
        };
        let decoded = v1::Registry::decode(old.encode_to_vec().as_slice()).unwrap();
        let r = Registry::from_snapshot(decoded).unwrap();
        let s = r.servers().next().unwrap();
        assert!(s.down && !s.draining && !s.pending);
        assert_eq!((r.handoffs().count(), r.move_rate(), r.repair_paused()), (0, 0, false));
    }
}
