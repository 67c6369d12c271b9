//! Metadata at rest: every value the metadata server stores that can hold
//! file names or sizes (log entries, snapshots) is sealed with
//! XChaCha20-Poly1305 under the metadata servers' key before it is stored.
//!
//! The key (`meta.key`) is a key file of format v1 (one key) or v2 (a
//! keyring: one id, several versions, one current), `crypto/keyring.rs`.
//! Values are sealed under the current version and open under any version
//! the file holds.
//!
//! Stored value: `[format][body]`.
//!
//! - Format 3 (written): `[3][id length u8][key id][key version u32 BE]
//!   [seal_blob(key, aad, plaintext)]`, AAD = `at-rest-v3 NUL what NUL
//!   id-length id version(u32 BE) index(u64 BE) term(u64 BE)`. A value
//!   moved to another row (another log index, another term, another
//!   snapshot) or relabelled with another key id or version fails to open,
//!   and a value sealed under another key id is refused by name before any
//!   decryption is tried.
//! - Format 2 (read only, from before the key id and term were bound):
//!   `seal_blob(key, what || index (u64 BE), plaintext)` under the key
//!   file's current version (a v1 file's only key).
//! - Format 1: plain, for servers run with `--insecure-plaintext-metadata`.
//!
//! A server with a key refuses plain values, and one without a key cannot
//! read sealed ones.

use std::path::Path;

use shardline_crypto::{open_blob, seal_blob, Kek, Keyring};

use crate::MetaError;

const PLAIN: u8 = 1;
const SEALED_V2: u8 = 2;
const SEALED_V3: u8 = 3;
/// Domain label of format 3's AAD.
const AAD_V3: &[u8] = b"at-rest-v3\0";

/// Where a stored value belongs: its kind (`entry`, `snapshot`), the log
/// index and the term (an entry's own, a snapshot's last included).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Row<'a> {
    pub what: &'a str,
    pub index: u64,
    pub term: u64,
}

impl<'a> Row<'a> {
    pub fn entry(index: u64, term: u64) -> Self {
        Row { what: "entry", index, term }
    }

    pub fn snapshot(index: u64, term: u64) -> Self {
        Row { what: "snapshot", index, term }
    }
}

impl std::fmt::Display for Row<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} (term {})", self.what, self.index, self.term)
    }
}

pub struct AtRest {
    ring: Option<Keyring>,
}

impl AtRest {
    /// Values stored in the clear (only for tests and key-less development).
    pub fn plain() -> Self {
        AtRest { ring: None }
    }

    /// Sealed under the one key `key`.
    pub fn sealed(key: Kek) -> Self {
        Self::with_keyring(Keyring::from_kek(key))
    }

    /// Sealed under `ring`'s current version; any version it holds opens.
    pub fn with_keyring(ring: Keyring) -> Self {
        AtRest { ring: Some(ring) }
    }

    /// Load the server key from `path` (None: store in the clear).
    pub fn load(path: Option<&Path>) -> Result<Self, MetaError> {
        match path {
            None => Ok(Self::plain()),
            Some(p) => Keyring::load(p)
                .map(Self::with_keyring)
                .map_err(|e| MetaError::AtRest(format!("load the server key: {e}"))),
        }
    }

    pub fn is_sealed(&self) -> bool {
        self.ring.is_some()
    }

    /// The key id values are sealed under (None in the clear).
    pub fn key_id(&self) -> Option<&str> {
        self.ring.as_ref().map(Keyring::id)
    }

    fn aad_v3(row: Row, id: &str, version: u32) -> Vec<u8> {
        let mut aad = Vec::with_capacity(AAD_V3.len() + row.what.len() + id.len() + 30);
        aad.extend_from_slice(AAD_V3);
        aad.extend_from_slice(row.what.as_bytes());
        aad.push(0);
        aad.push(id.len() as u8);
        aad.extend_from_slice(id.as_bytes());
        aad.extend_from_slice(&version.to_be_bytes());
        aad.extend_from_slice(&row.index.to_be_bytes());
        aad.extend_from_slice(&row.term.to_be_bytes());
        aad
    }

    /// Format 2's AAD: kind and index only.
    fn aad_v2(what: &str, index: u64) -> Vec<u8> {
        let mut aad = Vec::with_capacity(what.len() + 8);
        aad.extend_from_slice(what.as_bytes());
        aad.extend_from_slice(&index.to_be_bytes());
        aad
    }

    /// The stored form of `plaintext`, the value of `row`.
    pub fn seal(&self, row: Row, plaintext: &[u8]) -> Vec<u8> {
        let Some(ring) = &self.ring else {
            let mut out = Vec::with_capacity(1 + plaintext.len());
            out.push(PLAIN);
            out.extend_from_slice(plaintext);
            return out;
        };
        let (id, kek) = (ring.id(), ring.current());
        let sealed = seal_blob(kek, &Self::aad_v3(row, id, kek.version()), plaintext);
        // Key ids are at most 128 bytes (`keyfile.rs`), so the length fits.
        let mut out = Vec::with_capacity(6 + id.len() + sealed.len());
        out.push(SEALED_V3);
        out.push(id.len() as u8);
        out.extend_from_slice(id.as_bytes());
        out.extend_from_slice(&kek.version().to_be_bytes());
        out.extend_from_slice(&sealed);
        out
    }

    /// The plaintext of a value made by [`AtRest::seal`] for `row`. `term`
    /// None: the caller does not know the row's term (a log record written
    /// before terms were stored), which only format 1 and 2 values allow.
    pub fn open(&self, what: &str, index: u64, term: Option<u64>, stored: &[u8]) -> Result<Vec<u8>, MetaError> {
        let here = || match term {
            Some(t) => format!("{}", Row { what, index, term: t }),
            None => format!("{what} {index}"),
        };
        let err = |msg: String| MetaError::AtRest(format!("{}: {msg}", here()));
        match (stored.split_first(), &self.ring) {
            (Some((&SEALED_V3, body)), Some(ring)) => {
                let term = term.ok_or_else(|| err("sealed with its term, but its record carries none".into()))?;
                let (id, version, sealed) = split_v3(body).ok_or_else(|| err("sealed value is truncated".into()))?;
                if id != ring.id().as_bytes() {
                    return Err(err(format!(
                        "sealed under key id `{}`, but this server's key file holds key id `{}`",
                        String::from_utf8_lossy(id),
                        ring.id()
                    )));
                }
                let kek = ring.kek(version).ok_or_else(|| {
                    err(format!(
                        "sealed under version {version} of key `{}`, which this server's key file does not hold \
                         (it holds {:?})",
                        ring.id(),
                        ring.versions()
                    ))
                })?;
                let aad = Self::aad_v3(Row { what, index, term }, ring.id(), version);
                open_blob(kek, &aad, sealed).map_err(|e| {
                    err(format!(
                        "fails authentication under key `{}` version {version} ({e}): it was sealed for another \
                         index or term, or altered",
                        ring.id()
                    ))
                })
            }
            (Some((&SEALED_V2, body)), Some(ring)) => {
                // Format 2 does not say which version sealed it: the
                // current one first, then the others, newest first.
                let aad = Self::aad_v2(what, index);
                let mut versions = ring.versions();
                versions.sort_by_key(|&v| (v != ring.current_version(), std::cmp::Reverse(v)));
                versions.iter().filter_map(|&v| ring.kek(v)).find_map(|k| open_blob(k, &aad, body).ok()).ok_or_else(
                    || {
                        err(format!(
                            "fails authentication under every version of key `{}` (format 2, bound to its index \
                             only): it was sealed for another index, under another key, or altered",
                            ring.id()
                        ))
                    },
                )
            }
            (Some((&(SEALED_V2 | SEALED_V3), _)), None) => {
                Err(err("encrypted, but no server key is configured".into()))
            }
            (Some((&PLAIN, _)), Some(_)) => Err(err("stored in the clear in an encrypted store".into())),
            (Some((&PLAIN, body)), None) => Ok(body.to_vec()),
            _ => Err(err("unknown value format".into())),
        }
    }
}

#[cfg(test)]
impl AtRest {
    /// A value as format 2 sealed it (to build old stores in tests).
    pub fn seal_format2(&self, what: &str, index: u64, plaintext: &[u8]) -> Vec<u8> {
        let ring = self.ring.as_ref().expect("format 2 is sealed");
        let mut out = vec![SEALED_V2];
        out.extend_from_slice(&seal_blob(ring.current(), &Self::aad_v2(what, index), plaintext));
        out
    }
}

/// Format 3's body: key id, key version, sealed blob.
fn split_v3(body: &[u8]) -> Option<(&[u8], u32, &[u8])> {
    let (&len, rest) = body.split_first()?;
    let id = rest.get(..usize::from(len))?;
    let version = u32::from_be_bytes(rest.get(usize::from(len)..usize::from(len) + 4)?.try_into().ok()?);
    Some((id, version, &rest[usize::from(len) + 4..]))
}

#[cfg(test)]
#[path = "at_rest_tests.rs"]
mod tests;
