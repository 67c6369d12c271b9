//! The rebuild throttle: one token bucket per data server, shared by every
//! rebuild task the server runs, so that however many tasks run at once the
//! server's rebuild traffic together stays within one budget.
//!
//! The bucket holds up to `burst` bytes and refills at `rate` bytes per
//! second. A caller takes the bytes it has just moved; when the bucket runs
//! dry it goes into debt and the caller is told how long to wait for the
//! debt to be paid off, so callers are served in the order they asked and
//! the bytes let through by any instant `t` (counted from a full bucket at
//! time 0) never exceed `burst + rate × t`. Time comes from a [`Clock`], so
//! the accounting is tested on simulated time. Amounts are kept exactly, in
//! byte-nanoseconds, with no rounding drift.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Default rebuild budget of one data server: 200 MB/s (10^6 bytes per
/// second), shared by all its rebuild tasks.
pub const DEFAULT_REBUILD_RATE: u64 = 200_000_000;
/// The smallest budget accepted (1 MB/s); lower values are raised to it.
pub const MIN_REBUILD_RATE: u64 = 1_000_000;

const NANOS: i128 = 1_000_000_000;

/// A monotonic time source: time elapsed since a fixed origin.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> Duration;
}

/// The real clock.
pub struct MonotonicClock(Instant);

impl Default for MonotonicClock {
    fn default() -> Self {
        MonotonicClock(Instant::now())
    }
}

impl Clock for MonotonicClock {
    fn now(&self) -> Duration {
        self.0.elapsed()
    }
}

/// A token bucket of bytes, shared by everyone it throttles.
pub struct TokenBucket<C: Clock = MonotonicClock> {
    /// Bytes per second; changed at run time by the cluster's move budget.
    rate: std::sync::atomic::AtomicU64,
    burst: u64,
    clock: C,
    state: Mutex<State>,
}

struct State {
    /// Bytes available × 10^9 (negative: debt).
    tokens: i128,
    /// When `tokens` was last brought up to date.
    at: Duration,
    /// Bytes taken so far.
    granted: u64,
}

impl TokenBucket<MonotonicClock> {
    /// A bucket of `rate` bytes per second (at least [`MIN_REBUILD_RATE`])
    /// holding up to a tenth of a second's worth.
    pub fn new(rate: u64) -> Self {
        let rate = rate.max(MIN_REBUILD_RATE);
        Self::with_clock(rate, rate / 10, MonotonicClock::default())
    }
}

impl<C: Clock> TokenBucket<C> {
    /// A full bucket of `burst` bytes refilling at `rate` (> 0) bytes per
    /// second, on `clock`.
    pub fn with_clock(rate: u64, burst: u64, clock: C) -> Self {
        let rate = rate.max(1);
        let at = clock.now();
        let rate = std::sync::atomic::AtomicU64::new(rate);
        TokenBucket { rate, burst, clock, state: Mutex::new(State { tokens: burst as i128 * NANOS, at, granted: 0 }) }
    }

    /// Bytes per second.
    pub fn rate(&self) -> u64 {
        self.rate.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Change the rate (at least 1 byte/s) from now on.
    pub fn set_rate(&self, rate: u64) {
        self.rate.store(rate.max(1), std::sync::atomic::Ordering::Relaxed);
    }

    /// Take `bytes`; returns how long the caller must wait before using
    /// (or after having used) them: zero while the bucket has them.
    pub fn reserve(&self, bytes: u64) -> Duration {
        let now = self.clock.now();
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let elapsed = now.saturating_sub(st.at).as_nanos() as i128;
        st.at = st.at.max(now);
        let rate = self.rate() as i128;
        st.tokens = (st.tokens + elapsed * rate).min(self.burst as i128 * NANOS);
        st.tokens -= bytes as i128 * NANOS;
        st.granted = st.granted.saturating_add(bytes);
        if st.tokens >= 0 {
            return Duration::ZERO;
        }
        // Round up: never let a caller through before its debt is paid.
        let wait = (-st.tokens + rate - 1) / rate;
        Duration::from_nanos(u64::try_from(wait).unwrap_or(u64::MAX))
    }

    /// Take `bytes` and wait until the budget allows them.
    pub async fn acquire(&self, bytes: u64) {
        let wait = self.reserve(bytes);
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }

    /// Bytes taken so far.
    pub fn granted(&self) -> u64 {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).granted
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;

    use super::*;

    /// Simulated time, moved by the test.
    #[derive(Clone, Default)]
    struct ManualClock(Arc<AtomicU64>);

    impl ManualClock {
        fn set(&self, t: Duration) {
            self.0.store(t.as_nanos() as u64, Ordering::SeqCst);
        }
    }

    impl Clock for ManualClock {
        fn now(&self) -> Duration {
            Duration::from_nanos(self.0.load(Ordering::SeqCst))
        }
    }

    /// Tasks that each move `chunk` bytes, take them from `bucket_of(task)`
    /// and go again once allowed, on simulated time, until `end`. Returns
    /// every grant as (instant the bytes are allowed, bytes), in time order.
    fn simulate<C: Clock>(
        clock: &ManualClock,
        tasks: usize,
        chunk: u64,
        end: Duration,
        bucket_of: impl Fn(usize) -> Arc<TokenBucket<C>>,
    ) -> Vec<(Duration, u64)> {
        let mut ready = vec![Duration::ZERO; tasks];
        let mut grants = Vec::new();
        loop {
            // The task whose turn comes first asks next (ties: lowest id).
            let (task, &at) = ready.iter().enumerate().min_by_key(|(i, t)| (**t, *i)).expect("tasks");
            if at >= end {
                break;
            }
            clock.set(at);
            let allowed = at + bucket_of(task).reserve(chunk);
            grants.push((allowed, chunk));
            ready[task] = allowed;
        }
        grants.sort();
        grants
    }

    /// The first grant, if any, that breaks `bytes by t ≤ burst + rate × t`.
    fn over_budget(grants: &[(Duration, u64)], rate: u64, burst: u64) -> Option<(Duration, u64)> {
        let mut total = 0u128;
        for &(t, n) in grants {
            total += n as u128;
            let budget = burst as u128 + rate as u128 * t.as_nanos() / NANOS as u128;
            if total > budget {
                return Some((t, total as u64));
            }
        }
        None
    }

    #[test]
    fn two_concurrent_rebuild_tasks_together_stay_within_one_servers_budget() {
        let (rate, burst, chunk) = (10_000_000, 1_000_000, 262_144);
        let clock = ManualClock::default();
        let shared = Arc::new(TokenBucket::with_clock(rate, burst, clock.clone()));
        let end = Duration::from_secs(10);
        let grants = simulate(&clock, 2, chunk, end, |_| shared.clone());
        assert_eq!(over_budget(&grants, rate, burst), None, "two tasks together exceeded the one budget");
        // And the budget is used, not starved: all but the two requests in
        // flight at the end got through.
        let by_end: u64 = grants.iter().filter(|(t, _)| *t <= end).map(|(_, n)| n).sum();
        assert!(by_end + 2 * chunk >= burst + rate * 10, "only {by_end} bytes in 10 s at {rate} B/s");
        assert_eq!(shared.granted(), grants.iter().map(|(_, n)| n).sum::<u64>());
    }

    #[test]
    fn a_bucket_per_task_would_let_twice_the_budget_through() {
        // The check above has teeth: the old design (each task throttled on
        // its own) breaks it.
        let (rate, burst, chunk) = (10_000_000, 1_000_000, 262_144);
        let clock = ManualClock::default();
        let per_task: Vec<_> = (0..2).map(|_| Arc::new(TokenBucket::with_clock(rate, burst, clock.clone()))).collect();
        let grants = simulate(&clock, 2, chunk, Duration::from_secs(10), |i| per_task[i].clone());
        assert!(over_budget(&grants, rate, burst).is_some());
    }

    #[test]
    fn a_full_bucket_lets_its_burst_through_at_once_then_paces() {
        let clock = ManualClock::default();
        let b = TokenBucket::with_clock(1_000_000, 500_000, clock.clone());
        assert_eq!(b.reserve(500_000), Duration::ZERO);
        assert_eq!(b.reserve(250_000), Duration::from_millis(250));
        // Another caller queues behind the first one's debt.
        assert_eq!(b.reserve(250_000), Duration::from_millis(500));
        clock.set(Duration::from_secs(10));
        // Refilled, but never above the burst.
        assert_eq!(b.reserve(500_000), Duration::ZERO);
        assert_eq!(b.reserve(1), Duration::from_nanos(1000));
    }

    #[test]
    fn the_default_rate_is_one_value_in_one_unit() {
        assert_eq!(DEFAULT_REBUILD_RATE, 200 * 1_000_000, "200 MB/s, MB = 10^6 bytes");
        assert_eq!(TokenBucket::new(0).rate(), MIN_REBUILD_RATE);
    }
}
