//! This metadata server's state as Prometheus gauges, refreshed by the
//! monitor every second: its Raft term, commit and apply index and
//! leadership, and on the leader the cluster's data servers and placement
//! groups by state.

use shardline_metrics as metrics;
use shardline_proto::v1::meta_response::Body as RBody;

use crate::service::MetaService;

fn gauge(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl MetaService {
    pub(crate) async fn publish_metrics(&self) {
        let Some(st) = self.node_status().await else { return };
        metrics::raft_term().set(gauge(st.term));
        metrics::raft_commit_index().set(gauge(st.commit));
        metrics::raft_applied_index().set(gauge(st.applied));
        let leader = st.role == "leader";
        metrics::raft_is_leader().set(i64::from(leader));
        let (mut up, mut down, mut healthy, mut degraded, mut unavailable) = (0, 0, 0, 0, 0);
        if leader {
            // Without the bytes: their sum scans the whole namespace.
            if let Some(RBody::Status(status)) = self.status(false).await.body {
                up = status.data.iter().filter(|d| d.state == "up").count() as u64;
                down = status.data.len() as u64 - up;
                healthy = u64::from(status.pgs_healthy);
                degraded = u64::from(status.pgs_degraded);
                unavailable = u64::from(status.pgs_unavailable);
            }
        }
        metrics::cluster_data_servers().with_label_values(&["up"]).set(gauge(up));
        metrics::cluster_data_servers().with_label_values(&["down"]).set(gauge(down));
        metrics::cluster_placement_groups().with_label_values(&["healthy"]).set(gauge(healthy));
        metrics::cluster_placement_groups().with_label_values(&["degraded"]).set(gauge(degraded));
        metrics::cluster_placement_groups().with_label_values(&["unavailable"]).set(gauge(unavailable));
    }
}
