//! The in-memory index: for each key, its newest record, and for each
//! segment, how many of its bytes are still needed. Pure bookkeeping,
//! without I/O, so that it is tested on its own.
//!
//! The newest record of a key is the one with the highest sequence number;
//! equal numbers (a record copied by compaction, or migrated twice, before a
//! crash removed the original) go to the later position. Start-up and the
//! writer feed records through the same [`Index::observe`], so the index a
//! restart rebuilds is the one the running store had.
//!
//! A tombstone is needed only while an older record of its key is still on
//! disk (else a restart would bring that record back): each key counts its
//! records on disk other than the newest (`older`), and compaction calls
//! [`Index::forget`] for each record it removes. A tombstone with nothing
//! older left is dead space; it stays in the index (it is still on disk,
//! and counts as older if the key is written again) until its own segment
//! is removed.

use std::collections::{BTreeMap, HashMap};

use shardline_types::ShardKey;

use super::format::{Kind, SEGMENT_HEADER_LEN};

/// Where a record starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Pos {
    pub(crate) seg: u64,
    pub(crate) offset: u64,
}

/// What the index keeps of one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Rec {
    pub(crate) pos: Pos,
    /// Bytes the record occupies in its segment, padding included.
    pub(crate) len: u64,
    pub(crate) kind: Kind,
    pub(crate) seq: u64,
    pub(crate) payload_len: u64,
    pub(crate) crc: u32,
    pub(crate) mtime_ns: u64,
    pub(crate) block_log2: u8,
}

impl Rec {
    fn beats(&self, other: &Rec) -> bool {
        (self.seq, self.pos) > (other.seq, other.pos)
    }
}

#[derive(Debug)]
struct KeyState {
    latest: Rec,
    /// Records of this key on disk other than `latest`.
    older: u32,
}

impl KeyState {
    /// Whether the newest record must be kept: a put, or a tombstone
    /// hiding an older record.
    fn needed(&self) -> bool {
        self.latest.kind == Kind::Put || self.older > 0
    }
}

/// Byte counts of one segment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct SegStats {
    /// Length of the segment's valid part (header included).
    pub(crate) end: u64,
    /// Bytes of the records still needed (newest puts, needed tombstones).
    pub(crate) live: u64,
}

/// What [`Index::observe`] made of a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Observed {
    /// It is now the key's newest record; `was` the previous newest.
    Newest { was: Option<Rec> },
    /// A newer record of the key exists: this one is dead on arrival.
    Stale,
}

/// Keys to records, and segments to byte counts.
#[derive(Debug, Default)]
pub(crate) struct Index {
    keys: HashMap<ShardKey, KeyState>,
    segs: BTreeMap<u64, SegStats>,
    /// Bytes of the newest puts (padding included).
    live_bytes: u64,
    shards: u64,
}

impl Index {
    /// A segment of `end` valid bytes joins (or grows to `end`).
    pub(crate) fn set_segment_end(&mut self, seg: u64, end: u64) {
        self.segs.entry(seg).or_default().end = end;
    }

    /// Forget a segment that has been removed from disk.
    pub(crate) fn remove_segment(&mut self, seg: u64) {
        self.segs.remove(&seg);
    }

    pub(crate) fn segments(&self) -> &BTreeMap<u64, SegStats> {
        &self.segs
    }

    /// Take a record into account (at start-up, in any order, or as the
    /// writer makes it durable).
    pub(crate) fn observe(&mut self, key: ShardKey, rec: Rec) -> Observed {
        let Some(st) = self.keys.get_mut(&key) else {
            let st = KeyState { latest: rec, older: 0 };
            let needed = st.needed();
            self.keys.insert(key, st);
            self.count(&rec, needed, true);
            return Observed::Newest { was: None };
        };
        let (before, was_needed) = (st.latest, st.needed());
        st.older = st.older.saturating_add(1);
        let newest = rec.beats(&st.latest);
        if newest {
            st.latest = rec;
        }
        let (after, now_needed) = (st.latest, st.needed());
        self.count(&before, was_needed, false);
        self.count(&after, now_needed, true);
        if newest {
            Observed::Newest { was: Some(before) }
        } else {
            Observed::Stale
        }
    }

    /// A record of `key` at `pos` is gone from disk. Returns false
    /// (changing nothing) if it is still needed: the caller must not have
    /// removed it.
    pub(crate) fn forget(&mut self, key: &ShardKey, pos: Pos) -> bool {
        let Some(st) = self.keys.get_mut(key) else {
            return true;
        };
        if st.latest.pos == pos {
            if st.needed() {
                return false;
            }
            // A dead tombstone's own record.
            self.keys.remove(key);
            return true;
        }
        let (latest, was_needed) = (st.latest, st.needed());
        st.older = st.older.saturating_sub(1);
        let now_needed = st.needed();
        self.count(&latest, was_needed, false);
        self.count(&latest, now_needed, true);
        true
    }

    /// The key's newest record, if it is a put.
    pub(crate) fn get(&self, key: &ShardKey) -> Option<Rec> {
        self.keys.get(key).map(|st| st.latest).filter(|r| r.kind == Kind::Put)
    }

    /// Whether `pos` holds `key`'s newest record and it must be kept (a
    /// put, or a tombstone hiding an older record).
    pub(crate) fn needs(&self, key: &ShardKey, pos: Pos) -> bool {
        self.keys.get(key).is_some_and(|st| st.latest.pos == pos && st.needed())
    }

    /// Every stored shard's key, sorted.
    pub(crate) fn keys_sorted(&self) -> Vec<ShardKey> {
        let mut keys: Vec<ShardKey> =
            self.keys.iter().filter(|(_, st)| st.latest.kind == Kind::Put).map(|(k, _)| *k).collect();
        keys.sort_unstable();
        keys
    }

    /// (bytes of stored shards, number of shards).
    pub(crate) fn totals(&self) -> (u64, u64) {
        (self.live_bytes, self.shards)
    }

    /// Segments other than `active` worth compacting: those whose needed
    /// bytes are below `ratio` of their records' bytes, emptiest first.
    pub(crate) fn victims(&self, active: u64, ratio: f64) -> Vec<u64> {
        let mut v: Vec<(f64, u64)> = self
            .segs
            .iter()
            .filter(|(id, _)| **id != active)
            .filter_map(|(id, s)| {
                let body = s.end.saturating_sub(SEGMENT_HEADER_LEN);
                let share = if body == 0 { 0.0 } else { s.live as f64 / body as f64 };
                (share < ratio).then_some((share, *id))
            })
            .collect();
        v.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        v.into_iter().map(|(_, id)| id).collect()
    }

    /// Add (`add`) or take away a newest record's bytes, if `needed`.
    fn count(&mut self, rec: &Rec, needed: bool, add: bool) {
        if !needed {
            return;
        }
        let seg = self.segs.entry(rec.pos.seg).or_default();
        if add {
            seg.live += rec.len;
        } else {
            seg.live = seg.live.saturating_sub(rec.len);
        }
        if rec.kind == Kind::Put {
            if add {
                self.live_bytes += rec.len;
                self.shards += 1;
            } else {
                self.live_bytes = self.live_bytes.saturating_sub(rec.len);
                self.shards = self.shards.saturating_sub(1);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u64) -> ShardKey {
        ShardKey { file_id: n, chunk_index: 0, version: 1, shard_index: 0 }
    }

    fn rec(kind: Kind, seg: u64, offset: u64, seq: u64) -> Rec {
        Rec {
            pos: Pos { seg, offset },
            len: if kind == Kind::Put { 1000 } else { 100 },
            kind,
            seq,
            payload_len: 0,
            crc: 0,
            mtime_ns: 0,
            block_log2: 16,
        }
    }

    #[test]
    fn the_highest_sequence_wins_in_any_order() {
        let (a, b) = (rec(Kind::Put, 1, 4096, 5), rec(Kind::Put, 2, 4096, 9));
        for order in [[a, b], [b, a]] {
            let mut ix = Index::default();
            for r in order {
                ix.observe(key(1), r);
            }
            assert_eq!(ix.get(&key(1)), Some(b));
            assert_eq!(ix.totals(), (1000, 1));
            assert_eq!(ix.segments().get(&1).map_or(0, |s| s.live), 0);
            assert_eq!(ix.segments()[&2].live, 1000);
        }
    }

    #[test]
    fn a_copy_with_the_same_sequence_wins_by_position() {
        let mut ix = Index::default();
        let orig = rec(Kind::Put, 1, 4096, 5);
        let copy = rec(Kind::Put, 3, 8192, 5);
        ix.observe(key(1), orig);
        assert_eq!(ix.observe(key(1), copy), Observed::Newest { was: Some(orig) });
        assert!(ix.needs(&key(1), copy.pos));
        assert!(!ix.needs(&key(1), orig.pos));
        // Removing the original's segment leaves the copy.
        assert!(ix.forget(&key(1), orig.pos));
        assert_eq!(ix.get(&key(1)), Some(copy));
        assert!(!ix.forget(&key(1), copy.pos), "the newest record cannot be forgotten");
    }

    #[test]
    fn a_tombstone_lives_while_an_older_record_is_on_disk() {
        let mut ix = Index::default();
        ix.observe(key(1), rec(Kind::Put, 1, 4096, 1));
        let tomb = rec(Kind::Tomb, 2, 4096, 2);
        ix.observe(key(1), tomb);
        assert_eq!(ix.get(&key(1)), None);
        assert_eq!(ix.totals(), (0, 0));
        assert_eq!(ix.segments()[&2].live, 100, "the tombstone is still needed");
        assert!(ix.needs(&key(1), tomb.pos));
        assert!(ix.forget(&key(1), Pos { seg: 1, offset: 4096 }));
        assert_eq!(ix.segments()[&2].live, 0, "nothing left to hide: the tombstone is dead");
        assert!(!ix.needs(&key(1), tomb.pos));
        assert!(ix.keys_sorted().is_empty());
        assert!(ix.forget(&key(1), tomb.pos), "a dead tombstone's segment may go");
    }

    #[test]
    fn start_up_needs_only_tombstones_that_hide_something_in_any_order() {
        let mut ix = Index::default();
        // The tombstones' segment is read first.
        ix.observe(key(1), rec(Kind::Tomb, 2, 4096, 2));
        ix.observe(key(2), rec(Kind::Tomb, 2, 8192, 3));
        ix.observe(key(1), rec(Kind::Put, 1, 4096, 1));
        assert!(ix.needs(&key(1), Pos { seg: 2, offset: 4096 }), "key 1's tombstone hides a put");
        assert!(!ix.needs(&key(2), Pos { seg: 2, offset: 8192 }), "key 2's tombstone hides nothing");
        assert_eq!(ix.segments()[&2].live, 100);
    }

    /// A dead tombstone is still on disk: if the key is written again and
    /// deleted again, the count of older records must include every record
    /// still on disk, or a later compaction drops the new tombstone while
    /// an older put remains, and a restart resurrects it.
    #[test]
    fn a_key_rewritten_after_its_tombstone_died_keeps_an_exact_count() {
        let mut ix = Index::default();
        let t1 = rec(Kind::Tomb, 1, 4096, 1); // a delete of a key with nothing stored
        ix.observe(key(1), t1);
        let p2 = rec(Kind::Put, 2, 4096, 2);
        let p3 = rec(Kind::Put, 3, 4096, 3);
        ix.observe(key(1), p2);
        ix.observe(key(1), p3);
        assert!(ix.forget(&key(1), t1.pos), "segment 1 compacted");
        let t4 = rec(Kind::Tomb, 4, 4096, 4);
        ix.observe(key(1), t4);
        assert!(ix.forget(&key(1), p3.pos), "segment 3 compacted");
        assert!(ix.needs(&key(1), t4.pos), "p2 is still on disk: the tombstone must stay");
        assert!(ix.forget(&key(1), p2.pos));
        assert!(!ix.needs(&key(1), t4.pos));
    }

    #[test]
    fn a_put_after_a_delete_revives_the_key() {
        let mut ix = Index::default();
        ix.observe(key(1), rec(Kind::Put, 1, 4096, 1));
        ix.observe(key(1), rec(Kind::Tomb, 1, 8192, 2));
        let again = rec(Kind::Put, 1, 12288, 3);
        ix.observe(key(1), again);
        assert_eq!(ix.get(&key(1)), Some(again));
        assert_eq!(ix.keys_sorted(), vec![key(1)]);
        assert_eq!(ix.segments()[&1].live, 1000);
    }

    #[test]
    fn victims_are_sealed_segments_below_the_ratio_emptiest_first() {
        let mut ix = Index::default();
        for seg in 1..=4 {
            ix.set_segment_end(seg, SEGMENT_HEADER_LEN + 4000);
        }
        for (seg, n) in [(1, 3), (2, 1), (3, 0), (4, 0)] {
            for i in 0..n {
                ix.observe(key(seg * 10 + i), rec(Kind::Put, seg, 4096 + i * 1000, seg * 10 + i));
            }
        }
        assert_eq!(ix.victims(4, 0.5), vec![3, 2]);
        assert_eq!(ix.victims(3, 0.8), vec![4, 2, 1]);
    }
}
