//! `shardline bench` rows for random reads: 128 KiB samples at random
//! offsets inside large files, 8 concurrent readers through the native
//! client, beside an in-run baseline of the raw disk under the data folder
//! doing the same reads with O_DIRECT; and that disk's sequential O_DIRECT
//! read rate (4 MiB reads, one stream), the baseline of the cold sequential
//! read through the mount; and its sequential O_DIRECT write rate with
//! [`WRITE_STREAMS`] streams and a final fdatasync, the ceiling of what
//! a write through Shardline (every byte stored (k+m)/k times) can reach.
//!
//! Offsets are 4 KiB-aligned (O_DIRECT needs it; the client does not), so
//! both sides do the same requests. Every sample read through Shardline is
//! verified against the synthetic pattern it was written with.

use std::fs::File;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use rand::{Rng, SeedableRng};
use shardline_client::Client;
use tokio::task::JoinSet;

use crate::synthetic::Pattern;

/// Bytes per sample.
pub const SAMPLE: usize = 128 << 10;
/// Concurrent readers.
pub const READERS: usize = 8;
const ALIGN: u64 = 4096;

/// Concurrent writers of the raw disk's write probe: one per data server
/// of the bench's cluster, each appending its own region.
pub const WRITE_STREAMS: usize = 8;

/// The raw disk's rates, and whether the probe bypassed the page cache.
pub struct RawDisk {
    /// Sequential writes, 1 MiB at a time from [`WRITE_STREAMS`] threads
    /// into their own regions of one file, until fdatasync returned: MB/s.
    pub seq_write_mbps: f64,
    /// Sequential reads, 4 MiB at a time, one stream: MB/s.
    pub seq_mbps: f64,
    /// Random 128 KiB reads, `READERS` threads: reads per second (None
    /// when no samples were asked for).
    pub random_per_s: Option<f64>,
    pub direct_io: bool,
}

/// Random 128 KiB reads from the files `dir/shard-{i:05}.bin` of `sizes`
/// (written with `pattern`): `READERS` tasks, `samples` reads in all.
pub async fn native(client: &Client, dir: &str, pattern: &Pattern, sizes: &[u64], samples: usize) -> Result<f64> {
    let mut readers = Vec::new();
    for (i, &size) in sizes.iter().enumerate() {
        if size >= SAMPLE as u64 {
            readers.push((i as u64, Arc::new(client.open(format!("{dir}/shard-{i:05}.bin")).await?)));
        }
    }
    if readers.is_empty() {
        bail!("random reads need files of at least {SAMPLE} bytes");
    }
    let readers = Arc::new(readers);
    let per = samples.div_ceil(READERS);
    let start = Instant::now();
    let mut tasks = JoinSet::new();
    for t in 0..READERS {
        let (readers, pattern) = (readers.clone(), pattern.clone());
        tasks.spawn(async move {
            let mut rng = rand::rngs::StdRng::seed_from_u64(t as u64);
            for _ in 0..per {
                let (file, reader) = &readers[rng.gen_range(0..readers.len())];
                let offset = random_offset(&mut rng, reader.size());
                let got = reader.read_at(offset, SAMPLE).await?;
                if got.len() != SAMPLE || !pattern.matches(*file, offset, &got) {
                    bail!("random read of file {file} at {offset} returned wrong bytes");
                }
            }
            Ok::<(), anyhow::Error>(())
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.context("random read task")??;
    }
    Ok((per * READERS) as f64 / start.elapsed().as_secs_f64())
}

/// The raw disk's rates: a `file_bytes` file under `dir`, written and
/// synced, read once sequentially and then `samples` times at random (the
/// same reads as [`native`]), with O_DIRECT (buffered, after dropping the
/// file from the page cache before each pass, where the file system refuses
/// O_DIRECT).
pub fn raw_disk(dir: &Path, file_bytes: u64, samples: usize) -> Result<RawDisk> {
    let path = dir.join("raw-disk-probe.bin");
    let file_bytes = file_bytes.max(64 * SAMPLE as u64) / ALIGN * ALIGN;
    let written = write_probe(&path, file_bytes);
    let r = written.and_then(|seq_write_mbps| probe(&path, file_bytes, samples, seq_write_mbps));
    let _ = std::fs::remove_file(&path);
    r
}

/// Write the probe file: [`WRITE_STREAMS`] threads, each its own contiguous
/// region in 1 MiB `O_DIRECT` writes of random bytes (buffered where the
/// file system refuses O_DIRECT), then one `fdatasync`. MB/s.
fn write_probe(path: &Path, file_bytes: u64) -> Result<f64> {
    const WRITE: usize = 1 << 20;
    let direct =
        std::fs::OpenOptions::new().write(true).create(true).truncate(true).custom_flags(libc::O_DIRECT).open(path);
    let file = match direct {
        Ok(f) => f,
        Err(_) => File::create(path).with_context(|| format!("create {}", path.display()))?,
    };
    let file = Arc::new(file);
    let per_stream = (file_bytes / WRITE_STREAMS as u64).div_ceil(WRITE as u64) * WRITE as u64;
    let mut block = AlignedBuf::new(WRITE);
    rand::thread_rng().fill(block.as_mut());
    let block = Arc::new(block.as_mut().to_vec());
    let start = Instant::now();
    let threads: Vec<_> = (0..WRITE_STREAMS as u64)
        .map(|t| {
            let (file, block) = (file.clone(), block.clone());
            std::thread::spawn(move || -> std::io::Result<()> {
                let mut buf = AlignedBuf::new(WRITE);
                buf.as_mut().copy_from_slice(&block);
                let mut offset = t * per_stream;
                while offset < (t + 1) * per_stream {
                    file.write_all_at(buf.as_mut(), offset)?;
                    offset += WRITE as u64;
                }
                Ok(())
            })
        })
        .collect();
    for t in threads {
        t.join().map_err(|_| anyhow::anyhow!("disk probe thread panicked"))?.context("write the probe file")?;
    }
    file.sync_data().context("sync the probe file")?;
    Ok((per_stream * WRITE_STREAMS as u64) as f64 / start.elapsed().as_secs_f64() / 1e6)
}

fn probe(path: &Path, file_bytes: u64, samples: usize, seq_write_mbps: f64) -> Result<RawDisk> {
    let direct = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_DIRECT).open(path);
    let (file, direct_io) = match direct {
        Ok(f) => (f, true),
        Err(_) => (File::open(path)?, false),
    };
    let drop_cache = |f: &File| {
        if !direct_io {
            // SAFETY: plain syscall on a file descriptor we own.
            unsafe { libc::posix_fadvise(std::os::fd::AsRawFd::as_raw_fd(f), 0, 0, libc::POSIX_FADV_DONTNEED) };
        }
    };
    drop_cache(&file);
    let mut buf = AlignedBuf::new(4 << 20);
    let start = Instant::now();
    let mut offset = 0;
    while offset < file_bytes {
        let n = (file_bytes - offset).min(buf.as_mut().len() as u64) as usize;
        file.read_exact_at(&mut buf.as_mut()[..n], offset).context("read the probe file")?;
        offset += n as u64;
    }
    let seq_mbps = file_bytes as f64 / start.elapsed().as_secs_f64() / 1e6;
    if samples == 0 {
        return Ok(RawDisk { seq_write_mbps, seq_mbps, random_per_s: None, direct_io });
    }
    drop_cache(&file);
    let file = Arc::new(file);
    let per = samples.div_ceil(READERS);
    let start = Instant::now();
    let threads: Vec<_> = (0..READERS)
        .map(|t| {
            let file = file.clone();
            std::thread::spawn(move || -> std::io::Result<()> {
                let mut buf = AlignedBuf::new(SAMPLE);
                let mut rng = rand::rngs::StdRng::seed_from_u64(1000 + t as u64);
                for _ in 0..per {
                    let offset = random_offset(&mut rng, file_bytes);
                    file.read_exact_at(buf.as_mut(), offset)?;
                }
                Ok(())
            })
        })
        .collect();
    for t in threads {
        t.join().map_err(|_| anyhow::anyhow!("disk probe thread panicked"))?.context("read the probe file")?;
    }
    let per_s = (per * READERS) as f64 / start.elapsed().as_secs_f64();
    Ok(RawDisk { seq_write_mbps, seq_mbps, random_per_s: Some(per_s), direct_io })
}

/// A 4 KiB-aligned offset with a whole sample before `size`.
fn random_offset(rng: &mut impl Rng, size: u64) -> u64 {
    let slots = (size - SAMPLE as u64) / ALIGN + 1;
    rng.gen_range(0..slots) * ALIGN
}

/// A zeroed buffer aligned for O_DIRECT.
pub struct AlignedBuf {
    ptr: *mut u8,
    layout: std::alloc::Layout,
}

impl AlignedBuf {
    /// `len` bytes, rounded up to a multiple of 4 KiB.
    pub fn new(len: usize) -> AlignedBuf {
        let len = len.div_ceil(ALIGN as usize).max(1) * ALIGN as usize;
        let layout = std::alloc::Layout::from_size_align(len, ALIGN as usize).expect("valid layout");
        // SAFETY: the layout has a non-zero size.
        let ptr = unsafe { std::alloc::alloc_zeroed(layout) };
        if ptr.is_null() {
            std::alloc::handle_alloc_error(layout);
        }
        AlignedBuf { ptr, layout }
    }

    pub fn as_mut(&mut self) -> &mut [u8] {
        // SAFETY: `ptr` points to `layout.size()` initialized (zeroed) bytes
        // owned by this buffer, and `&mut self` makes the borrow unique.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.layout.size()) }
    }
}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this very layout.
        unsafe { std::alloc::dealloc(self.ptr, self.layout) };
    }
}
