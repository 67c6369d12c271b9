//! The mount's open files and directories.
//!
//! Every open of one inode in this mount shares one client
//! [`FileHandle`] (its buffers and chunk snapshot), so reads through any
//! descriptor see writes through any other. Opens are registered with the
//! metadata service lazily: only when this mount unlinks or renames over a
//! file it has open is the file *pinned* (one replicated open), so it stays
//! readable until the last local close; plain open/close costs no Raft
//! write. Directory handles hold a listing read a page at a time as
//! readdir reaches it (`ops_names.rs::op_list_more`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use fuser::FileType;
use shardline_client::inode_api::InodeAttr;
use shardline_client::FileHandle;

/// One directory entry as listed.
#[derive(Debug, Clone)]
pub struct DirItem {
    pub ino: u64,
    pub kind: FileType,
    /// The name's bytes as the kernel takes them (not necessarily UTF-8).
    pub name: std::ffi::OsString,
    /// Its attributes when listed (none for "." and "..").
    pub attr: Option<InodeAttr>,
    /// When its page was listed: its attributes are that old.
    pub taken: Instant,
}

/// A directory's entries, read from the metadata service one page at a
/// time as readdir reaches them, so each page's attributes are fresh when
/// the kernel gets them (a listing of 1,000,000 entries read whole at
/// opendir was older than the attribute TTL before `ls -l` used any).
/// Offsets are positions in `items`, which only grows: they stay valid.
#[derive(Debug)]
pub struct Listing {
    loaded: Mutex<Loaded>,
    /// Woken when a page in flight arrived (or failed).
    fetched: tokio::sync::Notify,
}

/// What a listing has read so far.
#[derive(Debug, Clone, Default)]
pub struct Loaded {
    pub items: Vec<DirItem>,
    /// The last name read (the next page starts after it).
    pub after: Vec<u8>,
    /// Whether entries follow.
    pub more: bool,
    /// A page is in flight (`listing.rs`).
    pub fetching: bool,
}

impl Listing {
    pub fn new(loaded: Loaded) -> Self {
        Listing { loaded: Mutex::new(loaded), fetched: tokio::sync::Notify::new() }
    }

    pub fn lock(&self) -> MutexGuard<'_, Loaded> {
        lock(&self.loaded)
    }

    /// Completes when the page in flight arrives or fails: woken by a
    /// [`Listing::wake_waiters`] made at any time after this call.
    pub fn fetched(&self) -> tokio::sync::futures::Notified<'_> {
        self.fetched.notified()
    }

    pub fn wake_waiters(&self) {
        self.fetched.notify_waiters();
    }
}

struct OpenFile {
    handle: FileHandle,
    opens: usize,
    /// The metadata service holds one open for this mount (see the module doc).
    pinned: bool,
    /// (mtime, size) at the latest open: what the kernel's cached pages
    /// show, unless this mount wrote.
    opened_stamp: (i64, u64),
}

/// What a file handle number stands for.
#[derive(Debug, Clone, Copy)]
pub struct OpenedAs {
    pub ino: u64,
    /// The open(2) flags.
    pub flags: i32,
    /// The file handle's commit failures this open has been told of
    /// (`FileHandle::flush_seen`); set when it opens.
    pub errors_seen: u64,
}

/// A file's last local close.
pub struct Closed {
    pub handle: FileHandle,
    pub pinned: bool,
    pub opened_stamp: (i64, u64),
}

#[derive(Default)]
pub struct OpenFiles {
    by_ino: Mutex<HashMap<u64, OpenFile>>,
    fhs: Mutex<HashMap<u64, OpenedAs>>,
    dirs: Mutex<HashMap<u64, Arc<Listing>>>,
    /// (mtime, size) of each file when this mount last closed it: an open
    /// that finds them unchanged keeps the kernel's page cache.
    stamps: Mutex<HashMap<u64, (i64, u64)>>,
    next_fh: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl OpenFiles {
    /// The shared handle of an open inode.
    pub fn handle(&self, ino: u64) -> Option<FileHandle> {
        lock(&self.by_ino).get(&ino).map(|f| f.handle.clone())
    }

    /// The size including unflushed writes, if this mount has `ino` open.
    pub fn size_of(&self, ino: u64) -> Option<u64> {
        lock(&self.by_ino).get(&ino).map(|f| f.handle.size())
    }

    /// Count one more open of an already open inode, found with `stamp`
    /// (mtime, size); its handle if so.
    pub fn reopen(&self, ino: u64, stamp: (i64, u64)) -> Option<FileHandle> {
        let mut m = lock(&self.by_ino);
        let f = m.get_mut(&ino)?;
        f.opens += 1;
        f.opened_stamp = stamp;
        Some(f.handle.clone())
    }

    /// Register a newly opened handle. If another open won the race, its
    /// handle is counted and returned instead.
    pub fn insert(&self, ino: u64, handle: FileHandle, stamp: (i64, u64)) -> FileHandle {
        let mut m = lock(&self.by_ino);
        if let Some(f) = m.get_mut(&ino) {
            f.opens += 1;
            f.opened_stamp = stamp;
            return f.handle.clone();
        }
        m.insert(ino, OpenFile { handle: handle.clone(), opens: 1, pinned: false, opened_stamp: stamp });
        handle
    }

    /// Whether this mount has any file open (no: unlink need not look).
    pub fn any_open(&self) -> bool {
        !lock(&self.by_ino).is_empty()
    }

    /// Mark `ino` pinned if it is open here and not yet pinned; true if the
    /// caller must now register the open with the metadata service.
    pub fn needs_pin(&self, ino: u64) -> bool {
        match lock(&self.by_ino).get_mut(&ino) {
            Some(f) if !f.pinned => {
                f.pinned = true;
                true
            }
            _ => false,
        }
    }

    /// Whether the metadata service holds any open for this mount (which
    /// must then keep its client lease alive).
    pub fn any_pinned(&self) -> bool {
        lock(&self.by_ino).values().any(|f| f.pinned)
    }

    /// Undo [`OpenFiles::needs_pin`] after the registration failed.
    pub fn unpin(&self, ino: u64) {
        if let Some(f) = lock(&self.by_ino).get_mut(&ino) {
            f.pinned = false;
        }
    }

    /// Count one open less; if that was the last one, the handle, whether
    /// it was pinned and the stamp of its latest open.
    pub fn close(&self, ino: u64) -> Option<Closed> {
        let mut m = lock(&self.by_ino);
        let f = m.get_mut(&ino)?;
        f.opens -= 1;
        if f.opens == 0 {
            return m.remove(&ino).map(|f| Closed { handle: f.handle, pinned: f.pinned, opened_stamp: f.opened_stamp });
        }
        None
    }

    pub fn new_fh(&self, opened: OpenedAs) -> u64 {
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed) + 1;
        lock(&self.fhs).insert(fh, opened);
        fh
    }

    pub fn opened(&self, fh: u64) -> Option<OpenedAs> {
        lock(&self.fhs).get(&fh).copied()
    }

    /// Record what commit failures open `fh` has been told of.
    pub fn set_errors_seen(&self, fh: u64, seen: u64) {
        if let Some(o) = lock(&self.fhs).get_mut(&fh) {
            o.errors_seen = seen;
        }
    }

    pub fn drop_fh(&self, fh: u64) -> Option<OpenedAs> {
        lock(&self.fhs).remove(&fh)
    }

    pub fn stamp_matches(&self, ino: u64, stamp: (i64, u64)) -> bool {
        lock(&self.stamps).get(&ino) == Some(&stamp)
    }

    pub fn set_stamp(&self, ino: u64, stamp: (i64, u64)) {
        lock(&self.stamps).insert(ino, stamp);
    }

    pub fn new_dir(&self, listing: Arc<Listing>) -> u64 {
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed) + 1;
        lock(&self.dirs).insert(fh, listing);
        fh
    }

    pub fn dir(&self, fh: u64) -> Option<Arc<Listing>> {
        lock(&self.dirs).get(&fh).cloned()
    }

    pub fn drop_dir(&self, fh: u64) {
        lock(&self.dirs).remove(&fh);
    }
}
