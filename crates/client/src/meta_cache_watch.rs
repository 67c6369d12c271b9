//! The metadata cache's recall channel (docs/metadata-cache.md): a task per
//! client long-polling the leader with `CacheWatch`. Each answer first drops
//! what it recalls (and has the mount drop the kernel's copies, through the
//! recall hook), then renews the cache's validity from the send time of that
//! watch. A lost session drops the whole cache and opens a new one; a
//! cluster that does not cache turns the cache off, asked again now and then.

use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use shardline_proto::v1 as pb;
use shardline_proto::v1::meta_request::Body;
use shardline_proto::v1::meta_response::Body as RBody;
use shardline_types::ErrorCode;
use tokio::sync::oneshot;

use crate::client::Inner;

/// Called with recalled inodes; answers on the sender once the kernel (or
/// whatever else caches above the client) has dropped them.
pub type RecallHook = Arc<dyn Fn(Vec<u64>, oneshot::Sender<()>) + Send + Sync>;

/// Where a mount registers its [`RecallHook`].
#[derive(Default)]
pub struct HookSlot(Mutex<Option<RecallHook>>);

impl HookSlot {
    pub fn set(&self, hook: RecallHook) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(hook);
    }

    fn get(&self) -> Option<RecallHook> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// How long a recall waits for the hook before it is acknowledged anyway
/// (the kernel's copies expire with the lease regardless).
const HOOK_WAIT: Duration = Duration::from_millis(200);
/// How often a cluster that does not cache is asked again.
const OFF_RETRY: Duration = Duration::from_secs(10);

/// Run the watch loop until the client is dropped.
pub(crate) async fn run(client: Weak<Inner>) {
    let mut open = true;
    loop {
        let Some(inner) = client.upgrade() else { return };
        if open {
            inner.mcache.lost();
        }
        let sent = Instant::now();
        let watch = pb::CacheWatch { acked_seq: inner.mcache.acked(), open };
        let pause = match inner.meta.call(Body::CacheWatch(watch)).await {
            Ok(pb::MetaResponse { body: Some(RBody::CacheRecall(r)), .. }) if r.lease_ms == 0 => {
                inner.mcache.off();
                open = true;
                OFF_RETRY
            }
            Ok(pb::MetaResponse { body: Some(RBody::CacheRecall(r)), .. }) if r.lost => {
                open = true;
                Duration::ZERO
            }
            Ok(pb::MetaResponse { body: Some(RBody::CacheRecall(r)), .. }) => {
                if open {
                    inner.mcache.opened(sent, r.lease_ms);
                    open = false;
                } else {
                    if !r.inos.is_empty() {
                        inner.mcache.recalled(r.seq, &r.inos);
                        if let Some(hook) = inner.recall_hook.get() {
                            let (tx, rx) = oneshot::channel();
                            hook(r.inos.clone(), tx);
                            let _ = tokio::time::timeout(HOOK_WAIT, rx).await;
                        }
                    }
                    inner.mcache.recalled(r.seq, &[]);
                    inner.mcache.renewed(sent, r.lease_ms);
                }
                Duration::ZERO
            }
            // A server from before caching, or a certificate it refuses.
            Err(e) if matches!(e.code(), ErrorCode::InvalidArgument | ErrorCode::PermissionDenied) => {
                tracing::info!(error = %e, "no metadata cache: the cluster refused its session");
                inner.mcache.off();
                open = true;
                OFF_RETRY
            }
            Ok(_) | Err(_) => Duration::from_millis(50),
        };
        drop(inner);
        if !pause.is_zero() {
            tokio::time::sleep(pause).await;
        }
    }
}
