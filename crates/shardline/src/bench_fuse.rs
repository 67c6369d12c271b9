//! The FUSE part of `shardline bench`: the same workloads through a real
//! `shardline mount` (a child process) — sequential write and read of the
//! synthetic shards with 1 MiB system calls, and metadata operations as a
//! program would issue them (open/create, stat, rename, unlink).

use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::bench_latency::{breakdown, WriteProbe};
use crate::synthetic::Pattern;
use crate::workload::Phase;

/// A `shardline mount` child, unmounted when dropped.
pub struct Mount {
    child: Child,
    pub dir: PathBuf,
}

impl Mount {
    pub fn start(cluster_file: &Path, dir: &Path) -> Result<Mount> {
        std::fs::create_dir_all(dir)?;
        let parent_dev = std::fs::metadata(dir)?.dev();
        let child = Command::new(std::env::current_exe()?)
            .arg("--cluster")
            .arg(cluster_file)
            .arg("mount")
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .context("start shardline mount")?;
        let mut m = Mount { child, dir: dir.to_path_buf() };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if std::fs::metadata(dir).map(|md| md.dev() != parent_dev).unwrap_or(false) {
                return Ok(m);
            }
            if let Ok(Some(status)) = m.child.try_wait() {
                bail!("shardline mount exited ({status}); is /dev/fuse available and fuse3 installed?");
            }
            if Instant::now() > deadline {
                bail!("the mount did not appear within 60 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Mount {
    /// The mount process's id (for CPU accounting).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        // SAFETY: signalling our own child; it unmounts on SIGTERM.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

/// Write the files through the mount, 1 MiB at a time, fsync each.
pub fn write_files(dir: &Path, pattern: &Pattern, sizes: &[u64]) -> Result<Phase> {
    let start = Instant::now();
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0;
    for (i, &size) in sizes.iter().enumerate() {
        let mut f = std::fs::File::create(dir.join(format!("shard-{i:05}.bin")))?;
        let mut off = 0u64;
        while off < size {
            let n = (size - off).min(buf.len() as u64) as usize;
            pattern.fill(i as u64, off, &mut buf[..n]);
            f.write_all(&buf[..n])?;
            off += n as u64;
        }
        f.sync_all()?;
        total += size;
    }
    Ok(Phase { bytes: total, secs: start.elapsed().as_secs_f64(), first_bad: None })
}

/// Read the files back through a (fresh, cold) mount, verifying every byte.
pub fn read_files(dir: &Path, pattern: &Pattern, sizes: &[u64]) -> Result<Phase> {
    let start = Instant::now();
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0;
    for (i, &size) in sizes.iter().enumerate() {
        let mut f = std::fs::File::open(dir.join(format!("shard-{i:05}.bin")))?;
        let mut off = 0u64;
        loop {
            let n = f.read(&mut buf)?;
            if n == 0 {
                break;
            }
            if !pattern.matches(i as u64, off, &buf[..n]) {
                bail!("wrong bytes through the mount in file {i} at offset {off}");
            }
            off += n as u64;
        }
        if off != size {
            bail!("file {i}: read {off} of {size} bytes through the mount");
        }
        total += off;
    }
    Ok(Phase { bytes: total, secs: start.elapsed().as_secs_f64(), first_bad: None })
}

/// Timed passes of the cached stat: every file stat'ed this many times.
const CACHED_STAT_PASSES: u64 = 5;

/// create, stat, rename and unlink per second with `threads` threads, each
/// in a directory of its own (the kernel serialises name changes within one
/// directory, whatever the file system). "stat" is the cached case: one
/// untimed pass loads the attributes, then the timed passes repeat it, as a
/// data loader re-reading its file list does, within the attribute TTL.
/// Each write (create, rename, unlink) also gets the metadata servers'
/// breakdown of where its time went, read through `probe`.
pub fn meta_ops(
    dir: &Path,
    threads: usize,
    ops: u64,
    probe: &WriteProbe,
) -> Result<Vec<(&'static str, f64, Option<serde_json::Value>)>> {
    let dir = dir.join(format!("meta-{threads}"));
    std::fs::create_dir(&dir)?;
    for t in 0..threads {
        std::fs::create_dir(dir.join(format!("t{t}")))?;
    }
    let per = (ops / threads as u64).max(1);
    let mut out = Vec::new();
    for op in ["create", "warm", "stat", "rename", "unlink"] {
        let passes = if op == "stat" { CACHED_STAT_PASSES } else { 1 };
        let is_write = matches!(op, "create" | "rename" | "unlink");
        let before = if is_write { probe.read(true) } else { Default::default() };
        let rate = per_thread(threads, per * passes, |t, n| {
            let d = dir.join(format!("t{t}"));
            let i = n % per;
            let (a, b) = (d.join(format!("f-{i}")), d.join(format!("g-{i}")));
            match op {
                "create" => drop(std::fs::File::create(&a)?),
                "warm" | "stat" => {
                    std::fs::metadata(&a)?;
                }
                "rename" => std::fs::rename(&a, &b)?,
                _ => std::fs::remove_file(&b)?,
            }
            Ok(())
        })
        .with_context(|| format!("FUSE {op}"))?;
        let n = per * threads as u64;
        let split = is_write.then(|| breakdown(&before, &probe.read(false), n, 1e3 * threads as f64 / rate.max(1e-9)));
        if op != "warm" {
            out.push((op, rate, split));
        }
    }
    Ok(out)
}

/// stat per second of files this mount has not seen (another client made
/// them): every stat is a lookup through the mount to the metadata service.
/// `dir` holds `t0`…`t{threads-1}`, each with `per` files `f-{i}`.
pub fn cold_stats(dir: &Path, threads: usize, per: u64) -> Result<f64> {
    per_thread(threads, per, |t, i| {
        std::fs::metadata(dir.join(format!("t{t}/f-{i}")))?;
        Ok(())
    })
    .context("FUSE stat of files made elsewhere")
}

/// Entries per second of `ls -l` (list the directory, stat every entry)
/// over files this mount has not seen, each thread in its own `t{t}`.
pub fn list_and_stat(dir: &Path, threads: usize) -> Result<f64> {
    let start = Instant::now();
    let total = std::thread::scope(|s| -> Result<u64> {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                s.spawn(move || -> std::io::Result<u64> {
                    let mut n = 0;
                    for e in std::fs::read_dir(dir.join(format!("t{t}")))? {
                        e?.metadata()?;
                        n += 1;
                    }
                    Ok(n)
                })
            })
            .collect();
        let mut total = 0;
        for h in handles {
            total += h.join().map_err(|_| anyhow::anyhow!("benchmark thread panicked"))??;
        }
        Ok(total)
    })
    .context("FUSE list and stat")?;
    Ok(total as f64 / start.elapsed().as_secs_f64())
}

/// Run `op(thread, i)` for i in 0..n on each of `threads` threads; the
/// operations per second over all of them.
fn per_thread(threads: usize, n: u64, op: impl Fn(usize, u64) -> std::io::Result<()> + Sync) -> Result<f64> {
    let start = Instant::now();
    std::thread::scope(|s| -> Result<()> {
        let op = &op;
        let handles: Vec<_> = (0..threads).map(|t| s.spawn(move || (0..n).try_for_each(|i| op(t, i)))).collect();
        for h in handles {
            h.join().map_err(|_| anyhow::anyhow!("benchmark thread panicked"))??;
        }
        Ok(())
    })?;
    Ok((n * threads as u64) as f64 / start.elapsed().as_secs_f64())
}

/// Bytes of the files `dir/shard-{i:05}.bin` of `sizes` in the page cache
/// (mmap + mincore, which reads nothing): 0 on a fresh mount, which is what
/// makes its read cold. None if the mount refuses the mapping.
pub fn cached_bytes(dir: &Path, sizes: &[u64]) -> Option<u64> {
    // SAFETY: sysconf only reads a configuration value.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) as u64;
    let mut cached = 0;
    for (i, &size) in sizes.iter().enumerate().filter(|(_, &s)| s > 0) {
        let f = std::fs::File::open(dir.join(format!("shard-{i:05}.bin"))).ok()?;
        let fd = std::os::fd::AsRawFd::as_raw_fd(&f);
        // SAFETY: a read-only shared mapping of a file we hold open, unmapped
        // below; its memory is never touched, only passed to mincore.
        let addr = unsafe { libc::mmap(std::ptr::null_mut(), size as usize, libc::PROT_READ, libc::MAP_SHARED, fd, 0) };
        if addr == libc::MAP_FAILED {
            return None;
        }
        let mut vec = vec![0u8; size.div_ceil(page) as usize];
        // SAFETY: `vec` has one byte per page of the mapping.
        let ok = unsafe { libc::mincore(addr, size as usize, vec.as_mut_ptr()) } == 0;
        // SAFETY: unmapping exactly what mmap returned.
        unsafe { libc::munmap(addr, size as usize) };
        if !ok {
            return None;
        }
        cached += vec.iter().filter(|&&b| b & 1 == 1).count() as u64 * page;
    }
    Some(cached)
}
