//! Rebuild tasks handed out by the metadata service: "rebuild shard index
//! `s` of every chunk in placement group `pg` here". Each task pages through
//! the group's chunks, rebuilds the shards this server lacks from peers,
//! throttled by the server's one rebuild budget (`throttle.rs`, shared by
//! all its tasks), and reports completion.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use futures::stream::{self, StreamExt};
use shardline_proto::v1 as pb;
use shardline_types::ShardKey;

use crate::node_state::NodeState;
use crate::peer_rebuild::rebuild_shard;
use crate::ShardStore;

/// Chunks of one task rebuilt concurrently.
const REBUILD_PARALLELISM: usize = 8;

/// Start the tasks not already running.
pub fn start_tasks<S: ShardStore + ?Sized>(node: &Arc<NodeState>, store: &Arc<S>, tasks: &[pb::RebuildTask]) {
    for t in tasks {
        let key = (t.pg, t.shard_index);
        if !node.running.lock().unwrap_or_else(|e| e.into_inner()).insert(key) {
            continue;
        }
        let (node, store) = (node.clone(), store.clone());
        tokio::spawn(async move {
            let result = run_task(&node, &store, key.0, key.1).await;
            node.running.lock().unwrap_or_else(|e| e.into_inner()).remove(&key);
            match result {
                Ok(n) => tracing::info!(node = node.id, pg = key.0, shard = key.1, chunks = n, "rebuild finished"),
                Err(e) => {
                    tracing::warn!(node = node.id, pg = key.0, shard = key.1, error = %e, "rebuild incomplete; will retry")
                }
            }
        });
    }
}

async fn run_task<S: ShardStore + ?Sized>(
    node: &Arc<NodeState>,
    store: &Arc<S>,
    pg: u32,
    shard: u32,
) -> Result<u64, crate::DataError> {
    let (mut after_file, mut after_chunk) = (0u64, 0u64);
    let mut chunks = 0u64;
    let mut failures = Vec::new();
    loop {
        let req = pb::ListPgChunks { pg, after_file, after_chunk, limit: 256 };
        let resp = node
            .meta
            .call(pb::meta_request::Body::ListPgChunks(req))
            .await
            .map_err(|e| crate::DataError::Unavailable(format!("list the group's chunks: {e}")))?;
        let Some(pb::meta_response::Body::PgChunks(page)) = resp.body else {
            return Err(crate::DataError::Unavailable("metadata service sent no chunk list".into()));
        };
        node.progress.chunks_total.fetch_add(page.chunks.len() as u64, Ordering::Relaxed);
        if let Some(last) = page.chunks.last() {
            (after_file, after_chunk) = (last.file_id, last.chunk_index);
        }
        chunks += page.chunks.len() as u64;
        let map = node.placement().await?;
        let targets = NodeState::targets(&map, pg)?;
        let previous = NodeState::previous_holders(&map, pg);
        // Several chunks at once: each waits on k peers' disks and the network.
        let targets = Arc::new(targets);
        let previous = Arc::new(previous);
        let results: Vec<_> = stream::iter(page.chunks.clone())
            .map(|c| {
                let (node, store, targets, previous) = (node.clone(), store.clone(), targets.clone(), previous.clone());
                async move {
                    let key = ShardKey {
                        file_id: c.file_id,
                        chunk_index: c.chunk_index,
                        version: c.version,
                        shard_index: shard,
                    };
                    let (k, m) = (c.data_shards as usize, c.parity_shards as usize);
                    // A chunk narrower than the group (a small file's
                    // copies, or a directory with a narrower layout) has no
                    // shard in this slot: nothing to rebuild.
                    if shard as usize >= k + m || store.modified(&key).is_some() {
                        return (c, Ok(0));
                    }
                    let r = rebuild_shard(&node, &store, key, k, m, &targets, &previous).await;
                    if let Ok(n) = r {
                        // Every task of this server draws on one budget.
                        node.rebuild_throttle.acquire(n as u64).await;
                    }
                    (c, r)
                }
            })
            .buffer_unordered(REBUILD_PARALLELISM)
            .collect()
            .await;
        let target = node.id.to_string();
        for (c, r) in results {
            let outcome = if r.is_ok() { "ok" } else { "error" };
            shardline_metrics::rebuild_shards_total().with_label_values(&[&target, outcome]).inc();
            match r {
                Ok(n) => {
                    node.progress.bytes.fetch_add(n as u64, Ordering::Relaxed);
                    node.progress.chunks_done.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => failures.push(format!("file {} chunk {}: {e}", c.file_id, c.chunk_index)),
            }
        }
        if !page.more {
            break;
        }
    }
    if !failures.is_empty() {
        return Err(crate::DataError::Unavailable(format!("{} chunks not rebuilt: {}", failures.len(), failures[0])));
    }
    let done = pb::RebuildDone { server: node.id, pg, shard_index: shard };
    node.meta
        .call(pb::meta_request::Body::RebuildDone(done))
        .await
        .map_err(|e| crate::DataError::Unavailable(format!("report the rebuild: {e}")))?;
    Ok(chunks)
}
