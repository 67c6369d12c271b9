//! The `fuser::Filesystem` implementation: each kernel request runs its
//! async operation (`ops_names.rs`, `ops_files.rs`) to completion on the
//! client's tokio runtime and replies. No lock is held across an await.

use std::ffi::OsStr;
use std::future::Future;
use std::path::Path;
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, SystemTime};

use fuser::{
    AccessFlags, BsdFileFlags, CopyFileRangeFlags, Errno, FileHandle as Fh, Filesystem, FopenFlags, Generation,
    INodeNo, InitFlags, IoctlFlags, KernelConfig, LockOwner, Notifier, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate,
    ReplyData, ReplyDirectory, ReplyDirectoryPlus, ReplyEmpty, ReplyEntry, ReplyIoctl, ReplyOpen, ReplyStatfs,
    ReplyWrite, ReplyXattr, Request, TimeOrNow, WriteFlags,
};
use shardline_client::inode_api::{InodeAttr, Inodes};
use shardline_client::{Client, ClientError};
use shardline_types::ROOT_INO;
use tokio::runtime::Handle;

use crate::attr::{dot_attr, Caller, BLOCK_SIZE};
use crate::copy_range::CopyRange;
use crate::error::errno;
use crate::kernel_attrs::KernelAttrs;
use crate::open_files::{DirItem, Listing, OpenFiles};
use crate::recall::KernelNames;
use shardline_client::meta_cache::Coverage;
use std::os::unix::ffi::OsStrExt;

/// How long the kernel may cache what the mount tells it.
#[derive(Debug, Clone, Copy)]
pub struct FsOptions {
    /// Attributes (size, mode, times) of an inode.
    pub attr_ttl: Duration,
    /// A name → inode mapping.
    pub entry_ttl: Duration,
}

impl Default for FsOptions {
    fn default() -> Self {
        FsOptions { attr_ttl: Duration::from_secs(1), entry_ttl: Duration::from_secs(1) }
    }
}

/// An errno to reply with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fail(pub Errno);

impl From<ClientError> for Fail {
    fn from(e: ClientError) -> Self {
        tracing::debug!(error = %e, "request failed");
        Fail(errno(&e))
    }
}

impl From<Errno> for Fail {
    fn from(e: Errno) -> Self {
        Fail(e)
    }
}

pub type OpResult<T> = Result<T, Fail>;

/// A Shardline cluster as a FUSE file system.
pub struct ShardlineFs {
    pub(crate) client: Client,
    pub(crate) inodes: Inodes,
    rt: Handle,
    pub(crate) opts: FsOptions,
    pub(crate) files: Arc<OpenFiles>,
    /// Set once the session exists: lets an open drop the kernel's cached
    /// attributes of a file another client changed (close-to-open).
    pub(crate) notifier: Arc<OnceLock<Notifier>>,
    /// Files' attributes as last replied to the kernel.
    pub(crate) kernel_attrs: KernelAttrs,
    /// Names told to the kernel under a grant (dropped on recall, `recall.rs`).
    names: Arc<KernelNames>,
    /// Whether recalls reach the kernel (else it caches nothing covered).
    hooked: bool,
}

impl ShardlineFs {
    /// `rt` runs the client's I/O; requests block on it from fuser's threads.
    pub fn new(client: Client, rt: Handle, opts: FsOptions) -> Self {
        let files = Arc::new(OpenFiles::default());
        rt.spawn(keep_lease(client.inodes(), Arc::downgrade(&files)));
        let (notifier, names) = (Arc::new(OnceLock::new()), Arc::new(KernelNames::default()));
        let hooked = match crate::recall::hook(notifier.clone(), names.clone()) {
            Ok(hook) => {
                client.set_recall_hook(hook);
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, "no recall thread: the kernel caches nothing from the metadata cache");
                false
            }
        };
        ShardlineFs {
            inodes: client.inodes(),
            client,
            rt,
            opts,
            files,
            notifier,
            kernel_attrs: KernelAttrs::default(),
            names,
            hooked,
        }
    }

    /// How long the kernel may keep attributes under `cov`.
    fn attr_ttl(&self, cov: Coverage) -> Duration {
        match cov {
            Coverage::Until(_) if !self.hooked => Duration::ZERO,
            cov => cov.ttl(self.opts.attr_ttl),
        }
    }

    /// How long the kernel may keep an entry under `cov` (from
    /// [`ShardlineFs::entry_covered`]).
    fn entry_ttl(&self, cov: Coverage) -> Duration {
        match cov {
            Coverage::Until(_) if !self.hooked => Duration::ZERO,
            cov => cov.ttl(self.opts.entry_ttl),
        }
    }

    /// The coverage of `parent/name` → `ino` the kernel may be told: the
    /// name is first noted for recalls, then the cache checked again, so a
    /// recall either finds the name or has already dropped the entry.
    pub(crate) fn entry_covered(&self, cov: Coverage, parent: u64, name: &[u8], ino: u64) -> Coverage {
        match cov {
            Coverage::Until(_) if self.hooked && self.names.told(parent, name) => {
                match self.inodes.entry_cached(parent, name, ino) {
                    Some((_, until)) => Coverage::Until(until),
                    None => Coverage::Uncovered,
                }
            }
            Coverage::Until(_) => Coverage::Uncovered,
            cov => cov,
        }
    }

    /// Listed entries as the coherent cache holds them now (their
    /// attributes may be newer than the page's), and how long the kernel
    /// may keep each; None: not covered. The names are noted for recalls
    /// first. One lock of each map for the whole batch.
    fn covered_items(&self, dir: u64, items: &[DirItem]) -> Vec<Option<(InodeAttr, Duration)>> {
        let mut covered: Vec<Option<(InodeAttr, Duration)>> = items.iter().map(|_| None).collect();
        if !self.hooked {
            return covered;
        }
        let listed: Vec<usize> = (0..items.len()).filter(|&i| items[i].attr.is_some()).collect();
        let told = self.names.told_all(dir, listed.iter().map(|&i| items[i].name.as_bytes()));
        let asked: Vec<usize> = listed.into_iter().zip(told).filter_map(|(i, t)| t.then_some(i)).collect();
        let query: Vec<(&[u8], u64)> = asked.iter().map(|&i| (items[i].name.as_bytes(), items[i].ino)).collect();
        let now = std::time::Instant::now();
        for (i, found) in asked.into_iter().zip(self.inodes.entries_cached(dir, &query)) {
            covered[i] = found.map(|(a, until)| (a, until.saturating_duration_since(now)));
        }
        covered
    }

    /// Add `listing`'s items from `offset` to a READDIRPLUS reply until it
    /// is full, looking them up in the cache a batch at a time.
    fn fill_plus(&self, dir: u64, listing: &Listing, offset: u64, reply: &mut ReplyDirectoryPlus) -> OpResult<()> {
        /// Items looked up in the cache at once (a reply holds about 1,000).
        const BATCH: usize = 128;
        let cache_off = self.inodes.cache_off();
        let loaded = listing.lock();
        let mut start = offset as usize;
        while start < loaded.items.len() {
            let batch = &loaded.items[start..(start + BATCH).min(loaded.items.len())];
            let mut covered = if cache_off { Vec::new() } else { self.covered_items(dir, batch) };
            for (j, item) in batch.iter().enumerate() {
                // The attributes are as old as their page: cached only for
                // what is left of the TTL, or, with the coherent cache on,
                // while the cache holds the entry.
                let page_attr = || item.attr.as_ref().map_or_else(|| dot_attr(item.ino), |a| self.attr_of(a));
                let (attr, ttl) = if cache_off {
                    (page_attr(), self.opts.attr_ttl.min(self.opts.entry_ttl).saturating_sub(item.taken.elapsed()))
                } else {
                    match covered.get_mut(j).and_then(Option::take) {
                        Some((a, ttl)) => (self.attr_of(&a), ttl),
                        None => (page_attr(), Duration::ZERO),
                    }
                };
                if reply.add(INodeNo(item.ino), (start + j) as u64 + 1, &item.name, &ttl, &attr, Generation(0)) {
                    return Ok(());
                }
            }
            start += batch.len();
        }
        Ok(())
    }

    /// TTLs for answers outside the metadata cache's grants (a change's
    /// own answer, a listing): the usual ones with caching off, else none.
    fn plain(&self, ttl: Duration) -> Duration {
        if self.inodes.cache_off() {
            ttl
        } else {
            Duration::ZERO
        }
    }

    /// How long the kernel may keep an entry this mount just made and its
    /// attributes: while the change's own granted answer is cached (the
    /// name noted for recalls first), else as [`ShardlineFs::plain`]. A
    /// file just created then needs no GETATTR for the `fstat` after `open`.
    fn made_ttl(&self, parent: u64, name: &[u8], ino: u64) -> Duration {
        if self.inodes.cache_off() {
            return self.opts.entry_ttl.min(self.opts.attr_ttl);
        }
        let granted = Coverage::Until(std::time::Instant::now());
        self.entry_ttl(self.entry_covered(granted, parent, name, ino))
    }

    /// The runtime the mount's requests run on.
    pub(crate) fn rt(&self) -> &Handle {
        &self.rt
    }

    /// Where the mount puts the session's notifier.
    pub fn notifier_slot(&self) -> Arc<OnceLock<Notifier>> {
        self.notifier.clone()
    }

    /// Serve one kernel request: run `f` to its end, counted and timed in
    /// the mount's metrics under `op`.
    fn run_op<T, E, F: Future<Output = Result<T, E>>>(&self, op: &'static str, f: F) -> Result<T, E> {
        let timer = shardline_metrics::RequestTimer::start("mount", op);
        let result = self.rt.block_on(f);
        timer.finish(result.is_ok());
        result
    }

    /// Like [`ShardlineFs::run_op`], with every metadata request acting for
    /// the user who made the kernel request (`acting`).
    fn run_as<T, E, F: Future<Output = Result<T, E>>>(&self, req: &Request, op: &'static str, f: F) -> Result<T, E> {
        match acting(req) {
            Some(who) => self.run_op(op, shardline_rpc::acting::acting_as(who, f)),
            None => self.run_op(op, f),
        }
    }

    /// The listing begun at opendir (or a fresh one if the handle is
    /// unknown), read at least past `offset` unless the directory ends.
    fn listing(&self, req: &Request, ino: u64, fh: u64, offset: u64) -> OpResult<Arc<Listing>> {
        let listing = match self.files.dir(fh) {
            Some(l) => l,
            None => self.run_as(req, "list_dir", self.op_list_dir(ino))?,
        };
        let offset = usize::try_from(offset).unwrap_or(usize::MAX);
        self.run_as(req, "list_dir", self.op_list_more(ino, &listing, offset))?;
        Ok(listing)
    }
}

/// While the metadata service holds opens for this mount (files unlinked
/// while open here), talk to the leader every second: a client silent for
/// the client lease loses its opens. Ends with the file system.
async fn keep_lease(inodes: Inodes, files: Weak<OpenFiles>) {
    let mut tick = tokio::time::interval(LEASE_RENEWAL);
    loop {
        tick.tick().await;
        let Some(files) = files.upgrade() else { return };
        if files.any_pinned() {
            if let Err(e) = inodes.getattr(ROOT_INO).await {
                tracing::warn!(error = %e, "could not renew the client lease");
            }
        }
    }
}

/// How often a mount holding opens renews its lease.
const LEASE_RENEWAL: Duration = Duration::from_secs(1);

/// Who asks, with supplementary groups (read from /proc: only for
/// permission checks).
fn caller(req: &Request) -> Caller {
    Caller { uid: req.uid(), gid: req.gid(), groups: Caller::groups_of(req.pid(), req.uid(), req.gid()) }
}

/// Who a kernel request acts for at the metadata service: the requester's
/// uid, gid and (read from /proc, not for root) supplementary groups. None
/// for a request the kernel sent without valid ids: it acts as the mount's
/// process. Flushes and releases, which write what any opener of the file
/// left buffered, always act as the mount's process.
fn acting(req: &Request) -> Option<shardline_rpc::acting::Caller> {
    let (uid, gid) = (req.uid(), req.gid());
    if uid == u32::MAX || gid == u32::MAX {
        return None;
    }
    let groups = if uid == 0 { Vec::new() } else { Caller::groups_of(req.pid(), uid, gid) };
    Some(shardline_rpc::acting::caller(uid, gid, groups))
}

/// Who creates an entry: its owner and group.
fn creator(req: &Request) -> Caller {
    Caller { uid: req.uid(), gid: req.gid(), groups: Vec::new() }
}

impl Filesystem for ShardlineFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        let _ = config.set_max_write(BLOCK_SIZE);
        if let Err(max) = config.set_max_readahead(16 << 20) {
            let _ = config.set_max_readahead(max);
        }
        let _ = config.set_max_background(64);
        let _ = config.add_capabilities(InitFlags::FUSE_PARALLEL_DIROPS);
        // Listings always carry attributes, so `ls -l`, `find` and dataset
        // scans need no lookup per entry. Not READDIRPLUS_AUTO: with it the
        // kernel uses READDIRPLUS only for a listing's first batch, or
        // after a lookup in between, so `ls -l` (every getdents first, then
        // every lstat) paid one lookup per entry past the first batch.
        let _ = config.add_capabilities(InitFlags::FUSE_DO_READDIRPLUS);
        Ok(())
    }

    fn lookup(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        match self.run_as(req, "lookup", self.op_lookup(parent.0, name)) {
            Ok((a, cov)) => {
                let (attr_ttl, entry_ttl) = (self.attr_ttl(cov), self.entry_ttl(cov));
                reply.entry_with_ttls(&attr_ttl, &entry_ttl, &a, Generation(0))
            }
            Err(f) => reply.error(f.0),
        }
    }

    fn getattr(&self, req: &Request, ino: INodeNo, _fh: Option<Fh>, reply: ReplyAttr) {
        match self.run_as(req, "getattr", self.op_getattr(ino.0)) {
            Ok((a, cov)) => reply.attr(&self.attr_ttl(cov), &a),
            Err(f) => reply.error(f.0),
        }
    }

    fn setattr(
        &self,
        req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<Fh>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let change = crate::ops_names::AttrChange { mode, uid, gid, size, atime, mtime };
        match self.run_as(req, "setattr", self.op_setattr(caller(req), ino.0, change)) {
            Ok(a) => reply.attr(&self.plain(self.opts.attr_ttl), &a),
            Err(f) => reply.error(f.0),
        }
    }

    fn readlink(&self, req: &Request, ino: INodeNo, reply: ReplyData) {
        match self.run_as(req, "readlink", self.inodes.readlink(ino.0)) {
            Ok(t) => reply.data(&t),
            Err(e) => reply.error(Fail::from(e).0),
        }
    }

    fn mknod(&self, req: &Request, parent: INodeNo, name: &OsStr, mode: u32, umask: u32, rdev: u32, reply: ReplyEntry) {
        let result = if let Some(kind) = crate::attr::special_kind(mode) {
            self.run_as(req, "mknod", self.op_mknod(&creator(req), parent.0, name, kind, mode & !umask, rdev))
        } else if mode & libc::S_IFMT == libc::S_IFREG {
            self.run_as(req, "create", self.op_create(&creator(req), parent.0, name, mode & !umask, true))
        } else {
            Err(Fail(Errno::EINVAL))
        };
        match result {
            Ok(a) => reply.entry_with_ttls(
                &self.plain(self.opts.attr_ttl),
                &self.plain(self.opts.entry_ttl),
                &a,
                Generation(0),
            ),
            Err(f) => reply.error(f.0),
        }
    }

    fn mkdir(&self, req: &Request, parent: INodeNo, name: &OsStr, mode: u32, umask: u32, reply: ReplyEntry) {
        match self.run_as(req, "mkdir", self.op_mkdir(&creator(req), parent.0, name, mode & !umask)) {
            Ok(a) => reply.entry_with_ttls(
                &self.plain(self.opts.attr_ttl),
                &self.plain(self.opts.entry_ttl),
                &a,
                Generation(0),
            ),
            Err(f) => reply.error(f.0),
        }
    }

    fn unlink(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        empty(reply, self.run_as(req, "unlink", self.op_unlink(parent.0, name, false)));
    }

    fn rmdir(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        empty(reply, self.run_as(req, "unlink", self.op_unlink(parent.0, name, true)));
    }

    fn symlink(&self, req: &Request, parent: INodeNo, link_name: &OsStr, target: &Path, reply: ReplyEntry) {
        match self.run_as(req, "symlink", self.op_symlink(&creator(req), parent.0, link_name, target)) {
            Ok(a) => reply.entry_with_ttls(
                &self.plain(self.opts.attr_ttl),
                &self.plain(self.opts.entry_ttl),
                &a,
                Generation(0),
            ),
            Err(f) => reply.error(f.0),
        }
    }

    fn rename(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        empty(reply, self.run_as(req, "rename", self.op_rename(parent.0, name, newparent.0, newname, flags)));
    }

    fn link(&self, req: &Request, ino: INodeNo, newparent: INodeNo, newname: &OsStr, reply: ReplyEntry) {
        match self.run_as(req, "link", self.op_link(ino.0, newparent.0, newname)) {
            Ok(a) => reply.entry_with_ttls(
                &self.plain(self.opts.attr_ttl),
                &self.plain(self.opts.entry_ttl),
                &a,
                Generation(0),
            ),
            Err(f) => reply.error(f.0),
        }
    }

    fn open(&self, req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        match self.run_as(req, "open", self.op_open(ino.0, flags.0)) {
            Ok((fh, keep)) => reply.opened(Fh(fh), keep),
            Err(f) => reply.error(f.0),
        }
    }

    fn read(
        &self,
        req: &Request,
        ino: INodeNo,
        _fh: Fh,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        match self.run_as(req, "read", self.op_read(ino.0, offset, size)) {
            Ok(b) => {
                shardline_metrics::payload_bytes_total().with_label_values(&["mount", "out"]).inc_by(b.len() as u64);
                reply.data(&b)
            }
            Err(f) => reply.error(f.0),
        }
    }

    fn write(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: Fh,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        match self.run_as(req, "write", self.op_write(ino.0, fh.0, offset, data, flags.0)) {
            Ok(()) => {
                shardline_metrics::payload_bytes_total().with_label_values(&["mount", "in"]).inc_by(data.len() as u64);
                reply.written(data.len() as u32)
            }
            Err(f) => reply.error(f.0),
        }
    }

    fn flush(&self, _req: &Request, ino: INodeNo, fh: Fh, _lock_owner: LockOwner, reply: ReplyEmpty) {
        empty(reply, self.run_op("flush", self.op_flush(ino.0, fh.0, false)));
    }

    fn release(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: Fh,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        empty(reply, self.run_op("release", self.op_release(ino.0, fh.0)));
    }

    fn fsync(&self, _req: &Request, ino: INodeNo, fh: Fh, _datasync: bool, reply: ReplyEmpty) {
        empty(reply, self.run_op("flush", self.op_flush(ino.0, fh.0, true)));
    }

    fn opendir(&self, req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match self.run_as(req, "list_dir", self.op_list_dir(ino.0)) {
            Ok(listing) => reply.opened(Fh(self.files.new_dir(listing)), FopenFlags::empty()),
            Err(f) => reply.error(f.0),
        }
    }

    fn readdir(&self, req: &Request, ino: INodeNo, fh: Fh, offset: u64, mut reply: ReplyDirectory) {
        let listing = match self.listing(req, ino.0, fh.0, offset) {
            Ok(l) => l,
            Err(f) => return reply.error(f.0),
        };
        for (i, item) in listing.lock().items.iter().enumerate().skip(offset as usize) {
            if reply.add(INodeNo(item.ino), i as u64 + 1, item.kind, &item.name) {
                break;
            }
        }
        reply.ok();
    }

    fn readdirplus(&self, req: &Request, ino: INodeNo, fh: Fh, offset: u64, mut reply: ReplyDirectoryPlus) {
        let listing = match self.listing(req, ino.0, fh.0, offset) {
            Ok(l) => l,
            Err(f) => return reply.error(f.0),
        };
        // As the requester: the coherent cache keeps answers per caller.
        let _ = self.run_as(req, "readdirplus", async { self.fill_plus(ino.0, &listing, offset, &mut reply) });
        reply.ok();
    }

    fn releasedir(&self, _req: &Request, _ino: INodeNo, fh: Fh, _flags: OpenFlags, reply: ReplyEmpty) {
        self.files.drop_dir(fh.0);
        reply.ok();
    }

    fn fsyncdir(&self, _req: &Request, _ino: INodeNo, _fh: Fh, _datasync: bool, reply: ReplyEmpty) {
        // Namespace changes are durable (Raft, fsynced on a quorum) when they return.
        reply.ok();
    }

    fn statfs(&self, req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        match self.run_as(req, "statfs", self.inodes.statfs()) {
            Ok(s) => {
                let bsize = if s.block_size == 0 { 4096 } else { s.block_size };
                let (blocks, free) = (s.total_bytes / bsize as u64, s.free_bytes / bsize as u64);
                let name_max = if s.name_max == 0 { 255 } else { s.name_max };
                reply.statfs(blocks, free, free, s.files + s.files_free, s.files_free, bsize, name_max, bsize);
            }
            Err(e) => reply.error(Fail::from(e).0),
        }
    }

    fn setxattr(
        &self,
        req: &Request,
        ino: INodeNo,
        name: &OsStr,
        value: &[u8],
        flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        empty(reply, self.run_as(req, "setxattr", self.op_setxattr(ino.0, name, value, flags)));
    }

    fn getxattr(&self, req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        xattr_reply(reply, size, self.run_as(req, "getxattr", self.op_getxattr(ino.0, name)));
    }

    fn listxattr(&self, req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        xattr_reply(reply, size, self.run_as(req, "listxattr", self.op_listxattr(ino.0)));
    }

    fn removexattr(&self, req: &Request, ino: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        empty(reply, self.run_as(req, "removexattr", self.op_removexattr(ino.0, name)));
    }

    fn access(&self, req: &Request, ino: INodeNo, mask: AccessFlags, reply: ReplyEmpty) {
        empty(reply, self.run_as(req, "access", self.op_access(&caller(req), ino.0, mask.bits() as u32)));
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        match self.run_as(req, "create_open", self.op_create_open(&creator(req), parent.0, name, mode & !umask, flags))
        {
            Ok((attr, fh)) => {
                let ttl = self.made_ttl(parent.0, name.as_bytes(), attr.ino.0);
                reply.created(&ttl, &attr, Generation(0), Fh(fh), FopenFlags::empty())
            }
            Err(f) => reply.error(f.0),
        }
    }

    fn fallocate(&self, req: &Request, ino: INodeNo, _fh: Fh, offset: u64, length: u64, mode: i32, reply: ReplyEmpty) {
        empty(reply, self.run_as(req, "fallocate", self.op_fallocate(ino.0, offset, length, mode)));
    }

    /// See `copy_range.rs`. fuser's default answers ENOSYS with a warning
    /// per mount; the kernel then copies through read and write.
    fn copy_file_range(
        &self,
        req: &Request,
        ino_in: INodeNo,
        _fh_in: Fh,
        offset_in: u64,
        ino_out: INodeNo,
        fh_out: Fh,
        offset_out: u64,
        len: u64,
        _flags: CopyFileRangeFlags,
        reply: ReplyWrite,
    ) {
        let c = CopyRange { ino_in: ino_in.0, offset_in, ino_out: ino_out.0, fh_out: fh_out.0, offset_out, len };
        match self.run_as(req, "copy_file_range", self.op_copy_range(c)) {
            Ok(n) => reply.written(n as u32),
            Err(f) => reply.error(f.0),
        }
    }

    /// No ioctl is supported: ENOTTY ("not a terminal", what `isatty` and
    /// every unknown request expect), without a log line. fuser's default
    /// logs a warning per call, and every Python `open()` asks TCGETS.
    fn ioctl(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: Fh,
        _flags: IoctlFlags,
        _cmd: u32,
        _in_data: &[u8],
        _out_size: u32,
        reply: ReplyIoctl,
    ) {
        reply.error(Errno::ENOTTY);
    }
}

fn empty(reply: ReplyEmpty, r: OpResult<()>) {
    match r {
        Ok(()) => reply.ok(),
        Err(f) => reply.error(f.0),
    }
}

/// getxattr/listxattr protocol: size 0 asks for the length; too small a
/// buffer is ERANGE.
fn xattr_reply(reply: ReplyXattr, size: u32, r: OpResult<Vec<u8>>) {
    match r {
        Ok(v) if size == 0 => reply.size(v.len() as u32),
        Ok(v) if v.len() > size as usize => reply.error(Errno::ERANGE),
        Ok(v) => reply.data(&v),
        Err(f) => reply.error(f.0),
    }
}
