//! File I/O: open (close-to-open refresh, page-cache keeping), read, write
//! (O_APPEND), flush/fsync, release and fallocate.

use std::ffi::OsStr;

use bytes::Bytes;
use fuser::{Errno, FileAttr, FopenFlags};
use shardline_client::inode_api::{NewFile, SetAttrRequest};
use shardline_client::{FileHandle, FileKind};

use shardline_client::ClientError;
use shardline_types::ErrorCode;

use crate::attr::Caller;
use crate::fs::{Fail, OpResult, ShardlineFs};
use crate::ops_names::name_bytes;

/// An inode that vanished is ESTALE for inode-based calls: the kernel then
/// looks the name up again (a file replaced by rename on another client).
pub(crate) fn stale(e: ClientError) -> Fail {
    if e.code() == ErrorCode::NotFound {
        Fail(Errno::ESTALE)
    } else {
        Fail::from(e)
    }
}
use crate::open_files::{Closed, OpenedAs};

/// The reply to a read of `asked` bytes at `offset` that produced `data`:
/// `data` itself, unless it is short and `lost_above(end)` says the bytes
/// after its end were dropped by a failed growing commit, which the kernel
/// may not know yet (it would read zeros there): then EIO.
fn short_read_reply(offset: u64, asked: u32, data: Bytes, lost_above: impl Fn(u64) -> bool) -> OpResult<Bytes> {
    let end = offset + data.len() as u64;
    if (data.len() as u64) < u64::from(asked) && lost_above(end) {
        tracing::debug!(offset, asked, got = data.len(), "short read over bytes a failed commit dropped: EIO");
        return Err(Fail(Errno::EIO));
    }
    Ok(data)
}

impl ShardlineFs {
    /// Open a regular file; returns the handle number and whether the
    /// kernel may keep its cached pages (the file is unchanged since this
    /// mount last closed it).
    pub(crate) async fn op_open(&self, ino: u64, flags: i32) -> OpResult<(u64, FopenFlags)> {
        // A file not open here: its chunk list comes with fresh attributes,
        // so the open costs one metadata round trip. A file open here is
        // refreshed after its attributes are checked.
        let (attr, fresh) = if self.files.handle(ino).is_some() {
            (self.inodes.getattr(ino).await.map_err(stale)?, None)
        } else {
            match FileHandle::open_with_attr(&self.client, ino).await {
                Ok((a, h)) => (a, Some(h)),
                // Not a regular file: the kind decides the error below.
                Err(ClientError::NotAFile) => (self.inodes.getattr(ino).await.map_err(stale)?, None),
                Err(e) => return Err(stale(e)),
            }
        };
        match attr.kind {
            FileKind::File => {}
            FileKind::Directory => return Err(Fail(Errno::EISDIR)),
            FileKind::Symlink => return Err(Fail(Errno::ELOOP)),
            // The kernel opens fifos and devices itself (and sockets cannot
            // be opened); they have no data here to read or write.
            FileKind::Fifo | FileKind::Socket | FileKind::CharDevice | FileKind::BlockDevice => {
                return Err(Fail(Errno::ENXIO))
            }
        }
        let stamp = (attr.mtime_ns, attr.size);
        if let Some(h) = fresh {
            // Another open may have won the race: its handle is shared.
            self.files.insert(ino, h, stamp);
        } else {
            match self.files.reopen(ino, stamp) {
                Some(h) => {
                    if !h.has_unflushed() {
                        // Close-to-open: see what other clients committed.
                        if let Err(e) = h.refresh().await {
                            let _ = self.close_inode(ino).await;
                            return Err(e.into());
                        }
                    }
                }
                None => {
                    let h = FileHandle::open(&self.client, ino).await?;
                    self.files.insert(ino, h, stamp);
                }
            }
        }
        let keep = self.files.stamp_matches(ino, stamp);
        // The file may have changed elsewhere: drop the kernel's cached size
        // and times, unless what it was told already matches (only
        // spinlocks in the kernel: safe from here).
        if !keep && !self.kernel_attrs.matches(ino, (attr.mtime_ns, attr.ctime_ns, attr.size)) {
            self.kernel_attrs.forget(ino);
            if let Some(n) = self.notifier.get() {
                let _ = n.inval_inode(fuser::INodeNo(ino), -1, 0);
            }
        }
        let errors_seen = self.files.handle(ino).map_or(0, |h| h.error_seq());
        let fh = self.files.new_fh(OpenedAs { ino, flags, errors_seen });
        Ok((fh, open_flags(keep, flags)))
    }

    fn open_handle(&self, ino: u64) -> OpResult<FileHandle> {
        self.files.handle(ino).ok_or(Fail(Errno::EBADF))
    }

    /// read(2) from the kernel. A reply shorter than asked is filled with
    /// zeros by the kernel up to the size it believes, and that size can
    /// still count a write whose commit failed (learned from the write's
    /// reply, or asked while the commit was failing): such a read is EIO,
    /// never zeros no write put there.
    pub(crate) async fn op_read(&self, ino: u64, offset: u64, size: u32) -> OpResult<Bytes> {
        let h = self.open_handle(ino)?;
        let data = h.read_at(offset, size as usize).await?;
        // Once the kernel has been told the size a short read ends at
        // (after the failure dropped its copy), that read is a plain EOF.
        let told = self.kernel_attrs.told_size(ino);
        short_read_reply(offset, size, data, |end| h.lost_growth_above(end) && told != Some(end))
    }

    pub(crate) async fn op_write(&self, ino: u64, fh: u64, offset: u64, data: &[u8], flags: i32) -> OpResult<()> {
        let h = self.open_handle(ino)?;
        let append =
            flags & libc::O_APPEND != 0 || self.files.opened(fh).is_some_and(|o| o.flags & libc::O_APPEND != 0);
        // O_APPEND: at the end as this mount's handle knows it. The kernel's
        // idea of the size may be older than another client's commits, or
        // still count a write whose commit failed (appending there would
        // leave a hole of zeros); every write of this mount goes through
        // the handle, so its size is the authority.
        let offset = if append { h.size() } else { offset };
        Ok(h.write_at(offset, data).await?)
    }

    /// flush(2) at a close, or fsync (`fsync`): commit what this mount
    /// buffered, and report commit failures this open has not been told of
    /// yet (each open of a shared handle is told, as Linux reports
    /// write-back errors). Only an fsync marks them told: a close flushes
    /// too, but it may be the close of a duplicate of the descriptor (dup,
    /// or fork then exec in any thread of the writer's process), and the
    /// writer's own fsync must still hear of the failure.
    pub(crate) async fn op_flush(&self, ino: u64, fh: u64, fsync: bool) -> OpResult<()> {
        let Some(h) = self.files.handle(ino) else { return Ok(()) };
        let Some(opened) = self.files.opened(fh) else { return Ok(h.flush().await?) };
        let mut seen = opened.errors_seen;
        let r = h.flush_seen(&mut seen).await;
        if fsync {
            self.files.set_errors_seen(fh, seen);
        }
        if r.is_err() {
            // The handle dropped what failed: the kernel's cached size may
            // still count bytes that are not there (an append at that size
            // would leave a hole of zeros). Drop its cached attributes (only
            // spinlocks in the kernel: safe from here).
            self.kernel_attrs.forget(ino);
            if let Some(n) = self.notifier.get() {
                let _ = n.inval_inode(fuser::INodeNo(ino), -1, 0);
            }
        }
        Ok(r?)
    }

    pub(crate) async fn op_release(&self, ino: u64, fh: u64) -> OpResult<()> {
        self.files.drop_fh(fh);
        self.close_inode(ino).await
    }

    /// Create and open a regular file (open(2) with O_CREAT): one metadata
    /// round trip for a new file.
    pub(crate) async fn op_create_open(
        &self,
        caller: &Caller,
        parent: u64,
        name: &OsStr,
        mode: u32,
        flags: i32,
    ) -> OpResult<(FileAttr, u64)> {
        let exclusive = flags & libc::O_EXCL != 0;
        // The metadata service applies a set-group-id parent's group.
        let (name, mode, uid, gid) = (name_bytes(name)?.to_vec(), mode & 0o7777, caller.uid, caller.gid);
        let (a, h) = self.inodes.create_open(NewFile { parent, name, mode, uid, gid, exclusive }).await?;
        let h = self.files.insert(a.ino, h, (a.mtime_ns, a.size));
        let errors_seen = h.error_seq();
        Ok((self.attr_of(&a), self.files.new_fh(OpenedAs { ino: a.ino, flags, errors_seen })))
    }

    /// One local open less; the last one flushes, remembers the file's
    /// stamp for page-cache keeping and drops the metadata open.
    async fn close_inode(&self, ino: u64) -> OpResult<()> {
        let Some(Closed { handle: h, pinned, opened_stamp }) = self.files.close(ino) else { return Ok(()) };
        let flushed = h.flush().await;
        if !h.changed() {
            // The cached pages are what the file was at open.
            self.files.set_stamp(ino, opened_stamp);
        } else if let (Ok(()), Some(stamp)) = (&flushed, h.stamp_after_commits()) {
            // The last commit's answer carried the file's attributes.
            self.files.set_stamp(ino, stamp);
        } else if let Ok(a) = self.inodes.getattr(ino).await {
            self.files.set_stamp(ino, (a.mtime_ns, a.size));
        }
        let released = if pinned { self.inodes.release(ino).await } else { Ok(()) };
        flushed?;
        released?;
        Ok(())
    }

    /// Before a name that may be the last link of a file open here goes
    /// away (unlink, rename over it), register the open with the metadata
    /// service so the file outlives its name until the last local close.
    pub(crate) async fn pin_if_open(&self, parent: u64, name: &[u8]) -> OpResult<()> {
        if !self.files.any_open() {
            return Ok(());
        }
        let ino = match self.inodes.lookup(parent, name).await {
            Ok(a) => a.ino,
            Err(_) => return Ok(()), // nothing there: the operation reports it
        };
        if self.files.needs_pin(ino) {
            if let Err(e) = self.inodes.open(ino).await {
                self.files.unpin(ino);
                return Err(e.into());
            }
        }
        Ok(())
    }

    /// Mode 0 only: make sure the file is at least `offset + length` long
    /// (space is not reserved: chunks are written when data arrives).
    pub(crate) async fn op_fallocate(&self, ino: u64, offset: u64, length: u64, mode: i32) -> OpResult<()> {
        if mode != 0 {
            return Err(Fail(Errno::EOPNOTSUPP));
        }
        let end = offset.checked_add(length).ok_or(Fail(Errno::EFBIG))?;
        let h = match self.files.handle(ino) {
            Some(h) => h,
            None => FileHandle::open(&self.client, ino).await?,
        };
        if end > h.size() {
            let req = SetAttrRequest { size: Some(end), ..Default::default() };
            h.set_attr(&self.inodes, &req).await?;
        }
        Ok(())
    }
}

/// What an open tells the kernel: keep its page cache when the file is
/// unchanged, and skip the FLUSH at close of a read-only open. Such a close
/// has nothing of its own to commit (other opens' writes are committed at
/// their own closes) and locks are the kernel's (the mount does not take
/// POSIX locks), so the FLUSH would be a round trip through the kernel for
/// nothing, one per file a loader reads.
fn open_flags(keep_cache: bool, flags: i32) -> FopenFlags {
    let mut out = if keep_cache { FopenFlags::FOPEN_KEEP_CACHE } else { FopenFlags::empty() };
    if flags & libc::O_ACCMODE == libc::O_RDONLY {
        out |= FopenFlags::FOPEN_NOFLUSH;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A read-only open's close sends no FLUSH; every other open's does.
    #[test]
    fn only_read_only_opens_skip_the_flush_at_close() {
        let noflush = |flags| open_flags(false, flags).contains(FopenFlags::FOPEN_NOFLUSH);
        assert!(noflush(libc::O_RDONLY));
        assert!(noflush(libc::O_RDONLY | libc::O_NOATIME));
        assert!(!noflush(libc::O_WRONLY) && !noflush(libc::O_RDWR) && !noflush(libc::O_WRONLY | libc::O_APPEND));
        assert!(open_flags(true, libc::O_RDWR).contains(FopenFlags::FOPEN_KEEP_CACHE));
        assert!(!open_flags(false, libc::O_RDONLY).contains(FopenFlags::FOPEN_KEEP_CACHE));
    }

    /// Nemesis, long profile (seed 0x1eaf2): reads through the mount
    /// returned zeros at a chunk boundary while a write growing the file
    /// failed to commit. The handle had cut its size back, the mount
    /// replied short, and the kernel, which still believed the grown size,
    /// filled the rest of the read with zeros.
    #[test]
    fn a_short_read_over_a_failed_growth_is_eio_not_kernel_zeros() {
        let cut = 65_536u64;
        let lost = |end: u64| end < 72_038;
        // Asked across the cut after the growth failed: EIO, not a short reply.
        let r = short_read_reply(59_086, 10_736, Bytes::from(vec![7u8; (cut - 59_086) as usize]), lost);
        assert_eq!(r, Err(Fail(Errno::EIO)));
        // Asked wholly above it: EIO too.
        assert_eq!(short_read_reply(cut, 4096, Bytes::new(), lost), Err(Fail(Errno::EIO)));
        // A full reply is the bytes, cut or not.
        let full = Bytes::from(vec![7u8; 100]);
        assert_eq!(short_read_reply(0, 100, full.clone(), lost), Ok(full));
        // An ordinary end of file (nothing lost there) stays a short read.
        let tail = Bytes::from(vec![7u8; 10]);
        assert_eq!(short_read_reply(cut - 10, 4096, tail.clone(), |_| false), Ok(tail));
    }
}
