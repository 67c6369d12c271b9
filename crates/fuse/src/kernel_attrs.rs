//! What the kernel was last told of each file's attributes, so an open can
//! tell whether the kernel's cached attributes already match the server's.
//!
//! Close-to-open: an open fetches the file's attributes fresh and, when they
//! may differ from what the kernel caches, drops the kernel's cached copy
//! (`notify_inval_inode`); the next `fstat` then asks the metadata service
//! again. When every reply this mount sent the kernel for a file since its
//! last drop carried one (mtime, ctime, size), and the fresh attributes
//! equal it, the kernel holds exactly that (or nothing), so the drop — and
//! the round trip it causes — is skipped. Every reply carrying attributes
//! goes through [`crate::ShardlineFs::attr_of`], which records it here.
//!
//! Why "every reply": the kernel may keep an earlier reply and discard a
//! later one (it drops replies to requests that started before another
//! change of the inode's attributes), so one file answered with two stamps
//! is [`Seen::Mixed`] until the next drop. A drop is recorded before it is
//! sent ([`KernelAttrs::forget`]): a reply recorded in between is one whose
//! request started before the drop, which the kernel discards.
//!
//! Bounded: past [`MAX_ENTRIES`] files no new one is recorded (absent never
//! matches, so those opens drop the kernel's copy as before); an absent
//! entry is only re-recorded while nothing was ever left out, since the
//! kernel may hold attributes of a file left out.

use std::sync::{Mutex, MutexGuard};

use foldhash::HashMap;

/// Files recorded at most.
const MAX_ENTRIES: usize = 256 << 10;

/// (mtime ns, ctime ns, size) as replied to the kernel.
pub type Stamp = (i64, i64, u64);

enum Seen {
    /// Every reply since the last drop carried this.
    Stamp(Stamp),
    /// Replies differed: the kernel may hold any of them.
    Mixed,
}

#[derive(Default)]
struct Record {
    map: HashMap<u64, Seen>,
    /// Some file was left out for lack of room.
    overflowed: bool,
}

#[derive(Default)]
pub struct KernelAttrs {
    record: Mutex<Record>,
}

impl KernelAttrs {
    fn lock(&self) -> MutexGuard<'_, Record> {
        self.record.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The kernel is being sent `stamp` for `ino`.
    pub fn replied(&self, ino: u64, stamp: Stamp) {
        let mut r = self.lock();
        if let Some(seen) = r.map.get_mut(&ino) {
            if !matches!(seen, Seen::Stamp(s) if *s == stamp) {
                *seen = Seen::Mixed;
            }
        } else if r.overflowed || r.map.len() >= MAX_ENTRIES {
            r.overflowed = true;
        } else {
            r.map.insert(ino, Seen::Stamp(stamp));
        }
    }

    /// Whether every reply the kernel may hold for `ino` carried `stamp`.
    pub fn matches(&self, ino: u64, stamp: Stamp) -> bool {
        matches!(self.lock().map.get(&ino), Some(Seen::Stamp(s)) if *s == stamp)
    }

    /// The size every reply the kernel may hold for `ino` carried.
    pub fn told_size(&self, ino: u64) -> Option<u64> {
        match self.lock().map.get(&ino) {
            Some(Seen::Stamp((_, _, size))) => Some(*size),
            _ => None,
        }
    }

    /// The kernel's cached attributes of `ino` are about to be dropped.
    pub fn forget(&self, ino: u64) {
        let mut r = self.lock();
        if r.overflowed {
            // Left absent, it would never be recorded again: say so.
            r.map.insert(ino, Seen::Mixed);
        } else {
            r.map.remove(&ino);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_answered_with_one_stamp_matches_it_and_nothing_else() {
        let k = KernelAttrs::default();
        assert!(!k.matches(7, (1, 1, 10)), "nothing replied yet");
        k.replied(7, (1, 1, 10));
        k.replied(7, (1, 1, 10));
        assert!(k.matches(7, (1, 1, 10)));
        assert!(!k.matches(7, (1, 2, 10)), "a ctime change (chmod elsewhere) does not match");
        assert!(!k.matches(7, (1, 1, 11)));
        assert_eq!(k.told_size(7), Some(10));
        k.replied(7, (1, 1, 11));
        assert_eq!(k.told_size(7), None, "told two sizes");
    }

    #[test]
    fn two_different_replies_match_nothing_until_the_kernel_copy_is_dropped() {
        let k = KernelAttrs::default();
        k.replied(7, (1, 1, 10));
        k.replied(7, (2, 2, 20));
        assert!(!k.matches(7, (2, 2, 20)), "the kernel may have kept the first");
        assert!(!k.matches(7, (1, 1, 10)));
        k.forget(7);
        assert!(!k.matches(7, (2, 2, 20)), "dropped: nothing held");
        k.replied(7, (2, 2, 20));
        assert!(k.matches(7, (2, 2, 20)), "learned again after the drop");
    }

    #[test]
    fn files_left_out_when_full_never_match_and_nothing_is_relearned() {
        let k = KernelAttrs::default();
        for ino in 0..MAX_ENTRIES as u64 {
            k.replied(ino, (1, 1, 1));
        }
        k.replied(u64::MAX, (1, 1, 1));
        assert!(!k.matches(u64::MAX, (1, 1, 1)), "left out");
        assert!(k.matches(0, (1, 1, 1)), "recorded before the record filled");
        k.forget(0);
        k.replied(0, (1, 1, 1));
        assert!(!k.matches(0, (1, 1, 1)), "after an overflow a dropped file is not relearned");
    }
}
