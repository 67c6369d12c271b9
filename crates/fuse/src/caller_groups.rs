//! Supplementary groups of the process behind a kernel request. FUSE names
//! the requester's uid, gid and pid but not its groups, so they are read
//! from `/proc/<pid>/status` — which cost about as much as answering the
//! request: GNU `ls -l` by a non-root user ran at half the rate root's did
//! (two getxattr requests per entry, each reading the file once or twice).
//! A read is now kept for a second per (pid, uid, gid).
//!
//! What a second of staleness can do: a process that changes its groups
//! with setgroups(2) alone (same pid, uid and gid) is claimed with its old
//! groups for at most a second. The kernel's own checks
//! (`default_permissions`) use its live credentials first, so an open it
//! refuses is never made; the claim only feeds the metadata service's
//! second check. A uid or gid change misses the cache at once.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

/// How long a read of a process's groups is used.
const TTL: Duration = Duration::from_secs(1);
/// Processes remembered at most (expired ones are dropped first).
const MAX_PROCESSES: usize = 4096;

/// (pid, uid, gid) → when its groups were read, and what they were.
type Key = (u32, u32, u32);

#[derive(Default)]
struct GroupsCache {
    entries: HashMap<Key, (Instant, Arc<[u32]>)>,
}

impl GroupsCache {
    /// The groups of `key` if read at most [`TTL`] before `now`.
    fn fresh(&self, key: Key, now: Instant) -> Option<Arc<[u32]>> {
        let (at, groups) = self.entries.get(&key)?;
        (now.saturating_duration_since(*at) < TTL).then(|| groups.clone())
    }

    /// The groups of `key` read at most [`TTL`] before `now`, or `read()`:
    /// what [`groups_of`] does, with the clock and the reader given.
    #[cfg(test)]
    fn get(&mut self, key: Key, now: Instant, read: impl FnOnce() -> Vec<u32>) -> Arc<[u32]> {
        match self.fresh(key, now) {
            Some(groups) => groups,
            None => self.keep(key, now, read().into()),
        }
    }

    /// Remember `groups` read for `key` at `now`.
    fn keep(&mut self, key: Key, now: Instant, groups: Arc<[u32]>) -> Arc<[u32]> {
        if self.entries.len() >= MAX_PROCESSES {
            self.entries.retain(|_, (at, _)| now.saturating_duration_since(*at) < TTL);
            if self.entries.len() >= MAX_PROCESSES {
                self.entries.clear();
            }
        }
        self.entries.insert(key, (now, groups.clone()));
        groups
    }
}

static CACHE: LazyLock<Mutex<GroupsCache>> = LazyLock::new(Mutex::default);

/// Supplementary groups of process `pid` acting as `uid`/`gid` (empty if it
/// is gone), read from /proc at most a second ago. The file is read without the lock held, so other requests go on meanwhile.
pub fn groups_of(pid: u32, uid: u32, gid: u32) -> Vec<u32> {
    let (key, now) = ((pid, uid, gid), Instant::now());
    let lock = || CACHE.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(groups) = lock().fresh(key, now) {
        return groups.to_vec();
    }
    let groups: Arc<[u32]> = read_groups(pid).into();
    lock().keep(key, now, groups).to_vec()
}

/// Supplementary groups of process `pid`, from /proc (empty if gone).
fn read_groups(pid: u32) -> Vec<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Groups:"))
        .map(|g| g.split_whitespace().filter_map(|n| n.parse().ok()).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_is_used_for_a_second_per_process_and_identity() {
        let mut c = GroupsCache::default();
        let t0 = Instant::now();
        let reads = std::cell::Cell::new(0);
        let read = |g: Vec<u32>| {
            reads.set(reads.get() + 1);
            g
        };
        assert_eq!(&*c.get((7, 1000, 100), t0, || read(vec![10, 20])), &[10, 20]);
        // Within the second: not read again, even if the groups changed.
        assert_eq!(&*c.get((7, 1000, 100), t0 + Duration::from_millis(900), || read(vec![30])), &[10, 20]);
        assert_eq!(reads.get(), 1);
        // Another pid, or the same pid as another uid or gid: read.
        assert_eq!(&*c.get((8, 1000, 100), t0, || read(vec![40])), &[40]);
        assert_eq!(&*c.get((7, 1001, 100), t0, || read(vec![50])), &[50]);
        assert_eq!(&*c.get((7, 1000, 101), t0, || read(vec![60])), &[60]);
        assert_eq!(reads.get(), 4);
        // After the second: read again.
        assert_eq!(&*c.get((7, 1000, 100), t0 + TTL, || read(vec![30])), &[30]);
        assert_eq!(reads.get(), 5);
    }

    #[test]
    fn the_cache_stays_bounded() {
        let mut c = GroupsCache::default();
        let t0 = Instant::now();
        for pid in 0..(MAX_PROCESSES as u32 + 10) {
            c.get((pid, 1, 1), t0, Vec::new);
        }
        assert!(c.entries.len() <= MAX_PROCESSES);
    }

    #[test]
    fn this_process_groups_are_read_from_proc() {
        // SAFETY: getgroups with size 0 returns the count; then fills a
        // buffer of exactly that many entries.
        let own = unsafe {
            let n = libc::getgroups(0, std::ptr::null_mut());
            let mut g = vec![0 as libc::gid_t; n.max(0) as usize];
            let m = libc::getgroups(n, g.as_mut_ptr());
            g.truncate(m.max(0) as usize);
            g
        };
        let mut read = read_groups(std::process::id());
        read.sort_unstable();
        let mut own = own;
        own.sort_unstable();
        assert_eq!(read, own);
        assert!(read_groups(u32::MAX).is_empty(), "a process that is gone has none");
    }
}
