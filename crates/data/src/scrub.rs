//! Scrub: read every shard, check its CRC32C, and rebuild the bad ones from
//! their peers. A bad shard of a chunk version no file refers to any more is
//! simply deleted (nothing depends on it).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use shardline_proto::v1 as pb;
use shardline_types::{pg_of, ShardKey};

use crate::node_state::NodeState;
use crate::peer_rebuild::rebuild_shard;
use crate::{DataError, ShardStore};

pub async fn scrub<S: ShardStore + ?Sized>(node: &NodeState, store: &Arc<S>) -> Result<pb::ScrubReport, DataError> {
    let keys = {
        let store = store.clone();
        tokio::task::spawn_blocking(move || store.list()).await.map_err(|e| DataError::Internal(e.to_string()))??
    };
    // Progress for heartbeats (`admin status`), cleared however this ends.
    let progress = &node.scrub_progress;
    progress.checked.store(0, Ordering::Relaxed);
    progress.total.store(keys.len() as u64, Ordering::Relaxed);
    let _clear = ClearOnDrop(progress);
    let mut report = pb::ScrubReport::default();
    let target = node.id.to_string();
    let counted = |result: &str| shardline_metrics::scrub_shards_total().with_label_values(&[&target, result]).inc();
    for key in keys {
        // `admin scrub stop`: end here; the next scrub starts from the top.
        if node.scrub_paused.load(std::sync::atomic::Ordering::Relaxed) {
            tracing::info!(node = node.id, checked = report.checked, "scrub stopped by the operator");
            break;
        }
        progress.checked.fetch_add(1, Ordering::Relaxed);
        let result = {
            let store = store.clone();
            tokio::task::spawn_blocking(move || store.get(&key).map(|_| ()))
                .await
                .map_err(|e| DataError::Internal(e.to_string()))?
        };
        match result {
            Ok(()) => {
                report.checked += 1;
                counted("ok");
            }
            Err(DataError::NotFound) => {} // deleted meanwhile
            Err(DataError::Corrupt(why)) => {
                report.checked += 1;
                counted("corrupt");
                report.corrupt += 1;
                tracing::warn!(file_id = key.file_id, chunk = key.chunk_index, shard = key.shard_index, %why, "scrub found a corrupt shard");
                match repair(node, store, key).await {
                    Ok(()) => report.repaired += 1,
                    Err(e) => {
                        report.unrepairable += 1;
                        tracing::error!(file_id = key.file_id, chunk = key.chunk_index, error = %e, "could not repair shard");
                    }
                }
            }
            Err(e) => return Err(e),
        }
    }
    Ok(report)
}

/// Marks the scrub over when it ends, by any path.
struct ClearOnDrop<'a>(&'a crate::node_state::ScrubProgress);

impl Drop for ClearOnDrop<'_> {
    fn drop(&mut self) {
        self.0.total.store(0, Ordering::Relaxed);
        self.0.checked.store(0, Ordering::Relaxed);
    }
}

/// Rebuild one corrupt shard in place (or drop it if it is garbage).
async fn repair<S: ShardStore + ?Sized>(node: &NodeState, store: &Arc<S>, key: ShardKey) -> Result<(), DataError> {
    let map = node.placement().await?;
    let pg = pg_of(key.file_id, key.chunk_index, map.groups.len() as u32);
    let Some(chunk) = chunk_info(node, pg, &key).await? else {
        let store = store.clone();
        tokio::task::spawn_blocking(move || store.delete(&key))
            .await
            .map_err(|e| DataError::Internal(e.to_string()))??;
        return Ok(());
    };
    let targets = NodeState::targets(&map, pg)?;
    let previous = NodeState::previous_holders(&map, pg);
    rebuild_shard(node, store, key, chunk.data_shards as usize, chunk.parity_shards as usize, &targets, &previous)
        .await
        .map(|_| ())
}

/// The committed chunk this shard belongs to, if its version is live.
async fn chunk_info(node: &NodeState, pg: u32, key: &ShardKey) -> Result<Option<pb::PgChunk>, DataError> {
    let (after_file, after_chunk) = if key.chunk_index == 0 {
        (key.file_id.saturating_sub(1), u64::MAX)
    } else {
        (key.file_id, key.chunk_index - 1)
    };
    let req = pb::ListPgChunks { pg, after_file, after_chunk, limit: 1 };
    let resp = node
        .meta
        .call(pb::meta_request::Body::ListPgChunks(req))
        .await
        .map_err(|e| DataError::Unavailable(format!("look up the chunk: {e}")))?;
    let Some(pb::meta_response::Body::PgChunks(page)) = resp.body else {
        return Err(DataError::Unavailable("metadata service sent no chunk list".into()));
    };
    Ok(page
        .chunks
        .into_iter()
        .find(|c| c.file_id == key.file_id && c.chunk_index == key.chunk_index && c.version == key.version))
}
