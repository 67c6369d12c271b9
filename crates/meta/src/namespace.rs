//! The namespace: inodes and directories, as a plain deterministic value.
//!
//! Every mutation takes the time as an argument (assigned by the leader when
//! it proposed the command), so replicas applying the same log reach the
//! same state. No I/O here; the Raft layer feeds it committed commands.

use std::collections::BTreeMap;

use shardline_types::{ErrorCode, Ino, Layout, ROOT_INO};

/// An operation's failure: a stable code and a message without file names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpError {
    pub code: ErrorCode,
    pub message: String,
}

impl OpError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        OpError { code, message: message.into() }
    }
}

pub type OpResult<T> = Result<T, OpError>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Regular,
    Directory,
    Symlink,
}

/// A file's wrapped data key and the suite its chunks are sealed with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileKey {
    pub kek_id: String,
    pub kek_version: u32,
    pub suite: i32,
    pub wrapped: Vec<u8>,
}

/// The committed version of one chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkRef {
    pub index: u64,
    pub version: u64,
    pub sealed_len: u32,
    pub pg: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inode {
    pub ino: Ino,
    pub kind: Kind,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub nlink: u32,
    pub atime_ns: i64,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
    /// Files: their layout. Directories: the policy new files inherit.
    pub layout: Layout,
    pub key: Option<FileKey>,
    pub chunks: BTreeMap<u64, ChunkRef>,
}

/// Attributes for a new inode.
#[derive(Debug, Clone)]
pub struct NewInode {
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub key: Option<FileKey>,
}

/// Chunks that no longer belong to any file (their shards are garbage).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Released {
    pub file_id: Ino,
    pub chunks: Vec<ChunkRef>,
}

pub const MAX_NAME_LEN: usize = 255;

/// One page of a directory listing: (name, inode, kind) entries and whether more follow.
pub type DirPage = (Vec<(String, Ino, Kind)>, bool);

#[derive(Debug, Clone)]
pub struct Namespace {
    inodes: BTreeMap<Ino, Inode>,
    dirs: BTreeMap<Ino, BTreeMap<String, Ino>>,
    next_ino: Ino,
}

impl Namespace {
    /// A namespace holding only the root directory, with `layout` as its policy.
    pub fn new(layout: Layout) -> Self {
        let mut ns = Namespace { inodes: BTreeMap::new(), dirs: BTreeMap::new(), next_ino: ROOT_INO + 1 };
        ns.inodes.insert(
            ROOT_INO,
            Inode {
                ino: ROOT_INO,
                kind: Kind::Directory,
                mode: 0o755,
                uid: 0,
                gid: 0,
                size: 0,
                nlink: 2,
                atime_ns: 0,
                mtime_ns: 0,
                ctime_ns: 0,
                layout,
                key: None,
                chunks: BTreeMap::new(),
            },
        );
        ns.dirs.insert(ROOT_INO, BTreeMap::new());
        ns
    }

    pub fn inode_count(&self) -> usize {
        self.inodes.len()
    }

    pub fn get(&self, ino: Ino) -> OpResult<&Inode> {
        self.inodes.get(&ino).ok_or_else(|| OpError::new(ErrorCode::NotFound, format!("no inode {ino}")))
    }

    fn dir(&self, ino: Ino) -> OpResult<&BTreeMap<String, Ino>> {
        let inode = self.get(ino)?;
        if inode.kind != Kind::Directory {
            return Err(OpError::new(ErrorCode::NotADirectory, format!("inode {ino} is not a directory")));
        }
        self.dirs.get(&ino).ok_or_else(|| OpError::new(ErrorCode::Internal, "directory without entries"))
    }

    pub fn lookup(&self, parent: Ino, name: &str) -> OpResult<&Inode> {
        let entries = self.dir(parent)?;
        match entries.get(name) {
            Some(ino) => self.get(*ino),
            None => Err(OpError::new(ErrorCode::NotFound, "no such entry")),
        }
    }

    /// Up to `limit` entries with names strictly after `after`, and whether
    /// more follow.
    pub fn readdir(&self, ino: Ino, after: &str, limit: usize) -> OpResult<DirPage> {
        let entries = self.dir(ino)?;
        let limit = limit.clamp(1, 10_000);
        let mut out = Vec::new();
        let range = entries.range::<str, _>((std::ops::Bound::Excluded(after), std::ops::Bound::Unbounded));
        let mut more = false;
        for (name, child) in range {
            if out.len() == limit {
                more = true;
                break;
            }
            let kind = self.get(*child)?.kind;
            out.push((name.clone(), *child, kind));
        }
        Ok((out, more))
    }

    pub fn create(&mut self, parent: Ino, name: &str, attrs: NewInode, exclusive: bool, now: i64) -> OpResult<Inode> {
        check_name(name)?;
        if let Some(&existing) = self.dir(parent)?.get(name) {
            let inode = self.get(existing)?;
            if exclusive {
                return Err(OpError::new(ErrorCode::AlreadyExists, "entry exists"));
            }
            if inode.kind == Kind::Directory {
                return Err(OpError::new(ErrorCode::IsADirectory, "entry is a directory"));
            }
            return Ok(inode.clone());
        }
        if attrs.key.is_none() {
            return Err(OpError::new(ErrorCode::InvalidArgument, "a regular file needs a wrapped data key"));
        }
        let layout = self.get(parent)?.layout;
        let ino = self.insert(parent, name, Kind::Regular, attrs, layout, now);
        Ok(self.inodes[&ino].clone())
    }

    pub fn mkdir(&mut self, parent: Ino, name: &str, attrs: NewInode, now: i64) -> OpResult<Inode> {
        check_name(name)?;
        if self.dir(parent)?.contains_key(name) {
            return Err(OpError::new(ErrorCode::AlreadyExists, "entry exists"));
        }
        let layout = self.get(parent)?.layout;
        let ino = self.insert(parent, name, Kind::Directory, NewInode { key: None, ..attrs }, layout, now);
        self.dirs.insert(ino, BTreeMap::new());
        if let Some(p) = self.inodes.get_mut(&parent) {
            p.nlink += 1;
        }
        Ok(self.inodes[&ino].clone())
    }

    fn insert(&mut self, parent: Ino, name: &str, kind: Kind, attrs: NewInode, layout: Layout, now: i64) -> Ino {
        let ino = self.next_ino;
        self.next_ino += 1;
        self.inodes.insert(
            ino,
            Inode {
                ino,
                kind,
                mode: attrs.mode & 0o7777,
                uid: attrs.uid,
                gid: attrs.gid,
                size: 0,
                nlink: if kind == Kind::Directory { 2 } else { 1 },
                atime_ns: now,
                mtime_ns: now,
                ctime_ns: now,
                layout,
                key: attrs.key,
                chunks: BTreeMap::new(),
            },
        );
        if let Some(entries) = self.dirs.get_mut(&parent) {
            entries.insert(name.to_string(), ino);
        }
        self.touch_dir(parent, now);
        ino
    }

    fn touch_dir(&mut self, dir: Ino, now: i64) {
        if let Some(d) = self.inodes.get_mut(&dir) {
            d.mtime_ns = now;
            d.ctime_ns = now;
        }
    }

    pub fn unlink(&mut self, parent: Ino, name: &str, now: i64) -> OpResult<Released> {
        let ino = *self.dir(parent)?.get(name).ok_or_else(|| OpError::new(ErrorCode::NotFound, "no such entry"))?;
        if self.get(ino)?.kind == Kind::Directory {
            return Err(OpError::new(ErrorCode::IsADirectory, "entry is a directory"));
        }
        if let Some(entries) = self.dirs.get_mut(&parent) {
            entries.remove(name);
        }
        self.touch_dir(parent, now);
        Ok(self.drop_link(ino, now))
    }

    fn drop_link(&mut self, ino: Ino, now: i64) -> Released {
        let Some(inode) = self.inodes.get_mut(&ino) else {
            return Released::default();
        };
        inode.nlink = inode.nlink.saturating_sub(1);
        inode.ctime_ns = now;
        if inode.nlink > 0 {
            return Released::default();
        }
        let inode = self.inodes.remove(&ino).unwrap_or_else(|| unreachable!("present above"));
        Released { file_id: ino, chunks: inode.chunks.into_values().collect() }
    }

    pub fn rmdir(&mut self, parent: Ino, name: &str, now: i64) -> OpResult<()> {
        let ino = *self.dir(parent)?.get(name).ok_or_else(|| OpError::new(ErrorCode::NotFound, "no such entry"))?;
        if !self.dir(ino)?.is_empty() {
            return Err(OpError::new(ErrorCode::NotEmpty, "directory not empty"));
        }
        self.dirs.remove(&ino);
        self.inodes.remove(&ino);
        if let Some(entries) = self.dirs.get_mut(&parent) {
            entries.remove(name);
        }
        if let Some(p) = self.inodes.get_mut(&parent) {
            p.nlink = p.nlink.saturating_sub(1);
        }
        self.touch_dir(parent, now);
        Ok(())
    }

    /// Atomic rename; replaces a file, or an empty directory with a directory.
    pub fn rename(&mut self, parent: Ino, name: &str, new_parent: Ino, new_name: &str, now: i64) -> OpResult<Released> {
        check_name(new_name)?;
        let ino = *self.dir(parent)?.get(name).ok_or_else(|| OpError::new(ErrorCode::NotFound, "no such entry"))?;
        self.dir(new_parent)?;
        let kind = self.get(ino)?.kind;
        if kind == Kind::Directory && (new_parent == ino || self.is_ancestor(ino, new_parent)) {
            return Err(OpError::new(ErrorCode::InvalidArgument, "cannot move a directory into itself"));
        }
        let mut released = Released::default();
        if let Some(&target) = self.dir(new_parent)?.get(new_name) {
            if target == ino {
                return Ok(released);
            }
            let target_kind = self.get(target)?.kind;
            match (kind == Kind::Directory, target_kind == Kind::Directory) {
                (true, false) => return Err(OpError::new(ErrorCode::NotADirectory, "target is not a directory")),
                (false, true) => return Err(OpError::new(ErrorCode::IsADirectory, "target is a directory")),
                (true, true) => self.rmdir(new_parent, new_name, now)?,
                (false, false) => released = self.unlink(new_parent, new_name, now)?,
            }
        }
        if let Some(entries) = self.dirs.get_mut(&parent) {
            entries.remove(name);
        }
        if let Some(entries) = self.dirs.get_mut(&new_parent) {
            entries.insert(new_name.to_string(), ino);
        }
        if kind == Kind::Directory && parent != new_parent {
            if let Some(p) = self.inodes.get_mut(&parent) {
                p.nlink = p.nlink.saturating_sub(1);
            }
            if let Some(p) = self.inodes.get_mut(&new_parent) {
                p.nlink += 1;
            }
        }
        if let Some(i) = self.inodes.get_mut(&ino) {
            i.ctime_ns = now;
        }
        self.touch_dir(parent, now);
        self.touch_dir(new_parent, now);
        Ok(released)
    }

    /// Whether `dir` is an ancestor of `ino`.
    fn is_ancestor(&self, dir: Ino, ino: Ino) -> bool {
        // Directories have exactly one parent; walk up from `ino` by search.
        let mut cur = ino;
        for _ in 0..4096 {
            if cur == ROOT_INO {
                return false;
            }
            let Some(parent) = self.dirs.iter().find(|(_, e)| e.values().any(|&c| c == cur)).map(|(p, _)| *p) else {
                return false;
            };
            if parent == dir {
                return true;
            }
            cur = parent;
        }
        false
    }

    /// Switch a chunk to a newly written version; returns the replaced one.
    pub fn commit_chunk(&mut self, ino: Ino, chunk: ChunkRef, new_size: u64, now: i64) -> OpResult<Released> {
        let inode =
            self.inodes.get_mut(&ino).ok_or_else(|| OpError::new(ErrorCode::NotFound, format!("no inode {ino}")))?;
        if inode.kind != Kind::Regular {
            return Err(OpError::new(ErrorCode::IsADirectory, "not a regular file"));
        }
        let chunk_size = inode.layout.chunk_size as u64;
        if chunk.index.checked_mul(chunk_size).is_none_or(|start| start >= new_size) {
            return Err(OpError::new(ErrorCode::InvalidArgument, "chunk lies beyond the new file size"));
        }
        let old = inode.chunks.insert(chunk.index, chunk);
        inode.size = inode.size.max(new_size);
        inode.mtime_ns = now;
        inode.ctime_ns = now;
        Ok(Released { file_id: ino, chunks: old.filter(|o| o.version != chunk.version).into_iter().collect() })
    }
}

fn check_name(name: &str) -> OpResult<()> {
    if name.is_empty() || name == "." || name == ".." || name.contains('/') || name.contains('\0') {
        return Err(OpError::new(ErrorCode::InvalidArgument, "invalid file name"));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(OpError::new(ErrorCode::NameTooLong, "file name too long"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs() -> NewInode {
        NewInode {
            mode: 0o644,
            uid: 1,
            gid: 1,
            key: Some(FileKey { kek_id: "k".into(), kek_version: 1, suite: 1, wrapped: vec![1] }),
        }
    }

    #[test]
    fn create_lookup_unlink() {
        let mut ns = Namespace::new(Layout::default());
        let f = ns.create(ROOT_INO, "a", attrs(), true, 5).unwrap();
        assert_eq!(ns.lookup(ROOT_INO, "a").unwrap().ino, f.ino);
        assert_eq!(ns.create(ROOT_INO, "a", attrs(), true, 6).unwrap_err().code, ErrorCode::AlreadyExists);
        assert_eq!(ns.create(ROOT_INO, "a", attrs(), false, 6).unwrap().ino, f.ino);
        let c = ChunkRef { index: 0, version: 9, sealed_len: 50, pg: 3 };
        ns.commit_chunk(f.ino, c, 10, 7).unwrap();
        let r = ns.unlink(ROOT_INO, "a", 8).unwrap();
        assert_eq!(r.chunks, vec![c]);
        assert_eq!(ns.lookup(ROOT_INO, "a").unwrap_err().code, ErrorCode::NotFound);
        assert!(ns.get(f.ino).is_err());
    }

    #[test]
    fn commit_replaces_version_and_grows_size() {
        let mut ns = Namespace::new(Layout::default());
        let f = ns.create(ROOT_INO, "a", attrs(), true, 1).unwrap();
        let v1 = ChunkRef { index: 1, version: 1, sealed_len: 50, pg: 0 };
        let v2 = ChunkRef { version: 2, ..v1 };
        let cs = Layout::default().chunk_size as u64;
        assert!(ns.commit_chunk(f.ino, v1, cs + 10, 2).unwrap().chunks.is_empty());
        assert_eq!(ns.commit_chunk(f.ino, v2, cs + 5, 3).unwrap().chunks, vec![v1]);
        assert_eq!(ns.get(f.ino).unwrap().size, cs + 10);
        assert_eq!(ns.commit_chunk(f.ino, v2, cs, 3).unwrap_err().code, ErrorCode::InvalidArgument);
    }

    #[test]
    fn directories() {
        let mut ns = Namespace::new(Layout::default());
        let d = ns.mkdir(ROOT_INO, "d", attrs(), 1).unwrap();
        ns.create(d.ino, "x", attrs(), true, 1).unwrap();
        assert_eq!(ns.rmdir(ROOT_INO, "d", 2).unwrap_err().code, ErrorCode::NotEmpty);
        assert_eq!(ns.unlink(ROOT_INO, "d", 2).unwrap_err().code, ErrorCode::IsADirectory);
        assert_eq!(ns.lookup(d.ino, "x").map(|i| i.kind).unwrap(), Kind::Regular);
        let x = ns.lookup(d.ino, "x").unwrap().ino;
        assert_eq!(ns.create(x, "y", attrs(), true, 1).unwrap_err().code, ErrorCode::NotADirectory);
        ns.unlink(d.ino, "x", 3).unwrap();
        ns.rmdir(ROOT_INO, "d", 4).unwrap();
        assert_eq!(ns.get(ROOT_INO).unwrap().nlink, 2);
    }

    #[test]
    fn readdir_pages_in_name_order() {
        let mut ns = Namespace::new(Layout::default());
        for i in 0..25 {
            ns.create(ROOT_INO, &format!("f{i:02}"), attrs(), true, 1).unwrap();
        }
        let (page, more) = ns.readdir(ROOT_INO, "", 10).unwrap();
        assert!(more);
        assert_eq!(page[0].0, "f00");
        let (page, more) = ns.readdir(ROOT_INO, "f19", 10).unwrap();
        assert!(!more);
        assert_eq!(page.iter().map(|e| e.0.as_str()).collect::<Vec<_>>(), ["f20", "f21", "f22", "f23", "f24"]);
    }

    #[test]
    fn rename_replaces_and_refuses_cycles() {
        let mut ns = Namespace::new(Layout::default());
        let a = ns.create(ROOT_INO, "a", attrs(), true, 1).unwrap();
        ns.create(ROOT_INO, "b", attrs(), true, 1).unwrap();
        ns.rename(ROOT_INO, "a", ROOT_INO, "b", 2).unwrap();
        assert_eq!(ns.lookup(ROOT_INO, "b").unwrap().ino, a.ino);
        assert!(ns.lookup(ROOT_INO, "a").is_err());
        let d = ns.mkdir(ROOT_INO, "d", attrs(), 1).unwrap();
        let e = ns.mkdir(d.ino, "e", attrs(), 1).unwrap();
        assert_eq!(ns.rename(ROOT_INO, "d", e.ino, "d2", 3).unwrap_err().code, ErrorCode::InvalidArgument);
        assert_eq!(ns.rename(ROOT_INO, "b", ROOT_INO, "d", 3).unwrap_err().code, ErrorCode::IsADirectory);
    }

    #[test]
    fn bad_names_are_refused() {
        let mut ns = Namespace::new(Layout::default());
        for bad in ["", ".", "..", "a/b"] {
            assert_eq!(ns.create(ROOT_INO, bad, attrs(), true, 1).unwrap_err().code, ErrorCode::InvalidArgument);
        }
        let long = "x".repeat(256);
        assert_eq!(ns.create(ROOT_INO, &long, attrs(), true, 1).unwrap_err().code, ErrorCode::NameTooLong);
    }
}
