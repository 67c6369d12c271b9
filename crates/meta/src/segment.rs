//! The on-disk format of one Raft log segment file, version 2 (version 1
//! still read).
//!
//! A segment is a header then records, appended and never rewritten:
//!
//! - header (32 bytes): magic `SLRAFTLG`, format version (u32 LE), the log
//!   generation it belongs to (u64 LE; a snapshot received from the leader
//!   starts a new one), its sequence number (u64 LE), CRC32C of the
//!   preceding 28 bytes (u32 LE);
//! - record: body length (u32 LE), CRC32C of the body (u32 LE), body =
//!   kind (u8) then payload. Kind 3 (version 2), a log entry: index (u64
//!   LE), term (u64 LE), then the entry as [`crate::at_rest::AtRest`]
//!   stores it (sealed under the server key, bound to its index, term and
//!   key id). Kind 1 (version 1 only; read, never written), a log entry
//!   without its term: index (u64 LE) then the entry as stored before the
//!   term was bound. Kind 2, the hard state (raft-rs protobuf: term, vote,
//!   commit; nothing secret).
//!
//! Version 2 exists so that a build that knows only kind 1 refuses these
//! segments by their header ("format version 2 is not supported") instead
//! of taking a kind-3 record for a torn tail and cutting it off. A server
//! never appends kind-3 records to a version-1 segment: it starts a new
//! segment instead (`segment_log.rs`).
//!
//! Segments are preallocated, so a segment's unwritten end reads as zeros.
//! [`scan`] reads records until the end or the first one that does not
//! check out, and classifies what follows ([`Tail`]): zeros are the clean
//! end; anything else with nothing valid after it is a torn tail (a write
//! cut short by a crash; that batch was never acknowledged), which the
//! caller cuts off; a bad record followed by a good one is damage in the
//! middle of the log, reported as such, never skipped.

use crate::MetaError;

pub const MAGIC: &[u8; 8] = b"SLRAFTLG";
/// The version new segments are written in.
pub const VERSION: u32 = 2;
/// Segments written before entries carried their term (kind 1 records).
pub const VERSION_1: u32 = 1;
pub const HEADER_LEN: usize = 32;
const RECORD_HEAD: usize = 8;
/// No record is larger (a Raft entry holds one metadata request).
pub const MAX_BODY: usize = 64 << 20;

/// A log entry without its term (version 1 segments).
pub const KIND_ENTRY: u8 = 1;
pub const KIND_HARD_STATE: u8 = 2;
/// A log entry with its term (version 2 segments).
pub const KIND_ENTRY_TERM: u8 = 3;

/// A segment's identity, from its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub generation: u64,
    pub seq: u64,
    /// [`VERSION`] or [`VERSION_1`].
    pub version: u32,
}

impl Header {
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut h = [0u8; HEADER_LEN];
        h[..8].copy_from_slice(MAGIC);
        h[8..12].copy_from_slice(&self.version.to_le_bytes());
        h[12..20].copy_from_slice(&self.generation.to_le_bytes());
        h[20..28].copy_from_slice(&self.seq.to_le_bytes());
        let crc = crc32c::crc32c(&h[..28]);
        h[28..].copy_from_slice(&crc.to_le_bytes());
        h
    }

    pub fn decode(bytes: &[u8]) -> Result<Header, MetaError> {
        let bad = |why: &str| MetaError::Store(format!("raft log segment header: {why}"));
        let h = bytes.get(..HEADER_LEN).ok_or_else(|| bad("file shorter than a header"))?;
        if &h[..8] != MAGIC {
            return Err(bad("not a Shardline Raft log segment"));
        }
        if crc32c::crc32c(&h[..28]) != le32(&h[28..32]) {
            return Err(bad("checksum mismatch"));
        }
        let version = le32(&h[8..12]);
        if version != VERSION && version != VERSION_1 {
            return Err(bad(&format!(
                "format version {version} is not supported (this server reads {VERSION_1} and {VERSION})"
            )));
        }
        Ok(Header { generation: le64(&h[12..20]), seq: le64(&h[20..28]), version })
    }
}

/// Append one record of `kind` with `payload` to `out`.
pub fn encode_record(out: &mut Vec<u8>, kind: u8, payload: &[&[u8]]) {
    let len = 1 + payload.iter().map(|p| p.len()).sum::<usize>();
    let start = out.len();
    out.extend_from_slice(&(len as u32).to_le_bytes());
    out.extend_from_slice(&[0u8; 4]);
    out.push(kind);
    for p in payload {
        out.extend_from_slice(p);
    }
    let crc = crc32c::crc32c(&out[start + RECORD_HEAD..]);
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// One record found by [`scan`]: its kind and where its payload lies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub kind: u8,
    pub payload: std::ops::Range<usize>,
}

/// What follows the last valid record of a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tail {
    /// Nothing, or zeros (space preallocated and not yet written).
    Clean,
    /// Bytes that are not a valid record and none after them that is: a
    /// write cut short by a crash (never acknowledged: the log is only
    /// acknowledged after its fsync, and only the last write can be torn).
    Torn,
    /// A bad record followed by a valid one: damage in the middle, which
    /// must not be truncated away.
    Damaged,
}

/// What [`scan`] found after the header.
#[derive(Debug)]
pub struct Scan {
    pub records: Vec<Found>,
    /// Where the valid records end.
    pub valid_end: usize,
    pub tail: Tail,
}

/// Read every record of a segment's bytes (header included).
pub fn scan(bytes: &[u8]) -> Scan {
    let mut pos = HEADER_LEN.min(bytes.len());
    let mut records = Vec::new();
    while let Some((found, next)) = record_at(bytes, pos) {
        records.push(found);
        pos = next;
    }
    // A record starts with a non-zero length: none can start after the
    // last non-zero byte.
    let last_nonzero = bytes.iter().rposition(|&b| b != 0).unwrap_or(0);
    let tail = if last_nonzero < pos {
        Tail::Clean
    } else if (pos + 1..=last_nonzero).any(|p| record_at(bytes, p).is_some()) {
        Tail::Damaged
    } else {
        Tail::Torn
    };
    Scan { records, valid_end: pos, tail }
}

/// The record starting at `pos`, if it is whole, of a known kind and its
/// checksum matches; and where the next one starts.
fn record_at(bytes: &[u8], pos: usize) -> Option<(Found, usize)> {
    let head = bytes.get(pos..pos + RECORD_HEAD)?;
    let len = le32(&head[..4]) as usize;
    if len == 0 || len > MAX_BODY {
        return None;
    }
    let body = bytes.get(pos + RECORD_HEAD..pos + RECORD_HEAD + len)?;
    if !matches!(body[0], KIND_ENTRY | KIND_HARD_STATE | KIND_ENTRY_TERM) || crc32c::crc32c(body) != le32(&head[4..8]) {
        return None;
    }
    let start = pos + RECORD_HEAD;
    Some((Found { kind: body[0], payload: start + 1..start + len }, start + len))
}

fn le32(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

pub fn le64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_le_bytes(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(records: &[(&[u8], u8)]) -> Vec<u8> {
        let mut out = Header { generation: 3, seq: 7, version: VERSION }.encode().to_vec();
        for (payload, kind) in records {
            encode_record(&mut out, *kind, &[payload]);
        }
        out
    }

    #[test]
    fn header_round_trip_and_refusals() {
        let h = Header { generation: 3, seq: 7, version: VERSION };
        assert_eq!(Header::decode(&h.encode()).unwrap(), h);
        let old = Header { version: VERSION_1, ..h };
        assert_eq!(Header::decode(&old.encode()).unwrap(), old);
        let mut bad = h.encode();
        bad[13] ^= 1;
        assert!(Header::decode(&bad).unwrap_err().to_string().contains("checksum"));
        let mut future = h.encode();
        future[8..12].copy_from_slice(&3u32.to_le_bytes());
        let crc = crc32c::crc32c(&future[..28]);
        future[28..].copy_from_slice(&crc.to_le_bytes());
        assert!(Header::decode(&future).unwrap_err().to_string().contains("version 3"));
        assert!(Header::decode(b"SLRAFT").is_err());
    }

    #[test]
    fn records_read_back_in_order() {
        let seg = segment(&[(b"one", KIND_ENTRY), (b"two", KIND_HARD_STATE), (b"three", KIND_ENTRY)]);
        let s = scan(&seg);
        assert_eq!((s.valid_end, s.tail), (seg.len(), Tail::Clean));
        let payloads: Vec<&[u8]> = s.records.iter().map(|r| &seg[r.payload.clone()]).collect();
        assert_eq!(payloads, vec![&b"one"[..], b"two", b"three"]);
        assert_eq!(s.records[1].kind, KIND_HARD_STATE);
    }

    #[test]
    fn a_torn_or_garbage_tail_is_a_clean_end() {
        let whole = segment(&[(b"one", KIND_ENTRY), (b"two", KIND_ENTRY)]);
        let first_end = scan(&whole).records[0].payload.end;
        for cut in first_end + 1..whole.len() {
            let s = scan(&whole[..cut]);
            assert_eq!((s.records.len(), s.valid_end, s.tail), (1, first_end, Tail::Torn), "cut at {cut}");
        }
        let mut zeros = whole.clone();
        zeros.extend_from_slice(&[0u8; 4096]);
        let s = scan(&zeros);
        assert_eq!((s.records.len(), s.valid_end, s.tail), (2, whole.len(), Tail::Clean), "preallocated space");
        let mut garbage = whole.clone();
        garbage.extend((0..5000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8));
        garbage.extend_from_slice(&[0u8; 4096]);
        let s = scan(&garbage);
        assert_eq!((s.records.len(), s.valid_end, s.tail), (2, whole.len(), Tail::Torn));
    }

    #[test]
    fn damage_followed_by_valid_records_is_reported() {
        let mut seg = segment(&[(b"one", KIND_ENTRY), (b"two", KIND_ENTRY), (b"three", KIND_ENTRY)]);
        let second = scan(&seg).records[1].payload.clone();
        seg[second.start] ^= 0x40;
        seg.extend_from_slice(&[0u8; 4096]);
        let s = scan(&seg);
        assert_eq!(s.records.len(), 1);
        assert_eq!(s.tail, Tail::Damaged, "a bad record before a good one is not a torn tail");
    }
}
