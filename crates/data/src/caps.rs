//! Capability checks: every shard request must carry a token the metadata
//! service issued (crates/crypto/src/cap_token.rs) for exactly the chunk
//! version and the operation it asks for; scrub and garbage collection need
//! a cluster-wide one. The token's placement epoch is the one checked
//! against the newest map this server has seen. Rebuild and scrub repair
//! read from peers with tokens this server mints under the same cluster key
//! (it holds it to check tokens), for exactly the shards they read.

use std::sync::Arc;
use std::time::Duration;

use shardline_crypto::{cap_ops, check_cap, issue_cap, now_ms, CapKey, CapTarget, Capability};
use shardline_proto::v1 as pb;
use shardline_types::ShardKey;

use crate::DataError;

/// How long a token this server mints for a peer read lives.
const PEER_TOKEN_TTL: Duration = Duration::from_secs(60);

/// Whether this server checks capabilities.
#[derive(Clone)]
pub enum CapPolicy {
    /// Every shard request needs a valid token under this key.
    Enforce(Arc<CapKey>),
    /// No checks: only with `--insecure-no-capabilities` (development),
    /// and for bare store services in tests.
    Off,
}

impl std::fmt::Debug for CapPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CapPolicy::Enforce(key) => write!(f, "Enforce({})", key.id()),
            CapPolicy::Off => f.write_str("Off"),
        }
    }
}

impl CapPolicy {
    /// Check `token` for `op` on `target`. Returns the epoch to check
    /// against the placement map: the token's when capabilities are
    /// enforced, else `request_epoch` (the request's own, unauthenticated).
    pub fn check(
        &self,
        token: Option<&pb::ShardCap>,
        target: CapTarget,
        op: u32,
        request_epoch: u64,
    ) -> Result<u64, DataError> {
        match self {
            CapPolicy::Off => Ok(request_epoch),
            CapPolicy::Enforce(key) => check_cap(key, token, target, op, now_ms())
                .map(|cap| cap.epoch)
                .map_err(|why| DataError::Refused(why.to_string())),
        }
    }

    /// A token for reading `key`'s chunk version from a peer (rebuild and
    /// scrub repair), under epoch `epoch`; None when capabilities are off.
    pub fn mint_peer_get(&self, key: &ShardKey, epoch: u64) -> Option<pb::ShardCap> {
        match self {
            CapPolicy::Off => None,
            CapPolicy::Enforce(k) => Some(issue_cap(
                k,
                &Capability {
                    file_id: key.file_id,
                    chunk_index: key.chunk_index,
                    version: key.version,
                    ops: cap_ops::GET,
                    epoch,
                    expires_ms: now_ms() + PEER_TOKEN_TTL.as_millis() as u64,
                },
            )),
        }
    }
}

/// The chunk version a shard belongs to, as tokens name it.
pub fn target_of(key: &ShardKey) -> CapTarget {
    CapTarget { file_id: key.file_id, chunk_index: key.chunk_index, version: key.version }
}
