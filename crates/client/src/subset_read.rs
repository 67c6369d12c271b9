//! The last resort of a chunk read: the k shards first read decoded to
//! bytes that fail authentication (a shard whose CRC is good but whose
//! content is not this chunk version's: swapped, replayed, or served wrong
//! by a faulty or hostile data server). Every shard of the chunk is then
//! fetched and each set of k tried in turn until one opens; only if none
//! does is the chunk corrupt. Costs nothing on healthy reads.

use std::sync::Arc;

use bytes::Bytes;
use futures::future::join_all;
use shardline_crypto::{open_chunk, open_segments, ChunkAad, ChunkFormat, SegmentLayout};
use shardline_proto::v1 as pb;
use shardline_rpc::shard_client as shard_io;
use shardline_types::ShardKey;

use crate::caps::read_cap;
use crate::client::Inner;
use crate::file_ctx::FileCtx;
use crate::ClientError;

/// Most sets of k tried (RS 4+2 has 15, 8+3 has 165).
const MAX_SETS: usize = 512;

/// The chunk's plaintext from the first set of k of its shards that
/// authenticates; `None` if no set does (or too few shards could be read).
pub(crate) async fn open_any_k(
    inner: &Arc<Inner>,
    ctx: &Arc<FileCtx>,
    chunk: &pb::Chunk,
    format: ChunkFormat,
) -> Result<Option<Vec<u8>>, ClientError> {
    let codec = ctx.codec_of(chunk)?;
    let (k, width) = (codec.data_shards(), codec.data_shards() + codec.parity_shards());
    let view = inner.placement();
    let targets = view.targets(chunk.pg, width)?;
    let cap = read_cap(inner, ctx.ino, chunk, view.epoch).await?;
    let sealed_len = chunk.sealed_len as usize;
    let cell = codec.cell_size(sealed_len);
    let epoch = view.epoch;
    let fetched = join_all((0..width).map(|i| {
        let key =
            ShardKey { file_id: ctx.ino, chunk_index: chunk.index, version: chunk.version, shard_index: i as u32 };
        let (pool, addr, cap) = (&inner.pool, targets[i].clone(), cap.as_ref());
        async move { shard_io::get(pool, &addr, &key, cap, epoch).await }
    }))
    .await;
    let shards: Vec<Option<Bytes>> = fetched.into_iter().map(|r| r.ok().filter(|b| b.len() == cell)).collect();
    if shards.iter().flatten().count() < k {
        return Ok(None);
    }
    let (ctx, index, version) = (ctx.clone(), chunk.index, chunk.version);
    let codec = codec.clone();
    tokio::task::spawn_blocking(move || {
        let present: Vec<usize> = (0..width).filter(|&i| shards[i].is_some()).collect();
        let aad = ChunkAad { file_id: ctx.ino, chunk_index: index, version, key_id: &ctx.key_id };
        for set in combinations(&present, k).take(MAX_SETS) {
            let mut slots: Vec<Option<Bytes>> = vec![None; width];
            for &i in &set {
                slots[i] = shards[i].clone();
            }
            let opened = match format {
                ChunkFormat::V1 => {
                    codec.decode(slots, sealed_len).ok().and_then(|s| open_chunk(&ctx.dek, &aad, &s).ok())
                }
                ChunkFormat::V2 => {
                    let Ok(layout) = SegmentLayout::from_sealed_len(sealed_len) else { return None };
                    codec.reconstruct_data(slots).ok().and_then(|cells| {
                        let parts: Vec<&[u8]> = cells.iter().map(|c| &c[..]).collect();
                        open_segments(&ctx.dek, ctx.suite, &aad, &layout, 0..layout.segment_count(), &parts).ok()
                    })
                }
            };
            if let Some(plain) = opened {
                let left_out: Vec<usize> = present.iter().copied().filter(|i| !set.contains(i)).collect();
                tracing::warn!(
                    file_id = ctx.ino,
                    chunk = index,
                    ?left_out,
                    "chunk opened from another set of k shards"
                );
                return Some(plain);
            }
        }
        None
    })
    .await
    .map_err(|e| ClientError::Internal(format!("decode task: {e}")))
}

/// Every `k`-element subset of `items`, in lexicographic order.
fn combinations(items: &[usize], k: usize) -> impl Iterator<Item = Vec<usize>> + '_ {
    let n = items.len();
    let mut idx: Option<Vec<usize>> = (k <= n).then(|| (0..k).collect());
    std::iter::from_fn(move || {
        let cur = idx.clone()?;
        let out = cur.iter().map(|&i| items[i]).collect();
        // Advance to the next subset.
        let mut next = cur;
        let mut i = k;
        loop {
            if i == 0 {
                idx = None;
                break;
            }
            i -= 1;
            if next[i] < n - k + i {
                next[i] += 1;
                for j in i + 1..k {
                    next[j] = next[j - 1] + 1;
                }
                idx = Some(next);
                break;
            }
        }
        Some(out)
    })
}

#[cfg(test)]
mod tests {
    use super::combinations;

    #[test]
    fn every_set_of_k_once() {
        let sets: Vec<Vec<usize>> = combinations(&[0, 1, 2, 3, 4, 5], 4).collect();
        assert_eq!(sets.len(), 15);
        assert_eq!(sets[0], vec![0, 1, 2, 3]);
        assert_eq!(sets[14], vec![2, 3, 4, 5]);
        let mut dedup = sets.clone();
        dedup.dedup();
        assert_eq!(dedup.len(), 15);
        assert_eq!(combinations(&[7, 9], 2).collect::<Vec<_>>(), vec![vec![7, 9]]);
        assert_eq!(combinations(&[7], 2).count(), 0);
    }
}
