//! Fetch byte ranges of a chunk's data cells, k of n: from the data shards
//! that hold them or, when one is missing, unreachable, fails its CRC or
//! has the wrong size, the same byte range of any k shards, decoded
//! (Reed–Solomon works per byte position across the cells, so a degraded
//! range read fetches and decodes only that range). A fetch slower than
//! most recent ones is hedged the same way (`hedge.rs`).

use std::future::Future;
use std::ops::Range;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use futures::stream::{FuturesUnordered, StreamExt};
use shardline_erasure::{Codec, ErasureError};
use shardline_proto::v1 as pb;
use shardline_rpc::shard_client as shard_io;
use shardline_types::{ErrorCode, ShardKey};

use crate::caps::{read_cap, refresh_read_cap};
use crate::client::Inner;
use crate::file_ctx::FileCtx;
use crate::ClientError;

/// Which bytes of each shard to fetch.
#[derive(Clone, Copy, Debug)]
pub(crate) enum ShardSpan {
    /// The whole shard, which must be `cell` bytes.
    Whole { cell: usize },
    /// `len` bytes from `offset` of each shard.
    Range { offset: usize, len: usize },
}

impl ShardSpan {
    fn len(self) -> usize {
        match self {
            ShardSpan::Whole { cell } => cell,
            ShardSpan::Range { len, .. } => len,
        }
    }
}

/// A failed fetch, and whether a server said the caller's map is stale.
pub(crate) struct FetchFailure {
    pub error: ClientError,
    pub stale: bool,
}

impl From<ClientError> for FetchFailure {
    fn from(error: ClientError) -> Self {
        FetchFailure { error, stale: false }
    }
}

/// What a fetch got: the span of each shard it read (k+m slots).
pub(crate) struct Stripe {
    slots: Vec<Option<Bytes>>,
    wanted: Range<usize>,
}

impl Stripe {
    /// The wanted data cells' bytes, decoding any that were not fetched
    /// (CPU work: call it off the async threads for large spans).
    pub fn into_cells(self, codec: &Codec) -> Result<Vec<Bytes>, ErasureError> {
        if self.slots[self.wanted.clone()].iter().all(Option::is_some) {
            return Ok(self.slots.into_iter().skip(self.wanted.start).take(self.wanted.len()).flatten().collect());
        }
        let cells = codec.reconstruct_data(self.slots)?;
        Ok(cells.into_iter().skip(self.wanted.start).take(self.wanted.len()).collect())
    }

    /// Every slot (for decoders that want them all, like format v1's).
    pub fn into_slots(self) -> Vec<Option<Bytes>> {
        self.slots
    }
}

/// Fetch `span` of the data cells `wanted` of `chunk`: those shards first,
/// then, for any that fail, other shards (data, then parity) until k have
/// the span.
pub(crate) async fn fetch_cells(
    inner: &Arc<Inner>,
    ctx: &FileCtx,
    chunk: &pb::Chunk,
    wanted: Range<usize>,
    span: ShardSpan,
) -> Result<Stripe, FetchFailure> {
    let codec = ctx.codec_of(chunk)?;
    let k = codec.data_shards();
    let width = k + codec.parity_shards();
    let view = inner.placement();
    let targets = view.targets(chunk.pg, width)?;
    let key = |i: usize| ShardKey {
        file_id: ctx.ino,
        chunk_index: chunk.index,
        version: chunk.version,
        shard_index: i as u32,
    };
    let want_len = span.len();
    let cap = read_cap(inner, ctx.ino, chunk, view.epoch).await?;
    let fetch = |i: usize| {
        let (pool, addr, sk, epoch, cap) = (&inner.pool, targets[i].clone(), key(i), view.epoch, cap.as_ref());
        async move {
            let started = Instant::now();
            let r = match span {
                ShardSpan::Whole { .. } => shard_io::get(pool, &addr, &sk, cap, epoch).await,
                ShardSpan::Range { offset, len } => {
                    shard_io::get_range(pool, &addr, &sk, cap, epoch, offset as u64, len as u64).await
                }
            };
            (i, r, started.elapsed())
        }
    };
    // Stand-ins in order of preference: other data cells, then parity.
    let mut spares = (0..width).filter(|i| !wanted.contains(i));
    let mut slots: Vec<Option<Bytes>> = vec![None; width];
    let (mut have, mut failed, mut stale, mut refused) = (0, false, false, false);
    let mut failures = Vec::new();
    let mut inflight: FuturesUnordered<_> = wanted.clone().map(fetch).collect();
    // Past this, the fetches still out count as slow (`hedge.rs`).
    let hedge = tokio::time::sleep(inner.latencies.hedge_after());
    tokio::pin!(hedge);
    let mut hedged = false;
    loop {
        let (i, result, took) = tokio::select! {
            next = inflight.next() => match next {
                Some(done) => done,
                None => break,
            },
            () = &mut hedge, if !hedged => {
                hedged = true;
                // Ask spares for enough bytes to make k without any fetch
                // still out; the first k to arrive win.
                let mut asked = 0;
                while have + asked < k {
                    let Some(i) = spares.next() else { break };
                    inflight.push(fetch(i));
                    asked += 1;
                }
                inner.hedged.fetch_add(asked as u64, Ordering::Relaxed);
                shardline_metrics::client_hedged_fetches_total().inc_by(asked as u64);
                continue;
            }
        };
        match result {
            Ok(bytes) if bytes.len() == want_len => {
                inner.latencies.record(took);
                slots[i] = Some(bytes);
                have += 1;
            }
            Ok(bytes) => {
                failed = true;
                failures.push(format!("shard {i}: {} bytes, expected {want_len}", bytes.len()));
            }
            Err(e) => {
                failed = true;
                stale |= e.code == ErrorCode::StaleEpoch;
                refused |= e.code == ErrorCode::PermissionDenied;
                tracing::debug!(file_id = ctx.ino, chunk = chunk.index, shard = i, error = %e, "shard read failed; trying others");
                failures.push(format!("shard {i}: {e}"));
            }
        }
        if slots[wanted.clone()].iter().all(Option::is_some) || ((failed || hedged) && have >= k) {
            return Ok(Stripe { slots, wanted });
        }
        if failed {
            while have + inflight.len() < k {
                let Some(i) = spares.next() else { break };
                inflight.push(fetch(i));
            }
        }
    }
    drop(inflight);
    if refused {
        // A token the servers refused (expired, or made under a key or map
        // they no longer accept): get a fresh one for the retry.
        refresh_read_cap(inner, ctx.ino, chunk).await?;
        stale = true;
    }
    let error = ClientError::Unavailable {
        file_id: ctx.ino,
        chunk_index: chunk.index,
        have,
        need: k,
        detail: failures.join("; "),
    };
    Err(FetchFailure { error, stale })
}

/// Run `attempt`; if it failed because the placement map moved under it (a
/// server failed and its groups were remapped) or a data server refused its
/// capability, refresh the map once and run it again (with fresh tokens).
pub(crate) async fn with_fresh_map<T, F, Fut>(inner: &Arc<Inner>, mut attempt: F) -> Result<T, ClientError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, FetchFailure>>,
{
    match attempt().await {
        Err(FetchFailure { stale: true, .. }) => {
            inner.refresh_placement().await?;
            attempt().await.map_err(|f| f.error)
        }
        other => other.map_err(|f| f.error),
    }
}
