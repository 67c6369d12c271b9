//! Cipher suites and chunk formats: what a file's chunks are sealed with and
//! how they are laid out. Both are recorded outside the sealed bytes (the
//! suite in the file's wrapped key, the format in each chunk's metadata), so
//! a reader knows the layout before it fetches a byte.

use crate::CryptoError;

/// The AEAD a file's chunks are sealed with, chosen when the file is created.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CipherSuite {
    /// XChaCha20-Poly1305 under the file's DEK (every file before AES-GCM,
    /// and new files on CPUs without AES instructions).
    XChaCha20Poly1305,
    /// AES-256-GCM under a key derived per sealed chunk (HKDF-SHA256), so its
    /// 96-bit nonces never repeat under one key. Only in chunk format v2.
    Aes256Gcm,
}

impl CipherSuite {
    /// The suite's id on the wire (`CipherSuite` in meta.proto) and in AADs.
    pub const fn id(self) -> u8 {
        match self {
            CipherSuite::XChaCha20Poly1305 => 1,
            CipherSuite::Aes256Gcm => 2,
        }
    }

    /// The suite with wire id `id`; unknown ids (including 0, unset) are an error.
    pub fn from_id(id: i32) -> Result<CipherSuite, CryptoError> {
        match id {
            1 => Ok(CipherSuite::XChaCha20Poly1305),
            2 => Ok(CipherSuite::Aes256Gcm),
            other => Err(CryptoError::UnknownSuite(other)),
        }
    }

    /// The faster suite on this CPU: AES-256-GCM when the CPU has AES and
    /// carry-less multiply instructions (detected at run time), else
    /// XChaCha20-Poly1305 (software AES would be slow and not constant-time).
    pub fn preferred() -> CipherSuite {
        if aes_instructions() {
            CipherSuite::Aes256Gcm
        } else {
            CipherSuite::XChaCha20Poly1305
        }
    }

    /// A human name for reports.
    pub const fn name(self) -> &'static str {
        match self {
            CipherSuite::XChaCha20Poly1305 => "XChaCha20-Poly1305",
            CipherSuite::Aes256Gcm => "AES-256-GCM",
        }
    }
}

/// Whether this CPU has hardware AES and GHASH support.
pub fn aes_instructions() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("aes") && std::arch::is_x86_feature_detected!("pclmulqdq")
    }
    #[cfg(target_arch = "aarch64")]
    {
        std::arch::is_aarch64_feature_detected!("aes") && std::arch::is_aarch64_feature_detected!("pmull")
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        false
    }
}

/// How a chunk's ciphertext is laid out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ChunkFormat {
    /// One AEAD message per chunk: `nonce(24) || ct || tag(16)`
    /// (XChaCha20-Poly1305 only). Reading any byte means reading it all.
    V1,
    /// Segments of [`crate::SEGMENT_SIZE`] plaintext bytes, each sealed on
    /// its own ([`crate::seal_segments`]), so a byte range of the chunk maps
    /// to a byte range of its sealed form.
    V2,
}

impl ChunkFormat {
    /// The value recorded in `Chunk.format` (0, unset, is a v1 chunk written
    /// before the field existed).
    pub const fn to_wire(self) -> u32 {
        match self {
            ChunkFormat::V1 => 1,
            ChunkFormat::V2 => 2,
        }
    }

    pub fn from_wire(format: u32) -> Result<ChunkFormat, CryptoError> {
        match format {
            0 | 1 => Ok(ChunkFormat::V1),
            2 => Ok(ChunkFormat::V2),
            other => Err(CryptoError::UnknownFormat(other)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_unknown_ones_are_errors() {
        for s in [CipherSuite::XChaCha20Poly1305, CipherSuite::Aes256Gcm] {
            assert_eq!(CipherSuite::from_id(s.id() as i32).unwrap(), s);
        }
        assert!(matches!(CipherSuite::from_id(0), Err(CryptoError::UnknownSuite(0))));
        assert!(matches!(CipherSuite::from_id(3), Err(CryptoError::UnknownSuite(3))));
        assert_eq!(ChunkFormat::from_wire(0).unwrap(), ChunkFormat::V1);
        for f in [ChunkFormat::V1, ChunkFormat::V2] {
            assert_eq!(ChunkFormat::from_wire(f.to_wire()).unwrap(), f);
        }
        assert!(ChunkFormat::from_wire(3).is_err());
    }

    #[test]
    fn preferred_suite_follows_the_cpu() {
        let want = if aes_instructions() { CipherSuite::Aes256Gcm } else { CipherSuite::XChaCha20Poly1305 };
        assert_eq!(CipherSuite::preferred(), want);
    }
}
