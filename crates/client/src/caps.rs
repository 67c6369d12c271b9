//! Shard capabilities on the client side (docs/security.md,
//! "Capabilities"): the token each shard request carries.
//!
//! Reads use the get token that came with the chunk list while it is still
//! good (not near expiry, issued under the client's map epoch or a newer
//! one); otherwise, and after a data server refused one, a fresh token is
//! granted (`GrantCaps`) and kept in a small cache. Writes ask for a put
//! token (which also deletes the same version) per chunk version written.
//! A cluster that runs without capabilities grants none; the client then
//! stops asking.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use shardline_crypto::{cap_ops, now_ms};
use shardline_proto::v1 as pb;
use shardline_proto::v1::meta_request::Body;
use shardline_proto::v1::meta_response::Body as RBody;

use crate::client::{unexpected, Inner};
use crate::ClientError;

/// A token this close to its expiry is not used (data servers allow a few
/// seconds of clock skew the other way).
const EXPIRY_MARGIN_MS: u64 = 5_000;
/// Tokens kept; the cache is emptied when it grows past this.
const MAX_CACHED: usize = 16_384;

/// Tokens granted beyond those that came with chunk lists.
#[derive(Default)]
pub(crate) struct CapCache {
    read: Mutex<HashMap<(u64, u64, u64), pb::ShardCap>>,
    /// The cluster grants no tokens (it runs without capabilities).
    off: AtomicBool,
}

/// Whether a token is still well before its expiry at `now` (its epoch is
/// checked by the data server, which refuses one from an older map).
fn before_expiry(cap: &pb::ShardCap, now: u64) -> bool {
    cap.expires_ms > now.saturating_add(EXPIRY_MARGIN_MS)
}

/// [`before_expiry`] now.
pub(crate) fn fresh(cap: &pb::ShardCap) -> bool {
    before_expiry(cap, now_ms())
}

fn usable(cap: &pb::ShardCap, view_epoch: u64, now: u64) -> bool {
    before_expiry(cap, now) && cap.epoch >= view_epoch
}

impl CapCache {
    fn cached(&self, key: (u64, u64, u64), view_epoch: u64, now: u64) -> Option<pb::ShardCap> {
        let map = self.read.lock().unwrap_or_else(|e| e.into_inner());
        map.get(&key).filter(|c| usable(c, view_epoch, now)).cloned()
    }

    fn keep(&self, key: (u64, u64, u64), cap: pb::ShardCap) {
        let mut map = self.read.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= MAX_CACHED {
            map.clear();
        }
        map.insert(key, cap);
    }
}

/// The get token to read `chunk` of file `ino` with, under map epoch
/// `view_epoch` (None: the cluster uses no capabilities).
pub(crate) async fn read_cap(
    inner: &Inner,
    ino: u64,
    chunk: &pb::Chunk,
    view_epoch: u64,
) -> Result<Option<pb::ShardCap>, ClientError> {
    let now = now_ms();
    if let Some(cap) = chunk.cap.as_ref().filter(|c| usable(c, view_epoch, now)) {
        return Ok(Some(cap.clone()));
    }
    if inner.caps.off.load(Ordering::Relaxed) {
        return Ok(None);
    }
    let key = (ino, chunk.index, chunk.version);
    if let Some(cap) = inner.caps.cached(key, view_epoch, now) {
        return Ok(Some(cap));
    }
    refresh_read_cap(inner, ino, chunk).await
}

/// A freshly granted get token for `chunk` (after a data server refused
/// the one the client had), kept for later reads.
pub(crate) async fn refresh_read_cap(
    inner: &Inner,
    ino: u64,
    chunk: &pb::Chunk,
) -> Result<Option<pb::ShardCap>, ClientError> {
    let cap = grant(inner, ino, cap_ops::GET, chunk.index, chunk.version).await?;
    if let Some(c) = &cap {
        inner.caps.keep((ino, chunk.index, chunk.version), c.clone());
    }
    Ok(cap)
}

/// A put token (which deletes the same version too) for writing `version`
/// of chunk `index` of file `ino`.
pub(crate) async fn write_cap(
    inner: &Inner,
    ino: u64,
    index: u64,
    version: u64,
) -> Result<Option<pb::ShardCap>, ClientError> {
    if inner.caps.off.load(Ordering::Relaxed) {
        return Ok(None);
    }
    grant(inner, ino, cap_ops::PUT, index, version).await
}

async fn grant(
    inner: &Inner,
    ino: u64,
    ops: u32,
    index: u64,
    version: u64,
) -> Result<Option<pb::ShardCap>, ClientError> {
    let req = pb::GrantCaps { ino, ops, chunks: vec![pb::ChunkRef { index, version }] };
    let resp = inner.meta.call(Body::GrantCaps(req)).await?;
    let Some(RBody::Caps(caps)) = resp.body else { return Err(unexpected()) };
    let cap = caps.caps.into_iter().next();
    if cap.is_none() {
        inner.caps.off.store(true, Ordering::Relaxed);
    }
    Ok(cap)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_used_only_well_before_expiry_and_under_a_current_epoch() {
        let now = 1_000_000;
        let cap = |epoch, expires_ms| pb::ShardCap { epoch, expires_ms, ..Default::default() };
        assert!(usable(&cap(5, now + 60_000), 5, now));
        assert!(usable(&cap(6, now + 60_000), 5, now), "issued under a newer map");
        assert!(!usable(&cap(4, now + 60_000), 5, now), "issued under an older map");
        assert!(!usable(&cap(5, now + EXPIRY_MARGIN_MS), 5, now), "about to expire");
        let cache = CapCache::default();
        cache.keep((1, 2, 3), cap(5, now + 60_000));
        assert!(cache.cached((1, 2, 3), 5, now).is_some());
        assert!(cache.cached((1, 2, 4), 5, now).is_none());
        assert!(cache.cached((1, 2, 3), 6, now).is_none());
    }
}
