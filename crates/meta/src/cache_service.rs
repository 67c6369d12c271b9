//! The metadata cache's requests on the leader (docs/metadata-cache.md):
//! grants on answers to Lookup, GetAttr, ReadDir, ListXattr and GetChunks
//! (and on a change's own
//! answer to its writer), the `CacheWatch` long poll, and every change
//! waiting for its recalls before it is acknowledged. The bookkeeping is
//! `cache_leases.rs`.

use std::time::{Duration, Instant};

use shardline_proto::v1 as pb;
use shardline_proto::v1::meta_request::Body;
use shardline_proto::v1::meta_response::Body as RBody;
use shardline_types::ErrorCode;

use super::MetaService;
use crate::cache_leases::{CacheLeases, WatchPoll};
use crate::namespace::OpError;
use crate::wire::{error_response, ok};

/// What a new leader adds to the lease before it acknowledges a change:
/// room for the clients' and its own clocks running at slightly different rates.
fn margin(lease: Duration) -> Duration {
    lease / 8
}

/// A change's sender and the state of the sessions before it was proposed.
pub(super) struct ChangeStart<'a> {
    client: u64,
    cache: bool,
    seen: u64,
    stint: Option<Instant>,
    _busy: Option<Busy<'a>>,
}

impl ChangeStart<'_> {
    /// The inodes the change may touch (marked busy while it is under way).
    pub(super) fn inos(&self) -> Vec<u64> {
        self._busy.as_ref().map(|b| b.inos.clone()).unwrap_or_default()
    }
}

/// Inodes marked busy for a change, cleared when it is dropped (the change
/// answered, or its handler gone).
struct Busy<'a> {
    leases: &'a CacheLeases,
    inos: Vec<u64>,
}

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.leases.clear_busy(&self.inos);
    }
}

/// The inodes whose state a read reveals (none: not a namespace read).
pub(super) fn read_inos(body: &Body) -> Vec<u64> {
    match body {
        Body::Lookup(l) => vec![l.parent],
        Body::Getattr(g) => vec![g.ino],
        Body::Readdir(r) => vec![r.ino],
        Body::GetChunks(g) => vec![g.ino],
        Body::Readlink(r) => vec![r.ino],
        Body::GetXattr(x) => vec![x.ino],
        Body::ListXattr(x) => vec![x.ino],
        _ => Vec::new(),
    }
}

impl MetaService {
    /// The cache sessions, checked against the current leadership stint.
    fn leases(&self) -> Option<&CacheLeases> {
        let leases = self.leases.as_ref()?;
        leases.check_stint(*self.shared.leader_since.lock().unwrap_or_else(|e| e.into_inner()));
        Some(leases)
    }

    pub(super) fn cache_counter(&self) -> u64 {
        self.leases().map_or(0, CacheLeases::counter)
    }

    /// What [`MetaService::after_change`] needs from before a change is
    /// proposed; marks what it may touch busy until its recalls are over.
    pub(super) fn change_start(&self, req: &pb::MetaRequest) -> ChangeStart<'_> {
        let busy = self.leases().map(|leases| {
            let inos = self.view.sm().touched_by(req.body.as_ref());
            leases.mark_busy(&inos);
            Busy { leases, inos }
        });
        ChangeStart {
            client: req.client_id,
            cache: req.cache,
            seen: self.cache_counter(),
            stint: *self.shared.leader_since.lock().unwrap_or_else(|e| e.into_inner()),
            _busy: busy,
        }
    }

    /// Before a read of `inos` is answered: wait while a change that may
    /// touch them is under way (it may be visible here already while other
    /// clients still serve the old value), and while a new leader's
    /// predecessor's grants may live.
    pub(super) async fn settle(&self, inos: &[u64]) {
        let Some(leases) = self.leases().filter(|_| !inos.is_empty()) else { return };
        let full = leases.lease() + margin(leases.lease());
        if let Some(wait) = self.leader_for().map(|led| full.saturating_sub(led)).filter(|w| !w.is_zero()) {
            tokio::time::sleep(wait).await;
        }
        let deadline = Instant::now() + 2 * full;
        loop {
            let acked = leases.acked();
            tokio::pin!(acked);
            acked.as_mut().enable();
            if !leases.is_busy(inos) || Instant::now() >= deadline {
                return;
            }
            let _ = tokio::time::timeout_at(deadline.into(), acked).await;
        }
    }

    fn lease_ms(leases: &CacheLeases) -> u32 {
        leases.lease().as_millis().min(u32::MAX as u128) as u32
    }

    /// Record that `client`'s session holds `inos` (read after the counter
    /// was `seen`) and say so in `resp`; only while the read lease holds.
    fn grant(&self, client: u64, inos: &[u64], (seen, own): (u64, Option<u64>), resp: &mut pb::MetaResponse) {
        let Some(leases) = self.leases() else { return };
        if !self.view.allowed() {
            return;
        }
        if let Some(seq) = leases.grant(client, inos, seen, own, Instant::now()) {
            resp.grant_seq = seq;
            resp.lease_ms = Self::lease_ms(leases);
        }
    }

    /// A Lookup, GetAttr, ReadDir, ListXattr or GetChunks from a client
    /// with a cache session:
    /// answered as any query, then granted.
    pub(super) async fn cached_query(&self, req: pb::MetaRequest) -> pb::MetaResponse {
        let (client, body) = (req.client_id, req.body.clone());
        let seen = self.cache_counter();
        let mut resp = self.query(req).await;
        let not_found = resp.error.as_ref().is_some_and(|e| e.code == pb::ErrorCode::NotFound as i32);
        let inos: Vec<u64> = match (&body, &resp.body) {
            (Some(Body::Lookup(l)), Some(RBody::Attr(a))) if resp.error.is_none() => vec![l.parent, a.ino],
            // A name known absent: held through its directory.
            (Some(Body::Lookup(l)), _) if not_found => vec![l.parent],
            (Some(Body::Getattr(g)), Some(RBody::Attr(_))) if resp.error.is_none() => vec![g.ino],
            (Some(Body::ListXattr(x)), Some(RBody::XattrNames(_))) if resp.error.is_none() => vec![x.ino],
            (Some(Body::GetChunks(g)), Some(RBody::Chunks(_))) if resp.error.is_none() => vec![g.ino],
            (Some(Body::Readdir(r)), Some(RBody::Entries(page))) if resp.error.is_none() && r.with_attrs => {
                std::iter::once(r.ino).chain(page.entries.iter().map(|e| e.ino)).collect()
            }
            _ => return resp,
        };
        self.grant(client, &inos, (seen, None), &mut resp);
        resp
    }

    /// After a change applied: recall other sessions' copies of what it
    /// touched and wait for them (never for more than the lease), hold the
    /// answer until a new leader's lease has passed, then grant the writer
    /// what its answer says.
    pub(super) async fn after_change(&self, start: ChangeStart<'_>, resp: &mut pb::MetaResponse) {
        let ChangeStart { client, cache, seen, stint, _busy } = start;
        let Some(leases) = self.leases().filter(|_| !resp.touched.is_empty()) else { return };
        let writer = cache.then_some(client);
        let (waits, counter) = leases.recall(&resp.touched, writer, Instant::now());
        loop {
            let acked = leases.acked();
            tokio::pin!(acked);
            acked.as_mut().enable();
            let left = leases.outstanding(&waits, Instant::now());
            let Some(deadline) = left.iter().map(|w| w.deadline).min() else { break };
            let _ = tokio::time::timeout_at(deadline.into(), acked).await;
        }
        let full = leases.lease() + margin(leases.lease());
        // Leadership changed while the change was under way: this stint's
        // sessions are forgotten, but their clients may serve for a lease.
        if *self.shared.leader_since.lock().unwrap_or_else(|e| e.into_inner()) != stint {
            tokio::time::sleep(full).await;
        }
        // Grants of an earlier leader live at most a lease past its end,
        // which came before this leader began (lease.rs).
        if let Some(wait) = self.leader_for().map(|led| full.saturating_sub(led)).filter(|w| !w.is_zero()) {
            tokio::time::sleep(wait).await;
        }
        if resp.error.is_some() || !cache {
            return;
        }
        let answered = match resp.body.as_ref() {
            Some(RBody::Attr(a)) => Some(a.ino),
            Some(RBody::AttrReleased(r)) => r.attr.as_ref().map(|a| a.ino),
            Some(RBody::Released(r)) => r.attr.as_ref().map(|a| a.ino),
            _ => None,
        };
        let inos: Vec<u64> =
            resp.touched.iter().copied().chain(resp.dirs.iter().map(|d| d.ino)).chain(answered).collect();
        // Granted only if no other change touched these inodes since this
        // one began (its answer is then exactly their state now).
        self.grant(client, &inos, (seen, Some(counter)), resp);
        if resp.lease_ms == 0 {
            // Not granted: the session's seq still orders this answer after
            // every earlier one, so the client keeps no older answer of
            // these inodes that arrives after it.
            resp.grant_seq = leases.seq_of(client).unwrap_or(0);
        }
    }

    /// The recall channel's long poll.
    pub(super) async fn cache_watch(&self, client: u64, w: &pb::CacheWatch) -> pb::MetaResponse {
        let Some(leases) = self.leases() else {
            return ok(RBody::CacheRecall(pb::CacheRecall::default()));
        };
        let lease_ms = Self::lease_ms(leases);
        let lost = || ok(RBody::CacheRecall(pb::CacheRecall { lost: true, lease_ms, ..Default::default() }));
        if !self.view.allowed() {
            return error_response(&OpError::new(ErrorCode::Unavailable, "not the leader, or its read lease lapsed"));
        }
        let now = Instant::now();
        let (wake, acked) = if w.open {
            (leases.open(client, now), 0)
        } else {
            match leases.renew(client, w.acked_seq, now) {
                Some(wake) => (wake, w.acked_seq),
                None => return lost(),
            }
        };
        let until = now + leases.lease() / 3;
        let (seq, inos) = loop {
            let woken = wake.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            match leases.poll(client, acked) {
                WatchPoll::Lost => return lost(),
                WatchPoll::Recalls(seq, inos) => break (seq, inos),
                // A session just opened is answered at once: its client
                // caches from then on (a mount's first listing, say).
                WatchPoll::Idle(seq) if w.open || Instant::now() >= until => break (seq, Vec::new()),
                WatchPoll::Idle(_) => {
                    let _ = tokio::time::timeout_at(until.into(), woken).await;
                }
            }
        };
        // An answer renews the client's cache: only from a leader whose
        // read lease still holds, in the stint the session belongs to.
        if !self.view.allowed() || matches!(self.leases().map(|l| l.poll(client, acked)), Some(WatchPoll::Lost)) {
            return error_response(&OpError::new(ErrorCode::Unavailable, "leadership changed during the watch"));
        }
        ok(RBody::CacheRecall(pb::CacheRecall { seq, inos, lease_ms, lost: false }))
    }
}
