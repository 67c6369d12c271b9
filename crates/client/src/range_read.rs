//! Read a byte range of one chunk, fetching and decrypting only the
//! segments that hold it (chunk format v2).
//!
//! The segments' sealed bytes are one contiguous range of the sealed chunk,
//! and the sealed chunk is cut into k contiguous cells, so the range falls
//! in one cell or straddles two (more only for ranges longer than a cell).
//! Each piece is fetched from the shard holding it with a ranged `GetShard`
//! (`stripe_fetch.rs`: the same range of any k shards if that one fails);
//! the segments are then verified and decrypted on a blocking thread.
//! Format v1 chunks have no segments: the whole chunk is read and cut.

use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use futures::future::try_join_all;
use shardline_crypto::{open_segments, ChunkAad, ChunkFormat, SegmentLayout};
use shardline_proto::v1 as pb;

use crate::chunk_read::{chunk_format, corrupt, read_chunk};
use crate::client::Inner;
use crate::file_ctx::FileCtx;
use crate::stale;
use crate::stripe_fetch::{fetch_cells, with_fresh_map, ShardSpan};
use crate::ClientError;

/// The plaintext bytes `plain` of a committed chunk, cut to what the chunk
/// holds (shorter, or empty, past its end). A chunk version released since
/// the snapshot was taken fails as [`ClientError::Stale`].
pub(crate) async fn read_chunk_range(
    inner: &Arc<Inner>,
    ctx: &Arc<FileCtx>,
    chunk: &pb::Chunk,
    plain: Range<usize>,
) -> Result<Bytes, ClientError> {
    if chunk_format(ctx, chunk)? == ChunkFormat::V1 {
        let whole = read_chunk(inner, ctx, chunk).await?;
        let end = plain.end.min(whole.len());
        return Ok(whole.slice(plain.start.min(end)..end));
    }
    match read_segments(inner, ctx, chunk, plain.clone()).await {
        // Shards that decode to bytes failing authentication: the whole
        // chunk read tries every set of k (`subset_read.rs`).
        Err(ClientError::Corrupt { .. }) => {
            let whole = read_chunk(inner, ctx, chunk).await?;
            let end = plain.end.min(whole.len());
            Ok(whole.slice(plain.start.min(end)..end))
        }
        Err(e) => Err(stale::explain(inner, ctx.ino, chunk, e).await),
        ok => ok,
    }
}

/// [`read_chunk_range`] of a format v2 chunk.
async fn read_segments(
    inner: &Arc<Inner>,
    ctx: &Arc<FileCtx>,
    chunk: &pb::Chunk,
    plain: Range<usize>,
) -> Result<Bytes, ClientError> {
    let sealed_len = chunk.sealed_len as usize;
    let layout = SegmentLayout::from_sealed_len(sealed_len).map_err(|e| corrupt(ctx, chunk.index, e))?;
    let segs = layout.segments_for(plain.clone());
    if segs.is_empty() {
        return Ok(Bytes::new());
    }
    let pieces = cell_pieces(layout.sealed_range(segs.clone()), ctx.codec_of(chunk)?.cell_size(sealed_len));
    let stripes = with_fresh_map(inner, || {
        try_join_all(pieces.iter().map(|&(cell, ref r)| {
            let span = ShardSpan::Range { offset: r.start, len: r.len() };
            fetch_cells(inner, ctx, chunk, cell..cell + 1, span)
        }))
    })
    .await?;
    let ctx = ctx.clone();
    let (index, version) = (chunk.index, chunk.version);
    let chunk = chunk.clone();
    tokio::task::spawn_blocking(move || -> Result<Bytes, ClientError> {
        let codec = ctx.codec_of(&chunk)?;
        let mut parts = Vec::with_capacity(stripes.len());
        for s in stripes {
            parts.extend(s.into_cells(codec)?);
        }
        let refs: Vec<&[u8]> = parts.iter().map(|p| &p[..]).collect();
        let aad = ChunkAad { file_id: ctx.ino, chunk_index: index, version, key_id: &ctx.key_id };
        let opened = open_segments(&ctx.dek, ctx.suite, &aad, &layout, segs.clone(), &refs)
            .map_err(|e| corrupt(&ctx, index, e))?;
        let base = layout.plain_range(segs).start;
        let end = plain.end.min(layout.plain_len()) - base;
        Ok(Bytes::from(opened).slice(plain.start - base..end))
    })
    .await
    .map_err(|e| ClientError::Internal(format!("decrypt task: {e}")))?
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
    use super::cell_pieces;

    #[test]
    fn a_sealed_range_splits_at_cell_boundaries() {
        assert_eq!(cell_pieces(10..20, 100), vec![(0, 10..20)]);
        assert_eq!(cell_pieces(90..120, 100), vec![(0, 90..100), (1, 0..20)]);
        assert_eq!(cell_pieces(100..200, 100), vec![(1, 0..100)]);
        assert_eq!(cell_pieces(50..350, 100), vec![(0, 50..100), (1, 0..100), (2, 0..100), (3, 0..50)]);
        assert!(cell_pieces(5..5, 100).is_empty());
    }
}
