//! Snapshot messages bigger than one frame travel in parts.
//!
//! The sender cuts the encoded `MsgSnapshot` into parts of at most
//! `part_bytes` ([`parts`]) and sends them in order, each in the payload of
//! a `RaftBatch` frame with a [`pb::SnapshotPart`] saying where it belongs.
//! The receiver ([`Reassembly`]) appends them per sending peer and hands
//! the whole message to Raft once the last part is in. A part out of order
//! or from another transfer ends the transfer with an error, so the sender
//! reports the snapshot undelivered and Raft sends it again later; a part
//! at offset 0 starts a new transfer and drops any unfinished one.
//!
//! Bounded: one transfer per peer, at most [`MAX_TRANSFERS`] at once, at
//! most [`MAX_SNAPSHOT_BYTES`] announced by one and [`MAX_BUFFERED_BYTES`]
//! announced by all together, and a transfer with no part for
//! [`PART_TIMEOUT`] is dropped, so senders that never finish cannot hold
//! memory.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use shardline_proto::v1 as pb;

/// Default part size: well under the frame's payload limit.
pub const DEFAULT_PART_BYTES: usize = 16 << 20;
/// The largest snapshot message a receiver accepts.
pub const MAX_SNAPSHOT_BYTES: u64 = 16 << 30;
/// Transfers reassembled at once (one per sending peer).
pub const MAX_TRANSFERS: usize = 4;
/// Bytes all unfinished transfers together may announce.
pub const MAX_BUFFERED_BYTES: u64 = MAX_SNAPSHOT_BYTES;
/// A transfer with no new part for this long is dropped.
pub const PART_TIMEOUT: Duration = Duration::from_secs(120);

/// The parts of `msg` (an encoded snapshot message) for transfer `transfer`.
pub fn parts(transfer: u64, msg: Bytes, part_bytes: usize) -> Vec<(pb::SnapshotPart, Bytes)> {
    let total = msg.len() as u64;
    let step = part_bytes.max(1);
    (0..msg.len().max(1))
        .step_by(step)
        .map(|from| {
            let to = (from + step).min(msg.len());
            (pb::SnapshotPart { transfer, offset: from as u64, total }, msg.slice(from..to))
        })
        .collect()
}

struct Partial {
    transfer: u64,
    total: u64,
    bytes: Vec<u8>,
    /// When the last part arrived.
    touched: Instant,
}

/// Unfinished incoming snapshot transfers, one per sending peer.
#[derive(Default)]
pub struct Reassembly {
    by_peer: Mutex<HashMap<u64, Partial>>,
}

impl Reassembly {
    /// Add one part from peer `from`: the whole message once it is complete.
    pub fn add(&self, from: u64, part: &pb::SnapshotPart, data: &[u8]) -> Result<Option<Vec<u8>>, String> {
        self.add_at(Instant::now(), from, part, data)
    }

    /// [`add`](Self::add) at time `now` (tests move the clock).
    pub fn add_at(
        &self,
        now: Instant,
        from: u64,
        part: &pb::SnapshotPart,
        data: &[u8],
    ) -> Result<Option<Vec<u8>>, String> {
        let mut map = self.by_peer.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, p| now.saturating_duration_since(p.touched) < PART_TIMEOUT);
        if from == 0 {
            return Err("snapshot part from peer 0".into());
        }
        if part.offset == 0 {
            map.remove(&from);
            if part.total > MAX_SNAPSHOT_BYTES {
                return Err(format!("snapshot of {} bytes is over the {MAX_SNAPSHOT_BYTES}-byte limit", part.total));
            }
            if map.len() >= MAX_TRANSFERS {
                return Err(format!("{MAX_TRANSFERS} snapshot transfers are already under way"));
            }
            let announced: u64 = map.values().map(|p| p.total).sum();
            if announced.saturating_add(part.total) > MAX_BUFFERED_BYTES {
                return Err("unfinished snapshot transfers would hold too much memory".into());
            }
            // Grown as parts arrive, so a bogus total reserves nothing.
            map.insert(from, Partial { transfer: part.transfer, total: part.total, bytes: Vec::new(), touched: now });
        }
        let Some(p) = map.get_mut(&from) else {
            return Err("snapshot part without its transfer's first part".into());
        };
        let fits = p.transfer == part.transfer
            && p.total == part.total
            && part.offset == p.bytes.len() as u64
            && part.offset.saturating_add(data.len() as u64) <= p.total;
        if !fits {
            map.remove(&from);
            return Err("snapshot part out of order or from another transfer".into());
        }
        p.bytes.extend_from_slice(data);
        p.touched = now;
        if p.bytes.len() as u64 == p.total {
            return Ok(map.remove(&from).map(|p| p.bytes));
        }
        Ok(None)
    }

    /// Transfers under way (tests).
    pub fn transfers(&self) -> usize {
        self.by_peer.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(n: usize) -> Bytes {
        Bytes::from((0..n).map(|i| (i * 7 % 251) as u8).collect::<Vec<_>>())
    }

    #[test]
    fn parts_reassemble_to_the_message() {
        for (len, part) in [(10_000usize, 4096usize), (4096, 4096), (1, 4096), (0, 4096), (9, 1)] {
            let msg = message(len);
            let ps = parts(3, msg.clone(), part);
            assert_eq!(ps.len(), len.div_ceil(part).max(1), "len {len} part {part}");
            assert!(ps.iter().all(|(_, b)| b.len() <= part));
            let r = Reassembly::default();
            let mut whole = None;
            for (i, (p, b)) in ps.iter().enumerate() {
                let got = r.add(1, p, b).expect("in order");
                assert_eq!(got.is_some(), i == ps.len() - 1, "complete only after the last part");
                whole = whole.or(got);
            }
            assert_eq!(whole.as_deref(), Some(&msg[..]));
        }
    }

    #[test]
    fn a_part_out_of_order_or_from_another_transfer_ends_the_transfer() {
        let ps = parts(1, message(10_000), 4096);
        let r = Reassembly::default();
        r.add(7, &ps[0].0, &ps[0].1).expect("first");
        assert!(r.add(7, &ps[2].0, &ps[2].1).is_err(), "skipped a part");
        assert!(r.add(7, &ps[1].0, &ps[1].1).is_err(), "the transfer is gone after an error");

        let other = parts(2, message(10_000), 4096);
        r.add(7, &ps[0].0, &ps[0].1).expect("first");
        assert!(r.add(7, &other[1].0, &other[1].1).is_err(), "another transfer's part");

        // A new first part replaces an unfinished transfer; peers are apart.
        r.add(7, &ps[0].0, &ps[0].1).expect("first");
        r.add(8, &other[0].0, &other[0].1).expect("another peer");
        r.add(7, &other[0].0, &other[0].1).expect("restart");
        r.add(7, &other[1].0, &other[1].1).expect("second");
        let done = r.add(7, &other[2].0, &other[2].1).expect("third");
        assert_eq!(done.as_deref(), Some(&message(10_000)[..]));
    }

    #[test]
    fn transfers_are_bounded_in_number_and_memory_and_expire() {
        let r = Reassembly::default();
        let t0 = Instant::now();
        let first = |total| pb::SnapshotPart { transfer: 1, offset: 0, total };
        for peer in 1..=MAX_TRANSFERS as u64 {
            assert_eq!(r.add_at(t0, peer, &first(10), b"x"), Ok(None), "peer {peer}");
        }
        let why = r.add_at(t0, 99, &first(10), b"x").expect_err("a transfer over the limit");
        assert!(why.contains("already under way"), "{why}");
        assert!(r.add_at(t0, 0, &first(10), b"x").is_err(), "peer 0");
        // A peer restarting its own transfer does not need a free slot.
        assert_eq!(r.add_at(t0, 1, &first(10), b"y"), Ok(None));
        // Silent transfers expire and free their slots.
        let later = t0 + PART_TIMEOUT + Duration::from_secs(1);
        assert_eq!(r.add_at(later, 99, &first(10), b"x"), Ok(None));
        assert_eq!(r.transfers(), 1);
        // What all transfers announce together is bounded.
        let r = Reassembly::default();
        assert_eq!(r.add_at(t0, 1, &first(MAX_BUFFERED_BYTES / 2 + 1), b"x"), Ok(None));
        let why = r.add_at(t0, 2, &first(MAX_BUFFERED_BYTES / 2 + 1), b"x").expect_err("too much memory");
        assert!(why.contains("too much memory"), "{why}");
        // An offset that would overflow is refused, not a panic.
        let huge = pb::SnapshotPart { transfer: 1, offset: u64::MAX, total: MAX_BUFFERED_BYTES / 2 + 1 };
        assert!(r.add_at(t0, 1, &huge, b"xy").is_err());
    }

    #[test]
    fn an_oversized_snapshot_is_refused_up_front() {
        let r = Reassembly::default();
        let part = pb::SnapshotPart { transfer: 1, offset: 0, total: MAX_SNAPSHOT_BYTES + 1 };
        assert!(r.add(1, &part, b"x").is_err());
    }
}
