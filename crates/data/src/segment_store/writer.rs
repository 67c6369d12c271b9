//! The group-commit writer: one thread owns the active segment. It takes
//! every request waiting for it (up to a batch limit), appends their records
//! in one vectored write, makes them durable with one `fdatasync`, applies
//! them to the index and only then answers each caller. Callers meanwhile
//! queue for the next batch, so one sync covers every shard that arrived
//! while the previous one ran.
//!
//! A failed write or sync fails every request of the batch and cuts the
//! segment back to where the batch began (the records were never
//! acknowledged, and must not come back at the next start). If even that
//! fails, the store stops accepting writes until it is reopened.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;

use shardline_types::ShardKey;

use super::format::{
    align_up, fill_block_table, Kind, RecordHeader, SegmentHeader, WholeCrc, BATCH_ALIGN, BUFFERED_ALIGN, DIRECT_ALIGN,
    RECORD_FIXED_LEN, SEGMENT_HEADER_LEN,
};
use super::index::{Observed, Pos, Rec};
use super::{now_ns, Shared};
use crate::aligned_buf::AlignedBuf;
use crate::disk::{sync_dir, write_err};
use crate::DataError;

/// At most this many records per batch.
const MAX_BATCH_RECORDS: usize = 512;

/// Zeros for the padding that ends a buffered batch.
static ZEROS: [u8; BATCH_ALIGN as usize] = [0; BATCH_ALIGN as usize];

/// A record ready to append: header, block table and payload in `buf[..len]`.
pub(crate) struct Body {
    pub(crate) buf: AlignedBuf,
    pub(crate) len: usize,
    pub(crate) header: RecordHeader,
}

impl Body {
    /// A put record for `data`; also returns the CRC32C of `data`, computed
    /// in the same pass as the block table.
    pub(crate) fn put(key: ShardKey, data: &[u8], mtime_ns: u64) -> Result<(Body, u32), DataError> {
        let mut header = RecordHeader::new(Kind::Put, key, data.len() as u64, 0, mtime_ns);
        let hl = header.header_len();
        let len = hl + data.len();
        let mut buf = AlignedBuf::zeroed(len)?;
        let block = header.block_len();
        let mut whole = WholeCrc::new(block);
        {
            let (head, rest) = buf.as_mut_slice().split_at_mut(hl);
            let table = &mut head[RECORD_FIXED_LEN..];
            // Copy a block, then checksum it while it is in cache.
            for (i, (src, dst)) in data.chunks(block).zip(rest.chunks_mut(block)).enumerate() {
                let dst = &mut dst[..src.len()];
                dst.copy_from_slice(src);
                let crc = crc32c::crc32c(dst);
                table[4 * i..4 * i + 4].copy_from_slice(&crc.to_le_bytes());
                whole.push(dst, crc);
            }
        }
        header.payload_crc = whole.crc();
        Ok((Body { buf, len, header }, whole.crc()))
    }

    /// A tombstone for `key`.
    pub(crate) fn tomb(key: ShardKey, mtime_ns: u64) -> Result<Body, DataError> {
        let header = RecordHeader::new(Kind::Tomb, key, 0, crc32c::crc32c(&[]), mtime_ns);
        Ok(Body { buf: AlignedBuf::zeroed(RECORD_FIXED_LEN)?, len: RECORD_FIXED_LEN, header })
    }

    /// A record (header and payload) as read from a segment, to be
    /// appended again as it is (same sequence number: compaction).
    pub(crate) fn copied(buf: AlignedBuf, header: RecordHeader) -> Body {
        let len = header.body_len() as usize;
        Body { buf, len, header }
    }

    /// A record for a shard read from a legacy file (sequence number 0:
    /// anything the store itself writes later wins over it).
    pub(crate) fn migrated(key: ShardKey, data: &[u8], mtime_ns: u64) -> Result<Body, DataError> {
        let mut header = RecordHeader::new(Kind::Put, key, data.len() as u64, 0, mtime_ns);
        let hl = header.header_len();
        let mut buf = AlignedBuf::zeroed(hl + data.len())?;
        let slice = buf.as_mut_slice();
        slice[hl..hl + data.len()].copy_from_slice(data);
        header.payload_crc = fill_block_table(data, header.block_len(), &mut slice[RECORD_FIXED_LEN..hl]);
        Ok(Body { buf, len: hl + data.len(), header })
    }

    /// Bytes this record occupies in a segment of record alignment `align`.
    pub(crate) fn padded(&self, align: u32) -> u64 {
        align_up(self.len as u64, u64::from(align))
    }
}

/// One record to append.
pub(crate) enum Entry {
    /// A new shard; `reserved` bytes of space were reserved for it.
    Put { body: Body, reserved: u64 },
    /// Delete a key: becomes a [`Entry::Tomb`] in the writer.
    Delete { key: ShardKey },
    /// A tombstone record (made by the writer from a delete).
    Tomb { body: Body },
    /// A record keeping its sequence number (compaction, migration).
    Copy { body: Body },
}

/// What became of an [`Entry`] once durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Stored,
    /// Whether the key had a shard.
    Deleted(bool),
    /// Whether the copy is the key's newest record.
    Copied(bool),
}

struct Request {
    entries: Vec<Entry>,
    reply: SyncSender<Result<Vec<Outcome>, DataError>>,
}

/// Sends requests to the writer thread.
#[derive(Clone)]
pub(crate) struct WriterClient {
    tx: Sender<Request>,
    /// Requests sent and not yet taken into a batch.
    queued: Arc<AtomicUsize>,
}

impl WriterClient {
    /// Append `entries` and wait until they are durable and applied.
    pub(crate) fn submit(&self, entries: Vec<Entry>) -> Result<Vec<Outcome>, DataError> {
        let stopped = || DataError::Internal("the segment writer stopped".into());
        let (reply, done) = mpsc::sync_channel(1);
        self.queued.fetch_add(1, Ordering::SeqCst);
        if self.tx.send(Request { entries, reply }).is_err() {
            self.queued.fetch_sub(1, Ordering::SeqCst);
            return Err(stopped());
        }
        done.recv().map_err(|_| stopped())?
    }

    /// Requests waiting for the next batch.
    #[cfg(test)]
    pub(crate) fn queued(&self) -> usize {
        self.queued.load(Ordering::SeqCst)
    }
}

/// The segment being appended to.
pub(crate) struct Active {
    pub(crate) file: File,
    pub(crate) id: u64,
    /// Where the next batch goes (a multiple of [`BATCH_ALIGN`]).
    pub(crate) end: u64,
    pub(crate) align: u32,
}

/// The writer thread's state.
pub(crate) struct Writer {
    pub(crate) shared: Arc<Shared>,
    pub(crate) active: Active,
    pub(crate) next_seq: u64,
    pub(crate) next_segment: u64,
}

impl Writer {
    /// Start the thread; the returned client is its only way in (the thread
    /// ends when every client is gone).
    pub(crate) fn start(self) -> Result<(WriterClient, JoinHandle<()>), DataError> {
        let (tx, rx) = mpsc::channel();
        let queued = Arc::new(AtomicUsize::new(0));
        let counter = queued.clone();
        let thread = std::thread::Builder::new()
            .name("segment-writer".into())
            .spawn(move || self.run(rx, &counter))
            .map_err(|e| DataError::io("start the segment writer", e))?;
        Ok((WriterClient { tx, queued }, thread))
    }

    fn run(mut self, rx: Receiver<Request>, queued: &AtomicUsize) {
        while let Ok(first) = rx.recv() {
            queued.fetch_sub(1, Ordering::SeqCst);
            let mut batch = vec![first];
            let mut bytes: usize = batch[0].entries.iter().map(entry_len).sum();
            let mut records = batch[0].entries.len();
            while bytes < self.shared.cfg.max_batch_bytes && records < MAX_BATCH_RECORDS {
                match rx.try_recv() {
                    Ok(r) => {
                        queued.fetch_sub(1, Ordering::SeqCst);
                        bytes += r.entries.iter().map(entry_len).sum::<usize>();
                        records += r.entries.len();
                        batch.push(r);
                    }
                    Err(_) => break,
                }
            }
            let mut entries = Vec::with_capacity(records);
            let mut counts = Vec::with_capacity(batch.len());
            let mut replies = Vec::with_capacity(batch.len());
            for r in batch {
                counts.push(r.entries.len());
                entries.extend(r.entries);
                replies.push(r.reply);
            }
            match self.commit(entries) {
                Ok(outcomes) => {
                    let mut it = outcomes.into_iter();
                    for (n, reply) in counts.into_iter().zip(replies) {
                        let _ = reply.send(Ok(it.by_ref().take(n).collect()));
                    }
                }
                Err(e) => {
                    for reply in replies {
                        let _ = reply.send(Err(same_error(&e)));
                    }
                }
            }
        }
    }

    /// Append `entries` as one batch: write, sync, apply.
    fn commit(&mut self, mut entries: Vec<Entry>) -> Result<Vec<Outcome>, DataError> {
        let result = self.write_batch(&mut entries);
        let mut st = self.shared.lock();
        if let Err(e) = result {
            for e in &entries {
                if let Entry::Put { reserved, .. } = e {
                    st.reserved = st.reserved.saturating_sub(*reserved);
                }
            }
            if matches!(e, DataError::NoSpace { .. }) {
                st.space.invalidate();
            }
            return Err(e);
        }
        let batch_start = self.active.end;
        let seg = self.active.id;
        let mut outcomes = Vec::with_capacity(entries.len());
        let mut offset = batch_start;
        let mut changed = false;
        for entry in &entries {
            let body = body_of(entry);
            let h = &body.header;
            let len = body.padded(self.active.align);
            let rec = Rec {
                pos: Pos { seg, offset },
                len,
                kind: h.kind,
                seq: h.seq,
                payload_len: h.payload_len,
                crc: h.payload_crc,
                mtime_ns: h.mtime_ns,
                block_log2: h.block_log2,
            };
            offset += len;
            let had_shard = st.index.get(&h.key).is_some();
            let observed = st.index.observe(h.key, rec);
            outcomes.push(match entry {
                Entry::Put { reserved, .. } => {
                    st.reserved = st.reserved.saturating_sub(*reserved);
                    changed |= had_shard;
                    Outcome::Stored
                }
                Entry::Copy { .. } => Outcome::Copied(matches!(observed, Observed::Newest { .. })),
                Entry::Tomb { .. } | Entry::Delete { .. } => {
                    changed |= had_shard;
                    Outcome::Deleted(had_shard)
                }
            });
        }
        let batch_end = align_up(offset, BATCH_ALIGN);
        st.index.set_segment_end(seg, batch_end);
        st.space.appended(batch_end - batch_start);
        drop(st);
        self.active.end = batch_end;
        if changed {
            self.shared.poke_compactor();
        }
        Ok(outcomes)
    }

    /// Turn deletes into tombstones, lay the batch out, write it and sync it.
    /// On failure the segment is cut back to where the batch began.
    fn write_batch(&mut self, entries: &mut [Entry]) -> Result<(), DataError> {
        if let Some(why) = &self.shared.lock().failed {
            return Err(DataError::Io {
                context: "write to the segment store",
                source: std::io::Error::other(why.clone()),
            });
        }
        let mtime = now_ns();
        for e in entries.iter_mut() {
            if let Entry::Delete { key } = e {
                *e = Entry::Tomb { body: Body::tomb(*key, mtime)? };
            }
        }
        let align = self.active.align;
        let total: u64 = entries.iter().map(|e| body_of(e).padded(align)).sum();
        let batch_len = align_up(total, BATCH_ALIGN);
        if self.active.end > SEGMENT_HEADER_LEN && self.active.end + batch_len > self.shared.cfg.segment_bytes {
            self.rotate()?;
        }
        let align = self.active.align;
        let start = self.active.end;
        let mut offset = start;
        for e in entries.iter_mut() {
            let seq = if matches!(e, Entry::Put { .. } | Entry::Tomb { .. }) {
                self.next_seq += 1;
                self.next_seq - 1
            } else {
                body_of(e).header.seq
            };
            let body = body_of_mut(e);
            body.header.seq = seq;
            body.header.batch_start = start;
            let header = body.header;
            header.seal_into(body.buf.as_mut_slice());
            offset += body.padded(align);
        }
        let pad = (align_up(offset, BATCH_ALIGN) - offset) as usize;
        let mut slices: Vec<&[u8]> =
            entries.iter().map(|e| &body_of(e).buf.as_slice()[..body_of(e).padded(align) as usize]).collect();
        slices.push(&ZEROS[..pad]);
        let io = self.shared.io.clone();
        if let Err(e) = io.write_at(&self.active.file, &slices, start) {
            self.cut_back(start);
            return Err(write_err("append to segment", e));
        }
        if let Err(e) = io.sync_data(&self.active.file) {
            self.cut_back(start);
            return Err(write_err("sync segment", e));
        }
        Ok(())
    }

    /// Remove a failed batch: cut the segment back to `start`, durably. If
    /// that fails too, refuse all further writes.
    fn cut_back(&mut self, start: u64) {
        let cut = self.active.file.set_len(start).and_then(|()| self.shared.io.sync_data(&self.active.file));
        if let Err(e) = cut {
            tracing::error!(
                segment = self.active.id,
                error = %e,
                "cannot remove a failed write from the segment; refusing writes until the store is reopened"
            );
            self.shared.lock().failed =
                Some(format!("a failed write could not be removed from segment {} ({e})", self.active.id));
        }
    }

    /// Start a new segment (durably: file and directory entry), and make it
    /// the active one.
    pub(crate) fn rotate(&mut self) -> Result<(), DataError> {
        let id = self.next_segment;
        let (file, align) = create_segment(&self.shared, id)?;
        let read = open_for_reads(&self.shared.dir.join(super::format::segment_file_name(id)))?;
        self.next_segment += 1;
        let old = self.active.id;
        {
            let mut st = self.shared.lock();
            st.files.insert(id, Arc::new(read));
            st.index.set_segment_end(id, SEGMENT_HEADER_LEN);
            st.active = id;
        }
        self.active = Active { file, id, end: SEGMENT_HEADER_LEN, align };
        tracing::debug!(segment = id, sealed = old, "started a new segment");
        self.shared.poke_compactor();
        Ok(())
    }
}

/// Create segment `id`'s file with its header, durably, opened for
/// appending (with `O_DIRECT` if the store uses it and the file system
/// takes it). Returns the file and its record alignment.
pub(crate) fn create_segment(shared: &Shared, id: u64) -> Result<(File, u32), DataError> {
    let path = shared.dir.join(super::format::segment_file_name(id));
    let (file, align) = open_for_appends(shared, &path, true)?;
    let header = SegmentHeader { id, align, created_secs: now_ns() / 1_000_000_000 };
    let mut block = AlignedBuf::zeroed(SEGMENT_HEADER_LEN as usize)?;
    block.as_mut_slice()[..64].copy_from_slice(&header.encode());
    let written = shared
        .io
        .write_at(&file, &[block.as_slice()], 0)
        .and_then(|()| shared.io.sync_data(&file))
        .map_err(|e| write_err("write segment header", e))
        .and_then(|()| sync_dir(&shared.dir));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&path);
        return Err(e);
    }
    Ok((file, align))
}

/// Open a segment for appending: with `O_DIRECT` when the store uses it
/// (turning it off for good if the file system refuses), `create`ing it new.
pub(crate) fn open_for_appends(shared: &Shared, path: &Path, create: bool) -> Result<(File, u32), DataError> {
    let mut opts = OpenOptions::new();
    opts.read(true).write(true);
    if create {
        opts.create_new(true);
    }
    if shared.direct() {
        match opts.clone().custom_flags(libc::O_DIRECT).open(path) {
            Ok(f) => return Ok((f, DIRECT_ALIGN)),
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                tracing::info!("the file system refuses O_DIRECT; segments are written through the page cache");
                shared.set_direct(false);
                if create {
                    // The refused open may have created the file.
                    let _ = std::fs::remove_file(path);
                }
            }
            Err(e) => return Err(write_err("open segment for appends", e)),
        }
    }
    let f = opts.open(path).map_err(|e| write_err("open segment for appends", e))?;
    Ok((f, BUFFERED_ALIGN))
}

/// Open a segment for reads (through the page cache, without read-ahead:
/// gets read exactly what they need).
pub(crate) fn open_for_reads(path: &Path) -> Result<File, DataError> {
    let f = File::open(path).map_err(|e| DataError::io("open segment for reads", e))?;
    // SAFETY: posix_fadvise takes a valid descriptor (borrowed from `f`)
    // and plain integers; it is advice and its result is not needed.
    unsafe {
        libc::posix_fadvise(std::os::fd::AsRawFd::as_raw_fd(&f), 0, 0, libc::POSIX_FADV_RANDOM);
    }
    Ok(f)
}

fn body_of(e: &Entry) -> &Body {
    match e {
        Entry::Put { body, .. } | Entry::Tomb { body } | Entry::Copy { body } => body,
        Entry::Delete { .. } => unreachable!("deletes are tombstones by now"),
    }
}

fn body_of_mut(e: &mut Entry) -> &mut Body {
    match e {
        Entry::Put { body, .. } | Entry::Tomb { body } | Entry::Copy { body } => body,
        Entry::Delete { .. } => unreachable!("deletes are tombstones by now"),
    }
}

/// Rough bytes of an entry, for the batch limit.
fn entry_len(e: &Entry) -> usize {
    match e {
        Entry::Put { body, .. } | Entry::Tomb { body } | Entry::Copy { body } => body.len,
        Entry::Delete { .. } => RECORD_FIXED_LEN,
    }
}

/// The same error again, for each request of a failed batch.
pub(crate) fn same_error(e: &DataError) -> DataError {
    match e {
        DataError::NoSpace { needed, available } => DataError::NoSpace { needed: *needed, available: *available },
        DataError::Io { context, source } => DataError::Io {
            context,
            source: match source.raw_os_error() {
                Some(code) => std::io::Error::from_raw_os_error(code),
                None => std::io::Error::new(source.kind(), source.to_string()),
            },
        },
        other => DataError::Internal(other.chain()),
    }
}
