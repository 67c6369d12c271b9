//! The key-encryption key and DEK wrapping.

use chacha20poly1305::aead::{inout::InOutBuf, AeadInOut};
use chacha20poly1305::{KeyInit, Tag, XChaCha20Poly1305, XNonce};
use rand::{rngs::OsRng, RngCore};
use zeroize::Zeroize;

use crate::{CryptoError, Dek, KEY_LEN, NONCE_LEN, TAG_LEN};

/// Domain label at the start of a DEK-wrapping AAD of wrap format 1.
const WRAP_LABEL: &[u8] = b"shardline-dek-v1";
/// Domain label of wrap format 2: the file must have an authenticated
/// manifest (`crate::manifest`). Bound here, where the metadata service
/// cannot change it: a format-2 key presented as format 1 fails to unwrap.
const WRAP_LABEL_V2: &[u8] = b"shardline-dek-v2";

/// How a DEK is wrapped (`WrappedKey.format` on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WrapFormat {
    /// Format 1 (wire 0 or 1): files made before manifests; none required.
    V1,
    /// Format 2: the file must have a manifest; without one (or with one
    /// that does not match its chunk list and size) it does not open.
    V2,
}

impl WrapFormat {
    /// The format of a wire value (0, unset by clients before wrap formats, is 1).
    pub fn from_wire(v: u32) -> Result<WrapFormat, CryptoError> {
        match v {
            0 | 1 => Ok(WrapFormat::V1),
            2 => Ok(WrapFormat::V2),
            other => Err(CryptoError::UnknownWrapFormat { format: other }),
        }
    }

    /// The wire value (`WrappedKey.format`).
    pub fn to_wire(self) -> u32 {
        match self {
            WrapFormat::V1 => 1,
            WrapFormat::V2 => 2,
        }
    }

    /// Whether a file whose key is wrapped so must have a manifest.
    pub fn manifest_required(self) -> bool {
        self == WrapFormat::V2
    }
}
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

    /// Wrap `dek` with XChaCha20-Poly1305; the AAD binds the label of
    /// `format` (`shardline-dek-v1` or `shardline-dek-v2`), this KEK's id
    /// and its version. Output: `nonce(24) || encrypted DEK(32) || tag(16)`.
    pub fn wrap(&self, dek: &Dek, format: WrapFormat) -> Vec<u8> {
        let mut out = vec![0u8; WRAPPED_DEK_LEN];
        let (nonce_buf, rest) = out.split_at_mut(NONCE_LEN);
        OsRng.fill_bytes(nonce_buf);
        let nonce = XNonce::try_from(&*nonce_buf).expect("nonce slice is NONCE_LEN");
        let (ct, tag_buf) = rest.split_at_mut(KEY_LEN);
        let buf = InOutBuf::new(dek.as_bytes(), ct).expect("input and output have equal length");
        let tag = self
            .cipher()
            .encrypt_inout_detached(&nonce, &self.wrap_aad(format), buf)
            .expect("a 32-byte key is within the AEAD length limit");
        tag_buf.copy_from_slice(&tag);
        out
    }

    /// Unwrap a DEK produced by [`Kek::wrap`] with this same KEK (id, version
    /// and key) and wrap format. Any other KEK or format, or any altered
    /// byte, fails.
    pub fn unwrap(&self, wrapped: &[u8], format: WrapFormat) -> Result<Dek, CryptoError> {
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
            self.cipher().decrypt_inout_detached(&nonce, &self.wrap_aad(format), buf, &tag).map_err(|_| failed())
        });
        let dek = result.map(|()| Dek::from_bytes(key));
        key.zeroize();
        dek
    }

    /// `label || id_len(u64 BE) || id || version(u32 BE)`, the label
    /// `"shardline-dek-v1"` or `"shardline-dek-v2"` by format.
    fn wrap_aad(&self, format: WrapFormat) -> Vec<u8> {
        let id = self.id.as_bytes();
        let label = match format {
            WrapFormat::V1 => WRAP_LABEL,
            WrapFormat::V2 => WRAP_LABEL_V2,
        };
        let mut aad = Vec::with_capacity(label.len() + 8 + id.len() + 4);
        aad.extend_from_slice(label);
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
        let wrapped = kek.wrap(&dek, WrapFormat::V1);
        assert_eq!(wrapped.len(), WRAPPED_DEK_LEN);
        let back = kek.unwrap(&wrapped, WrapFormat::V1).expect("unwrap");
        assert_eq!(back.as_bytes(), dek.as_bytes());
    }

    #[test]
    fn unwrap_with_other_kek_fails() {
        let dek = Dek::generate();
        let wrapped = Kek::generate("kek-a").wrap(&dek, WrapFormat::V1);
        assert!(matches!(
            Kek::generate("kek-a").unwrap(&wrapped, WrapFormat::V1),
            Err(CryptoError::UnwrapFailed { .. })
        ));
    }

    #[test]
    fn unwrap_binds_id_and_version() {
        let kek = Kek::generate("kek-a");
        let wrapped = kek.wrap(&Dek::generate(), WrapFormat::V1);
        let renamed = Kek { id: "kek-b".into(), version: kek.version, key: kek.key };
        assert!(renamed.unwrap(&wrapped, WrapFormat::V1).is_err());
        let bumped = Kek { id: kek.id.clone(), version: 2, key: kek.key };
        assert!(bumped.unwrap(&wrapped, WrapFormat::V1).is_err());
    }

    #[test]
    fn unwrap_rejects_tampered_and_truncated() {
        let kek = Kek::generate("kek-a");
        let wrapped = kek.wrap(&Dek::generate(), WrapFormat::V1);
        for i in 0..wrapped.len() {
            let mut bad = wrapped.clone();
            bad[i] ^= 0x80;
            assert!(kek.unwrap(&bad, WrapFormat::V1).is_err(), "flip at {i} accepted");
        }
        for len in 0..wrapped.len() {
            assert!(matches!(kek.unwrap(&wrapped[..len], WrapFormat::V1), Err(CryptoError::WrappedDekLength { .. })));
        }
    }

    #[test]
    fn wrap_format_is_bound() {
        let kek = Kek::generate("kek-a");
        let dek = Dek::generate();
        let v2 = kek.wrap(&dek, WrapFormat::V2);
        assert_eq!(kek.unwrap(&v2, WrapFormat::V2).expect("unwrap v2").as_bytes(), dek.as_bytes());
        assert!(kek.unwrap(&v2, WrapFormat::V1).is_err(), "a format-2 key presented as format 1 opened");
        let v1 = kek.wrap(&dek, WrapFormat::V1);
        assert!(kek.unwrap(&v1, WrapFormat::V2).is_err(), "a format-1 key presented as format 2 opened");
        assert_eq!(WrapFormat::from_wire(0).expect("0"), WrapFormat::V1);
        assert_eq!(WrapFormat::from_wire(1).expect("1"), WrapFormat::V1);
        assert_eq!(WrapFormat::from_wire(2).expect("2"), WrapFormat::V2);
        assert!(WrapFormat::from_wire(3).is_err());
    }

    #[test]
    fn debug_redacts_key() {
        let kek = Kek { id: "kek-a".into(), version: 1, key: [0xcd; KEY_LEN] };
        let shown = format!("{kek:?}");
        assert!(shown.contains("kek-a") && shown.contains("<redacted>"));
        assert!(!shown.contains("cd") && !shown.contains("205"));
    }
}
