//! The shard store micro-benchmark (`shardline bench --store-only`, and the
//! "shard store" row of `bench`): puts per second and syncs per shard for
//! concurrent writers of small and large shards, for each store backend, on
//! the disk under the bench's folder, beside that disk's own fsync latency
//! measured in the same run.
//!
//! Syncs per shard are counted exactly for the segment store (through its
//! disk seam); the per-file stores make two per shard by construction (the
//! temporary file, then its directory). Device flushes per shard, read from
//! /proc/diskstats, cross-check both (other programs' flushes count too).

use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use shardline_data::segment_store::{OsIo, SegmentIo};
use shardline_data::{FileStore, SegmentConfig, SegmentStore, ShardStore, UringStore};
use shardline_types::ShardKey;

use crate::workload::{round1, round3};

/// Which store a row measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// The per-file store through buffered I/O.
    File,
    /// The per-file store through io_uring with `O_DIRECT`.
    Uring,
    /// The segment store (`direct`: segments written with `O_DIRECT`).
    Segment { direct: bool },
}

impl Variant {
    pub fn name(self) -> &'static str {
        match self {
            Variant::File => "file",
            Variant::Uring => "uring",
            Variant::Segment { direct: false } => "segment",
            Variant::Segment { direct: true } => "segment-direct",
        }
    }
}

/// What to measure.
pub struct Options {
    pub dir: PathBuf,
    pub secs: f64,
    pub writers: usize,
    pub sizes: Vec<usize>,
    pub variants: Vec<Variant>,
    /// Every (variant, size) runs this many times, interleaved with the
    /// others (the disk is shared; its speed drifts): rows are medians.
    pub rounds: usize,
}

/// One store at one shard size.
#[derive(Clone, Copy)]
pub struct Row {
    pub variant: Variant,
    pub size: usize,
    /// Median over the rounds (the lowest and highest beside it).
    pub puts_per_s: f64,
    pub puts_range: (f64, f64),
    pub mb_per_s: f64,
    /// Counted through the seam (segment store) or by construction (2).
    pub syncs_per_shard: f64,
    pub flushes_per_shard: Option<f64>,
    /// Disk blocks allocated per shard.
    pub disk_bytes_per_shard: f64,
}

pub struct Report {
    pub fs: String,
    /// Appending 4 KiB and fdatasync: mean and median, in ms.
    pub fsync_mean_ms: f64,
    pub fsync_p50_ms: f64,
    pub writers: usize,
    pub rows: Vec<Row>,
}

/// Run every variant at every size (blocking: call it off the runtime).
pub fn run(opts: &Options) -> Result<Report> {
    std::fs::create_dir_all(&opts.dir).with_context(|| format!("create {}", opts.dir.display()))?;
    let fs = shardline_data::fs_type::fs_type(&opts.dir);
    let (fsync_mean_ms, fsync_p50_ms) = fsync_latency(&opts.dir)?;
    let variants: Vec<Variant> = opts
        .variants
        .iter()
        .copied()
        .filter(|&v| {
            let skip = v == Variant::Uring && shardline_data::uring_available().is_err();
            if skip {
                eprintln!("store bench: io_uring unavailable, skipping the uring store");
            }
            !skip
        })
        .collect();
    let mut runs: Vec<Vec<Row>> = Vec::new();
    for _ in 0..opts.rounds.max(1) {
        let mut round = Vec::new();
        for &size in &opts.sizes {
            for &variant in &variants {
                round.push(measure(opts, variant, size)?);
            }
        }
        runs.push(round);
    }
    let rows = (0..runs[0].len()).map(|i| median_row(runs.iter().map(|r| &r[i]).collect())).collect();
    Ok(Report { fs, fsync_mean_ms, fsync_p50_ms, writers: opts.writers, rows })
}

/// The round with the median puts/s, with the range of all rounds.
fn median_row(mut of: Vec<&Row>) -> Row {
    of.sort_by(|a, b| a.puts_per_s.total_cmp(&b.puts_per_s));
    let (lo, hi) = (of[0].puts_per_s, of[of.len() - 1].puts_per_s);
    let m = of[of.len() / 2];
    Row { puts_range: (lo, hi), flushes_per_shard: m.flushes_per_shard, ..*m }
}

/// Counts the segment store's syncs.
#[derive(Default)]
struct CountingIo(AtomicU64);

impl SegmentIo for CountingIo {
    fn write_at(&self, file: &std::fs::File, bufs: &[&[u8]], offset: u64) -> std::io::Result<()> {
        OsIo.write_at(file, bufs, offset)
    }
    fn sync_data(&self, file: &std::fs::File) -> std::io::Result<()> {
        self.0.fetch_add(1, Ordering::Relaxed);
        OsIo.sync_data(file)
    }
}

fn measure(opts: &Options, variant: Variant, size: usize) -> Result<Row> {
    let dir = opts.dir.join(format!("{}-{size}", variant.name()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let counter = Arc::new(CountingIo::default());
    let store: Arc<dyn ShardStore> = match variant {
        Variant::File => Arc::new(FileStore::open(&dir, None)?),
        Variant::Uring => Arc::new(UringStore::open(&dir, None)?),
        Variant::Segment { direct } => {
            let cfg = SegmentConfig { direct_io: direct, ..SegmentConfig::default() };
            Arc::new(SegmentStore::open_with(&dir, None, cfg, counter.clone())?)
        }
    };
    let data: Arc<Vec<u8>> = Arc::new((0..size).map(|i| (i * 131 % 251) as u8).collect());
    let crc = crc32c::crc32c(&data);
    let syncs_before = counter.0.load(Ordering::Relaxed);
    let flushes_before = device_flushes(&dir);
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(opts.secs);
    let threads: Vec<_> = (0..opts.writers)
        .map(|w| {
            let (store, data) = (store.clone(), data.clone());
            std::thread::spawn(move || -> Result<u64> {
                let mut n = 0u64;
                while Instant::now() < deadline {
                    let key = ShardKey { file_id: w as u64 + 1, chunk_index: n, version: 1, shard_index: 0 };
                    store.put(&key, &data, crc)?;
                    n += 1;
                }
                Ok(n)
            })
        })
        .collect();
    let mut puts = 0;
    for t in threads {
        puts += t.join().map_err(|_| anyhow::anyhow!("a bench writer panicked"))??;
    }
    let secs = start.elapsed().as_secs_f64();
    let syncs = counter.0.load(Ordering::Relaxed) - syncs_before;
    let flushes = flushes_before.zip(device_flushes(&dir)).map(|(a, b)| b.saturating_sub(a));
    drop(store);
    let disk = allocated_bytes(&dir);
    let _ = std::fs::remove_dir_all(&dir);
    let per = |x: f64| x / puts.max(1) as f64;
    Ok(Row {
        variant,
        size,
        puts_per_s: puts as f64 / secs,
        puts_range: (puts as f64 / secs, puts as f64 / secs),
        mb_per_s: (puts as f64 * size as f64) / secs / 1e6,
        syncs_per_shard: match variant {
            Variant::Segment { .. } => per(syncs as f64),
            _ => 2.0,
        },
        flushes_per_shard: flushes.map(|f| per(f as f64)),
        disk_bytes_per_shard: per(disk as f64),
    })
}

/// Append 4 KiB and fdatasync, 200 times: (mean, median) in ms.
fn fsync_latency(dir: &Path) -> Result<(f64, f64)> {
    let path = dir.join("fsync-probe");
    let f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).open(&path)?;
    let block = vec![7u8; 4096];
    let mut times = Vec::with_capacity(200);
    for i in 0..200u64 {
        let t = Instant::now();
        f.write_all_at(&block, i * 4096)?;
        f.sync_data()?;
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    drop(f);
    let _ = std::fs::remove_file(&path);
    let mean = times.iter().sum::<f64>() / times.len() as f64;
    times.sort_by(f64::total_cmp);
    Ok((mean, times[times.len() / 2]))
}

/// Flush requests the device under `dir` has completed (/proc/diskstats,
/// field 16), if the kernel reports them.
fn device_flushes(dir: &Path) -> Option<u64> {
    let dev = std::fs::metadata(dir).ok()?.dev();
    let (major, minor) = (libc::major(dev), libc::minor(dev));
    let table = std::fs::read_to_string("/proc/diskstats").ok()?;
    table.lines().find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        let ours = f.first()?.parse::<u32>().ok()? == major && f.get(1)?.parse::<u32>().ok()? == minor;
        if ours {
            f.get(3 + 15)?.parse().ok()
        } else {
            None
        }
    })
}

/// Bytes of disk blocks allocated under `dir`.
fn allocated_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    let Ok(rd) = std::fs::read_dir(dir) else { return 0 };
    for e in rd.flatten() {
        let Ok(m) = e.metadata() else { continue };
        total += if m.is_dir() { allocated_bytes(&e.path()) } else { m.blocks() * 512 };
    }
    total
}

fn size_name(size: usize) -> String {
    if size >= 1 << 20 {
        format!("{} MiB", size >> 20)
    } else {
        format!("{} KiB", size >> 10)
    }
}

/// The report as a table.
pub fn print(r: &Report) {
    println!(
        "shard store ({} writers, {}; one 4 KiB append + fdatasync: {:.2} ms mean, {:.2} ms median)",
        r.writers, r.fs, r.fsync_mean_ms, r.fsync_p50_ms
    );
    println!("  store           shard     puts/s (range)         MB/s  syncs/shard  device flushes/shard  disk/shard");
    for row in &r.rows {
        let flushes = row.flushes_per_shard.map_or("-".into(), |f| format!("{f:.2}"));
        println!(
            "  {:<15} {:>6} {:>10.0} ({:>5.0}-{:<5.0}) {:>9.1} {:>12.2} {:>21} {:>8.1} KiB",
            row.variant.name(),
            size_name(row.size),
            row.puts_per_s,
            row.puts_range.0,
            row.puts_range.1,
            row.mb_per_s,
            row.syncs_per_shard,
            flushes,
            row.disk_bytes_per_shard / 1024.0
        );
    }
}

/// The report as JSON fields, prefixed `store_`.
pub fn json(r: &Report) -> serde_json::Map<String, serde_json::Value> {
    let mut m = serde_json::Map::new();
    m.insert("store_fsync_mean_ms".into(), round3(r.fsync_mean_ms).into());
    m.insert("store_fsync_p50_ms".into(), round3(r.fsync_p50_ms).into());
    m.insert("store_writers".into(), r.writers.into());
    for row in &r.rows {
        let k = format!("store_{}_{}k", row.variant.name().replace('-', "_"), row.size >> 10);
        m.insert(format!("{k}_puts_per_s"), round1(row.puts_per_s).into());
        m.insert(format!("{k}_puts_per_s_min"), round1(row.puts_range.0).into());
        m.insert(format!("{k}_puts_per_s_max"), round1(row.puts_range.1).into());
        m.insert(format!("{k}_mbps"), round1(row.mb_per_s).into());
        m.insert(format!("{k}_syncs_per_shard"), round3(row.syncs_per_shard).into());
        m.insert(format!("{k}_disk_bytes_per_shard"), round1(row.disk_bytes_per_shard).into());
        if let Some(f) = row.flushes_per_shard {
            m.insert(format!("{k}_device_flushes_per_shard"), round3(f).into());
        }
    }
    m
}

/// One line for `bench`'s summary: each store's puts/s per size.
pub fn line(r: &Report) -> String {
    let mut parts = Vec::new();
    for row in &r.rows {
        parts.push(format!(
            "{} {}: {:.0}/s ({:.2} syncs/shard)",
            row.variant.name(),
            size_name(row.size),
            row.puts_per_s,
            row.syncs_per_shard
        ));
    }
    format!("{}; fdatasync {:.2} ms", parts.join(", "), r.fsync_mean_ms)
}

/// `shardline bench --store-only`: every store at 1 KiB, 16 KiB and 1 MiB,
/// in a folder under `dir` (default: the current directory, to measure the
/// disk the user is on).
pub fn run_alone(dir: Option<&Path>, secs: f64, rounds: usize, as_json: bool) -> Result<()> {
    let base = match dir {
        Some(d) => d.to_path_buf(),
        None => std::env::current_dir()?,
    };
    std::fs::create_dir_all(&base)?;
    let tmp = tempfile::Builder::new().prefix("shardline-store-bench-").tempdir_in(&base)?;
    let opts = Options {
        dir: tmp.path().to_path_buf(),
        secs,
        writers: 6,
        sizes: vec![1 << 10, 16 << 10, 1 << 20],
        variants: vec![
            Variant::File,
            Variant::Uring,
            Variant::Segment { direct: false },
            Variant::Segment { direct: true },
        ],
        rounds,
    };
    let report = run(&opts)?;
    if as_json {
        println!("{}", serde_json::Value::Object(json(&report)));
    } else {
        print(&report);
    }
    Ok(())
}

/// The short version `bench` runs: the old default (per-file, io_uring)
/// beside the default (segment), one second per size.
pub fn quick(dir: &Path) -> Result<Report> {
    let opts = Options {
        dir: dir.to_path_buf(),
        secs: 1.0,
        writers: 6,
        sizes: vec![1 << 10, 16 << 10, 1 << 20],
        variants: vec![Variant::Uring, Variant::Segment { direct: false }],
        rounds: 1,
    };
    let report = run(&opts);
    let _ = std::fs::remove_dir_all(dir);
    report
}
