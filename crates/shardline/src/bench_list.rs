//! The listing rows of `shardline bench`: a directory of many entries
//! (empty files made through the native client, 32 creates in flight),
//! listed through the mount by one thread as `ls -l` does — readdir, then
//! an lstat of every entry — and by readdir alone. Each listing runs on a
//! fresh mount, so neither is served from what the other loaded (an
//! untimed stat of the directory itself first opens the mount's
//! connections).

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use shardline_client::inode_api::NewFile;
use shardline_client::Client;
use tokio::task::JoinSet;

/// Creates in flight while making the directory.
const IN_FLIGHT: usize = 32;

/// Make `dir` (a path in the namespace) with `n` empty files: creates per
/// second.
pub async fn make(client: &Client, dir: &str, n: usize) -> Result<f64> {
    let ino = client.mkdir(dir).await?.ino;
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = JoinSet::new();
    for _ in 0..IN_FLIGHT {
        let (inodes, next) = (client.inodes(), next.clone());
        tasks.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return Ok::<(), shardline_client::ClientError>(());
                }
                inodes.create(NewFile::new(ino, format!("entry-{i:07}"))).await?;
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.context("create task")?.context("create the entries to list")?;
    }
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

/// List `rel` (holding `n` entries) through fresh mounts: readdir alone,
/// then readdir + lstat of each entry. Blocking: call it off the runtime.
pub fn through_mount(cluster_file: &Path, mnt: &Path, rel: &str, n: usize) -> Result<(f64, f64)> {
    let readdir = {
        let m = crate::bench_fuse::Mount::start(cluster_file, mnt)?;
        list(&m.dir.join(rel), n, false)?
    };
    let m = crate::bench_fuse::Mount::start(cluster_file, mnt)?;
    let ls_l = list(&m.dir.join(rel), n, true)?;
    Ok((readdir, ls_l))
}

/// Entries per second listing `dir`, with an lstat of each if `stat`.
fn list(dir: &Path, n: usize, stat: bool) -> Result<f64> {
    // Untimed: the path's lookups and the fresh mount's first connections.
    std::fs::metadata(dir).context("stat the listed directory through the mount")?;
    let start = Instant::now();
    let mut seen = 0;
    for e in std::fs::read_dir(dir).context("list through the mount")? {
        let e = e.context("read a directory entry through the mount")?;
        if stat {
            // `DirEntry::metadata` is fstatat(AT_SYMLINK_NOFOLLOW), as ls -l.
            std::hint::black_box(e.metadata().context("stat an entry through the mount")?);
        }
        seen += 1;
    }
    let secs = start.elapsed().as_secs_f64();
    if seen != n {
        bail!("listed {seen} entries through the mount, expected {n}");
    }
    Ok(n as f64 / secs)
}
