//! Reading and writing a file by inode, at any offset (for the FUSE mount).
//!
//! A [`FileHandle`] holds a snapshot of the file's committed chunk list, taken
//! when it is opened (close-to-open consistency), and the bytes written
//! through it that are not committed yet:
//! - **dirty** chunks, written in part: on [`FileHandle::flush`] each is laid
//!   over the chunk's current bytes (read-modify-write) and committed as a
//!   new version;
//! - a chunk that a write fills completely is encoded at once (sequential
//!   writes are pipelined, up to the client's write parallelism in flight);
//!   versions of one chunk commit in the order they were written.
//!
//! Reads see the handle's own writes (dirty, then queued, then committed
//! bytes); holes read as zeros. Sequential reads (`read_pattern.rs`) read
//! whole chunks, cache them and prefetch the next ones concurrently; other
//! reads of committed format-v2 chunks not already cached fetch and
//! decrypt only the segments they need (`range_read.rs`). A failed background commit is reported by the next write,
//! flush or fsync. Truncation rewrites the chunk straddling the new size so
//! that no stale bytes survive past it. Everything is owned (`Arc` inside).

use std::collections::{BTreeMap, VecDeque};
use std::ops::Range;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use shardline_crypto::ChunkFormat;
use shardline_proto::v1 as pb;
use tokio::sync::{watch, OnceCell, Semaphore};

use crate::chunk_read::read_chunk;
use crate::chunk_write::{write_chunk, write_chunk_gated};
use crate::client::Inner;
use crate::dirty_chunk::DirtyChunk;
use crate::file_ctx::FileCtx;
use crate::inode_api::{InodeAttr, Inodes, SetAttrRequest};
use crate::range_read::read_chunk_range;
use crate::read_pattern::ReadPattern;
use crate::{Client, ClientError, FileKind};

/// Dirty chunks kept before a write flushes them all (bounds memory for
/// random writes).
const MAX_DIRTY_CHUNKS: usize = 64;
/// Decrypted chunks kept per handle (at least; more for small chunks).
const CACHE_BYTES: usize = 64 << 20;

type Slot = Arc<OnceCell<Bytes>>;

struct State {
    /// The file's size as this handle sees it (including unflushed writes).
    size: u64,
    /// The size in the committed snapshot.
    committed_size: u64,
    chunks: Arc<BTreeMap<u64, pb::Chunk>>,
    dirty: BTreeMap<u64, DirtyChunk>,
    /// Whole chunk versions waiting to commit, oldest first, per chunk.
    queued: BTreeMap<u64, VecDeque<(Bytes, u64)>>,
    outstanding: usize,
    /// Chunks committed after the snapshot (index → commit sequence).
    stale: BTreeMap<u64, u64>,
    commit_seq: u64,
    /// Decrypted committed chunks (index → version, bytes).
    cache: BTreeMap<u64, (u64, Slot)>,
    error: Option<ClientError>,
    pattern: ReadPattern,
    /// Whether this handle wrote or set attributes since it was opened.
    changed: bool,
    /// The attributes the latest of this handle's commits left the file
    /// with, as the metadata service answered it; None when not known (a
    /// commit failed or came back without them, or attributes were set).
    committed_attr: Option<pb::Attr>,
    /// A commit failed or attributes were set since the handle opened:
    /// [`FileHandle::stamp_after_commits`] then knows nothing.
    stamp_unknown: bool,
    /// A commit that would have grown the file failed: later chunks must
    /// not grow it over the gap (cleared once a flush has seen every
    /// commit end).
    growth_failed: bool,
    /// The largest size a failed growth cut this handle's view down from
    /// (0: none since the size last grew past it or was set). A reader
    /// that was told that size (the kernel, through a mount) may still
    /// ask for bytes below it that are gone: see
    /// [`FileHandle::lost_growth_above`].
    cut_from: u64,
    /// Commit failures so far, and the latest one's message: each opener
    /// of a shared handle learns of failures since it last asked
    /// ([`FileHandle::flush_seen`]), as Linux reports write-back errors to
    /// every open file description (errseq).
    error_seq: u64,
    last_error: String,
}

struct Shared {
    inner: Arc<Inner>,
    ctx: Arc<FileCtx>,
    state: Mutex<State>,
    permits: Semaphore,
    done: watch::Sender<u64>,
    max_outstanding: usize,
    max_cached: usize,
}

/// An open file, readable and writable at any offset. Cheap to clone; all
/// clones share buffers and snapshot.
#[derive(Clone)]
pub struct FileHandle {
    s: Arc<Shared>,
}

use crate::chunk_list::get_chunks;

impl FileHandle {
    /// Open the regular file `ino`: its key, layout and committed chunks now.
    pub async fn open(client: &Client, ino: u64) -> Result<FileHandle, ClientError> {
        Self::open_ino(client.inner().clone(), ino).await
    }

    /// [`FileHandle::open`], with the attributes the chunk list came with:
    /// an open that needs both costs one metadata round trip.
    pub async fn open_with_attr(client: &Client, ino: u64) -> Result<(InodeAttr, FileHandle), ClientError> {
        let (attr, chunks) = get_chunks(client.inner(), ino).await?;
        let handle = Self::from_parts(client.inner().clone(), &attr, chunks)?;
        Ok((InodeAttr::from_wire(&attr), handle))
    }

    pub(crate) async fn open_ino(inner: Arc<Inner>, ino: u64) -> Result<FileHandle, ClientError> {
        let (attr, chunks) = get_chunks(&inner, ino).await?;
        Self::from_parts(inner, &attr, chunks)
    }

    /// See [`FileCtx::offer_first_put`].
    pub(crate) fn offer_first_put(&self, version: u64, cap: pb::ShardCap) {
        self.s.ctx.offer_first_put(version, cap);
    }

    /// A handle over `attr` and its committed `chunks`, as the metadata
    /// service returned them.
    pub(crate) fn from_parts(
        inner: Arc<Inner>,
        attr: &pb::Attr,
        chunks: Vec<pb::Chunk>,
    ) -> Result<FileHandle, ClientError> {
        if FileKind::from_wire(attr.kind) != FileKind::File {
            return Err(ClientError::NotAFile);
        }
        let ctx = Arc::new(FileCtx::open(&inner, attr, &chunks, None)?);
        let parallel = inner.cfg.write_parallelism.max(1);
        let max_cached = (CACHE_BYTES / ctx.chunk_size).max(inner.cfg.read_parallelism + 2);
        let state = State {
            size: attr.size,
            committed_size: attr.size,
            chunks: Arc::new(chunks.into_iter().map(|c| (c.index, c)).collect()),
            dirty: BTreeMap::new(),
            queued: BTreeMap::new(),
            outstanding: 0,
            stale: BTreeMap::new(),
            commit_seq: 0,
            cache: BTreeMap::new(),
            error: None,
            pattern: ReadPattern::default(),
            changed: false,
            committed_attr: None,
            stamp_unknown: false,
            growth_failed: false,
            cut_from: 0,
            error_seq: 0,
            last_error: String::new(),
        };
        let s = Shared {
            inner,
            ctx,
            state: Mutex::new(state),
            permits: Semaphore::new(parallel),
            done: watch::Sender::new(0),
            max_outstanding: parallel * 2,
            max_cached,
        };
        Ok(FileHandle { s: Arc::new(s) })
    }

    pub fn ino(&self) -> u64 {
        self.s.ctx.ino
    }

    pub fn chunk_size(&self) -> usize {
        self.s.ctx.chunk_size
    }

    /// The size including writes not yet flushed.
    pub fn size(&self) -> u64 {
        self.s.lock().size
    }

    /// Whether a write that would have grown the file past `end` failed to
    /// commit, and the size it gave the file may still be believed by
    /// someone who saw it: bytes between `end` and that size are gone, not
    /// a hole. A mount answers a read cut short at `end` by such a loss
    /// with EIO, since the kernel fills a short read with zeros up to the
    /// size it believes (wrong bytes are worse than an error).
    pub fn lost_growth_above(&self, end: u64) -> bool {
        self.s.lock().cut_from > end
    }

    /// Whether this handle wrote or changed attributes since it was opened
    /// (if not, the file's attributes at open still describe what it read).
    pub fn changed(&self) -> bool {
        self.s.lock().changed
    }

    /// Once every write is flushed: the file's (mtime, size) right after
    /// this handle's latest commit, from the commits' own answers — None
    /// if any commit failed or went unanswered, attributes were set
    /// through the handle, or writes are still pending (ask the metadata
    /// service then). A stamp from an older commit than the latest can only
    /// differ from the file's current one, never match it wrongly.
    pub fn stamp_after_commits(&self) -> Option<(i64, u64)> {
        let st = self.s.lock();
        if st.stamp_unknown || st.outstanding > 0 || !st.dirty.is_empty() {
            return None;
        }
        st.committed_attr.as_ref().map(|a| (a.mtime_ns, a.size))
    }

    /// Whether writes are buffered or committing.
    pub fn has_unflushed(&self) -> bool {
        let st = self.s.lock();
        !st.dirty.is_empty() || st.outstanding > 0
    }

    /// Take a fresh snapshot of the committed chunks (close-to-open: call on
    /// open when nothing is buffered). The size becomes the committed one.
    pub async fn refresh(&self) -> Result<(), ClientError> {
        self.s.refresh(true).await
    }

    /// Up to `len` bytes from `offset` (fewer at the end of the file).
    pub async fn read_at(&self, offset: u64, len: usize) -> Result<Bytes, ClientError> {
        let cs = self.s.ctx.chunk_size as u64;
        let (size, sequential) = {
            let mut st = self.s.lock();
            let seq = st.pattern.observe(offset, len);
            (st.size, seq)
        };
        if offset >= size || len == 0 {
            return Ok(Bytes::new());
        }
        let end = offset.saturating_add(len as u64).min(size);
        let (first, last) = (offset / cs, (end - 1) / cs);
        if sequential {
            self.s.prefetch(last + 1, self.s.inner.cfg.read_parallelism as u64);
        }
        // The part of chunk `idx` inside [offset, end) (shorter if the file
        // shrank meanwhile).
        let part = |idx: u64, chunk: Bytes| {
            let cstart = idx * cs;
            let from = (offset.saturating_sub(cstart) as usize).min(chunk.len());
            let to = ((end - cstart) as usize).clamp(from, chunk.len());
            chunk.slice(from..to)
        };
        // A random read: only the bytes asked for, where that is possible.
        let range = |idx: u64| {
            let cstart = idx * cs;
            offset.saturating_sub(cstart) as usize..(end - cstart).min(cs) as usize
        };
        let bytes_of = |idx: u64| async move {
            if !sequential {
                if let Some(b) = self.s.range_bytes(idx, range(idx)).await? {
                    return Ok::<Bytes, ClientError>(b);
                }
            }
            Ok(part(idx, self.s.chunk_bytes(idx).await?))
        };
        if first == last {
            return bytes_of(first).await;
        }
        let mut out = Vec::new();
        for idx in first..=last {
            let bytes = bytes_of(idx).await?;
            out.try_reserve(bytes.len()).map_err(|_| ClientError::TooLarge { size })?;
            out.extend_from_slice(&bytes);
        }
        Ok(Bytes::from(out))
    }

    /// Write `data` at `offset` (extending the file as needed). Returns once
    /// the bytes are buffered; whole chunks start committing at once.
    pub async fn write_at(&self, offset: u64, data: &[u8]) -> Result<(), ClientError> {
        let cs = self.s.ctx.chunk_size as u64;
        let end = offset.checked_add(data.len() as u64).ok_or(ClientError::InvalidPath("offset overflow"))?;
        let mut too_dirty = false;
        {
            let mut st = self.s.lock();
            if let Some(e) = st.error.take() {
                return Err(e);
            }
            st.size = st.size.max(end);
            if st.size >= st.cut_from {
                // Written past where a failed growth had ended: the size
                // anyone may believe is this one again.
                st.cut_from = 0;
            }
            st.changed = true;
            let mut pos = offset;
            while pos < end {
                let idx = pos / cs;
                let cstart = idx * cs;
                let take = ((cstart + cs).min(end) - pos) as usize;
                let from = (pos - offset) as usize;
                let d = st.dirty.entry(idx).or_default();
                d.write((pos - cstart) as usize, &data[from..from + take]);
                if d.covers(cs as usize) {
                    let full = st.dirty.remove(&idx).unwrap_or_default().overlay(&[], cs as usize);
                    self.s.enqueue(&mut st, idx, Bytes::from(full), cstart + cs);
                    // Its commit waits for partial chunks below it that grow
                    // the file: send those now rather than at the flush.
                    too_dirty |= st.dirty.range(..idx).any(|(j, _)| st.size.min((j + 1) * cs) > st.committed_size);
                }
                pos += take as u64;
            }
            too_dirty |= st.dirty.len() > MAX_DIRTY_CHUNKS;
        }
        if too_dirty {
            self.s.submit_dirty().await?;
        }
        self.s.wait_outstanding(self.s.max_outstanding).await;
        Ok(())
    }

    /// Commit everything written so far and wait for it; reports the first
    /// write error since the last flush.
    pub async fn flush(&self) -> Result<(), ClientError> {
        self.s.submit_dirty().await?;
        self.s.wait_outstanding(0).await;
        let mut st = self.s.lock();
        if st.outstanding == 0 {
            st.growth_failed = false;
        }
        if let Some(e) = st.error.take() {
            return Err(e);
        }
        Ok(())
    }

    /// How many commits of this handle have failed so far (an opener
    /// records it when it opens, for [`FileHandle::flush_seen`]).
    pub fn error_seq(&self) -> u64 {
        self.s.lock().error_seq
    }

    /// Commit everything written so far, wait for it, and report a commit
    /// failure that happened after `seen` (a count from
    /// [`FileHandle::error_seq`], advanced here). Every opener of a shared
    /// handle keeps its own `seen`, so a failure is reported to each of
    /// them (the writer's fsync is not told "fine" because a reader's
    /// close heard of the failure first).
    pub async fn flush_seen(&self, seen: &mut u64) -> Result<(), ClientError> {
        self.s.submit_dirty().await?;
        self.s.wait_outstanding(0).await;
        let mut st = self.s.lock();
        if st.outstanding == 0 {
            st.growth_failed = false;
        }
        if st.error_seq > *seen {
            *seen = st.error_seq;
            return Err(ClientError::WriteFailed {
                file_id: self.s.ctx.ino,
                chunk_index: 0,
                shard_index: 0,
                detail: st.last_error.clone(),
            });
        }
        Ok(())
    }

    /// Change attributes through this handle. A size change flushes first;
    /// a shrink rewrites the chunk straddling the new size, cut to it (so a
    /// later extension reads zeros there, not old bytes).
    pub async fn set_attr(&self, inodes: &Inodes, req: &SetAttrRequest) -> Result<InodeAttr, ClientError> {
        {
            let mut st = self.s.lock();
            st.changed = true;
            st.stamp_unknown = true;
        }
        let Some(new_size) = req.size else {
            return inodes.setattr(self.ino(), req).await;
        };
        self.flush().await?;
        self.s.refresh(true).await?;
        let cs = self.s.ctx.chunk_size as u64;
        let (committed, straddle) = {
            let st = self.s.lock();
            (st.committed_size, st.chunks.get(&(new_size / cs)).cloned())
        };
        if new_size < committed && new_size % cs != 0 {
            if let Some(chunk) = straddle {
                let plain = self.s.committed_bytes(chunk.index).await?;
                let keep = ((new_size % cs) as usize).min(plain.len());
                write_chunk(&self.s.inner, &self.s.ctx, chunk.index, plain.slice(..keep), new_size).await?;
            }
        }
        let attr = inodes.setattr_in(self.ino(), req, Some(&self.s.ctx)).await?;
        {
            let mut st = self.s.lock();
            st.size = attr.size;
            st.cut_from = 0;
            st.dirty.clear();
        }
        self.s.refresh(true).await?;
        Ok(attr)
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Re-read the committed chunk list. `reset_size`: the handle's size
    /// becomes the committed size (else it only grows to it).
    async fn refresh(&self, reset_size: bool) -> Result<(), ClientError> {
        let seq = self.lock().commit_seq;
        let (attr, chunks) = get_chunks(&self.inner, self.ctx.ino).await?;
        self.ctx.reverify(&attr, &chunks)?;
        let mut st = self.lock();
        let chunks: BTreeMap<u64, pb::Chunk> = chunks.into_iter().map(|c| (c.index, c)).collect();
        st.cache.retain(|idx, (v, _)| chunks.get(idx).is_some_and(|c| c.version == *v));
        st.stale.retain(|_, s| *s > seq);
        st.chunks = Arc::new(chunks);
        st.committed_size = attr.size;
        if reset_size && st.dirty.is_empty() && st.outstanding == 0 {
            st.size = attr.size;
        } else {
            st.size = st.size.max(attr.size);
        }
        Ok(())
    }

    /// Queue a whole version of chunk `idx`; it commits after the versions
    /// queued before it, growing the file at most to the chunk's end.
    fn enqueue(self: &Arc<Self>, st: &mut State, idx: u64, bytes: Bytes, new_size: u64) {
        let cs = self.ctx.chunk_size as u64;
        let new_size = new_size.min((idx + 1) * cs).max(idx * cs + bytes.len() as u64);
        let q = st.queued.entry(idx).or_default();
        q.push_back((bytes.clone(), new_size));
        st.outstanding += 1;
        if q.len() == 1 {
            self.spawn_commit(idx, bytes, new_size);
        }
    }

    fn spawn_commit(self: &Arc<Self>, idx: u64, bytes: Bytes, new_size: u64) {
        let me = self.clone();
        tokio::spawn(async move {
            // The permit bounds shard uploads; it is let go before waiting
            // for the chunks below (which may need one themselves).
            let permit = me.permits.acquire().await;
            let gate = async {
                drop(permit);
                me.wait_growth_below(idx, new_size).await
            };
            let result = write_chunk_gated(&me.inner, &me.ctx, idx, bytes, new_size, gate).await;
            let next = {
                let mut st = me.lock();
                st.commit_seq += 1;
                let seq = st.commit_seq;
                st.stale.insert(idx, seq);
                st.outstanding -= 1;
                let failed_growth = result.is_err() && new_size > st.committed_size;
                match result {
                    Ok(attr) => {
                        st.committed_size = st.committed_size.max(new_size);
                        match attr {
                            Some(a) if st.committed_attr.as_ref().is_none_or(|b| later(&a, b)) => {
                                st.committed_attr = Some(a)
                            }
                            Some(_) => {}
                            None => st.stamp_unknown = true,
                        }
                    }
                    Err(e) => {
                        st.stamp_unknown = true;
                        tracing::warn!(file_id = me.ctx.ino, chunk = idx, error = %e, "chunk commit failed");
                        if new_size > st.committed_size {
                            st.growth_failed = true;
                        }
                        st.error_seq += 1;
                        st.last_error = e.to_string();
                        st.error.get_or_insert(e);
                    }
                }
                let q = st.queued.entry(idx).or_default();
                q.pop_front();
                let next = q.front().cloned();
                if next.is_none() {
                    st.queued.remove(&idx);
                }
                if failed_growth {
                    me.shrink_to_failed(&mut st, idx);
                }
                next
            };
            if let Some((b, n)) = next {
                me.spawn_commit(idx, b, n);
            }
            me.done.send_modify(|c| *c += 1);
        });
    }

    /// A commit of chunk `idx` that would have grown the file failed: its
    /// bytes are gone, so the file as this handle sees it ends at that
    /// chunk (or where the committed bytes end, if later). Reads past it
    /// see the end of the file, not zeros no write put there; the chunks
    /// above, which were to grow it further, fail at their gate.
    fn shrink_to_failed(&self, st: &mut State, idx: u64) {
        let cs = self.ctx.chunk_size as u64;
        let before = st.size;
        st.size = st.size.min(st.committed_size.max(idx * cs));
        if st.size < before {
            st.cut_from = st.cut_from.max(before);
        }
    }

    /// Before a commit of chunk `idx` that grows the file to `new_size`:
    /// wait until no chunk below it still has to grow the file (queued,
    /// committing or dirty), so the size never covers bytes that are not
    /// committed; fail if such a chunk could not be committed.
    async fn wait_growth_below(&self, idx: u64, new_size: u64) -> Result<(), ClientError> {
        let cs = self.ctx.chunk_size as u64;
        let mut rx = self.done.subscribe();
        loop {
            {
                let st = self.lock();
                let committed = st.committed_size;
                if new_size <= committed {
                    return Ok(());
                }
                if st.growth_failed {
                    return Err(ClientError::Internal(format!(
                        "a chunk below chunk {idx} of this write could not be committed"
                    )));
                }
                let queued = st.queued.range(..idx).any(|(_, q)| q.iter().any(|(_, n)| *n > committed));
                let dirty = st.dirty.range(..idx).any(|(j, _)| st.size.min((j + 1) * cs) > committed);
                if !queued && !dirty {
                    return Ok(());
                }
            }
            if rx.changed().await.is_err() {
                return Ok(());
            }
        }
    }

    /// Wait until at most `max` chunk versions are queued or committing.
    async fn wait_outstanding(&self, max: usize) {
        let mut rx = self.done.subscribe();
        loop {
            if self.lock().outstanding <= max {
                return;
            }
            if rx.changed().await.is_err() {
                return;
            }
        }
    }

    /// Queue every dirty chunk, each laid over its current bytes.
    async fn submit_dirty(self: &Arc<Self>) -> Result<(), ClientError> {
        let cs = self.ctx.chunk_size as u64;
        let indices: Vec<u64> = self.lock().dirty.keys().copied().collect();
        for idx in indices {
            // The chunk's bytes underneath, unless the write covers them all
            // or a queued version (taken under the lock below) supplies them.
            let needs_base = {
                let st = self.lock();
                let extent = extent(st.size, idx, cs);
                match st.dirty.get(&idx) {
                    None => continue,
                    Some(d) => !d.covers(extent) && !st.queued.contains_key(&idx),
                }
            };
            let base = if needs_base { Some(self.committed_bytes(idx).await?) } else { None };
            let mut st = self.lock();
            let Some(d) = st.dirty.remove(&idx) else { continue };
            let extent = extent(st.size, idx, cs);
            if extent == 0 {
                continue;
            }
            let under = match st.queued.get(&idx).and_then(|q| q.back()) {
                Some((b, _)) => b.clone(),
                None => base.clone().unwrap_or_default(),
            };
            let bytes = Bytes::from(d.overlay(&under, extent));
            let new_size = st.size;
            self.enqueue(&mut st, idx, bytes, new_size);
        }
        Ok(())
    }

    /// Chunk `idx` as this handle sees it, `extent` bytes long.
    async fn chunk_bytes(self: &Arc<Self>, idx: u64) -> Result<Bytes, ClientError> {
        let cs = self.ctx.chunk_size as u64;
        let dirty = {
            let st = self.lock();
            let extent = extent(st.size, idx, cs);
            let queued = st.queued.get(&idx).and_then(|q| q.back()).map(|(b, _)| b.clone());
            match (st.dirty.get(&idx), queued) {
                (Some(d), _) if d.covers(extent) => return Ok(Bytes::from(d.overlay(&[], extent))),
                (Some(d), Some(q)) => return Ok(Bytes::from(d.overlay(&q, extent))),
                (None, Some(q)) => return Ok(Bytes::from(DirtyChunk::default().overlay(&q, extent))),
                (d, None) => d.cloned(),
            }
        };
        let base = self.committed_bytes(idx).await?;
        let extent = extent(self.lock().size, idx, cs);
        let d = dirty.unwrap_or_default();
        if d.is_empty() && base.len() == extent {
            return Ok(base);
        }
        Ok(Bytes::from(d.overlay(&base, extent)))
    }

    /// Bytes `want` of chunk `idx` (cut to the chunk's extent) read on their
    /// own, fetching and decrypting only the segments that hold them; `None`
    /// when the chunk has to be read whole: it has bytes written through
    /// this handle, is a hole, is format v1, or is cached or being fetched.
    async fn range_bytes(self: &Arc<Self>, idx: u64, want: Range<usize>) -> Result<Option<Bytes>, ClientError> {
        let cs = self.ctx.chunk_size as u64;
        let (chunk, extent, valid) = {
            let st = self.lock();
            if st.dirty.contains_key(&idx) || st.queued.contains_key(&idx) || st.stale.contains_key(&idx) {
                return Ok(None);
            }
            let Some(chunk) = st.chunks.get(&idx) else { return Ok(None) };
            if chunk.format != ChunkFormat::V2.to_wire() {
                return Ok(None);
            }
            if st
                .cache
                .get(&idx)
                .is_some_and(|(v, s)| *v == chunk.version && (s.initialized() || Arc::strong_count(s) > 1))
            {
                return Ok(None);
            }
            (chunk.clone(), extent(st.size, idx, cs), extent(st.committed_size, idx, cs))
        };
        let to = want.end.min(extent);
        let from = want.start.min(to);
        // Committed bytes up to the committed size; zeros past it (the
        // handle's size may have grown past this chunk since).
        let upto = to.min(valid).max(from);
        let got = if from < upto {
            read_chunk_range(&self.inner, &self.ctx, &chunk, from..upto).await?
        } else {
            Bytes::new()
        };
        if got.len() == to - from {
            return Ok(Some(got));
        }
        let mut v = Vec::with_capacity(to - from);
        v.extend_from_slice(&got);
        v.resize(to - from, 0);
        Ok(Some(Bytes::from(v)))
    }

    /// The committed bytes of chunk `idx` (zeros for a hole), cut to the
    /// committed size.
    async fn committed_bytes(self: &Arc<Self>, idx: u64) -> Result<Bytes, ClientError> {
        if self.lock().stale.contains_key(&idx) {
            self.refresh(false).await?;
        }
        let cs = self.ctx.chunk_size as u64;
        let (chunk, slot, valid) = {
            let mut st = self.lock();
            let valid = extent(st.committed_size, idx, cs);
            let Some(chunk) = st.chunks.get(&idx).cloned() else {
                return Ok(Bytes::from(vec![0u8; valid]));
            };
            let slot = self.slot(&mut st, &chunk);
            (chunk, slot, valid)
        };
        let (inner, ctx) = (self.inner.clone(), self.ctx.clone());
        let plain = slot.get_or_try_init(|| async move { read_chunk(&inner, &ctx, &chunk).await }).await?.clone();
        if plain.len() >= valid {
            return Ok(plain.slice(..valid));
        }
        let mut v = plain.to_vec();
        v.resize(valid, 0);
        Ok(Bytes::from(v))
    }

    /// The cache slot of a committed chunk version, evicting the oldest.
    fn slot(&self, st: &mut State, chunk: &pb::Chunk) -> Slot {
        if let Some((v, s)) = st.cache.get(&chunk.index) {
            if *v == chunk.version {
                return s.clone();
            }
        }
        let slot: Slot = Arc::new(OnceCell::new());
        st.cache.insert(chunk.index, (chunk.version, slot.clone()));
        while st.cache.len() > self.max_cached {
            // Keep the chunks around the one just asked for.
            let first = *st.cache.keys().next().unwrap_or(&0);
            let last = *st.cache.keys().next_back().unwrap_or(&0);
            let evict = if chunk.index.abs_diff(first) >= chunk.index.abs_diff(last) { first } else { last };
            st.cache.remove(&evict);
        }
        slot
    }

    /// Start reading chunks `from..from+count` in the background.
    fn prefetch(self: &Arc<Self>, from: u64, count: u64) {
        let mut st = self.lock();
        let cs = self.ctx.chunk_size as u64;
        let n_chunks = st.committed_size.div_ceil(cs);
        for idx in from..(from + count).min(n_chunks) {
            if st.dirty.contains_key(&idx) || st.queued.contains_key(&idx) || st.stale.contains_key(&idx) {
                continue;
            }
            let Some(chunk) = st.chunks.get(&idx).cloned() else { continue };
            if st
                .cache
                .get(&idx)
                .is_some_and(|(v, s)| *v == chunk.version && (s.initialized() || Arc::strong_count(s) > 1))
            {
                continue;
            }
            let slot = self.slot(&mut st, &chunk);
            let (inner, ctx) = (self.inner.clone(), self.ctx.clone());
            tokio::spawn(async move {
                // Errors are left for the real read to meet (and retry).
                let _ = slot.get_or_try_init(|| async move { read_chunk(&inner, &ctx, &chunk).await }).await;
            });
        }
    }
}

/// Bytes of chunk `idx` below `size`.
fn extent(size: u64, idx: u64, cs: u64) -> usize {
    size.saturating_sub(idx * cs).min(cs) as usize
}

/// Whether commit answer `a` describes the file after commit answer `b`:
/// by manifest sequence where both have one, else by change time.
fn later(a: &pb::Attr, b: &pb::Attr) -> bool {
    match (&a.manifest, &b.manifest) {
        (Some(x), Some(y)) => x.seq > y.seq,
        _ => a.ctime_ns > b.ctime_ns,
    }
}
