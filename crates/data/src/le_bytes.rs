//! Little-endian field readers shared by the on-disk formats (the legacy
//! shard files and the segment store's records). Callers check the buffer's
//! length first; these copy fixed-size slices.

use crate::error::DataError;

/// A `Corrupt` error naming what failed to parse.
pub(crate) fn corrupt(what: &str) -> DataError {
    DataError::Corrupt(what.to_string())
}

pub(crate) fn u16_at(buf: &[u8], at: usize) -> u16 {
    let mut b = [0u8; 2];
    b.copy_from_slice(&buf[at..at + 2]);
    u16::from_le_bytes(b)
}

pub(crate) fn u32_at(buf: &[u8], at: usize) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&buf[at..at + 4]);
    u32::from_le_bytes(b)
}

pub(crate) fn u64_at(buf: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&buf[at..at + 8]);
    u64::from_le_bytes(b)
}
