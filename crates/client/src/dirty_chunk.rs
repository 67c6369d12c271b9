//! The bytes of one chunk written since the last flush, and which ranges of
//! the chunk they cover. Pure data: the file handle decides when a chunk is
//! complete (encode it now) or needs its committed bytes underneath
//! (read-modify-write at flush).

/// Written bytes of one chunk; offsets are relative to the chunk's start.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct DirtyChunk {
    /// Bytes up to the end of the furthest write; gaps hold zeros.
    data: Vec<u8>,
    /// Sorted, disjoint, non-adjacent half-open ranges that were written.
    ranges: Vec<(usize, usize)>,
}

impl DirtyChunk {
    /// Record `bytes` written at `off` within the chunk.
    pub fn write(&mut self, off: usize, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        let end = off + bytes.len();
        if self.data.len() < end {
            self.data.resize(end, 0);
        }
        self.data[off..end].copy_from_slice(bytes);
        self.add_range(off, end);
    }

    fn add_range(&mut self, mut start: usize, mut end: usize) {
        let mut merged = Vec::with_capacity(self.ranges.len() + 1);
        for &(s, e) in &self.ranges {
            if e < start || s > end {
                merged.push((s, e));
            } else {
                start = start.min(s);
                end = end.max(e);
            }
        }
        merged.push((start, end));
        merged.sort_unstable();
        self.ranges = merged;
    }

    /// Whether every byte of `[0, len)` was written.
    pub fn covers(&self, len: usize) -> bool {
        len == 0 || self.ranges.first().is_some_and(|&(s, e)| s == 0 && e >= len)
    }

    /// Whether nothing was written.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// The written bytes laid over `base` (the chunk's previous contents),
    /// exactly `len` bytes long: zeros where neither has bytes.
    pub fn overlay(&self, base: &[u8], len: usize) -> Vec<u8> {
        let mut out = vec![0u8; len];
        let b = base.len().min(len);
        out[..b].copy_from_slice(&base[..b]);
        for &(s, e) in &self.ranges {
            if s >= len {
                break;
            }
            let e = e.min(len);
            out[s..e].copy_from_slice(&self.data[s..e]);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_merge_and_cover() {
        let mut d = DirtyChunk::default();
        d.write(10, &[1; 10]);
        assert!(!d.covers(20));
        d.write(0, &[2; 5]);
        assert_eq!(d.ranges, vec![(0, 5), (10, 20)]);
        d.write(5, &[3; 5]);
        assert_eq!(d.ranges, vec![(0, 20)]);
        assert!(d.covers(20));
        assert!(!d.covers(21));
        d.write(25, &[4; 5]);
        d.write(18, &[5; 8]);
        assert_eq!(d.ranges, vec![(0, 30)]);
    }

    #[test]
    fn overlay_keeps_base_in_gaps_and_zero_fills() {
        let mut d = DirtyChunk::default();
        d.write(2, &[9, 9]);
        d.write(6, &[7]);
        assert_eq!(d.overlay(&[1, 1, 1, 1, 1], 8), vec![1, 1, 9, 9, 1, 0, 7, 0]);
        assert_eq!(d.overlay(&[], 3), vec![0, 0, 9]);
    }
}
