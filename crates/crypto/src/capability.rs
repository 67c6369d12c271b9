//! Capability tokens for shard operations (docs/security.md, "Capabilities").
//!
//! The metadata service issues them; data servers check them on every shard
//! request. A token names one chunk version (file id, chunk index, version),
//! the operations it allows, the placement epoch it was issued under and
//! when it expires, and carries an HMAC-SHA256 over all of that under the
//! cluster capability key, which the metadata and data servers share and
//! nobody else holds. Token format 1 (the wire's `ShardCap.format`):
//!
//! ```text
//! mac = HMAC-SHA256(key, "shardline-cap" || 0x00 || format(u32 BE)
//!         || key_id_len(u16 BE) || key_id || file_id(u64 BE)
//!         || chunk_index(u64 BE) || version(u64 BE) || ops(u32 BE)
//!         || epoch(u64 BE) || expires_ms(u64 BE))
//! ```
//!
//! The key is zeroized on drop and never printed. Only its raw bytes are
//! kept: ring's HMAC key schedule is built per call, on the stack.

use std::path::Path;

use ring::hmac;
use zeroize::Zeroizing;

use crate::{CryptoError, Kek, KEY_LEN};

/// The only token format this build issues and accepts.
pub const CAP_FORMAT_V1: u32 = 1;
/// Length of a token's MAC (HMAC-SHA256).
pub const CAP_MAC_LEN: usize = 32;
/// Domain label at the start of every MAC input.
const LABEL: &[u8] = b"shardline-cap\0";

/// Operation bits a token may allow (`Capability::ops`).
pub mod ops {
    pub const GET: u32 = 1;
    pub const PUT: u32 = 2;
    pub const DELETE: u32 = 4;
    pub const SCRUB: u32 = 8;
    pub const GC: u32 = 16;
    /// Every bit this build knows.
    pub const ALL: u32 = GET | PUT | DELETE | SCRUB | GC;

    /// A short name for error messages.
    pub fn name(op: u32) -> &'static str {
        match op {
            GET => "get",
            PUT => "put",
            DELETE => "delete",
            SCRUB => "scrub",
            GC => "collect garbage",
            _ => "several operations",
        }
    }
}

/// What a token allows, before it is MACed. Cluster-wide operations (scrub,
/// GC) name no chunk: `file_id`, `chunk_index` and `version` are 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capability {
    pub file_id: u64,
    pub chunk_index: u64,
    pub version: u64,
    pub ops: u32,
    pub epoch: u64,
    /// Milliseconds since the Unix epoch.
    pub expires_ms: u64,
}

/// The cluster capability key: an id (carried in tokens, so a key change is
/// a clear refusal rather than a mystery) and 32 secret bytes. Kept in a key
/// file of the KEK format (`shardline-kek v1`, mode 0600).
pub struct CapKey {
    id: String,
    key: Zeroizing<[u8; KEY_LEN]>,
}

impl CapKey {
    /// A key from raw bytes (tests and tools).
    pub fn from_bytes(id: &str, key: [u8; KEY_LEN]) -> CapKey {
        CapKey { id: id.to_owned(), key: Zeroizing::new(key) }
    }

    /// Load the key file at `path` (mode 0600, the KEK file format).
    pub fn load(path: &Path) -> Result<CapKey, CryptoError> {
        Ok(Self::from_kek(&Kek::load(path)?))
    }

    /// Load the key file at `path`, creating it (0600, random) if missing.
    pub fn load_or_create(path: &Path) -> Result<CapKey, CryptoError> {
        Ok(Self::from_kek(&Kek::load_or_create(path)?))
    }

    fn from_kek(kek: &Kek) -> CapKey {
        CapKey { id: kek.id.clone(), key: Zeroizing::new(kek.key) }
    }

    /// The key's id, as tokens carry it.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The MAC of `cap` under this key.
    pub fn mac(&self, cap: &Capability) -> [u8; CAP_MAC_LEN] {
        let key = hmac::Key::new(hmac::HMAC_SHA256, &self.key[..]);
        let tag = hmac::sign(&key, &message(cap, &self.id));
        let mut out = [0u8; CAP_MAC_LEN];
        out.copy_from_slice(tag.as_ref());
        out
    }

    /// Whether `mac` is this key's MAC of `cap` (constant time).
    pub fn verify(&self, cap: &Capability, mac: &[u8]) -> bool {
        let key = hmac::Key::new(hmac::HMAC_SHA256, &self.key[..]);
        hmac::verify(&key, &message(cap, &self.id), mac).is_ok()
    }
}

impl std::fmt::Debug for CapKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CapKey").field("id", &self.id).field("key", &"<redacted>").finish()
    }
}

/// The MAC input of format 1 (see the module comment).
fn message(cap: &Capability, key_id: &str) -> Vec<u8> {
    let id = key_id.as_bytes();
    let id_len = u16::try_from(id.len()).unwrap_or(u16::MAX);
    let id = &id[..usize::from(id_len)];
    let mut m = Vec::with_capacity(LABEL.len() + 4 + 2 + id.len() + 8 * 5 + 4);
    m.extend_from_slice(LABEL);
    m.extend_from_slice(&CAP_FORMAT_V1.to_be_bytes());
    m.extend_from_slice(&id_len.to_be_bytes());
    m.extend_from_slice(id);
    m.extend_from_slice(&cap.file_id.to_be_bytes());
    m.extend_from_slice(&cap.chunk_index.to_be_bytes());
    m.extend_from_slice(&cap.version.to_be_bytes());
    m.extend_from_slice(&cap.ops.to_be_bytes());
    m.extend_from_slice(&cap.epoch.to_be_bytes());
    m.extend_from_slice(&cap.expires_ms.to_be_bytes());
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cap() -> Capability {
        Capability { file_id: 7, chunk_index: 3, version: 99, ops: ops::GET, epoch: 5, expires_ms: 1_000 }
    }

    #[test]
    fn mac_verifies_and_binds_every_field() {
        let key = CapKey::from_bytes("cap-1", [7; KEY_LEN]);
        let mac = key.mac(&cap());
        assert!(key.verify(&cap(), &mac));
        let changed = [
            Capability { file_id: 8, ..cap() },
            Capability { chunk_index: 4, ..cap() },
            Capability { version: 98, ..cap() },
            Capability { ops: ops::GET | ops::PUT, ..cap() },
            Capability { epoch: 6, ..cap() },
            Capability { expires_ms: 1_001, ..cap() },
        ];
        for c in changed {
            assert!(!key.verify(&c, &mac), "{c:?} accepted under another token's MAC");
        }
        let mut flipped = mac;
        flipped[0] ^= 1;
        assert!(!key.verify(&cap(), &flipped));
        assert!(!key.verify(&cap(), &mac[..31]), "a truncated MAC");
        assert!(!key.verify(&cap(), &[]));
    }

    #[test]
    fn another_key_or_key_id_does_not_verify() {
        let key = CapKey::from_bytes("cap-1", [7; KEY_LEN]);
        let mac = key.mac(&cap());
        assert!(!CapKey::from_bytes("cap-1", [8; KEY_LEN]).verify(&cap(), &mac));
        assert!(!CapKey::from_bytes("cap-2", [7; KEY_LEN]).verify(&cap(), &mac));
    }

    #[test]
    fn key_file_round_trip_and_debug_redacts() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("cap.key");
        let made = CapKey::load_or_create(&path).expect("create");
        let loaded = CapKey::load(&path).expect("load");
        assert_eq!(made.id(), loaded.id());
        assert!(loaded.verify(&cap(), &made.mac(&cap())));
        let shown = format!("{loaded:?}");
        assert!(shown.contains("redacted") && !shown.contains("key: ["), "{shown}");
    }
}
