//! Hard links, symlinks, readlink and special files (mknod).
//!
//! Special files (fifos, sockets, character and block devices) are inodes
//! without data or key: size 0, never any chunks. Link, unlink, rename,
//! setattr (but size) and xattrs treat them like regular files.

use shardline_types::{ErrorCode, Ino};

use super::{check_name, Inode, Kind, Namespace, NewInode, OpError, OpResult};

/// The longest symlink target (PATH_MAX without its NUL).
pub const MAX_SYMLINK_LEN: usize = 4095;

impl Namespace {
    /// Add the name `new_parent/new_name` for the regular file or symlink
    /// `ino`. Directories cannot be hard-linked (PermissionDenied, EPERM).
    pub fn link(&mut self, ino: Ino, new_parent: Ino, new_name: &[u8], now: i64) -> OpResult<Inode> {
        check_name(new_name)?;
        let inode = self.get(ino)?;
        if inode.kind == Kind::Directory {
            return Err(OpError::new(ErrorCode::PermissionDenied, "cannot hard-link a directory"));
        }
        if inode.nlink == 0 {
            // Open but unlinked: it cannot get a name back.
            return Err(OpError::new(ErrorCode::NotFound, "inode has no links left"));
        }
        if self.dir(new_parent)?.contains_key(new_name) {
            return Err(OpError::new(ErrorCode::AlreadyExists, "entry exists"));
        }
        if let Some(entries) = self.dirs.get_mut(&new_parent) {
            entries.insert(new_name.to_vec(), ino);
        }
        self.file_parents.add(ino, new_parent);
        self.touch_dir(new_parent, now);
        let inode = self.inodes.get_mut(&ino).ok_or_else(|| OpError::new(ErrorCode::Internal, "inode vanished"))?;
        inode.nlink = inode.nlink.saturating_add(1);
        inode.ctime_ns = now;
        Ok(inode.clone())
    }

    /// Create a symlink holding `target`; its size is the target's length.
    pub fn symlink(&mut self, parent: Ino, name: &[u8], target: &[u8], attrs: NewInode, now: i64) -> OpResult<Inode> {
        check_name(name)?;
        if target.is_empty() || target.contains(&0) {
            return Err(OpError::new(ErrorCode::InvalidArgument, "invalid symlink target"));
        }
        if target.len() > MAX_SYMLINK_LEN {
            return Err(OpError::new(ErrorCode::NameTooLong, "symlink target too long"));
        }
        if self.dir(parent)?.contains_key(name) {
            return Err(OpError::new(ErrorCode::AlreadyExists, "entry exists"));
        }
        let layout = self.get(parent)?.layout;
        let ino = self.insert(parent, name, Kind::Symlink, NewInode { key: None, ..attrs }, layout, now);
        let inode = self.inodes.get_mut(&ino).ok_or_else(|| OpError::new(ErrorCode::Internal, "inode vanished"))?;
        inode.target = target.to_vec();
        inode.size = target.len() as u64;
        Ok(inode.clone())
    }

    /// Create a special file of `kind` (a fifo, socket or device; other
    /// kinds are InvalidArgument). `rdev` is kept for devices only.
    pub fn mknod(
        &mut self,
        parent: Ino,
        name: &[u8],
        kind: Kind,
        attrs: NewInode,
        rdev: u64,
        now: i64,
    ) -> OpResult<Inode> {
        if !kind.is_special() {
            return Err(OpError::new(ErrorCode::InvalidArgument, "mknod makes fifos, sockets and devices only"));
        }
        check_name(name)?;
        if self.dir(parent)?.contains_key(name) {
            return Err(OpError::new(ErrorCode::AlreadyExists, "entry exists"));
        }
        let layout = self.get(parent)?.layout;
        let ino = self.insert(parent, name, kind, NewInode { key: None, ..attrs }, layout, now);
        let inode = self.inodes.get_mut(&ino).ok_or_else(|| OpError::new(ErrorCode::Internal, "inode vanished"))?;
        if matches!(kind, Kind::CharDevice | Kind::BlockDevice) {
            inode.rdev = rdev;
        }
        Ok(inode.clone())
    }

    /// A symlink's target (InvalidArgument, EINVAL, for other kinds).
    pub fn readlink(&self, ino: Ino) -> OpResult<&[u8]> {
        let inode = self.get(ino)?;
        if inode.kind != Kind::Symlink {
            return Err(OpError::new(ErrorCode::InvalidArgument, "not a symlink"));
        }
        Ok(&inode.target)
    }
}
