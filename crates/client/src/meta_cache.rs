//! The coherent metadata cache (docs/metadata-cache.md): attributes by
//! inode and entries by (directory, name), negative ones included, and
//! whole chunk lists (`meta_cache_chunks.rs`), filled
//! only from answers the metadata leader granted under this client's cache
//! session, dropped when the leader recalls them, and served only while the
//! session's lease holds on this client's own clock.
//!
//! The rules that keep it from serving a value older than a change that
//! completed before the read began:
//! - it serves nothing past `valid_until`: the send time of the last watch
//!   whose answer arrived, plus the lease, less a margin
//!   (`meta_cache_watch.rs` runs the watches);
//! - a read's answer is kept only if its grant seq is at least `floor`, the
//!   newest recall processed (or own change answered), so a read answered
//!   before a recall, arriving after it, is used once and not kept;
//! - an own change's answer is kept only if nothing newer was processed of
//!   the inodes it names (`SeqByIno`): own changes to other inodes,
//!   answered in another order by concurrent threads, do not void it;
//! - an answer is kept only if no own change was answered, and no session
//!   opened or lost, while it was in flight (`epoch`): the leader does not
//!   recall a writer's own copies;
//! - entries and attributes are keyed by the caller too: answers depend on
//!   who asks.

use foldhash::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use shardline_proto::v1 as pb;

use crate::cached_attr::CachedAttr;
use crate::per_caller::{set_in, PerCaller};

/// Entries and attributes kept at most; past it, everything is dropped.
const MAX_ITEMS: usize = 1 << 20;

/// Inodes whose newest processed seq is tracked one by one; past it, the
/// highest is kept for all (as one floor).
const MAX_TRACKED: usize = 1 << 16;

/// By inode, the newest session seq of a recall or own change's answer
/// processed that named it: an own change's answer granted below it is
/// older than what this client already learned of that inode.
#[derive(Default)]
struct SeqByIno {
    seqs: HashMap<u64, u64>,
    /// The seq of every inode not in `seqs`.
    base: u64,
}

impl SeqByIno {
    fn newest(&self, inos: impl IntoIterator<Item = u64>) -> u64 {
        inos.into_iter().map(|i| self.seqs.get(&i).copied().unwrap_or(self.base)).max().unwrap_or(self.base)
    }

    fn note(&mut self, inos: impl IntoIterator<Item = u64>, seq: u64) {
        for i in inos {
            let s = self.seqs.entry(i).or_insert(self.base);
            *s = (*s).max(seq);
        }
        if self.seqs.len() > MAX_TRACKED {
            self.base = self.seqs.values().copied().max().unwrap_or(0).max(self.base);
            self.seqs.clear();
        }
    }
}

/// Handed out before a read is sent; needed to keep its answer.
#[derive(Debug, Clone, Copy)]
pub struct Ticket {
    epoch: u64,
}

/// What the mount may tell the kernel about an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coverage {
    /// Caching is off (here or on the cluster): the kernel's usual TTLs.
    Inactive,
    /// Not under a grant: the kernel must not cache it.
    Uncovered,
    /// Under a grant until then: recalls reach the kernel before that.
    Until(Instant),
}

impl Coverage {
    /// How long the kernel may cache it (`inactive`: the usual TTL).
    pub fn ttl(self, inactive: Duration) -> Duration {
        match self {
            Coverage::Inactive => inactive,
            Coverage::Uncovered => Duration::ZERO,
            Coverage::Until(t) => t.saturating_duration_since(Instant::now()),
        }
    }
}

type Caller = u64;
/// name → caller → the inode, or None: known absent.
type DirEntries = HashMap<Vec<u8>, PerCaller<Option<u64>>>;

#[derive(Default)]
struct State {
    /// Caching is off: in this client's config, or on the cluster.
    off: bool,
    /// A session is open.
    open: bool,
    epoch: u64,
    valid_until: Option<Instant>,
    /// Recalls processed up to here (what the next watch acknowledges).
    acked: u64,
    /// Reads' answers granted below this are not kept.
    floor: u64,
    /// Own changes' answers granted below the seq of an inode they name are not kept.
    seen: SeqByIno,
    attrs: HashMap<u64, PerCaller<CachedAttr>>,
    /// Directory → name → caller → the inode, or None: known absent.
    entries: HashMap<u64, DirEntries>,
    /// Directories whose every entry is in `entries`, for these callers:
    /// a name not there is known absent (an own mkdir, or a whole listing).
    complete: HashMap<u64, HashSet<Caller>>,
    /// Listings under way, granted page after page: directory → caller →
    /// the last name kept.
    listing: HashMap<u64, HashMap<Caller, Vec<u8>>>,
    /// Extended attribute names by inode (`ls -l` asks for two that are
    /// rarely there, for every entry).
    xattr_names: HashMap<u64, HashMap<Caller, Vec<Vec<u8>>>>,
    /// Whole chunk lists by inode (`meta_cache_chunks.rs`).
    chunk_lists: HashMap<u64, PerCaller<chunks::ChunkList>>,
    items: usize,
}

impl State {
    fn drop_all(&mut self) {
        self.attrs.clear();
        self.entries.clear();
        self.complete.clear();
        self.listing.clear();
        self.xattr_names.clear();
        self.chunk_lists.clear();
        self.items = 0;
        self.epoch += 1;
    }

    fn drop_ino(&mut self, ino: u64) {
        self.attrs.remove(&ino);
        self.entries.remove(&ino);
        self.complete.remove(&ino);
        self.listing.remove(&ino);
        self.xattr_names.remove(&ino);
        self.chunk_lists.remove(&ino);
    }

    /// Whether an answer may be kept: the session valid, the answer
    /// granted, and (a read) not older than a recall or own change
    /// processed, with no own change or session change while it was in
    /// flight; (an own change's, `ticket` None) not older than what was
    /// processed of any inode it names (`inos`).
    fn granted(&self, ticket: Option<Ticket>, resp: &pb::MetaResponse, inos: &[u64], now: Instant) -> Option<Instant> {
        let ordered = match ticket {
            Some(t) => t.epoch == self.epoch && resp.grant_seq >= self.floor,
            None => self.seen.newest(inos.iter().copied()) <= resp.grant_seq,
        };
        self.valid(now).filter(|_| resp.lease_ms > 0 && ordered)
    }

    /// Keep a granted answer's `attrs` and `entries` for `caller` (see
    /// [`State::granted`]): until when, None when not granted or full.
    fn keep(
        &mut self,
        ticket: Option<Ticket>,
        resp: &pb::MetaResponse,
        caller: Caller,
        attrs: &[&pb::Attr],
        entries: &[(u64, &[u8], Option<u64>)],
    ) -> Option<Instant> {
        let inos: Vec<u64> = attrs.iter().map(|a| a.ino).chain(entries.iter().map(|e| e.0)).collect();
        let until = self.granted(ticket, resp, &inos, Instant::now())?;
        if ticket.is_none() {
            self.floor = self.floor.max(resp.grant_seq);
            self.seen.note(inos, resp.grant_seq);
        }
        self.insert(caller, attrs, entries).then_some(until)
    }

    /// Keep `attrs` and `entries` for `caller`; false when full (all dropped).
    fn insert(&mut self, caller: Caller, attrs: &[&pb::Attr], entries: &[(u64, &[u8], Option<u64>)]) -> bool {
        if self.items + attrs.len() + entries.len() > MAX_ITEMS {
            self.drop_all();
            return false;
        }
        self.items += attrs.len() + entries.len();
        for a in attrs {
            set_in(&mut self.attrs, a.ino, caller, CachedAttr::new(a));
        }
        for (parent, name, ino) in entries {
            let dir = self.entries.entry(*parent).or_default();
            match dir.get_mut(*name) {
                Some(known) => known.set(caller, *ino),
                None => {
                    dir.insert(name.to_vec(), PerCaller::new(caller, *ino));
                }
            }
        }
        true
    }

    /// `ino`'s attributes as `caller` was told them (validity not checked).
    fn attr_of(&self, ino: u64, caller: Caller) -> Option<&CachedAttr> {
        self.attrs.get(&ino)?.get(caller)
    }

    /// What `parent/name` is for `caller` (validity not checked).
    fn entry_of(&self, parent: u64, name: &[u8], caller: Caller) -> Option<Option<u64>> {
        self.entries.get(&parent)?.get(name)?.get(caller).copied()
    }

    /// Whether every entry of `dir` up to `name` (in the servers' byte
    /// order) is known for `caller`: the directory is complete, or a
    /// listing of it reached `name` (its pages continuous and granted;
    /// a recall or own change of the directory ends it).
    fn listed_past(&self, dir: u64, name: &[u8], caller: Caller) -> bool {
        self.complete.get(&dir).is_some_and(|c| c.contains(&caller))
            || self.listing.get(&dir).and_then(|l| l.get(&caller)).is_some_and(|last| name <= &last[..])
    }

    fn valid(&self, now: Instant) -> Option<Instant> {
        self.valid_until.filter(|u| self.open && now < *u)
    }
}

/// See the module comment. One per client.
#[derive(Default)]
pub struct MetaCache {
    state: Mutex<State>,
    hits: AtomicU64,
    misses: AtomicU64,
    sessions: AtomicU64,
    /// Woken when a session opens.
    opened: tokio::sync::Notify,
}

impl MetaCache {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn count(&self, hit: bool) {
        let (counter, label) = if hit { (&self.hits, "hit") } else { (&self.misses, "miss") };
        counter.fetch_add(1, Ordering::Relaxed);
        shardline_metrics::client_cache_lookups_total().with_label_values(&["meta", label]).inc();
    }

    /// Lookups and stats served from memory, and those that were not.
    pub fn stats(&self) -> (u64, u64) {
        (self.hits.load(Ordering::Relaxed), self.misses.load(Ordering::Relaxed))
    }

    /// Sessions opened so far.
    pub fn sessions_opened(&self) -> u64 {
        self.sessions.load(Ordering::Relaxed)
    }

    /// A cache that is off for good (this client's config).
    pub fn disabled() -> Self {
        let cache = MetaCache::default();
        cache.off();
        cache
    }

    /// Whether a session is open.
    pub fn open(&self) -> bool {
        self.lock().open
    }

    /// Before a cacheable read: None when nothing could be kept (no session).
    pub fn ticket(&self) -> Option<Ticket> {
        let s = self.lock();
        s.open.then_some(Ticket { epoch: s.epoch })
    }

    /// The coverage of an answer not kept.
    pub fn uncovered(&self) -> Coverage {
        if self.lock().off {
            Coverage::Inactive
        } else {
            Coverage::Uncovered
        }
    }

    /// `ino`'s attributes as `caller` was told them, while valid.
    pub fn attr(&self, ino: u64, caller: Caller) -> Option<(pb::Attr, Instant)> {
        let found = {
            let s = self.lock();
            s.valid(Instant::now()).and_then(|u| Some((s.attr_of(ino, caller)?.to_wire(), u)))
        };
        self.count(found.is_some());
        found
    }

    /// `parent/name` as `caller` was told it: Some(None) when known absent.
    pub fn entry(&self, parent: u64, name: &[u8], caller: Caller) -> Option<(Option<pb::Attr>, Instant)> {
        let found = {
            let s = self.lock();
            s.valid(Instant::now()).and_then(|u| {
                match s.entry_of(parent, name, caller) {
                    Some(None) => Some((None, u)),
                    Some(Some(ino)) => Some((Some(s.attr_of(ino, caller)?.to_wire()), u)),
                    // Not among a directory's every entry, or not among
                    // those of a listing granted page after page from the
                    // start up to a name at or past it: absent.
                    None => s.listed_past(parent, name, caller).then_some((None, u)),
                }
            })
        };
        self.count(found.is_some());
        found
    }

    /// Until when `parent/name` → `ino` (with its attributes, as `view`
    /// sees them) is cached for `caller`, not counted as a lookup: for the
    /// mount, which checks this after it noted the name for recalls and
    /// before it tells the kernel, so a recall in between is never missed.
    pub fn entry_until<R>(
        &self,
        parent: u64,
        name: &[u8],
        ino: u64,
        caller: Caller,
        view: impl FnOnce(&pb::Attr) -> R,
    ) -> Option<(R, Instant)> {
        let s = self.lock();
        let until = s.valid(Instant::now())?;
        let attr = s.attr_of(ino, caller).filter(|_| s.entry_of(parent, name, caller) == Some(Some(ino)))?;
        Some((view(&attr.to_wire()), until))
    }

    /// [`MetaCache::entry_until`] for many entries of `parent` (name and
    /// inode each) under one lock, in order.
    pub fn entries_until<R>(
        &self,
        parent: u64,
        items: &[(&[u8], u64)],
        caller: Caller,
        view: impl Fn(&pb::Attr) -> R,
    ) -> Vec<Option<(R, Instant)>> {
        let s = self.lock();
        let Some(until) = s.valid(Instant::now()) else {
            return items.iter().map(|_| None).collect();
        };
        let dir = s.entries.get(&parent);
        items
            .iter()
            .map(|&(name, ino)| {
                let listed = dir?.get(name)?.get(caller) == Some(&Some(ino));
                let attr = s.attr_of(ino, caller).filter(|_| listed)?;
                Some((view(&attr.to_wire()), until))
            })
            .collect()
    }

    /// Until when `ino`'s attributes are cached for `caller`, not counted
    /// as a lookup.
    pub fn attr_until(&self, ino: u64, caller: Caller) -> Option<Instant> {
        let s = self.lock();
        s.valid(Instant::now()).filter(|_| s.attr_of(ino, caller).is_some())
    }

    /// `ino`'s extended attribute names as `caller` was told them, while valid.
    pub fn xattr_names(&self, ino: u64, caller: Caller) -> Option<Vec<Vec<u8>>> {
        let found = {
            let s = self.lock();
            s.valid(Instant::now()).and_then(|_| s.xattr_names.get(&ino)?.get(&caller).cloned())
        };
        self.count(found.is_some());
        found
    }

    /// Keep a granted answer to a ListXattr of `ino`.
    pub fn keep_xattr_names(&self, ticket: Option<Ticket>, resp: &pb::MetaResponse, caller: Caller, ino: u64) {
        let mut s = self.lock();
        if s.off || ticket.is_none() || s.granted(ticket, resp, &[ino], Instant::now()).is_none() {
            return;
        }
        let Some(pb::meta_response::Body::XattrNames(n)) = &resp.body else { return };
        if s.items + 1 > MAX_ITEMS {
            s.drop_all();
            return;
        }
        s.items += 1;
        s.xattr_names.entry(ino).or_default().insert(caller, n.names.clone());
    }

    /// Keep what a granted answer says: `attrs`, and `entries` (directory,
    /// name, inode or None for absent). `ticket`: from before the read was
    /// sent (None: an answer to this client's own change).
    pub fn keep(
        &self,
        ticket: Option<Ticket>,
        resp: &pb::MetaResponse,
        caller: Caller,
        attrs: &[&pb::Attr],
        entries: &[(u64, &[u8], Option<u64>)],
    ) -> Coverage {
        let mut s = self.lock();
        if s.off {
            return Coverage::Inactive;
        }
        s.keep(ticket, resp, caller, attrs, entries).map_or(Coverage::Uncovered, Coverage::Until)
    }

    /// Where a listing of `dir` for `caller` continues: after the last
    /// name of the pages granted so far, or from the start.
    pub fn listing_from(&self, dir: u64, caller: Caller) -> Vec<u8> {
        let s = self.lock();
        s.listing.get(&dir).and_then(|l| l.get(&caller)).cloned().unwrap_or_default()
    }

    /// Keep a page of `dir`'s listing read from after `after` (its
    /// entries and attributes in `attrs` and `entries`, the last name
    /// `last`, `more` if pages follow). A listing granted page after page
    /// from the start to its end makes the directory complete: a name not
    /// in it is known absent while the grant holds.
    #[allow(clippy::too_many_arguments)]
    pub fn listed(
        &self,
        ticket: Option<Ticket>,
        resp: &pb::MetaResponse,
        caller: Caller,
        dir: u64,
        (after, last, more): (&[u8], &[u8], bool),
        attrs: &[&pb::Attr],
        entries: &[(u64, &[u8], Option<u64>)],
    ) -> Coverage {
        let mut s = self.lock();
        if s.off {
            return Coverage::Inactive;
        }
        let continues = |s: &State| {
            after.is_empty() || s.listing.get(&dir).and_then(|l| l.get(&caller)).is_some_and(|p| p == after)
        };
        // Only reads (with a ticket) count towards a whole listing.
        let Some(until) = ticket.and_then(|_| s.keep(ticket, resp, caller, attrs, entries)) else {
            if let Some(l) = s.listing.get_mut(&dir) {
                l.remove(&caller);
            }
            return Coverage::Uncovered;
        };
        if continues(&s) {
            if more {
                s.listing.entry(dir).or_default().insert(caller, last.to_vec());
            } else {
                if let Some(l) = s.listing.get_mut(&dir) {
                    l.remove(&caller);
                }
                s.complete.entry(dir).or_default().insert(caller);
            }
        }
        Coverage::Until(until)
    }

    /// This client's own change was answered: forget what it touched
    /// (`inos`), and keep no answer to a read in flight meanwhile. If the
    /// answer is granted, keep what it says (`attrs`, the entries it made
    /// or removed in `deltas`: directory, name, inode or None for gone),
    /// and each delta's directory keeps what it knew of its other entries
    /// (no other change came between: the leader grants a writer its
    /// answer only then); `new_dir` is a directory it made, empty and so
    /// complete for `caller`.
    pub fn own_change(
        &self,
        resp: &pb::MetaResponse,
        caller: Caller,
        inos: &[u64],
        deltas: &[(u64, &[u8], Option<u64>)],
        attrs: &[&pb::Attr],
        new_dir: Option<u64>,
    ) -> Coverage {
        let mut s = self.lock();
        s.epoch += 1;
        let named: Vec<u64> = inos
            .iter()
            .copied()
            .chain(attrs.iter().map(|a| a.ino))
            .chain(deltas.iter().map(|d| d.0))
            .chain(deltas.iter().filter_map(|d| d.2))
            .chain(new_dir)
            .collect();
        let until = if s.off { None } else { s.granted(None, resp, &named, Instant::now()) };
        // Granted or not, an older answer naming these inodes, arriving
        // later, must not be kept (an ungranted answer's seq is the
        // session's when it was answered, or 0 from older leaders).
        s.seen.note(named, resp.grant_seq);
        for &ino in inos {
            if until.is_some() && deltas.iter().any(|d| d.0 == ino) {
                // The names as anyone was told them go; the directory
                // stays complete only for `caller`, who learns the change.
                s.attrs.remove(&ino);
                s.listing.remove(&ino);
                if let Some(e) = s.entries.get_mut(&ino) {
                    for (_, name, _) in deltas.iter().filter(|d| d.0 == ino) {
                        e.remove(*name);
                    }
                }
                if let Some(c) = s.complete.get_mut(&ino) {
                    c.retain(|c| *c == caller);
                }
            } else {
                s.drop_ino(ino);
            }
        }
        if s.off {
            return Coverage::Inactive;
        }
        let Some(until) = until else { return Coverage::Uncovered };
        s.floor = s.floor.max(resp.grant_seq);
        if !s.insert(caller, attrs, deltas) {
            return Coverage::Uncovered;
        }
        if let Some(dir) = new_dir {
            s.complete.entry(dir).or_default().insert(caller);
        }
        Coverage::Until(until)
    }

    /// This client changed `inos`: forget them, and keep no answer to a
    /// read that was in flight meanwhile.
    pub fn changed(&self, inos: impl IntoIterator<Item = u64>) {
        self.changed_at(inos, 0);
    }

    /// [`MetaCache::changed`], by a change answered at session seq `seq`:
    /// an older own answer naming `inos`, arriving later, is not kept.
    pub fn changed_at(&self, inos: impl IntoIterator<Item = u64>, seq: u64) {
        let mut s = self.lock();
        let inos: Vec<u64> = inos.into_iter().collect();
        for &ino in &inos {
            s.drop_ino(ino);
        }
        s.seen.note(inos, seq);
        s.epoch += 1;
    }

    /// The leader recalled `inos` (recall sequence up to `seq`).
    pub fn recalled(&self, seq: u64, inos: &[u64]) {
        let mut s = self.lock();
        for &ino in inos {
            s.drop_ino(ino);
        }
        s.seen.note(inos.iter().copied(), seq);
        s.acked = s.acked.max(seq);
        s.floor = s.floor.max(seq);
    }

    /// The recall sequence the next watch acknowledges.
    pub fn acked(&self) -> u64 {
        self.lock().acked
    }

    /// A watch sent at `sent` was answered: serve until `sent` + lease − margin.
    pub fn renewed(&self, sent: Instant, lease_ms: u32) {
        let lease = Duration::from_millis(u64::from(lease_ms));
        let until = sent + lease - lease / 8;
        let mut s = self.lock();
        if s.valid_until.is_none_or(|u| u < until) {
            s.valid_until = Some(until);
        }
    }

    /// A new session is open (the watch that opened it was sent at `sent`).
    pub fn opened(&self, sent: Instant, lease_ms: u32) {
        {
            let mut s = self.lock();
            s.drop_all();
            (s.off, s.open, s.acked, s.floor, s.valid_until) = (false, true, 0, 0, None);
            s.seen = SeqByIno::default();
        }
        self.renewed(sent, lease_ms);
        self.sessions.fetch_add(1, Ordering::Relaxed);
        self.opened.notify_waiters();
    }

    /// Wait until a session is open: false after `timeout`, or when off.
    pub async fn wait_open(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let woken = self.opened.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            {
                let s = self.lock();
                if s.open || s.off {
                    return s.open;
                }
            }
            if tokio::time::timeout_at(deadline, woken).await.is_err() {
                return false;
            }
        }
    }

    /// The session is gone: drop everything until a new one is open.
    pub fn lost(&self) {
        let mut s = self.lock();
        s.drop_all();
        (s.open, s.acked, s.floor, s.valid_until) = (false, 0, 0, None);
        s.seen = SeqByIno::default();
    }

    /// The cluster does not cache: drop everything, the kernel's usual TTLs apply.
    pub fn off(&self) {
        self.lost();
        self.lock().off = true;
    }
}

#[path = "meta_cache_chunks.rs"]
mod chunks;
pub use chunks::{ChunkList, TOKEN_MARGIN_MS};

#[cfg(test)]
#[path = "meta_cache_tests.rs"]
mod tests;
