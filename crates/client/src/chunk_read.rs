//! Read one chunk: the k data shards first, parity for any that fail, then
//! decode (only when a data shard was missing) and decrypt.

use std::sync::Arc;

use bytes::Bytes;
use futures::stream::{FuturesUnordered, StreamExt};
use shardline_crypto::{open_chunk, ChunkAad};
use shardline_proto::v1 as pb;
use shardline_types::ShardKey;

use crate::client::{FileCtx, Inner};
use crate::ClientError;
use shardline_rpc::shard_client as shard_io;

/// Fetch, verify and decrypt a committed chunk; returns its plaintext.
pub(crate) async fn read_chunk(
    inner: &Arc<Inner>,
    ctx: &Arc<FileCtx>,
    chunk: &pb::Chunk,
) -> Result<Bytes, ClientError> {
    match read_once(inner, ctx, chunk).await {
        // The map moved under us (a server failed and its groups were
        // remapped): refresh once and read from the new targets.
        Err((_, true)) => {
            inner.refresh_placement().await?;
            read_once(inner, ctx, chunk).await.map_err(|(e, _)| e)
        }
        other => other.map_err(|(e, _)| e),
    }
}

/// One attempt; on failure also says whether a server reported a stale epoch.
async fn read_once(inner: &Arc<Inner>, ctx: &Arc<FileCtx>, chunk: &pb::Chunk) -> Result<Bytes, (ClientError, bool)> {
    let k = ctx.codec.data_shards();
    let width = k + ctx.codec.parity_shards();
    let sealed_len = chunk.sealed_len as usize;
    let cell = ctx.codec.cell_size(sealed_len);
    let view = inner.placement();
    let targets = view.targets(chunk.pg, width).map_err(|e| (e, false))?;
    let mut stale = false;
    let key = |i: usize| ShardKey {
        file_id: ctx.ino,
        chunk_index: chunk.index,
        version: chunk.version,
        shard_index: i as u32,
    };

    let mut slots: Vec<Option<Bytes>> = vec![None; width];
    let mut have = 0;
    let mut next_spare = k;
    let mut failures = Vec::new();
    let mut inflight = FuturesUnordered::new();
    let fetch = |i: usize| {
        let (pool, addr, sk, epoch) = (&inner.pool, targets[i].clone(), key(i), view.epoch);
        async move { (i, shard_io::get(pool, &addr, &sk, epoch).await) }
    };
    for i in 0..k {
        inflight.push(fetch(i));
    }
    while let Some((i, result)) = inflight.next().await {
        match result {
            Ok(bytes) if bytes.len() == cell => {
                slots[i] = Some(bytes);
                have += 1;
                continue;
            }
            Ok(bytes) => failures.push(format!("shard {i}: {} bytes, expected {cell}", bytes.len())),
            Err(e) => {
                stale |= e.code == shardline_types::ErrorCode::StaleEpoch;
                tracing::debug!(file_id = ctx.ino, chunk = chunk.index, shard = i, error = %e, "shard read failed; trying parity");
                failures.push(format!("shard {i}: {e}"));
            }
        }
        if next_spare < width {
            inflight.push(fetch(next_spare));
            next_spare += 1;
        }
    }
    if have < k {
        let e = ClientError::Unavailable {
            file_id: ctx.ino,
            chunk_index: chunk.index,
            have,
            need: k,
            detail: failures.join("; "),
        };
        return Err((e, stale));
    }
    let ctx = ctx.clone();
    let (index, version) = (chunk.index, chunk.version);
    tokio::task::spawn_blocking(move || {
        let sealed = ctx.codec.decode(slots, sealed_len)?;
        let aad = ChunkAad { file_id: ctx.ino, chunk_index: index, version, key_id: &ctx.key_id };
        open_chunk(&ctx.dek, &aad, &sealed).map(Bytes::from).map_err(|_| ClientError::Corrupt {
            file_id: ctx.ino,
            detail: format!("chunk {index} failed authentication (tampered, misplaced or stale shards)"),
        })
    })
    .await
    .map_err(|e| (ClientError::Internal(format!("decode task: {e}")), false))?
    .map_err(|e| (e, false))
}
