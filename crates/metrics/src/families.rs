//! The metric families, registered once per process on first use. Servers
//! and mounts update them; the exporter serves them.

use std::sync::LazyLock;
use std::time::Instant;

use prometheus::{
    exponential_buckets, register_histogram_vec, register_int_counter, register_int_counter_vec, register_int_gauge,
    register_int_gauge_vec, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec,
};

// Registration fails only on a duplicate name or a malformed definition,
// both programming errors in this file, caught by its tests.
macro_rules! family {
    ($name:ident, $ty:ty, $make:expr) => {
        pub fn $name() -> &'static $ty {
            static F: LazyLock<$ty> = LazyLock::new(|| $make.expect(concat!("register ", stringify!($name))));
            &F
        }
    };
}

family!(
    requests_total,
    IntCounterVec,
    register_int_counter_vec!(
        "shardline_requests_total",
        "Requests served, by server kind (meta, data, mount), operation and outcome (ok, error).",
        &["server", "op", "outcome"]
    )
);

family!(
    request_duration_seconds,
    HistogramVec,
    register_histogram_vec!(
        "shardline_request_duration_seconds",
        "Time to serve a request, by server kind and operation.",
        &["server", "op"],
        exponential_buckets(50e-6, 2.0, 18).expect("valid buckets")
    )
);

family!(
    payload_bytes_total,
    IntCounterVec,
    register_int_counter_vec!(
        "shardline_payload_bytes_total",
        "Payload bytes moved, by server kind and direction (in: received, out: sent).",
        &["server", "direction"]
    )
);

family!(
    data_shards,
    IntGaugeVec,
    register_int_gauge_vec!("shardline_data_shards", "Shards a data target holds.", &["target"])
);

family!(
    data_capacity_bytes,
    IntGaugeVec,
    register_int_gauge_vec!(
        "shardline_data_capacity_bytes",
        "A data target's capacity: total (what it may hold), used and free.",
        &["target", "kind"]
    )
);

family!(raft_term, IntGauge, register_int_gauge!("shardline_raft_term", "This metadata server's Raft term."));
family!(
    raft_commit_index,
    IntGauge,
    register_int_gauge!("shardline_raft_commit_index", "This metadata server's Raft commit index.")
);
family!(
    raft_applied_index,
    IntGauge,
    register_int_gauge!("shardline_raft_applied_index", "Index of the last entry applied to the namespace.")
);
family!(
    raft_is_leader,
    IntGauge,
    register_int_gauge!("shardline_raft_is_leader", "1 while this metadata server leads, else 0.")
);

family!(
    cluster_data_servers,
    IntGaugeVec,
    register_int_gauge_vec!(
        "shardline_cluster_data_servers",
        "Data servers by state (up, down), as the metadata leader sees them (0 on followers).",
        &["state"]
    )
);

family!(
    cluster_placement_groups,
    IntGaugeVec,
    register_int_gauge_vec!(
        "shardline_cluster_placement_groups",
        "Placement groups by state (healthy; degraded: below full width but readable; unavailable: fewer than k shards), as the metadata leader sees them (0 on followers).",
        &["state"]
    )
);

family!(
    rebuild_shards_total,
    IntCounterVec,
    register_int_counter_vec!(
        "shardline_rebuild_shards_total",
        "Shards a data target rebuilt from its peers, by outcome (ok, error).",
        &["target", "outcome"]
    )
);

family!(
    scrub_shards_total,
    IntCounterVec,
    register_int_counter_vec!(
        "shardline_scrub_shards_total",
        "Shards a data target's scrub checked, by result (ok, corrupt).",
        &["target", "result"]
    )
);

family!(
    client_hedged_fetches_total,
    IntCounter,
    register_int_counter!(
        "shardline_client_hedged_fetches_total",
        "Shard fetches a client sent as hedges: another shard asked for bytes a slow one had not sent yet."
    )
);
family!(
    client_cache_lookups_total,
    IntCounterVec,
    register_int_counter_vec!(
        "shardline_client_cache_lookups_total",
        "Lookups in a client's metadata caches, by cache and result (hit, miss).",
        &["cache", "result"]
    )
);

/// Times one request; counts it with its outcome when finished.
pub struct RequestTimer {
    server: &'static str,
    op: &'static str,
    start: Instant,
}

impl RequestTimer {
    pub fn start(server: &'static str, op: &'static str) -> RequestTimer {
        RequestTimer { server, op, start: Instant::now() }
    }

    pub fn finish(self, ok: bool) {
        let outcome = if ok { "ok" } else { "error" };
        requests_total().with_label_values(&[self.server, self.op, outcome]).inc();
        request_duration_seconds()
            .with_label_values(&[self.server, self.op])
            .observe(self.start.elapsed().as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_family_registers_and_a_timer_counts_its_outcome() {
        // Touch each family: a duplicate name or bad definition panics here.
        let _ = (requests_total(), request_duration_seconds(), payload_bytes_total(), data_shards());
        let _ = (data_capacity_bytes(), raft_term(), raft_commit_index(), raft_applied_index(), raft_is_leader());
        let _ = (cluster_data_servers(), cluster_placement_groups(), rebuild_shards_total(), scrub_shards_total());
        let _ = (client_cache_lookups_total(), client_hedged_fetches_total());
        let before = requests_total().with_label_values(&["unit", "t", "error"]).get();
        RequestTimer::start("unit", "t").finish(false);
        assert_eq!(requests_total().with_label_values(&["unit", "t", "error"]).get(), before + 1);
        assert_eq!(request_duration_seconds().with_label_values(&["unit", "t"]).get_sample_count(), 1);
    }
}
