//! Read a byte range of one chunk into a caller's buffer, fetching and
//! decrypting only the segments that hold it (chunk format v2).
//!
//! The segments' sealed bytes are one contiguous range of the sealed chunk,
//! and the sealed chunk is cut into k contiguous cells, so the range falls
//! in one cell or straddles two (more only for ranges longer than a cell).
//! Each piece is fetched from the shard holding it with a ranged `GetShard`
//! (`stripe_fetch.rs`: the same range of any k shards if that one fails); a
//! range covering the whole chunk fetches its k data cells whole instead,
//! as a whole-chunk read does.
//!
//! The plaintext lands straight in the output slice
//! ([`read_chunk_range_into`]): each segment wholly inside the range is
//! copied into its place there and verified and decrypted in place
//! ([`shardline_crypto::open_segments_into`]). Bytes pass through a scratch
//! buffer only where they must:
//! - a segment only partly inside the range (at most the first and the
//!   last; a segment authenticates only whole) is opened in a buffer of one
//!   segment and its part copied out;
//! - a degraded read first decodes the missing cells' byte range
//!   (ciphertext) into buffers of its own, then opens into the output as
//!   usual;
//! - format v1 chunks have no segments, and shards that fail authentication
//!   are re-read whole from every set of k (`subset_read.rs`): both read the
//!   whole chunk (`chunk_read.rs`) and copy the range out.
//!
//! As the output is borrowed, decrypting (and any decoding) runs on the
//! thread polling the read ([`run_cpu`]), not on the blocking pool; the
//! fetch runs on a task of its own, so a read of several chunks goes on
//! fetching the others while one is decrypted.
//! [`read_chunk_range`] is the same into a fresh buffer, as `Bytes`.

use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use futures::future::try_join_all;
use shardline_crypto::{open_segments_into, ChunkAad, ChunkFormat, SegmentLayout};
use shardline_proto::v1 as pb;

use crate::chunk_read::{chunk_format, corrupt, read_chunk};
use crate::client::Inner;
use crate::file_ctx::FileCtx;
use crate::stale;
use crate::stripe_fetch::{fetch_cells, with_fresh_map, FetchFailure, ShardSpan, Stripe};
use crate::ClientError;

/// Segments' worth of CPU work done inline, below which handing the
/// worker's other tasks to another thread (`block_in_place`) costs more
/// than it saves: about 150 µs of AES-256-GCM, 600 µs of XChaCha20-Poly1305
/// on the development machine. A 128 KiB sample (two or three segments)
/// stays inline: under `block_in_place` random 128 KiB reads ran about 9%
/// slower than with the decryption on the blocking pool before.
const INLINE_WORK: usize = 1 << 20;

/// The plaintext bytes `plain` of a committed chunk, cut to what the chunk
/// holds (shorter, or empty, past its end): [`read_chunk_range_into`] into
/// a buffer of its own.
pub(crate) async fn read_chunk_range(
    inner: &Arc<Inner>,
    ctx: &Arc<FileCtx>,
    chunk: &pb::Chunk,
    plain: Range<usize>,
) -> Result<Bytes, ClientError> {
    let mut out = vec![0u8; plain.len()];
    let n = read_chunk_range_into(inner, ctx, chunk, plain.start, &mut out).await?;
    out.truncate(n);
    Ok(Bytes::from(out))
}

/// Fill `out` with the plaintext of a committed chunk from byte `at`;
/// returns the bytes written (fewer than `out.len()`, or none, where the
/// chunk ends). A chunk version released since the snapshot was taken fails
/// as [`ClientError::Stale`].
pub(crate) async fn read_chunk_range_into(
    inner: &Arc<Inner>,
    ctx: &Arc<FileCtx>,
    chunk: &pb::Chunk,
    at: usize,
    out: &mut [u8],
) -> Result<usize, ClientError> {
    if chunk_format(ctx, chunk)? == ChunkFormat::V1 {
        return copy_from_whole(inner, ctx, chunk, at, out).await;
    }
    let opened = match fetch_apart(inner, ctx, chunk, at..at.saturating_add(out.len())).await {
        Ok(fetched) => run_cpu(fetched.work(), || fetched.open_into(ctx, chunk, at, out)),
        Err(e) => Err(e),
    };
    match opened {
        // Shards that decode to bytes failing authentication: the whole
        // chunk read tries every set of k (`subset_read.rs`).
        Err(ClientError::Corrupt { .. }) => copy_from_whole(inner, ctx, chunk, at, out).await,
        Err(e) => Err(stale::explain(inner, ctx.ino, chunk, e).await),
        ok => ok,
    }
}

/// The chunk read whole (every set of k tried before it is corrupt) and
/// bytes `at..` of it copied into `out`: the scratch-buffer path.
async fn copy_from_whole(
    inner: &Arc<Inner>,
    ctx: &Arc<FileCtx>,
    chunk: &pb::Chunk,
    at: usize,
    out: &mut [u8],
) -> Result<usize, ClientError> {
    let whole = read_chunk(inner, ctx, chunk).await?;
    let end = at.saturating_add(out.len()).min(whole.len());
    let from = at.min(end);
    out[..end - from].copy_from_slice(&whole[from..end]);
    Ok(end - from)
}

/// The sealed bytes of the segments holding a plaintext range, as fetched.
struct Fetched {
    layout: SegmentLayout,
    segs: Range<usize>,
    /// One stripe per cell piece, in order (one stripe of k whole cells
    /// for the whole chunk).
    stripes: Vec<Stripe>,
}

/// [`fetch_segments`] (again with a fresh map if the map moved) on a task of
/// its own, so that it goes on while the caller's task decrypts another
/// chunk ([`run_cpu`] holds that task); aborted if the read is dropped.
async fn fetch_apart(
    inner: &Arc<Inner>,
    ctx: &Arc<FileCtx>,
    chunk: &pb::Chunk,
    plain: Range<usize>,
) -> Result<Fetched, ClientError> {
    let (inner, ctx, chunk) = (inner.clone(), ctx.clone(), chunk.clone());
    let mut task = AbortOnDrop(tokio::spawn(async move {
        with_fresh_map(&inner, || fetch_segments(&inner, &ctx, &chunk, plain.clone())).await
    }));
    (&mut task.0).await.map_err(|e| ClientError::Internal(format!("fetch task: {e}")))?
}

/// A task aborted when its handle is dropped.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Fetch the segments of a format v2 chunk that hold plaintext `plain`.
async fn fetch_segments(
    inner: &Arc<Inner>,
    ctx: &Arc<FileCtx>,
    chunk: &pb::Chunk,
    plain: Range<usize>,
) -> Result<Fetched, FetchFailure> {
    let sealed_len = chunk.sealed_len as usize;
    let layout = SegmentLayout::from_sealed_len(sealed_len).map_err(|e| corrupt(ctx, chunk.index, e))?;
    let segs = layout.segments_for(plain);
    if segs.is_empty() {
        return Ok(Fetched { layout, segs, stripes: Vec::new() });
    }
    let codec = ctx.codec_of(chunk)?;
    let cell = codec.cell_size(sealed_len);
    let stripes = if segs == (0..layout.segment_count()) {
        vec![fetch_cells(inner, ctx, chunk, 0..codec.data_shards(), ShardSpan::Whole { cell }).await?]
    } else {
        let pieces = cell_pieces(layout.sealed_range(segs.clone()), cell);
        try_join_all(pieces.iter().map(|&(c, ref r)| {
            fetch_cells(inner, ctx, chunk, c..c + 1, ShardSpan::Range { offset: r.start, len: r.len() })
        }))
        .await?
    };
    Ok(Fetched { layout, segs, stripes })
}

impl Fetched {
    /// Plaintext bytes to decrypt: a measure of the CPU work.
    fn work(&self) -> usize {
        self.layout.plain_range(self.segs.clone()).len()
    }

    /// Decode any cell not fetched, then open plaintext bytes `at..` into
    /// `out`, cut where the chunk ends; returns the bytes written.
    fn open_into(self, ctx: &FileCtx, chunk: &pb::Chunk, at: usize, out: &mut [u8]) -> Result<usize, ClientError> {
        let end = at.saturating_add(out.len()).min(self.layout.plain_len());
        if at >= end {
            return Ok(0);
        }
        let codec = ctx.codec_of(chunk)?;
        let mut parts = Vec::with_capacity(self.stripes.len());
        for s in self.stripes {
            parts.extend(s.into_cells(codec)?);
        }
        let refs: Vec<&[u8]> = parts.iter().map(|p| &p[..]).collect();
        let aad = ChunkAad { file_id: ctx.ino, chunk_index: chunk.index, version: chunk.version, key_id: &ctx.key_id };
        open_segments_into(&ctx.dek, ctx.suite, &aad, &self.layout, at, &refs, &mut out[..end - at])
            .map_err(|e| corrupt(ctx, chunk.index, e))?;
        Ok(end - at)
    }
}

/// Run `f`, about `work` bytes of CPU work on a borrowed buffer (so it
/// cannot go to the blocking pool), on this thread: under
/// `block_in_place` on a multi-threaded Tokio runtime when it is large (the
/// worker's other tasks move to another thread meanwhile; this task's other
/// futures wait), directly otherwise: small work, a current-thread runtime,
/// or a thread blocked on the runtime (such as a Python caller's, with the
/// GIL released), where `block_in_place` would do the same.
fn run_cpu<R>(work: usize, f: impl FnOnce() -> R) -> R {
    use tokio::runtime::{Handle, RuntimeFlavor};
    let multi = Handle::try_current().is_ok_and(|h| h.runtime_flavor() == RuntimeFlavor::MultiThread);
    if multi && work >= INLINE_WORK {
        tokio::task::block_in_place(f)
    } else {
        f()
    }
}

/// The pieces of the sealed byte range `sealed` as (cell index, range
/// within that cell), for cells of `cell` bytes.
fn cell_pieces(sealed: Range<usize>, cell: usize) -> Vec<(usize, Range<usize>)> {
    let mut out = Vec::new();
    let mut at = sealed.start;
    while at < sealed.end {
        let c = at / cell;
        let end = sealed.end.min((c + 1) * cell);
        out.push((c, at - c * cell..end - c * cell));
        at = end;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{cell_pieces, run_cpu};

    #[test]
    fn a_sealed_range_splits_at_cell_boundaries() {
        assert_eq!(cell_pieces(10..20, 100), vec![(0, 10..20)]);
        assert_eq!(cell_pieces(90..120, 100), vec![(0, 90..100), (1, 0..20)]);
        assert_eq!(cell_pieces(100..200, 100), vec![(1, 0..100)]);
        assert_eq!(cell_pieces(50..350, 100), vec![(0, 50..100), (1, 0..100), (2, 0..100), (3, 0..50)]);
        assert!(cell_pieces(5..5, 100).is_empty());
    }

    /// `block_in_place` panics on a current-thread runtime; work of any size
    /// runs there, and on a multi-threaded one, inside and outside workers.
    #[test]
    fn cpu_work_runs_on_either_runtime_flavor_and_outside_one() {
        let big = 1 << 30;
        assert_eq!(run_cpu(big, || 1), 1);
        let current = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
        assert_eq!(current.block_on(async { run_cpu(big, || 2) }), 2);
        let multi = tokio::runtime::Builder::new_multi_thread().worker_threads(2).build().expect("runtime");
        assert_eq!(multi.block_on(async { run_cpu(big, || 3) }), 3);
        let spawned = multi.block_on(async { tokio::spawn(async move { run_cpu(big, || 4) }).await });
        assert_eq!(spawned.expect("join"), 4);
    }
}
