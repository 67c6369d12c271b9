//! Disk faults on demand, behind the [`ShardStore`] trait, for fault
//! injection (`shardline-nemesis`). Off unless the data server is started
//! with `SHARDLINE_DATA_FAULT_FILE=PATH`; then the first word of that file
//! (re-read at most every 100 ms; missing or empty: no fault) says what
//! the disk does now:
//! - `eio`: every put, get and delete fails with an I/O error;
//! - `enospc`: every put fails for lack of space;
//! - `fsync-fail`: puts are stored durably but reported failed (an fsync
//!   that fails after the data reached the disk: the caller cannot tell);
//! - `read-flip`: reads return the stored bytes with one bit flipped after
//!   the store checked them (corruption between the disk and the wire,
//!   which the client's end-to-end checks must catch);
//! - `none`.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use shardline_types::ShardKey;

use crate::store::{Backend, ShardStore, Usage};
use crate::DataError;

/// The environment variable naming the control file.
pub const FAULT_FILE_ENV: &str = "SHARDLINE_DATA_FAULT_FILE";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiskFault {
    None,
    Eio,
    Enospc,
    FsyncFail,
    ReadFlip,
}

impl DiskFault {
    pub fn parse(s: &str) -> DiskFault {
        match s.split_whitespace().next().unwrap_or("") {
            "eio" => DiskFault::Eio,
            "enospc" => DiskFault::Enospc,
            "fsync-fail" => DiskFault::FsyncFail,
            "read-flip" => DiskFault::ReadFlip,
            _ => DiskFault::None,
        }
    }
}

pub struct FaultStore {
    inner: Arc<dyn ShardStore>,
    control: PathBuf,
    current: Mutex<(Instant, DiskFault)>,
}

/// Wrap `store` when the environment asks for fault injection.
pub fn wrap_from_env(store: Arc<dyn ShardStore>) -> Arc<dyn ShardStore> {
    match std::env::var_os(FAULT_FILE_ENV) {
        Some(path) if !path.is_empty() => {
            tracing::warn!("disk fault injection is enabled ({FAULT_FILE_ENV}); for testing only");
            Arc::new(FaultStore::new(store, PathBuf::from(path)))
        }
        _ => store,
    }
}

fn eio(context: &'static str) -> DataError {
    DataError::Io { context, source: std::io::Error::from_raw_os_error(libc::EIO) }
}

impl FaultStore {
    pub fn new(inner: Arc<dyn ShardStore>, control: PathBuf) -> FaultStore {
        let stale = Instant::now().checked_sub(Duration::from_secs(1)).unwrap_or_else(Instant::now);
        FaultStore { inner, control, current: Mutex::new((stale, DiskFault::None)) }
    }

    fn fault(&self) -> DiskFault {
        let mut g = self.current.lock().unwrap_or_else(|e| e.into_inner());
        if g.0.elapsed() >= Duration::from_millis(100) {
            let text = std::fs::read_to_string(&self.control).unwrap_or_default();
            *g = (Instant::now(), DiskFault::parse(&text));
        }
        g.1
    }

    fn flip(data: &mut [u8], key: &ShardKey) {
        if !data.is_empty() {
            let at = (key.version as usize ^ key.shard_index as usize) % data.len();
            data[at] ^= 0x10;
        }
    }
}

impl ShardStore for FaultStore {
    fn put(&self, key: &ShardKey, data: &[u8], crc32c: u32) -> Result<(), DataError> {
        match self.fault() {
            DiskFault::Eio => Err(eio("write a shard (injected fault)")),
            DiskFault::Enospc => Err(DataError::NoSpace { needed: data.len() as u64, available: 0 }),
            DiskFault::FsyncFail => {
                self.inner.put(key, data, crc32c)?;
                Err(eio("sync a shard (injected fault)"))
            }
            DiskFault::ReadFlip | DiskFault::None => self.inner.put(key, data, crc32c),
        }
    }

    fn get(&self, key: &ShardKey) -> Result<(Vec<u8>, u32), DataError> {
        match self.fault() {
            DiskFault::Eio => Err(eio("read a shard (injected fault)")),
            DiskFault::ReadFlip => {
                let (mut data, crc) = self.inner.get(key)?;
                Self::flip(&mut data, key);
                Ok((data, crc))
            }
            _ => self.inner.get(key),
        }
    }

    fn get_range(&self, key: &ShardKey, offset: u64, len: u64) -> Result<(Vec<u8>, u64), DataError> {
        match self.fault() {
            DiskFault::Eio => Err(eio("read a shard (injected fault)")),
            DiskFault::ReadFlip => {
                let (mut data, total) = self.inner.get_range(key, offset, len)?;
                Self::flip(&mut data, key);
                Ok((data, total))
            }
            _ => self.inner.get_range(key, offset, len),
        }
    }

    fn delete(&self, key: &ShardKey) -> Result<bool, DataError> {
        match self.fault() {
            DiskFault::Eio => Err(eio("delete a shard (injected fault)")),
            _ => self.inner.delete(key),
        }
    }

    fn list(&self) -> Result<Vec<ShardKey>, DataError> {
        self.inner.list()
    }

    fn usage(&self) -> Usage {
        self.inner.usage()
    }

    fn backend(&self) -> Backend {
        self.inner.backend()
    }

    fn modified(&self, key: &ShardKey) -> Option<std::time::SystemTime> {
        self.inner.modified(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_control_file_switches_faults_on_and_off() {
        let dir = tempfile::tempdir().unwrap();
        let inner = crate::open_store(crate::StoreKind::Segment, &dir.path().join("store"), None).unwrap();
        let control = dir.path().join("faults");
        let store = FaultStore::new(inner, control.clone());
        let key = ShardKey { file_id: 1, chunk_index: 0, version: 3, shard_index: 1 };
        let data = vec![7u8; 5000];
        let crc = crc32c::crc32c(&data);
        store.put(&key, &data, crc).unwrap();
        let set = |s: &str| {
            std::fs::write(&control, s).unwrap();
            *store.current.lock().unwrap() = (Instant::now() - Duration::from_secs(1), DiskFault::None);
        };
        set("eio\n");
        assert!(matches!(store.get(&key), Err(DataError::Io { .. })));
        assert!(matches!(store.put(&key, &data, crc), Err(DataError::Io { .. })));
        set("enospc");
        assert!(matches!(store.put(&key, &data, crc), Err(DataError::NoSpace { .. })));
        set("read-flip");
        let (got, got_crc) = store.get(&key).unwrap();
        assert_eq!(got_crc, crc);
        assert_eq!(got.iter().zip(&data).filter(|(a, b)| a != b).count(), 1, "one byte flipped");
        set("fsync-fail");
        let other = ShardKey { version: 4, ..key };
        assert!(store.put(&other, &data, crc).is_err(), "reported failed");
        set("none");
        assert_eq!(store.get(&other).unwrap().0, data, "yet stored");
        assert_eq!(store.get(&key).unwrap().0, data);
    }
}
