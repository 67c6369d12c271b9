//! Free space for statfs from the data servers' own reports.
//!
//! The replicated state knows each data server's capacity at registration;
//! what is used and free arrives in heartbeats, which are the leader's soft
//! state. The leader refines the replicated figures with the reports of the
//! servers it heard from recently: total and free are their raw capacity and
//! raw free space, scaled by the root layout's k/(k+m) as the replicated
//! total is. A server not heard from recently counts with no free space, so
//! a fresh leader under-reports free space for a heartbeat or two rather
//! than over-reporting it.

use shardline_proto::v1 as pb;

/// A data server's latest usage report: (capacity, used) in raw bytes.
pub type UsageReport = (u64, u64);

/// `stats` (as the state machine computed it from registered capacities)
/// with total and free bytes taken from `reports`.
pub fn with_live_usage(mut stats: pb::FsStats, reports: &[UsageReport]) -> pb::FsStats {
    if stats.raw_capacity_bytes == 0 || reports.is_empty() {
        // Nothing registered, or no report yet: nothing is known to be free.
        stats.free_bytes = 0;
        return stats;
    }
    let raw_total = reports.iter().map(|r| r.0).fold(0u64, u64::saturating_add);
    let raw_free = reports.iter().map(|r| r.0.saturating_sub(r.1)).fold(0u64, u64::saturating_add);
    // Usable over raw, as the state machine scaled the registered capacity.
    let (usable, raw) = (u128::from(stats.total_bytes), u128::from(stats.raw_capacity_bytes));
    let scale = |bytes: u64| (u128::from(bytes) * usable / raw) as u64;
    stats.total_bytes = scale(raw_total);
    stats.free_bytes = scale(raw_free).min(stats.total_bytes);
    stats.raw_capacity_bytes = raw_total;
    stats
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registered(raw: u64) -> pb::FsStats {
        // 4+2: usable is 4/6 of raw.
        pb::FsStats { total_bytes: raw * 4 / 6, free_bytes: raw * 4 / 6, raw_capacity_bytes: raw, ..Default::default() }
    }

    #[test]
    fn statfs_free_space_is_capacity_minus_used_not_total() {
        let s = with_live_usage(registered(6000), &[(1000, 400), (1000, 100), (1000, 0)]);
        assert_eq!(s.raw_capacity_bytes, 3000);
        assert_eq!(s.total_bytes, 2000);
        assert_eq!(s.free_bytes, 2500 * 4 / 6);
        assert!(s.free_bytes < s.total_bytes);
    }

    #[test]
    fn without_reports_nothing_is_known_free() {
        assert_eq!(with_live_usage(registered(6000), &[]).free_bytes, 0);
        assert_eq!(with_live_usage(pb::FsStats::default(), &[(10, 1)]).free_bytes, 0);
    }

    #[test]
    fn a_report_of_more_used_than_capacity_does_not_underflow() {
        let s = with_live_usage(registered(600), &[(100, 500)]);
        assert_eq!(s.free_bytes, 0);
    }
}
