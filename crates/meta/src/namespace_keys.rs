//! Files' wrapped data keys for key rotation: every regular file's key in
//! pages by inode, how many files each KEK version wraps, and the
//! compare-and-set that swaps one file's wrapped key for the same DEK
//! re-wrapped under another KEK version. The metadata service only moves
//! wrapped bytes here: it never sees a KEK or a DEK.

use std::collections::BTreeMap;

use shardline_types::{ErrorCode, Ino};

use super::{FileKey, Kind, Namespace, OpError, OpResult};

/// Most files one `ListFileKeys` page returns.
pub const MAX_KEY_PAGE: usize = 10_000;

impl Namespace {
    /// Up to `limit` regular files with a key and inode number above
    /// `after`, with their keys, and whether more follow.
    pub fn file_keys(&self, after: Ino, limit: usize) -> (Vec<(Ino, &FileKey)>, bool) {
        let limit = limit.clamp(1, MAX_KEY_PAGE);
        let mut keyed = self
            .inodes
            .range(after.saturating_add(1)..)
            .filter(|(_, i)| i.kind == Kind::Regular)
            .filter_map(|(ino, i)| i.key.as_ref().map(|k| (*ino, k)));
        let page: Vec<_> = keyed.by_ref().take(limit).collect();
        let more = keyed.next().is_some();
        (page, more)
    }

    /// Files per (KEK id, KEK version).
    pub fn key_counts(&self) -> BTreeMap<(String, u32), u64> {
        let mut counts = BTreeMap::new();
        for key in self.inodes.values().filter(|i| i.kind == Kind::Regular).filter_map(|i| i.key.as_ref()) {
            *counts.entry((key.kek_id.clone(), key.kek_version)).or_insert(0) += 1;
        }
        counts
    }

    /// Replace file `ino`'s wrapped key with `new` if it is still exactly
    /// `expected`; refused (STALE_EPOCH, nothing changed) if it changed
    /// meanwhile. `new` must keep the KEK id and cipher suite (every sealed
    /// chunk is bound to them) and the wrap format (whether the file needs
    /// a manifest; the manifest itself stays as it is). Attributes and times are unchanged: the
    /// file's content and its DEK are the same.
    pub fn rewrap_key(&mut self, ino: Ino, expected: &FileKey, new: FileKey) -> OpResult<()> {
        let inode =
            self.inodes.get_mut(&ino).ok_or_else(|| OpError::new(ErrorCode::NotFound, format!("no inode {ino}")))?;
        let Some(current) = inode.key.as_mut().filter(|_| inode.kind == Kind::Regular) else {
            return Err(OpError::new(ErrorCode::InvalidArgument, format!("inode {ino} is not a file with a data key")));
        };
        if *current != *expected {
            return Err(OpError::new(
                ErrorCode::StaleEpoch,
                format!("the wrapped key of inode {ino} changed meanwhile (now version {})", current.kek_version),
            ));
        }
        if new.kek_id != current.kek_id || new.suite != current.suite || new.format != current.format {
            return Err(OpError::new(
                ErrorCode::InvalidArgument,
                "a re-wrapped key keeps the file's KEK id, cipher suite and wrap format",
            ));
        }
        if new.wrapped.is_empty() {
            return Err(OpError::new(ErrorCode::InvalidArgument, "an empty wrapped key"));
        }
        *current = new;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::namespace::NewInode;
    use shardline_types::{Layout, ROOT_INO};

    fn key(version: u32, byte: u8) -> FileKey {
        FileKey { kek_id: "k".into(), kek_version: version, suite: 1, wrapped: vec![byte; 72], format: 0 }
    }

    fn ns_with_files(n: u8) -> (Namespace, Vec<Ino>) {
        let mut ns = Namespace::new(Layout::default());
        let mut inos = Vec::new();
        for i in 0..n {
            let attrs = NewInode { manifest: None, mode: 0o644, uid: 0, gid: 0, key: Some(key(1, i)) };
            inos.push(ns.create(ROOT_INO, format!("f{i}").as_bytes(), attrs, true, 0).expect("create").ino);
            let dir = NewInode { manifest: None, mode: 0o755, uid: 0, gid: 0, key: None };
            ns.mkdir(ROOT_INO, format!("d{i}").as_bytes(), dir, 0).expect("mkdir");
        }
        (ns, inos)
    }

    #[test]
    fn pages_cover_every_keyed_file_once_in_inode_order() {
        let (ns, inos) = ns_with_files(7);
        let mut seen = Vec::new();
        let mut after = 0;
        loop {
            let (page, more) = ns.file_keys(after, 3);
            assert!(page.len() <= 3);
            seen.extend(page.iter().map(|(ino, _)| *ino));
            after = page.last().map_or(after, |(ino, _)| *ino);
            if !more {
                break;
            }
        }
        assert_eq!(seen, inos, "directories skipped, every file once");
        assert_eq!(ns.key_counts(), BTreeMap::from([(("k".to_string(), 1), 7)]));
    }

    #[test]
    fn rewrap_is_a_compare_and_set() {
        let (mut ns, inos) = ns_with_files(2);
        let before = ns.get(inos[0]).expect("get").clone();
        ns.rewrap_key(inos[0], &key(1, 0), key(2, 9)).expect("rewrap");
        let after = ns.get(inos[0]).expect("get");
        assert_eq!(after.key, Some(key(2, 9)));
        assert_eq!((after.mtime_ns, after.ctime_ns, after.size), (before.mtime_ns, before.ctime_ns, before.size));
        // The same request again: the key is no longer what it expects.
        let err = ns.rewrap_key(inos[0], &key(1, 0), key(2, 8)).expect_err("stale CAS accepted");
        assert_eq!(err.code, ErrorCode::StaleEpoch);
        assert_eq!(ns.get(inos[0]).expect("get").key, Some(key(2, 9)));
        // Another id or suite is refused; so is a directory, or no inode.
        let other_id = FileKey { kek_id: "other".into(), ..key(2, 1) };
        assert_eq!(ns.rewrap_key(inos[1], &key(1, 1), other_id).expect_err("id").code, ErrorCode::InvalidArgument);
        let other_suite = FileKey { suite: 2, ..key(2, 1) };
        assert_eq!(
            ns.rewrap_key(inos[1], &key(1, 1), other_suite).expect_err("suite").code,
            ErrorCode::InvalidArgument
        );
        assert_eq!(ns.get(inos[1]).expect("get").key, Some(key(1, 1)));
        assert_eq!(ns.rewrap_key(ROOT_INO, &key(1, 1), key(2, 1)).expect_err("dir").code, ErrorCode::InvalidArgument);
        assert_eq!(ns.rewrap_key(9999, &key(1, 1), key(2, 1)).expect_err("none").code, ErrorCode::NotFound);
        assert_eq!(ns.key_counts(), BTreeMap::from([(("k".to_string(), 1), 1), (("k".to_string(), 2), 1)]));
    }
}
