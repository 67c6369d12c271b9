//! Attribute changes: setattr (mode, owner, size/truncate, times) and the
//! per-directory layout policy.

use shardline_types::{ErrorCode, Ino, Layout};

use super::{Inode, Kind, Namespace, OpError, OpResult, Released, StoredManifest};

/// The largest file size (off_t's maximum).
pub const MAX_FILE_SIZE: u64 = i64::MAX as u64;

/// Which attributes a setattr changes (`None`: left as it is). Times that
/// should be "now" are resolved to the leader's time before they get here.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SetAttrs {
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    /// Truncate or extend a regular file to this size.
    pub size: Option<u64>,
    pub atime_ns: Option<i64>,
    pub mtime_ns: Option<i64>,
    /// With `size`: the file's manifest after the change (required, with
    /// the next sequence number, when the file's key needs one).
    pub manifest: Option<StoredManifest>,
}

impl Namespace {
    /// Change attributes; ctime becomes `now`. Shrinking a file releases the
    /// chunks that start at or beyond the new size; a chunk straddling it is
    /// kept (readers zero-fill past the size). A size change also sets mtime
    /// unless the request gives one.
    pub fn set_attr(&mut self, ino: Ino, attrs: &SetAttrs, now: i64) -> OpResult<(Inode, Released)> {
        let inode =
            self.inodes.get_mut(&ino).ok_or_else(|| OpError::new(ErrorCode::NotFound, format!("no inode {ino}")))?;
        let mut released = Released { file_id: ino, chunks: Vec::new() };
        if let Some(size) = attrs.size {
            match inode.kind {
                Kind::Regular => {}
                Kind::Directory => return Err(OpError::new(ErrorCode::IsADirectory, "cannot set a directory's size")),
                Kind::Symlink => return Err(OpError::new(ErrorCode::InvalidArgument, "cannot set a symlink's size")),
                Kind::Fifo | Kind::Socket | Kind::CharDevice | Kind::BlockDevice => {
                    return Err(OpError::new(ErrorCode::InvalidArgument, "cannot set a special file's size"))
                }
            }
            if size > MAX_FILE_SIZE {
                return Err(OpError::new(ErrorCode::InvalidArgument, "file size too large"));
            }
            super::manifest::check_update(inode, attrs.manifest.as_ref())?;
            if attrs.manifest.is_some() {
                inode.manifest = attrs.manifest.clone();
            }
            let chunk_size = u64::from(inode.layout.chunk_size.max(1));
            // Chunks with index >= ceil(size / chunk_size) lie wholly past the end.
            released.chunks = inode.chunks.range(size.div_ceil(chunk_size)..).map(|(_, c)| *c).collect();
            for c in &released.chunks {
                inode.chunks.remove(&c.index);
                self.pg_index.remove(ino, c);
            }
            if size != inode.size {
                inode.mtime_ns = now;
            }
            inode.size = size;
        }
        if let Some(mode) = attrs.mode {
            inode.mode = mode & 0o7777;
        }
        if let Some(uid) = attrs.uid {
            inode.uid = uid;
        }
        if let Some(gid) = attrs.gid {
            inode.gid = gid;
        }
        if let Some(t) = attrs.atime_ns {
            inode.atime_ns = t;
        }
        if let Some(t) = attrs.mtime_ns {
            inode.mtime_ns = t;
        }
        inode.ctime_ns = now;
        Ok((inode.clone(), released))
    }

    /// Set a directory's layout policy; files and directories created in it
    /// afterwards inherit it (existing files keep theirs). `max_width` is the
    /// placement groups' width: a chunk cannot have more shards than that.
    pub fn set_layout(&mut self, ino: Ino, layout: Layout, max_width: usize, now: i64) -> OpResult<Inode> {
        let inode =
            self.inodes.get_mut(&ino).ok_or_else(|| OpError::new(ErrorCode::NotFound, format!("no inode {ino}")))?;
        if inode.kind != Kind::Directory {
            return Err(OpError::new(ErrorCode::NotADirectory, "a layout policy belongs to a directory"));
        }
        layout.validate().map_err(|e| OpError::new(ErrorCode::InvalidArgument, e.to_string()))?;
        if layout.width() > max_width {
            return Err(OpError::new(
                ErrorCode::InvalidArgument,
                format!("layout needs {} shards, placement groups have {max_width}", layout.width()),
            ));
        }
        inode.layout = layout;
        inode.ctime_ns = now;
        Ok(inode.clone())
    }
}
