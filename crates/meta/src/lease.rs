//! The leader's read lease: linearizable reads without a round to the
//! followers while the lease holds.
//!
//! Why it is safe. A ReadIndex round the leader starts at instant `S` ends
//! when a quorum has answered heartbeats sent after `S`. Each of those
//! followers reset its election clock on receipt, and with `check_quorum`
//! raft-rs makes a follower refuse every vote (and pre-vote) until a whole
//! election timeout of its own ticks has passed since it last heard from
//! the leader. Ticks never bunch (the loop drops missed ones), so that is at
//! least `(election_tick - 1) * tick` after `S`. Any new leader needs a vote
//! from that quorum, so none can exist, and no write can commit elsewhere,
//! before `S + (election_tick - 1) * tick`. The lease ends well before that
//! (a quarter is left for clock-rate drift), measured on the leader's
//! monotonic clock from `S`.
//!
//! Two more rules keep the argument whole:
//! - a server that restarts forgets when it last heard from a leader, so it
//!   casts no vote for one election timeout after it starts
//!   ([`ReadLease::may_vote`]);
//! - the lease ends when leadership or membership changes.
//!
//! A read under the lease is answered once the state machine has applied
//! the commit index as it was when the read arrived, and only after the
//! leader has committed an entry of its own term (so that index covers every
//! write acknowledged by an earlier leader).

use std::time::{Duration, Instant};

pub struct ReadLease {
    length: Duration,
    until: Option<Instant>,
    votes_from: Instant,
}

impl ReadLease {
    /// `tick` is the Raft tick; `election_tick` the election timeout in ticks.
    pub fn new(tick: Duration, election_tick: usize, now: Instant) -> Self {
        let safe = tick * (election_tick.saturating_sub(1) as u32);
        ReadLease { length: safe * 3 / 4, until: None, votes_from: now + tick * election_tick as u32 }
    }

    /// A quorum answered heartbeats sent after `round_started`.
    pub fn confirmed(&mut self, round_started: Instant) {
        let until = round_started + self.length;
        if self.until.is_none_or(|u| u < until) {
            self.until = Some(until);
        }
    }

    /// Leadership or membership changed.
    pub fn end(&mut self) {
        self.until = None;
    }

    /// When the lease ends (None: no lease).
    pub fn until(&self) -> Option<Instant> {
        self.until
    }

    pub fn holds(&self, now: Instant) -> bool {
        self.until.is_some_and(|u| now < u)
    }

    /// Whether the leader should start a round now to keep the lease from
    /// lapsing: less than half of it left, and no round started for that
    /// purpose (`last_round`) in the last quarter of its length.
    pub fn wants_refresh(&self, now: Instant, last_round: Option<Instant>) -> bool {
        let low = self.until.is_none_or(|u| u < now + self.length / 2);
        low && last_round.is_none_or(|r| now >= r + self.length / 4)
    }

    /// Whether this server may answer vote requests yet.
    pub fn may_vote(&self, now: Instant) -> bool {
        now >= self.votes_from
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TICK: Duration = Duration::from_millis(100);

    #[test]
    fn holds_for_three_quarters_of_the_safe_time_after_the_round_started() {
        let t0 = Instant::now();
        let mut l = ReadLease::new(TICK, 10, t0);
        assert!(!l.holds(t0), "no lease before a round confirms one");
        l.confirmed(t0);
        assert!(l.holds(t0 + Duration::from_millis(674)));
        assert!(!l.holds(t0 + Duration::from_millis(675)), "9 ticks × 3/4");
        // An older round that finishes late does not shorten or extend it wrongly.
        l.confirmed(t0 + Duration::from_millis(500));
        l.confirmed(t0 + Duration::from_millis(100));
        assert!(l.holds(t0 + Duration::from_millis(1174)));
        assert!(!l.holds(t0 + Duration::from_millis(1175)));
        l.end();
        assert!(!l.holds(t0 + Duration::from_millis(600)));
    }

    #[test]
    fn a_refresh_is_wanted_once_half_the_lease_is_left_and_not_more_often_than_a_quarter() {
        let t0 = Instant::now();
        let mut l = ReadLease::new(TICK, 10, t0);
        assert!(l.wants_refresh(t0, None), "no lease yet");
        l.confirmed(t0);
        assert!(!l.wants_refresh(t0 + Duration::from_millis(337), None), "more than half left");
        assert!(l.wants_refresh(t0 + Duration::from_millis(338), None));
        let r = t0 + Duration::from_millis(338);
        assert!(!l.wants_refresh(r + Duration::from_millis(168), Some(r)), "a round just started");
        assert!(l.wants_refresh(r + Duration::from_millis(169), Some(r)), "that round did not renew it");
    }

    #[test]
    fn a_fresh_server_casts_no_vote_for_one_election_timeout() {
        let t0 = Instant::now();
        let l = ReadLease::new(TICK, 10, t0);
        assert!(!l.may_vote(t0 + Duration::from_millis(999)));
        assert!(l.may_vote(t0 + Duration::from_millis(1000)));
    }
}
