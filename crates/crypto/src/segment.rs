//! Chunk format v2 layout: where each segment's plaintext and sealed bytes
//! sit. Pure arithmetic, shared by sealing, opening and the client's range
//! reads.
//!
//! A chunk of `P` plaintext bytes is cut into `n = max(1, ceil(P / S))`
//! segments of `S` bytes (the last one shorter, possibly empty when `P` is
//! 0). Sealed segment `i` is `salt(16) || ciphertext || tag(16)` and starts
//! at `i * (S + 32)` of the sealed chunk, which is their concatenation and
//! nothing else: `sealed_len = P + 32 n`. No header, so the segment holding
//! a plaintext byte is known without reading anything.

use std::ops::Range;

use crate::{CryptoError, TAG_LEN};

/// Plaintext bytes per segment in chunk format v2. Measured: sealing and
/// opening run at the same speed from 16 KiB segments up (per-segment cost
/// is about a microsecond), while a random 128 KiB read fetches on average
/// one segment more than it asked for; 64 KiB keeps that at 1.5x and the
/// tag overhead at 0.05%. See docs/performance.md, "Chunk format v2".
pub const SEGMENT_SIZE: usize = 64 << 10;
/// Length of the per-chunk random salt at the start of every sealed segment.
pub const SALT_LEN: usize = 16;
/// Bytes each sealed segment adds to its plaintext: salt + tag.
pub const SEGMENT_OVERHEAD: usize = SALT_LEN + TAG_LEN;

/// The segment layout of one v2 chunk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentLayout {
    plain_len: usize,
    segment_size: usize,
}

impl SegmentLayout {
    /// The layout of a chunk of `plain_len` plaintext bytes.
    pub fn for_plaintext(plain_len: usize) -> SegmentLayout {
        SegmentLayout { plain_len, segment_size: SEGMENT_SIZE }
    }

    /// A layout with another segment size (tests and measurements only: the
    /// format fixes [`SEGMENT_SIZE`]).
    #[doc(hidden)]
    pub fn with_segment_size(plain_len: usize, segment_size: usize) -> SegmentLayout {
        assert!(segment_size > 0, "segment size must be positive");
        SegmentLayout { plain_len, segment_size }
    }

    /// The layout of a sealed chunk of `sealed_len` bytes (from the chunk's
    /// metadata); lengths no plaintext seals to are an error.
    pub fn from_sealed_len(sealed_len: usize) -> Result<SegmentLayout, CryptoError> {
        Self::from_sealed_len_with(sealed_len, SEGMENT_SIZE)
    }

    #[doc(hidden)]
    pub fn from_sealed_len_with(sealed_len: usize, segment_size: usize) -> Result<SegmentLayout, CryptoError> {
        let bad = || CryptoError::BadSealedLength { sealed_len };
        if sealed_len < SEGMENT_OVERHEAD {
            return Err(bad());
        }
        let n = sealed_len.div_ceil(segment_size + SEGMENT_OVERHEAD);
        let plain_len = sealed_len.checked_sub(n * SEGMENT_OVERHEAD).ok_or_else(bad)?;
        let layout = SegmentLayout::with_segment_size(plain_len, segment_size);
        if layout.sealed_len() != sealed_len {
            return Err(bad());
        }
        Ok(layout)
    }

    pub fn plain_len(&self) -> usize {
        self.plain_len
    }

    pub fn segment_size(&self) -> usize {
        self.segment_size
    }

    /// Number of segments (at least one: an empty chunk is one empty segment).
    pub fn segment_count(&self) -> usize {
        self.plain_len.div_ceil(self.segment_size).max(1)
    }

    /// Length of the sealed chunk.
    pub fn sealed_len(&self) -> usize {
        self.plain_len + self.segment_count() * SEGMENT_OVERHEAD
    }

    /// The segments holding the plaintext bytes `plain` (clamped to the
    /// chunk); empty if `plain` is.
    pub fn segments_for(&self, plain: Range<usize>) -> Range<usize> {
        let end = plain.end.min(self.plain_len);
        if plain.start >= end {
            return 0..0;
        }
        plain.start / self.segment_size..(end - 1) / self.segment_size + 1
    }

    /// The plaintext bytes of segments `segs`.
    pub fn plain_range(&self, segs: Range<usize>) -> Range<usize> {
        let at = |i: usize| (i * self.segment_size).min(self.plain_len);
        at(segs.start)..at(segs.end)
    }

    /// The sealed bytes of segments `segs`.
    pub fn sealed_range(&self, segs: Range<usize>) -> Range<usize> {
        let n = self.segment_count();
        let at = |i: usize| {
            let i = i.min(n);
            (i * (self.segment_size + SEGMENT_OVERHEAD)).min(self.sealed_len())
        };
        at(segs.start)..at(segs.end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_length_round_trips_for_every_plaintext_length() {
        for s in [1, 7, 64] {
            for p in 0..(5 * s + 3) {
                let l = SegmentLayout::with_segment_size(p, s);
                let back = SegmentLayout::from_sealed_len_with(l.sealed_len(), s).unwrap();
                assert_eq!(back, l, "plain {p}, segment {s}");
                let ranges: usize = (0..l.segment_count()).map(|i| l.sealed_range(i..i + 1).len()).sum();
                assert_eq!(ranges, l.sealed_len());
            }
        }
    }

    #[test]
    fn impossible_sealed_lengths_are_errors() {
        // 0..32 hold no segment; with 8-byte segments, 41 and 42 would need a
        // second segment shorter than its overhead.
        for bad in [0, 31, 41, 42, 72] {
            assert!(SegmentLayout::from_sealed_len_with(bad, 8).is_err(), "{bad}");
        }
        assert_eq!(SegmentLayout::from_sealed_len_with(32, 8).unwrap().plain_len(), 0);
        assert_eq!(SegmentLayout::from_sealed_len_with(73, 8).unwrap().plain_len(), 9);
    }

    #[test]
    fn ranges_map_to_the_segments_that_hold_them() {
        let l = SegmentLayout::with_segment_size(250, 100);
        assert_eq!(l.segment_count(), 3);
        assert_eq!(l.segments_for(0..1), 0..1);
        assert_eq!(l.segments_for(99..101), 0..2);
        assert_eq!(l.segments_for(100..200), 1..2);
        assert_eq!(l.segments_for(150..1000), 1..3);
        assert_eq!(l.segments_for(250..300), 0..0);
        assert_eq!(l.plain_range(1..3), 100..250);
        assert_eq!(l.sealed_range(1..3), 132..346);
        assert_eq!(l.sealed_len(), 346);
    }
}
