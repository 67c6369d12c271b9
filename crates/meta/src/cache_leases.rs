//! Metadata cache sessions on the leader: who caches which inodes, and the
//! recalls a change must see acknowledged (or outlived) before it is
//! acknowledged itself. Pure logic over an explicit clock; the wiring is in
//! `cache_service.rs`, the guarantee and its argument in
//! docs/metadata-cache.md.
//!
//! - A session (a client's id) lives while its watches keep arriving: each
//!   renews it to arrival + lease. Held only in the leader's memory, for one
//!   leadership stint ([`CacheLeases::check_stint`]).
//! - A grant records that a session holds inodes. It is taken only if no
//!   recall of any of them happened since the answer was read
//!   ([`CacheLeases::counter`] before the read, [`CacheLeases::grant`]
//!   after; the last [`RECENT`] recalls are remembered, an answer older
//!   than those is refused), so a recall can never slip between reading a
//!   value and recording that it is held.
//! - A recall queues, per holding session, a new sequence number with the
//!   inodes and drops those holdings. The change waits until each session
//!   acknowledged that number, or is gone, or the lease has passed since
//!   the recall: a client serves its cache only until the send time of its
//!   last answered watch + lease (less a margin), and every watch answered
//!   after the recall carries it, so after that no client serves the old value.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use crate::session_set::SessionSet;

/// Recalls remembered for [`CacheLeases::grant`]'s check.
pub const RECENT: usize = 4096;

struct Session {
    /// Distinguishes a session from an earlier one under the same id.
    incarnation: u64,
    expiry: Instant,
    /// The newest recall queued.
    seq: u64,
    acked: u64,
    /// Recalls not yet acknowledged: (seq, inode).
    pending: Vec<(u64, u64)>,
    held: HashSet<u64>,
    /// Wakes the session's watch when a recall is queued.
    wake: Arc<Notify>,
}

#[derive(Default)]
struct State {
    sessions: HashMap<u64, Session>,
    holders: HashMap<u64, SessionSet>,
    /// Grows with every recall (see the module comment).
    counter: u64,
    /// The last [`RECENT`] recalls: (counter after it, inodes).
    recent: VecDeque<(u64, Vec<u64>)>,
    incarnations: u64,
    /// Inodes a change under way may touch, with how many changes: reads
    /// of them are answered only once those changes' recalls are over.
    busy: HashMap<u64, usize>,
    /// The leadership stint the sessions belong to, and how many stints
    /// there were.
    stint: Option<Instant>,
    stints: u64,
}

/// What a change waits for: session `id` (incarnation `incarnation`)
/// acknowledging `seq`, until `deadline`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecallWait {
    pub id: u64,
    incarnation: u64,
    stint: u64,
    pub seq: u64,
    pub deadline: Instant,
}

/// A watch's view of its session.
#[derive(Debug, PartialEq, Eq)]
pub enum WatchPoll {
    /// Unknown or expired: the client must drop its cache and reopen.
    Lost,
    /// Recalls newer than the acknowledged number: the newest seq and the inodes.
    Recalls(u64, Vec<u64>),
    /// Nothing pending (the session's newest seq).
    Idle(u64),
}

pub struct CacheLeases {
    lease: Duration,
    state: Mutex<State>,
    /// Woken whenever a session acknowledges or goes.
    acks: Notify,
}

impl CacheLeases {
    pub fn new(lease: Duration) -> Self {
        CacheLeases { lease, state: Mutex::new(State::default()), acks: Notify::new() }
    }

    pub fn lease(&self) -> Duration {
        self.lease
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Forget every session when leadership is not the stint they were
    /// made in (`leader_since`: when this server became leader, None: it is not).
    pub fn check_stint(&self, leader_since: Option<Instant>) {
        let mut s = self.lock();
        if s.stint != leader_since {
            let (counter, incarnations, stints) = (s.counter + 1, s.incarnations, s.stints + 1);
            let busy = std::mem::take(&mut s.busy);
            *s = State { counter, incarnations, stint: leader_since, stints, busy, ..State::default() };
            drop(s);
            self.acks.notify_waiters();
        }
    }

    /// Start a fresh session `id` (replacing an earlier one).
    pub fn open(&self, id: u64, now: Instant) -> Arc<Notify> {
        let mut s = self.lock();
        remove_session(&mut s, id);
        // Sessions of clients gone for good (unmounted) are forgotten here
        // too, not only at the next change: a read-only cluster would
        // otherwise keep their holdings forever.
        remove_expired(&mut s, now);
        s.incarnations += 1;
        let wake = Arc::new(Notify::new());
        let session = Session {
            incarnation: s.incarnations,
            expiry: now + self.lease,
            seq: 0,
            acked: 0,
            pending: Vec::new(),
            held: HashSet::new(),
            wake: wake.clone(),
        };
        s.sessions.insert(id, session);
        drop(s);
        self.acks.notify_waiters();
        wake
    }

    /// A watch arrived: renew the session and take its acknowledgement.
    /// None: the session is unknown or expired (and is now forgotten).
    pub fn renew(&self, id: u64, acked: u64, now: Instant) -> Option<Arc<Notify>> {
        let mut s = self.lock();
        let live = s.sessions.get(&id).is_some_and(|x| x.expiry > now);
        if !live {
            remove_session(&mut s, id);
            drop(s);
            self.acks.notify_waiters();
            return None;
        }
        let x = s.sessions.get_mut(&id)?;
        x.expiry = now + self.lease;
        x.acked = x.acked.max(acked.min(x.seq));
        let done = x.acked;
        x.pending.retain(|(seq, _)| *seq > done);
        let wake = x.wake.clone();
        drop(s);
        self.acks.notify_waiters();
        Some(wake)
    }

    /// What a watch on session `id` that acknowledged `acked` is told now.
    pub fn poll(&self, id: u64, acked: u64) -> WatchPoll {
        let s = self.lock();
        let Some(x) = s.sessions.get(&id) else { return WatchPoll::Lost };
        let mut inos: Vec<u64> = x.pending.iter().filter(|(seq, _)| *seq > acked).map(|(_, i)| *i).collect();
        if inos.is_empty() {
            return WatchPoll::Idle(x.seq);
        }
        inos.sort_unstable();
        inos.dedup();
        WatchPoll::Recalls(x.seq, inos)
    }

    /// The recall counter, read before a read whose answer may be granted.
    pub fn counter(&self) -> u64 {
        self.lock().counter
    }

    /// Record that session `id` holds `inos` as read after [`counter`]
    /// returned `seen`: the session's recall seq if granted. `own`: the
    /// recall of the session's own change whose answer this is (not
    /// counted against it).
    ///
    /// [`counter`]: CacheLeases::counter
    pub fn grant(&self, id: u64, inos: &[u64], seen: u64, own: Option<u64>, now: Instant) -> Option<u64> {
        let mut s = self.lock();
        // Nor while a recall of one of them is pending for the session: an
        // own change's answer would be kept beside what that recall drops.
        let stale = |x: &Session| x.expiry <= now || x.pending.iter().any(|(_, i)| inos.contains(i));
        if !untouched_since(&s, seen, own, inos) || s.sessions.get(&id).is_none_or(stale) {
            return None;
        }
        for &ino in inos {
            s.holders.entry(ino).or_default().insert(id);
        }
        let x = s.sessions.get_mut(&id)?;
        x.held.extend(inos.iter().copied());
        Some(x.seq)
    }

    /// Session `id`'s newest seq, if it has a session.
    pub fn seq_of(&self, id: u64) -> Option<u64> {
        self.lock().sessions.get(&id).map(|x| x.seq)
    }

    /// A change touched `inos`: queue a recall to every other session
    /// holding any of them, and return what the change must wait for and
    /// the counter after this recall.
    pub fn recall(&self, inos: &[u64], except: Option<u64>, now: Instant) -> (Vec<RecallWait>, u64) {
        let mut s = self.lock();
        remove_expired(&mut s, now);
        if inos.is_empty() {
            return (Vec::new(), s.counter);
        }
        s.counter += 1;
        let counter = s.counter;
        s.recent.push_back((counter, inos.to_vec()));
        if s.recent.len() > RECENT {
            s.recent.pop_front();
        }
        let mut hit: HashMap<u64, Vec<u64>> = HashMap::new();
        // A session with an earlier recall of one of these still pending
        // may serve its copy until it acknowledges: this change waits for
        // it too (it no longer holds the inode, so it is not recalled below).
        for (id, x) in &s.sessions {
            if Some(*id) != except {
                let pending: Vec<u64> = x.pending.iter().map(|(_, i)| *i).filter(|i| inos.contains(i)).collect();
                if !pending.is_empty() {
                    hit.insert(*id, pending);
                }
            }
        }
        for &ino in inos {
            let Some(holders) = s.holders.get_mut(&ino) else { continue };
            holders.retain(|id| {
                Some(id) == except || {
                    hit.entry(id).or_default().push(ino);
                    false
                }
            });
            if holders.is_empty() {
                s.holders.remove(&ino);
            }
        }
        // The writer's own session moves on too (nothing to recall: it
        // updates its cache from the answer), so an answer to an earlier
        // change of its own, arriving late, is recognisably older.
        if let Some(x) = except.and_then(|id| s.sessions.get_mut(&id)) {
            x.seq += 1;
        }
        let mut waits = Vec::new();
        for (id, inos) in hit {
            let Some(x) = s.sessions.get_mut(&id) else { continue };
            x.seq += 1;
            for ino in inos {
                x.held.remove(&ino);
                x.pending.push((x.seq, ino));
            }
            x.wake.notify_one();
            let stint = s.stints;
            let Some(x) = s.sessions.get(&id) else { continue };
            waits.push(RecallWait { id, incarnation: x.incarnation, stint, seq: x.seq, deadline: now + self.lease });
        }
        (waits, s.counter)
    }

    /// The waits not yet over at `now`: acknowledged, session replaced or
    /// expired, or deadline passed all end one. Sessions forgotten because
    /// leadership changed are waited out to the deadline: their clients
    /// may still serve what they cached.
    pub fn outstanding(&self, waits: &[RecallWait], now: Instant) -> Vec<RecallWait> {
        let s = self.lock();
        waits
            .iter()
            .filter(|w| {
                now < w.deadline
                    && (w.stint != s.stints
                        || s.sessions.get(&w.id).is_some_and(|x| x.incarnation == w.incarnation && x.acked < w.seq))
            })
            .cloned()
            .collect()
    }

    /// Resolves when some session acknowledges or goes. Create it before
    /// checking [`CacheLeases::outstanding`] so no wake-up is missed.
    pub fn acked(&self) -> tokio::sync::futures::Notified<'_> {
        self.acks.notified()
    }

    /// A change that may touch `inos` is about to be proposed.
    pub fn mark_busy(&self, inos: &[u64]) {
        let mut s = self.lock();
        for &ino in inos {
            *s.busy.entry(ino).or_default() += 1;
        }
    }

    /// That change's recalls are over (or it failed).
    pub fn clear_busy(&self, inos: &[u64]) {
        let mut s = self.lock();
        for ino in inos {
            if let Some(n) = s.busy.get_mut(ino) {
                *n -= 1;
                if *n == 0 {
                    s.busy.remove(ino);
                }
            }
        }
        drop(s);
        self.acks.notify_waiters();
    }

    /// Whether a change under way may touch any of `inos`.
    pub fn is_busy(&self, inos: &[u64]) -> bool {
        let s = self.lock();
        inos.iter().any(|i| s.busy.contains_key(i))
    }

    /// Sessions held now (tests, metrics).
    pub fn sessions(&self) -> usize {
        self.lock().sessions.len()
    }
}

/// Whether no recall after counter `seen` (but `own`) named any of `inos`;
/// false when some of those recalls are no longer remembered.
fn untouched_since(s: &State, seen: u64, own: Option<u64>, inos: &[u64]) -> bool {
    if s.counter == seen {
        return true;
    }
    if s.recent.front().is_none_or(|(c, _)| *c > seen + 1) {
        return false;
    }
    let later = s.recent.iter().rev().take_while(|(c, _)| *c > seen);
    later.filter(|(c, _)| Some(*c) != own).all(|(_, touched)| !touched.iter().any(|t| inos.contains(t)))
}

fn remove_expired(s: &mut State, now: Instant) {
    let expired: Vec<u64> = s.sessions.iter().filter(|(_, x)| x.expiry <= now).map(|(id, _)| *id).collect();
    for id in expired {
        remove_session(s, id);
    }
}

fn remove_session(s: &mut State, id: u64) {
    let Some(x) = s.sessions.remove(&id) else { return };
    for ino in x.held {
        if let Some(h) = s.holders.get_mut(&ino) {
            h.remove(id);
            if h.is_empty() {
                s.holders.remove(&ino);
            }
        }
    }
}

#[cfg(test)]
#[path = "cache_leases_tests.rs"]
mod tests;
