//! Create a file and open it in one metadata round trip (what open(2) with
//! O_CREAT needs through the mount).

use crate::file_handle::FileHandle;
use crate::inode_api::{InodeAttr, Inodes, NewFile};
use crate::{ClientError, FileKind};

impl Inodes {
    /// Create `parent/name` as [`Inodes::create`] does and open it. A new
    /// (empty) file needs no second call: the create's reply carries the
    /// wrapped key and layout, and an empty file has no chunks. An existing
    /// file with data (`exclusive` false) is opened as [`FileHandle::open`]
    /// would.
    pub async fn create_open(&self, f: NewFile) -> Result<(InodeAttr, FileHandle), ClientError> {
        let wire = self.create_wire(f).await?;
        let attr = InodeAttr::from_wire(&wire);
        if attr.kind != FileKind::File {
            return Err(ClientError::NotAFile);
        }
        let handle = if wire.size == 0 {
            // Truncating to zero drops every chunk, so an empty file has none.
            FileHandle::from_parts(self.inner.clone(), &wire, Vec::new())?
        } else {
            FileHandle::open_ino(self.inner.clone(), attr.ino).await?
        };
        Ok((attr, handle))
    }
}
