//! Associated data that binds a sealed chunk to where it belongs.

/// Version of the chunk AAD encoding below; bump it to change the encoding.
pub const AAD_FORMAT_VERSION: u8 = 1;
/// Version of the segment AAD encoding of chunk format v2.
pub const AAD_FORMAT_V2: u8 = 2;
/// Cipher-suite id for XChaCha20-Poly1305 (the only suite of format v1).
pub const SUITE_XCHACHA20_POLY1305: u8 = 1;
/// Where the segment index and the last-segment flag sit in a v2 AAD.
const SEGMENT_AT: usize = 2 + 8 * 3;

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

    /// The AAD of a v2 segment, with segment index 0 and the last flag clear
    /// (set them with [`ChunkAad::set_segment`]):
    ///
    /// `format(1)=2 || suite(1) || file_id(u64 BE) || chunk_index(u64 BE) ||
    ///  version(u64 BE) || segment(u32 BE) || last(1) || key_id_len(u64 BE) ||
    ///  key_id(UTF-8)`
    ///
    /// Fixed-width fields then the length-prefixed key id: injective, and
    /// never equal to a v1 AAD (the first byte differs).
    pub fn encode_segment(&self, suite: crate::CipherSuite) -> Vec<u8> {
        let key_id = self.key_id.as_bytes();
        let mut out = Vec::with_capacity(SEGMENT_AT + 5 + 8 + key_id.len());
        out.push(AAD_FORMAT_V2);
        out.push(suite.id());
        out.extend_from_slice(&self.file_id.to_be_bytes());
        out.extend_from_slice(&self.chunk_index.to_be_bytes());
        out.extend_from_slice(&self.version.to_be_bytes());
        out.extend_from_slice(&0u32.to_be_bytes());
        out.push(0);
        out.extend_from_slice(&(key_id.len() as u64).to_be_bytes());
        out.extend_from_slice(key_id);
        out
    }

    /// Set the segment index and last-segment flag of an AAD made by
    /// [`ChunkAad::encode_segment`].
    pub fn set_segment(encoded: &mut [u8], index: u32, last: bool) {
        encoded[SEGMENT_AT..SEGMENT_AT + 4].copy_from_slice(&index.to_be_bytes());
        encoded[SEGMENT_AT + 4] = u8::from(last);
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

    #[test]
    fn segment_encoding_places_index_and_flag() {
        let aad = ChunkAad { file_id: 1, chunk_index: 2, version: 3, key_id: "kek" };
        let mut enc = aad.encode_segment(crate::CipherSuite::Aes256Gcm);
        assert_eq!(enc.len(), 2 + 24 + 5 + 8 + 3);
        assert_eq!(&enc[..2], &[2, 2]);
        ChunkAad::set_segment(&mut enc, 0x0102_0304, true);
        assert_eq!(&enc[26..31], &[1, 2, 3, 4, 1]);
        assert_eq!(&enc[31..39], &3u64.to_be_bytes());
        assert_eq!(&enc[39..], b"kek");
        assert_ne!(enc[0], aad.encode()[0], "v1 and v2 AADs never collide");
    }
}
