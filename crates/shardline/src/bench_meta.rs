//! The native metadata rows of `shardline bench`: create, stat, rename and
//! unlink per second with 1 and 16 concurrent clients, each write with the
//! metadata servers' breakdown of where its time went; and the files the
//! FUSE rows stat without having seen them.

use std::time::Instant;

use anyhow::{Context, Result};
use shardline_client::inode_api::NewFile;
use shardline_client::Client;
use tokio::task::JoinSet;

use crate::bench_latency::{self, WriteProbe};

/// create, stat, rename, unlink per second with `clients` concurrent tasks;
/// for the writes, the metadata servers' breakdown of where the time went.
pub async fn meta_bench(
    client: &Client,
    clients: usize,
    ops: u64,
    probe: &WriteProbe,
) -> Result<Vec<(&'static str, f64, Option<serde_json::Value>)>> {
    let dir = client.mkdir(&format!("/bench/meta-{clients}")).await?.ino;
    let per = (ops / clients as u64).max(1);
    // Untimed: open one connection per client, as a long-running job has.
    let mut warm = JoinSet::new();
    for _ in 0..clients {
        let inodes = client.inodes();
        warm.spawn(async move { inodes.getattr(dir).await.map(drop) });
    }
    while let Some(r) = warm.join_next().await {
        r.context("warm-up task")??;
    }
    let mut out = Vec::new();
    for op in ["create", "stat", "rename", "unlink"] {
        let read = |fsync: bool| {
            let probe = probe.clone();
            tokio::task::spawn_blocking(move || probe.read(fsync))
        };
        let before = if op == "stat" { Default::default() } else { read(true).await? };
        let start = Instant::now();
        let mut tasks = JoinSet::new();
        for t in 0..clients {
            let inodes = client.inodes();
            tasks.spawn(async move {
                for i in 0..per {
                    let (a, b) = (format!("f-{t}-{i}"), format!("g-{t}-{i}"));
                    match op {
                        "create" => inodes.create(NewFile::new(dir, &a)).await.map(drop),
                        "stat" => inodes.lookup(dir, &a).await.map(drop),
                        "rename" => inodes.rename(dir, &a, dir, &b).await,
                        _ => inodes.unlink(dir, &b).await,
                    }?;
                }
                Ok::<(), shardline_client::ClientError>(())
            });
        }
        while let Some(r) = tasks.join_next().await {
            r.context("benchmark task")?.with_context(|| format!("metadata {op}"))?;
        }
        let (n, secs) = (per * clients as u64, start.elapsed().as_secs_f64());
        let split = if op == "stat" {
            None
        } else {
            Some(bench_latency::breakdown(&before, &read(false).await?, n, 1e3 * secs * clients as f64 / n as f64))
        };
        out.push((op, n as f64 / secs, split));
    }
    Ok(out)
}

/// `threads` directories `dir/t{t}`, each with `per` empty files `f-{i}`,
/// made through the native client.
pub async fn make_files(client: &Client, dir: &str, threads: usize, per: u64) -> Result<()> {
    client.mkdir(dir).await?;
    let mut tasks = JoinSet::new();
    for t in 0..threads {
        let (client, inodes) = (client.clone(), client.inodes());
        let dir = format!("{dir}/t{t}");
        tasks.spawn(async move {
            let ino = client.mkdir(&dir).await?.ino;
            for i in 0..per {
                inodes.create(NewFile::new(ino, format!("f-{i}"))).await?;
            }
            Ok::<(), shardline_client::ClientError>(())
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.context("file-making task")?.context("make files for the uncached stat")?;
    }
    Ok(())
}
