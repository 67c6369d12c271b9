//! Registration with the metadata service, then periodic heartbeats.
//!
//! The loop never gives up: the metadata service may start after the data
//! server or lose its leader. A heartbeat answered `NOT_FOUND` (the service
//! forgot this server, say after a restore) sends the loop back to
//! registering.

use std::sync::Arc;
use std::time::Duration;

use std::sync::atomic::Ordering;

use shardline_proto::v1::{meta_request, meta_response, Heartbeat, RegisterDataServer, StoreInfo};
use shardline_rpc::{MetaCallError, MetaClient};
use shardline_types::{ErrorCode, NodeId};

use crate::node_state::NodeState;
use crate::{Backend, ShardStore, Usage};

/// Who this server is, as the metadata service should know it.
#[derive(Debug, Clone)]
pub struct Identity {
    /// This data server's id.
    pub id: NodeId,
    /// The address clients should dial.
    pub advertise: String,
    /// Failure domain (rack) label; empty for none.
    pub rack: String,
    /// The file system under the data folder ([`crate::fs_type::fs_type`]),
    /// reported with the store backend in every heartbeat.
    pub fs_type: String,
}

/// Register, then heartbeat every `interval`, forever. Each reply carries
/// the newest placement epoch and this server's rebuild tasks.
pub async fn heartbeat_loop<S: ShardStore + ?Sized>(
    node: Arc<NodeState>,
    me: Identity,
    store: Arc<S>,
    interval: Duration,
) {
    let meta = &node.meta;
    loop {
        register(meta, &me, &store, interval).await;
        loop {
            tokio::time::sleep(interval).await;
            let usage = usage_of(&store).await;
            publish_usage(me.id, &usage);
            let beat = Heartbeat {
                id: me.id,
                used_bytes: usage.used_bytes,
                capacity_bytes: usage.capacity_bytes,
                shard_count: usage.shard_count,
                rebuild_chunks_done: node.progress.chunks_done.load(Ordering::Relaxed),
                rebuild_chunks_total: node.progress.chunks_total.load(Ordering::Relaxed),
                rebuild_bytes: node.progress.bytes.load(Ordering::Relaxed),
                store: Some(store_info(store.backend(), &me.fs_type)),
                scrub_checked: node.scrub_progress.checked.load(Ordering::Relaxed),
                scrub_total: node.scrub_progress.total.load(Ordering::Relaxed),
            };
            match meta.call(meta_request::Body::Heartbeat(beat)).await {
                Ok(resp) => {
                    if let Some(meta_response::Body::Heartbeat(reply)) = resp.body {
                        node.observe_epoch(reply.epoch);
                        let rate = if reply.rebuild_rate > 0 { reply.rebuild_rate } else { node.own_rebuild_rate };
                        node.rebuild_throttle.set_rate(rate);
                        node.scrub_paused.store(reply.scrub_paused, Ordering::Relaxed);
                        crate::rebuild::start_tasks(&node, &store, &reply.rebuild);
                        crate::release::start(&node, &store, reply.release);
                    }
                }
                Err(e) if e.code() == ErrorCode::NotFound => {
                    tracing::warn!(node = me.id, "metadata service does not know this server; registering again");
                    break;
                }
                Err(e) => tracing::warn!(node = me.id, error = %e, "heartbeat failed"),
            }
        }
    }
}

/// This target's shards and space as metrics (updated every heartbeat).
fn publish_usage(id: NodeId, usage: &Usage) {
    let target = id.to_string();
    let gauge = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    shardline_metrics::data_shards().with_label_values(&[&target]).set(gauge(usage.shard_count));
    let cap = shardline_metrics::data_capacity_bytes();
    cap.with_label_values(&[&target, "total"]).set(gauge(usage.capacity_bytes));
    cap.with_label_values(&[&target, "used"]).set(gauge(usage.used_bytes));
    cap.with_label_values(&[&target, "free"]).set(gauge(usage.capacity_bytes.saturating_sub(usage.used_bytes)));
}

/// Register until the metadata service accepts, backing off up to `interval`
/// (at least a second) between attempts.
async fn register<S: ShardStore + ?Sized>(meta: &MetaClient, me: &Identity, store: &Arc<S>, interval: Duration) {
    let max_backoff = interval.max(Duration::from_secs(1));
    let mut backoff = Duration::from_millis(100).min(max_backoff);
    let mut attempts = 0u64;
    loop {
        attempts += 1;
        let usage = usage_of(store).await;
        let req = RegisterDataServer {
            id: me.id,
            addr: me.advertise.clone(),
            capacity_bytes: usage.capacity_bytes,
            rack: me.rack.clone(),
        };
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

async fn usage_of<S: ShardStore + ?Sized>(store: &Arc<S>) -> Usage {
    let store = store.clone();
    tokio::task::spawn_blocking(move || store.usage()).await.unwrap_or_default()
}

/// What stores this server's shards, as the metadata service reports it.
fn store_info(backend: Backend, fs_type: &str) -> StoreInfo {
    StoreInfo { backend: backend.name.into(), direct_io: backend.direct_io, fs_type: fs_type.into() }
}
