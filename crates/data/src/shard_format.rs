//! The on-disk format of one shard file.
//!
//! ```text
//! version 1, 64-byte header, little-endian:
//!  0  magic "SLSH"          4
//!  4  format version u16    2   (= 1)
//!  6  header length u16     2   (= 64; payload starts here)
//!  8  payload length u64    8
//! 16  payload CRC32C u32    4
//! 20  shard index u32       4
//! 24  file id u64           8
//! 32  chunk index u64       8
//! 40  chunk version u64     8
//! 48  reserved, zero        12
//! 60  CRC32C of bytes 0..60 4
//! followed by the payload
//! ```
//! The header names its own shard, so a file renamed or moved to another key
//! reads as corrupt. The header length field lets a later version pad the
//! header to a block (4 KiB) so that an `O_DIRECT` backend reads an aligned
//! payload; decoders dispatch on the version, and old versions stay readable.

use shardline_types::ShardKey;

use crate::DataError;

/// Magic bytes at the start of every shard file.
pub const MAGIC: [u8; 4] = *b"SLSH";
/// The version [`ShardHeader::encode`] writes.
pub const CURRENT_VERSION: u16 = 1;
/// Header length of format version 1.
pub const HEADER_LEN_V1: usize = 64;

/// What a shard file's header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShardHeader {
    pub key: ShardKey,
    pub payload_len: u64,
    pub payload_crc: u32,
}

impl ShardHeader {
    /// Encode as a version-1 header.
    pub fn encode(&self) -> [u8; HEADER_LEN_V1] {
        let mut h = [0u8; HEADER_LEN_V1];
        h[0..4].copy_from_slice(&MAGIC);
        h[4..6].copy_from_slice(&CURRENT_VERSION.to_le_bytes());
        h[6..8].copy_from_slice(&(HEADER_LEN_V1 as u16).to_le_bytes());
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

    /// Decode a header read from disk. `buf` holds at least the header's
    /// first [`HEADER_LEN_V1`] bytes; returns the header and its length.
    pub fn decode(buf: &[u8]) -> Result<(ShardHeader, usize), DataError> {
        if buf.len() < 8 {
            return Err(corrupt("file shorter than a header"));
        }
        if buf[0..4] != MAGIC {
            return Err(corrupt("bad magic"));
        }
        match u16_at(buf, 4) {
            1 => decode_v1(buf),
            v => Err(DataError::Corrupt(format!("unknown shard format version {v}"))),
        }
    }
}

fn decode_v1(buf: &[u8]) -> Result<(ShardHeader, usize), DataError> {
    if buf.len() < HEADER_LEN_V1 {
        return Err(corrupt("file shorter than a header"));
    }
    if usize::from(u16_at(buf, 6)) != HEADER_LEN_V1 {
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
    Ok((header, HEADER_LEN_V1))
}

fn corrupt(what: &str) -> DataError {
    DataError::Corrupt(what.to_string())
}

// Callers check `buf`'s length first; these copy fixed-size slices.
fn u16_at(buf: &[u8], at: usize) -> u16 {
    let mut b = [0u8; 2];
    b.copy_from_slice(&buf[at..at + 2]);
    u16::from_le_bytes(b)
}

fn u32_at(buf: &[u8], at: usize) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&buf[at..at + 4]);
    u32::from_le_bytes(b)
}

fn u64_at(buf: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&buf[at..at + 8]);
    u64::from_le_bytes(b)
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
        assert_eq!(ShardHeader::decode(&enc).unwrap(), (header(), HEADER_LEN_V1));
    }

    #[test]
    fn every_flipped_bit_is_caught() {
        let enc = header().encode();
        for byte in 0..HEADER_LEN_V1 {
            for bit in 0..8 {
                let mut bad = enc;
                bad[byte] ^= 1 << bit;
                assert!(
                    matches!(ShardHeader::decode(&bad), Err(DataError::Corrupt(_))),
                    "flip at byte {byte} bit {bit} accepted"
                );
            }
        }
    }

    #[test]
    fn short_or_foreign_input_is_corrupt() {
        let enc = header().encode();
        for len in [0, 3, 7, 8, 63] {
            assert!(matches!(ShardHeader::decode(&enc[..len]), Err(DataError::Corrupt(_))));
        }
        let mut v2 = enc;
        v2[4] = 2;
        assert!(matches!(ShardHeader::decode(&v2), Err(DataError::Corrupt(m)) if m.contains("version 2")));
    }
}
