//! Shard capabilities issued by the metadata service (docs/security.md,
//! "Capabilities"): every chunk list a client reads carries a get token per
//! chunk, every list of released chunks a delete token per chunk, and
//! `GrantCaps` answers with get or put tokens for chunk versions of a file
//! (checked by the state machine first: a regular file, and for put a
//! version that is not live). `GrantAdminCap` gives a cluster-wide scrub or
//! GC token. Tokens are made here, after the state machine answered, so
//! none is ever stored in the Raft log, a snapshot or the dedup cache.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use shardline_crypto::{cap_ops, issue_cap, now_ms, CapKey, Capability};
use shardline_proto::v1 as pb;
use shardline_proto::v1::meta_request::Body;
use shardline_proto::v1::meta_response::Body as RBody;
use shardline_types::ErrorCode;

use crate::namespace::OpError;
use crate::MetaError;

/// Most chunk versions one `GrantCaps` may name.
pub const MAX_GRANT_CHUNKS: usize = 1024;

/// Issues tokens under the cluster capability key (or none: capabilities
/// off, `--insecure-no-capabilities`).
pub struct CapIssuer {
    key: Option<Arc<CapKey>>,
    ttl: Duration,
}

impl CapIssuer {
    /// Load the key file (None: capabilities off).
    pub fn load(path: Option<&Path>, ttl: Duration) -> Result<CapIssuer, MetaError> {
        let key = match path {
            Some(p) => {
                Some(Arc::new(CapKey::load(p).map_err(|e| MetaError::Config(format!("load the capability key: {e}")))?))
            }
            None => None,
        };
        Ok(CapIssuer { key, ttl })
    }

    /// An issuer over a key already loaded (tests).
    pub fn with_key(key: Option<Arc<CapKey>>, ttl: Duration) -> CapIssuer {
        CapIssuer { key, ttl }
    }

    pub fn enabled(&self) -> bool {
        self.key.is_some()
    }

    fn mint(&self, file_id: u64, chunk_index: u64, version: u64, ops: u32, epoch: u64) -> Option<pb::ShardCap> {
        let key = self.key.as_ref()?;
        let expires_ms = now_ms().saturating_add(self.ttl.as_millis() as u64);
        Some(issue_cap(key, &Capability { file_id, chunk_index, version, ops, epoch, expires_ms }))
    }

    /// Add tokens to a successful response to `req`, under placement epoch
    /// `epoch`: get tokens to a chunk list, delete tokens to released
    /// chunks, the granted tokens to an approved `GrantCaps`.
    pub fn attach(&self, req: Option<&Body>, resp: &mut pb::MetaResponse, epoch: u64) {
        if resp.error.is_some() || self.key.is_none() {
            return;
        }
        match (req, resp.body.as_mut()) {
            (Some(Body::GetChunks(g)), Some(RBody::Chunks(list))) => {
                for c in &mut list.chunks {
                    c.cap = self.mint(g.ino, c.index, c.version, cap_ops::GET, epoch);
                }
            }
            (Some(Body::GrantCaps(g)), Some(RBody::Caps(caps))) => {
                let ops = granted_ops(g.ops).unwrap_or(0);
                caps.caps = g.chunks.iter().filter_map(|c| self.mint(g.ino, c.index, c.version, ops, epoch)).collect();
            }
            // A file this create made (its key is the one the request
            // carried: an existing file has its own) belongs to the creator,
            // who may always write its data: the first version's put token.
            (Some(Body::Create(c)), Some(RBody::Attr(a))) if c.first_version != 0 && made_by(c, a) => {
                resp.first_put = self.mint(a.ino, 0, c.first_version, cap_ops::PUT, epoch);
            }
            (_, Some(RBody::Released(r))) => self.released(r, epoch),
            (_, Some(RBody::AttrReleased(a))) => {
                if let Some(r) = a.released.as_mut() {
                    self.released(r, epoch);
                }
            }
            _ => {}
        }
    }

    fn released(&self, r: &mut pb::Released, epoch: u64) {
        for c in &mut r.chunks {
            c.cap = self.mint(r.file_id, c.index, c.version, cap_ops::DELETE, epoch);
        }
    }

    /// A cluster-wide token for scrub and/or GC.
    pub fn grant_admin(&self, g: &pb::GrantAdminCap, epoch: u64) -> Result<pb::Caps, OpError> {
        if g.ops == 0 || g.ops & !(cap_ops::SCRUB | cap_ops::GC) != 0 {
            return Err(OpError::new(
                ErrorCode::InvalidArgument,
                "an admin capability is for scrub (8) and/or gc (16)",
            ));
        }
        Ok(pb::Caps { caps: self.mint(0, 0, 0, g.ops, epoch).into_iter().collect() })
    }
}

/// Whether the answer `a` to `c` is the file `c` made: it carries the
/// wrapped key `c` supplied (wrapped keys are random: an existing file's
/// differs).
fn made_by(c: &pb::Create, a: &pb::Attr) -> bool {
    matches!((&c.key, &a.key), (Some(sent), Some(kept)) if !sent.wrapped.is_empty() && sent.wrapped == kept.wrapped)
}

/// The operations a `GrantCaps` for `asked` yields: get, or put with delete
/// of the same version (a writer drops shards it never committed). None for
/// anything else.
pub fn granted_ops(asked: u32) -> Option<u32> {
    match asked {
        cap_ops::GET => Some(cap_ops::GET),
        cap_ops::PUT => Some(cap_ops::PUT | cap_ops::DELETE),
        _ => None,
    }
}

/// A `CommitChunk` carries no token into the log.
pub fn strip_request_caps(req: &mut pb::MetaRequest) {
    if let Some(Body::CommitChunk(c)) = req.body.as_mut() {
        if let Some(chunk) = c.chunk.as_mut() {
            chunk.cap = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use shardline_crypto::{check_cap, CapTarget};

    use super::*;

    fn issuer() -> (CapIssuer, Arc<CapKey>) {
        let key = Arc::new(CapKey::from_bytes("cap-t", [3; 32]));
        (CapIssuer::with_key(Some(key.clone()), Duration::from_secs(60)), key)
    }

    fn chunk(index: u64, version: u64) -> pb::Chunk {
        pb::Chunk { index, version, ..Default::default() }
    }

    #[test]
    fn chunk_lists_get_read_tokens_and_released_chunks_delete_tokens() {
        let (issuer, key) = issuer();
        let req = Body::GetChunks(pb::GetChunks { ino: 9, ..Default::default() });
        let mut resp = pb::MetaResponse {
            body: Some(RBody::Chunks(pb::ChunkList { chunks: vec![chunk(0, 5), chunk(1, 6)], ..Default::default() })),
            ..Default::default()
        };
        issuer.attach(Some(&req), &mut resp, 4);
        let Some(RBody::Chunks(list)) = &resp.body else { panic!("body") };
        for c in &list.chunks {
            let t = CapTarget { file_id: 9, chunk_index: c.index, version: c.version };
            let cap = check_cap(&key, c.cap.as_ref(), t, cap_ops::GET, now_ms()).expect("valid get token");
            assert_eq!(cap.epoch, 4);
            assert!(check_cap(&key, c.cap.as_ref(), t, cap_ops::PUT, now_ms()).is_err(), "a read token writes");
        }
        let mut released = pb::MetaResponse {
            body: Some(RBody::Released(pb::Released { chunks: vec![chunk(2, 7)], file_id: 9, attr: None })),
            ..Default::default()
        };
        issuer.attach(Some(&Body::Unlink(pb::Unlink::default())), &mut released, 4);
        let Some(RBody::Released(r)) = &released.body else { panic!("body") };
        let t = CapTarget { file_id: 9, chunk_index: 2, version: 7 };
        assert!(check_cap(&key, r.chunks[0].cap.as_ref(), t, cap_ops::DELETE, now_ms()).is_ok());
        assert!(check_cap(&key, r.chunks[0].cap.as_ref(), t, cap_ops::GET, now_ms()).is_err());
    }

    #[test]
    fn nothing_is_attached_to_errors_or_without_a_key() {
        let (issuer, _) = issuer();
        let req = Body::GetChunks(pb::GetChunks { ino: 9, ..Default::default() });
        let body = Some(RBody::Chunks(pb::ChunkList { chunks: vec![chunk(0, 5)], ..Default::default() }));
        let mut failed =
            pb::MetaResponse { error: Some(pb::Error::default()), body: body.clone(), ..Default::default() };
        issuer.attach(Some(&req), &mut failed, 1);
        let Some(RBody::Chunks(list)) = &failed.body else { panic!("body") };
        assert!(list.chunks[0].cap.is_none());
        let off = CapIssuer::with_key(None, Duration::from_secs(60));
        let mut resp = pb::MetaResponse { body, ..Default::default() };
        off.attach(Some(&req), &mut resp, 1);
        let Some(RBody::Chunks(list)) = &resp.body else { panic!("body") };
        assert!(list.chunks[0].cap.is_none());
    }

    #[test]
    fn a_create_that_made_the_file_carries_the_put_token_of_its_first_chunk_version() {
        let (issuer, key) = issuer();
        let wrapped = |b: u8| Some(pb::WrappedKey { wrapped: vec![b; 40], ..Default::default() });
        let create = |first_version| pb::Create { key: wrapped(1), first_version, ..Default::default() };
        let answer = |key| pb::MetaResponse {
            body: Some(RBody::Attr(pb::Attr { ino: 9, key, ..Default::default() })),
            ..Default::default()
        };
        let mut made = answer(wrapped(1));
        issuer.attach(Some(&Body::Create(create(77))), &mut made, 3);
        let t = CapTarget { file_id: 9, chunk_index: 0, version: 77 };
        assert!(check_cap(&key, made.first_put.as_ref(), t, cap_ops::PUT, now_ms()).is_ok());
        assert!(check_cap(&key, made.first_put.as_ref(), t, cap_ops::GET, now_ms()).is_err());
        // An existing file (another key): nothing; nor without a version.
        let mut existing = answer(wrapped(2));
        issuer.attach(Some(&Body::Create(create(77))), &mut existing, 3);
        assert!(existing.first_put.is_none());
        let mut unasked = answer(wrapped(1));
        issuer.attach(Some(&Body::Create(create(0))), &mut unasked, 3);
        assert!(unasked.first_put.is_none());
    }

    #[test]
    fn grants_give_exactly_what_was_asked() {
        let (issuer, key) = issuer();
        let g = pb::GrantCaps { ino: 9, ops: cap_ops::PUT, chunks: vec![pb::ChunkRef { index: 3, version: 11 }] };
        let mut resp = pb::MetaResponse { body: Some(RBody::Caps(pb::Caps::default())), ..Default::default() };
        issuer.attach(Some(&Body::GrantCaps(g)), &mut resp, 2);
        let Some(RBody::Caps(caps)) = &resp.body else { panic!("body") };
        let t = CapTarget { file_id: 9, chunk_index: 3, version: 11 };
        for op in [cap_ops::PUT, cap_ops::DELETE] {
            assert!(check_cap(&key, caps.caps.first(), t, op, now_ms()).is_ok());
        }
        assert!(check_cap(&key, caps.caps.first(), t, cap_ops::GET, now_ms()).is_err());
        assert_eq!(granted_ops(cap_ops::DELETE), None);
        assert_eq!(granted_ops(cap_ops::GET | cap_ops::PUT), None);
        assert!(issuer.grant_admin(&pb::GrantAdminCap { ops: cap_ops::GET }, 1).is_err());
        let admin = issuer.grant_admin(&pb::GrantAdminCap { ops: cap_ops::GC }, 1).expect("gc grant");
        assert!(check_cap(&key, admin.caps.first(), CapTarget::CLUSTER, cap_ops::GC, now_ms()).is_ok());
        assert!(check_cap(&key, admin.caps.first(), CapTarget::CLUSTER, cap_ops::SCRUB, now_ms()).is_err());
    }
}
