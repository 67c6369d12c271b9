//! The in-memory side of the Raft store: what raft-rs reads through its
//! `Storage` trait. `RaftStore` (redb) writes durably first, then updates
//! this cache, so the cache never holds anything that is not on disk.
//!
//! Unlike raft-rs's `MemStorage`, the log start is tracked apart from the
//! latest snapshot (so the log can be kept a little longer than the snapshot
//! for followers that are only slightly behind), and `snapshot()` returns the
//! real state-machine snapshot.

use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use raft::prelude::{ConfState, Entry, HardState, Snapshot};
use raft::{GetEntriesContext, RaftState, Storage, StorageError};

use crate::MetaError;

#[derive(Default)]
pub struct Core {
    pub hard_state: HardState,
    pub conf_state: ConfState,
    /// The latest snapshot (empty data and index 0 when there is none).
    pub snapshot: Snapshot,
    /// (index, term) of the entry just before `entries[0]`.
    pub offset: (u64, u64),
    pub entries: Vec<Entry>,
}

impl Core {
    pub fn first_index(&self) -> u64 {
        self.offset.0 + 1
    }

    pub fn last_index(&self) -> u64 {
        self.offset.0 + self.entries.len() as u64
    }

    fn term_of(&self, idx: u64) -> Result<u64, StorageError> {
        if idx == self.offset.0 {
            return Ok(self.offset.1);
        }
        let meta = self.snapshot.get_metadata();
        if idx == meta.index && meta.index > 0 {
            return Ok(meta.term);
        }
        if idx < self.offset.0 {
            return Err(StorageError::Compacted);
        }
        if idx > self.last_index() {
            return Err(StorageError::Unavailable);
        }
        Ok(self.entries[(idx - self.first_index()) as usize].term)
    }

    /// Append `ents`, replacing any conflicting suffix.
    pub fn append(&mut self, ents: &[Entry]) -> Result<(), MetaError> {
        let Some(first) = ents.first() else { return Ok(()) };
        if first.index < self.first_index() || first.index > self.last_index() + 1 {
            return Err(MetaError::Store(format!(
                "append at {} outside the log [{}, {}]",
                first.index,
                self.first_index(),
                self.last_index() + 1
            )));
        }
        self.entries.truncate((first.index - self.first_index()) as usize);
        self.entries.extend_from_slice(ents);
        Ok(())
    }

    /// Drop every entry up to and including `to` (which must be in the log).
    pub fn compact(&mut self, to: u64) -> Result<(), MetaError> {
        if to <= self.offset.0 {
            return Ok(());
        }
        let term = self.term_of(to).map_err(|e| MetaError::Store(format!("compact to {to}: {e}")))?;
        self.entries.drain(..(to - self.offset.0) as usize);
        self.offset = (to, term);
        Ok(())
    }

    /// Replace the whole log with a snapshot received from the leader.
    pub fn install_snapshot(&mut self, snap: Snapshot) {
        let meta = snap.get_metadata();
        self.offset = (meta.index, meta.term);
        self.entries.clear();
        self.conf_state = meta.get_conf_state().clone();
        self.hard_state.commit = self.hard_state.commit.max(meta.index);
        self.hard_state.term = self.hard_state.term.max(meta.term);
        self.snapshot = snap;
    }
}

/// Shared handle on the cache; raft-rs holds one clone, `RaftStore` another.
#[derive(Clone, Default)]
pub struct LogCache(Arc<RwLock<Core>>);

impl LogCache {
    pub fn rl(&self) -> RwLockReadGuard<'_, Core> {
        self.0.read().unwrap_or_else(|e| e.into_inner())
    }

    pub fn wl(&self) -> RwLockWriteGuard<'_, Core> {
        self.0.write().unwrap_or_else(|e| e.into_inner())
    }
}

impl Storage for LogCache {
    fn initial_state(&self) -> raft::Result<RaftState> {
        let core = self.rl();
        Ok(RaftState { hard_state: core.hard_state.clone(), conf_state: core.conf_state.clone() })
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        _context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        let core = self.rl();
        if low < core.first_index() {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        if high > core.last_index() + 1 || low > high {
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        let first = core.first_index();
        let mut ents = core.entries[(low - first) as usize..(high - first) as usize].to_vec();
        raft::util::limit_size(&mut ents, max_size.into());
        Ok(ents)
    }

    fn term(&self, idx: u64) -> raft::Result<u64> {
        self.rl().term_of(idx).map_err(raft::Error::Store)
    }

    fn first_index(&self) -> raft::Result<u64> {
        Ok(self.rl().first_index())
    }

    fn last_index(&self) -> raft::Result<u64> {
        Ok(self.rl().last_index())
    }

    fn snapshot(&self, request_index: u64, _to: u64) -> raft::Result<Snapshot> {
        let core = self.rl();
        if core.snapshot.get_metadata().index < request_index.max(1) {
            return Err(raft::Error::Store(StorageError::SnapshotTemporarilyUnavailable));
        }
        Ok(core.snapshot.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[allow(clippy::field_reassign_with_default)]
    fn entry(index: u64, term: u64) -> Entry {
        let mut e = Entry::default();
        e.index = index;
        e.term = term;
        e
    }

    #[test]
    fn append_compact_and_terms() {
        let cache = LogCache::default();
        let mut core = cache.wl();
        core.append(&[entry(1, 1), entry(2, 1), entry(3, 2)]).unwrap();
        core.append(&[entry(3, 3), entry(4, 3)]).unwrap();
        assert_eq!(core.last_index(), 4);
        core.compact(2).unwrap();
        drop(core);
        assert_eq!(cache.first_index().unwrap(), 3);
        assert_eq!(cache.term(2).unwrap(), 1, "term before the first entry is kept");
        assert!(matches!(cache.term(1), Err(raft::Error::Store(StorageError::Compacted))));
        assert_eq!(cache.term(4).unwrap(), 3);
        assert!(cache.entries(2, 4, None, GetEntriesContext::empty(false)).is_err());
        assert_eq!(cache.entries(3, 5, None, GetEntriesContext::empty(false)).unwrap().len(), 2);
        assert!(cache.wl().append(&[entry(2, 9)]).is_err(), "cannot overwrite compacted entries");
        assert!(cache.wl().append(&[entry(9, 9)]).is_err(), "no gaps");
        assert!(cache.snapshot(0, 2).is_err(), "no snapshot yet");
    }
}
