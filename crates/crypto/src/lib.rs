//! Shardline's end-to-end encryption: everything that touches a key lives here.
//!
//! This crate owns the key hierarchy and chunk sealing described in DESIGN.md
//! ("Encryption at rest"):
//!
//! - [`Kek`] — the key-encryption key. A development key provider is a small
//!   text key file ([`Kek::load`], [`Kek::load_or_create`]); the KEK wraps and
//!   unwraps per-file data keys ([`Kek::wrap`], [`Kek::unwrap`]).
//! - [`Keyring`] — the versions of one KEK a client holds, one current
//!   (key file format v2; a v1 file loads as one version): DEKs wrapped
//!   under any held version open, new ones wrap under the current one, and
//!   rotation adds a version then retires the old once nothing uses it.
//! - [`KeyProvider`] — where a keyring comes from: a key file, an external
//!   command printing it (a KMS), and a clear refusal without either.
//! - [`Dek`] — a random per-file data key, zeroized on drop. The metadata
//!   service only ever stores it wrapped.
//! - [`seal_segments`] / [`open_segments`] — chunk format v2: a chunk sealed
//!   as a STREAM of 64 KiB segments ([`SegmentLayout`]), each with its own
//!   tag, so a byte range opens without the rest of the chunk
//!   ([`open_segments_into`] opens one straight into a caller's buffer). Two suites
//!   ([`CipherSuite`]): AES-256-GCM (ring; a key derived per sealed chunk
//!   with HKDF-SHA256, the default on CPUs with AES instructions) and
//!   XChaCha20-Poly1305.
//! - [`seal_chunk`] / [`seal_chunk_padded`] / [`open_chunk`] — chunk format
//!   v1, XChaCha20-Poly1305 over the whole chunk: `nonce(24) || ciphertext
//!   || tag(16)` ([`SEAL_OVERHEAD`]). Still read; written only by tests.
//!
//! - [`ManifestKey`] / [`Manifest`] — a file's integrity manifest: an
//!   HMAC-SHA256, under a key derived from the file's DEK, over its size, a
//!   sequence number and every chunk's (index, version); required for files
//!   whose DEK is wrapped in [`WrapFormat::V2`], which binds that requirement.
//! - [`CapKey`] / [`issue_cap`] / [`check_cap`] — capability tokens for
//!   shard operations: HMAC-SHA256 under the cluster capability key over
//!   chunk, version, operations, placement epoch and expiry.
//!
//! Both formats bind every sealed byte ([`ChunkAad`]) to its file, chunk
//! index, chunk version and key id (v2 also to the segment's position), so a
//! shard moved anywhere else fails to open.
//! No type here prints key material: every `Debug` impl redacts keys.

mod aad;
mod blob;
mod cap_token;
mod capability;
mod dek;
mod error;
mod kek;
mod keyfile;
mod keyring;
mod manifest;
mod provider;
mod seal;
mod segment;
mod stream;
mod suite;

pub use aad::{ChunkAad, AAD_FORMAT_V2, AAD_FORMAT_VERSION, SUITE_XCHACHA20_POLY1305};
pub use blob::{open_blob, seal_blob};
pub use cap_token::{
    check as check_cap, claims as cap_claims, issue as issue_cap, now_ms, CapRefusal, CapTarget, CLOCK_SKEW_MS,
};
pub use capability::{ops as cap_ops, CapKey, Capability, CAP_FORMAT_V1, CAP_MAC_LEN};
pub use dek::Dek;
pub use error::CryptoError;
pub use kek::{Kek, WrapFormat, WRAPPED_DEK_LEN};
pub use keyring::{Keyring, MAX_KEK_VERSIONS};
pub use manifest::{ChunkDigest, Manifest, ManifestKey, MANIFEST_FORMAT_V1, MANIFEST_MAC_LEN};
pub use provider::{provider_from, KeyCommandProvider, KeyFileProvider, KeyProvider, DEFAULT_KEY_COMMAND_TIMEOUT};
pub use seal::{open_chunk, seal_chunk, seal_chunk_padded};
pub use segment::{SegmentLayout, SALT_LEN, SEGMENT_OVERHEAD, SEGMENT_SIZE};
pub use stream::{open_segments, open_segments_into, seal_segments};
pub use suite::{aes_instructions, ChunkFormat, CipherSuite};

/// Length of the XChaCha20-Poly1305 nonce that prefixes every sealed blob.
pub const NONCE_LEN: usize = 24;
/// Length of the Poly1305 tag that ends every sealed blob.
pub const TAG_LEN: usize = 16;
/// Bytes a sealed chunk adds to its plaintext: nonce + tag.
pub const SEAL_OVERHEAD: usize = NONCE_LEN + TAG_LEN;
/// Length of every symmetric key (KEK and DEK), in bytes.
pub const KEY_LEN: usize = 32;
