//! Data workloads shared by `demo` and `bench`: write or read back a set of
//! synthetic shard files with several files in flight, verifying every byte.
//! A read phase reports what it found (the first wrong byte, if any) rather
//! than stopping at it: whether the data verified is the caller's verdict.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use shardline_client::Client;
use tokio::task::JoinSet;

use crate::synthetic::{Pattern, Verifier};

/// Bytes moved and the wall time it took.
pub struct Phase {
    pub bytes: u64,
    pub secs: f64,
    /// A read phase's first wrong byte: (file path, offset); None when
    /// every file read back exactly as written (and for a write phase).
    pub first_bad: Option<(String, u64)>,
}

impl Phase {
    /// Throughput in MB/s (10^6 bytes per second).
    pub fn mbps(&self) -> f64 {
        self.bytes as f64 / self.secs / 1e6
    }
}

pub fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

pub fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

#[derive(Clone, Copy, PartialEq)]
pub enum Direction {
    Write,
    Read,
}

pub async fn run_phase(
    dir_path: &str,
    client: &Client,
    pattern: &Pattern,
    sizes: &[u64],
    parallel: usize,
    dir: Direction,
) -> Result<Phase> {
    let start = Instant::now();
    let next = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicBool::new(false));
    let sizes = Arc::new(sizes.to_vec());
    let dir_path: Arc<str> = Arc::from(dir_path);
    let label = if dir == Direction::Write { "write" } else { "read" };
    let bar = crate::progress::bytes(sizes.iter().sum(), label);
    let mut workers = JoinSet::new();
    for _ in 0..parallel.max(1) {
        let (client, pattern, next, sizes, failed) =
            (client.clone(), pattern.clone(), next.clone(), sizes.clone(), failed.clone());
        let (dir_path, bar) = (dir_path.clone(), bar.clone());
        workers.spawn(async move {
            let mut bytes = 0u64;
            let mut first_bad: Option<(u64, String, u64)> = None;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i as usize >= sizes.len() || failed.load(Ordering::Relaxed) {
                    return Ok::<_, anyhow::Error>((bytes, first_bad));
                }
                let path = format!("{dir_path}/shard-{i:05}.bin");
                let r = match dir {
                    Direction::Write => {
                        write_one(&client, &pattern, &path, i, sizes[i as usize]).await.map(|n| (n, None))
                    }
                    Direction::Read => read_one(&client, &pattern, &path, i, sizes[i as usize]).await,
                };
                match r {
                    Ok((n, bad)) => {
                        bytes += n;
                        bar.inc(n);
                        if let Some(at) = bad {
                            if first_bad.as_ref().is_none_or(|(f, _, _)| i < *f) {
                                first_bad = Some((i, path, at));
                            }
                        }
                    }
                    Err(e) => {
                        failed.store(true, Ordering::Relaxed);
                        return Err(e);
                    }
                }
            }
        });
    }
    let mut total = 0;
    let mut first_bad: Option<(u64, String, u64)> = None;
    while let Some(r) = workers.join_next().await {
        let (n, bad) = r.context("worker task")??;
        total += n;
        if let Some(b) = bad {
            if first_bad.as_ref().is_none_or(|f| b.0 < f.0) {
                first_bad = Some(b);
            }
        }
    }
    bar.finish_and_clear();
    let first_bad = first_bad.map(|(_, path, at)| (path, at));
    Ok(Phase { bytes: total, secs: start.elapsed().as_secs_f64(), first_bad })
}

async fn write_one(client: &Client, pattern: &Pattern, path: &str, file: u64, size: u64) -> Result<u64> {
    let mut w = client.create(path).await.with_context(|| format!("create {path}"))?;
    let mut buf = vec![0u8; 4 << 20];
    let mut off = 0u64;
    while off < size {
        let n = (size - off).min(buf.len() as u64) as usize;
        pattern.fill(file, off, &mut buf[..n]);
        w.write(&buf[..n]).await.with_context(|| format!("write {path}"))?;
        off += n as u64;
    }
    let written = w.finish().await.with_context(|| format!("finish {path}"))?;
    if written != size {
        bail!("{path}: size is {written} after writing {size} bytes");
    }
    Ok(size)
}

/// Read one file back, checking every byte: (bytes read, the offset of the
/// first wrong byte if any). A file of the wrong size is wrong from where
/// the sizes part.
async fn read_one(client: &Client, pattern: &Pattern, path: &str, file: u64, size: u64) -> Result<(u64, Option<u64>)> {
    let reader = client.open(path).await.with_context(|| format!("open {path}"))?;
    let mut verifier = Verifier::new(pattern, file);
    reader
        .for_each_chunk(6, |_, bytes| {
            verifier.check(&bytes);
            Ok(())
        })
        .await
        .with_context(|| format!("read {path}"))?;
    Ok((verifier.bytes(), verifier.first_bad(size)))
}
