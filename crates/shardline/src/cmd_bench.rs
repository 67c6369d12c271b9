//! `shardline bench`: measure Shardline beside the machine's own limits, all
//! in one run — loopback TCP (plain, and through the mutual TLS every
//! connection uses), memcpy, the cipher and the erasure code, the raw disk
//! under the data folder (O_DIRECT, sequential and random) as baselines;
//! then on a fresh local cluster: native sequential write and read,
//! random reads, metadata operations with 1 and 16 concurrent clients, the
//! same through a FUSE mount, small files (mount, native, local disk),
//! listing a large directory, a degraded read with one data server down,
//! and rebuild after it died; whole-cluster CPU per GB for the data phases.
//! Every number is printed next to its baseline (`bench_report.rs`).
//!
//! The phases run in this order so each finds the cluster it needs: the
//! degraded read kills a data server with repair stopped, and the rebuild,
//! last, starts repair and times the rebuild of that same server.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use clap::Args;
use serde_json::{Map, Value};
use shardline_client::Client;
use shardline_types::Layout;

use crate::bench_cpu::CpuMeter;
use crate::bench_latency::{self, WriteProbe};
use crate::bench_small::SmallSet;
use crate::local_cluster::{LocalCluster, Spec};
use crate::storage_report::StorageReport;
use crate::synthetic::Pattern;
use crate::workload::{round1, round3, run_phase, Direction};

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
    /// the row and its raw-disk random baseline (the raw disk's sequential
    /// read is measured either way).
    #[arg(long, default_value_t = 2000)]
    random_samples: usize,
    /// Small files of 64–128 KiB (in 100 folders) written through the mount
    /// and read back cold and shuffled, through the mount, the native
    /// client and the local disk, 8 threads each; 0 skips the rows.
    #[arg(long, default_value_t = 10_000)]
    small_files: usize,
    /// Entries of the directory listed through the mount (readdir alone,
    /// and `ls -l`: readdir + stat of every entry); 0 skips the rows.
    #[arg(long, default_value_t = 100_000)]
    list_entries: usize,
    /// Skip the degraded read (it kills a data server, with repair stopped).
    #[arg(long)]
    no_degraded: bool,
    /// Skip the rebuild benchmark (it kills a data server, or reuses the
    /// degraded read's).
    #[arg(long)]
    no_rebuild: bool,
    /// Skip the FUSE benchmarks (they need /dev/fuse and fusermount3).
    #[arg(long)]
    no_fuse: bool,
    /// Run the cluster with the integrity-only transport to data servers
    /// (shards authenticated but not encrypted a second time; see
    /// docs/security.md), to compare with the default full TLS.
    #[arg(long)]
    data_integrity_only: bool,
    /// Files of at most this many bytes are stored as copies instead of
    /// K+M cells (`shardline up --small-file-max`; 0: every file
    /// erasure-coded, to compare). Default: the client's, 128 KiB.
    #[arg(long)]
    small_file_max: Option<u64>,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
    /// Keep the cluster's folder here instead of a temporary one.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Loopback address the local cluster binds (tests use their own).
    #[arg(long, default_value = "127.0.0.1", hide = true)]
    host: String,
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
    let mut report = Map::new();
    let say = |msg: &str| {
        if !a.json {
            eprintln!("{msg}");
        }
    };
    say("baselines…");
    let loopback = crate::loopback::measure(a.size.clamp(256 << 20, 2 << 30), 4)? / 1e6;
    // The same through mutual TLS, with certificates made like the cluster's.
    let pki = shardline_rpc::pki::TestPki::new()?;
    let server = pki.identity_with(shardline_rpc::Role::Data, &[1], true)?;
    let client = pki.identity(shardline_rpc::Role::Client, &[])?;
    let bytes = a.size.clamp(256 << 20, 2 << 30);
    let loopback_tls = crate::loopback::measure_tls(bytes, 4, server.clone(), client.clone(), false).await? / 1e6;
    let loopback_integrity = crate::loopback::measure_tls(bytes, 4, server, client, true).await? / 1e6;
    report.insert("loopback_tls_mbps".into(), round1(loopback_tls).into());
    report.insert("loopback_integrity_only_mbps".into(), round1(loopback_integrity).into());
    report.insert("data_integrity_only".into(), a.data_integrity_only.into());
    let small_file_max = a.small_file_max.unwrap_or(shardline_client::DEFAULT_SMALL_FILE_MAX);
    report.insert("small_file_max".into(), small_file_max.into());
    let memcpy = crate::bench_seal::memcpy_mbps();
    let (seal, encode) = tokio::task::spawn_blocking(crate::bench_seal::codec_mbps).await?;
    report.insert("loopback_mbps".into(), round1(loopback).into());
    report.insert("memcpy_mbps".into(), round1(memcpy).into());
    report.insert("seal_mbps_1core".into(), round1(seal).into());
    report.insert("rs_encode_mbps_1core".into(), round1(encode).into());
    let cap_check_us = tokio::task::spawn_blocking(crate::bench_seal::cap_check_us).await?;
    report.insert("cap_check_us".into(), round3(cap_check_us).into());
    for (k, v) in tokio::task::spawn_blocking(crate::bench_seal::suites_mbps).await? {
        report.insert(k, round1(v).into());
    }

    let tmp = tempfile::Builder::new().prefix("shardline-bench-").tempdir()?;
    say("shard stores…");
    let store_dir = a.data_dir.clone().unwrap_or_else(|| tmp.path().to_path_buf()).join("store-bench");
    let store = tokio::task::spawn_blocking(move || crate::bench_store::quick(&store_dir)).await??;
    report.extend(crate::bench_store::json(&store));
    let spec = Spec {
        dir: a.data_dir.clone().unwrap_or_else(|| tmp.path().to_path_buf()),
        meta: 3,
        data: 8,
        layout: Layout::default(),
        pg_count: 64,
        host: a.host.clone(),
        data_capacity: None,
        client_lease_ms: None,
        data_integrity_only: a.data_integrity_only,
        small_file_max: a.small_file_max,
    };
    say("starting a local cluster: 3 metadata + 8 data servers, RS 4+2…");
    let mut cluster = LocalCluster::start(&spec)?;
    cluster.wait_ready(Duration::from_secs(60)).await?;
    let cpu = CpuMeter::new(cluster.pids());
    report.insert("cpu_processes".into(), cpu.processes().into());
    let client = Client::connect(cluster.file.client_config(shardline_rpc::Role::Client)?).await?;
    client.mkdir("/bench").await?;

    say("native sequential write and read…");
    let pattern = Pattern::new(42);
    let sizes: Vec<u64> = (0..a.files).map(|i| a.size / a.files + u64::from(i < a.size % a.files)).collect();
    let before = cpu.sample();
    let write = run_phase("/bench", &client, &pattern, &sizes, 2, Direction::Write).await?;
    let cpu_write = cpu.sample().per_gb_since(&before, write.bytes);
    let before = cpu.sample();
    let read = run_phase("/bench", &client, &pattern, &sizes, 2, Direction::Read).await?;
    let cpu_read = cpu.sample().per_gb_since(&before, read.bytes);
    if let Some((file, offset)) = &read.first_bad {
        anyhow::bail!("verification failed: {file} differs from what was written at byte {offset}");
    }
    // What stored the data, as the data servers report it.
    let storage = cluster.leader_status().await.map(|st| StorageReport::from_status(&st)).unwrap_or_default();
    report.extend(storage.json_fields());
    report.insert("write_mbps".into(), round1(write.mbps()).into());
    report.insert("read_mbps".into(), round1(read.mbps()).into());
    report.insert("cpu_s_per_gb_native_write".into(), round3(cpu_write).into());
    report.insert("cpu_s_per_gb_native_read".into(), round3(cpu_read).into());

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

    say("the raw disk (O_DIRECT): sequential write and read, and random 128 KiB reads…");
    let (dir, bytes, samples) = (spec.dir.clone(), a.size.clamp(256 << 20, 2 << 30), a.random_samples);
    let disk = tokio::task::spawn_blocking(move || crate::bench_random::raw_disk(&dir, bytes, samples)).await??;
    report.insert("disk_seq_read_mbps".into(), round1(disk.seq_mbps).into());
    report.insert("disk_seq_write_mbps".into(), round1(disk.seq_write_mbps).into());
    report.insert("disk_write_streams".into(), crate::bench_random::WRITE_STREAMS.into());
    if let Some(w) = report.get("write_mbps").and_then(serde_json::Value::as_f64) {
        // RS 4+2: each byte written is stored 1.5 times.
        let pct = 100.0 * w * 1.5 / disk.seq_write_mbps.max(1e-9);
        report.insert("write_on_disk_pct_of_disk_seq_write".into(), round1(pct).into());
    }
    if let (Some(r), Some(tls)) = (
        report.get("read_mbps").and_then(serde_json::Value::as_f64),
        report.get("loopback_tls_mbps").and_then(serde_json::Value::as_f64),
    ) {
        report.insert("read_pct_of_loopback_tls".into(), round1(100.0 * r / tls.max(1e-9)).into());
    }
    report.insert("disk_seq_direct_io".into(), disk.direct_io.into());
    if let Some(per_s) = disk.random_per_s {
        say("random 128 KiB reads, native…");
        let native = crate::bench_random::native(&client, "/bench", &pattern, &sizes, samples).await?;
        report.insert("random_128k_reads_per_s_8r".into(), round1(native).into());
        report.insert("disk_random_128k_reads_per_s_8r".into(), round1(per_s).into());
        report.insert("disk_random_direct_io".into(), disk.direct_io.into());
    }

    say("metadata operations…");
    let levels: Vec<usize> = a.meta_clients.iter().map(|&c| c.max(1)).collect();
    for &clients in &levels {
        for (op, rate, split) in crate::bench_meta::meta_bench(&client, clients, a.meta_ops, &probe).await? {
            report.insert(format!("meta_{op}_per_s_{clients}c"), round1(rate).into());
            if let Some(split) = split {
                report.insert(format!("meta_{op}_breakdown_{clients}c"), split);
            }
        }
    }

    let mnt = spec.dir.join("mnt");
    if !a.no_fuse {
        say("the same through a FUSE mount…");
        // Files the mount has never seen, for the uncached stat.
        for &c in &levels {
            crate::bench_meta::make_files(&client, &format!("/bench/cold-{c}"), c, a.meta_ops / c as u64).await?;
            crate::bench_meta::make_files(&client, &format!("/bench/list-{c}"), c, a.meta_ops / c as u64).await?;
        }
        let cluster_file = cluster.cluster_path.clone();
        let (pattern, sizes, ops, root) = (pattern.clone(), sizes.clone(), a.meta_ops, mnt.clone());
        let (fuse_levels, probe, cpu, disk_seq) = (levels.clone(), probe.clone(), cpu.clone(), disk.seq_mbps);
        let fuse = tokio::task::spawn_blocking(move || -> Result<Vec<(String, Value)>> {
            let mut out: Vec<(String, Value)> = Vec::new();
            let write = {
                let m = crate::bench_fuse::Mount::start(&cluster_file, &root)?;
                std::fs::create_dir(m.dir.join("fuse"))?;
                let cpu = cpu.with(m.pid());
                let before = cpu.sample();
                let w = crate::bench_fuse::write_files(&m.dir.join("fuse"), &pattern, &sizes)?;
                out.push((
                    "cpu_s_per_gb_fuse_write".into(),
                    round3(cpu.sample().per_gb_since(&before, w.bytes)).into(),
                ));
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
            // A fresh mount reads cold: a new kernel superblock (an empty
            // page cache for its files) and a client with empty caches.
            let m = crate::bench_fuse::Mount::start(&cluster_file, &root)?;
            out.push(("fuse_read_fresh_mount".into(), true.into()));
            if let Some(cached) = crate::bench_fuse::cached_bytes(&m.dir.join("fuse"), &sizes) {
                out.push(("fuse_read_page_cache_bytes_before".into(), cached.into()));
            }
            let cpu = cpu.with(m.pid());
            let before = cpu.sample();
            let read = crate::bench_fuse::read_files(&m.dir.join("fuse"), &pattern, &sizes)?;
            out.push(("cpu_s_per_gb_fuse_read".into(), round3(cpu.sample().per_gb_since(&before, read.bytes)).into()));
            out.push(("fuse_write_mbps".into(), round1(write.mbps()).into()));
            out.push(("fuse_read_mbps".into(), round1(read.mbps()).into()));
            out.push(("fuse_read_pct_of_disk_seq".into(), round1(100.0 * read.mbps() / disk_seq.max(1e-9)).into()));
            Ok(out)
        })
        .await??;
        report.extend(fuse);
    }

    if a.small_files > 0 {
        say("small files: through the mount, the native client and the local disk…");
        small_files(&a, &cluster, &client, &mnt, &spec.dir, &mut report).await?;
    }

    if a.list_entries > 0 && !a.no_fuse {
        say("listing a large directory through the mount…");
        let n = a.list_entries;
        let create = crate::bench_list::make(&client, "/bench/ls", n).await?;
        let (cluster_file, root) = (cluster.cluster_path.clone(), mnt.clone());
        let rates =
            tokio::task::spawn_blocking(move || crate::bench_list::through_mount(&cluster_file, &root, "bench/ls", n))
                .await??;
        report.insert("list_entries".into(), n.into());
        report.insert("list_create_per_s".into(), round1(create).into());
        report.insert("fuse_readdir_entries_per_s".into(), round1(rates.readdir).into());
        report.insert("fuse_ls_l_entries_per_s".into(), round1(rates.stat).into());
        report.insert("fuse_gnu_ls_l_entries_per_s".into(), round1(rates.gnu_ls_l).into());
        // After the listings: its creates add entries to the directory.
        say("the large directory natively: listing, lookups, creates into it…");
        report.extend(crate::bench_bigdir::native(&client, "bench/ls", n).await?);
    }

    if !a.no_degraded {
        say("degraded read: one data server down, repair stopped…");
        let before = cpu.sample();
        let read = crate::bench_degraded::degraded_read(&mut cluster, "/bench", &pattern, &sizes).await?;
        report
            .insert("cpu_s_per_gb_degraded_read".into(), round3(cpu.sample().per_gb_since(&before, read.bytes)).into());
        report.insert("degraded_read_mbps".into(), round1(read.mbps()).into());
        let healthy = report.get("read_mbps").and_then(Value::as_f64).unwrap_or(0.0);
        report.insert("degraded_read_pct_of_healthy".into(), round1(100.0 * read.mbps() / healthy.max(1e-9)).into());
        report.insert("degraded_data_servers_down".into(), 1.into());
    }

    if !a.no_rebuild {
        say("rebuild after a data server dies…");
        let (bytes, secs) = crate::bench_degraded::rebuild(&mut cluster, !a.no_degraded).await?;
        report.insert("rebuild_bytes".into(), bytes.into());
        // Three decimals: a tiny run rebuilds a few KB in a second or two,
        // which one decimal rounded to 0.
        report.insert("rebuild_mbps".into(), round3(bytes as f64 / secs / 1e6).into());
        report.insert(
            "rebuild_throttle_mbps_per_data_server".into(),
            (shardline_data::DEFAULT_REBUILD_RATE / 1_000_000).into(),
        );
    }
    cluster.stop();

    if a.json {
        println!("{}", Value::Object(report));
    } else {
        crate::bench_report::print(&report, &storage.line(), &crate::bench_store::line(&store), &levels);
    }
    Ok(())
}

/// The small-file rows: written through the mount (or the native client
/// without one), read back cold through a fresh mount, through fresh native
/// clients (tasks, then the prefetch API), and the local-disk baseline.
async fn small_files(
    a: &BenchArgs,
    cluster: &LocalCluster,
    client: &Client,
    mnt: &std::path::Path,
    data_dir: &std::path::Path,
    report: &mut Map<String, Value>,
) -> Result<()> {
    let set = SmallSet::new(a.small_files);
    report.insert("small_files".into(), set.len().into());
    report.insert("small_bytes".into(), set.bytes().into());
    report.insert("small_folders".into(), set.folder_count().into());
    let mut put = |k: &str, v: f64| report.insert(k.into(), round1(v).into());
    if a.no_fuse {
        let w = crate::bench_small::write_native(client, "/bench/small", &set).await?;
        put("small_native_write_files_per_s", w.files_per_s());
        put("small_native_write_mbps", w.mbps());
    } else {
        let (cluster_file, mnt, s) = (cluster.cluster_path.clone(), mnt.to_path_buf(), set.clone());
        let (w, r) = tokio::task::spawn_blocking(move || {
            crate::bench_small::through_mount(&cluster_file, &mnt, "bench/small", &s)
        })
        .await??;
        put("small_fuse_write_files_per_s", w.files_per_s());
        put("small_fuse_write_mbps", w.mbps());
        put("small_fuse_read_files_per_s", r.files_per_s());
        put("small_fuse_read_mbps", r.mbps());
    }
    let fresh = || async {
        Ok::<_, anyhow::Error>(Client::connect(cluster.file.client_config(shardline_rpc::Role::Client)?).await?)
    };
    let r = crate::bench_small::read_native(&fresh().await?, "/bench/small", &set).await?;
    put("small_native_read_files_per_s", r.files_per_s());
    put("small_native_read_mbps", r.mbps());
    let r = crate::bench_small::read_prefetch(&fresh().await?, "/bench/small", &set).await?;
    put("small_native_prefetch_read_files_per_s", r.files_per_s());
    let (dir, s) = (data_dir.join("small-local"), set.clone());
    let (w, r, direct) = tokio::task::spawn_blocking(move || crate::bench_small::local(&dir, &s)).await??;
    put("small_local_write_files_per_s", w.files_per_s());
    put("small_local_read_files_per_s", r.files_per_s());
    report.insert("small_local_read_direct_io".into(), direct.into());
    Ok(())
}
