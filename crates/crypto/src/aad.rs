//! Associated data that binds a sealed chunk to where it belongs.

/// Version of the chunk AAD encoding below; bump it to change the encoding.
pub const AAD_FORMAT_VERSION: u8 = 1;
/// Cipher-suite id for XChaCha20-Poly1305 (the only suite sealed by this crate).
pub const SUITE_XCHACHA20_POLY1305: u8 = 1;

/// What a sealed chunk is bound to. A shard moved to another file, chunk index
/// or version (or opened under another key id) must fail to open.
#[derive(Clone, Copy, Debug)]
pub struct ChunkAad<'a> {
    pub file_id: u64,
    pub chunk_index: u64,
    pub version: u64,
    pub key_id: &'a str,
}

impl ChunkAad<'_> {
    /// The unambiguous byte encoding authenticated with the chunk:
    ///
    /// `format(1) || suite(1) || file_id(u64 BE) || chunk_index(u64 BE) ||
    ///  version(u64 BE) || key_id_len(u64 BE) || key_id(UTF-8)`
    ///
    /// Every field is fixed-width except the key id, which is length-prefixed
    /// and last, so no two distinct `ChunkAad`s encode to the same bytes.
    pub fn encode(&self) -> Vec<u8> {
        let key_id = self.key_id.as_bytes();
        let mut out = Vec::with_capacity(2 + 8 * 4 + key_id.len());
        out.push(AAD_FORMAT_VERSION);
        out.push(SUITE_XCHACHA20_POLY1305);
        out.extend_from_slice(&self.file_id.to_be_bytes());
        out.extend_from_slice(&self.chunk_index.to_be_bytes());
        out.extend_from_slice(&self.version.to_be_bytes());
        out.extend_from_slice(&(key_id.len() as u64).to_be_bytes());
        out.extend_from_slice(key_id);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_is_fixed_width_and_length_prefixed() {
        let aad = ChunkAad { file_id: 1, chunk_index: 2, version: 3, key_id: "kek" };
        let enc = aad.encode();
        assert_eq!(enc.len(), 2 + 32 + 3);
        assert_eq!(&enc[..2], &[1, 1]);
        assert_eq!(&enc[2..10], &1u64.to_be_bytes());
        assert_eq!(&enc[26..34], &3u64.to_be_bytes());
        assert_eq!(&enc[34..], b"kek");
    }
}
