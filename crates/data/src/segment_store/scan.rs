//! Reading a segment back: its header and every record header, without the
//! payloads; and deciding, for the newest segment, where a write torn by a
//! crash begins.
//!
//! A region that does not parse is skipped to the next valid record header
//! and reported. In the newest segment such a region is a torn tail when no
//! record of a *later* write batch follows it: the writer makes one batch
//! durable before it writes the next, so only the last batch can be torn,
//! and nothing in it was acknowledged. Anywhere else it is damage: its
//! records are lost (the caller logs it), the others are kept.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use super::format::{
    align_up, verify_blocks, HeaderError, RecordHeader, SegmentHeader, BATCH_ALIGN, RECORD_FIXED_LEN, RECORD_MAGIC,
    SEGMENT_HEADER_LEN,
};
use crate::DataError;

/// Bytes read at a time while scanning.
const WINDOW: usize = 1 << 20;

/// One record found by a scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Found {
    pub(crate) header: RecordHeader,
    pub(crate) offset: u64,
    /// Bytes the record occupies, padding included.
    pub(crate) len: u64,
}

/// What a scan found in one segment.
#[derive(Debug)]
pub(crate) struct Scan {
    pub(crate) header: SegmentHeader,
    pub(crate) records: Vec<Found>,
    /// Regions `[start, end)` that did not parse.
    pub(crate) bad: Vec<(u64, u64)>,
    /// The file's length.
    pub(crate) file_len: u64,
}

/// Read `file` (of `file_len` bytes) as a segment.
pub(crate) fn scan_segment(file: &File, file_len: u64) -> Result<Scan, DataError> {
    let mut w = Window { file, file_len, start: 0, buf: Vec::new() };
    let header = SegmentHeader::decode(w.get(0, 64).map_err(read_err)?)?;
    let align = u64::from(header.align);
    let mut records = Vec::new();
    let mut bad = Vec::new();
    let mut pos = SEGMENT_HEADER_LEN;
    while pos < file_len {
        match w.record_at(pos).map_err(read_err)? {
            Some(h) => {
                let len = align_up(h.body_len(), align);
                records.push(Found { header: h, offset: pos, len });
                pos += len;
            }
            None if !pos.is_multiple_of(BATCH_ALIGN)
                && w.zeros(pos, align_up(pos, BATCH_ALIGN)).map_err(read_err)? =>
            {
                // The zero padding that ends a write batch.
                pos = align_up(pos, BATCH_ALIGN);
            }
            None => {
                let next = w.next_record(pos + align, align).map_err(read_err)?;
                bad.push((pos, next.unwrap_or(file_len)));
                match next {
                    Some(n) => pos = n,
                    None => break,
                }
            }
        }
    }
    Ok(Scan { header, records, bad, file_len })
}

/// How the newest segment's tail was settled.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Tail {
    /// Where appends continue (a batch boundary); the file is cut or
    /// zero-extended to this length.
    pub(crate) end: u64,
    /// Where a torn write began, if there was one.
    pub(crate) torn_at: Option<u64>,
    /// Records dropped with the torn write.
    pub(crate) dropped: usize,
}

/// Decide where the newest segment's valid part ends: verify the payloads
/// of its last write batch, find the first torn byte, and drop from `scan`
/// every record and bad region at or after it.
pub(crate) fn settle_tail(file: &File, scan: &mut Scan) -> Result<Tail, DataError> {
    // Records of the last batch start at or after this.
    let last_batch = scan.records.last().map_or(SEGMENT_HEADER_LEN, |r| r.header.batch_start);
    let mut torn_at = scan.bad.iter().map(|b| b.0).find(|&start| start >= last_batch);
    for r in scan.records.iter().filter(|r| r.header.batch_start == last_batch) {
        if torn_at.is_some_and(|t| r.offset >= t) {
            break;
        }
        if !payload_ok(file, r)? {
            torn_at = Some(r.offset);
            break;
        }
    }
    let valid_end = scan.records.last().map_or(SEGMENT_HEADER_LEN, |r| r.offset + r.len);
    let Some(t) = torn_at else {
        return Ok(Tail { end: align_up(valid_end.max(SEGMENT_HEADER_LEN), BATCH_ALIGN), torn_at: None, dropped: 0 });
    };
    let before = scan.records.len();
    scan.records.retain(|r| r.offset < t);
    scan.bad.retain(|b| b.0 < t);
    Ok(Tail { end: align_up(t, BATCH_ALIGN), torn_at: Some(t), dropped: before - scan.records.len() })
}

/// Whether a record's payload matches its block checksums.
fn payload_ok(file: &File, r: &Found) -> Result<bool, DataError> {
    let h = &r.header;
    let mut buf = vec![0u8; h.body_len() as usize];
    match file.read_exact_at(&mut buf, r.offset) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(false),
        Err(e) => return Err(read_err(e)),
    }
    let (head, payload) = buf.split_at(h.header_len());
    Ok(verify_blocks(&head[RECORD_FIXED_LEN..], 0, payload, h.block_len()).is_ok())
}

fn read_err(e: io::Error) -> DataError {
    DataError::io("read segment", e)
}

/// A cached stretch of the file.
struct Window<'a> {
    file: &'a File,
    file_len: u64,
    start: u64,
    buf: Vec<u8>,
}

impl Window<'_> {
    /// Up to `len` bytes from `at` (fewer at the end of the file).
    fn get(&mut self, at: u64, len: usize) -> io::Result<&[u8]> {
        let want_end = (at + len as u64).min(self.file_len);
        let have_end = self.start + self.buf.len() as u64;
        if at < self.start || want_end > have_end {
            let n = ((self.file_len.saturating_sub(at)) as usize).min(len.max(WINDOW));
            self.buf.resize(n, 0);
            self.file.read_exact_at(&mut self.buf, at)?;
            self.start = at;
        }
        let from = (at - self.start) as usize;
        let to = (want_end.saturating_sub(self.start) as usize).max(from);
        Ok(&self.buf[from..to])
    }

    /// The record header at `pos`, if one is there whole (its payload
    /// within the file).
    fn record_at(&mut self, pos: u64) -> io::Result<Option<RecordHeader>> {
        let mut want = RECORD_FIXED_LEN;
        loop {
            let bytes = self.get(pos, want)?;
            match RecordHeader::decode(bytes) {
                Ok(h) => return Ok((pos + h.body_len() <= self.file_len).then_some(h)),
                Err(HeaderError::Short(n))
                    if n > bytes.len() && bytes.len() == want && pos + n as u64 <= self.file_len =>
                {
                    want = n;
                }
                Err(_) => return Ok(None),
            }
        }
    }

    /// Whether `[from, to)` holds only zeros.
    fn zeros(&mut self, from: u64, to: u64) -> io::Result<bool> {
        let to = to.min(self.file_len);
        let bytes = self.get(from, (to - from) as usize)?;
        Ok(bytes.iter().all(|&b| b == 0))
    }

    /// The first position at or after `from`, a multiple of `align`, where
    /// a whole valid record header starts.
    fn next_record(&mut self, from: u64, align: u64) -> io::Result<Option<u64>> {
        let mut pos = align_up(from, align);
        while pos + RECORD_FIXED_LEN as u64 <= self.file_len {
            let bytes = self.get(pos, WINDOW)?;
            let step = align as usize;
            let hit = (0..bytes.len().saturating_sub(3)).step_by(step).find(|&i| bytes[i..i + 4] == RECORD_MAGIC);
            match hit {
                Some(i) => {
                    let at = pos + i as u64;
                    if self.record_at(at)?.is_some() {
                        return Ok(Some(at));
                    }
                    pos = at + align;
                }
                None => pos += (bytes.len() as u64).next_multiple_of(align).max(align),
            }
        }
        Ok(None)
    }
}
