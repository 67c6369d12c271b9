//! Open counts: a file unlinked while open stays readable by inode number
//! until its last release.
//!
//! The counts are replicated state (Open and Release go through the log), so
//! every replica agrees on when an orphan goes. A client that crashes never
//! releases: reclaiming its opens needs client leases, which are not here yet.

use shardline_types::{ErrorCode, Ino};

use super::{Inode, Kind, Namespace, OpError, OpResult, Released};

impl Namespace {
    /// Count one more open of a regular file or symlink.
    pub fn open(&mut self, ino: Ino) -> OpResult<Inode> {
        let inode = self.get(ino)?;
        if inode.kind == Kind::Directory {
            return Err(OpError::new(ErrorCode::IsADirectory, "directories are not opened here"));
        }
        let inode = inode.clone();
        let count = self.open.entry(ino).or_insert(0);
        *count = count.checked_add(1).ok_or_else(|| OpError::new(ErrorCode::InvalidArgument, "too many opens"))?;
        Ok(inode)
    }

    /// Count one open less; the last release of an unlinked file removes it
    /// and releases its chunks.
    pub fn release(&mut self, ino: Ino) -> OpResult<Released> {
        self.get(ino)?;
        let count = self.open.get_mut(&ino).ok_or_else(|| OpError::new(ErrorCode::InvalidArgument, "not open"))?;
        *count -= 1;
        if *count == 0 {
            self.open.remove(&ino);
        }
        Ok(self.remove_if_unreferenced(ino))
    }

    /// How many opens `ino` has.
    pub fn open_count(&self, ino: Ino) -> u32 {
        self.open.get(&ino).copied().unwrap_or(0)
    }
}
