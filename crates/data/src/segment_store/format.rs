//! The segment store's on-disk format, version 1.
//!
//! A segment file `segments/seg-<id as 16 hex digits>.log` starts with one
//! 4 KiB block holding its header, then records back to back:
//!
//! ```text
//! segment header (fields little-endian, zero-padded to 4096 bytes):
//!  0  magic "SLSEGMNT"        8
//!  8  format version u16      2   (1)
//! 10  reserved, zero          2
//! 12  header length u32       4   (4096: where the first record starts)
//! 16  record alignment u32    4   (4096 when written with O_DIRECT, else 8)
//! 20  reserved, zero          4
//! 24  segment id u64          8   (the one in the file name)
//! 32  created, unix secs u64  8
//! 40  reserved, zero          20
//! 60  CRC32C of bytes 0..60   4
//!
//! record: an 80-byte fixed header, a table of one CRC32C per block of
//! payload, the payload, zero padding to the segment's record alignment:
//!  0  magic "SLRC"            4
//!  4  kind u8                 1   (1 put, 2 tombstone: the key was deleted)
//!  5  log2(block length) u8   1   (16: a CRC32C per 64 KiB of payload)
//!  6  fixed header len u16    2   (80)
//!  8  payload length u64      8
//! 16  payload CRC32C u32      4   (of the whole payload, as the wire carries it)
//! 20  shard index u32         4
//! 24  file id u64             8
//! 32  chunk index u64         8
//! 40  chunk version u64       8
//! 48  sequence number u64     8   (the newest record of a key wins)
//! 56  written, unix ns u64    8
//! 64  batch start u64         8   (segment offset of the write batch holding it)
//! 72  block count u32         4
//! 76  CRC32C of bytes 0..76 and the block table   4
//! 80  block table: block count × u32 CRC32C
//! ```
//!
//! Every write batch (one write + one fdatasync) starts on a 4 KiB boundary
//! and is zero-padded to one, so a batch never rewrites a block that an
//! earlier, acknowledged batch made durable. A record names its own shard,
//! so a record copied to another place still says what it is.

use shardline_types::ShardKey;

use super::crc_shift::CrcShift;
use crate::le_bytes::{corrupt, u16_at, u32_at, u64_at};
use crate::DataError;

/// First bytes of every segment file.
pub(crate) const SEGMENT_MAGIC: [u8; 8] = *b"SLSEGMNT";
/// The segment format version this code writes (and the only one so far).
pub(crate) const SEGMENT_VERSION: u16 = 1;
/// Bytes before the first record: the header block.
pub(crate) const SEGMENT_HEADER_LEN: u64 = 4096;
/// Write batches start and end on multiples of this.
pub(crate) const BATCH_ALIGN: u64 = 4096;
/// Record alignment in segments written with `O_DIRECT`.
pub(crate) const DIRECT_ALIGN: u32 = 4096;
/// Record alignment in segments written through the page cache.
pub(crate) const BUFFERED_ALIGN: u32 = 8;
/// First bytes of every record.
pub(crate) const RECORD_MAGIC: [u8; 4] = *b"SLRC";
/// Length of a record header's fixed fields.
pub(crate) const RECORD_FIXED_LEN: usize = 80;
/// log2 of the payload block each CRC32C covers (64 KiB).
pub(crate) const BLOCK_LOG2: u8 = 16;
/// The largest payload a record may carry (a sanity bound for damaged
/// headers; shards are a few MiB).
pub(crate) const MAX_PAYLOAD: u64 = 1 << 32;

/// What a segment file's header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SegmentHeader {
    pub(crate) id: u64,
    /// Record alignment: [`DIRECT_ALIGN`] or [`BUFFERED_ALIGN`].
    pub(crate) align: u32,
    pub(crate) created_secs: u64,
}

impl SegmentHeader {
    /// The header's 64 bytes of fields (a writer pads them to
    /// [`SEGMENT_HEADER_LEN`]).
    pub(crate) fn encode(&self) -> [u8; 64] {
        let mut h = [0u8; 64];
        h[0..8].copy_from_slice(&SEGMENT_MAGIC);
        h[8..10].copy_from_slice(&SEGMENT_VERSION.to_le_bytes());
        h[12..16].copy_from_slice(&(SEGMENT_HEADER_LEN as u32).to_le_bytes());
        h[16..20].copy_from_slice(&self.align.to_le_bytes());
        h[24..32].copy_from_slice(&self.id.to_le_bytes());
        h[32..40].copy_from_slice(&self.created_secs.to_le_bytes());
        let crc = crc32c::crc32c(&h[..60]);
        h[60..64].copy_from_slice(&crc.to_le_bytes());
        h
    }

    pub(crate) fn decode(buf: &[u8]) -> Result<SegmentHeader, DataError> {
        if buf.len() < 64 {
            return Err(corrupt("segment shorter than its header"));
        }
        if buf[0..8] != SEGMENT_MAGIC {
            return Err(corrupt("bad segment magic"));
        }
        if crc32c::crc32c(&buf[..60]) != u32_at(buf, 60) {
            return Err(corrupt("segment header checksum mismatch"));
        }
        let version = u16_at(buf, 8);
        if version != SEGMENT_VERSION {
            return Err(DataError::Corrupt(format!("unknown segment format version {version}")));
        }
        if u64::from(u32_at(buf, 12)) != SEGMENT_HEADER_LEN {
            return Err(corrupt("bad segment header length"));
        }
        let align = u32_at(buf, 16);
        if align != DIRECT_ALIGN && align != BUFFERED_ALIGN {
            return Err(DataError::Corrupt(format!("unsupported record alignment {align}")));
        }
        Ok(SegmentHeader { id: u64_at(buf, 24), align, created_secs: u64_at(buf, 32) })
    }
}

/// What a record is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A shard's bytes.
    Put,
    /// The key was deleted.
    Tomb,
}

/// A record header's fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RecordHeader {
    pub(crate) kind: Kind,
    pub(crate) block_log2: u8,
    pub(crate) key: ShardKey,
    pub(crate) payload_len: u64,
    pub(crate) payload_crc: u32,
    pub(crate) seq: u64,
    pub(crate) mtime_ns: u64,
    pub(crate) batch_start: u64,
}

/// Why bytes did not decode as a record header.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum HeaderError {
    /// The fixed fields are plausible but the whole header is this long.
    Short(usize),
    /// Not a record header (or a damaged one).
    Bad(&'static str),
}

impl RecordHeader {
    /// A new record's header (sequence number and batch start are set by
    /// the writer).
    pub(crate) fn new(kind: Kind, key: ShardKey, payload_len: u64, payload_crc: u32, mtime_ns: u64) -> Self {
        RecordHeader { kind, block_log2: BLOCK_LOG2, key, payload_len, payload_crc, seq: 0, mtime_ns, batch_start: 0 }
    }

    pub(crate) fn block_len(&self) -> usize {
        1usize << self.block_log2
    }

    /// Number of payload blocks (and of table entries).
    pub(crate) fn blocks(&self) -> usize {
        blocks(self.payload_len, self.block_log2)
    }

    /// Fixed fields plus block table: where the payload starts.
    pub(crate) fn header_len(&self) -> usize {
        RECORD_FIXED_LEN + 4 * self.blocks()
    }

    /// Header plus payload, before padding.
    pub(crate) fn body_len(&self) -> u64 {
        self.header_len() as u64 + self.payload_len
    }

    /// Write the fixed fields into `buf[..80]` and the header CRC, over
    /// them and the block table already in `buf[80..header_len]`.
    pub(crate) fn seal_into(&self, buf: &mut [u8]) {
        let h = &mut buf[..RECORD_FIXED_LEN];
        h[0..4].copy_from_slice(&RECORD_MAGIC);
        h[4] = match self.kind {
            Kind::Put => 1,
            Kind::Tomb => 2,
        };
        h[5] = self.block_log2;
        h[6..8].copy_from_slice(&(RECORD_FIXED_LEN as u16).to_le_bytes());
        h[8..16].copy_from_slice(&self.payload_len.to_le_bytes());
        h[16..20].copy_from_slice(&self.payload_crc.to_le_bytes());
        h[20..24].copy_from_slice(&self.key.shard_index.to_le_bytes());
        h[24..32].copy_from_slice(&self.key.file_id.to_le_bytes());
        h[32..40].copy_from_slice(&self.key.chunk_index.to_le_bytes());
        h[40..48].copy_from_slice(&self.key.version.to_le_bytes());
        h[48..56].copy_from_slice(&self.seq.to_le_bytes());
        h[56..64].copy_from_slice(&self.mtime_ns.to_le_bytes());
        h[64..72].copy_from_slice(&self.batch_start.to_le_bytes());
        h[72..76].copy_from_slice(&(self.blocks() as u32).to_le_bytes());
        let crc = header_crc(buf, self.header_len());
        buf[76..80].copy_from_slice(&crc.to_le_bytes());
    }

    /// Decode and check a header from `buf`, which starts at the record.
    pub(crate) fn decode(buf: &[u8]) -> Result<RecordHeader, HeaderError> {
        if buf.len() < RECORD_FIXED_LEN {
            return if buf.len() >= 4 && buf[0..4] != RECORD_MAGIC {
                Err(HeaderError::Bad("bad record magic"))
            } else {
                Err(HeaderError::Short(RECORD_FIXED_LEN))
            };
        }
        if buf[0..4] != RECORD_MAGIC {
            return Err(HeaderError::Bad("bad record magic"));
        }
        let kind = match buf[4] {
            1 => Kind::Put,
            2 => Kind::Tomb,
            _ => return Err(HeaderError::Bad("unknown record kind")),
        };
        let block_log2 = buf[5];
        if !(12..=26).contains(&block_log2) || usize::from(u16_at(buf, 6)) != RECORD_FIXED_LEN {
            return Err(HeaderError::Bad("bad record header fields"));
        }
        let payload_len = u64_at(buf, 8);
        if payload_len > MAX_PAYLOAD || (kind == Kind::Tomb && payload_len != 0) {
            return Err(HeaderError::Bad("implausible payload length"));
        }
        if u32_at(buf, 72) as usize != blocks(payload_len, block_log2) {
            return Err(HeaderError::Bad("block count does not match the payload length"));
        }
        let header_len = RECORD_FIXED_LEN + 4 * blocks(payload_len, block_log2);
        if buf.len() < header_len {
            return Err(HeaderError::Short(header_len));
        }
        if header_crc(buf, header_len) != u32_at(buf, 76) {
            return Err(HeaderError::Bad("record header checksum mismatch"));
        }
        Ok(RecordHeader {
            kind,
            block_log2,
            key: ShardKey {
                file_id: u64_at(buf, 24),
                chunk_index: u64_at(buf, 32),
                version: u64_at(buf, 40),
                shard_index: u32_at(buf, 20),
            },
            payload_len,
            payload_crc: u32_at(buf, 16),
            seq: u64_at(buf, 48),
            mtime_ns: u64_at(buf, 56),
            batch_start: u64_at(buf, 64),
        })
    }
}

fn blocks(payload_len: u64, block_log2: u8) -> usize {
    payload_len.div_ceil(1u64 << block_log2) as usize
}

/// CRC32C of a header's fixed fields (without the CRC itself) and its table.
fn header_crc(buf: &[u8], header_len: usize) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(&buf[..76]), &buf[RECORD_FIXED_LEN..header_len])
}

/// Write the CRC32C of each `block_len` block of `data` into `table` (4
/// bytes each) and return the CRC32C of the whole of `data`, in one pass.
pub(crate) fn fill_block_table(data: &[u8], block_len: usize, table: &mut [u8]) -> u32 {
    let mut whole = WholeCrc::new(block_len);
    for (block, slot) in data.chunks(block_len).zip(table.chunks_exact_mut(4)) {
        let crc = crc32c::crc32c(block);
        slot.copy_from_slice(&crc.to_le_bytes());
        whole.push(block, crc);
    }
    whole.crc()
}

/// The CRC32C of a payload built from its blocks' CRCs, block by block.
pub(crate) struct WholeCrc {
    shift: std::sync::Arc<CrcShift>,
    block_len: usize,
    crc: u32,
}

impl WholeCrc {
    pub(crate) fn new(block_len: usize) -> Self {
        WholeCrc { shift: CrcShift::for_len(block_len), block_len, crc: crc32c::crc32c(&[]) }
    }

    /// The next block (`block`, whose CRC is `crc`); only the last may be short.
    pub(crate) fn push(&mut self, block: &[u8], crc: u32) {
        self.crc = if block.len() == self.block_len {
            self.shift.combine(self.crc, crc)
        } else if self.crc == 0 {
            // Combining onto 0 shifts nothing (the shift is linear), and
            // the CRC of nothing is 0: a payload of one short block is
            // that block's CRC.
            crc
        } else {
            // A short last block: reading it again costs less than
            // crc32c_combine for its length.
            crc32c::crc32c_append(self.crc, block)
        };
    }

    pub(crate) fn crc(&self) -> u32 {
        self.crc
    }
}

/// Check `data`, the payload's blocks from block `first` on (the last one
/// may be short), against the header's `table`.
pub(crate) fn verify_blocks(table: &[u8], first: usize, data: &[u8], block_len: usize) -> Result<(), DataError> {
    for (i, block) in data.chunks(block_len).enumerate() {
        let at = 4 * (first + i);
        let want = table.get(at..at + 4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
        let actual = crc32c::crc32c(block);
        if want != Some(actual) {
            return Err(DataError::Corrupt(format!("payload block {} checksum mismatch", first + i)));
        }
    }
    Ok(())
}

/// [`verify_blocks`] over the concatenation of `parts`, without joining
/// them: each block's CRC is carried across the parts it spans.
pub(crate) fn verify_blocks_in_parts(
    table: &[u8],
    first: usize,
    parts: &[&[u8]],
    block_len: usize,
) -> Result<(), DataError> {
    let check = |block: usize, crc: u32| {
        let at = 4 * (first + block);
        let want = table.get(at..at + 4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
        if want != Some(crc) {
            return Err(DataError::Corrupt(format!("payload block {} checksum mismatch", first + block)));
        }
        Ok(())
    };
    let (mut block, mut crc, mut filled) = (0usize, 0u32, 0usize);
    for part in parts {
        let mut rest: &[u8] = part;
        while !rest.is_empty() {
            let take = rest.len().min(block_len - filled);
            crc = crc32c::crc32c_append(crc, &rest[..take]);
            filled += take;
            rest = &rest[take..];
            if filled == block_len {
                check(block, crc)?;
                (block, crc, filled) = (block + 1, 0, 0);
            }
        }
    }
    if filled > 0 {
        check(block, crc)?;
    }
    Ok(())
}

/// `n` rounded up to a multiple of `align` (a power of two).
pub(crate) fn align_up(n: u64, align: u64) -> u64 {
    n.next_multiple_of(align)
}

/// The file name of segment `id`.
pub(crate) fn segment_file_name(id: u64) -> String {
    format!("seg-{id:016x}.log")
}

/// The id in a segment file name, if it is one.
pub(crate) fn parse_segment_file_name(name: &str) -> Option<u64> {
    let hex = name.strip_prefix("seg-")?.strip_suffix(".log")?;
    if hex.len() != 16 {
        return None;
    }
    u64::from_str_radix(hex, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(payload_len: u64) -> RecordHeader {
        let key = ShardKey { file_id: 9, chunk_index: 3, version: 7, shard_index: 5 };
        RecordHeader { seq: 42, batch_start: 8192, ..RecordHeader::new(Kind::Put, key, payload_len, 0xfeed, 1234) }
    }

    fn encoded(h: &RecordHeader, data: &[u8]) -> Vec<u8> {
        let mut buf = vec![0u8; h.header_len()];
        fill_block_table(data, h.block_len(), &mut buf[RECORD_FIXED_LEN..]);
        h.seal_into(&mut buf);
        buf
    }

    #[test]
    fn segment_header_round_trips_and_catches_every_flipped_bit() {
        let h = SegmentHeader { id: 77, align: DIRECT_ALIGN, created_secs: 1_700_000_000 };
        let enc = h.encode();
        assert_eq!(SegmentHeader::decode(&enc).unwrap(), h);
        for byte in 0..64 {
            for bit in 0..8 {
                let mut bad = enc;
                bad[byte] ^= 1 << bit;
                assert!(SegmentHeader::decode(&bad).is_err(), "flip at byte {byte} bit {bit} accepted");
            }
        }
        assert!(SegmentHeader::decode(&enc[..63]).is_err());
    }

    #[test]
    fn record_header_round_trips_and_catches_every_flipped_bit() {
        let data = vec![3u8; 200_000];
        let h = header(data.len() as u64);
        assert_eq!(h.blocks(), 4);
        let enc = encoded(&h, &data);
        assert_eq!(RecordHeader::decode(&enc).unwrap(), h);
        for byte in 0..enc.len() {
            for bit in 0..8 {
                let mut bad = enc.clone();
                bad[byte] ^= 1 << bit;
                assert!(RecordHeader::decode(&bad).is_err(), "flip at byte {byte} bit {bit} accepted");
            }
        }
    }

    #[test]
    fn a_short_buffer_asks_for_the_whole_header() {
        let data = vec![1u8; 70_000];
        let enc = encoded(&header(data.len() as u64), &data);
        assert_eq!(RecordHeader::decode(&enc[..10]), Err(HeaderError::Short(RECORD_FIXED_LEN)));
        assert_eq!(RecordHeader::decode(&enc[..RECORD_FIXED_LEN]), Err(HeaderError::Short(RECORD_FIXED_LEN + 8)));
        assert!(matches!(RecordHeader::decode(b"\0\0\0\0\0"), Err(HeaderError::Bad(_))));
    }

    #[test]
    fn block_table_gives_the_whole_crc_and_catches_a_bad_block() {
        for len in [0usize, 1, 65_535, 65_536, 65_537, 300_000] {
            let data: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
            let mut table = vec![0u8; 4 * len.div_ceil(65_536)];
            assert_eq!(fill_block_table(&data, 65_536, &mut table), crc32c::crc32c(&data), "length {len}");
            verify_blocks(&table, 0, &data, 65_536).unwrap();
            if len > 65_540 {
                verify_blocks(&table, 1, &data[65_536..], 65_536).unwrap();
                let mut bad = data.clone();
                bad[65_540] ^= 1;
                assert!(
                    matches!(verify_blocks(&table, 0, &bad, 65_536), Err(DataError::Corrupt(m)) if m.contains("block 1"))
                );
            }
        }
    }

    #[test]
    fn blocks_split_across_parts_verify_as_if_joined() {
        let data: Vec<u8> = (0..300_000usize).map(|i| (i * 13 % 251) as u8).collect();
        let mut table = vec![0u8; 4 * data.len().div_ceil(65_536)];
        fill_block_table(&data, 65_536, &mut table);
        // Cuts inside blocks, on block edges, and empty parts.
        for (a, b) in [(0, 0), (1, 299_999), (65_536, 131_072), (100, 65_536), (70_000, 300_000), (5, 5)] {
            let parts: [&[u8]; 3] = [&data[..a], &data[a..b], &data[b..]];
            verify_blocks_in_parts(&table, 0, &parts, 65_536).unwrap();
            let mut bad = data.clone();
            bad[200_000] ^= 0x80;
            let parts: [&[u8]; 3] = [&bad[..a], &bad[a..b], &bad[b..]];
            assert!(
                matches!(verify_blocks_in_parts(&table, 0, &parts, 65_536), Err(DataError::Corrupt(m)) if m.contains("block 3")),
                "cut at {a}..{b}"
            );
        }
        // A span starting at block 1.
        verify_blocks_in_parts(&table, 1, &[&data[65_536..70_000], &data[70_000..]], 65_536).unwrap();
    }

    #[test]
    fn segment_names_round_trip() {
        assert_eq!(segment_file_name(0x1f), "seg-000000000000001f.log");
        assert_eq!(parse_segment_file_name(&segment_file_name(u64::MAX)), Some(u64::MAX));
        for bad in ["seg-1.log", "seg-000000000000001f.tmp", "x-000000000000001f.log", "seg-00000000000000zz.log"] {
            assert_eq!(parse_segment_file_name(bad), None, "{bad}");
        }
    }
}
