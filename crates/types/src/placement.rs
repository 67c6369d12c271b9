//! Placement as pure functions of a server list.
//!
//! A chunk maps to a placement group (PG) by a stable hash of (file id, chunk
//! index); a PG maps to an ordered list of `width` distinct servers chosen by
//! rendezvous (highest-random-weight) hashing, so adding or removing one
//! server moves only the PGs that server wins or held.

use crate::NodeId;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlacementError {
    #[error("need at least {need} data servers for k+m = {need}, have {have}")]
    NotEnoughServers { need: usize, have: usize },
}

/// A stable 64-bit mixer (splitmix64 finaliser). Never change it: chunk
/// placement on disk depends on it.
pub fn mix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// The placement group of a chunk.
pub fn pg_of(file_id: u64, chunk_index: u64, pg_count: u32) -> u32 {
    if pg_count == 0 {
        return 0;
    }
    (mix64(mix64(file_id) ^ chunk_index) % pg_count as u64) as u32
}

/// Build `pg_count` groups of `width` distinct servers each.
pub fn build_groups(servers: &[NodeId], pg_count: u32, width: usize) -> Result<Vec<Vec<NodeId>>, PlacementError> {
    let mut ids: Vec<NodeId> = servers.to_vec();
    ids.sort_unstable();
    ids.dedup();
    if ids.len() < width {
        return Err(PlacementError::NotEnoughServers { need: width, have: ids.len() });
    }
    Ok((0..pg_count)
        .map(|pg| {
            let mut scored: Vec<(u64, NodeId)> =
                ids.iter().map(|&s| (mix64(mix64(pg as u64 ^ 0x5047) ^ s), s)).collect();
            scored.sort_unstable_by(|a, b| b.cmp(a));
            scored.into_iter().take(width).map(|(_, s)| s).collect()
        })
        .collect())
}

/// A server as placement sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub id: NodeId,
    /// Failure domain; servers with the same non-empty rack never share a
    /// group while enough racks exist.
    pub rack: String,
}

fn score(pg: u32, server: NodeId) -> u64 {
    mix64(mix64(pg as u64 ^ 0x5047) ^ server)
}

/// Recompute every group with stable slots: a member that is still among
/// the group's best `width` up servers keeps its slot (so its shard index
/// does not move); vacated slots get the best remaining candidates, avoiding
/// racks already in the group when possible. With fewer candidates than
/// `width`, members that are no longer candidates keep their slots (the
/// group runs degraded rather than shrinking).
pub fn rebalance(current: &[Vec<NodeId>], up: &[Candidate], width: usize, pg_count: u32) -> Vec<Vec<NodeId>> {
    (0..pg_count)
        .map(|pg| {
            let mut ranked: Vec<&Candidate> = up.iter().collect();
            ranked.sort_by_key(|c| std::cmp::Reverse((score(pg, c.id), c.id)));
            // The ideal set: best-scoring, one per rack first, then the rest.
            let mut ideal: Vec<&Candidate> = Vec::new();
            for c in &ranked {
                if ideal.len() < width && (c.rack.is_empty() || !ideal.iter().any(|i| i.rack == c.rack)) {
                    ideal.push(c);
                }
            }
            for c in &ranked {
                if ideal.len() < width && !ideal.iter().any(|i| i.id == c.id) {
                    ideal.push(c);
                }
            }
            let old = current.get(pg as usize).cloned().unwrap_or_default();
            let mut group: Vec<Option<NodeId>> = (0..width).map(|i| old.get(i).copied()).collect();
            for slot in group.iter_mut() {
                if let Some(id) = *slot {
                    if !ideal.iter().any(|c| c.id == id) && ideal.len() >= width {
                        *slot = None;
                    }
                }
            }
            let present: Vec<NodeId> = group.iter().flatten().copied().collect();
            let mut fill = ideal.iter().map(|c| c.id).filter(|id| !present.contains(id));
            group.into_iter().map(|s| s.or_else(|| fill.next()).unwrap_or(0)).filter(|&id| id != 0).collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn cands(ids: impl IntoIterator<Item = u64>) -> Vec<Candidate> {
        ids.into_iter().map(|id| Candidate { id, rack: String::new() }).collect()
    }

    #[test]
    fn rebalance_from_empty_fills_every_group() {
        let g = rebalance(&[], &cands(1..=8), 6, 32);
        assert_eq!(g.len(), 32);
        assert!(g.iter().all(|g| g.len() == 6 && g.iter().collect::<HashSet<_>>().len() == 6));
    }

    #[test]
    fn a_down_server_is_replaced_in_place_and_nothing_else_moves() {
        let before = rebalance(&[], &cands(1..=8), 6, 64);
        let after = rebalance(&before, &cands((1..=8).filter(|&i| i != 3)), 6, 64);
        for (b, a) in before.iter().zip(&after) {
            assert!(!a.contains(&3));
            for (slot, (x, y)) in b.iter().zip(a).enumerate() {
                if *x != 3 {
                    assert_eq!(x, y, "slot {slot} moved without cause");
                }
            }
        }
    }

    #[test]
    fn too_few_up_servers_keep_the_old_member() {
        let before = rebalance(&[], &cands(1..=6), 6, 8);
        let after = rebalance(&before, &cands(1..=5), 6, 8);
        assert_eq!(before, after);
    }

    #[test]
    fn racks_are_spread() {
        let servers: Vec<Candidate> = (1..=12).map(|id| Candidate { id, rack: format!("r{}", id % 6) }).collect();
        for g in rebalance(&[], &servers, 6, 64) {
            let racks: HashSet<u64> = g.iter().map(|id| id % 6).collect();
            assert_eq!(racks.len(), 6, "two shards in one rack: {g:?}");
        }
    }

    #[test]
    fn groups_have_distinct_servers_and_balance() {
        let servers: Vec<u64> = (1..=12).collect();
        let groups = build_groups(&servers, 256, 6).unwrap();
        let mut load = std::collections::HashMap::new();
        for g in &groups {
            assert_eq!(g.iter().collect::<HashSet<_>>().len(), 6);
            for s in g {
                *load.entry(*s).or_insert(0) += 1;
            }
        }
        // 256 * 6 / 12 = 128 shards per server on average.
        for (_, n) in load {
            assert!((80..=180).contains(&n), "unbalanced: {n}");
        }
    }

    #[test]
    fn adding_a_server_moves_few_groups() {
        let a = build_groups(&(1..=10).collect::<Vec<_>>(), 128, 6).unwrap();
        let b = build_groups(&(1..=11).collect::<Vec<_>>(), 128, 6).unwrap();
        let changed = a.iter().zip(&b).filter(|(x, y)| x != y).count();
        assert!(changed < 128, "every group moved");
        for (x, y) in a.iter().zip(&b) {
            let moved = x.iter().filter(|s| !y.contains(s)).count();
            assert!(moved <= 1);
        }
    }

    #[test]
    fn too_few_servers_is_an_error() {
        assert_eq!(build_groups(&[1, 2, 3], 4, 6), Err(PlacementError::NotEnoughServers { need: 6, have: 3 }));
    }

    #[test]
    fn pg_of_is_stable() {
        assert_eq!(pg_of(1, 0, 64), pg_of(1, 0, 64));
        let pgs: HashSet<u32> = (0..1000).map(|i| pg_of(42, i, 64)).collect();
        assert!(pgs.len() > 50);
    }
}
