//! The same data workload through the FUSE mount, with plain file system
//! calls on threads: replace (write a temporary file, fsync, rename it over
//! the old one), overwrite in place or append (pwrite / O_APPEND, fsync,
//! close), and reads (whole files or ranges). A write counts as
//! acknowledged once its fsync and close (or rename) returned; its files are
//! written and read only through the mount, so the kernel's caches never
//! see another client's changes. A missing file is not a bad read here
//! (while the mount is down its directory is empty); the final read through
//! the native client checks existence.

use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::content::{fill, WriteKind};
use crate::data_load::{draw_len, now, File, Stats};

pub struct FuseLoad {
    pub t0: Instant,
    pub mount: PathBuf,
    /// Paths are relative to the cluster's root (`/nemesis/fuse/...`).
    pub files: Vec<File>,
    pub writers: usize,
    pub chunk: u64,
    pub stats: Arc<Stats>,
    pub stop: Arc<AtomicBool>,
}

impl FuseLoad {
    fn local(&self, f: &File) -> PathBuf {
        self.mount.join(f.path.trim_start_matches('/'))
    }

    pub fn writer(&self, w: usize, seed: u64) {
        let mut rng = StdRng::seed_from_u64(seed ^ 0xf5e ^ ((w as u64) << 16));
        let mine: Vec<usize> = (0..self.files.len()).filter(|i| i % self.writers == w).collect();
        let mut n = 0u64;
        while !self.stop.load(Ordering::Relaxed) {
            let f = &self.files[mine[rng.gen_range(0..mine.len())]];
            let exists = f.model.lock().unwrap_or_else(|e| e.into_inner()).may_exist();
            let roll = rng.gen_range(0..10);
            n += 1;
            if !exists || roll < 4 {
                self.replace(f, draw_len(&mut rng, self.chunk), n);
            } else {
                self.patch(f, &mut rng, roll < 7);
            }
            std::thread::sleep(Duration::from_millis(rng.gen_range(0..30)));
        }
    }

    fn begin(&self, f: &File, kind: WriteKind) -> (usize, u64, u64) {
        f.begin_write(kind, self.t0)
    }

    fn end(&self, f: &File, idx: usize, ok: bool) {
        f.end_write(idx, ok, self.t0, &self.stats);
    }

    fn replace(&self, f: &File, len: u64, n: u64) {
        let path = self.local(f);
        let tmp = path.with_file_name(format!("{}.tmp{n}", f.name));
        let (idx, version, key) = self.begin(f, WriteKind::Replace { len });
        let data = fill(key, version, 0, len as usize);
        let r = (|| -> std::io::Result<()> {
            let mut file = OpenOptions::new().write(true).create(true).truncate(true).open(&tmp)?;
            file.write_all(&data)?;
            file.sync_all()?;
            drop(file);
            std::fs::rename(&tmp, &path)
        })();
        if r.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        self.end(f, idx, r.is_ok());
    }

    fn patch(&self, f: &File, rng: &mut StdRng, append: bool) {
        let path = self.local(f);
        let Ok(file) = OpenOptions::new().write(true).append(append).open(&path) else { return };
        let Ok(meta) = file.metadata() else { return };
        let size = meta.len();
        let max = 6 * self.chunk;
        let off = if append || size == 0 { size } else { rng.gen_range(0..size) };
        let len = rng.gen_range(1..=2 * self.chunk).min(max.saturating_sub(off));
        if len == 0 {
            return;
        }
        let (idx, version, key) = self.begin(f, WriteKind::Patch { off, len });
        let data = fill(key, version, off, len as usize);
        let r = (|| -> std::io::Result<()> {
            let mut file = file;
            if append {
                file.write_all(&data)?;
            } else {
                file.write_all_at(&data, off)?;
            }
            file.sync_all()?;
            // close(2) reports errors the flush found; std ignores them,
            // but the fsync above already covered every byte.
            drop(file);
            Ok(())
        })();
        self.end(f, idx, r.is_ok());
    }

    pub fn reader(&self, r: usize, seed: u64) {
        let mut rng = StdRng::seed_from_u64(seed ^ 0xf4ead ^ ((r as u64) << 16));
        while !self.stop.load(Ordering::Relaxed) {
            let f = &self.files[rng.gen_range(0..self.files.len())];
            let whole = rng.gen_bool(0.4);
            let call = now(self.t0);
            let result = (|| -> std::io::Result<(u64, Option<u64>, Vec<u8>)> {
                let mut file = std::fs::File::open(self.local(f))?;
                if whole {
                    let mut data = Vec::new();
                    file.read_to_end(&mut data)?;
                    return Ok((0, None, data));
                }
                let size = file.metadata()?.len().max(1);
                let off = rng.gen_range(0..size + 100);
                let len = rng.gen_range(1..=2 * self.chunk) as usize;
                let mut buf = vec![0u8; len];
                let mut got = 0;
                while got < len {
                    let k = file.read_at(&mut buf[got..], off + got as u64)?;
                    if k == 0 {
                        break;
                    }
                    got += k;
                }
                buf.truncate(got);
                Ok((off, Some(len as u64), buf))
            })();
            let ret = now(self.t0);
            match result {
                Ok((off, asked, data)) => {
                    let m = f.model.lock().unwrap_or_else(|e| e.into_inner()).clone();
                    let asked = asked.unwrap_or_else(|| m.max_size().max(data.len() as u64));
                    let c = m.check_read(off, asked, &data, call, ret);
                    let what = || {
                        format!("mount read of {} at {off} ({} bytes; {})", f.path, data.len(), m.describe(call, ret))
                    };
                    self.stats.record_read(what, &c);
                }
                Err(_) => {
                    self.stats.reads_failed.fetch_add(1, Ordering::Relaxed);
                }
            }
            std::thread::sleep(Duration::from_millis(rng.gen_range(0..30)));
        }
    }
}
