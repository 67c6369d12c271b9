//! The subtree a client certificate is confined to (the CephFS `path=`
//! model): `shardline://path/a/b` lets a certificate act only on inodes
//! under `/a/b`.
//!
//! The subtree is named by path and resolved at every check (so it follows
//! whatever `/a/b` is now, as CephFS does). An inode is inside when the
//! subtree root is it or an ancestor of it: directories walk their one
//! parent (`Namespace::dir_parent_of`), and any other inode is inside when
//! any of its names is (`Namespace::file_parents_of`). A hard link made
//! from outside therefore brings a file in, and renaming a file out of the
//! subtree takes it out at once, whatever inode numbers the client kept.
//! A restricted certificate itself can neither link nor rename across the
//! boundary, as both ends must be inside.
//!
//! To reach its subtree a client walks the path from the root: a lookup
//! in a directory on that path is allowed for the next component only,
//! and those directories' attributes may be read; nothing else outside.

use shardline_proto::v1 as pb;
use shardline_proto::v1::meta_request::Body;
use shardline_types::{ErrorCode, Ino, ROOT_INO};

use crate::namespace::{Kind, Namespace, OpError, OpResult};

/// A resolved subtree: the directories from the root down to its root.
pub struct Scope {
    chain: Vec<Ino>,
}

fn outside(ino: Ino) -> OpError {
    OpError::new(
        ErrorCode::PermissionDenied,
        format!("inode {ino} is outside the subtree this client certificate is restricted to"),
    )
}

impl Scope {
    /// Resolve `subtree` (path components) now. A subtree that does not
    /// exist, or is not a directory, allows nothing.
    pub fn resolve(ns: &Namespace, subtree: &[Vec<u8>]) -> OpResult<Scope> {
        let mut chain = vec![ROOT_INO];
        for name in subtree {
            let parent = chain[chain.len() - 1];
            let missing = || {
                OpError::new(
                    ErrorCode::PermissionDenied,
                    "the subtree this client certificate is restricted to does not exist (an operator must create it)",
                )
            };
            let inode = ns.lookup(parent, name).map_err(|_| missing())?;
            if inode.kind != Kind::Directory {
                return Err(missing());
            }
            chain.push(inode.ino);
        }
        Ok(Scope { chain })
    }

    fn root(&self) -> Ino {
        self.chain[self.chain.len() - 1]
    }

    /// Whether `ino` lies under the subtree (the subtree root included).
    pub fn contains(&self, ns: &Namespace, ino: Ino) -> bool {
        let root = self.root();
        if root == ROOT_INO || ino == root {
            return true;
        }
        match ns.get(ino).map(|i| i.kind) {
            Ok(Kind::Directory) => ns.is_ancestor(root, ino),
            Ok(_) => ns.file_parents_of(ino).any(|d| d == root || ns.is_ancestor(root, d)),
            Err(_) => false,
        }
    }

    /// The position of `ino` on the path from the root to the subtree root.
    fn on_path(&self, ino: Ino) -> Option<usize> {
        self.chain.iter().position(|&i| i == ino)
    }

    /// Refuse `body` unless every inode it names lies inside (see the module doc).
    pub fn check(&self, ns: &Namespace, body: &Body) -> OpResult<()> {
        let inside = |ino: Ino| {
            // An inode that does not exist fails with its own error later.
            if ns.get(ino).is_err() || self.contains(ns, ino) {
                Ok(())
            } else {
                Err(outside(ino))
            }
        };
        match body {
            Body::Lookup(l) => {
                if ns.get(l.parent).is_err() || self.contains(ns, l.parent) {
                    return Ok(());
                }
                let next = self.on_path(l.parent).and_then(|i| self.chain.get(i + 1));
                match (next, ns.lookup(l.parent, &l.name)) {
                    (Some(&next), Ok(found)) if found.ino == next => Ok(()),
                    _ => Err(outside(l.parent)),
                }
            }
            Body::Getattr(g) if self.on_path(g.ino).is_some() => Ok(()),
            Body::Getattr(pb::GetAttr { ino })
            | Body::Readdir(pb::ReadDir { ino, .. })
            | Body::Readlink(pb::Readlink { ino })
            | Body::GetXattr(pb::GetXattr { ino, .. })
            | Body::ListXattr(pb::ListXattr { ino })
            | Body::SetXattr(pb::SetXattr { ino, .. })
            | Body::RemoveXattr(pb::RemoveXattr { ino, .. })
            | Body::SetAttr(pb::SetAttr { ino, .. })
            | Body::Open(pb::Open { ino })
            | Body::GetChunks(pb::GetChunks { ino, .. })
            | Body::CommitChunk(pb::CommitChunk { ino, .. })
            | Body::GrantCaps(pb::GrantCaps { ino, .. })
            | Body::SetLayout(pb::SetLayout { ino, .. }) => inside(*ino),
            Body::Create(pb::Create { parent, .. })
            | Body::Mkdir(pb::Mkdir { parent, .. })
            | Body::Mknod(pb::Mknod { parent, .. })
            | Body::Symlink(pb::Symlink { parent, .. })
            | Body::Unlink(pb::Unlink { parent, .. })
            | Body::Rmdir(pb::Rmdir { parent, .. }) => inside(*parent),
            Body::Rename(r) => inside(r.parent).and_then(|()| inside(r.new_parent)),
            Body::Link(l) => inside(l.ino).and_then(|()| inside(l.new_parent)),
            // Release always works (an open may outlive a rename out);
            // statfs, placement and status name no inode; everything else
            // a client certificate may send names none either (authz.rs).
            _ => Ok(()),
        }
    }
}
