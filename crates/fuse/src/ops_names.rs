//! Namespace operations: lookup, attributes, create, mkdir, unlink, rename,
//! links, directory listings, xattrs and access checks.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use fuser::{Errno, FileAttr, RenameFlags, TimeOrNow};
use shardline_client::inode_api::{InodeAttr, NewFile, SetAttrRequest, SetTime, XattrMode};
use shardline_client::meta_cache::Coverage;
use shardline_client::{ClientError, FileHandle, FileKind};
use shardline_types::ErrorCode;

use crate::attr::{check_setattr, chmod_mode, dev_from_kernel, file_attr, may_access, ns_of, Caller};
use crate::fs::{Fail, OpResult, ShardlineFs};

/// The longest name a directory entry may have.
pub const NAME_MAX: usize = 255;

/// What a setattr asks to change.
pub struct AttrChange {
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub size: Option<u64>,
    pub atime: Option<TimeOrNow>,
    pub mtime: Option<TimeOrNow>,
}

/// A name from the kernel as the bytes it is (Linux names need not be
/// UTF-8); the metadata service checks the rest (`/`, NUL, `.`, `..`).
pub(crate) fn name_bytes(name: &OsStr) -> OpResult<&[u8]> {
    if name.len() > NAME_MAX {
        return Err(Fail(Errno::ENAMETOOLONG));
    }
    Ok(name.as_bytes())
}

/// The one xattr answered locally (see [`ShardlineFs::op_setxattr`]).
const SECURITY_CAPABILITY: &[u8] = b"security.capability";

fn set_time(t: Option<TimeOrNow>) -> Option<SetTime> {
    t.map(|t| match t {
        TimeOrNow::Now => SetTime::Now,
        TimeOrNow::SpecificTime(t) => SetTime::At(ns_of(t)),
    })
}

/// A missing xattr is ENODATA, not ENOENT.
fn no_data(e: ClientError) -> Fail {
    if e.code() == ErrorCode::NotFound {
        Fail(Errno::NO_XATTR)
    } else {
        Fail::from(e)
    }
}

impl ShardlineFs {
    /// The kernel's attributes, with this mount's unflushed size if any.
    pub(crate) fn attr_of(&self, a: &InodeAttr) -> FileAttr {
        let size = if a.kind == FileKind::File { self.files.size_of(a.ino) } else { None };
        let attr = file_attr(a, size);
        if a.kind == FileKind::File {
            self.kernel_attrs.replied(a.ino, (a.mtime_ns, a.ctime_ns, attr.size));
        }
        attr
    }

    pub(crate) async fn op_lookup(&self, parent: u64, name: &OsStr) -> OpResult<(FileAttr, Coverage)> {
        let (a, cov) = self.inodes.lookup_covered(parent, name_bytes(name)?).await?;
        let cov = self.entry_covered(cov, parent, name.as_bytes(), a.ino);
        Ok((self.attr_of(&a), cov))
    }

    pub(crate) async fn op_getattr(&self, ino: u64) -> OpResult<(FileAttr, Coverage)> {
        // A directory this mount just changed: the change returned it (only
        // without the coherent cache, which keeps such answers itself).
        if self.inodes.cache_off() {
            if let Some(a) = self.inodes.recent_dir_attr(ino, self.opts.attr_ttl) {
                return Ok((self.attr_of(&a), Coverage::Inactive));
            }
        }
        let (a, cov) = self.inodes.getattr_covered(ino).await.map_err(crate::ops_files::stale)?;
        Ok((self.attr_of(&a), cov))
    }

    pub(crate) async fn op_setattr(&self, caller: Caller, ino: u64, c: AttrChange) -> OpResult<FileAttr> {
        let a = self.inodes.getattr(ino).await?;
        let explicit =
            matches!(c.atime, Some(TimeOrNow::SpecificTime(_))) || matches!(c.mtime, Some(TimeOrNow::SpecificTime(_)));
        let now = matches!(c.atime, Some(TimeOrNow::Now)) || matches!(c.mtime, Some(TimeOrNow::Now));
        check_setattr(&a, &caller, c.mode, c.uid, c.gid, explicit, now).map_err(|e| Fail(Errno::from_i32(e)))?;
        let req = SetAttrRequest {
            mode: c.mode.map(|m| chmod_mode(&a, &caller, m)),
            uid: c.uid,
            gid: c.gid,
            size: c.size,
            atime: set_time(c.atime),
            mtime: set_time(c.mtime),
        };
        let new = if c.size.is_some() && a.kind == FileKind::File {
            let handle = match self.files.handle(ino) {
                Some(h) => h,
                None => FileHandle::open(&self.client, ino).await?,
            };
            handle.set_attr(&self.inodes, &req).await?
        } else {
            self.inodes.setattr(ino, &req).await?
        };
        Ok(self.attr_of(&new))
    }

    pub(crate) async fn op_create(
        &self,
        caller: &Caller,
        parent: u64,
        name: &OsStr,
        mode: u32,
        exclusive: bool,
    ) -> OpResult<FileAttr> {
        // The metadata service applies a set-group-id parent's group.
        let (name, mode, uid, gid) = (name_bytes(name)?.to_vec(), mode & 0o7777, caller.uid, caller.gid);
        let a = self.inodes.create(NewFile { parent, name, mode, uid, gid, exclusive }).await?;
        Ok(self.attr_of(&a))
    }

    /// A fifo, socket or device node (`kind` from `attr::special_kind`);
    /// `rdev` in the kernel's form.
    pub(crate) async fn op_mknod(
        &self,
        caller: &Caller,
        parent: u64,
        name: &OsStr,
        kind: FileKind,
        mode: u32,
        rdev: u32,
    ) -> OpResult<FileAttr> {
        let name = name_bytes(name)?;
        let a =
            self.inodes.mknod(parent, name, kind, mode & 0o7777, caller.uid, caller.gid, dev_from_kernel(rdev)).await?;
        Ok(self.attr_of(&a))
    }

    pub(crate) async fn op_mkdir(&self, caller: &Caller, parent: u64, name: &OsStr, mode: u32) -> OpResult<FileAttr> {
        let a = self.inodes.mkdir(parent, name_bytes(name)?, mode & 0o7777, caller.uid, caller.gid).await?;
        Ok(self.attr_of(&a))
    }

    pub(crate) async fn op_unlink(&self, parent: u64, name: &OsStr, dir: bool) -> OpResult<()> {
        let name = name_bytes(name)?;
        if dir {
            self.inodes.rmdir(parent, name).await?;
        } else {
            self.pin_if_open(parent, name).await?;
            self.inodes.unlink(parent, name).await?;
        }
        Ok(())
    }

    pub(crate) async fn op_symlink(
        &self,
        caller: &Caller,
        parent: u64,
        name: &OsStr,
        target: &Path,
    ) -> OpResult<FileAttr> {
        let name = name_bytes(name)?;
        let a = self.inodes.symlink(parent, name, target.as_os_str().as_bytes(), caller.uid, caller.gid).await?;
        Ok(self.attr_of(&a))
    }

    pub(crate) async fn op_rename(
        &self,
        parent: u64,
        name: &OsStr,
        new_parent: u64,
        new_name: &OsStr,
        flags: RenameFlags,
    ) -> OpResult<()> {
        let (name, new_name) = (name_bytes(name)?, name_bytes(new_name)?);
        if !(flags - RenameFlags::RENAME_NOREPLACE).is_empty() {
            // RENAME_EXCHANGE and RENAME_WHITEOUT are not supported.
            return Err(Fail(Errno::EINVAL));
        }
        if flags.contains(RenameFlags::RENAME_NOREPLACE) {
            match self.inodes.lookup(new_parent, new_name).await {
                Ok(_) => return Err(Fail(Errno::EEXIST)),
                Err(e) if e.code() == ErrorCode::NotFound => {}
                Err(e) => return Err(e.into()),
            }
        }
        self.pin_if_open(new_parent, new_name).await?;
        self.inodes.rename(parent, name, new_parent, new_name).await?;
        Ok(())
    }

    pub(crate) async fn op_link(&self, ino: u64, new_parent: u64, new_name: &OsStr) -> OpResult<FileAttr> {
        let a = self.inodes.link(ino, new_parent, name_bytes(new_name)?).await?;
        Ok(self.attr_of(&a))
    }

    pub(crate) async fn op_setxattr(&self, ino: u64, name: &OsStr, value: &[u8], flags: i32) -> OpResult<()> {
        let name = name.as_bytes();
        if name == SECURITY_CAPABILITY {
            // Answered locally (below) so that writes need no xattr round trip.
            return Err(Fail(Errno::EOPNOTSUPP));
        }
        let mode = match flags & (libc::XATTR_CREATE | libc::XATTR_REPLACE) {
            0 => XattrMode::Any,
            libc::XATTR_CREATE => XattrMode::Create,
            libc::XATTR_REPLACE => XattrMode::Replace,
            _ => return Err(Fail(Errno::EINVAL)),
        };
        self.inodes.setxattr(ino, name, value, mode).await.map_err(no_data)
    }

    pub(crate) async fn op_getxattr(&self, ino: u64, name: &OsStr) -> OpResult<Vec<u8>> {
        let name = name.as_bytes();
        if name == SECURITY_CAPABILITY {
            return Err(Fail(Errno::NO_XATTR));
        }
        self.inodes.getxattr(ino, name).await.map_err(no_data)
    }

    /// Names, each NUL-terminated.
    pub(crate) async fn op_listxattr(&self, ino: u64) -> OpResult<Vec<u8>> {
        let mut out = Vec::new();
        for n in self.inodes.listxattr(ino).await? {
            out.extend_from_slice(&n);
            out.push(0);
        }
        Ok(out)
    }

    pub(crate) async fn op_removexattr(&self, ino: u64, name: &OsStr) -> OpResult<()> {
        let name = name.as_bytes();
        self.inodes.removexattr(ino, name).await.map_err(no_data)
    }

    pub(crate) async fn op_access(&self, caller: &Caller, ino: u64, mask: u32) -> OpResult<()> {
        let a = self.inodes.getattr(ino).await?;
        if may_access(&a, caller, mask) {
            Ok(())
        } else {
            Err(Fail(Errno::EACCES))
        }
    }
}
