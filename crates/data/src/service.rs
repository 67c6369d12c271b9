//! The request handler: `DataRequest` frames in, `DataResponse` frames out.
//!
//! Wire types stop here: requests are converted to [`ShardKey`]s and store
//! calls, which run on the blocking pool; every failure, including a frame
//! that does not decode, becomes an error response, never a panic.

use std::sync::Arc;

use bytes::Bytes;
use shardline_metrics as metrics;
use shardline_proto::v1::{self, data_request, data_response, DataRequest, DataResponse};
use shardline_rpc::{code_to_wire, Frame, Handler};
use shardline_types::{ErrorCode, ShardKey};
use tracing::Instrument;

use shardline_crypto::{cap_ops, CapTarget};

use crate::caps::target_of;
use crate::node_state::NodeState;
use crate::{DataError, ShardStore};

/// Serves shard requests from a [`ShardStore`] (a concrete store, or
/// `dyn ShardStore` when the backend is chosen at run time).
pub struct DataService<S: ShardStore + ?Sized> {
    store: Arc<S>,
    /// The running server's cluster state (epoch, peers); `None` for a bare
    /// store service, which cannot scrub or collect garbage.
    node: Option<Arc<NodeState>>,
}

impl<S: ShardStore + ?Sized> DataService<S> {
    /// A bare store service: no epochs, no capabilities (tests of the
    /// store protocol only; servers use [`DataService::with_node`]).
    pub fn new(store: Arc<S>) -> Self {
        DataService { store, node: None }
    }

    /// A service that checks capabilities (as `node.caps` says) and epochs,
    /// and can scrub and collect garbage.
    pub fn with_node(store: Arc<S>, node: Arc<NodeState>) -> Self {
        DataService { store, node: Some(node) }
    }

    fn node(&self) -> Result<&Arc<NodeState>, DataError> {
        self.node.as_ref().ok_or_else(|| DataError::InvalidArgument("this server is not part of a cluster".into()))
    }

    /// The store behind the service.
    pub fn store(&self) -> &Arc<S> {
        &self.store
    }

    /// Check the request's capability for `op` on `target` and the
    /// placement epoch it carries. A bare store service checks nothing.
    fn authorize(
        &self,
        cap: Option<&v1::ShardCap>,
        target: CapTarget,
        op: u32,
        request_epoch: u64,
    ) -> Result<(), DataError> {
        let Some(node) = &self.node else { return Ok(()) };
        let epoch = node.caps.check(cap, target, op, request_epoch)?;
        node.check_epoch(epoch)
    }

    async fn execute(&self, op: Op, payload: Bytes) -> Result<(data_response::Body, Bytes), DataError> {
        match op {
            Op::Put { key, crc32c, epoch, cap } => {
                self.authorize(cap.as_ref(), target_of(&key), cap_ops::PUT, epoch)?;
                self.blocking(move |s| s.put(&key, &payload, crc32c)).await?;
                Ok((data_response::Body::Put(v1::PutShardOk {}), Bytes::new()))
            }
            Op::Get { key, epoch, offset: 0, len: 0, cap } => {
                self.authorize(cap.as_ref(), target_of(&key), cap_ops::GET, epoch)?;
                let (data, crc32c) = self.blocking(move |s| s.get(&key)).await?;
                let shard_len = data.len() as u64;
                Ok((data_response::Body::Get(v1::GetShardOk { crc32c, offset: 0, shard_len }), Bytes::from(data)))
            }
            Op::Get { key, epoch, offset, len, cap } => {
                self.authorize(cap.as_ref(), target_of(&key), cap_ops::GET, epoch)?;
                let (data, shard_len) = self.blocking(move |s| s.get_range(&key, offset, len)).await?;
                let crc32c = crc32c::crc32c(&data);
                Ok((data_response::Body::Get(v1::GetShardOk { crc32c, offset, shard_len }), Bytes::from(data)))
            }
            Op::Delete { key, cap } => {
                // Deleting is allowed under any epoch: a stale map only
                // means the shard may already have moved.
                if let Some(node) = &self.node {
                    node.caps.check(cap.as_ref(), target_of(&key), cap_ops::DELETE, 0)?;
                }
                let existed = self.blocking(move |s| s.delete(&key)).await?;
                Ok((data_response::Body::Delete(v1::DeleteShardOk { existed }), Bytes::new()))
            }
            Op::Scrub { cap } => {
                let node = self.node()?;
                node.caps.check(cap.as_ref(), CapTarget::CLUSTER, cap_ops::SCRUB, 0)?;
                let report = crate::scrub::scrub(node, &self.store).await?;
                Ok((data_response::Body::Scrub(report), Bytes::new()))
            }
            Op::Gc { grace_ms, cap } => {
                let node = self.node()?;
                node.caps.check(cap.as_ref(), CapTarget::CLUSTER, cap_ops::GC, 0)?;
                let grace = std::time::Duration::from_millis(grace_ms);
                if grace < node.gc_min_grace {
                    return Err(DataError::InvalidArgument(format!(
                        "garbage-collection grace of {grace_ms} ms is below this server's floor of {} ms \
                         (shards of writes still in flight would be deleted)",
                        node.gc_min_grace.as_millis()
                    )));
                }
                let report = crate::gc::collect(node, &self.store, grace).await?;
                Ok((data_response::Body::Gc(report), Bytes::new()))
            }
        }
    }

    /// Run a store call on the blocking pool.
    async fn blocking<T: Send + 'static>(
        &self,
        op: impl FnOnce(&S) -> Result<T, DataError> + Send + 'static,
    ) -> Result<T, DataError> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || op(&store))
            .await
            .map_err(|e| DataError::Internal(format!("shard store task failed: {e}")))?
    }
}

impl<S: ShardStore + ?Sized> Handler for DataService<S> {
    async fn handle(&self, request: Frame) -> Frame {
        let result = match Op::decode(&request) {
            Ok(op) => {
                let span = op.span();
                let timer = metrics::RequestTimer::start("data", op.name());
                metrics::payload_bytes_total().with_label_values(&["data", "in"]).inc_by(request.payload.len() as u64);
                let result = async {
                    let result = self.execute(op, request.payload).await;
                    if let Err(e) = &result {
                        report(e);
                    }
                    result
                }
                .instrument(span)
                .await;
                timer.finish(result.is_ok());
                if let Ok((_, payload)) = &result {
                    metrics::payload_bytes_total().with_label_values(&["data", "out"]).inc_by(payload.len() as u64);
                }
                result
            }
            Err(e) => {
                report(&e);
                Err(e)
            }
        };
        match result {
            Ok((body, payload)) => Frame::from_message(&DataResponse { error: None, body: Some(body) }, payload),
            Err(e) => Frame::from_message(&DataResponse { error: Some(wire_error(&e)), body: None }, Bytes::new()),
        }
    }
}

/// A request, converted from its wire form (the capability is checked in
/// `execute`, before anything is read or changed).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Op {
    Put { key: ShardKey, crc32c: u32, epoch: u64, cap: Option<v1::ShardCap> },
    Get { key: ShardKey, epoch: u64, offset: u64, len: u64, cap: Option<v1::ShardCap> },
    Delete { key: ShardKey, cap: Option<v1::ShardCap> },
    Scrub { cap: Option<v1::ShardCap> },
    Gc { grace_ms: u64, cap: Option<v1::ShardCap> },
}

impl Op {
    fn decode(request: &Frame) -> Result<Op, DataError> {
        let req: DataRequest =
            request.decode().map_err(|e| DataError::InvalidArgument(format!("decode data request: {e}")))?;
        match req.body {
            None => Err(DataError::InvalidArgument("data request has no body".into())),
            Some(data_request::Body::Put(p)) => {
                Ok(Op::Put { key: shard_key(p.id)?, crc32c: p.crc32c, epoch: p.epoch, cap: p.cap })
            }
            Some(data_request::Body::Get(g)) => {
                Ok(Op::Get { key: shard_key(g.id)?, epoch: g.epoch, offset: g.offset, len: g.length, cap: g.cap })
            }
            Some(data_request::Body::Delete(d)) => Ok(Op::Delete { key: shard_key(d.id)?, cap: d.cap }),
            Some(data_request::Body::Scrub(s)) => Ok(Op::Scrub { cap: s.cap }),
            Some(data_request::Body::Gc(g)) => Ok(Op::Gc { grace_ms: g.grace_ms, cap: g.cap }),
        }
    }

    /// The operation's name in metrics.
    fn name(&self) -> &'static str {
        match self {
            Op::Put { .. } => "put",
            Op::Get { .. } => "get",
            Op::Delete { .. } => "delete",
            Op::Scrub { .. } => "scrub",
            Op::Gc { .. } => "gc",
        }
    }

    fn span(&self) -> tracing::Span {
        match self {
            Op::Put { key, .. } => op_span("put", key),
            Op::Get { key, .. } => op_span("get", key),
            Op::Delete { key, .. } => op_span("delete", key),
            Op::Scrub { .. } => tracing::info_span!("scrub"),
            Op::Gc { .. } => tracing::info_span!("gc"),
        }
    }
}

/// Convert a wire shard id, which must be present.
fn shard_key(id: Option<v1::ShardId>) -> Result<ShardKey, DataError> {
    let id = id.ok_or_else(|| DataError::InvalidArgument("request has no shard id".into()))?;
    Ok(ShardKey { file_id: id.file_id, chunk_index: id.chunk_index, version: id.version, shard_index: id.shard_index })
}

fn op_span(op: &'static str, key: &ShardKey) -> tracing::Span {
    tracing::debug_span!(
        "shard",
        op,
        file_id = key.file_id,
        chunk = key.chunk_index,
        version = key.version,
        shard = key.shard_index
    )
}

/// The error as it crosses the wire.
pub fn wire_error(e: &DataError) -> v1::Error {
    v1::Error {
        code: code_to_wire(e.code()) as i32,
        message: e.chain(),
        retryable: e.retryable(),
        leader_hint: String::new(),
    }
}

/// Errors are handled here (answered), so this is where they are logged:
/// damage on disk and failing I/O need a human; the rest is the caller's.
fn report(e: &DataError) {
    match e.code() {
        ErrorCode::Corrupt if matches!(e, DataError::Corrupt(_)) => {
            tracing::warn!(error = %e.chain(), "stored shard failed verification")
        }
        ErrorCode::Internal => tracing::error!(error = %e.chain(), "shard request failed"),
        ErrorCode::NoSpace => tracing::warn!("shard refused: out of space"),
        ErrorCode::PermissionDenied => tracing::info!(error = %e.chain(), "shard request refused"),
        _ => tracing::debug!(error = %e.chain(), "shard request refused"),
    }
}

#[cfg(test)]
#[path = "service_tests.rs"]
mod tests;
