//! Chunks by placement group, kept beside the inodes. Rebuild and scrub page
//! through a group's chunks (`ListPgChunks`); with this index a page costs
//! its own size instead of a scan of every chunk in the namespace.
//!
//! Derived state: not in snapshots, rebuilt from the inodes on load. Each
//! group's set is persistent (`imbl::OrdSet`), so copying the namespace for
//! a snapshot copies one pointer per group, not every chunk.

use std::collections::BTreeMap;
use std::ops::Bound;

use imbl::OrdSet;

use shardline_types::Ino;

use super::{ChunkRef, Inode};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct PgIndex {
    by_pg: BTreeMap<u32, OrdSet<(Ino, u64)>>,
}

impl PgIndex {
    /// The index of every chunk of `inodes`.
    pub(crate) fn build<'a>(inodes: impl Iterator<Item = &'a Inode>) -> PgIndex {
        let mut index = PgIndex::default();
        for inode in inodes {
            index.add_all(inode);
        }
        index
    }

    pub(crate) fn add(&mut self, ino: Ino, c: &ChunkRef) {
        self.by_pg.entry(c.pg).or_default().insert((ino, c.index));
    }

    pub(crate) fn remove(&mut self, ino: Ino, c: &ChunkRef) {
        if let Some(set) = self.by_pg.get_mut(&c.pg) {
            set.remove(&(ino, c.index));
            if set.is_empty() {
                self.by_pg.remove(&c.pg);
            }
        }
    }

    pub(crate) fn add_all(&mut self, inode: &Inode) {
        for c in inode.chunks.values() {
            self.add(inode.ino, c);
        }
    }

    pub(crate) fn remove_all(&mut self, inode: &Inode) {
        for c in inode.chunks.values() {
            self.remove(inode.ino, c);
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.by_pg.is_empty()
    }

    /// Up to `limit` (file, chunk index) pairs of `pg` after `after`, in
    /// order, and whether more follow.
    pub(crate) fn page(&self, pg: u32, after: (Ino, u64), limit: usize) -> (Vec<(Ino, u64)>, bool) {
        let Some(set) = self.by_pg.get(&pg) else { return (Vec::new(), false) };
        let mut it = set.range((Bound::Excluded(after), Bound::Unbounded));
        let page: Vec<(Ino, u64)> = it.by_ref().take(limit).copied().collect();
        (page, it.next().is_some())
    }
}
