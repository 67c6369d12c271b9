//! Extended attributes.
//!
//! A missing attribute is NotFound with the message "no such attribute"; the
//! FUSE layer maps NotFound from xattr requests to ENODATA.

use shardline_types::{ErrorCode, Ino};

use super::{Namespace, OpError, OpResult};

pub const MAX_XATTR_NAME_LEN: usize = 255;
pub const MAX_XATTR_VALUE_LEN: usize = 64 << 10;
/// Names plus values of all of one inode's attributes.
pub const MAX_XATTR_TOTAL: usize = 1 << 20;

/// What SetXattr requires of an existing attribute.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum XattrMode {
    /// Create or replace.
    #[default]
    Any,
    /// Fail with AlreadyExists if it exists (XATTR_CREATE).
    Create,
    /// Fail with NotFound if it is missing (XATTR_REPLACE).
    Replace,
}

fn no_attribute() -> OpError {
    OpError::new(ErrorCode::NotFound, "no such attribute")
}

/// Attribute names are bytes (as on Linux): not empty, no NUL, at most
/// [`MAX_XATTR_NAME_LEN`] bytes.
fn check_xattr_name(name: &[u8]) -> OpResult<()> {
    if name.is_empty() || name.contains(&0) {
        return Err(OpError::new(ErrorCode::InvalidArgument, "invalid attribute name"));
    }
    if name.len() > MAX_XATTR_NAME_LEN {
        return Err(OpError::new(ErrorCode::NameTooLong, "attribute name too long"));
    }
    Ok(())
}

impl Namespace {
    pub fn set_xattr(&mut self, ino: Ino, name: &[u8], value: &[u8], mode: XattrMode, now: i64) -> OpResult<()> {
        check_xattr_name(name)?;
        if value.len() > MAX_XATTR_VALUE_LEN {
            return Err(OpError::new(ErrorCode::InvalidArgument, "attribute value too large"));
        }
        let inode =
            self.inodes.get_mut(&ino).ok_or_else(|| OpError::new(ErrorCode::NotFound, format!("no inode {ino}")))?;
        match (mode, inode.xattrs.contains_key(name)) {
            (XattrMode::Create, true) => return Err(OpError::new(ErrorCode::AlreadyExists, "attribute exists")),
            (XattrMode::Replace, false) => return Err(no_attribute()),
            _ => {}
        }
        let others: usize =
            inode.xattrs.iter().filter(|(n, _)| n.as_slice() != name).map(|(n, v)| n.len() + v.len()).sum();
        if others + name.len() + value.len() > MAX_XATTR_TOTAL {
            return Err(OpError::new(ErrorCode::NoSpace, "no room for more extended attributes"));
        }
        inode.xattrs.insert(name.to_vec(), value.to_vec());
        inode.ctime_ns = now;
        Ok(())
    }

    pub fn get_xattr(&self, ino: Ino, name: &[u8]) -> OpResult<&[u8]> {
        check_xattr_name(name)?;
        self.get(ino)?.xattrs.get(name).map(Vec::as_slice).ok_or_else(no_attribute)
    }

    /// Attribute names in byte order.
    pub fn list_xattr(&self, ino: Ino) -> OpResult<Vec<Vec<u8>>> {
        Ok(self.get(ino)?.xattrs.keys().cloned().collect())
    }

    pub fn remove_xattr(&mut self, ino: Ino, name: &[u8], now: i64) -> OpResult<()> {
        check_xattr_name(name)?;
        let inode =
            self.inodes.get_mut(&ino).ok_or_else(|| OpError::new(ErrorCode::NotFound, format!("no inode {ino}")))?;
        inode.xattrs.remove(name).ok_or_else(no_attribute)?;
        inode.ctime_ns = now;
        Ok(())
    }
}
