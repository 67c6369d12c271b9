//! Garbage collection: delete shards of chunk versions that no file refers
//! to any more (overwritten versions, deleted files, writes that never
//! committed). Shards younger than the grace period are left alone: their
//! write may still be in flight.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use shardline_proto::v1 as pb;
use shardline_types::ShardKey;

use crate::node_state::NodeState;
use crate::{DataError, ShardStore};

pub async fn collect<S: ShardStore + ?Sized>(
    node: &NodeState,
    store: &Arc<S>,
    grace: Duration,
) -> Result<pb::GcReport, DataError> {
    let keys: Vec<ShardKey> = {
        let store = store.clone();
        tokio::task::spawn_blocking(move || {
            let now = SystemTime::now();
            store.list().map(|keys| {
                keys.into_iter()
                    .filter(|k| {
                        store.modified(k).and_then(|t| now.duration_since(t).ok()).is_some_and(|age| age >= grace)
                    })
                    .collect()
            })
        })
        .await
        .map_err(|e| DataError::Internal(e.to_string()))??
    };
    let mut report = pb::GcReport { examined: keys.len() as u64, ..Default::default() };
    for batch in keys.chunks(1000) {
        let req = pb::CheckLive {
            chunks: batch
                .iter()
                .map(|k| pb::ChunkVersion { file_id: k.file_id, chunk_index: k.chunk_index, version: k.version })
                .collect(),
        };
        let resp = node
            .meta
            .call(pb::meta_request::Body::CheckLive(req))
            .await
            .map_err(|e| DataError::Unavailable(format!("check which chunks are live: {e}")))?;
        let Some(pb::meta_response::Body::Liveness(l)) = resp.body else {
            return Err(DataError::Unavailable("metadata service sent no liveness".into()));
        };
        if l.live.len() != batch.len() {
            return Err(DataError::Unavailable("liveness answer has the wrong length".into()));
        }
        let dead: Vec<ShardKey> = batch.iter().zip(&l.live).filter(|(_, live)| !**live).map(|(k, _)| *k).collect();
        let store = store.clone();
        let (n, bytes) = tokio::task::spawn_blocking(move || -> Result<(u64, u64), DataError> {
            let before = store.usage().used_bytes;
            let mut n = 0;
            for k in &dead {
                if store.delete(k)? {
                    n += 1;
                }
            }
            Ok((n, before.saturating_sub(store.usage().used_bytes)))
        })
        .await
        .map_err(|e| DataError::Internal(e.to_string()))??;
        report.deleted += n;
        report.deleted_bytes += bytes;
    }
    if report.deleted > 0 {
        tracing::info!(
            node = node.id,
            deleted = report.deleted,
            bytes = report.deleted_bytes,
            "garbage collected shards"
        );
    }
    Ok(report)
}
