//! The key-encryption key and DEK wrapping.

use chacha20poly1305::aead::{inout::InOutBuf, AeadInOut};
use chacha20poly1305::{KeyInit, Tag, XChaCha20Poly1305, XNonce};
use rand::{rngs::OsRng, RngCore};
use zeroize::Zeroize;

use crate::{CryptoError, Dek, KEY_LEN, NONCE_LEN, TAG_LEN};

/// Domain label at the start of every DEK-wrapping AAD.
const WRAP_LABEL: &[u8] = b"shardline-dek-v1";
/// Length of a wrapped DEK: `nonce(24) || encrypted key(32) || tag(16)`.
pub const WRAPPED_DEK_LEN: usize = NONCE_LEN + KEY_LEN + TAG_LEN;

/// A key-encryption key: wraps per-file DEKs. Zeroized on drop; `Debug`
/// shows the id and version but never the key.
pub struct Kek {
    pub(crate) id: String,
    pub(crate) version: u32,
    pub(crate) key: [u8; KEY_LEN],
}

impl Kek {
    /// A fresh random KEK with the given id, at version 1.
    pub fn generate(id: &str) -> Kek {
        let mut key = [0u8; KEY_LEN];
        OsRng.fill_bytes(&mut key);
        Kek { id: id.to_owned(), version: 1, key }
    }

    /// The KEK id recorded beside every DEK it wraps.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The KEK version recorded beside every DEK it wraps.
    pub fn version(&self) -> u32 {
        self.version
    }

    /// Wrap `dek` with XChaCha20-Poly1305; the AAD binds the label
    /// `shardline-dek-v1`, this KEK's id and its version.
    /// Output: `nonce(24) || encrypted DEK(32) || tag(16)`.
    pub fn wrap(&self, dek: &Dek) -> Vec<u8> {
        let mut out = vec![0u8; WRAPPED_DEK_LEN];
        let (nonce_buf, rest) = out.split_at_mut(NONCE_LEN);
        OsRng.fill_bytes(nonce_buf);
        let nonce = XNonce::try_from(&*nonce_buf).expect("nonce slice is NONCE_LEN");
        let (ct, tag_buf) = rest.split_at_mut(KEY_LEN);
        let buf = InOutBuf::new(dek.as_bytes(), ct).expect("input and output have equal length");
        let tag = self
            .cipher()
            .encrypt_inout_detached(&nonce, &self.wrap_aad(), buf)
            .expect("a 32-byte key is within the AEAD length limit");
        tag_buf.copy_from_slice(&tag);
        out
    }

    /// Unwrap a DEK produced by [`Kek::wrap`] with this same KEK (id, version
    /// and key). Any other KEK, or any altered byte, fails.
    pub fn unwrap(&self, wrapped: &[u8]) -> Result<Dek, CryptoError> {
        if wrapped.len() != WRAPPED_DEK_LEN {
            return Err(CryptoError::WrappedDekLength { len: wrapped.len(), expected: WRAPPED_DEK_LEN });
        }
        let (nonce, rest) = wrapped.split_at(NONCE_LEN);
        let (ct, tag) = rest.split_at(KEY_LEN);
        let failed = || CryptoError::UnwrapFailed { kek_id: self.id.clone(), kek_version: self.version };
        let nonce = XNonce::try_from(nonce).map_err(|_| failed())?;
        let tag = Tag::try_from(tag).map_err(|_| failed())?;
        let mut key = [0u8; KEY_LEN];
        let result = InOutBuf::new(ct, &mut key).map_err(|_| failed()).and_then(|buf| {
            self.cipher().decrypt_inout_detached(&nonce, &self.wrap_aad(), buf, &tag).map_err(|_| failed())
        });
        let dek = result.map(|()| Dek::from_bytes(key));
        key.zeroize();
        dek
    }

    /// `"shardline-dek-v1" || id_len(u64 BE) || id || version(u32 BE)`.
    fn wrap_aad(&self) -> Vec<u8> {
        let id = self.id.as_bytes();
        let mut aad = Vec::with_capacity(WRAP_LABEL.len() + 8 + id.len() + 4);
        aad.extend_from_slice(WRAP_LABEL);
        aad.extend_from_slice(&(id.len() as u64).to_be_bytes());
        aad.extend_from_slice(id);
        aad.extend_from_slice(&self.version.to_be_bytes());
        aad
    }

    pub(crate) fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new((&self.key).into())
    }
}

impl Drop for Kek {
    fn drop(&mut self) {
        self.key.zeroize();
    }
}

impl std::fmt::Debug for Kek {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kek").field("id", &self.id).field("version", &self.version).field("key", &"<redacted>").finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrap_unwrap_round_trip() {
        let kek = Kek::generate("kek-a");
        let dek = Dek::generate();
        let wrapped = kek.wrap(&dek);
        assert_eq!(wrapped.len(), WRAPPED_DEK_LEN);
        let back = kek.unwrap(&wrapped).expect("unwrap");
        assert_eq!(back.as_bytes(), dek.as_bytes());
    }

    #[test]
    fn unwrap_with_other_kek_fails() {
        let dek = Dek::generate();
        let wrapped = Kek::generate("kek-a").wrap(&dek);
        assert!(matches!(Kek::generate("kek-a").unwrap(&wrapped), Err(CryptoError::UnwrapFailed { .. })));
    }

    #[test]
    fn unwrap_binds_id_and_version() {
        let kek = Kek::generate("kek-a");
        let wrapped = kek.wrap(&Dek::generate());
        let renamed = Kek { id: "kek-b".into(), version: kek.version, key: kek.key };
        assert!(renamed.unwrap(&wrapped).is_err());
        let bumped = Kek { id: kek.id.clone(), version: 2, key: kek.key };
        assert!(bumped.unwrap(&wrapped).is_err());
    }

    #[test]
    fn unwrap_rejects_tampered_and_truncated() {
        let kek = Kek::generate("kek-a");
        let wrapped = kek.wrap(&Dek::generate());
        for i in 0..wrapped.len() {
            let mut bad = wrapped.clone();
            bad[i] ^= 0x80;
            assert!(kek.unwrap(&bad).is_err(), "flip at {i} accepted");
        }
        for len in 0..wrapped.len() {
            assert!(matches!(kek.unwrap(&wrapped[..len]), Err(CryptoError::WrappedDekLength { .. })));
        }
    }

    #[test]
    fn debug_redacts_key() {
        let kek = Kek { id: "kek-a".into(), version: 1, key: [0xcd; KEY_LEN] };
        let shown = format!("{kek:?}");
        assert!(shown.contains("kek-a") && shown.contains("<redacted>"));
        assert!(!shown.contains("cd") && !shown.contains("205"));
    }
}
