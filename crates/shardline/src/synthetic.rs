//! Synthetic training shards: incompressible, reproducible content, cheap to
//! generate and to verify, in which no 8-byte word repeats anywhere.
//!
//! Word `w` (bytes `8w..8w+8`) of file `f` is `mix64(key ^ (f << 40 | w))`.
//! `mix64` is a bijection and `(f, w)` packs into distinct inputs while
//! `f < 2^24` and `w < 2^40` (8 TiB per file), so every (file, offset) holds
//! its own bytes: bytes written at the wrong offset or into the wrong file
//! never verify.

use anyhow::{bail, Result};
use shardline_types::placement::mix64;

const WORD_BITS: u32 = 40;
/// Files a pattern tells apart.
pub const MAX_FILES: u64 = 1 << 24;
/// Bytes per file a pattern covers without repeating.
pub const MAX_FILE_BYTES: u64 = 8 << WORD_BITS;

#[derive(Clone)]
pub struct Pattern {
    key: u64,
}

impl Pattern {
    pub fn new(seed: u64) -> Self {
        Pattern { key: mix64(seed) }
    }

    /// Refuse workloads the pattern cannot keep unique.
    pub fn check_fits(files: u64, largest_file: u64) -> Result<()> {
        if files > MAX_FILES {
            bail!("at most {MAX_FILES} files, not {files}");
        }
        if largest_file > MAX_FILE_BYTES {
            bail!("files of at most {MAX_FILE_BYTES} bytes, not {largest_file}");
        }
        Ok(())
    }

    fn value(&self, file: u64, word: u64) -> u64 {
        mix64(self.key ^ (file << WORD_BITS | (word & ((1 << WORD_BITS) - 1))))
    }

    fn word(&self, file: u64, word: u64) -> [u8; 8] {
        self.value(file, word).to_le_bytes()
    }

    /// Fill `buf` with file `file`'s bytes from `offset`.
    pub fn fill(&self, file: u64, offset: u64, buf: &mut [u8]) {
        let mut done = 0;
        while done < buf.len() {
            let pos = offset + done as u64;
            let (w, skip) = (pos / 8, (pos % 8) as usize);
            if skip == 0 && buf.len() - done >= 8 {
                let whole = (buf.len() - done) / 8 * 8;
                for (i, out) in buf[done..done + whole].chunks_exact_mut(8).enumerate() {
                    out.copy_from_slice(&self.word(file, w + i as u64));
                }
                done += whole;
                continue;
            }
            let bytes = self.word(file, w);
            let n = (8 - skip).min(buf.len() - done);
            buf[done..done + n].copy_from_slice(&bytes[skip..skip + n]);
            done += n;
        }
    }

    /// The offset in the file of the first byte of `data` (file `file`'s
    /// bytes from `offset`) that is wrong, if any.
    pub fn first_mismatch(&self, file: u64, offset: u64, data: &[u8]) -> Option<u64> {
        let mut done = 0;
        while done < data.len() {
            let pos = offset + done as u64;
            let (w, skip) = (pos / 8, (pos % 8) as usize);
            if skip == 0 && data.len() - done >= 8 {
                // Whole words, compared as integers.
                let whole = (data.len() - done) / 8 * 8;
                for (i, got) in data[done..done + whole].chunks_exact(8).enumerate() {
                    let mut bytes = [0u8; 8];
                    bytes.copy_from_slice(got);
                    let want = self.value(file, w + i as u64);
                    let diff = u64::from_le_bytes(bytes) ^ want;
                    if diff != 0 {
                        // Little-endian: the lowest differing byte comes first.
                        return Some(pos + 8 * i as u64 + u64::from(diff.trailing_zeros() / 8));
                    }
                }
                done += whole;
                continue;
            }
            let n = (8 - skip).min(data.len() - done);
            let want = self.word(file, w);
            let got = &data[done..done + n];
            if got != &want[skip..skip + n] {
                let at = got.iter().zip(&want[skip..]).position(|(a, b)| a != b).unwrap_or(0);
                return Some(pos + at as u64);
            }
            done += n;
        }
        None
    }

    /// Whether `data` equals file `file`'s bytes from `offset`.
    pub fn matches(&self, file: u64, offset: u64, data: &[u8]) -> bool {
        self.first_mismatch(file, offset, data).is_none()
    }
}

/// Checks one file read back in order, chunk by chunk: the first wrong
/// byte, a short or a long file are all a verification failure.
pub struct Verifier<'a> {
    pattern: &'a Pattern,
    file: u64,
    offset: u64,
    first_bad: Option<u64>,
}

impl<'a> Verifier<'a> {
    pub fn new(pattern: &'a Pattern, file: u64) -> Self {
        Verifier { pattern, file, offset: 0, first_bad: None }
    }

    /// The next bytes of the file, in order.
    pub fn check(&mut self, bytes: &[u8]) {
        if self.first_bad.is_none() {
            self.first_bad = self.pattern.first_mismatch(self.file, self.offset, bytes);
        }
        self.offset += bytes.len() as u64;
    }

    /// Bytes seen so far.
    pub fn bytes(&self) -> u64 {
        self.offset
    }

    /// None when every byte matched and the file had exactly `size` bytes;
    /// else the offset of the first wrong (or missing, or extra) byte.
    pub fn first_bad(&self, size: u64) -> Option<u64> {
        match self.first_bad {
            Some(at) => Some(at.min(size)),
            None if self.offset != size => Some(self.offset.min(size)),
            None => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHUNK: usize = 4 << 20;

    #[test]
    fn fill_and_match_agree_at_any_alignment() {
        let p = Pattern::new(1);
        let mut whole = vec![0u8; 3 << 20];
        p.fill(2, 0, &mut whole);
        for (off, len) in [(0usize, 1usize), (3, 5), (7, 9), (8, 8), (1000, 12_345), (5, (2 << 20) + 3)] {
            let mut part = vec![0u8; len];
            p.fill(2, off as u64, &mut part);
            assert_eq!(part, whole[off..off + len], "offset {off} length {len}");
            assert!(p.matches(2, off as u64, &part));
        }
        let mut bad = whole.clone();
        bad[777_777] ^= 1;
        assert_eq!(p.first_mismatch(2, 0, &bad), Some(777_777));
        assert_eq!(p.first_mismatch(2, 5, &bad[5..]), Some(777_777));
    }

    #[test]
    fn misplaced_bytes_never_verify() {
        // The old pattern repeated every 64 MiB (16 chunks of 4 MiB): chunk
        // i's bytes at chunk i + 16 verified.
        let p = Pattern::new(0x5348_4152_444c_494e);
        let mut chunk = vec![0u8; CHUNK];
        p.fill(0, 0, &mut chunk);
        for other in [1u64, 16, 17, 1024] {
            assert!(!p.matches(0, other * CHUNK as u64, &chunk), "chunk 0's bytes verified at chunk {other}");
        }
        assert!(!p.matches(1, 0, &chunk), "file 0's bytes verified as file 1's");
        for shift in 1..=16u64 {
            assert!(!p.matches(0, shift, &chunk[..4096]), "bytes shifted by {shift} verified");
        }
    }

    #[test]
    fn the_verifier_says_false_for_misplaced_chunks_and_names_the_first_bad_offset() {
        let p = Pattern::new(7);
        let chunks = 20u64;
        let size = chunks * CHUNK as u64;
        let chunk_bytes = |i: u64| {
            let mut b = vec![0u8; CHUNK];
            p.fill(3, i * CHUNK as u64, &mut b);
            b
        };
        // A client that put chunk 1's bytes at chunk 17.
        let mut v = Verifier::new(&p, 3);
        for i in 0..chunks {
            v.check(&chunk_bytes(if i == 17 { 1 } else { i }));
        }
        assert_eq!(v.first_bad(size), Some(17 * CHUNK as u64));
        // The right bytes verify.
        let mut v = Verifier::new(&p, 3);
        for i in 0..chunks {
            v.check(&chunk_bytes(i));
        }
        assert_eq!(v.first_bad(size), None);
        // A short file does not.
        assert_eq!(v.first_bad(size + 1), Some(size));
    }

    #[test]
    fn workloads_the_pattern_cannot_keep_unique_are_refused() {
        assert!(Pattern::check_fits(8, 2 << 30).is_ok());
        assert!(Pattern::check_fits(MAX_FILES + 1, 1).is_err());
        assert!(Pattern::check_fits(1, MAX_FILE_BYTES + 1).is_err());
    }
}
