//! Statahead: when lookups keep missing the metadata cache in one
//! directory, list that directory ahead (pages with attributes, granted and
//! kept by the cache like any listing), so a process that stats many files
//! another client made (a loader checking its file list, `find`, `du`,
//! `rsync`) pays for a few pages instead of a round trip per name. Lustre's
//! statahead and the NFS client's READDIRPLUS heuristics do the same.
//!
//! Only lookups that missed and found an entry count: the lookups before
//! creates (of names not there) would earn listings that this client's own
//! creates end at once.
//!
//! The cost stays bounded whatever the access pattern (a ski-rental rule):
//! a directory is listed ahead only while the entries listed there stay
//! within [`ENTRIES_PER_MISS`] times the lookups that missed there, and an
//! entry listed costs the servers and the client a few microseconds where a
//! lookup round trip costs about a hundred. So a pattern that gains nothing
//! from the listing (random names in a huge directory) spends at most about
//! half again its lookups' cost on it, and a scan of a directory lists it
//! whole after a few dozen misses. Past [`MAX_ENTRIES_PER_DIR`] entries a
//! directory is no longer listed ahead (the cache would fill).
//!
//! Coherence is the cache's: what a listing keeps is recalled like any
//! granted answer (docs/metadata-cache.md).

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use shardline_proto::v1 as pb;
use shardline_proto::v1::meta_response::Body as RBody;

use crate::inode_api::Inodes;

/// Lookups that must miss in a directory before it is listed ahead.
const MIN_MISSES: u64 = 4;
/// Entries listed ahead per lookup that missed, at most.
const ENTRIES_PER_MISS: u64 = 16;
/// Entries listed ahead in one directory, at most.
const MAX_ENTRIES_PER_DIR: u64 = 100_000;
/// Entries asked for per page.
const PAGE: u64 = 1_000;
/// Directories tracked; past it, all counts start again.
const MAX_DIRS: usize = 4_096;

#[derive(Default)]
struct DirScan {
    misses: u64,
    listed: u64,
    /// A listing is under way (another miss there does not start one).
    running: bool,
    /// The caller may not list it: never listed ahead again.
    refused: bool,
}

/// Per directory, the lookups that missed and the entries listed ahead.
#[derive(Default)]
pub(crate) struct Statahead {
    dirs: Mutex<HashMap<u64, DirScan>>,
}

impl Statahead {
    fn lock(&self) -> MutexGuard<'_, HashMap<u64, DirScan>> {
        self.dirs.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A lookup that missed the cache in `dir` found an entry there.
    fn found(&self, dir: u64) {
        let mut dirs = self.lock();
        if dirs.len() >= MAX_DIRS && !dirs.contains_key(&dir) {
            dirs.clear();
        }
        dirs.entry(dir).or_default().misses += 1;
    }

    /// A lookup missed the cache in `dir`: how many entries to list ahead
    /// now, if any (then [`Statahead::finished`] must follow).
    fn plan(&self, dir: u64) -> Option<u64> {
        let mut dirs = self.lock();
        let s = dirs.get_mut(&dir)?;
        if s.running || s.refused || s.misses < MIN_MISSES {
            return None;
        }
        let budget = (s.misses * ENTRIES_PER_MISS).min(MAX_ENTRIES_PER_DIR).saturating_sub(s.listed);
        // Less than a useful page: wait for more misses.
        if budget < PAGE.min(MIN_MISSES * ENTRIES_PER_MISS) {
            return None;
        }
        s.running = true;
        Some(budget)
    }

    /// A listing ahead in `dir` ended, having listed `listed` entries;
    /// `refused` when the caller may not list it.
    fn finished(&self, dir: u64, listed: u64, refused: bool) {
        if let Some(s) = self.lock().get_mut(&dir) {
            s.running = false;
            s.listed += listed;
            s.refused |= refused;
        }
    }
}

impl Inodes {
    /// A lookup that missed the cache found `dir`'s entry: counted towards
    /// listing `dir` ahead.
    pub(crate) fn found_by_lookup(&self, dir: u64) {
        self.inner.statahead.found(dir);
    }

    /// A lookup of `name` in `dir` missed the cache: list `dir` ahead if
    /// statahead says so, from where the cache's listing of it stands,
    /// until `name`'s place is covered, the listing ends or the budget is
    /// spent. The caller then asks the cache again.
    pub(crate) async fn list_ahead(&self, dir: u64, name: &[u8]) {
        let Some(budget) = self.inner.statahead.plan(dir) else { return };
        let mut after = self.inner.mcache.listing_from(dir, self.inner.meta.caller_key());
        let (mut listed, mut refused) = (0u64, false);
        while listed < budget {
            let limit = (budget - listed).min(PAGE) as u32;
            let req = pb::ReadDir { ino: dir, after: after.clone(), limit, with_attrs: true };
            let page = match self.readdir_cached(req).await {
                Ok(resp) => match resp.body {
                    Some(RBody::Entries(page)) => page,
                    _ => break,
                },
                Err(e) => {
                    refused = matches!(e.code(), shardline_types::ErrorCode::PermissionDenied);
                    break;
                }
            };
            listed += page.entries.len() as u64;
            let Some(last) = page.entries.last() else { break };
            after = last.name.clone();
            if !page.more || name <= &after[..] {
                break;
            }
        }
        self.inner.statahead.finished(dir, listed, refused);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_ahead_only_after_enough_misses_and_within_the_budget() {
        let s = Statahead::default();
        assert_eq!(s.plan(7), None, "nothing found by lookups yet");
        for _ in 1..MIN_MISSES {
            s.found(7);
            assert_eq!(s.plan(7), None, "too few misses to list ahead");
        }
        s.found(7);
        let first = s.plan(7).expect("lists ahead at the threshold");
        assert_eq!(first, MIN_MISSES * ENTRIES_PER_MISS);
        assert_eq!(s.plan(7), None, "one listing at a time per directory");
        s.finished(7, first, false);
        // The budget grows with misses, less what was listed.
        let mut next = None;
        for _ in 0..10 {
            s.found(7);
            next = next.or(s.plan(7));
        }
        let listed_then = next.expect("more misses earn another listing");
        assert!(listed_then <= 14 * ENTRIES_PER_MISS - first, "{listed_then}");
        assert_eq!(s.plan(8), None, "counted per directory");
    }

    #[test]
    fn a_refused_directory_is_not_listed_again_and_big_ones_stop() {
        let s = Statahead::default();
        for _ in 0..MIN_MISSES {
            s.found(1);
        }
        let b = s.plan(1).expect("lists ahead");
        s.finished(1, 0, true);
        for _ in 0..1000 {
            s.found(1);
            assert_eq!(s.plan(1), None, "the caller may not list it");
        }
        let t = Statahead::default();
        let mut total = 0;
        for _ in 0..MAX_ENTRIES_PER_DIR {
            t.found(2);
            if let Some(b) = t.plan(2) {
                t.finished(2, b, false);
                total += b;
            }
        }
        assert!(b > 0 && total <= MAX_ENTRIES_PER_DIR, "listed {total}");
        assert_eq!(t.plan(2), None, "nothing past the cap");
    }
}
