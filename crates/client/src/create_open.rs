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
    ///
    /// The create also asks for the put capability of the new file's first
    /// chunk version, so a small file written and closed next costs no
    /// `GrantCaps` round trip (issue 10: one round of puts and one commit
    /// after the create).
    pub async fn create_open(&self, f: NewFile) -> Result<(InodeAttr, FileHandle), ClientError> {
        let first_version = crate::chunk_write::new_version();
        let (wire, first_put) = self.create_wire(f, first_version).await?;
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
        if let Some(cap) = first_put {
            handle.offer_first_put(first_version, cap);
        }
        Ok((attr, handle))
    }
}
