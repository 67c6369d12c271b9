//! `admin capacity` and `admin nodes`: raw, used and free space per data
//! server (each disk is a server of its own) and per failure domain, what
//! that leaves for new files after the erasure code's overhead, the largest
//! file the cluster can still take, and failure domains whose loss could
//! not be re-protected. Pure: computed from the leader's status.

use std::collections::BTreeMap;

use serde::Serialize;
use shardline_proto::v1 as pb;

/// One data server (disk) as the leader reports it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct NodeCapacity {
    pub id: u64,
    /// Its failure domain: the rack label, else the server itself.
    pub domain: String,
    pub state: String,
    pub capacity_bytes: u64,
    pub used_bytes: u64,
    pub free_bytes: u64,
    pub shards: u64,
}

/// A failure domain's totals.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct DomainCapacity {
    pub name: String,
    pub servers: usize,
    pub capacity_bytes: u64,
    pub used_bytes: u64,
    pub free_bytes: u64,
}

/// The whole picture for one erasure code.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct CapacityReport {
    pub ec: String,
    pub servers_up: usize,
    pub servers_total: usize,
    pub raw_capacity_bytes: u64,
    pub raw_used_bytes: u64,
    /// Free space on servers that are up.
    pub raw_free_bytes: u64,
    /// Plaintext bytes new files of this code can still take, spread evenly.
    pub usable_free_bytes: u64,
    /// The largest file: placement spreads shards evenly, so the fullest
    /// server that is up ends it.
    pub largest_file_bytes: u64,
    pub nodes: Vec<NodeCapacity>,
    pub domains: Vec<DomainCapacity>,
    pub warnings: Vec<String>,
}

pub fn nodes(status: &pb::ClusterStatus) -> Vec<NodeCapacity> {
    status
        .data
        .iter()
        .map(|d| NodeCapacity {
            id: d.id,
            domain: if d.rack.is_empty() { format!("server-{}", d.id) } else { d.rack.clone() },
            state: d.state.clone(),
            capacity_bytes: d.capacity_bytes,
            used_bytes: d.used_bytes,
            free_bytes: d.capacity_bytes.saturating_sub(d.used_bytes),
            shards: d.shard_count,
        })
        .collect()
}

pub fn report(status: &pb::ClusterStatus, k: u64, m: u64) -> CapacityReport {
    let nodes = nodes(status);
    let up: Vec<&NodeCapacity> = nodes.iter().filter(|n| n.state == "up").collect();
    let width = k + m;
    let raw_free: u64 = up.iter().map(|n| n.free_bytes).sum();
    let mut domains: BTreeMap<String, DomainCapacity> = BTreeMap::new();
    for n in &nodes {
        let d = domains.entry(n.domain.clone()).or_insert_with(|| DomainCapacity {
            name: n.domain.clone(),
            servers: 0,
            capacity_bytes: 0,
            used_bytes: 0,
            free_bytes: 0,
        });
        d.servers += 1;
        d.capacity_bytes += n.capacity_bytes;
        d.used_bytes += n.used_bytes;
        if n.state == "up" {
            d.free_bytes += n.free_bytes;
        }
    }
    let up_domains = domains.values().filter(|d| d.free_bytes > 0).count() as u64;
    let min_free = up.iter().map(|n| n.free_bytes).min().unwrap_or(0) as u128;
    let servers_up = up.len();
    let largest_file = if (servers_up as u64) < width || up_domains < width {
        0
    } else {
        (min_free * k as u128 * servers_up as u128 / width as u128).min(u64::MAX as u128) as u64
    };
    let mut warnings = Vec::new();
    if (up_domains) < width {
        warnings.push(format!(
            "only {up_domains} failure domains can take shards, fewer than {k}+{m} = {width}: new files cannot be written"
        ));
    }
    let total_free: u64 = domains.values().map(|d| d.free_bytes).sum();
    for d in domains.values() {
        let left = up_domains - u64::from(d.free_bytes > 0);
        if left < width && up_domains >= width {
            warnings.push(format!(
                "losing failure domain {} would leave {left} domains, fewer than {width}: its shards could not be re-protected",
                d.name
            ));
        } else if d.used_bytes > total_free - d.free_bytes {
            warnings.push(format!(
                "losing failure domain {} ({} used) would need more space than the others have free ({})",
                d.name,
                crate::cmd_admin::human(d.used_bytes),
                crate::cmd_admin::human(total_free - d.free_bytes)
            ));
        }
    }
    CapacityReport {
        ec: format!("{k}+{m}"),
        servers_up,
        servers_total: nodes.len(),
        raw_capacity_bytes: nodes.iter().map(|n| n.capacity_bytes).sum(),
        raw_used_bytes: nodes.iter().map(|n| n.used_bytes).sum(),
        raw_free_bytes: raw_free,
        usable_free_bytes: (raw_free as u128 * k as u128 / width.max(1) as u128) as u64,
        largest_file_bytes: largest_file,
        nodes,
        domains: domains.into_values().collect(),
        warnings,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(id: u64, rack: &str, state: &str, cap: u64, used: u64) -> pb::DataServerInfo {
        pb::DataServerInfo {
            id,
            rack: rack.into(),
            state: state.into(),
            capacity_bytes: cap,
            used_bytes: used,
            ..Default::default()
        }
    }

    fn status(servers: Vec<pb::DataServerInfo>) -> pb::ClusterStatus {
        pb::ClusterStatus { data: servers, ..Default::default() }
    }

    #[test]
    fn usable_space_and_the_largest_file_follow_the_code_and_the_fullest_server() {
        // Six servers of 100, one of them 40 used: raw free 560.
        let mut s: Vec<_> = (1..=6).map(|i| server(i, "", "up", 100, 0)).collect();
        s[2].used_bytes = 40;
        let r = report(&status(s), 4, 2);
        assert_eq!((r.raw_capacity_bytes, r.raw_used_bytes, r.raw_free_bytes), (600, 40, 560));
        assert_eq!(r.usable_free_bytes, 560 * 4 / 6);
        // Even spread: every server takes 1/4 of the file's size (6/4 over 6).
        assert_eq!(r.largest_file_bytes, 60 * 4 * 6 / 6);
        assert!(r.warnings.iter().any(|w| w.contains("server-1") && w.contains("could not be re-protected")));
    }

    #[test]
    fn a_down_server_gives_no_free_space_and_too_few_domains_is_said() {
        let mut s: Vec<_> = (1..=6).map(|i| server(i, "", "up", 100, 10)).collect();
        s[0].state = "down".into();
        let r = report(&status(s), 4, 2);
        assert_eq!(r.servers_up, 5);
        assert_eq!(r.raw_free_bytes, 5 * 90);
        assert_eq!(r.largest_file_bytes, 0, "4+2 needs six failure domains");
        assert!(r.warnings[0].contains("fewer than 4+2 = 6"), "{:?}", r.warnings);
    }

    #[test]
    fn racks_group_servers_and_a_full_rack_that_cannot_be_moved_is_warned() {
        let mut s = vec![server(1, "a", "up", 200, 190), server(2, "a", "up", 200, 190)];
        for (i, rack) in ["b", "c", "d", "e", "f", "g"].iter().enumerate() {
            s.push(server(i as u64 + 3, rack, "up", 100, 60));
        }
        let r = report(&status(s), 4, 2);
        let a = r.domains.iter().find(|d| d.name == "a").expect("rack a");
        assert_eq!((a.servers, a.capacity_bytes, a.used_bytes, a.free_bytes), (2, 400, 380, 20));
        assert_eq!(r.domains.len(), 7);
        // Rack a's 380 used exceed the others' 240 free; rack b's 60 fit.
        assert!(
            r.warnings.iter().any(|w| w.contains("domain a") && w.contains("more space than the others have free")),
            "{:?}",
            r.warnings
        );
        assert!(!r.warnings.iter().any(|w| w.contains("domain b")), "{:?}", r.warnings);
    }
}
