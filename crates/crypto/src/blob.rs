//! Sealing small opaque blobs (e.g. a metadata server's stored values) under
//! a [`Kek`] with XChaCha20-Poly1305, bound to caller-chosen associated data.
//!
//! Layout: `nonce(24) || ciphertext || tag(16)`, like sealed chunks. The AAD
//! is prefixed with the label `shardline-blob-v1` so a blob can never be
//! mistaken for a sealed chunk or a wrapped DEK.

use chacha20poly1305::aead::{inout::InOutBuf, AeadInOut};
use chacha20poly1305::XNonce;
use rand::{rngs::OsRng, RngCore};

use crate::{CryptoError, Kek, NONCE_LEN, SEAL_OVERHEAD};

/// Domain label at the start of every blob AAD.
const BLOB_LABEL: &[u8] = b"shardline-blob-v1";

fn full_aad(aad: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(BLOB_LABEL.len() + aad.len());
    out.extend_from_slice(BLOB_LABEL);
    out.extend_from_slice(aad);
    out
}

/// Seal `plaintext` under `kek`, bound to `aad`. Returns `nonce || ct || tag`.
pub fn seal_blob(kek: &Kek, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; plaintext.len() + SEAL_OVERHEAD];
    let (nonce_buf, rest) = out.split_at_mut(NONCE_LEN);
    OsRng.fill_bytes(nonce_buf);
    let nonce = XNonce::try_from(&*nonce_buf).expect("nonce slice is NONCE_LEN");
    let (ct_buf, tag_buf) = rest.split_at_mut(plaintext.len());
    let buf = InOutBuf::new(plaintext, ct_buf).expect("input and output have equal length");
    let tag = kek
        .cipher()
        .encrypt_inout_detached(&nonce, &full_aad(aad), buf)
        .expect("blob is within the XChaCha20-Poly1305 length limit");
    tag_buf.copy_from_slice(&tag);
    out
}

/// Verify and decrypt a blob made by [`seal_blob`] with the same key and AAD.
pub fn open_blob(kek: &Kek, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, CryptoError> {
    crate::seal::open_sealed(&kek.cipher(), &full_aad(aad), sealed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_binding() {
        let kek = Kek::generate("meta");
        for len in [0usize, 1, 100, 70_000] {
            let pt: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let sealed = seal_blob(&kek, b"entry:7", &pt);
            assert_eq!(sealed.len(), len + SEAL_OVERHEAD);
            assert_eq!(open_blob(&kek, b"entry:7", &sealed).unwrap(), pt);
            assert!(open_blob(&kek, b"entry:8", &sealed).is_err(), "AAD is bound");
            assert!(open_blob(&Kek::generate("meta"), b"entry:7", &sealed).is_err(), "key is bound");
        }
    }

    #[test]
    fn rejects_tampered_and_truncated() {
        let kek = Kek::generate("meta");
        let sealed = seal_blob(&kek, b"x", b"secret file name");
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 1;
            assert!(open_blob(&kek, b"x", &bad).is_err(), "flip at {i} accepted");
        }
        for len in 0..SEAL_OVERHEAD {
            assert!(matches!(open_blob(&kek, b"x", &sealed[..len]), Err(CryptoError::Truncated { .. })));
        }
    }
}
