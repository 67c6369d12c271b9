//! A file's integrity manifest (docs/security.md, "File integrity").
//!
//! The metadata service keeps a file's size and chunk list; whoever can
//! write metadata could point a chunk back at an older version whose shards
//! still exist, drop a chunk or shrink the file. A file whose DEK is wrapped
//! in wrap format 2 ([`crate::WrapFormat::V2`]) therefore carries a
//! manifest: a MAC, under a key only holders of the DEK can derive, over
//! its size, a sequence number and every chunk's (index, version). The
//! metadata service stores the MAC and the sequence number beside the
//! inode; writers compute the next one with each change, readers recompute
//! it over what the service returned and refuse any difference.
//!
//! Manifest format 1:
//!
//! ```text
//! key    = HKDF-SHA256(salt = none, ikm = DEK, info = "shardline-manifest-v1")
//! digest = SHA-256((index(u64 BE) || version(u64 BE))* || count(u64 BE))
//!            over the chunks in strictly ascending index order
//! mac    = HMAC-SHA256(key, "shardline-manifest" || 0x00 || format(u32 BE)
//!            || file_id(u64 BE) || size(u64 BE) || seq(u64 BE) || digest)
//! ```
//!
//! The sequence number grows by one with every change; the service applies
//! a change only if it names the next number (compare-and-swap), so two
//! writers of one file merge instead of overwriting. The manifest a file is
//! created with (sequence 0: size 0, no chunks) is made before the service
//! assigns the file's id and binds file id 0; every later one binds the
//! file's id. The key is unique per file (derived from its DEK), so no
//! manifest verifies for another file either way.

use ring::{digest, hkdf, hmac};
use zeroize::Zeroizing;

use crate::{Dek, KEY_LEN};

/// The only manifest format this build writes and reads.
pub const MANIFEST_FORMAT_V1: u32 = 1;
/// Length of a manifest's MAC (HMAC-SHA256).
pub const MANIFEST_MAC_LEN: usize = 32;
/// HKDF info that derives the manifest key from a DEK.
const KEY_LABEL: &[u8] = b"shardline-manifest-v1";
/// Domain label at the start of every MAC input.
const MAC_LABEL: &[u8] = b"shardline-manifest\0";

/// SHA-256 over a file's chunk list, as (index, version) in ascending index
/// order. Fed one chunk at a time, so a list of any length costs no copy.
pub struct ChunkDigest {
    ctx: digest::Context,
    count: u64,
    last: Option<u64>,
    ordered: bool,
}

impl Default for ChunkDigest {
    fn default() -> Self {
        ChunkDigest { ctx: digest::Context::new(&digest::SHA256), count: 0, last: None, ordered: true }
    }
}

impl ChunkDigest {
    /// Add the next chunk. Indexes must strictly ascend; one that does not
    /// makes [`ChunkDigest::finish`] answer `None`.
    pub fn push(&mut self, index: u64, version: u64) {
        if self.last.is_some_and(|l| l >= index) {
            self.ordered = false;
        }
        self.last = Some(index);
        self.count += 1;
        self.ctx.update(&index.to_be_bytes());
        self.ctx.update(&version.to_be_bytes());
    }

    /// The digest, or `None` if the chunks were not in strictly ascending
    /// index order (a list no honest service returns).
    pub fn finish(self) -> Option<[u8; 32]> {
        if !self.ordered {
            return None;
        }
        // Pairs are fixed-size, so pairs then the count is unambiguous.
        let mut ctx = self.ctx;
        ctx.update(&self.count.to_be_bytes());
        let mut out = [0u8; 32];
        out.copy_from_slice(ctx.finish().as_ref());
        Some(out)
    }

    /// The digest of `chunks` ((index, version), ascending), `None` if
    /// they are not in strictly ascending order.
    pub fn of(chunks: impl IntoIterator<Item = (u64, u64)>) -> Option<[u8; 32]> {
        let mut d = ChunkDigest::default();
        for (i, v) in chunks {
            d.push(i, v);
        }
        d.finish()
    }
}

/// What a manifest states about a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Manifest {
    /// The file's id (0 in the manifest a file is created with).
    pub file_id: u64,
    pub size: u64,
    pub seq: u64,
    /// [`ChunkDigest`] of the chunk list.
    pub chunks: [u8; 32],
}

/// The key a file's manifests are MACed with, derived from its DEK.
/// Zeroized on drop; `Debug` prints no key bytes.
pub struct ManifestKey(Zeroizing<[u8; KEY_LEN]>);

/// HKDF output length for the manifest key.
struct KeyLen;

impl hkdf::KeyType for KeyLen {
    fn len(&self) -> usize {
        KEY_LEN
    }
}

impl ManifestKey {
    /// The manifest key of the file whose data key is `dek`.
    pub fn derive(dek: &Dek) -> ManifestKey {
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, &[]).extract(dek.as_bytes());
        let info = [KEY_LABEL];
        let okm = prk.expand(&info, KeyLen).expect("32 bytes is within HKDF-SHA256's output limit");
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        okm.fill(&mut key[..]).expect("the output buffer has the requested length");
        ManifestKey(key)
    }

    /// The MAC of `m` under this key (manifest format 1).
    pub fn mac(&self, m: &Manifest) -> [u8; MANIFEST_MAC_LEN] {
        let key = hmac::Key::new(hmac::HMAC_SHA256, &self.0[..]);
        let tag = hmac::sign(&key, &message(m));
        let mut out = [0u8; MANIFEST_MAC_LEN];
        out.copy_from_slice(tag.as_ref());
        out
    }

    /// Whether `mac` is this key's MAC of `m` (constant time).
    pub fn verify(&self, m: &Manifest, mac: &[u8]) -> bool {
        let key = hmac::Key::new(hmac::HMAC_SHA256, &self.0[..]);
        hmac::verify(&key, &message(m), mac).is_ok()
    }
}

impl std::fmt::Debug for ManifestKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ManifestKey(<redacted>)")
    }
}

/// The MAC input of format 1 (see the module comment).
fn message(m: &Manifest) -> Vec<u8> {
    let mut out = Vec::with_capacity(MAC_LABEL.len() + 4 + 8 * 3 + 32);
    out.extend_from_slice(MAC_LABEL);
    out.extend_from_slice(&MANIFEST_FORMAT_V1.to_be_bytes());
    out.extend_from_slice(&m.file_id.to_be_bytes());
    out.extend_from_slice(&m.size.to_be_bytes());
    out.extend_from_slice(&m.seq.to_be_bytes());
    out.extend_from_slice(&m.chunks);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dek(b: u8) -> Dek {
        Dek::from_bytes([b; KEY_LEN])
    }

    fn chunks() -> Vec<(u64, u64)> {
        vec![(0, 11), (1, 12), (5, 13)]
    }

    fn manifest() -> Manifest {
        Manifest { file_id: 7, size: 5 * 4096 + 10, seq: 3, chunks: ChunkDigest::of(chunks()).expect("ordered") }
    }

    #[test]
    fn mac_verifies_and_binds_every_field() {
        let key = ManifestKey::derive(&dek(1));
        let mac = key.mac(&manifest());
        assert!(key.verify(&manifest(), &mac));
        let digest = |c: Vec<(u64, u64)>| ChunkDigest::of(c).expect("ordered");
        let changed = [
            Manifest { file_id: 8, ..manifest() },
            Manifest { size: manifest().size - 1, ..manifest() },
            Manifest { seq: 4, ..manifest() },
            // A chunk rolled back to another version.
            Manifest { chunks: digest(vec![(0, 11), (1, 99), (5, 13)]), ..manifest() },
            // A chunk dropped.
            Manifest { chunks: digest(vec![(0, 11), (5, 13)]), ..manifest() },
            // A chunk moved to another index.
            Manifest { chunks: digest(vec![(0, 11), (2, 12), (5, 13)]), ..manifest() },
            // A chunk added.
            Manifest { chunks: digest(vec![(0, 11), (1, 12), (5, 13), (6, 14)]), ..manifest() },
            // No chunks at all.
            Manifest { chunks: digest(vec![]), ..manifest() },
        ];
        for m in changed {
            assert!(!key.verify(&m, &mac), "{m:?} accepted under another manifest's MAC");
        }
        let mut flipped = mac;
        flipped[31] ^= 1;
        assert!(!key.verify(&manifest(), &flipped));
        assert!(!key.verify(&manifest(), &mac[..31]), "a truncated MAC");
        assert!(!key.verify(&manifest(), &[]));
    }

    #[test]
    fn another_files_key_does_not_verify() {
        let mac = ManifestKey::derive(&dek(1)).mac(&manifest());
        assert!(!ManifestKey::derive(&dek(2)).verify(&manifest(), &mac));
    }

    #[test]
    fn the_key_is_derived_not_the_dek_itself() {
        // A MAC under the raw DEK must not verify: the label separates uses.
        let raw = hmac::Key::new(hmac::HMAC_SHA256, &[1; KEY_LEN]);
        let mac = hmac::sign(&raw, &message(&manifest()));
        assert!(!ManifestKey::derive(&dek(1)).verify(&manifest(), mac.as_ref()));
    }

    #[test]
    fn digest_refuses_unordered_or_repeated_indexes() {
        assert!(ChunkDigest::of(vec![(1, 1), (0, 1)]).is_none());
        assert!(ChunkDigest::of(vec![(1, 1), (1, 2)]).is_none());
        assert!(ChunkDigest::of(vec![]).is_some());
        // Pairs are not ambiguous: (index, version) swapped differs.
        assert_ne!(ChunkDigest::of(vec![(1, 2)]), ChunkDigest::of(vec![(2, 1)]));
    }

    #[test]
    fn debug_redacts_key() {
        assert_eq!(format!("{:?}", ManifestKey::derive(&dek(0xab))), "ManifestKey(<redacted>)");
    }
}
