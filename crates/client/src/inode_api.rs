//! Namespace operations by inode number, for the FUSE mount.
//!
//! [`Client::inodes`] gives an [`Inodes`] handle (owned, cheap to clone, no
//! lifetimes) whose calls map one to one onto metadata requests. Chunks a
//! call releases (unlink, rename over a file, truncate, last release of an
//! unlinked file) have their shards deleted in the background.
//!
//! Reading and writing by inode is [`crate::file_handle`]. Opens registered
//! with the metadata service ([`Inodes::open`]/[`Inodes::release`]) are held
//! under the client's lease: a mount holding any renews it, and the leader
//! releases the opens of a client silent for the lease time, so a crashed
//! client's unlinked files are freed.

use std::sync::Arc;

use shardline_proto::v1 as pb;
use shardline_proto::v1::meta_request::Body;
use shardline_proto::v1::meta_response::Body as RBody;
use shardline_types::{ErrorCode, Layout};

use shardline_crypto::WrapFormat;
use shardline_rpc::MetaCallError;

use crate::client::{attr_of, unexpected, Inner};
use crate::dir_cache::DirAttrCache;
use crate::file_ctx::FileCtx;
use crate::manifest::{self, Change};
use crate::{Client, ClientError, DirEntry, FileKind};

/// Every attribute of an inode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InodeAttr {
    pub ino: u64,
    pub kind: FileKind,
    /// Permission bits (0o7777); the kind gives the file type.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// Bytes; for a symlink, the length of its target.
    pub size: u64,
    pub nlink: u32,
    pub atime_ns: i64,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
    /// Files: their layout. Directories: the policy new entries inherit.
    pub layout: Layout,
    /// Whether the file has a wrapped data key.
    pub encrypted: bool,
    /// Character and block devices: the device number (a Linux dev_t); 0 otherwise.
    pub rdev: u64,
}

impl InodeAttr {
    pub(crate) fn from_wire(a: &pb::Attr) -> Self {
        let l = a.layout.unwrap_or_default();
        InodeAttr {
            ino: a.ino,
            kind: FileKind::from_wire(a.kind),
            mode: a.mode,
            uid: a.uid,
            gid: a.gid,
            size: a.size,
            nlink: a.nlink,
            atime_ns: a.atime_ns,
            mtime_ns: a.mtime_ns,
            ctime_ns: a.ctime_ns,
            layout: Layout { chunk_size: l.chunk_size, data_shards: l.data_shards, parity_shards: l.parity_shards },
            encrypted: a.key.is_some(),
            rdev: a.rdev,
        }
    }
}

/// A time to set: a given instant, or the metadata leader's clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetTime {
    Now,
    /// Nanoseconds since the Unix epoch.
    At(i64),
}

/// Which attributes `setattr` changes (`None`: left as it is).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SetAttrRequest {
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    /// Truncate or extend a regular file. A shrink drops the chunks wholly
    /// past the new size; the chunk straddling it keeps its old bytes beyond
    /// the size, which readers do not return (see the module notes in the
    /// metadata service: extending again needs that chunk rewritten).
    pub size: Option<u64>,
    pub atime: Option<SetTime>,
    pub mtime: Option<SetTime>,
}

impl SetAttrRequest {
    fn to_wire(&self, ino: u64) -> pb::SetAttr {
        let at = |t: Option<SetTime>| match t {
            Some(SetTime::At(ns)) => Some(ns),
            _ => None,
        };
        pb::SetAttr {
            ino,
            mode: self.mode,
            uid: self.uid,
            gid: self.gid,
            size: self.size,
            atime_ns: at(self.atime),
            mtime_ns: at(self.mtime),
            atime_now: self.atime == Some(SetTime::Now),
            mtime_now: self.mtime == Some(SetTime::Now),
            manifest: None,
        }
    }
}

/// What `setxattr` requires of an existing attribute.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum XattrMode {
    /// Create or replace.
    #[default]
    Any,
    /// Fail with AlreadyExists when it exists (XATTR_CREATE).
    Create,
    /// Fail with NotFound when it is missing (XATTR_REPLACE).
    Replace,
}

impl XattrMode {
    fn to_wire(self) -> pb::XattrMode {
        match self {
            XattrMode::Any => pb::XattrMode::Any,
            XattrMode::Create => pb::XattrMode::Create,
            XattrMode::Replace => pb::XattrMode::Replace,
        }
    }
}

/// File-system usage (bytes are usable bytes under the root layout).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FsStats {
    pub total_bytes: u64,
    /// Free usable bytes, from the data servers' latest reports.
    pub free_bytes: u64,
    pub raw_capacity_bytes: u64,
    /// Inodes in use.
    pub files: u64,
    /// Inodes that may still be created (statfs's f_files is files + this).
    pub files_free: u64,
    pub name_max: u32,
    pub block_size: u32,
}

impl FsStats {
    fn from_wire(s: &pb::FsStats) -> Self {
        FsStats {
            total_bytes: s.total_bytes,
            free_bytes: s.free_bytes,
            raw_capacity_bytes: s.raw_capacity_bytes,
            files: s.files,
            files_free: s.files_free,
            name_max: s.name_max,
            block_size: s.block_size,
        }
    }
}

/// A regular file to create: where, its permission bits and owner, and
/// whether an existing entry is an error (O_EXCL). Owned (no lifetime).
#[derive(Debug, Clone)]
pub struct NewFile {
    pub parent: u64,
    /// The name's bytes (any but `/` and NUL; not necessarily UTF-8).
    pub name: Vec<u8>,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub exclusive: bool,
}

impl NewFile {
    /// `parent/name`, exclusive, mode 0644, owned by uid and gid 0.
    pub fn new(parent: u64, name: impl AsRef<[u8]>) -> Self {
        NewFile { parent, name: name.as_ref().to_vec(), mode: 0o644, uid: 0, gid: 0, exclusive: true }
    }
}

/// One page of a directory.
#[derive(Debug, Clone, Default)]
pub struct DirPage {
    pub entries: Vec<DirEntry>,
    /// Whether entries follow the last one (ask again with it as `after`).
    pub more: bool,
}

/// Before a change is sent: forget the cached directories it may change.
fn forget_touched(dirs: &DirAttrCache, body: &Body) {
    match body {
        Body::Lookup(_)
        | Body::Getattr(_)
        | Body::Readdir(_)
        | Body::GetChunks(_)
        | Body::Readlink(_)
        | Body::GetXattr(_)
        | Body::ListXattr(_)
        | Body::Statfs(_)
        | Body::Open(_)
        | Body::Release(_)
        | Body::CommitChunk(_) => {}
        Body::Create(c) => dirs.forget(c.parent),
        Body::Mkdir(c) => dirs.forget(c.parent),
        Body::Mknod(c) => dirs.forget(c.parent),
        Body::Symlink(c) => dirs.forget(c.parent),
        Body::Unlink(c) => dirs.forget(c.parent),
        Body::Link(c) => {
            dirs.forget(c.ino);
            dirs.forget(c.new_parent);
        }
        Body::SetAttr(c) => dirs.forget(c.ino),
        Body::SetXattr(c) => dirs.forget(c.ino),
        Body::RemoveXattr(c) => dirs.forget(c.ino),
        Body::SetLayout(c) => dirs.forget(c.ino),
        // Rename and rmdir may destroy a directory the request does not
        // name; anything else is not the mount's business: forget all.
        _ => dirs.forget_all(),
    }
}

/// The attributes a response carries as its answer, if any.
fn returned_attr(resp: &pb::MetaResponse) -> Option<&pb::Attr> {
    match resp.body.as_ref() {
        Some(RBody::Attr(a)) => Some(a),
        Some(RBody::AttrReleased(r)) => r.attr.as_ref(),
        Some(RBody::Chunks(c)) => c.attr.as_ref(),
        _ => None,
    }
}

/// Chunks a response released, if any.
fn take_released(resp: &mut pb::MetaResponse) -> Option<pb::Released> {
    match resp.body.as_mut() {
        Some(RBody::Released(r)) => Some(std::mem::take(r)),
        Some(RBody::AttrReleased(r)) => r.released.take(),
        _ => None,
    }
}

/// Namespace operations by inode. Obtain with [`Client::inodes`].
///
/// Names are bytes (`impl AsRef<[u8]>`: `&[u8]`, `&str`, `Vec<u8>`...), as
/// on Linux: any but `/` and NUL, UTF-8 or not; so are xattr names.
#[derive(Clone)]
pub struct Inodes {
    pub(crate) inner: Arc<Inner>,
}

impl Client {
    /// The inode-level namespace API (for the FUSE mount).
    pub fn inodes(&self) -> Inodes {
        Inodes { inner: self.inner().clone() }
    }
}

impl Inodes {
    async fn call(&self, body: Body) -> Result<pb::MetaResponse, ClientError> {
        let resp = self.send(body).await?;
        Ok(self.received(resp))
    }

    /// Send `body` (forgetting the cached directories it may change; a
    /// change also updates the metadata cache, `inode_cached.rs`).
    async fn send(&self, body: Body) -> Result<pb::MetaResponse, MetaCallError> {
        forget_touched(&self.inner.dirs, &body);
        if !crate::inode_cached::is_change(&body) {
            return self.inner.meta.call(body).await;
        }
        self.send_change(body).await
    }

    /// What a successful answer teaches: released chunks go, directories
    /// it carries are remembered.
    pub(crate) fn received(&self, mut resp: pb::MetaResponse) -> pb::MetaResponse {
        if let Some(released) = take_released(&mut resp) {
            self.inner.release(released);
        }
        for d in resp.dirs.iter().chain(returned_attr(&resp)) {
            self.inner.dirs.record(&InodeAttr::from_wire(d));
        }
        resp
    }

    /// A directory's attributes if this client learned them less than
    /// `max_age` ago (see [`crate::dir_cache`]).
    pub fn recent_dir_attr(&self, ino: u64, max_age: std::time::Duration) -> Option<InodeAttr> {
        self.inner.dirs.fresh(ino, max_age)
    }

    pub(crate) async fn attr(&self, body: Body) -> Result<InodeAttr, ClientError> {
        Ok(InodeAttr::from_wire(&attr_of(self.call(body).await?)?))
    }

    pub async fn lookup(&self, parent: u64, name: impl AsRef<[u8]>) -> Result<InodeAttr, ClientError> {
        Ok(self.lookup_covered(parent, name.as_ref()).await?.0)
    }

    pub async fn getattr(&self, ino: u64) -> Result<InodeAttr, ClientError> {
        Ok(self.getattr_covered(ino).await?.0)
    }

    /// Change attributes; ctime becomes the leader's time. A size change
    /// of a file with a manifest reads and verifies the file first (its
    /// chunk list is what the next manifest covers).
    pub async fn setattr(&self, ino: u64, req: &SetAttrRequest) -> Result<InodeAttr, ClientError> {
        self.setattr_in(ino, req, None).await
    }

    /// [`Inodes::setattr`] through an open file's context (its manifest
    /// state saves reading the chunk list again).
    pub(crate) async fn setattr_in(
        &self,
        ino: u64,
        req: &SetAttrRequest,
        ctx: Option<&FileCtx>,
    ) -> Result<InodeAttr, ClientError> {
        let resp = match req.size {
            None => self.call(Body::SetAttr(req.to_wire(ino))).await?,
            Some(size) => {
                let opened;
                let ctx = match ctx {
                    Some(c) => Some(c),
                    None => {
                        let (attr, chunks) = crate::chunk_list::get_chunks(&self.inner, ino).await?;
                        let needs_manifest = attr.key.as_ref().is_some_and(|k| {
                            WrapFormat::from_wire(k.format).map_or(true, WrapFormat::manifest_required)
                        });
                        if FileKind::from_wire(attr.kind) == FileKind::File && needs_manifest {
                            opened = FileCtx::open(&self.inner, &attr, &chunks, None)?;
                            Some(&opened)
                        } else {
                            // No manifest to keep (not a file with data, or
                            // a key from before manifests): the service answers.
                            None
                        }
                    }
                };
                let send = |manifest| self.send(Body::SetAttr(pb::SetAttr { manifest, ..req.to_wire(ino) }));
                let sent = match ctx {
                    Some(ctx) => manifest::change(&self.inner, ctx, Change::Resize { size }, send).await??,
                    None => send(None).await?,
                };
                self.received(sent)
            }
        };
        match resp.body {
            Some(RBody::AttrReleased(pb::AttrReleased { attr: Some(a), .. })) => Ok(InodeAttr::from_wire(&a)),
            _ => Err(unexpected()),
        }
    }

    /// A page of `ino`'s entries after the name `after` (up to `limit`, 0
    /// for the server's default), in byte order of their names; with
    /// `with_attrs`, each with its attributes.
    pub async fn readdir(
        &self,
        ino: u64,
        after: impl AsRef<[u8]>,
        limit: u32,
        with_attrs: bool,
    ) -> Result<DirPage, ClientError> {
        let req = pb::ReadDir { ino, after: after.as_ref().to_vec(), limit, with_attrs };
        let resp = self.readdir_cached(req).await?;
        let Some(RBody::Entries(page)) = resp.body else {
            return Err(unexpected());
        };
        Ok(DirPage {
            entries: page
                .entries
                .into_iter()
                .map(|e| DirEntry {
                    attr: e.attr.as_ref().map(InodeAttr::from_wire),
                    name: e.name,
                    ino: e.ino,
                    kind: FileKind::from_wire(e.kind),
                })
                .collect(),
            more: page.more,
        })
    }

    pub async fn mkdir(
        &self,
        parent: u64,
        name: impl AsRef<[u8]>,
        mode: u32,
        uid: u32,
        gid: u32,
    ) -> Result<InodeAttr, ClientError> {
        self.attr(Body::Mkdir(pb::Mkdir { parent, name: name.as_ref().to_vec(), mode, uid, gid })).await
    }

    /// Create a regular file with a fresh wrapped data key. Not exclusive and
    /// already there: the existing file's attributes (its key is kept).
    pub async fn create(&self, f: NewFile) -> Result<InodeAttr, ClientError> {
        Ok(InodeAttr::from_wire(&self.create_wire(f, 0).await?.0))
    }

    /// [`Inodes::create`], with the attributes as the wire has them (the
    /// wrapped key and layout included). With `first_version` (not 0), and
    /// if the file was made here, also the put capability for chunk 0 at
    /// that version.
    pub(crate) async fn create_wire(
        &self,
        f: NewFile,
        first_version: u64,
    ) -> Result<(pb::Attr, Option<pb::ShardCap>), ClientError> {
        let (_dek, key, manifest) = self.inner.new_file_key();
        let NewFile { parent, name, mode, uid, gid, exclusive } = f;
        let create = pb::Create { parent, name, mode, uid, gid, key: Some(key), exclusive, manifest, first_version };
        let mut resp = self.call(Body::Create(create)).await?;
        let first_put = resp.first_put.take();
        Ok((attr_of(resp)?, first_put))
    }

    pub async fn unlink(&self, parent: u64, name: impl AsRef<[u8]>) -> Result<(), ClientError> {
        self.call(Body::Unlink(pb::Unlink { parent, name: name.as_ref().to_vec() })).await.map(drop)
    }

    pub async fn rmdir(&self, parent: u64, name: impl AsRef<[u8]>) -> Result<(), ClientError> {
        self.call(Body::Rmdir(pb::Rmdir { parent, name: name.as_ref().to_vec() })).await.map(drop)
    }

    /// Atomically move `parent/name` to `new_parent/new_name`, replacing a
    /// file or an empty directory there.
    pub async fn rename(
        &self,
        parent: u64,
        name: impl AsRef<[u8]>,
        new_parent: u64,
        new_name: impl AsRef<[u8]>,
    ) -> Result<(), ClientError> {
        let (name, new_name) = (name.as_ref().to_vec(), new_name.as_ref().to_vec());
        let body = Body::Rename(pb::Rename { parent, name, new_parent, new_name });
        self.call(body).await.map(drop)
    }

    /// A hard link to a file or symlink (directories: PermissionDenied).
    pub async fn link(&self, ino: u64, new_parent: u64, new_name: impl AsRef<[u8]>) -> Result<InodeAttr, ClientError> {
        self.attr(Body::Link(pb::Link { ino, new_parent, new_name: new_name.as_ref().to_vec() })).await
    }

    pub async fn symlink(
        &self,
        parent: u64,
        name: impl AsRef<[u8]>,
        target: &[u8],
        uid: u32,
        gid: u32,
    ) -> Result<InodeAttr, ClientError> {
        let body = Body::Symlink(pb::Symlink {
            parent,
            name: name.as_ref().to_vec(),
            target: target.to_vec(),
            mode: 0o777,
            uid,
            gid,
        });
        self.attr(body).await
    }

    /// Create a special file: `kind` is a fifo, socket or device (other
    /// kinds are InvalidArgument); `rdev` (a Linux dev_t) is kept for devices.
    #[allow(clippy::too_many_arguments)]
    pub async fn mknod(
        &self,
        parent: u64,
        name: impl AsRef<[u8]>,
        kind: FileKind,
        mode: u32,
        uid: u32,
        gid: u32,
        rdev: u64,
    ) -> Result<InodeAttr, ClientError> {
        let kind = match kind {
            FileKind::Fifo => pb::FileKind::Fifo,
            FileKind::Socket => pb::FileKind::Socket,
            FileKind::CharDevice => pb::FileKind::CharDevice,
            FileKind::BlockDevice => pb::FileKind::BlockDevice,
            // Refused by the metadata service.
            FileKind::File => pb::FileKind::Regular,
            FileKind::Directory => pb::FileKind::Directory,
            FileKind::Symlink => pb::FileKind::Symlink,
        };
        let name = name.as_ref().to_vec();
        let body = Body::Mknod(pb::Mknod { parent, name, kind: kind as i32, mode, uid, gid, rdev });
        self.attr(body).await
    }

    pub async fn readlink(&self, ino: u64) -> Result<Vec<u8>, ClientError> {
        match self.call(Body::Readlink(pb::Readlink { ino })).await?.body {
            Some(RBody::LinkTarget(t)) => Ok(t.target),
            _ => Err(unexpected()),
        }
    }

    pub async fn setxattr(
        &self,
        ino: u64,
        name: impl AsRef<[u8]>,
        value: &[u8],
        mode: XattrMode,
    ) -> Result<(), ClientError> {
        let body = Body::SetXattr(pb::SetXattr {
            ino,
            name: name.as_ref().to_vec(),
            value: value.to_vec(),
            mode: mode.to_wire() as i32,
        });
        self.call(body).await.map(drop)
    }

    /// A missing attribute is NotFound (ENODATA for the mount).
    pub async fn getxattr(&self, ino: u64, name: impl AsRef<[u8]>) -> Result<Vec<u8>, ClientError> {
        // A name the coherent cache knows is absent costs no round trip.
        if self.known_without_xattrs(ino) {
            let message = "no such attribute".to_string();
            return Err(MetaCallError::Service { code: ErrorCode::NotFound, message }.into());
        }
        if let Some(names) = self.xattr_names_cached(ino).await {
            if !names.iter().any(|n| n.as_slice() == name.as_ref()) {
                let message = "no such attribute".to_string();
                return Err(MetaCallError::Service { code: ErrorCode::NotFound, message }.into());
            }
        }
        match self.call(Body::GetXattr(pb::GetXattr { ino, name: name.as_ref().to_vec() })).await?.body {
            Some(RBody::XattrValue(v)) => Ok(v.value),
            _ => Err(unexpected()),
        }
    }

    /// Attribute names (bytes), in byte order.
    pub async fn listxattr(&self, ino: u64) -> Result<Vec<Vec<u8>>, ClientError> {
        if self.known_without_xattrs(ino) {
            return Ok(Vec::new());
        }
        self.listxattr_cached(ino).await
    }

    pub async fn removexattr(&self, ino: u64, name: impl AsRef<[u8]>) -> Result<(), ClientError> {
        self.call(Body::RemoveXattr(pb::RemoveXattr { ino, name: name.as_ref().to_vec() })).await.map(drop)
    }

    pub async fn statfs(&self) -> Result<FsStats, ClientError> {
        match self.call(Body::Statfs(pb::Statfs {})).await?.body {
            Some(RBody::FsStats(s)) => Ok(FsStats::from_wire(&s)),
            _ => Err(unexpected()),
        }
    }

    /// Count an open of a file: if it is unlinked while open it stays
    /// readable by inode until the matching [`Inodes::release`].
    pub async fn open(&self, ino: u64) -> Result<InodeAttr, ClientError> {
        self.attr(Body::Open(pb::Open { ino })).await
    }

    pub async fn release(&self, ino: u64) -> Result<(), ClientError> {
        self.call(Body::Release(pb::Release { ino })).await.map(drop)
    }

    /// Set a directory's layout policy for entries created in it from now on.
    pub async fn set_layout(&self, ino: u64, layout: Layout) -> Result<InodeAttr, ClientError> {
        let layout = pb::Layout {
            chunk_size: layout.chunk_size,
            data_shards: layout.data_shards,
            parity_shards: layout.parity_shards,
        };
        self.attr(Body::SetLayout(pb::SetLayout { ino, layout: Some(layout) })).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attr_from_wire_keeps_every_field() {
        let wire = pb::Attr {
            manifest: None,
            ino: 42,
            kind: pb::FileKind::Symlink as i32,
            mode: 0o777,
            uid: 3,
            gid: 4,
            size: 9,
            nlink: 2,
            atime_ns: 5,
            mtime_ns: 6,
            ctime_ns: 7,
            layout: Some(pb::Layout { chunk_size: 8192, data_shards: 3, parity_shards: 1 }),
            key: None,
            rdev: 0,
            no_xattrs: true,
        };
        let a = InodeAttr::from_wire(&wire);
        assert_eq!(
            a,
            InodeAttr {
                ino: 42,
                kind: FileKind::Symlink,
                mode: 0o777,
                uid: 3,
                gid: 4,
                size: 9,
                nlink: 2,
                atime_ns: 5,
                mtime_ns: 6,
                ctime_ns: 7,
                layout: Layout { chunk_size: 8192, data_shards: 3, parity_shards: 1 },
                encrypted: false,
                rdev: 0,
            }
        );
        let dev = pb::Attr { kind: pb::FileKind::BlockDevice as i32, rdev: 0x0803, ..wire };
        let d = InodeAttr::from_wire(&dev);
        assert_eq!((d.kind, d.rdev), (FileKind::BlockDevice, 0x0803));
        for (k, want) in [
            (pb::FileKind::Fifo, FileKind::Fifo),
            (pb::FileKind::Socket, FileKind::Socket),
            (pb::FileKind::CharDevice, FileKind::CharDevice),
            (pb::FileKind::Regular, FileKind::File),
            (pb::FileKind::Directory, FileKind::Directory),
        ] {
            assert_eq!(FileKind::from_wire(k as i32), want);
        }
    }

    #[test]
    fn setattr_request_maps_now_and_unset_fields() {
        let req = SetAttrRequest {
            size: Some(10),
            atime: Some(SetTime::Now),
            mtime: Some(SetTime::At(77)),
            ..Default::default()
        };
        let w = req.to_wire(5);
        assert_eq!((w.ino, w.size, w.mode, w.uid, w.gid), (5, Some(10), None, None, None));
        assert_eq!((w.atime_ns, w.atime_now, w.mtime_ns, w.mtime_now), (None, true, Some(77), false));
        let none = SetAttrRequest::default().to_wire(1);
        assert_eq!(none, pb::SetAttr { ino: 1, ..Default::default() });
        assert_eq!(XattrMode::Replace.to_wire(), pb::XattrMode::Replace);
        assert_eq!(XattrMode::default().to_wire(), pb::XattrMode::Any);
    }

    #[test]
    fn released_chunks_are_taken_from_either_response() {
        let chunk = pb::Chunk { index: 1, version: 2, sealed_len: 3, pg: 4, format: 2, cap: None, data_shards: 0 };
        let released = pb::Released { chunks: vec![chunk], file_id: 9, attr: None };
        let mut plain = pb::MetaResponse { body: Some(RBody::Released(released.clone())), ..Default::default() };
        assert_eq!(take_released(&mut plain), Some(released.clone()));
        let mut with_attr = pb::MetaResponse {
            body: Some(RBody::AttrReleased(pb::AttrReleased {
                attr: Some(pb::Attr { ino: 9, ..Default::default() }),
                released: Some(released.clone()),
            })),
            ..Default::default()
        };
        assert_eq!(take_released(&mut with_attr), Some(released));
        // The attributes are still there for the caller.
        assert!(matches!(with_attr.body, Some(RBody::AttrReleased(pb::AttrReleased { attr: Some(_), .. }))));
        let mut empty = pb::MetaResponse { body: Some(RBody::Empty(pb::Empty {})), ..Default::default() };
        assert_eq!(take_released(&mut empty), None);
    }
}
