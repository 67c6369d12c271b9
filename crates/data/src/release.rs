//! Releasing handed-over slots. When a drain or rebalance moves a
//! placement-group slot off this server, the server keeps its copies until
//! the new target has rebuilt the slot; then heartbeat replies list the slot
//! for release. This deletes every local shard of that slot (shard index
//! `slot` of every chunk whose group is `pg`) and reports `ReleaseDone`, one
//! release at a time. A crash part-way leaves the slot listed, so the next
//! heartbeat after restart finishes it.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use shardline_proto::v1 as pb;
use shardline_types::pg_of;

use crate::node_state::NodeState;
use crate::ShardStore;

/// Start releasing `slots` unless a release is already running.
pub fn start<S: ShardStore + ?Sized>(node: &Arc<NodeState>, store: &Arc<S>, slots: Vec<pb::RebuildTask>) {
    if slots.is_empty() || node.releasing.swap(true, Ordering::AcqRel) {
        return;
    }
    let (node, store) = (node.clone(), store.clone());
    tokio::spawn(async move {
        if let Err(e) = release(&node, &store, slots).await {
            tracing::warn!(node = node.id, error = %e, "releasing handed-over shards incomplete; will retry");
        }
        node.releasing.store(false, Ordering::Release);
    });
}

async fn release<S: ShardStore + ?Sized>(
    node: &Arc<NodeState>,
    store: &Arc<S>,
    slots: Vec<pb::RebuildTask>,
) -> Result<(), crate::DataError> {
    let map = node.placement().await?;
    let pg_count = map.groups.len() as u32;
    if pg_count == 0 {
        return Ok(());
    }
    let wanted: HashSet<(u32, u32)> = slots.iter().map(|t| (t.pg, t.shard_index)).collect();
    let store2 = store.clone();
    let deleted = tokio::task::spawn_blocking(move || -> Result<u64, crate::DataError> {
        let mut n = 0;
        for key in store2.list()? {
            if wanted.contains(&(pg_of(key.file_id, key.chunk_index, pg_count), key.shard_index))
                && store2.delete(&key)?
            {
                n += 1;
            }
        }
        Ok(n)
    })
    .await
    .map_err(|e| crate::DataError::Unavailable(format!("release task failed: {e}")))??;
    tracing::info!(node = node.id, slots = slots.len(), shards = deleted, "released handed-over shards");
    for t in slots {
        let done = pb::ReleaseDone { server: node.id, pg: t.pg, shard_index: t.shard_index };
        node.meta
            .call(pb::meta_request::Body::ReleaseDone(done))
            .await
            .map_err(|e| crate::DataError::Unavailable(format!("report the release: {e}")))?;
    }
    Ok(())
}
