//! Registration with the metadata service, then periodic heartbeats.
//!
//! The loop never gives up: the metadata service may start after the data
//! server or lose its leader. A heartbeat answered `NOT_FOUND` (the service
//! forgot this server, say after a restore) sends the loop back to
//! registering.

use std::sync::Arc;
use std::time::Duration;

use shardline_proto::v1::{meta_request, Heartbeat, RegisterDataServer};
use shardline_rpc::{MetaCallError, MetaClient};
use shardline_types::{ErrorCode, NodeId};

use crate::{ShardStore, Usage};

/// Who this server is, as the metadata service should know it.
#[derive(Debug, Clone)]
pub struct Identity {
    /// This data server's id.
    pub id: NodeId,
    /// The address clients should dial.
    pub advertise: String,
}

/// Register, then heartbeat every `interval`, forever.
pub async fn heartbeat_loop<S: ShardStore>(meta: MetaClient, me: Identity, store: Arc<S>, interval: Duration) {
    loop {
        register(&meta, &me, &store, interval).await;
        loop {
            tokio::time::sleep(interval).await;
            let usage = usage_of(&store).await;
            let beat = Heartbeat {
                id: me.id,
                used_bytes: usage.used_bytes,
                capacity_bytes: usage.capacity_bytes,
                shard_count: usage.shard_count,
            };
            match meta.call(meta_request::Body::Heartbeat(beat)).await {
                Ok(_) => tracing::trace!(node = me.id, "heartbeat sent"),
                Err(e) if e.code() == ErrorCode::NotFound => {
                    tracing::warn!(node = me.id, "metadata service does not know this server; registering again");
                    break;
                }
                Err(e) => tracing::warn!(node = me.id, error = %e, "heartbeat failed"),
            }
        }
    }
}

/// Register until the metadata service accepts, backing off up to `interval`
/// (at least a second) between attempts.
async fn register<S: ShardStore>(meta: &MetaClient, me: &Identity, store: &Arc<S>, interval: Duration) {
    let max_backoff = interval.max(Duration::from_secs(1));
    let mut backoff = Duration::from_millis(100).min(max_backoff);
    let mut attempts = 0u64;
    loop {
        attempts += 1;
        let usage = usage_of(store).await;
        let req = RegisterDataServer { id: me.id, addr: me.advertise.clone(), capacity_bytes: usage.capacity_bytes };
        match meta.call(meta_request::Body::Register(req)).await {
            Ok(resp) => {
                let epoch = match resp.body {
                    Some(shardline_proto::v1::meta_response::Body::Registered(r)) => r.epoch,
                    _ => 0,
                };
                tracing::info!(node = me.id, epoch, attempts, "registered with the metadata service");
                return;
            }
            Err(e) => log_register_failure(me.id, attempts, &e),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(max_backoff);
    }
}

/// The first failure and every tenth after it are worth a warning; the rest
/// (the metadata service is simply not up yet) are noise.
fn log_register_failure(node: NodeId, attempts: u64, e: &MetaCallError) {
    if attempts % 10 == 1 {
        tracing::warn!(node, attempts, error = %e, "registration with the metadata service failed; retrying");
    } else {
        tracing::debug!(node, attempts, error = %e, "registration failed; retrying");
    }
}

async fn usage_of<S: ShardStore>(store: &Arc<S>) -> Usage {
    let store = store.clone();
    tokio::task::spawn_blocking(move || store.usage()).await.unwrap_or_default()
}
