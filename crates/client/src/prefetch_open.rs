//! Opening the files a prefetch stream reads: each file once per stream
//! (ranges of one file share its reader), and each directory on the way
//! resolved once per stream.
//!
//! A path open by [`Client::open`](crate::Client::open) costs a `Getattr` of
//! the root, a `Lookup` per component and a `GetChunks`; a loader reading
//! 10,000 files in one folder would pay the folder's lookups 10,000 times.
//! Here a directory's inode is remembered for the life of the stream (an
//! epoch's list is a snapshot of the dataset: a folder renamed meanwhile is
//! still read under its old name, one deleted fails its items), so a file
//! costs one `Lookup` and one `GetChunks`. Readers are kept for the last
//! `capacity` files opened, by path, so a tar shard read in many ranges is
//! opened once.

use std::collections::{HashMap, VecDeque};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use shardline_proto::v1 as pb;
use shardline_proto::v1::meta_request::Body;
use shardline_types::ROOT_INO;
use tokio::sync::OnceCell;

use crate::chunk_list::get_chunks;
use crate::client::{attr_of, Inner};
use crate::file_ctx::FileCtx;
use crate::paths::{components, split_parent};
use crate::reader::FileReader;
use crate::{ClientError, FileKind};

type Slot<T> = Arc<OnceCell<T>>;

/// Bounded memo of slots by path, oldest first out.
struct Memo<T> {
    slots: HashMap<PathBuf, Slot<T>>,
    order: VecDeque<PathBuf>,
    capacity: usize,
}

impl<T> Memo<T> {
    fn new(capacity: usize) -> Self {
        Memo { slots: HashMap::new(), order: VecDeque::new(), capacity: capacity.max(1) }
    }

    fn slot(&mut self, path: &Path) -> Slot<T> {
        if let Some(s) = self.slots.get(path) {
            return s.clone();
        }
        while self.order.len() >= self.capacity {
            if let Some(old) = self.order.pop_front() {
                self.slots.remove(&old);
            }
        }
        let s = Slot::default();
        self.slots.insert(path.to_path_buf(), s.clone());
        self.order.push_back(path.to_path_buf());
        s
    }
}

/// Opens files for one prefetch stream (shared by its tasks).
pub(crate) struct Opener {
    inner: Arc<Inner>,
    dirs: Mutex<Memo<u64>>,
    files: Mutex<Memo<FileReader>>,
}

impl Opener {
    pub fn new(inner: Arc<Inner>, open_files: usize) -> Self {
        Opener { inner, dirs: Mutex::new(Memo::new(4096)), files: Mutex::new(Memo::new(open_files)) }
    }

    /// A reader of the file at `path`, opened once while it stays among the
    /// last files opened. A failed open is not remembered.
    pub async fn open(&self, path: &Path) -> Result<FileReader, ClientError> {
        let slot = self.files.lock().unwrap_or_else(|e| e.into_inner()).slot(path);
        slot.get_or_try_init(|| self.open_uncached(path)).await.cloned()
    }

    /// Look `path` up: its directory resolved once per stream, then one
    /// `Lookup` of its name.
    pub async fn lookup(&self, path: &Path) -> Result<pb::MetaResponse, ClientError> {
        let (parent, name) = split_parent(path)?;
        let parent_path: PathBuf = parent.iter().fold(PathBuf::from("/"), |p, c| p.join(OsStr::from_bytes(c)));
        let dir = self.dir(&parent_path).await?;
        let lookup = Body::Lookup(pb::Lookup { parent: dir, name: name.to_vec() });
        Ok(self.inner.meta.call(lookup).await?)
    }

    async fn open_uncached(&self, path: &Path) -> Result<FileReader, ClientError> {
        let attr = attr_of(self.lookup(path).await?)?;
        if FileKind::from_wire(attr.kind) != FileKind::File {
            return Err(ClientError::NotAFile);
        }
        let (attr, chunks) = get_chunks(&self.inner, attr.ino).await?;
        let ctx = FileCtx::open(&self.inner, &attr, &chunks, None)?;
        Ok(FileReader::new(self.inner.clone(), Arc::new(ctx), attr.size, chunks))
    }

    /// The inode of the directory at `path`, resolved once per stream.
    async fn dir(&self, path: &Path) -> Result<u64, ClientError> {
        let slot = self.dirs.lock().unwrap_or_else(|e| e.into_inner()).slot(path);
        let ino = slot
            .get_or_try_init(|| async {
                let mut attr = attr_of(self.inner.meta.call(Body::Getattr(pb::GetAttr { ino: ROOT_INO })).await?)?;
                for name in components(path)? {
                    let lookup = Body::Lookup(pb::Lookup { parent: attr.ino, name: name.to_vec() });
                    attr = attr_of(self.inner.meta.call(lookup).await?)?;
                }
                if FileKind::from_wire(attr.kind) != FileKind::Directory {
                    return Err(ClientError::NotADirectory);
                }
                Ok(attr.ino)
            })
            .await?;
        Ok(*ino)
    }
}

#[cfg(test)]
mod tests {
    use super::Memo;
    use std::path::Path;
    use std::sync::Arc;

    #[test]
    fn the_memo_keeps_the_newest_paths_up_to_its_capacity() {
        let mut m: Memo<u32> = Memo::new(2);
        let a = m.slot(Path::new("/a"));
        assert!(Arc::ptr_eq(&a, &m.slot(Path::new("/a"))), "a path seen again shares its slot");
        m.slot(Path::new("/b"));
        m.slot(Path::new("/c"));
        assert_eq!(m.slots.len(), 2);
        assert!(!Arc::ptr_eq(&a, &m.slot(Path::new("/a"))), "the oldest path was dropped");
    }
}
