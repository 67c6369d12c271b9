//! `crc32c_combine` for one fixed length, in four table lookups.
//!
//! A record's payload CRC is built from its blocks' CRCs (one pass over the
//! bytes gives both). `crc32c::crc32c_combine` squares 32×32 bit matrices
//! about twice per bit of the length, some 10–20 µs per call: a profile of
//! small-file writes showed it as the data servers' hottest function. The
//! combination is linear in the first CRC — `combine(a, b, n) = Mₙ·a ⊕ b` —
//! so for the store's one block length `Mₙ` is tabulated once, byte by
//! byte, and every full block costs four lookups.

use std::sync::{Arc, Mutex, OnceLock};

/// `Mₙ` for one `n`, as four tables of 256 (one per byte of the CRC).
pub(crate) struct CrcShift {
    len: usize,
    tables: [[u32; 256]; 4],
}

impl CrcShift {
    fn new(len: usize) -> Self {
        let basis: [u32; 32] = std::array::from_fn(|bit| crc32c::crc32c_combine(1u32 << bit, 0, len));
        let mut tables = [[0u32; 256]; 4];
        for (k, table) in tables.iter_mut().enumerate() {
            for (byte, slot) in table.iter_mut().enumerate() {
                *slot = (0..8).filter(|bit| byte >> bit & 1 == 1).fold(0, |acc, bit| acc ^ basis[8 * k + bit]);
            }
        }
        CrcShift { len, tables }
    }

    /// The shift for `len`, built on first use and kept (a store uses one
    /// or two block lengths).
    pub(crate) fn for_len(len: usize) -> Arc<CrcShift> {
        static KNOWN: OnceLock<Mutex<Vec<Arc<CrcShift>>>> = OnceLock::new();
        let mut known = KNOWN.get_or_init(Default::default).lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = known.iter().find(|s| s.len == len) {
            return s.clone();
        }
        let s = Arc::new(CrcShift::new(len));
        if known.len() < 8 {
            known.push(s.clone());
        }
        s
    }

    /// The CRC32C of `A ‖ B` from `crc(A)` and `crc(B)`, `B` being `len` bytes.
    pub(crate) fn combine(&self, crc_a: u32, crc_b: u32) -> u32 {
        let t = &self.tables;
        t[0][(crc_a & 0xff) as usize]
            ^ t[1][(crc_a >> 8 & 0xff) as usize]
            ^ t[2][(crc_a >> 16 & 0xff) as usize]
            ^ t[3][(crc_a >> 24) as usize]
            ^ crc_b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_gives_what_crc32c_combine_gives() {
        for len in [1usize, 7, 4096, 65_536, 1 << 20] {
            let shift = CrcShift::for_len(len);
            for a in [0u32, 1, 0xdead_beef, u32::MAX, 0x8000_0000] {
                for b in [0u32, 0x1234_5678] {
                    assert_eq!(shift.combine(a, b), crc32c::crc32c_combine(a, b, len), "len {len} a {a:#x}");
                }
            }
        }
    }

    #[test]
    fn combining_block_crcs_gives_the_crc_of_the_whole() {
        let data: Vec<u8> = (0..200_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        let shift = CrcShift::for_len(4096);
        let whole = data.chunks_exact(4096).fold(crc32c::crc32c(&[]), |acc, b| shift.combine(acc, crc32c::crc32c(b)));
        assert_eq!(whole, crc32c::crc32c(&data[..data.len() / 4096 * 4096]));
    }
}
