//! The data workload through the native client. Each writer owns a few
//! files (`/nemesis/w<writer>/f<file>`) and replaces them whole (a new file
//! renamed over the old: `Client::create`), overwrites ranges in place or
//! appends (`FileHandle::write_at` + `flush`), from 1 byte to several
//! chunks; readers read whole files or ranges of anyone's files. Every
//! write is entered in its file's [`FileModel`] before it is sent and its
//! outcome after; every read is checked against the model as it returns.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use shardline_client::{Client, ClientError, FileHandle};
use shardline_rpc::MetaCallError;
use shardline_types::ErrorCode;

use crate::content::{fill, FileModel, ReadCheck, WriteKind};

/// Counters every workload adds to.
#[derive(Debug, Default)]
pub struct Stats {
    pub writes_ok: AtomicU64,
    pub writes_failed: AtomicU64,
    pub reads_ok: AtomicU64,
    pub reads_failed: AtomicU64,
    pub bytes_checked: AtomicU64,
    pub wrong_bytes: AtomicU64,
    pub stale_bytes: AtomicU64,
    /// Reads with wrong or stale bytes (or a missing file that must exist).
    pub bad_reads: AtomicU64,
    /// Reads with bytes no write put there.
    pub wrong_reads: AtomicU64,
    /// Reads with stale or missing bytes.
    pub stale_reads: AtomicU64,
    pub first_bad: Mutex<Vec<String>>,
}

impl Stats {
    pub fn record_read(&self, what: impl FnOnce() -> String, c: &ReadCheck) {
        self.reads_ok.fetch_add(1, Ordering::Relaxed);
        self.bytes_checked.fetch_add(c.bytes_checked, Ordering::Relaxed);
        if !c.ok() {
            self.bad(&what(), c.wrong, c.stale, c.first_bad.clone().unwrap_or_default());
        }
    }

    pub fn bad(&self, what: &str, wrong: u64, stale: u64, detail: String) {
        self.wrong_bytes.fetch_add(wrong, Ordering::Relaxed);
        self.stale_bytes.fetch_add(stale, Ordering::Relaxed);
        self.bad_reads.fetch_add(1, Ordering::Relaxed);
        self.wrong_reads.fetch_add(u64::from(wrong > 0), Ordering::Relaxed);
        self.stale_reads.fetch_add(u64::from(stale > 0), Ordering::Relaxed);
        let mut g = self.first_bad.lock().unwrap_or_else(|e| e.into_inner());
        if g.len() < 20 {
            eprintln!("nemesis: BAD READ {what}: {detail}");
            g.push(format!("{what}: {detail}"));
        }
    }
}

/// One file of the workload.
pub struct File {
    pub path: String,
    /// Its directory's inode and its name there.
    pub parent: u64,
    pub name: String,
    pub model: Mutex<FileModel>,
}

impl File {
    /// Record a write to this file starting: its index in the model, its
    /// version and the file's content key.
    pub fn begin_write(&self, kind: WriteKind, t0: Instant) -> (usize, u64, u64) {
        let mut m = self.model.lock().unwrap_or_else(|e| e.into_inner());
        let version = m.writes.len() as u64 + 1;
        let idx = m.begin(version, kind, now(t0));
        (idx, version, m.key)
    }

    /// Record write `idx` ending, acknowledged (`ok`) or not.
    pub fn end_write(&self, idx: usize, ok: bool, t0: Instant, stats: &Stats) {
        self.model.lock().unwrap_or_else(|e| e.into_inner()).end(idx, now(t0), ok);
        let c = if ok { &stats.writes_ok } else { &stats.writes_failed };
        c.fetch_add(1, Ordering::Relaxed);
    }
}

pub struct DataLoad {
    pub t0: Instant,
    pub files: Vec<File>,
    pub writers: usize,
    pub chunk: u64,
    pub stats: Arc<Stats>,
    pub stop: Arc<AtomicBool>,
}

pub fn now(t0: Instant) -> u64 {
    t0.elapsed().as_nanos() as u64
}

pub fn is_not_found(e: &ClientError) -> bool {
    matches!(e, ClientError::Meta(MetaCallError::Service { code: ErrorCode::NotFound, .. }))
}

/// A length from 1 byte to several chunks, often near a chunk boundary.
pub fn draw_len(rng: &mut StdRng, chunk: u64) -> u64 {
    match rng.gen_range(0..10) {
        0 => 1,
        1..=3 => rng.gen_range(1..=4096),
        4..=6 => rng.gen_range(chunk - 64..=chunk + 64),
        _ => rng.gen_range(1..=4 * chunk + chunk / 2),
    }
}

impl DataLoad {
    /// Writer `w`: its files are those with index ≡ w (mod writers).
    pub async fn writer(self: Arc<Self>, client: Client, w: usize, seed: u64) {
        let mut rng = StdRng::seed_from_u64(seed ^ 0xd47a ^ ((w as u64) << 16));
        let mine: Vec<usize> = (0..self.files.len()).filter(|i| i % self.writers == w).collect();
        while !self.stop.load(Ordering::Relaxed) {
            let i = mine[rng.gen_range(0..mine.len())];
            let f = &self.files[i];
            let exists = f.model.lock().unwrap_or_else(|e| e.into_inner()).may_exist();
            let roll = rng.gen_range(0..10);
            if !exists || roll < 4 {
                self.replace(&client, f, draw_len(&mut rng, self.chunk)).await;
            } else {
                self.patch(&client, f, &mut rng, roll < 7).await;
            }
            tokio::time::sleep(std::time::Duration::from_millis(rng.gen_range(0..20))).await;
        }
    }

    fn begin(&self, f: &File, kind: WriteKind) -> (usize, u64, u64) {
        f.begin_write(kind, self.t0)
    }

    fn end(&self, f: &File, idx: usize, ok: bool) {
        f.end_write(idx, ok, self.t0, &self.stats);
    }

    async fn replace(&self, client: &Client, f: &File, len: u64) {
        let (idx, version, key) = self.begin(f, WriteKind::Replace { len });
        let data = fill(key, version, 0, len as usize);
        let r = async {
            let mut w = client.create(&f.path).await?;
            w.write(&data).await?;
            w.finish().await
        }
        .await;
        self.end(f, idx, r.is_ok());
    }

    /// Overwrite a range inside the file, or append (`append`).
    async fn patch(&self, client: &Client, f: &File, rng: &mut StdRng, append: bool) {
        let handle = match client.inodes().lookup(f.parent, &f.name).await {
            Ok(a) => FileHandle::open(client, a.ino).await,
            Err(e) => Err(e),
        };
        let Ok(handle) = handle else { return };
        let size = handle.size();
        let max = 6 * self.chunk;
        let off = if append || size == 0 { size } else { rng.gen_range(0..size) };
        let len = rng.gen_range(1..=2 * self.chunk).min(max.saturating_sub(off));
        if len == 0 {
            return self.replace(client, f, draw_len(rng, self.chunk)).await;
        }
        let (idx, version, key) = self.begin(f, WriteKind::Patch { off, len });
        let data = fill(key, version, off, len as usize);
        let r = async {
            handle.write_at(off, &data).await?;
            handle.flush().await
        }
        .await;
        self.end(f, idx, r.is_ok());
    }

    /// A reader: whole files or ranges of any file.
    pub async fn reader(self: Arc<Self>, client: Client, r: usize, seed: u64) {
        let mut rng = StdRng::seed_from_u64(seed ^ 0x4ead ^ ((r as u64) << 16));
        while !self.stop.load(Ordering::Relaxed) {
            let f = &self.files[rng.gen_range(0..self.files.len())];
            let whole = rng.gen_bool(0.4);
            let call = now(self.t0);
            let must_exist = {
                let m = f.model.lock().unwrap_or_else(|e| e.into_inner());
                m.writes.iter().any(|w| w.ret.is_some_and(|r| r < call) && w.outcome == crate::content::Outcome::Acked)
            };
            let result = async {
                if whole {
                    let data = client.read_file(&f.path).await?;
                    return Ok::<_, ClientError>((0, None, data));
                }
                let reader = client.open(&f.path).await?;
                let size = reader.size().max(1);
                let off = rng.gen_range(0..size + 100);
                let len = rng.gen_range(1..=2 * self.chunk) as usize;
                Ok((off, Some(len as u64), reader.read_at(off, len).await?.to_vec()))
            }
            .await;
            let ret = now(self.t0);
            match result {
                Ok((off, asked, data)) => {
                    let m = f.model.lock().unwrap_or_else(|e| e.into_inner()).clone();
                    let asked = asked.unwrap_or_else(|| m.max_size().max(data.len() as u64));
                    let c = m.check_read(off, asked, &data, call, ret);
                    let what = || {
                        format!("native read of {} at {off} ({} bytes; {})", f.path, data.len(), m.describe(call, ret))
                    };
                    self.stats.record_read(what, &c);
                }
                Err(e) if is_not_found(&e) && must_exist => {
                    let m = f.model.lock().unwrap_or_else(|e| e.into_inner()).clone();
                    let detail = format!("file not found ({e}; {})", m.describe(call, ret));
                    self.stats.bad(&format!("native read of {}", f.path), 0, 1, detail)
                }
                Err(_) => {
                    self.stats.reads_failed.fetch_add(1, Ordering::Relaxed);
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(rng.gen_range(0..20))).await;
        }
    }
}
