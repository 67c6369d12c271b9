//! Telling sequential reads from random ones, per open file. Pure logic.
//!
//! The mount sees one file's reads from several kernel threads (read-ahead
//! requests in flight together arrive slightly out of order) and from
//! several readers at once, so "starts where the last read ended" is too
//! strict. A read continues a stream when it starts within [`SLACK`] of
//! where one of the last [`STREAMS`] streams ended; a stream is sequential
//! from its third read on (or from a read at offset 0). Random reads
//! rarely land near an earlier one's end twice in a row, so they keep the
//! ranged path instead of fetching whole chunks and reading ahead.

/// How far from a stream's end a read may start and still continue it.
pub(crate) const SLACK: u64 = 256 << 10;
/// Streams remembered per file.
pub(crate) const STREAMS: usize = 8;
/// Reads in a row that make a stream sequential.
const SEQUENTIAL_AFTER: u32 = 3;

#[derive(Debug, Default)]
pub(crate) struct ReadPattern {
    /// (end of the stream's furthest read, reads in the stream).
    streams: Vec<(u64, u32)>,
    /// Which stream to replace next.
    next: usize,
}

impl ReadPattern {
    /// Record a read of `len` bytes at `offset`; whether it looks sequential.
    pub fn observe(&mut self, offset: u64, len: usize) -> bool {
        let end = offset.saturating_add(len as u64);
        if let Some(s) = self.streams.iter_mut().find(|(e, _)| e.abs_diff(offset) <= SLACK) {
            s.0 = s.0.max(end);
            s.1 = s.1.saturating_add(1);
            return s.1 >= SEQUENTIAL_AFTER || offset == 0;
        }
        let fresh = (end, if offset == 0 { SEQUENTIAL_AFTER } else { 1 });
        if self.streams.len() < STREAMS {
            self.streams.push(fresh);
        } else {
            self.streams[self.next] = fresh;
            self.next = (self.next + 1) % STREAMS;
        }
        offset == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const K: u64 = 1024;

    #[test]
    fn reading_from_the_start_is_sequential_at_once() {
        let mut p = ReadPattern::default();
        for i in 0..10 {
            assert!(p.observe(i * 128 * K, 128 << 10), "read {i}");
        }
    }

    #[test]
    fn a_stream_from_the_middle_turns_sequential_on_its_third_read() {
        let mut p = ReadPattern::default();
        assert!(!p.observe(10 << 20, 128 << 10));
        assert!(!p.observe((10 << 20) + 128 * K, 128 << 10));
        assert!(p.observe((10 << 20) + 256 * K, 128 << 10));
    }

    #[test]
    fn read_ahead_arriving_out_of_order_stays_sequential() {
        let mut p = ReadPattern::default();
        let base = 64 << 20;
        for off in [0, 128, 256] {
            p.observe(base + off * K, 128 << 10);
        }
        // 512 K arrives before 384 K.
        assert!(p.observe(base + 512 * K, 128 << 10));
        assert!(p.observe(base + 384 * K, 128 << 10));
    }

    #[test]
    fn interleaved_sequential_readers_each_keep_their_stream() {
        let mut p = ReadPattern::default();
        let starts: Vec<u64> = (1..=4).map(|i| i * (100 << 20)).collect();
        let mut last = [false; 4];
        for step in 0..6u64 {
            for (r, s) in starts.iter().enumerate() {
                last[r] = p.observe(s + step * 128 * K, 128 << 10);
            }
        }
        assert!(last.iter().all(|&x| x));
    }

    #[test]
    fn random_reads_far_apart_are_not_sequential() {
        let mut p = ReadPattern::default();
        let mut x: u64 = 12345;
        for _ in 0..1000 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            // 1 GiB file, offsets ≥ 1 MiB apart by construction of the test.
            let off = ((x >> 20) % 1024) * (1 << 20) + (1 << 20);
            assert!(!p.observe(off, 128 << 10) || off == 0, "random read at {off} taken as sequential");
        }
    }
}
