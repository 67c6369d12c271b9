//! The per-file data-encryption key.

use chacha20poly1305::{KeyInit, XChaCha20Poly1305};
use rand::{rngs::OsRng, RngCore};
use zeroize::Zeroize;

use crate::KEY_LEN;

/// A random per-file data key. Zeroized on drop; `Debug` prints no key bytes.
pub struct Dek([u8; KEY_LEN]);

impl Dek {
    /// A fresh random DEK from the operating system's CSPRNG.
    pub fn generate() -> Dek {
        let mut key = [0u8; KEY_LEN];
        OsRng.fill_bytes(&mut key);
        Dek(key)
    }

    /// Take ownership of raw key bytes (used by unwrap).
    pub(crate) fn from_bytes(key: [u8; KEY_LEN]) -> Dek {
        Dek(key)
    }

    /// The raw key bytes, for wrapping only.
    pub(crate) fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    /// The AEAD instance keyed with this DEK.
    pub(crate) fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new((&self.0).into())
    }
}

impl Drop for Dek {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl std::fmt::Debug for Dek {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Dek(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts_key() {
        let dek = Dek::from_bytes([0xab; KEY_LEN]);
        let shown = format!("{dek:?}");
        assert_eq!(shown, "Dek(<redacted>)");
        assert!(!shown.to_lowercase().contains("ab"));
    }

    #[test]
    fn generated_keys_differ() {
        assert_ne!(Dek::generate().as_bytes(), Dek::generate().as_bytes());
    }
}
