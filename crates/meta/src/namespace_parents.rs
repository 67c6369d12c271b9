//! The directories holding each non-directory inode (derived from the
//! directory tables, never stored), so that the subtree restriction of a
//! client certificate (`perm_scope.rs`) can tell by inode whether a file
//! lies under a directory: a file is inside when any of its names is.
//! Directories need no index: `Namespace::dir_parent` holds their one
//! parent.

use std::collections::BTreeMap;

use imbl::OrdMap;
use shardline_types::Ino;

/// Non-directory inode → (directory → names of it there). Persistent at
/// the top (one entry per file), so a snapshot's copy of it is O(1).
#[derive(Debug, Clone, Default)]
pub(super) struct FileParents(OrdMap<Ino, BTreeMap<Ino, u32>>);

impl FileParents {
    /// Built from every directory's entries (after a snapshot is loaded).
    pub(super) fn build<'a>(
        dirs: impl Iterator<Item = (Ino, impl Iterator<Item = Ino>)>,
        is_dir: impl Fn(Ino) -> bool + 'a,
    ) -> Self {
        let mut me = FileParents::default();
        for (dir, children) in dirs {
            for child in children {
                if !is_dir(child) {
                    me.add(child, dir);
                }
            }
        }
        me
    }

    pub(super) fn add(&mut self, ino: Ino, dir: Ino) {
        *self.0.entry(ino).or_default().entry(dir).or_insert(0) += 1;
    }

    pub(super) fn remove(&mut self, ino: Ino, dir: Ino) {
        let Some(dirs) = self.0.get_mut(&ino) else { return };
        if let Some(n) = dirs.get_mut(&dir) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                dirs.remove(&dir);
            }
        }
        if dirs.is_empty() {
            self.0.remove(&ino);
        }
    }

    /// The directories naming `ino` (none for an unlinked file).
    pub(super) fn of(&self, ino: Ino) -> impl Iterator<Item = Ino> + '_ {
        self.0.get(&ino).into_iter().flat_map(|d| d.keys().copied())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_counted_per_directory() {
        let mut p = FileParents::default();
        p.add(9, 1);
        p.add(9, 1);
        p.add(9, 2);
        p.remove(9, 1);
        assert_eq!(p.of(9).collect::<Vec<_>>(), vec![1, 2], "one name left in 1");
        p.remove(9, 1);
        p.remove(9, 2);
        assert_eq!(p.of(9).count(), 0);
        assert!(p.0.is_empty());
        let built = FileParents::build([(1u64, vec![5u64, 6].into_iter())].into_iter(), |i| i == 6);
        assert_eq!(built.of(5).collect::<Vec<_>>(), vec![1]);
        assert_eq!(built.of(6).count(), 0, "directories are not indexed");
    }
}
