//! Sealing and opening one chunk with XChaCha20-Poly1305.
//!
//! Layout: `nonce(24) || ciphertext || tag(16)`, optionally followed by zero
//! padding (only in the buffer handed to the erasure coder; [`open_chunk`]
//! takes the unpadded sealed bytes). Encryption and decryption run in one
//! pass from the input buffer into the output buffer: no intermediate copy.

use chacha20poly1305::aead::{inout::InOutBuf, AeadInOut};
use chacha20poly1305::{Tag, XChaCha20Poly1305, XNonce};
use rand::{rngs::OsRng, RngCore};

use crate::{ChunkAad, CryptoError, Dek, NONCE_LEN, SEAL_OVERHEAD, TAG_LEN};

/// Seal `plaintext` under `dek`, bound to `aad`. Returns `nonce || ct || tag`.
pub fn seal_chunk(dek: &Dek, aad: &ChunkAad, plaintext: &[u8]) -> Vec<u8> {
    seal_chunk_padded(dek, aad, plaintext, plaintext.len() + SEAL_OVERHEAD)
}

/// Like [`seal_chunk`], then zero-pads the result to exactly `padded_len` bytes
/// so the erasure coder can split it into cells without another copy.
///
/// # Panics
/// If `padded_len < plaintext.len() + SEAL_OVERHEAD` (a caller bug), or if the
/// plaintext exceeds XChaCha20-Poly1305's 256 GiB message limit.
pub fn seal_chunk_padded(dek: &Dek, aad: &ChunkAad, plaintext: &[u8], padded_len: usize) -> Vec<u8> {
    let sealed_len = plaintext.len() + SEAL_OVERHEAD;
    assert!(padded_len >= sealed_len, "padded_len {padded_len} is smaller than the sealed length {sealed_len}");
    // Zeroed allocation (calloc) doubles as the padding.
    let mut out = vec![0u8; padded_len];
    let (nonce_buf, rest) = out.split_at_mut(NONCE_LEN);
    OsRng.fill_bytes(nonce_buf);
    let nonce = XNonce::try_from(&*nonce_buf).expect("nonce slice is NONCE_LEN");
    let (ct_buf, rest) = rest.split_at_mut(plaintext.len());
    let buf = InOutBuf::new(plaintext, ct_buf).expect("input and output have equal length");
    let tag = dek
        .cipher()
        .encrypt_inout_detached(&nonce, &aad.encode(), buf)
        .expect("chunk plaintext is within the XChaCha20-Poly1305 length limit");
    rest[..TAG_LEN].copy_from_slice(&tag);
    out
}

/// Verify and decrypt `sealed` (exactly `nonce || ct || tag`, no padding).
///
/// Fails with [`CryptoError::Truncated`] if it is too short to hold a nonce and
/// a tag, and with [`CryptoError::ChunkAuthFailed`] if the key, the AAD or any
/// byte differs from sealing time.
pub fn open_chunk(dek: &Dek, aad: &ChunkAad, sealed: &[u8]) -> Result<Vec<u8>, CryptoError> {
    open_sealed(&dek.cipher(), &aad.encode(), sealed)
}

/// Verify and decrypt `nonce || ct || tag` under `cipher` and `aad` (shared
/// by chunk and metadata-blob sealing).
pub(crate) fn open_sealed(cipher: &XChaCha20Poly1305, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, CryptoError> {
    if sealed.len() < SEAL_OVERHEAD {
        return Err(CryptoError::Truncated { len: sealed.len(), min: SEAL_OVERHEAD });
    }
    let (nonce, rest) = sealed.split_at(NONCE_LEN);
    let (ct, tag) = rest.split_at(rest.len() - TAG_LEN);
    let nonce = XNonce::try_from(nonce).map_err(|_| CryptoError::ChunkAuthFailed)?;
    let tag = Tag::try_from(tag).map_err(|_| CryptoError::ChunkAuthFailed)?;
    let mut out = vec![0u8; ct.len()];
    let buf = InOutBuf::new(ct, &mut out).map_err(|_| CryptoError::ChunkAuthFailed)?;
    cipher.decrypt_inout_detached(&nonce, aad, buf, &tag).map_err(|_| CryptoError::ChunkAuthFailed)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const AAD: ChunkAad<'static> = ChunkAad { file_id: 7, chunk_index: 3, version: 2, key_id: "kek-test" };

    fn sample(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 31 % 251) as u8).collect()
    }

    #[test]
    fn round_trip_various_sizes() {
        let dek = Dek::generate();
        for len in [0, 1, 63, 64, 65, 4096, 1 << 20] {
            let pt = sample(len);
            let sealed = seal_chunk(&dek, &AAD, &pt);
            assert_eq!(sealed.len(), len + SEAL_OVERHEAD);
            if len >= 16 {
                let ct = &sealed[NONCE_LEN..NONCE_LEN + len];
                assert_ne!(ct, &pt[..], "ciphertext equals plaintext");
            }
            assert_eq!(open_chunk(&dek, &AAD, &sealed).expect("open"), pt);
        }
    }

    #[test]
    fn padded_seal_opens_after_stripping_padding() {
        let dek = Dek::generate();
        let pt = sample(1000);
        let sealed = seal_chunk_padded(&dek, &AAD, &pt, 1100);
        assert_eq!(sealed.len(), 1100);
        assert!(sealed[1000 + SEAL_OVERHEAD..].iter().all(|&b| b == 0));
        let opened = open_chunk(&dek, &AAD, &sealed[..1000 + SEAL_OVERHEAD]).expect("open");
        assert_eq!(opened, pt);
    }

    #[test]
    fn wrong_location_or_key_id_fails() {
        let dek = Dek::generate();
        let sealed = seal_chunk(&dek, &AAD, b"hello chunk");
        let wrong = [
            ChunkAad { file_id: 8, ..AAD },
            ChunkAad { chunk_index: 4, ..AAD },
            ChunkAad { version: 1, ..AAD },
            ChunkAad { key_id: "kek-other", ..AAD },
        ];
        for aad in wrong {
            assert!(
                matches!(open_chunk(&dek, &aad, &sealed), Err(CryptoError::ChunkAuthFailed)),
                "{aad:?} must not open"
            );
        }
    }

    #[test]
    fn wrong_dek_fails() {
        let sealed = seal_chunk(&Dek::generate(), &AAD, b"hello chunk");
        assert!(matches!(open_chunk(&Dek::generate(), &AAD, &sealed), Err(CryptoError::ChunkAuthFailed)));
    }

    #[test]
    fn any_tampered_byte_fails() {
        let dek = Dek::generate();
        let sealed = seal_chunk(&dek, &AAD, &sample(100));
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 0x01;
            assert!(open_chunk(&dek, &AAD, &bad).is_err(), "flip at byte {i} accepted");
        }
    }

    #[test]
    fn truncated_input_fails_cleanly() {
        let dek = Dek::generate();
        let sealed = seal_chunk(&dek, &AAD, &sample(100));
        for len in 0..sealed.len() {
            let err = open_chunk(&dek, &AAD, &sealed[..len]).expect_err("truncated accepted");
            if len < SEAL_OVERHEAD {
                assert!(matches!(err, CryptoError::Truncated { .. }));
            }
        }
    }

    #[test]
    fn padded_input_to_open_fails() {
        let dek = Dek::generate();
        let sealed = seal_chunk_padded(&dek, &AAD, &sample(100), 256);
        assert!(open_chunk(&dek, &AAD, &sealed).is_err());
    }
}
