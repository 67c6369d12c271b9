//! The namespace: inodes and directories, as a plain deterministic value.
//!
//! Every mutation takes the time as an argument (assigned by the leader when
//! it proposed the command), so replicas applying the same log reach the
//! same state. No I/O here; the Raft layer feeds it committed commands.
//!
//! This file holds the inode table and the directory operations; further
//! `impl Namespace` blocks live beside it: `namespace_attrs.rs` (setattr,
//! truncate, layout policy), `namespace_links.rs` (hard links, symlinks,
//! special files), `namespace_xattr.rs` (extended attributes),
//! `namespace_open.rs` (open counts keeping unlinked files alive),
//! `namespace_keys.rs` (files' wrapped keys for key rotation).
//!
//! Truncation keeps the chunk that straddles the new size with its old bytes
//! past that size. Readers never return them (they stop at the size), but a
//! later extension would: the client must rewrite that chunk (zeroed past the
//! size) when it truncates to a size that is not a chunk boundary.

use std::collections::BTreeMap;

use imbl::OrdMap;
use shardline_types::{ErrorCode, Ino, Layout, ROOT_INO};

#[path = "namespace_attrs.rs"]
mod attrs;
#[path = "namespace_keys.rs"]
mod keys;
#[path = "namespace_links.rs"]
mod links;
#[path = "namespace_manifest.rs"]
mod manifest;
#[cfg(test)]
#[path = "namespace_model_tests.rs"]
mod model_tests;
#[path = "namespace_open.rs"]
mod open;
#[cfg(test)]
#[path = "namespace_ops_tests.rs"]
mod ops_tests;
#[path = "namespace_parents.rs"]
mod parents;
#[path = "namespace_pg_index.rs"]
mod pg_index;
#[path = "namespace_snapshot.rs"]
mod snapshot;
#[cfg(test)]
#[path = "namespace_tests.rs"]
pub(crate) mod tests;
#[path = "namespace_xattr.rs"]
mod xattr;

pub use attrs::{SetAttrs, MAX_FILE_SIZE};
pub use keys::MAX_KEY_PAGE;

/// Most entries one ReadDir page returns (with attributes, about 2 MB).
pub const MAX_READDIR_PAGE: usize = 10_000;
pub use links::MAX_SYMLINK_LEN;
pub use xattr::{XattrMode, MAX_XATTR_NAME_LEN, MAX_XATTR_TOTAL, MAX_XATTR_VALUE_LEN};

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
    /// Special files (`namespace_links.rs::mknod`): no data, size 0; for
    /// links, unlink, rename and attributes they behave like regular files.
    Fifo,
    Socket,
    CharDevice,
    BlockDevice,
}

impl Kind {
    /// A fifo, socket or device node.
    pub fn is_special(self) -> bool {
        matches!(self, Kind::Fifo | Kind::Socket | Kind::CharDevice | Kind::BlockDevice)
    }
}

/// A file's wrapped data key and the suite its chunks are sealed with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileKey {
    pub kek_id: String,
    pub kek_version: u32,
    pub suite: i32,
    pub wrapped: Vec<u8>,
    /// Wrap format (`WrappedKey.format`): 0 or 1, none needed; 2, the file
    /// must have a manifest (`namespace_manifest.rs`).
    pub format: u32,
}

impl FileKey {
    /// Whether the file's manifest must be kept and advanced with every
    /// change of its chunk list or size.
    pub fn manifest_required(&self) -> bool {
        self.format >= WRAP_FORMAT_MANIFEST
    }
}

/// The wrap format that makes a file need a manifest.
pub const WRAP_FORMAT_MANIFEST: u32 = 2;

/// A file's integrity manifest as kept beside its inode: opaque to the
/// service but for the sequence number it compare-and-swaps on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredManifest {
    pub format: u32,
    pub seq: u64,
    pub mac: Vec<u8>,
}

/// The committed version of one chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkRef {
    pub index: u64,
    pub version: u64,
    pub sealed_len: u32,
    pub pg: u32,
    /// The chunk's ciphertext layout (`Chunk.format`; kept, not interpreted).
    pub format: u32,
    /// The chunk's own k (`Chunk.data_shards`): 0, the file's layout's; 1,
    /// stored as m+1 whole copies (a small file). Checked at commit to be at
    /// most the file's k.
    pub data_shards: u32,
}

impl ChunkRef {
    /// The chunk's k under its file's `layout`.
    pub fn k(&self, layout: &Layout) -> u32 {
        if self.data_shards == 0 {
            layout.data_shards
        } else {
            self.data_shards
        }
    }
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
    /// A persistent map, so a copy of the inode table for a snapshot
    /// never copies a large file's chunk list.
    pub chunks: OrdMap<u64, ChunkRef>,
    /// Symlinks: the target (empty for other kinds).
    pub target: Vec<u8>,
    /// Extended attributes, by name (bytes, as on Linux).
    pub xattrs: BTreeMap<Vec<u8>, Vec<u8>>,
    /// Character and block devices: the device number (a Linux dev_t); 0 otherwise.
    pub rdev: u64,
    /// Regular files whose key needs one: the current manifest.
    pub manifest: Option<StoredManifest>,
}

/// Attributes for a new inode.
#[derive(Debug, Clone)]
pub struct NewInode {
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub key: Option<FileKey>,
    /// A new regular file's first manifest (sequence 0).
    pub manifest: Option<StoredManifest>,
}

/// Chunks that no longer belong to any file (their shards are garbage).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Released {
    pub file_id: Ino,
    pub chunks: Vec<ChunkRef>,
}

/// The longest name of a directory entry, in bytes (Linux's NAME_MAX).
pub const MAX_NAME_LEN: usize = 255;
/// Set-group-id: on a directory, new entries take its group.
pub const S_ISGID: u32 = 0o2000;

/// One page of a directory listing: (name, inode, kind) entries and whether more follow.
pub type DirPage = (Vec<(Vec<u8>, Ino, Kind)>, bool);

/// Every large table is a persistent map (`imbl::OrdMap`, a B-tree whose
/// nodes are shared between copies): `clone` is O(1), and a write after it
/// copies only the few nodes on its path. So the Ready loop's copy for a
/// snapshot costs microseconds whatever the namespace's size, and the copy
/// stays the state at its index while the loop applies on. Iteration is in
/// key order, as with `BTreeMap`: listings and snapshots are unchanged.
#[derive(Debug, Clone)]
pub struct Namespace {
    inodes: OrdMap<Ino, Inode>,
    /// Each directory's entries by name. Names are bytes (any but `/` and
    /// NUL, as on Linux), not necessarily UTF-8; ordered bytewise, which is
    /// also the order of UTF-8 strings.
    dirs: OrdMap<Ino, OrdMap<Vec<u8>, Ino>>,
    /// Each directory's parent (directories have exactly one; the root none).
    dir_parent: OrdMap<Ino, Ino>,
    /// Who has each file open, and how many times (absent: nobody). A file
    /// whose last link goes while it is open stays, with nlink 0, until the
    /// last release (or until its holders' leases run out).
    open: OrdMap<Ino, BTreeMap<u64, u32>>,
    next_ino: Ino,
    /// Every chunk by placement group (derived from `inodes`).
    pg_index: pg_index::PgIndex,
    /// The directories naming each non-directory (derived from `dirs`).
    file_parents: parents::FileParents,
}

impl Namespace {
    /// A namespace holding only the root directory, with `layout` as its policy.
    pub fn new(layout: Layout) -> Self {
        let mut ns = Namespace {
            inodes: OrdMap::new(),
            dirs: OrdMap::new(),
            dir_parent: OrdMap::new(),
            open: OrdMap::new(),
            next_ino: ROOT_INO + 1,
            pg_index: pg_index::PgIndex::default(),
            file_parents: parents::FileParents::default(),
        };
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
                chunks: OrdMap::new(),
                target: Vec::new(),
                xattrs: BTreeMap::new(),
                rdev: 0,
                manifest: None,
            },
        );
        ns.dirs.insert(ROOT_INO, OrdMap::new());
        ns
    }

    pub fn inode_count(&self) -> usize {
        self.inodes.len()
    }

    pub fn get(&self, ino: Ino) -> OpResult<&Inode> {
        self.inodes.get(&ino).ok_or_else(|| OpError::new(ErrorCode::NotFound, format!("no inode {ino}")))
    }

    fn dir(&self, ino: Ino) -> OpResult<&OrdMap<Vec<u8>, Ino>> {
        let inode = self.get(ino)?;
        if inode.kind != Kind::Directory {
            return Err(OpError::new(ErrorCode::NotADirectory, format!("inode {ino} is not a directory")));
        }
        self.dirs.get(&ino).ok_or_else(|| OpError::new(ErrorCode::Internal, "directory without entries"))
    }

    pub fn lookup(&self, parent: Ino, name: &[u8]) -> OpResult<&Inode> {
        let entries = self.dir(parent)?;
        match entries.get(name) {
            Some(ino) => self.get(*ino),
            None => Err(OpError::new(ErrorCode::NotFound, "no such entry")),
        }
    }

    /// Up to `limit` entries with names strictly after `after`, and whether
    /// more follow.
    /// At most `limit` entries after `after`, never more than
    /// [`MAX_READDIR_PAGE`] whatever a request asks.
    pub fn readdir(&self, ino: Ino, after: &[u8], limit: usize) -> OpResult<DirPage> {
        let entries = self.dir(ino)?;
        let limit = limit.clamp(1, MAX_READDIR_PAGE);
        let mut out = Vec::new();
        let range = entries.range::<_, [u8]>((std::ops::Bound::Excluded(after), std::ops::Bound::Unbounded));
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

    pub fn create(&mut self, parent: Ino, name: &[u8], attrs: NewInode, exclusive: bool, now: i64) -> OpResult<Inode> {
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
        match &attrs.key {
            None => return Err(OpError::new(ErrorCode::InvalidArgument, "a regular file needs a wrapped data key")),
            Some(k) => manifest::check_new(k, attrs.manifest.as_ref())?,
        }
        let layout = self.get(parent)?.layout;
        let ino = self.insert(parent, name, Kind::Regular, attrs, layout, now);
        Ok(self.inodes[&ino].clone())
    }

    pub fn mkdir(&mut self, parent: Ino, name: &[u8], attrs: NewInode, now: i64) -> OpResult<Inode> {
        check_name(name)?;
        if self.dir(parent)?.contains_key(name) {
            return Err(OpError::new(ErrorCode::AlreadyExists, "entry exists"));
        }
        let layout = self.get(parent)?.layout;
        let ino =
            self.insert(parent, name, Kind::Directory, NewInode { key: None, manifest: None, ..attrs }, layout, now);
        self.dirs.insert(ino, OrdMap::new());
        self.dir_parent.insert(ino, parent);
        if let Some(p) = self.inodes.get_mut(&parent) {
            p.nlink += 1;
        }
        Ok(self.inodes[&ino].clone())
    }

    /// Add an entry. In a set-group-id directory the new entry takes the
    /// directory's group, and a new directory inherits the bit (as Linux
    /// file systems do), so clients need not read the parent first.
    fn insert(&mut self, parent: Ino, name: &[u8], kind: Kind, attrs: NewInode, layout: Layout, now: i64) -> Ino {
        let (mut mode, mut gid) = (attrs.mode & 0o7777, attrs.gid);
        if let Some(p) = self.inodes.get(&parent).filter(|p| p.mode & S_ISGID != 0) {
            gid = p.gid;
            if kind == Kind::Directory {
                mode |= S_ISGID;
            }
        }
        let ino = self.next_ino;
        self.next_ino += 1;
        self.inodes.insert(
            ino,
            Inode {
                ino,
                kind,
                mode,
                uid: attrs.uid,
                gid,
                size: 0,
                nlink: if kind == Kind::Directory { 2 } else { 1 },
                atime_ns: now,
                mtime_ns: now,
                ctime_ns: now,
                layout,
                key: attrs.key,
                chunks: OrdMap::new(),
                target: Vec::new(),
                xattrs: BTreeMap::new(),
                rdev: 0,
                manifest: attrs.manifest,
            },
        );
        if let Some(entries) = self.dirs.get_mut(&parent) {
            entries.insert(name.to_vec(), ino);
        }
        if kind != Kind::Directory {
            self.file_parents.add(ino, parent);
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

    pub fn unlink(&mut self, parent: Ino, name: &[u8], now: i64) -> OpResult<Released> {
        let ino = *self.dir(parent)?.get(name).ok_or_else(|| OpError::new(ErrorCode::NotFound, "no such entry"))?;
        if self.get(ino)?.kind == Kind::Directory {
            return Err(OpError::new(ErrorCode::IsADirectory, "entry is a directory"));
        }
        if let Some(entries) = self.dirs.get_mut(&parent) {
            entries.remove(name);
        }
        self.file_parents.remove(ino, parent);
        self.touch_dir(parent, now);
        Ok(self.drop_link(ino, now))
    }

    /// Drop one link; the inode goes (and its chunks are released) when
    /// no link and no open remains.
    fn drop_link(&mut self, ino: Ino, now: i64) -> Released {
        let Some(inode) = self.inodes.get_mut(&ino) else {
            return Released::default();
        };
        inode.nlink = inode.nlink.saturating_sub(1);
        inode.ctime_ns = now;
        self.remove_if_unreferenced(ino)
    }

    /// Remove a non-directory inode with no links and no opens.
    fn remove_if_unreferenced(&mut self, ino: Ino) -> Released {
        let referenced = self.inodes.get(&ino).is_none_or(|i| i.nlink > 0) || self.open.contains_key(&ino);
        if referenced {
            return Released::default();
        }
        match self.inodes.remove(&ino) {
            Some(inode) => {
                self.pg_index.remove_all(&inode);
                Released { file_id: ino, chunks: inode.chunks.values().copied().collect() }
            }
            None => Released::default(),
        }
    }

    pub fn rmdir(&mut self, parent: Ino, name: &[u8], now: i64) -> OpResult<()> {
        let ino = *self.dir(parent)?.get(name).ok_or_else(|| OpError::new(ErrorCode::NotFound, "no such entry"))?;
        if !self.dir(ino)?.is_empty() {
            return Err(OpError::new(ErrorCode::NotEmpty, "directory not empty"));
        }
        self.dirs.remove(&ino);
        self.dir_parent.remove(&ino);
        if let Some(dir) = self.inodes.remove(&ino) {
            self.pg_index.remove_all(&dir);
        }
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
    pub fn rename(
        &mut self,
        parent: Ino,
        name: &[u8],
        new_parent: Ino,
        new_name: &[u8],
        now: i64,
    ) -> OpResult<Released> {
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
            entries.insert(new_name.to_vec(), ino);
        }
        if kind == Kind::Directory {
            self.dir_parent.insert(ino, new_parent);
        } else {
            self.file_parents.remove(ino, parent);
            self.file_parents.add(ino, new_parent);
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

    /// The parent of directory `ino` (None for the root and non-directories).
    pub fn dir_parent_of(&self, ino: Ino) -> Option<Ino> {
        self.dir_parent.get(&ino).copied()
    }

    /// The directories holding a name of the non-directory `ino`.
    pub fn file_parents_of(&self, ino: Ino) -> impl Iterator<Item = Ino> + '_ {
        self.file_parents.of(ino)
    }

    /// Whether `dir` is an ancestor of the directory `ino`.
    pub(crate) fn is_ancestor(&self, dir: Ino, ino: Ino) -> bool {
        // Directories have exactly one parent: walk up from `ino`. The walk
        // is bounded by the number of directories, as the tree has no cycles.
        let mut cur = ino;
        for _ in 0..=self.dir_parent.len() {
            let Some(&parent) = self.dir_parent.get(&cur) else {
                return false;
            };
            if parent == dir {
                return true;
            }
            cur = parent;
        }
        false
    }

    /// Chunks placed in `pg`, in (file, chunk index) order after `after`:
    /// a walk of the group's index, not of the namespace.
    pub fn chunks_in_pg(&self, pg: u32, after: (Ino, u64), limit: usize) -> (Vec<(&Inode, ChunkRef)>, bool) {
        let (page, more) = self.pg_index.page(pg, after, limit);
        let out = page
            .into_iter()
            .filter_map(|(ino, index)| {
                let inode = self.inodes.get(&ino)?;
                Some((inode, *inode.chunks.get(&index)?))
            })
            .collect();
        (out, more)
    }

    /// Whether the placement-group index matches the chunks (tests).
    #[cfg(test)]
    pub(crate) fn pg_index_is_consistent(&self) -> bool {
        self.pg_index == pg_index::PgIndex::build(self.inodes.values())
    }

    /// Whether the file-parents index matches the directory tables (tests).
    #[cfg(test)]
    pub(crate) fn file_parents_are_consistent(&self) -> bool {
        let built = parents::FileParents::build(self.dirs.iter().map(|(&d, e)| (d, e.values().copied())), |i| {
            self.inodes.get(&i).is_some_and(|n| n.kind == Kind::Directory)
        });
        self.inodes.keys().all(|&i| built.of(i).eq(self.file_parents.of(i)))
    }

    /// Whether any file has a chunk (placed data that a map change moves).
    pub fn holds_chunks(&self) -> bool {
        !self.pg_index.is_empty()
    }

    /// Shard bytes one slot of each of `pg_count` groups holds: one shard
    /// (⌈sealed length / k⌉) of every chunk placed in the group. A scan of
    /// every chunk: for operator requests and status, not the data path.
    pub fn pg_shard_bytes(&self, pg_count: u32) -> Vec<u64> {
        let mut bytes = vec![0u64; pg_count as usize];
        for inode in self.inodes.values() {
            for c in inode.chunks.values() {
                if let Some(b) = bytes.get_mut(c.pg as usize) {
                    *b += u64::from(c.sealed_len).div_ceil(u64::from(c.k(&inode.layout).max(1)));
                }
            }
        }
        bytes
    }

    /// Whether this chunk version is the one a file refers to.
    pub fn is_live(&self, file: Ino, chunk_index: u64, version: u64) -> bool {
        self.inodes.get(&file).and_then(|i| i.chunks.get(&chunk_index)).is_some_and(|c| c.version == version)
    }

    /// Switch a chunk to a newly written version; returns the replaced one.
    /// `manifest`: the file's manifest after the commit, required (with the
    /// next sequence number) when the file's key needs one.
    pub fn commit_chunk(
        &mut self,
        ino: Ino,
        chunk: ChunkRef,
        new_size: u64,
        manifest: Option<StoredManifest>,
        now: i64,
    ) -> OpResult<Released> {
        let inode =
            self.inodes.get_mut(&ino).ok_or_else(|| OpError::new(ErrorCode::NotFound, format!("no inode {ino}")))?;
        if inode.kind != Kind::Regular {
            return Err(OpError::new(ErrorCode::IsADirectory, "not a regular file"));
        }
        let chunk_size = inode.layout.chunk_size as u64;
        if chunk.index.checked_mul(chunk_size).is_none_or(|start| start >= new_size) {
            return Err(OpError::new(ErrorCode::InvalidArgument, "chunk lies beyond the new file size"));
        }
        if chunk.data_shards > inode.layout.data_shards {
            return Err(OpError::new(ErrorCode::InvalidArgument, "chunk has more data shards than its file's layout"));
        }
        manifest::check_update(inode, manifest.as_ref())?;
        if manifest.is_some() {
            inode.manifest = manifest;
        }
        let old = inode.chunks.insert(chunk.index, chunk);
        inode.size = inode.size.max(new_size);
        inode.mtime_ns = now;
        inode.ctime_ns = now;
        if let Some(o) = &old {
            self.pg_index.remove(ino, o);
        }
        self.pg_index.add(ino, &chunk);
        Ok(Released { file_id: ino, chunks: old.filter(|o| o.version != chunk.version).into_iter().collect() })
    }
}

/// A directory entry's name: any bytes but `/` and NUL (not necessarily
/// UTF-8), not empty, `.` or `..`, at most [`MAX_NAME_LEN`] bytes.
fn check_name(name: &[u8]) -> OpResult<()> {
    if name.is_empty() || name == b"." || name == b".." || name.contains(&b'/') || name.contains(&0) {
        return Err(OpError::new(ErrorCode::InvalidArgument, "invalid file name"));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(OpError::new(ErrorCode::NameTooLong, "file name too long"));
    }
    Ok(())
}
