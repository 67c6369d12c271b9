//! Data workloads shared by `demo` and `bench`: write or read back a set of
//! synthetic shard files with several files in flight, verifying every byte.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use shardline_client::Client;
use tokio::task::JoinSet;

use crate::synthetic::Pattern;

/// Bytes moved and the wall time it took.
pub struct Phase {
    pub bytes: u64,
    pub secs: f64,
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
    let mut workers = JoinSet::new();
    for _ in 0..parallel.max(1) {
        let (client, pattern, next, sizes, failed) =
            (client.clone(), pattern.clone(), next.clone(), sizes.clone(), failed.clone());
        let dir_path = dir_path.clone();
        workers.spawn(async move {
            let mut bytes = 0u64;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i as usize >= sizes.len() || failed.load(Ordering::Relaxed) {
                    return Ok::<u64, anyhow::Error>(bytes);
                }
                let path = format!("{dir_path}/shard-{i:05}.bin");
                let r = match dir {
                    Direction::Write => write_one(&client, &pattern, &path, i, sizes[i as usize]).await,
                    Direction::Read => read_one(&client, &pattern, &path, i, sizes[i as usize]).await,
                };
                match r {
                    Ok(n) => bytes += n,
                    Err(e) => {
                        failed.store(true, Ordering::Relaxed);
                        return Err(e);
                    }
                }
            }
        });
    }
    let mut total = 0;
    while let Some(r) = workers.join_next().await {
        total += r.context("worker task")??;
    }
    Ok(Phase { bytes: total, secs: start.elapsed().as_secs_f64() })
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

async fn read_one(client: &Client, pattern: &Pattern, path: &str, file: u64, size: u64) -> Result<u64> {
    let reader = client.open(path).await.with_context(|| format!("open {path}"))?;
    if reader.size() != size {
        bail!("{path}: size {} but {size} were written", reader.size());
    }
    let mut off = 0u64;
    let mut bad = None;
    reader
        .for_each_chunk(6, |_, bytes| {
            if bad.is_none() && !pattern.matches(file, off, &bytes) {
                bad = Some(off);
            }
            off += bytes.len() as u64;
            Ok(())
        })
        .await
        .with_context(|| format!("read {path}"))?;
    if let Some(at) = bad {
        bail!("{path}: wrong bytes in the chunk at offset {at}");
    }
    Ok(off)
}
