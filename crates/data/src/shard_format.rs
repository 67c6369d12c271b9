//! The on-disk format of one shard file.
//!
//! ```text
//! 64-byte header fields, little-endian:
//!  0  magic "SLSH"          4
//!  4  format version u16    2   (1 or 2)
//!  6  header length u16     2   (payload starts here: 64 in v1, 4096 in v2)
//!  8  payload length u64    8
//! 16  payload CRC32C u32    4
//! 20  shard index u32       4
//! 24  file id u64           8
//! 32  chunk index u64       8
//! 40  chunk version u64     8
//! 48  reserved, zero        12
//! 60  CRC32C of bytes 0..60 4
//! ```
//! - **Version 1** (the portable [`FileStore`](crate::FileStore)): the payload
//!   follows the 64 header bytes; the file is exactly header + payload.
//! - **Version 2** (the `O_DIRECT` [`UringStore`](crate::UringStore)): the
//!   header fields are zero-padded to one 4 KiB block and the payload to a
//!   multiple of 4 KiB, so the payload starts block-aligned and the whole file
//!   is read or written in aligned I/O.
//!
//! The header names its own shard, so a file renamed or moved to another key
//! reads as corrupt. Decoders dispatch on the version and every backend reads
//! both versions, so a data directory can move between backends.

use std::ops::Range;

use shardline_types::ShardKey;

use crate::le_bytes::{corrupt, u16_at, u32_at, u64_at};
use crate::DataError;

/// Magic bytes at the start of every shard file.
pub const MAGIC: [u8; 4] = *b"SLSH";
/// Header length of format version 1, and the length of the header fields
/// in every version.
pub const HEADER_LEN_V1: usize = 64;
/// Header length of format version 2: one block; also its payload padding unit.
pub const BLOCK_LEN_V2: usize = 4096;

/// A shard file layout, as named by the header's version field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Version 1: 64-byte header, unpadded payload.
    V1,
    /// Version 2: header and payload each padded to 4 KiB blocks.
    V2Aligned,
}

impl Format {
    /// The version number stored in the header.
    pub fn version(self) -> u16 {
        match self {
            Format::V1 => 1,
            Format::V2Aligned => 2,
        }
    }

    /// Where the payload starts.
    pub fn header_len(self) -> usize {
        match self {
            Format::V1 => HEADER_LEN_V1,
            Format::V2Aligned => BLOCK_LEN_V2,
        }
    }

    /// The length of a file holding `payload_len` payload bytes; `None` if it
    /// would overflow.
    pub fn file_len(self, payload_len: u64) -> Option<u64> {
        let header = self.header_len() as u64;
        match self {
            Format::V1 => payload_len.checked_add(header),
            Format::V2Aligned => payload_len.checked_next_multiple_of(BLOCK_LEN_V2 as u64)?.checked_add(header),
        }
    }
}

/// What a shard file's header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShardHeader {
    pub key: ShardKey,
    pub payload_len: u64,
    pub payload_crc: u32,
}

impl ShardHeader {
    /// Encode as a version-1 header (the portable store's format; the
    /// io_uring store writes version 2 with [`ShardHeader::encode_as`]).
    pub fn encode(&self) -> [u8; HEADER_LEN_V1] {
        self.encode_as(Format::V1)
    }

    /// Encode the header fields of `format`; a version-2 writer pads them
    /// with zeros to [`Format::header_len`].
    pub fn encode_as(&self, format: Format) -> [u8; HEADER_LEN_V1] {
        let mut h = [0u8; HEADER_LEN_V1];
        h[0..4].copy_from_slice(&MAGIC);
        h[4..6].copy_from_slice(&format.version().to_le_bytes());
        h[6..8].copy_from_slice(&(format.header_len() as u16).to_le_bytes());
        h[8..16].copy_from_slice(&self.payload_len.to_le_bytes());
        h[16..20].copy_from_slice(&self.payload_crc.to_le_bytes());
        h[20..24].copy_from_slice(&self.key.shard_index.to_le_bytes());
        h[24..32].copy_from_slice(&self.key.file_id.to_le_bytes());
        h[32..40].copy_from_slice(&self.key.chunk_index.to_le_bytes());
        h[40..48].copy_from_slice(&self.key.version.to_le_bytes());
        let crc = crc32c::crc32c(&h[..60]);
        h[60..64].copy_from_slice(&crc.to_le_bytes());
        h
    }

    /// Decode a header read from disk. `buf` holds at least the file's
    /// first [`HEADER_LEN_V1`] bytes; returns the header and the file's format.
    pub fn decode(buf: &[u8]) -> Result<(ShardHeader, Format), DataError> {
        if buf.len() < 8 {
            return Err(corrupt("file shorter than a header"));
        }
        if buf[0..4] != MAGIC {
            return Err(corrupt("bad magic"));
        }
        match u16_at(buf, 4) {
            1 => decode_fields(buf, Format::V1),
            2 => decode_fields(buf, Format::V2Aligned),
            v => Err(DataError::Corrupt(format!("unknown shard format version {v}"))),
        }
    }

    /// Check this header, decoded from a file of `file_len` bytes in
    /// `format`, against the key that was asked for; returns where the
    /// payload lies in the file.
    pub fn check_file(&self, key: &ShardKey, format: Format, file_len: u64) -> Result<Range<usize>, DataError> {
        if self.key != *key {
            return Err(corrupt("header names a different shard"));
        }
        if Some(file_len) != format.file_len(self.payload_len) {
            return Err(DataError::Corrupt(format!(
                "file holds {} bytes after the header, header says {} payload bytes",
                file_len.saturating_sub(format.header_len() as u64),
                self.payload_len
            )));
        }
        let len = usize::try_from(self.payload_len).map_err(|_| corrupt("payload too large"))?;
        let start = format.header_len();
        Ok(start..start + len)
    }

    /// Check a payload read from disk against this header's CRC32C.
    pub fn verify_payload(&self, payload: &[u8]) -> Result<u32, DataError> {
        let actual = crc32c::crc32c(payload);
        if actual != self.payload_crc {
            return Err(DataError::Corrupt(format!(
                "payload checksum mismatch: header {:08x}, computed {actual:08x}",
                self.payload_crc
            )));
        }
        Ok(actual)
    }
}

fn decode_fields(buf: &[u8], format: Format) -> Result<(ShardHeader, Format), DataError> {
    if buf.len() < HEADER_LEN_V1 {
        return Err(corrupt("file shorter than a header"));
    }
    if usize::from(u16_at(buf, 6)) != format.header_len() {
        return Err(corrupt("bad header length"));
    }
    if crc32c::crc32c(&buf[..60]) != u32_at(buf, 60) {
        return Err(corrupt("header checksum mismatch"));
    }
    let key = ShardKey {
        file_id: u64_at(buf, 24),
        chunk_index: u64_at(buf, 32),
        version: u64_at(buf, 40),
        shard_index: u32_at(buf, 20),
    };
    let header = ShardHeader { key, payload_len: u64_at(buf, 8), payload_crc: u32_at(buf, 16) };
    Ok((header, format))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> ShardHeader {
        ShardHeader {
            key: ShardKey { file_id: 9, chunk_index: 3, version: 7, shard_index: 5 },
            payload_len: 1234,
            payload_crc: 0xdead_beef,
        }
    }

    #[test]
    fn round_trips() {
        let enc = header().encode();
        assert_eq!(ShardHeader::decode(&enc).unwrap(), (header(), Format::V1));
        let enc = header().encode_as(Format::V2Aligned);
        assert_eq!(ShardHeader::decode(&enc).unwrap(), (header(), Format::V2Aligned));
    }

    #[test]
    fn every_flipped_bit_is_caught() {
        for format in [Format::V1, Format::V2Aligned] {
            let enc = header().encode_as(format);
            for byte in 0..HEADER_LEN_V1 {
                for bit in 0..8 {
                    let mut bad = enc;
                    bad[byte] ^= 1 << bit;
                    assert!(
                        matches!(ShardHeader::decode(&bad), Err(DataError::Corrupt(_))),
                        "{format:?}: flip at byte {byte} bit {bit} accepted"
                    );
                }
            }
        }
    }

    #[test]
    fn file_lengths_follow_the_format() {
        assert_eq!(Format::V1.file_len(0), Some(64));
        assert_eq!(Format::V1.file_len(1234), Some(1298));
        assert_eq!(Format::V2Aligned.file_len(0), Some(4096));
        assert_eq!(Format::V2Aligned.file_len(1), Some(8192));
        assert_eq!(Format::V2Aligned.file_len(4096), Some(8192));
        assert_eq!(Format::V2Aligned.file_len(4097), Some(12288));
        assert_eq!(Format::V2Aligned.file_len(u64::MAX - 10), None);
        assert_eq!(Format::V1.file_len(u64::MAX), None);
    }

    #[test]
    fn check_file_catches_a_wrong_key_or_length() {
        let h = header();
        assert_eq!(h.check_file(&h.key, Format::V1, 64 + 1234).unwrap(), 64..64 + 1234);
        assert_eq!(h.check_file(&h.key, Format::V2Aligned, 4096 + 4096).unwrap(), 4096..4096 + 1234);
        assert!(matches!(h.check_file(&h.key, Format::V2Aligned, 4096 + 1234), Err(DataError::Corrupt(_))));
        assert!(matches!(h.check_file(&h.key, Format::V1, 64 + 1233), Err(DataError::Corrupt(_))));
        let other = ShardKey { shard_index: 4, ..h.key };
        assert!(
            matches!(h.check_file(&other, Format::V1, 64 + 1234), Err(DataError::Corrupt(m)) if m.contains("different"))
        );
        let data = vec![7u8; 10];
        let good = ShardHeader { payload_crc: crc32c::crc32c(&data), ..h };
        assert_eq!(good.verify_payload(&data).unwrap(), good.payload_crc);
        assert!(matches!(h.verify_payload(&data), Err(DataError::Corrupt(_))));
    }

    #[test]
    fn short_or_foreign_input_is_corrupt() {
        let enc = header().encode();
        for len in [0, 3, 7, 8, 63] {
            assert!(matches!(ShardHeader::decode(&enc[..len]), Err(DataError::Corrupt(_))));
        }
        let mut v3 = enc;
        v3[4] = 3;
        assert!(matches!(ShardHeader::decode(&v3), Err(DataError::Corrupt(m)) if m.contains("version 3")));
    }
}
