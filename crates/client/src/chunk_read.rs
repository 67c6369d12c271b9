//! Read one whole chunk: its k data cells (parity standing in for any that
//! fail, `stripe_fetch.rs`), decoded only when a data cell was missing,
//! then verified and decrypted off the async threads.
//!
//! If the k shards read decode to bytes that fail authentication, every
//! other set of k is tried (`subset_read.rs`) before the chunk is corrupt.
//!
//! Format v1 chunks (one AEAD message) are concatenated and opened whole;
//! format v2 chunks are opened segment by segment straight out of the
//! cells, with no concatenation pass ([`shardline_crypto::open_segments`]).

use std::sync::Arc;

use bytes::Bytes;
use shardline_crypto::{open_chunk, open_segments, ChunkAad, ChunkFormat, CryptoError, SegmentLayout};
use shardline_proto::v1 as pb;

use crate::client::Inner;
use crate::file_ctx::FileCtx;
use crate::stale;
use crate::stripe_fetch::{fetch_cells, with_fresh_map, FetchFailure, ShardSpan};
use crate::ClientError;

/// Fetch, verify and decrypt a committed chunk; returns its plaintext. A
/// chunk version released since the snapshot was taken fails as
/// [`ClientError::Stale`].
pub(crate) async fn read_chunk(
    inner: &Arc<Inner>,
    ctx: &Arc<FileCtx>,
    chunk: &pb::Chunk,
) -> Result<Bytes, ClientError> {
    match with_fresh_map(inner, || read_once(inner, ctx, chunk)).await {
        Err(e @ ClientError::Corrupt { .. }) => {
            // The k shards read decoded to bytes that do not authenticate:
            // try the other sets of k before giving up.
            let format = chunk_format(ctx, chunk)?;
            match crate::subset_read::open_any_k(inner, ctx, chunk, format).await {
                Ok(Some(plain)) => Ok(Bytes::from(plain)),
                Ok(None) | Err(_) => Err(stale::explain(inner, ctx.ino, chunk, e).await),
            }
        }
        Err(e) => Err(stale::explain(inner, ctx.ino, chunk, e).await),
        ok => ok,
    }
}

async fn read_once(inner: &Arc<Inner>, ctx: &Arc<FileCtx>, chunk: &pb::Chunk) -> Result<Bytes, FetchFailure> {
    let format = chunk_format(ctx, chunk)?;
    let codec = ctx.codec_of(chunk)?;
    let k = codec.data_shards();
    let sealed_len = chunk.sealed_len as usize;
    let cell = codec.cell_size(sealed_len);
    let stripe = fetch_cells(inner, ctx, chunk, 0..k, ShardSpan::Whole { cell }).await?;
    let ctx = ctx.clone();
    let (index, version) = (chunk.index, chunk.version);
    let chunk = chunk.clone();
    let plain = tokio::task::spawn_blocking(move || -> Result<Vec<u8>, ClientError> {
        let codec = ctx.codec_of(&chunk)?;
        let aad = ChunkAad { file_id: ctx.ino, chunk_index: index, version, key_id: &ctx.key_id };
        let opened = match format {
            ChunkFormat::V1 => {
                let sealed = codec.decode(stripe.into_slots(), sealed_len)?;
                open_chunk(&ctx.dek, &aad, &sealed)
            }
            ChunkFormat::V2 => {
                let layout = SegmentLayout::from_sealed_len(sealed_len).map_err(|e| corrupt(&ctx, index, e))?;
                let cells = stripe.into_cells(codec)?;
                let parts: Vec<&[u8]> = cells.iter().map(|c| &c[..]).collect();
                open_segments(&ctx.dek, ctx.suite, &aad, &layout, 0..layout.segment_count(), &parts)
            }
        };
        opened.map_err(|e| corrupt(&ctx, index, e))
    })
    .await
    .map_err(|e| ClientError::Internal(format!("decode task: {e}")))??;
    Ok(Bytes::from(plain))
}

/// The chunk's format, or a clear error for one this client cannot read.
pub(crate) fn chunk_format(ctx: &FileCtx, chunk: &pb::Chunk) -> Result<ChunkFormat, ClientError> {
    ChunkFormat::from_wire(chunk.format).map_err(|e| ClientError::Corrupt {
        file_id: ctx.ino,
        detail: format!("chunk {}: {e} (written by a newer client?)", chunk.index),
    })
}

/// A chunk that failed to open: tampered, misplaced or stale shards.
pub(crate) fn corrupt(ctx: &FileCtx, index: u64, e: CryptoError) -> ClientError {
    ClientError::Corrupt {
        file_id: ctx.ino,
        detail: format!("chunk {index} failed authentication (tampered, misplaced or stale shards): {e}"),
    }
}
