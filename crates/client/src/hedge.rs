//! Hedged shard reads: when a shard fetch is slower than most recent ones,
//! ask another shard for the same bytes too; the first k to arrive win
//! (`stripe_fetch.rs`). A server that is slow (overloaded, paused, a dying
//! disk) then costs a reader one high-percentile latency, not the request
//! timeout.
//!
//! The threshold is the 95th percentile of the last [`WINDOW`] successful
//! fetches this client made (any server, whole or ranged), times
//! [`MARGIN`], clamped to [`FLOOR`]..[`CEILING`]; until [`MIN_SAMPLES`]
//! fetches have finished it is [`CEILING`].

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

/// Recent fetches the percentile is taken over.
pub const WINDOW: usize = 512;
/// Fetches seen before the percentile is trusted.
pub const MIN_SAMPLES: usize = 32;
/// The percentile is multiplied by this: a fetch must be clearly slow.
pub const MARGIN: f64 = 1.5;
/// Never hedge sooner than this (a loaded machine's scheduling noise).
pub const FLOOR: Duration = Duration::from_millis(5);
/// Never wait longer than this before hedging.
pub const CEILING: Duration = Duration::from_millis(500);

/// Recent shard fetch latencies, shared by a client's reads.
#[derive(Default)]
pub struct Latencies {
    recent: Mutex<VecDeque<Duration>>,
}

impl Latencies {
    /// Note one successful fetch's latency.
    pub fn record(&self, took: Duration) {
        let mut r = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        if r.len() == WINDOW {
            r.pop_front();
        }
        r.push_back(took);
    }

    /// How long a fetch may take before another shard is asked too.
    pub fn hedge_after(&self) -> Duration {
        let mut sorted: Vec<Duration> = {
            let r = self.recent.lock().unwrap_or_else(|e| e.into_inner());
            if r.len() < MIN_SAMPLES {
                return CEILING;
            }
            r.iter().copied().collect()
        };
        sorted.sort_unstable();
        let p95 = sorted[(sorted.len() * 95 / 100).min(sorted.len() - 1)];
        p95.mul_f64(MARGIN).clamp(FLOOR, CEILING)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_threshold_is_the_ceiling_until_enough_fetches_were_seen() {
        let l = Latencies::default();
        for _ in 0..MIN_SAMPLES - 1 {
            l.record(Duration::from_millis(1));
        }
        assert_eq!(l.hedge_after(), CEILING);
        l.record(Duration::from_millis(1));
        assert_eq!(l.hedge_after(), FLOOR, "1 ms fetches hedge at the floor");
    }

    #[test]
    fn the_threshold_follows_the_95th_percentile_of_the_recent_window() {
        let l = Latencies::default();
        for i in 0..100u64 {
            // 95 fast fetches, 5 slow ones: the 95th percentile is slow.
            l.record(Duration::from_millis(if i < 94 { 10 } else { 100 }));
        }
        assert_eq!(l.hedge_after(), Duration::from_millis(150));
        // The slow ones age out of the window.
        for _ in 0..WINDOW {
            l.record(Duration::from_millis(20));
        }
        assert_eq!(l.hedge_after(), Duration::from_millis(30));
        for _ in 0..WINDOW {
            l.record(Duration::from_secs(5));
        }
        assert_eq!(l.hedge_after(), CEILING, "clamped");
    }
}
