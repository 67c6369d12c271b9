//! The native rows of `shardline bench`'s large directory (made by
//! `bench_list::make`, run after the listings through the mount since the
//! creates add entries): the whole directory listed page by page through
//! the native client, without and with attributes; lookups of random
//! names in it; and creates into it while it is full. So a directory of
//! 1,000,000 entries (`--list-entries 1000000`) shows whether listing,
//! lookup and create stay fast as it grows.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use serde_json::Value;
use shardline_client::inode_api::{Inodes, NewFile};
use shardline_client::Client;
use shardline_types::ROOT_INO;
use tokio::task::JoinSet;

use crate::workload::round1;

/// Requests in flight for the lookup and create rows.
const IN_FLIGHT: usize = 32;
/// Lookups and creates timed (each; no more than the directory holds, so
/// a small run stays short).
const SAMPLES: usize = 5_000;

/// Report rows for `path` (a directory under the root, "a/b"), holding the
/// `n` entries `entry-0000000`… that `bench_list::make` made.
pub async fn native(client: &Client, path: &str, n: usize) -> Result<Vec<(String, Value)>> {
    let inodes = client.inodes();
    let mut dir = ROOT_INO;
    for part in path.split('/').filter(|p| !p.is_empty()) {
        dir = inodes.lookup(dir, part).await.context("look up the listed directory")?.ino;
    }
    let mut out = Vec::new();
    for (with_attrs, key) in
        [(false, "list_native_readdir_entries_per_s"), (true, "list_native_readdirplus_entries_per_s")]
    {
        let start = Instant::now();
        let seen = list(&inodes, dir, with_attrs).await?;
        if seen != n {
            bail!("listed {seen} entries natively, expected {n}");
        }
        out.push((key.to_string(), round1(n as f64 / start.elapsed().as_secs_f64()).into()));
    }
    let samples = SAMPLES.min(n.max(1));
    let lookups = concurrently(&inodes, n, samples, move |inodes, i, n| async move {
        // A multiplicative walk, spread over the whole directory.
        let name = format!("entry-{:07}", (i as u64).wrapping_mul(2_654_435_761) % n as u64);
        inodes.lookup(dir, name).await.map(|_| ())
    })
    .await
    .context("look up random names in the full directory")?;
    out.push(("list_lookup_per_s".into(), round1(lookups).into()));
    let creates = concurrently(&inodes, n, samples, move |inodes, i, _| async move {
        inodes.create(NewFile::new(dir, format!("extra-{i:07}"))).await.map(|_| ())
    })
    .await
    .context("create into the full directory")?;
    out.push(("list_create_into_full_per_s".into(), round1(creates).into()));
    Ok(out)
}

/// Every entry of `dir`, page by page (the server's default page): the count.
async fn list(inodes: &Inodes, dir: u64, with_attrs: bool) -> Result<usize> {
    let (mut after, mut seen) = (Vec::new(), 0usize);
    loop {
        let page = inodes.readdir(dir, &after, 0, with_attrs).await.context("list natively")?;
        seen += page.entries.len();
        match page.entries.last() {
            Some(last) => after = last.name.clone(),
            None if page.more => bail!("an empty page with more to follow"),
            None => {}
        }
        if !page.more {
            return Ok(seen);
        }
    }
}

/// `samples` calls of `op(inodes, i, n)`, [`IN_FLIGHT`] at a time: calls per second.
async fn concurrently<F, Fut>(inodes: &Inodes, n: usize, samples: usize, op: F) -> Result<f64>
where
    F: Fn(Inodes, usize, usize) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = Result<(), shardline_client::ClientError>> + Send,
{
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = JoinSet::new();
    for _ in 0..IN_FLIGHT {
        let (inodes, next, op) = (inodes.clone(), next.clone(), op.clone());
        tasks.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= samples {
                    return Ok::<(), shardline_client::ClientError>(());
                }
                op(inodes.clone(), i, n).await?;
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.context("task")??;
    }
    Ok(samples as f64 / start.elapsed().as_secs_f64())
}
