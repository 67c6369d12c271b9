//! Metadata at rest: every value the metadata server stores that can hold
//! file names or sizes (log entries, snapshots) is sealed with
//! XChaCha20-Poly1305 under the metadata servers' key before it reaches redb.
//!
//! Stored value: `[format][body]`, format 1 = plain (no key configured),
//! 2 = `seal_blob(key, aad, plaintext)` with AAD = `what || id (u64 BE)`, so a
//! value moved to another row (another log index, another snapshot) fails to
//! open. A server with a key refuses plain values, and one without a key
//! cannot read sealed ones.

use std::path::Path;

use shardline_crypto::{open_blob, seal_blob, Kek};

use crate::MetaError;

const PLAIN: u8 = 1;
const SEALED: u8 = 2;

pub struct AtRest {
    key: Option<Kek>,
}

impl AtRest {
    /// Values stored in the clear (only for tests and key-less development).
    pub fn plain() -> Self {
        AtRest { key: None }
    }

    pub fn sealed(key: Kek) -> Self {
        AtRest { key: Some(key) }
    }

    /// Load the server key from `path` (None: store in the clear).
    pub fn load(path: Option<&Path>) -> Result<Self, MetaError> {
        match path {
            None => Ok(Self::plain()),
            Some(p) => {
                Kek::load(p).map(Self::sealed).map_err(|e| MetaError::AtRest(format!("load the server key: {e}")))
            }
        }
    }

    pub fn is_sealed(&self) -> bool {
        self.key.is_some()
    }

    fn aad(what: &str, id: u64) -> Vec<u8> {
        let mut aad = Vec::with_capacity(what.len() + 8);
        aad.extend_from_slice(what.as_bytes());
        aad.extend_from_slice(&id.to_be_bytes());
        aad
    }

    /// The stored form of `plaintext`, the value of row `what`/`id`.
    pub fn seal(&self, what: &str, id: u64, plaintext: &[u8]) -> Vec<u8> {
        match &self.key {
            Some(k) => {
                let sealed = seal_blob(k, &Self::aad(what, id), plaintext);
                let mut out = Vec::with_capacity(1 + sealed.len());
                out.push(SEALED);
                out.extend_from_slice(&sealed);
                out
            }
            None => {
                let mut out = Vec::with_capacity(1 + plaintext.len());
                out.push(PLAIN);
                out.extend_from_slice(plaintext);
                out
            }
        }
    }

    /// The plaintext of a value made by [`AtRest::seal`] for the same row.
    pub fn open(&self, what: &str, id: u64, stored: &[u8]) -> Result<Vec<u8>, MetaError> {
        match (stored.split_first(), &self.key) {
            (Some((&SEALED, body)), Some(k)) => open_blob(k, &Self::aad(what, id), body)
                .map_err(|e| MetaError::AtRest(format!("open {what} {id}: {e}"))),
            (Some((&SEALED, _)), None) => {
                Err(MetaError::AtRest(format!("{what} {id} is encrypted but no server key is configured")))
            }
            (Some((&PLAIN, _)), Some(_)) => {
                Err(MetaError::AtRest(format!("{what} {id} is stored in the clear in an encrypted store")))
            }
            (Some((&PLAIN, body)), None) => Ok(body.to_vec()),
            _ => Err(MetaError::AtRest(format!("{what} {id} has an unknown value format"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_hide_plaintext_and_bind_their_row() {
        let s = AtRest::sealed(Kek::generate("meta"));
        let v = s.seal("entry", 5, b"secret-name.txt");
        assert!(!v.windows(6).any(|w| w == b"secret"));
        assert_eq!(s.open("entry", 5, &v).unwrap(), b"secret-name.txt");
        assert!(s.open("entry", 6, &v).is_err());
        assert!(s.open("snapshot", 5, &v).is_err());
        assert!(AtRest::plain().open("entry", 5, &v).is_err());
        assert!(s.open("entry", 5, &AtRest::plain().seal("entry", 5, b"x")).is_err());
        assert!(s.open("entry", 5, &[]).is_err());
    }

    #[test]
    fn plain_round_trip() {
        let p = AtRest::plain();
        assert_eq!(p.open("entry", 1, &p.seal("entry", 1, b"abc")).unwrap(), b"abc");
    }
}
