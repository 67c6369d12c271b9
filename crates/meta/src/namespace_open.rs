//! Open counts: a file unlinked while open stays readable by inode number
//! until its last release.
//!
//! The counts are replicated state (Open and Release go through the log), so
//! every replica agrees on when an orphan goes. Each open is held by a
//! client; a client that stops renewing its lease (it crashed, say) has all
//! its opens dropped by [`Namespace::expire_client`], so its orphans go too.

use std::collections::BTreeSet;

use shardline_types::{ErrorCode, Ino};

use super::{Inode, Kind, Namespace, OpError, OpResult, Released};

impl Namespace {
    /// Count one more open of a regular file or symlink by `client`.
    pub fn open(&mut self, ino: Ino, client: u64) -> OpResult<Inode> {
        let inode = self.get(ino)?;
        if inode.kind == Kind::Directory {
            return Err(OpError::new(ErrorCode::IsADirectory, "directories are not opened here"));
        }
        let inode = inode.clone();
        let count = self.open.entry(ino).or_default().entry(client).or_insert(0);
        *count = count.checked_add(1).ok_or_else(|| OpError::new(ErrorCode::InvalidArgument, "too many opens"))?;
        Ok(inode)
    }

    /// Count one open by `client` less; the last release of an unlinked
    /// file removes it and releases its chunks.
    pub fn release(&mut self, ino: Ino, client: u64) -> OpResult<Released> {
        self.get(ino)?;
        let not_open = || OpError::new(ErrorCode::InvalidArgument, "not open");
        let holders = self.open.get_mut(&ino).ok_or_else(not_open)?;
        let count = holders.get_mut(&client).ok_or_else(not_open)?;
        *count -= 1;
        if *count == 0 {
            holders.remove(&client);
            if holders.is_empty() {
                self.open.remove(&ino);
            }
        }
        Ok(self.remove_if_unreferenced(ino))
    }

    /// Drop every open `client` holds; what that frees.
    pub fn expire_client(&mut self, client: u64) -> Vec<Released> {
        let held: Vec<Ino> =
            self.open.iter().filter(|(_, holders)| holders.contains_key(&client)).map(|(&ino, _)| ino).collect();
        let mut freed = Vec::new();
        for ino in held {
            if let Some(holders) = self.open.get_mut(&ino) {
                holders.remove(&client);
                if holders.is_empty() {
                    self.open.remove(&ino);
                }
            }
            let r = self.remove_if_unreferenced(ino);
            if r.file_id != 0 {
                freed.push(r);
            }
        }
        freed
    }

    /// The clients holding any open.
    pub fn open_holders(&self) -> BTreeSet<u64> {
        self.open.values().flat_map(|h| h.keys().copied()).collect()
    }

    /// How many opens `ino` has, by anyone.
    pub fn open_count(&self, ino: Ino) -> u32 {
        self.open.get(&ino).map_or(0, |h| h.values().sum())
    }
}
