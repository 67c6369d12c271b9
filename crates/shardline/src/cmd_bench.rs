//! `shardline bench`: measure Shardline beside the machine's own limits, all
//! in one run — loopback TCP, memcpy, the cipher and the erasure code as
//! baselines; then on a fresh local cluster: native sequential write and
//! read, metadata operations with 1 and 16 concurrent clients, and rebuild
//! after a data server dies. Every number is printed next to its baseline.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use bytes::Bytes;
use clap::Args;
use shardline_client::inode_api::NewFile;
use shardline_client::{Client, ClientConfig};
use shardline_crypto::{seal_chunk_padded, ChunkAad, Dek, SEAL_OVERHEAD};
use shardline_erasure::Codec;
use shardline_types::Layout;
use tokio::task::JoinSet;

use crate::bench_latency::{self, WriteProbe};
use crate::local_cluster::{LocalCluster, Spec};
use crate::storage_report::StorageReport;
use crate::synthetic::Pattern;
use crate::workload::{round1, run_phase, Direction};

#[derive(Args)]
pub struct BenchArgs {
    /// Bytes written and read back by the data benchmark.
    #[arg(long, default_value_t = 1 << 30)]
    size: u64,
    /// Files the data is spread over.
    #[arg(long, default_value_t = 8)]
    files: u64,
    /// Operations per metadata benchmark (per kind and concurrency).
    #[arg(long, default_value_t = 2000)]
    meta_ops: u64,
    /// Concurrency levels of the metadata benchmarks (clients, or threads
    /// through the mount).
    #[arg(long, value_delimiter = ',', default_values_t = [1usize, 16])]
    meta_clients: Vec<usize>,
    /// Random 128 KiB reads (8 readers) inside the written files; 0 skips
    /// the row and its raw-disk baseline.
    #[arg(long, default_value_t = 2000)]
    random_samples: usize,
    /// Skip the rebuild benchmark (it kills a data server).
    #[arg(long)]
    no_rebuild: bool,
    /// Skip the FUSE benchmarks (they need /dev/fuse and fusermount3).
    #[arg(long)]
    no_fuse: bool,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
    /// Keep the cluster's folder here instead of a temporary one.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Only benchmark the shard stores (puts/s and syncs per shard for 6
    /// concurrent writers), in a folder under --data-dir (default: here).
    #[arg(long)]
    store_only: bool,
    /// Seconds per store and shard size with --store-only.
    #[arg(long, default_value_t = 3.0)]
    store_secs: f64,
    /// Rounds with --store-only (interleaved; the table shows medians).
    #[arg(long, default_value_t = 3)]
    store_rounds: usize,
}

pub async fn run(a: BenchArgs) -> Result<()> {
    if a.store_only {
        let (dir, secs, rounds, json) = (a.data_dir.clone(), a.store_secs, a.store_rounds, a.json);
        return tokio::task::spawn_blocking(move || crate::bench_store::run_alone(dir.as_deref(), secs, rounds, json))
            .await?;
    }
    crate::synthetic::Pattern::check_fits(a.files, a.size.div_ceil(a.files.max(1)))?;
    let mut report = serde_json::Map::new();
    let say = |msg: &str| {
        if !a.json {
            eprintln!("{msg}");
        }
    };
    say("baselines…");
    let loopback = crate::loopback::measure(a.size.clamp(256 << 20, 2 << 30), 4)? / 1e6;
    let memcpy = memcpy_mbps();
    let (seal, encode) = tokio::task::spawn_blocking(codec_mbps).await?;
    report.insert("loopback_mbps".into(), round1(loopback).into());
    report.insert("memcpy_mbps".into(), round1(memcpy).into());
    report.insert("seal_mbps_1core".into(), round1(seal).into());
    report.insert("rs_encode_mbps_1core".into(), round1(encode).into());
    let cap_check_us = tokio::task::spawn_blocking(crate::bench_seal::cap_check_us).await?;
    report.insert("cap_check_us".into(), (((cap_check_us * 1000.0).round()) / 1000.0).into());
    for (k, v) in tokio::task::spawn_blocking(crate::bench_seal::suites_mbps).await? {
        report.insert(k, round1(v).into());
    }

    let tmp = tempfile::Builder::new().prefix("shardline-bench-").tempdir()?;
    say("shard stores…");
    let store_dir = a.data_dir.clone().unwrap_or_else(|| tmp.path().to_path_buf()).join("store-bench");
    let store = tokio::task::spawn_blocking(move || crate::bench_store::quick(&store_dir)).await??;
    report.extend(crate::bench_store::json(&store));
    let layout = Layout::default();
    let spec = Spec {
        dir: a.data_dir.clone().unwrap_or_else(|| tmp.path().to_path_buf()),
        meta: 3,
        data: 8,
        layout,
        pg_count: 64,
        host: "127.0.0.1".into(),
        data_capacity: None,
        client_lease_ms: None,
    };
    say("starting a local cluster: 3 metadata + 8 data servers, RS 4+2…");
    let mut cluster = LocalCluster::start(&spec)?;
    cluster.wait_ready(Duration::from_secs(60)).await?;
    let client = Client::connect(ClientConfig::new(cluster.file.meta_addrs(), cluster.file.key_file.clone())).await?;
    client.mkdir("/bench").await?;

    say("native sequential write and read…");
    let pattern = Pattern::new(42);
    let sizes: Vec<u64> = (0..a.files).map(|i| a.size / a.files + u64::from(i < a.size % a.files)).collect();
    let write = run_phase("/bench", &client, &pattern, &sizes, 2, Direction::Write).await?;
    let read = run_phase("/bench", &client, &pattern, &sizes, 2, Direction::Read).await?;
    if let Some((file, offset)) = &read.first_bad {
        anyhow::bail!("verification failed: {file} differs from what was written at byte {offset}");
    }
    // What stored the data, as the data servers report it.
    let storage = cluster.leader_status().await.map(|st| StorageReport::from_status(&st)).unwrap_or_default();
    report.extend(storage.json_fields());
    report.insert("write_mbps".into(), round1(write.mbps()).into());
    report.insert("read_mbps".into(), round1(read.mbps()).into());

    say("fsync latency and loopback round trip…");
    let fsync_dir = spec.dir.clone();
    let (fsync, fsync_append, rtt) = tokio::task::spawn_blocking(move || -> Result<_> {
        use bench_latency::{fsync_latency, FsyncKind};
        Ok((
            fsync_latency(&fsync_dir, 500, FsyncKind::Preallocated)?,
            fsync_latency(&fsync_dir, 500, FsyncKind::Append)?,
            bench_latency::loopback_rtt(5000)?,
        ))
    })
    .await??;
    report.insert("fsync_latency".into(), fsync.json());
    report.insert("fsync_append_latency".into(), fsync_append.json());
    report.insert("loopback_rtt".into(), rtt.json());
    let probe = WriteProbe::new(cluster.file.meta.iter().map(|n| n.dir.clone()).collect());
    if a.random_samples > 0 {
        say("random 128 KiB reads, native, and the raw disk's…");
        let (dir, bytes) = (spec.dir.clone(), a.size.clamp(256 << 20, 2 << 30));
        let samples = a.random_samples;
        let disk = tokio::task::spawn_blocking(move || crate::bench_random::raw_disk(&dir, bytes, samples)).await??;
        let native = crate::bench_random::native(&client, "/bench", &pattern, &sizes, samples).await?;
        report.insert("random_128k_reads_per_s_8r".into(), round1(native).into());
        report.insert("disk_random_128k_reads_per_s_8r".into(), round1(disk.per_s).into());
        report.insert("disk_random_direct_io".into(), disk.direct_io.into());
    }

    say("metadata operations…");
    let levels: Vec<usize> = a.meta_clients.iter().map(|&c| c.max(1)).collect();
    for &clients in &levels {
        for (op, rate, split) in meta_bench(&client, clients, a.meta_ops, &probe).await? {
            report.insert(format!("meta_{op}_per_s_{clients}c"), round1(rate).into());
            if let Some(split) = split {
                report.insert(format!("meta_{op}_breakdown_{clients}c"), split);
            }
        }
    }

    if !a.no_fuse {
        say("the same through a FUSE mount…");
        // Files the mount has never seen, for the uncached stat.
        for &c in &levels {
            make_files(&client, &format!("/bench/cold-{c}"), c, a.meta_ops / c as u64).await?;
            make_files(&client, &format!("/bench/list-{c}"), c, a.meta_ops / c as u64).await?;
        }
        let cluster_file = cluster.cluster_path.clone();
        let (pattern, sizes, ops, root) = (pattern.clone(), sizes.clone(), a.meta_ops, spec.dir.join("mnt"));
        let fuse_levels = levels.clone();
        let probe = probe.clone();
        let fuse = tokio::task::spawn_blocking(move || -> Result<Vec<(String, serde_json::Value)>> {
            let mut out = Vec::new();
            let write = {
                let m = crate::bench_fuse::Mount::start(&cluster_file, &root)?;
                std::fs::create_dir(m.dir.join("fuse"))?;
                let w = crate::bench_fuse::write_files(&m.dir.join("fuse"), &pattern, &sizes)?;
                for &c in &fuse_levels {
                    for (op, rate, split) in crate::bench_fuse::meta_ops(&m.dir, c, ops, &probe)? {
                        out.push((format!("fuse_{op}_per_s_{c}c"), round1(rate).into()));
                        if let Some(split) = split {
                            out.push((format!("fuse_{op}_breakdown_{c}c"), split));
                        }
                    }
                    let cold = m.dir.join(format!("bench/cold-{c}"));
                    let rate = crate::bench_fuse::cold_stats(&cold, c, ops / c as u64)?;
                    out.push((format!("fuse_stat_uncached_per_s_{c}c"), round1(rate).into()));
                    let rate = crate::bench_fuse::list_and_stat(&m.dir.join(format!("bench/list-{c}")), c)?;
                    out.push((format!("fuse_list_stat_per_s_{c}c"), round1(rate).into()));
                }
                w
            };
            // A fresh mount reads cold: nothing is in this mount's page cache.
            let m = crate::bench_fuse::Mount::start(&cluster_file, &root)?;
            let read = crate::bench_fuse::read_files(&m.dir.join("fuse"), &pattern, &sizes)?;
            out.push(("fuse_write_mbps".into(), round1(write.mbps()).into()));
            out.push(("fuse_read_mbps".into(), round1(read.mbps()).into()));
            Ok(out)
        })
        .await??;
        for (k, v) in fuse {
            report.insert(k, v);
        }
    }

    if !a.no_rebuild {
        say("rebuild after a data server dies…");
        let (bytes, secs) = rebuild_bench(&mut cluster).await?;
        report.insert("rebuild_bytes".into(), bytes.into());
        report.insert("rebuild_mbps".into(), round1(bytes as f64 / secs / 1e6).into());
        report.insert(
            "rebuild_throttle_mbps_per_data_server".into(),
            (shardline_data::DEFAULT_REBUILD_RATE / 1_000_000).into(),
        );
    }
    cluster.stop();

    if a.json {
        println!("{}", serde_json::Value::Object(report));
        return Ok(());
    }
    let get = |k: &str| report.get(k).and_then(|v| v.as_f64()).unwrap_or(0.0);
    println!("shardline bench (MB/s = 10^6 bytes/s; every ratio is against a number measured in this run)");
    println!("  storage       {}", storage.line());
    println!("  baselines     loopback TCP {loopback:.0} MB/s, memcpy {memcpy:.0} MB/s, XChaCha20-Poly1305 seal {seal:.0} MB/s/core, RS 4+2 encode {encode:.0} MB/s/core");
    println!("  shard store   {}", crate::bench_store::line(&store));
    println!(
        "  latency       fsync (256 B write + fdatasync, cluster disk) {:.3} ms median / {:.3} ms mean into preallocated space, \
         {:.3} / {:.3} ms appending; loopback TCP round trip {:.3} ms median / {:.3} ms mean; \
         capability check {:.2} µs per shard request ({:.1}% of the round trip)",
        fsync.median_ms,
        fsync.mean_ms,
        fsync_append.median_ms,
        fsync_append.mean_ms,
        rtt.median_ms,
        rtt.mean_ms,
        cap_check_us,
        100.0 * cap_check_us / (rtt.median_ms * 1000.0).max(1e-9)
    );
    println!(
        "  native write  {:>8.1} MB/s  {:>5.1}% of loopback",
        get("write_mbps"),
        100.0 * get("write_mbps") / loopback
    );
    println!(
        "  native read   {:>8.1} MB/s  {:>5.1}% of loopback",
        get("read_mbps"),
        100.0 * get("read_mbps") / loopback
    );
    println!(
        "  chunk format v2, 1 core: AES-256-GCM seal {:.0} / open {:.0} MB/s, XChaCha20-Poly1305 seal {:.0} / open {:.0} MB/s (v1 whole-chunk open {:.0} MB/s)",
        get("seal_v2_aes_mbps_1core"),
        get("open_v2_aes_mbps_1core"),
        get("seal_v2_xchacha_mbps_1core"),
        get("open_v2_xchacha_mbps_1core"),
        get("open_v1_mbps_1core")
    );
    if a.random_samples > 0 {
        let (n, d) = (get("random_128k_reads_per_s_8r"), get("disk_random_128k_reads_per_s_8r"));
        println!(
            "  random 128 KiB reads, 8 readers: native {n:.0}/s  {:.1}% of the raw disk's {d:.0}/s",
            100.0 * n / d.max(1e-9)
        );
    }
    if !a.no_fuse {
        let (w, r) = (get("fuse_write_mbps"), get("fuse_read_mbps"));
        println!("  FUSE write    {w:>8.1} MB/s  {:>5.1}% of native write", 100.0 * w / get("write_mbps").max(1e-9));
        println!("  FUSE read     {r:>8.1} MB/s  {:>5.1}% of native read", 100.0 * r / get("read_mbps").max(1e-9));
        for &c in &levels {
            println!(
                "  FUSE metadata, {c:>2} thread(s): create {:.0}/s, stat {:.0}/s cached ({:.0}/s uncached, {:.0}/s listed then stat'ed), rename {:.0}/s, unlink {:.0}/s",
                get(&format!("fuse_create_per_s_{c}c")),
                get(&format!("fuse_stat_per_s_{c}c")),
                get(&format!("fuse_stat_uncached_per_s_{c}c")),
                get(&format!("fuse_list_stat_per_s_{c}c")),
                get(&format!("fuse_rename_per_s_{c}c")),
                get(&format!("fuse_unlink_per_s_{c}c"))
            );
        }
    }
    for &c in &levels {
        println!(
            "  metadata, {c:>2} client(s): create {:.0}/s, stat {:.0}/s, rename {:.0}/s, unlink {:.0}/s",
            get(&format!("meta_create_per_s_{c}c")),
            get(&format!("meta_stat_per_s_{c}c")),
            get(&format!("meta_rename_per_s_{c}c")),
            get(&format!("meta_unlink_per_s_{c}c"))
        );
    }
    println!("  where a metadata write's time goes (means over the run):");
    for &c in &levels {
        for (via, prefix) in [("FUSE", "fuse"), ("native", "meta")] {
            for op in ["create", "rename", "unlink"] {
                if let Some(b) = report.get(&format!("{prefix}_{op}_breakdown_{c}c")) {
                    println!("    {via} {op}, {c} thread(s): {}", bench_latency::describe(b));
                }
            }
        }
    }
    if !a.no_rebuild {
        println!(
            "  rebuild       {:>8.1} MB/s of shards rebuilt ({:.0}% of native write; throttle {} MB/s per data server, shared by its rebuild tasks)",
            get("rebuild_mbps"),
            100.0 * get("rebuild_mbps") / get("write_mbps").max(1e-9),
            shardline_data::DEFAULT_REBUILD_RATE / 1_000_000
        );
    }
    Ok(())
}

fn memcpy_mbps() -> f64 {
    let src = vec![7u8; 256 << 20];
    let mut dst = vec![0u8; 256 << 20];
    let start = Instant::now();
    for _ in 0..4 {
        dst.copy_from_slice(&src);
        std::hint::black_box(&mut dst);
    }
    (4 * src.len()) as f64 / start.elapsed().as_secs_f64() / 1e6
}

/// Single-core seal and RS 4+2 encode throughput over 4 MiB chunks.
fn codec_mbps() -> (f64, f64) {
    let dek = Dek::generate();
    let codec = Codec::new(4, 2).expect("4+2 is valid");
    let chunk = vec![3u8; 4 << 20];
    let cell = codec.cell_size(chunk.len() + SEAL_OVERHEAD);
    let rounds = 32;
    let start = Instant::now();
    let mut sealed = Vec::new();
    for i in 0..rounds {
        let aad = ChunkAad { file_id: 1, chunk_index: i, version: 1, key_id: "bench" };
        sealed = seal_chunk_padded(&dek, &aad, &chunk, cell * 4);
    }
    let seal = (rounds as usize * chunk.len()) as f64 / start.elapsed().as_secs_f64() / 1e6;
    let sealed = Bytes::from(sealed);
    let start = Instant::now();
    for _ in 0..rounds {
        std::hint::black_box(codec.encode(sealed.clone()).expect("encode"));
    }
    let encode = (rounds as usize * sealed.len()) as f64 / start.elapsed().as_secs_f64() / 1e6;
    (seal, encode)
}

/// create, stat, rename, unlink per second with `clients` concurrent tasks;
/// for the writes, the metadata servers' breakdown of where the time went.
async fn meta_bench(
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
async fn make_files(client: &Client, dir: &str, threads: usize, per: u64) -> Result<()> {
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

/// Kill one data server and time the rebuild of its shards elsewhere.
async fn rebuild_bench(cluster: &mut LocalCluster) -> Result<(u64, f64)> {
    let meta = Arc::new(shardline_rpc::MetaClient::new(cluster.file.meta_addrs(), Duration::from_secs(5)));
    cluster.kill("data-1")?;
    let addrs = cluster.file.meta_addrs();
    // The leader's view: only it knows the data servers' progress.
    let status = || {
        let (meta, addrs) = (meta.clone(), addrs.clone());
        async move {
            for addr in &addrs {
                let body = shardline_proto::v1::meta_request::Body::Status(Default::default());
                if let Ok(shardline_proto::v1::MetaResponse {
                    body: Some(shardline_proto::v1::meta_response::Body::Status(s)),
                    ..
                }) = meta.call_one(addr, body).await
                {
                    if s.meta.first().is_some_and(|m| m.role == "leader") {
                        return Ok::<_, anyhow::Error>(s);
                    }
                }
            }
            anyhow::bail!("no metadata server reports itself leader")
        }
    };
    // Rebuild starts once the server is declared down; time from the first
    // rebuilt byte until nothing is pending.
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut started: Option<Instant> = None;
    loop {
        let Ok(s) = status().await else {
            if Instant::now() > deadline {
                anyhow::bail!("no metadata leader during the rebuild");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let bytes: u64 = s.data.iter().map(|d| d.rebuild_bytes).sum();
        let down = s.data.iter().any(|d| d.id == 1 && d.state == "down");
        if started.is_none() && down && (bytes > 0 || s.rebuilds_pending > 0) {
            started = Some(Instant::now());
        }
        if let Some(t) = started {
            if s.rebuilds_pending == 0 && bytes > 0 {
                return Ok((bytes, t.elapsed().as_secs_f64().max(1e-3)));
            }
        }
        if Instant::now() > deadline {
            anyhow::bail!("rebuild did not finish in time");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
