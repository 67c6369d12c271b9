//! Directory attributes this client saw last, for the mount to answer the
//! kernel's re-read of a directory it has just changed without a round trip.
//!
//! After a create, unlink or rename, the kernel drops its cached attributes
//! of the parent directory and, to check permissions for the next name
//! operation there, asks for them again. Every namespace change returns the
//! directories it touched as they are after the change; this cache keeps
//! those (and directory attributes from reads), and [`DirAttrCache::fresh`]
//! hands them out while younger than the caller's attribute TTL: the same
//! staleness the kernel's own attribute cache allows.
//!
//! Kept consistent with this client's own changes by [`crate::inode_api`]:
//! a change forgets the inodes it names before it is sent (rename and rmdir,
//! which may destroy a directory the request does not name, forget all), and
//! records what it returns. Of two answers for one directory the one with
//! the later ctime wins, so a slow read cannot undo a newer change.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::inode_api::InodeAttr;
use crate::FileKind;

/// Entries kept at most; past it, old ones are dropped.
const MAX_ENTRIES: usize = 16 << 10;
/// Entries older than this are dropped when the cache is full.
const KEEP_FOR: Duration = Duration::from_secs(10);

#[derive(Default)]
pub struct DirAttrCache {
    map: Mutex<HashMap<u64, (InodeAttr, Instant)>>,
}

impl DirAttrCache {
    fn lock(&self) -> MutexGuard<'_, HashMap<u64, (InodeAttr, Instant)>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Remember `a` if it is a directory and not older than what is known.
    pub fn record(&self, a: &InodeAttr) {
        if a.kind != FileKind::Directory {
            return;
        }
        let mut m = self.lock();
        if m.len() >= MAX_ENTRIES {
            m.retain(|_, (_, at)| at.elapsed() < KEEP_FOR);
            if m.len() >= MAX_ENTRIES {
                m.clear();
            }
        }
        match m.get(&a.ino) {
            Some((known, _)) if known.ctime_ns > a.ctime_ns => {}
            _ => {
                m.insert(a.ino, (a.clone(), Instant::now()));
            }
        }
    }

    pub fn forget(&self, ino: u64) {
        self.lock().remove(&ino);
    }

    pub fn forget_all(&self) {
        self.lock().clear();
    }

    /// The directory's attributes if learned less than `max_age` ago.
    pub fn fresh(&self, ino: u64, max_age: Duration) -> Option<InodeAttr> {
        let found = self.lock().get(&ino).filter(|(_, at)| at.elapsed() < max_age).map(|(a, _)| a.clone());
        let result = if found.is_some() { "hit" } else { "miss" };
        shardline_metrics::client_cache_lookups_total().with_label_values(&["dir_attr", result]).inc();
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(ino: u64, ctime_ns: i64) -> InodeAttr {
        InodeAttr {
            ino,
            kind: FileKind::Directory,
            mode: 0o755,
            uid: 0,
            gid: 0,
            size: 0,
            nlink: 2,
            atime_ns: 0,
            mtime_ns: ctime_ns,
            ctime_ns,
            layout: Default::default(),
            encrypted: false,
            rdev: 0,
        }
    }

    #[test]
    fn keeps_the_newest_directory_attributes_until_they_age() {
        let c = DirAttrCache::default();
        c.record(&dir(5, 10));
        c.record(&dir(5, 7)); // a slower, older answer
        assert_eq!(c.fresh(5, Duration::from_secs(5)).map(|a| a.ctime_ns), Some(10));
        c.record(&dir(5, 12));
        assert_eq!(c.fresh(5, Duration::from_secs(5)).map(|a| a.ctime_ns), Some(12));
        assert!(c.fresh(5, Duration::ZERO).is_none(), "an entry older than the TTL is not handed out");
        c.forget(5);
        assert!(c.fresh(5, Duration::from_secs(5)).is_none());
    }

    #[test]
    fn ignores_files_and_forgets_everything_on_request() {
        let c = DirAttrCache::default();
        c.record(&InodeAttr { kind: FileKind::File, ..dir(6, 1) });
        assert!(c.fresh(6, Duration::from_secs(5)).is_none());
        c.record(&dir(7, 1));
        c.record(&dir(8, 1));
        c.forget_all();
        assert!(c.fresh(7, Duration::from_secs(5)).is_none() && c.fresh(8, Duration::from_secs(5)).is_none());
    }
}
