//! Free space on the file system under the store, cached: asked of the
//! kernel (`statvfs`) at most about once a second, or sooner once the store
//! has appended a sixteenth of what was free, rather than on every put.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::disk::available_bytes;

/// Ask the kernel again after this long.
const REFRESH_EVERY: Duration = Duration::from_secs(1);

/// The file system's free bytes, as last asked, minus what was appended since.
#[derive(Debug)]
pub(crate) struct SpaceCache {
    path: PathBuf,
    free: u64,
    appended: u64,
    asked: Option<Instant>,
    /// How many times the kernel was asked (for tests).
    pub(crate) queries: u64,
}

impl SpaceCache {
    pub(crate) fn new(path: PathBuf) -> SpaceCache {
        SpaceCache { path, free: 0, appended: 0, asked: None, queries: 0 }
    }

    /// Free bytes now (an estimate between refreshes, never above the truth
    /// by more than what other programs wrote since).
    pub(crate) fn free(&mut self) -> u64 {
        let stale = self.asked.is_none_or(|t| t.elapsed() >= REFRESH_EVERY) || self.appended > self.free / 16;
        if stale {
            self.refresh();
        }
        self.free.saturating_sub(self.appended)
    }

    /// Ask the kernel now.
    pub(crate) fn refresh(&mut self) {
        self.queries += 1;
        match available_bytes(&self.path) {
            Ok(free) => {
                self.free = free;
                self.appended = 0;
                self.asked = Some(Instant::now());
            }
            Err(e) => tracing::debug!(error = %e.chain(), "cannot query free space"),
        }
    }

    /// The store appended `n` bytes to its files.
    pub(crate) fn appended(&mut self, n: u64) {
        self.appended = self.appended.saturating_add(n);
    }

    /// Files were removed: ask again next time.
    pub(crate) fn invalidate(&mut self) {
        self.asked = None;
    }
}
