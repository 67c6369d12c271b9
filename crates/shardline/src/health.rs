//! Cluster health as `up`, `admin status --wait-healthy` and scripts wait
//! for it: the metadata leader's status, and whether it says every data
//! server expected is up and every placement group healthy.

use std::sync::Arc;
use std::time::Duration;

use shardline_proto::v1 as pb;
use shardline_rpc::{MetaClient, Tls};

/// The status as the metadata leader sees it (only the leader knows the
/// data servers' liveness); None when no server answers as leader.
pub async fn leader_status(addrs: &[String], tls: &Arc<Tls>) -> Option<pb::ClusterStatus> {
    let meta = MetaClient::new(addrs.to_vec(), Duration::from_secs(1), tls.clone());
    for addr in addrs {
        let Ok(resp) = meta.call_one(addr, pb::meta_request::Body::Status(pb::GetStatus {})).await else {
            continue;
        };
        if let Some(pb::meta_response::Body::Status(st)) = resp.body {
            if st.meta.first().is_some_and(|m| m.role == "leader") {
                return Some(st);
            }
        }
    }
    None
}

/// Whether the metadata service has served requests: some server answers
/// and a leader has been elected and committed (it is leader, or has applied
/// entries; followers know this too, so it holds right after the leader dies).
pub async fn has_served(addrs: &[String], tls: &Arc<Tls>) -> bool {
    let meta = MetaClient::new(addrs.to_vec(), Duration::from_secs(1), tls.clone());
    for addr in addrs {
        if let Ok(pb::MetaResponse { body: Some(pb::meta_response::Body::Status(st)), .. }) =
            meta.call_one(addr, pb::meta_request::Body::Status(pb::GetStatus {})).await
        {
            if st.meta.first().is_some_and(|m| m.role == "leader" || m.applied_index > 0) {
                return true;
            }
        }
    }
    false
}

/// What a status says about health.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    /// Every expected data server is registered and up, and every placement
    /// group exists and is healthy (no slot down or rebuilding).
    pub healthy: bool,
    /// "6/6 data servers up, 64/64 placement groups healthy", naming what is not.
    pub summary: String,
}

/// Judge `st` (a leader's status) for the data servers `expected` (ids).
pub fn health(st: &pb::ClusterStatus, expected: &[u64]) -> Health {
    let mut problems = Vec::new();
    let mut up = 0;
    for id in expected {
        match st.data.iter().find(|d| d.id == *id) {
            // Draining servers still serve what they hold.
            Some(d) if matches!(d.state.as_str(), "up" | "draining" | "drained") => up += 1,
            Some(d) => problems.push(format!("data-{id} {}", d.state)),
            None => problems.push(format!("data-{id} not registered")),
        }
    }
    let healthy = problems.is_empty() && st.pgs_total > 0 && st.pgs_healthy == st.pgs_total;
    let mut summary = format!(
        "{up}/{} data servers up, {}/{} placement groups healthy",
        expected.len(),
        st.pgs_healthy,
        st.pgs_total
    );
    if st.pgs_total == 0 {
        summary.push_str(" (no placement map yet)");
    }
    if st.rebuilds_pending > 0 {
        summary.push_str(&format!(", {} shard slots rebuilding", st.rebuilds_pending));
    }
    if !problems.is_empty() {
        summary.push_str(&format!(" ({})", problems.join(", ")));
    }
    Health { healthy, summary }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(states: &[(u64, &str)], pgs: (u32, u32)) -> pb::ClusterStatus {
        pb::ClusterStatus {
            data: states
                .iter()
                .map(|(id, s)| pb::DataServerInfo { id: *id, state: s.to_string(), ..Default::default() })
                .collect(),
            pgs_total: pgs.0,
            pgs_healthy: pgs.1,
            ..Default::default()
        }
    }

    #[test]
    fn healthy_needs_every_expected_server_up_and_every_group_healthy() {
        let all_up = status(&[(1, "up"), (2, "up")], (8, 8));
        assert_eq!(
            health(&all_up, &[1, 2]),
            Health { healthy: true, summary: "2/2 data servers up, 8/8 placement groups healthy".into() }
        );
        let h = health(&status(&[(1, "up"), (2, "down")], (8, 8)), &[1, 2]);
        assert!(!h.healthy && h.summary.contains("data-2 down"), "{h:?}");
        let h = health(&status(&[(1, "up")], (8, 8)), &[1, 2]);
        assert!(!h.healthy && h.summary.contains("data-2 not registered"), "{h:?}");
        let h = health(&status(&[(1, "up"), (2, "up")], (8, 6)), &[1, 2]);
        assert!(!h.healthy && h.summary.contains("6/8 placement groups"), "{h:?}");
        let h = health(&status(&[(1, "up"), (2, "up")], (0, 0)), &[1, 2]);
        assert!(!h.healthy && h.summary.contains("no placement map yet"), "{h:?}");
        // A server no longer expected (it died under `up`) is not waited for.
        assert!(health(&status(&[(1, "up"), (2, "down")], (8, 8)), &[1]).healthy);
    }
}
