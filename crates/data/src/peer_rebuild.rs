//! Rebuild one shard from its peers: copied from an old holder when the
//! slot was handed over (drain, rebalance), else read any k of the chunk's
//! other shards (from their targets, or their old holders while a target
//! is still rebuilding) and recompute it with Reed–Solomon; then store it.
//! Ciphertext only: no key is needed or seen.

use std::sync::Arc;

use futures::stream::{FuturesUnordered, StreamExt};
use shardline_erasure::Codec;
use shardline_rpc::shard_client;
use shardline_types::ShardKey;

use crate::node_state::NodeState;
use crate::{DataError, ShardStore};

/// Rebuild `key` (a shard of a chunk coded k+m) from the other shards held
/// by `targets` (addresses in shard order; `previous[i]`: old holders of
/// shard i that still keep copies) and store it. Returns its size.
pub async fn rebuild_shard<S: ShardStore + ?Sized>(
    node: &NodeState,
    store: &Arc<S>,
    key: ShardKey,
    k: usize,
    m: usize,
    targets: &[String],
    previous: &[Vec<String>],
) -> Result<usize, DataError> {
    let width = k + m;
    let missing = key.shard_index as usize;
    if targets.len() < width || missing >= width {
        return Err(DataError::InvalidArgument(format!(
            "shard {missing} of a {k}+{m} chunk with {} targets",
            targets.len()
        )));
    }
    let codec = Codec::new(k, m).map_err(|e| DataError::InvalidArgument(e.to_string()))?;
    // Peer reads carry a token this server mints for exactly this chunk
    // version, under the newest epoch it has seen (a peer that has seen a
    // newer one refuses; the task is retried after the next heartbeat).
    let epoch = node.epoch();
    let cap = node.caps.mint_peer_get(&key, epoch);
    let none = Vec::new();
    let previous_of = |i: usize| previous.get(i).unwrap_or(&none);
    // A handed-over slot: one copy from its old holder instead of k reads.
    for addr in previous_of(missing) {
        if let Ok(bytes) = shard_client::get(&node.peers, addr, &key, cap.as_ref(), epoch).await {
            let (store, data) = (store.clone(), bytes.to_vec());
            return tokio::task::spawn_blocking(move || {
                store.put(&key, &data, crc32c::crc32c(&data))?;
                Ok(data.len())
            })
            .await
            .map_err(|e| DataError::Internal(format!("copy task: {e}")))?;
        }
    }
    let mut inflight = FuturesUnordered::new();
    for (i, addr) in targets.iter().enumerate().take(width) {
        if i == missing {
            continue;
        }
        let peer_key = ShardKey { shard_index: i as u32, ..key };
        let (pool, cap) = (&node.peers, cap.as_ref());
        let fallbacks = previous_of(i);
        inflight.push(async move {
            let mut r = shard_client::get(pool, addr, &peer_key, cap, epoch).await;
            for alt in fallbacks {
                if r.is_ok() {
                    break;
                }
                r = shard_client::get(pool, alt, &peer_key, cap, epoch).await;
            }
            (i, r)
        });
    }
    let mut slots: Vec<Option<Vec<u8>>> = vec![None; width];
    let mut have = 0;
    let mut errors = Vec::new();
    while let Some((i, r)) = inflight.next().await {
        match r {
            Ok(bytes) => {
                slots[i] = Some(bytes.to_vec());
                have += 1;
                if have == k {
                    break;
                }
            }
            Err(e) => errors.push(format!("shard {i}: {e}")),
        }
    }
    drop(inflight);
    if have < k {
        return Err(DataError::Unavailable(format!("only {have} of {k} peer shards readable: {}", errors.join("; "))));
    }
    // Cells of one chunk all have the same length; drop odd ones out.
    let len = slots.iter().flatten().map(Vec::len).next().unwrap_or(0);
    if slots.iter().flatten().any(|s| s.len() != len) {
        return Err(DataError::Corrupt("peer shards disagree on the cell size".into()));
    }
    let store = store.clone();
    tokio::task::spawn_blocking(move || {
        codec.rebuild(&mut slots).map_err(|e| DataError::Internal(format!("reconstruct: {e}")))?;
        let data = slots[missing].take().ok_or_else(|| DataError::Internal("reconstruction left a hole".into()))?;
        let crc = crc32c::crc32c(&data);
        store.put(&key, &data, crc)?;
        Ok(data.len())
    })
    .await
    .map_err(|e| DataError::Internal(format!("rebuild task: {e}")))?
}
