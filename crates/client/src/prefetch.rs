//! The data-loader API: hand it an epoch's order of files or byte ranges,
//! and it keeps a bounded window of them in flight, yielding each one's
//! bytes in the order given.
//!
//! [`Client::prefetch`] returns a [`Prefetch`] stream. Reads use the
//! client's path-API read path ([`FileReader`](crate::FileReader)): a whole
//! file reads its chunks several at a time, whole; a range fetches and
//! decrypts only the segments holding it (`range_read.rs`). Files are
//! opened once per stream and directories resolved once (`prefetch_open.rs`).
//!
//! The window is bounded twice ([`PrefetchConfig`]):
//! - **items**: at most `window_items` items are started and not yet taken
//!   by the caller (reading, or read and waiting their turn);
//! - **bytes**: the bytes of those items stay within `window_bytes`. A
//!   range's size is known up front, a whole file's once it is opened (the
//!   open, a metadata read, runs ahead; the data read waits for bytes).
//!   Bytes are granted in the items' order, so a later item never starves an
//!   earlier one, and an item larger than the whole budget is read alone.
//!
//! Bytes held by an item are returned when the caller takes it. Errors are
//! per item (a missing file fails its item, not the stream). Dropping the
//! stream cancels what is still in flight.
//!
//! Buffers: each item is read into one `Vec<u8>`, decrypted straight into
//! it ([`FileReader::read_into`](crate::FileReader::read_into)).
//! [`Prefetch::next`] hands it over as `Bytes` (no copy);
//! [`Prefetch::next_buf`] as the `Vec` itself, which the caller passes back
//! with [`Prefetch::recycle`] once done with it. Items that get their bytes
//! after that are read into recycled buffers instead of fresh allocations
//! (the smallest one large enough, else the largest, grown), so a loop of
//! `next_buf`, use, `recycle` keeps about `window_items + 1` buffers in
//! circulation and allocates nothing once they have grown to the items'
//! size. A buffer's length and contents on recycling do not matter. Idle
//! recycled buffers hold at most `window_bytes` of capacity; one past that
//! is dropped. An item that fails puts its buffer back.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::prefetch_open::Opener;
use crate::{Client, ClientError};

/// One thing to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrefetchItem {
    /// The whole file.
    File(PathBuf),
    /// `len` bytes from `offset` (fewer at the end of the file, none past it).
    Range { path: PathBuf, offset: u64, len: u64 },
}

impl PrefetchItem {
    pub fn path(&self) -> &Path {
        match self {
            PrefetchItem::File(p) => p,
            PrefetchItem::Range { path, .. } => path,
        }
    }
}

/// How much a stream keeps in flight.
#[derive(Debug, Clone)]
pub struct PrefetchConfig {
    /// Items started and not yet taken, at most.
    pub window_items: usize,
    /// Bytes of those items, at most (an item larger than this is read alone).
    pub window_bytes: u64,
    /// Files whose readers the stream keeps open for later items.
    pub open_files: usize,
}

impl Default for PrefetchConfig {
    /// 16 items and 64 MiB: enough to hide a round trip behind each of many
    /// small samples, and a few chunks of a large file ahead.
    fn default() -> Self {
        PrefetchConfig { window_items: 16, window_bytes: 64 << 20, open_files: 64 }
    }
}

/// One item's outcome: its bytes as `Bytes` ([`Prefetch::next`]) or in
/// the `Vec` they were read into ([`Prefetch::next_buf`]).
#[derive(Debug)]
pub struct Prefetched<T = Bytes> {
    /// Its position in the list given.
    pub index: usize,
    pub item: PrefetchItem,
    pub data: Result<T, ClientError>,
}

/// The most a stream has held at once (for tests and tuning).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PrefetchStats {
    /// Items started and not yet taken, at most.
    pub max_items: usize,
    /// Bytes granted to items not yet taken, at most.
    pub max_bytes: u64,
}

impl Client {
    /// Read `items` with a bounded window in flight; take them in order with
    /// [`Prefetch::next`]. Must be polled inside a Tokio runtime.
    pub fn prefetch(&self, items: Vec<PrefetchItem>, cfg: PrefetchConfig) -> Prefetch {
        let budget = Budget::new(cfg.window_bytes.max(1));
        let shared = Arc::new(Shared {
            opener: Opener::new(self.inner().clone(), cfg.open_files),
            budget,
            pool: Pool::new(cfg.window_bytes),
            items_held: AtomicUsize::new(0),
            max_items: AtomicUsize::new(0),
        });
        Prefetch {
            shared,
            window: cfg.window_items.max(1),
            pending: items.into_iter().enumerate().collect(),
            in_flight: VecDeque::new(),
        }
    }
}

/// A stream of [`Prefetched`] items in the order given.
pub struct Prefetch {
    shared: Arc<Shared>,
    window: usize,
    pending: VecDeque<(usize, PrefetchItem)>,
    in_flight: VecDeque<Task>,
}

struct Task {
    index: usize,
    item: PrefetchItem,
    /// Bytes granted to it, returned when the caller takes it.
    held: Arc<AtomicU64>,
    handle: JoinHandle<Result<Vec<u8>, ClientError>>,
}

struct Shared {
    opener: Opener,
    budget: Budget,
    pool: Pool,
    items_held: AtomicUsize,
    max_items: AtomicUsize,
}

impl Prefetch {
    /// The next item's outcome, in order; `None` once every item was taken.
    /// Cancel-safe: dropping the future before it completes loses nothing
    /// (the item is still the next one).
    pub async fn next(&mut self) -> Option<Prefetched> {
        let got = self.next_buf().await?;
        Some(Prefetched { index: got.index, item: got.item, data: got.data.map(Bytes::from) })
    }

    /// [`next`](Self::next), with the item's bytes in the buffer they were
    /// read into: a recycled one if there was one (pass it back with
    /// [`recycle`](Self::recycle) when done with it). Cancel-safe too.
    pub async fn next_buf(&mut self) -> Option<Prefetched<Vec<u8>>> {
        self.fill();
        let front = self.in_flight.front_mut()?;
        let joined = (&mut front.handle).await;
        let task = self.in_flight.pop_front()?;
        let data = match joined {
            Ok(r) => r,
            Err(e) => {
                // It died before or after its turn for bytes: pass the turn
                // on, or the items after it would wait for it forever.
                self.shared.budget.pass_turn(task.index);
                Err(ClientError::Internal(format!("prefetch task: {e}")))
            }
        };
        self.shared.budget.release(task.held.swap(0, Ordering::AcqRel));
        self.shared.items_held.fetch_sub(1, Ordering::AcqRel);
        self.fill();
        Some(Prefetched { index: task.index, item: task.item, data })
    }

    /// Give a buffer back for later items to be read into (its length and
    /// contents do not matter; it is grown if an item needs more). Dropped
    /// instead if the recycled buffers waiting would then hold more than
    /// `window_bytes` of capacity.
    pub fn recycle(&self, buf: Vec<u8>) {
        self.shared.pool.put(buf);
    }

    /// Items not yet taken (in flight or not started).
    pub fn remaining(&self) -> usize {
        self.pending.len() + self.in_flight.len()
    }

    pub fn stats(&self) -> PrefetchStats {
        PrefetchStats {
            max_items: self.shared.max_items.load(Ordering::Acquire),
            max_bytes: self.shared.budget.max_granted.load(Ordering::Acquire),
        }
    }

    /// Start items until the window is full.
    fn fill(&mut self) {
        while self.in_flight.len() < self.window {
            let Some((index, item)) = self.pending.pop_front() else { return };
            let held = Arc::new(AtomicU64::new(0));
            let shared = self.shared.clone();
            let n = shared.items_held.fetch_add(1, Ordering::AcqRel) + 1;
            shared.max_items.fetch_max(n, Ordering::AcqRel);
            let handle = tokio::spawn(read_item(shared, index, item.clone(), held.clone()));
            self.in_flight.push_back(Task { index, item, held, handle });
        }
    }
}

impl Drop for Prefetch {
    fn drop(&mut self) {
        for t in &self.in_flight {
            t.handle.abort();
        }
    }
}

/// Open, wait for this item's bytes (its turn is its index), read them into
/// a recycled buffer or a fresh one.
async fn read_item(
    shared: Arc<Shared>,
    index: usize,
    item: PrefetchItem,
    held: Arc<AtomicU64>,
) -> Result<Vec<u8>, ClientError> {
    let opened = shared.opener.open(item.path()).await;
    let want = match (&opened, &item) {
        (Err(_), _) => 0,
        (Ok(r), PrefetchItem::File(_)) => r.size(),
        (Ok(r), PrefetchItem::Range { offset, len, .. }) => r.size().saturating_sub(*offset).min(*len),
    };
    held.store(shared.budget.acquire(index, want).await, Ordering::Release);
    let reader = opened?;
    let offset = match item {
        PrefetchItem::File(_) => 0,
        PrefetchItem::Range { offset, .. } => offset,
    };
    // The size comes from the metadata service (a sparse file can claim far
    // more than fits): memory is asked for, and a refusal is an error.
    let len = usize::try_from(want).map_err(|_| ClientError::TooLarge { size: want })?;
    let mut buf = shared.pool.take(len);
    let read = match resize(&mut buf, len) {
        Ok(()) => reader.read_into(offset, &mut buf).await,
        Err(e) => Err(e),
    };
    match read {
        Ok(n) => {
            buf.truncate(n);
            Ok(buf)
        }
        Err(e) => {
            shared.pool.put(buf);
            Err(e)
        }
    }
}

/// Make `buf` `len` bytes long: cut, or grown with zeros (a recycled
/// buffer's old bytes are overwritten by the read, so only growth is zeroed).
fn resize(buf: &mut Vec<u8>, len: usize) -> Result<(), ClientError> {
    if buf.len() >= len {
        buf.truncate(len);
        return Ok(());
    }
    buf.try_reserve_exact(len - buf.len()).map_err(|_| ClientError::TooLarge { size: len as u64 })?;
    buf.resize(len, 0);
    Ok(())
}

/// Buffers the caller gave back, waiting for items to be read into them.
struct Pool {
    bufs: Mutex<Vec<Vec<u8>>>,
    /// Capacity the waiting buffers may hold in all.
    limit: u64,
}

impl Pool {
    fn new(limit: u64) -> Self {
        Pool { bufs: Mutex::new(Vec::new()), limit }
    }

    fn put(&self, buf: Vec<u8>) {
        if buf.capacity() == 0 {
            return;
        }
        let mut bufs = self.bufs.lock().unwrap_or_else(|e| e.into_inner());
        let held: u64 = bufs.iter().map(|b| b.capacity() as u64).sum();
        if held + buf.capacity() as u64 <= self.limit {
            bufs.push(buf);
        }
    }

    /// The smallest buffer holding `len` bytes without growing, else the
    /// largest; an empty one if none is waiting.
    fn take(&self, len: usize) -> Vec<u8> {
        let mut bufs = self.bufs.lock().unwrap_or_else(|e| e.into_inner());
        let fits = bufs.iter().enumerate().filter(|(_, b)| b.capacity() >= len).min_by_key(|(_, b)| b.capacity());
        let pick = fits.or_else(|| bufs.iter().enumerate().max_by_key(|(_, b)| b.capacity())).map(|(i, _)| i);
        pick.map(|i| bufs.swap_remove(i)).unwrap_or_default()
    }
}

/// Bytes granted in turn order (turn = item index).
struct Budget {
    total: u64,
    state: Mutex<BudgetState>,
    changed: Notify,
    granted: AtomicU64,
    max_granted: AtomicU64,
}

struct BudgetState {
    next_turn: usize,
    free: u64,
}

impl Budget {
    fn new(total: u64) -> Self {
        Budget {
            total,
            state: Mutex::new(BudgetState { next_turn: 0, free: total }),
            changed: Notify::new(),
            granted: AtomicU64::new(0),
            max_granted: AtomicU64::new(0),
        }
    }

    /// Wait until it is `turn`'s turn and `want` bytes are free (the whole
    /// budget at most); take them and pass the turn on. Returns the bytes taken.
    async fn acquire(&self, turn: usize, want: u64) -> u64 {
        let want = want.min(self.total);
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
                if s.next_turn == turn && s.free >= want {
                    s.free -= want;
                    s.next_turn += 1;
                    let now = self.granted.fetch_add(want, Ordering::AcqRel) + want;
                    self.max_granted.fetch_max(now, Ordering::AcqRel);
                    drop(s);
                    self.changed.notify_waiters();
                    return want;
                }
            }
            notified.await;
        }
    }

    /// Skip `turn` if it has not been taken (its item failed without
    /// asking for bytes).
    fn pass_turn(&self, turn: usize) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if s.next_turn == turn {
            s.next_turn += 1;
            drop(s);
            self.changed.notify_waiters();
        }
    }

    fn release(&self, n: u64) {
        if n == 0 {
            return;
        }
        self.granted.fetch_sub(n, Ordering::AcqRel);
        self.state.lock().unwrap_or_else(|e| e.into_inner()).free += n;
        self.changed.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::{resize, Budget, Pool};
    use std::sync::Arc;

    #[test]
    fn the_pool_hands_out_the_smallest_buffer_that_fits_and_keeps_within_its_limit() {
        let pool = Pool::new(1000);
        let (small, big) = (Vec::<u8>::with_capacity(100), Vec::<u8>::with_capacity(500));
        let (small_at, big_at) = (small.as_ptr(), big.as_ptr());
        pool.put(big);
        pool.put(small);
        pool.put(Vec::with_capacity(600)); // 1200 in all: dropped
        pool.put(Vec::new()); // nothing to keep
        assert_eq!(pool.bufs.lock().expect("lock").len(), 2);
        let first = pool.take(50);
        assert_eq!((first.as_ptr(), first.capacity()), (small_at, 100), "the smallest that fits");
        let second = pool.take(800);
        assert_eq!((second.as_ptr(), second.capacity()), (big_at, 500), "none fits: the largest, to grow");
        assert_eq!(pool.take(10).capacity(), 0, "empty pool: a fresh buffer");
    }

    #[test]
    fn a_recycled_buffer_is_cut_or_grown_with_zeros_in_place() {
        let mut b = Vec::with_capacity(64);
        b.extend_from_slice(&[7u8; 40]);
        let at = b.as_ptr();
        resize(&mut b, 10).expect("cut");
        assert_eq!((b.len(), b.as_ptr()), (10, at));
        resize(&mut b, 64).expect("grow within capacity");
        assert_eq!((b.as_ptr(), &b[..10], &b[10..]), (at, &[7u8; 10][..], &[0u8; 54][..]));
        assert!(resize(&mut b, usize::MAX).is_err(), "an impossible size is an error, not an abort");
    }

    #[tokio::test]
    async fn bytes_are_granted_in_turn_order_and_never_past_the_total() {
        let b = Arc::new(Budget::new(100));
        assert_eq!(b.acquire(0, 60).await, 60);
        // Turn 2 may not go before turn 1, even though its bytes are free.
        let late = tokio::spawn({
            let b = b.clone();
            async move { b.acquire(2, 10).await }
        });
        tokio::task::yield_now().await;
        assert!(!late.is_finished());
        // Turn 1 wants more than is free: it waits for a release.
        let big = tokio::spawn({
            let b = b.clone();
            async move { b.acquire(1, 500).await }
        });
        tokio::task::yield_now().await;
        assert!(!big.is_finished() && !late.is_finished());
        b.release(60);
        assert_eq!(big.await.expect("join"), 100, "an item larger than the budget gets the whole budget");
        assert!(!late.is_finished());
        b.release(100);
        assert_eq!(late.await.expect("join"), 10);
        assert_eq!(b.max_granted.load(std::sync::atomic::Ordering::Acquire), 100);
    }

    #[tokio::test]
    async fn a_turn_passed_on_lets_the_next_one_go() {
        let b = Arc::new(Budget::new(10));
        let next = tokio::spawn({
            let b = b.clone();
            async move { b.acquire(1, 5).await }
        });
        tokio::task::yield_now().await;
        assert!(!next.is_finished(), "turn 1 went before turn 0");
        b.pass_turn(0);
        assert_eq!(next.await.expect("join"), 5);
        b.pass_turn(0); // already past: no effect
        assert_eq!(b.acquire(2, 5).await, 5);
    }
}
