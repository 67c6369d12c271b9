//! The small-file rows of `shardline bench`: a set of files of 64–128 KiB
//! (sizes and bytes from the synthetic pattern, the same every run) in 100
//! folders, written with 8 threads and read back in a shuffled order with 8
//! threads, every byte verified:
//! - through the mount (written through one mount, read through a fresh
//!   one: nothing in that mount's page cache or the client's caches);
//! - through the native client (8 concurrent `read_file` tasks, and the
//!   prefetch API with a window of 8 items), on a fresh `Client`;
//! - on the data folder's own file system with plain `std::fs`, as the
//!   baseline: create, write, close (no fsync per file, which is what
//!   close() gives on ext4 too), then after one untimed `syncfs`, reads
//!   with O_DIRECT so the bytes come from the device (directory entries
//!   and inodes stay in memory; there is no dropping caches without root),
//!   or warm buffered reads where the file system refuses O_DIRECT.

use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use shardline_client::{Client, PrefetchConfig, PrefetchItem};
use shardline_types::placement::mix64;
use tokio::task::JoinSet;

use crate::bench_random::AlignedBuf;
use crate::synthetic::Pattern;

/// Threads (or tasks) writing and reading.
pub const THREADS: usize = 8;
const FOLDERS: usize = 100;
const MIN: u64 = 64 << 10;
const MAX: u64 = 128 << 10;

/// The files: their sizes and contents.
#[derive(Clone)]
pub struct SmallSet {
    pattern: Pattern,
    sizes: Arc<Vec<u64>>,
}

/// Files and bytes moved in how long.
#[derive(Debug, Clone, Copy, Default)]
pub struct Rate {
    pub files: usize,
    pub bytes: u64,
    pub secs: f64,
}

impl Rate {
    pub fn files_per_s(&self) -> f64 {
        self.files as f64 / self.secs.max(1e-9)
    }
    pub fn mbps(&self) -> f64 {
        self.bytes as f64 / self.secs.max(1e-9) / 1e6
    }
}

impl SmallSet {
    pub fn new(files: usize) -> SmallSet {
        let sizes = (0..files as u64).map(|i| MIN + mix64(0x5_3a11 ^ i) % (MAX - MIN + 1)).collect();
        SmallSet { pattern: Pattern::new(43), sizes: Arc::new(sizes) }
    }

    pub fn len(&self) -> usize {
        self.sizes.len()
    }

    pub fn bytes(&self) -> u64 {
        self.sizes.iter().sum()
    }

    /// File `i`'s path under the set's root.
    fn rel(i: usize) -> String {
        format!("d{:02}/f{i:06}", i % FOLDERS)
    }

    /// Folders the files are spread over: 100, or one per file if fewer.
    pub fn folder_count(&self) -> usize {
        FOLDERS.min(self.len())
    }

    fn folders(&self) -> impl Iterator<Item = String> {
        (0..self.folder_count()).map(|d| format!("d{d:02}"))
    }

    fn fill(&self, i: usize, buf: &mut Vec<u8>) {
        buf.resize(self.sizes[i] as usize, 0);
        self.pattern.fill(i as u64, 0, buf);
    }

    fn check(&self, i: usize, got: &[u8]) -> Result<()> {
        if got.len() as u64 != self.sizes[i] || !self.pattern.matches(i as u64, 0, got) {
            bail!("small file {i} read back wrong ({} of {} bytes)", got.len(), self.sizes[i]);
        }
        Ok(())
    }

    /// Every index, in an order shuffled the same way every run.
    fn shuffled(&self) -> Arc<Vec<usize>> {
        let mut order: Vec<usize> = (0..self.len()).collect();
        order.shuffle(&mut rand::rngs::StdRng::seed_from_u64(7));
        Arc::new(order)
    }
}

/// Run `op(file index)` over `order` on `THREADS` threads; the rate.
fn threaded(set: &SmallSet, order: &[usize], op: impl Fn(usize) -> Result<()> + Sync) -> Result<Rate> {
    let next = AtomicUsize::new(0);
    let start = Instant::now();
    std::thread::scope(|s| -> Result<()> {
        let handles: Vec<_> = (0..THREADS)
            .map(|_| {
                s.spawn(|| -> Result<()> {
                    while let Some(&i) = order.get(next.fetch_add(1, Ordering::Relaxed)) {
                        op(i)?;
                    }
                    Ok(())
                })
            })
            .collect();
        for h in handles {
            h.join().map_err(|_| anyhow::anyhow!("small-file thread panicked"))??;
        }
        Ok(())
    })?;
    Ok(Rate {
        files: order.len(),
        bytes: order.iter().map(|&i| set.sizes[i]).sum(),
        secs: start.elapsed().as_secs_f64(),
    })
}

/// Write the set under `root` (the mount or a local folder): folders made
/// first (untimed), then each file created, written and closed, no fsync.
pub fn write_fs(root: &Path, set: &SmallSet) -> Result<Rate> {
    for d in set.folders() {
        std::fs::create_dir_all(root.join(d)).with_context(|| format!("create a folder under {}", root.display()))?;
    }
    let order: Vec<usize> = (0..set.len()).collect();
    threaded(set, &order, |i| {
        let mut buf = Vec::new();
        set.fill(i, &mut buf);
        let mut f = std::fs::File::create(root.join(SmallSet::rel(i))).context("create a small file")?;
        f.write_all(&buf).context("write a small file")?;
        close(f).context("close a small file")
    })
}

/// Read the set under `root` back in the shuffled order, verifying it;
/// with `direct`, through O_DIRECT (if the file system allows it: the
/// second value says whether it did).
pub fn read_fs(root: &Path, set: &SmallSet, direct: bool) -> Result<(Rate, bool)> {
    let direct = direct && direct_ok(&root.join(SmallSet::rel(0)));
    if direct {
        let dir = std::fs::File::open(root)?;
        // SAFETY: syncfs on a descriptor we own; no memory is passed.
        if unsafe { libc::syncfs(std::os::fd::AsRawFd::as_raw_fd(&dir)) } != 0 {
            return Err(std::io::Error::last_os_error()).context("syncfs before the O_DIRECT reads");
        }
    }
    let rate = threaded(set, &set.shuffled(), |i| {
        let path = root.join(SmallSet::rel(i));
        if direct {
            let f = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_DIRECT).open(&path)?;
            let mut buf = AlignedBuf::new(set.sizes[i] as usize);
            let got = read_direct(&f, buf.as_mut()).context("read a small file with O_DIRECT")?;
            set.check(i, &buf.as_mut()[..got])
        } else {
            let mut buf = Vec::with_capacity(set.sizes[i] as usize);
            std::fs::File::open(&path)?.read_to_end(&mut buf).context("read a small file")?;
            set.check(i, &buf)
        }
    })?;
    Ok((rate, direct))
}

/// Close `f`, returning the error a file system reports at close (through
/// the mount, where the file is committed), which dropping it would hide.
fn close(f: std::fs::File) -> std::io::Result<()> {
    let fd = std::os::fd::IntoRawFd::into_raw_fd(f);
    // SAFETY: `fd` was just released from the `File` that owned it: closed
    // exactly once, here.
    if unsafe { libc::close(fd) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

fn direct_ok(path: &Path) -> bool {
    std::fs::OpenOptions::new().read(true).custom_flags(libc::O_DIRECT).open(path).is_ok()
}

/// Read a whole file with O_DIRECT into `buf` (aligned, at least the file's
/// size rounded up to 4 KiB): the bytes read.
fn read_direct(mut f: &std::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    loop {
        let n = f.read(&mut buf[got..])?;
        got += n;
        // A short read (not a whole number of blocks) is the end of file.
        if n == 0 || got % 4096 != 0 || got == buf.len() {
            return Ok(got);
        }
    }
}

/// Write the set under `root` through the native client, `THREADS` tasks
/// (when there is no mount to write through).
pub async fn write_native(client: &Client, root: &str, set: &SmallSet) -> Result<Rate> {
    client.mkdir(root).await?;
    for d in set.folders() {
        client.mkdir(format!("{root}/{d}")).await?;
    }
    let order: Arc<Vec<usize>> = Arc::new((0..set.len()).collect());
    tasks(client, root, set, order, |client, path, set, i| async move {
        let mut buf = Vec::new();
        set.fill(i, &mut buf);
        client.write_file(&path, &buf).await?;
        Ok(())
    })
    .await
}

/// Read the set under `root` through the native client: `THREADS` tasks
/// reading whole files, shuffled order, verified.
pub async fn read_native(client: &Client, root: &str, set: &SmallSet) -> Result<Rate> {
    tasks(client, root, set, set.shuffled(), |client, path, set, i| async move {
        set.check(i, &client.read_file(&path).await?)
    })
    .await
}

async fn tasks<F, Fut>(client: &Client, root: &str, set: &SmallSet, order: Arc<Vec<usize>>, op: F) -> Result<Rate>
where
    F: Fn(Client, String, SmallSet, usize) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = Result<()>> + Send,
{
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut all = JoinSet::new();
    for _ in 0..THREADS {
        let (client, set, order, next, op, root) =
            (client.clone(), set.clone(), order.clone(), next.clone(), op.clone(), root.to_string());
        all.spawn(async move {
            while let Some(&i) = order.get(next.fetch_add(1, Ordering::Relaxed)) {
                op(client.clone(), format!("{root}/{}", SmallSet::rel(i)), set.clone(), i).await?;
            }
            Ok::<(), anyhow::Error>(())
        });
    }
    while let Some(r) = all.join_next().await {
        r.context("small-file task")??;
    }
    Ok(Rate {
        files: order.len(),
        bytes: order.iter().map(|&i| set.sizes[i]).sum(),
        secs: start.elapsed().as_secs_f64(),
    })
}

/// Read the set under `root` through the prefetch (data-loader) API, a
/// window of `THREADS` items, shuffled order, verified.
pub async fn read_prefetch(client: &Client, root: &str, set: &SmallSet) -> Result<Rate> {
    let order = set.shuffled();
    let items = order.iter().map(|&i| PrefetchItem::File(PathBuf::from(format!("{root}/{}", SmallSet::rel(i)))));
    let cfg = PrefetchConfig { window_items: THREADS, ..PrefetchConfig::default() };
    let start = Instant::now();
    let mut stream = client.prefetch(items.collect(), cfg);
    while let Some(got) = stream.next().await {
        let i = order[got.index];
        set.check(i, &got.data.with_context(|| format!("prefetch small file {i}"))?)?;
    }
    Ok(Rate { files: order.len(), bytes: set.bytes(), secs: start.elapsed().as_secs_f64() })
}

/// Through the mount: write the set under `rel` (a folder of the cluster's
/// namespace, made here) through one mount, then read it back through a
/// fresh one. Blocking: call it off the runtime.
pub fn through_mount(cluster_file: &Path, mnt: &Path, rel: &str, set: &SmallSet) -> Result<(Rate, Rate)> {
    let write = {
        let m = crate::bench_fuse::Mount::start(cluster_file, mnt)?;
        let root = m.dir.join(rel);
        std::fs::create_dir_all(&root).context("create the small-file folder through the mount")?;
        write_fs(&root, set)?
    };
    let m = crate::bench_fuse::Mount::start(cluster_file, mnt)?;
    let (read, _) = read_fs(&m.dir.join(rel), set, false)?;
    Ok((write, read))
}

/// The local-disk baseline in a fresh folder `dir` (removed after): the
/// write, the read, and whether the read used O_DIRECT.
pub fn local(dir: &Path, set: &SmallSet) -> Result<(Rate, Rate, bool)> {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    let r = write_fs(dir, set).and_then(|w| read_fs(dir, set, true).map(|(r, direct)| (w, r, direct)));
    let _ = std::fs::remove_dir_all(dir);
    r
}
