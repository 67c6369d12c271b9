//! The flash shard store: one file per shard, read and written with
//! `O_DIRECT` through io_uring.
//!
//! Same directory layout, locking, space accounting and crash safety as
//! [`FileStore`](crate::FileStore) (shared in
//! `store_core.rs`): a put writes a temporary file in one
//! aligned write, fsyncs it (`IORING_OP_FSYNC`), renames it into place and
//! fsyncs the directory, so a crash leaves the whole shard or nothing. Shards
//! are written in [`shard_format`](crate::shard_format) version 2, whose
//! header and payload are padded to 4 KiB blocks, so every transfer is
//! block-aligned; version-1 shards (from `FileStore`) read back as well. A get
//! reads the whole file in one request and verifies the header and CRC32C.
//!
//! The ring belongs to a dedicated thread (`uring_thread.rs`);
//! the synchronous trait methods, which the service calls from blocking
//! tasks, submit to it and wait. If the file system refuses `O_DIRECT`
//! (`EINVAL` at open), the store logs it once and continues with buffered
//! I/O through the same ring.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use shardline_types::ShardKey;

use crate::aligned_buf::AlignedBuf;
use crate::disk::write_err;
use crate::shard_dir::TMP_SUFFIX;
use crate::shard_format::{Format, ShardHeader, BLOCK_LEN_V2, HEADER_LEN_V1};
use crate::store::Backend;
use crate::store_core::StoreCore;
use crate::uring_thread::{new_ring, Op, UringThread};
use crate::{DataError, ShardStore, Usage};

/// Submission queue depth of the store's ring.
const RING_ENTRIES: u32 = 128;

/// Whether io_uring can be used on this machine; the error (a
/// [`DataError::Config`] when the kernel lacks it or forbids it) says why not.
pub fn uring_available() -> Result<(), DataError> {
    new_ring(2).map(drop)
}

/// Shards as `O_DIRECT` files under a directory, through io_uring.
pub struct UringStore {
    core: StoreCore,
    ring: UringThread,
    /// Open files with `O_DIRECT`; cleared once the file system refuses it.
    direct: AtomicBool,
}

impl UringStore {
    /// Open (creating if needed) the store under `dir`, as
    /// [`FileStore::open`](crate::FileStore::open) does, and start its I/O
    /// thread. Fails with [`DataError::Config`] if io_uring is unavailable.
    pub fn open(dir: &Path, capacity_bytes: Option<u64>) -> Result<UringStore, DataError> {
        Self::open_with(dir, capacity_bytes, true)
    }

    /// As [`open`](Self::open); `direct: false` uses buffered I/O from the start.
    pub(crate) fn open_with(dir: &Path, capacity_bytes: Option<u64>, direct: bool) -> Result<UringStore, DataError> {
        let ring = UringThread::start(RING_ENTRIES)?;
        let core = StoreCore::open(dir, capacity_bytes)?;
        let store = UringStore { core, ring, direct: AtomicBool::new(direct) };
        if direct {
            store.probe_direct();
        }
        Ok(store)
    }

    /// Find out now whether the file system takes `O_DIRECT`, so that the
    /// store reports how it does I/O truly before its first write.
    fn probe_direct(&self) {
        // A temporary name: a leftover of a crash is removed at the next open.
        let probe = self.core.root().join("00").join(format!("direct-probe{TMP_SUFFIX}"));
        if let Ok(file) = self.open_file(&probe, OpenOptions::new().write(true).create(true).truncate(true), true) {
            drop(file);
        }
        let _ = fs::remove_file(&probe);
    }

    /// Where the shard for `key` lives: (its directory, its path).
    pub fn shard_path(&self, key: &ShardKey) -> (PathBuf, PathBuf) {
        self.core.shard_path(key)
    }

    /// Whether files are opened with `O_DIRECT` (false once the file system
    /// refused it).
    pub fn is_direct(&self) -> bool {
        self.direct.load(Ordering::Relaxed)
    }

    /// Open `path` with `O_DIRECT` if the file system allows it. `creating`:
    /// `opts` create the file, which a refused open may have left behind.
    fn open_file(&self, path: &Path, opts: &OpenOptions, creating: bool) -> io::Result<File> {
        if self.is_direct() {
            match opts.clone().custom_flags(libc::O_DIRECT).open(path) {
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                    if self.direct.swap(false, Ordering::Relaxed) {
                        tracing::info!(
                            "the file system refuses O_DIRECT; shard I/O continues buffered through io_uring"
                        );
                    }
                    if creating {
                        // Our own unique temporary name.
                        let _ = fs::remove_file(path);
                    }
                }
                other => return other,
            }
        }
        opts.open(path)
    }

    /// Create `tmp` holding `header` and `data` in format version 2, durably.
    fn write_tmp(&self, tmp: &Path, header: &[u8; HEADER_LEN_V1], data: &[u8]) -> Result<(), DataError> {
        let len =
            BLOCK_LEN_V2.checked_add(data.len()).ok_or_else(|| DataError::InvalidArgument("shard too large".into()))?;
        let mut buf = AlignedBuf::zeroed(len)?;
        buf.as_mut_slice()[..HEADER_LEN_V1].copy_from_slice(header);
        buf.as_mut_slice()[BLOCK_LEN_V2..len].copy_from_slice(data);
        let file = self
            .open_file(tmp, OpenOptions::new().write(true).create_new(true), true)
            .map_err(|e| write_err("create temporary shard file", e))?;
        let written = self.ring.run(Op::Write { file, buf, offset: 0 })?;
        written.result.map_err(|e| write_err("write shard file", e))?;
        let synced = self.ring.run(Op::Fsync { file: written.file })?;
        synced.result.map_err(|e| write_err("sync shard file", e))?;
        Ok(())
    }
}

impl ShardStore for UringStore {
    fn put(&self, key: &ShardKey, data: &[u8], crc32c: u32) -> Result<(), DataError> {
        let format = Format::V2Aligned;
        let header = ShardHeader { key: *key, payload_len: data.len() as u64, payload_crc: crc32c }.encode_as(format);
        self.core.put_with(key, data, crc32c, format, |tmp| self.write_tmp(tmp, &header, data))
    }

    fn get(&self, key: &ShardKey) -> Result<(Vec<u8>, u32), DataError> {
        let (_, path) = self.core.shard_path(key);
        let file = match self.open_file(&path, OpenOptions::new().read(true), false) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(DataError::NotFound),
            Err(e) => return Err(DataError::io("open shard file", e)),
        };
        let file_len = file.metadata().map_err(|e| DataError::io("stat shard file", e))?.len();
        let want = usize::try_from(file_len).map_err(|_| DataError::Corrupt("file too large".into()))?;
        let buf = AlignedBuf::zeroed(want)?;
        let read = self.ring.run(Op::Read { file, buf, offset: 0, want })?;
        let n = read.result.map_err(|e| DataError::io("read shard file", e))?;
        let buf = read.buf.ok_or_else(|| DataError::Internal("read returned no buffer".into()))?;
        if n < want {
            return Err(DataError::Corrupt(format!("file ended after {n} of {file_len} bytes")));
        }
        let bytes = &buf.as_slice()[..want];
        let (header, format) = ShardHeader::decode(bytes)?;
        let range = header.check_file(key, format, file_len)?;
        let payload = bytes.get(range).ok_or_else(|| DataError::Corrupt("payload outside the file".into()))?;
        let crc = header.verify_payload(payload)?;
        Ok((payload.to_vec(), crc))
    }

    fn backend(&self) -> Backend {
        Backend { name: "io_uring", direct_io: self.is_direct() }
    }

    crate::store_core::delegate_to_core!();
}

#[cfg(test)]
#[path = "uring_store_tests.rs"]
mod tests;
