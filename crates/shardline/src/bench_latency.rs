//! Latency baselines and the metadata write breakdown for `shardline bench`:
//! this disk's fsync latency and the loopback round trip, measured in the
//! same run as the figures they explain, and where a metadata write's time
//! goes, from the counters each metadata server writes to its folder
//! (`shardline_meta::write_stats`).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use serde_json::json;
use shardline_meta::write_stats::{self, Sample};

/// Median and mean of a latency, in milliseconds.
#[derive(Debug, Clone, Copy)]
pub struct Latency {
    pub median_ms: f64,
    pub mean_ms: f64,
}

impl Latency {
    fn of(mut samples: Vec<Duration>) -> Latency {
        samples.sort_unstable();
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        let mean = samples.iter().map(|d| ms(*d)).sum::<f64>() / samples.len().max(1) as f64;
        Latency { median_ms: samples.get(samples.len() / 2).map(|d| ms(*d)).unwrap_or(0.0), mean_ms: mean }
    }

    pub fn json(&self) -> serde_json::Value {
        json!({ "median_ms": round3(self.median_ms), "mean_ms": round3(self.mean_ms) })
    }
}

/// How a file is written for [`fsync_latency`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsyncKind {
    /// Appending: each fdatasync also records the new file size.
    Append,
    /// Into space reserved beforehand, as the metadata log writes.
    Preallocated,
}

/// A 256-byte write plus fdatasync in `dir`, `n` times.
pub fn fsync_latency(dir: &Path, n: usize, kind: FsyncKind) -> Result<Latency> {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::FileExt;
    let path = dir.join(".bench-fsync");
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(&path)
        .with_context(|| format!("create {}", path.display()))?;
    let record = [0x5au8; 256];
    if kind == FsyncKind::Preallocated {
        let len = (n * record.len()) as libc::off_t;
        // SAFETY: fallocate on a descriptor we own; no memory is passed.
        if unsafe { libc::fallocate(f.as_raw_fd(), 0, 0, len) } != 0 {
            f.set_len(len as u64)?;
        }
        f.sync_all()?;
    }
    let mut samples = Vec::with_capacity(n);
    for i in 0..n {
        let t = Instant::now();
        f.write_all_at(&record, (i * record.len()) as u64)?;
        f.sync_data()?;
        samples.push(t.elapsed());
    }
    drop(f);
    std::fs::remove_file(&path)?;
    Ok(Latency::of(samples))
}

/// Round trip of a 64-byte message over loopback TCP, `n` times.
pub fn loopback_rtt(n: usize) -> Result<Latency> {
    let listener = TcpListener::bind("127.0.0.1:0").context("bind loopback listener")?;
    let addr = listener.local_addr()?;
    let echo = std::thread::spawn(move || -> std::io::Result<()> {
        let (mut s, _) = listener.accept()?;
        s.set_nodelay(true)?;
        let mut buf = [0u8; 64];
        loop {
            if s.read_exact(&mut buf).is_err() {
                return Ok(());
            }
            s.write_all(&buf)?;
        }
    });
    let mut s = TcpStream::connect(addr)?;
    s.set_nodelay(true)?;
    let mut buf = [7u8; 64];
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        s.write_all(&buf)?;
        s.read_exact(&mut buf)?;
        samples.push(t.elapsed());
    }
    drop(s);
    let _ = echo.join();
    Ok(Latency::of(samples))
}

type Counters = BTreeMap<String, Sample>;

/// What [`WriteProbe::read`] saw.
#[derive(Default)]
pub struct Reading {
    servers: Vec<Counters>,
    fsync: Option<Latency>,
}

/// Reads the metadata servers' write counters.
#[derive(Clone)]
pub struct WriteProbe {
    dirs: Vec<PathBuf>,
}

impl WriteProbe {
    pub fn new(dirs: Vec<PathBuf>) -> Self {
        WriteProbe { dirs }
    }

    /// Every server's counters, once each has published what it counted
    /// until now (or after a second, if it counted nothing new); with
    /// `fsync`, also this disk's fsync latency right now (in the first
    /// server's folder, where its log is), for the figures that follow.
    pub fn read(&self, fsync: bool) -> Reading {
        let fsync = fsync
            .then(|| self.dirs.first().and_then(|d| fsync_latency(d, 100, FsyncKind::Preallocated).ok()))
            .flatten();
        Reading { servers: self.counters(), fsync }
    }

    fn counters(&self) -> Vec<Counters> {
        let now = unix_ns();
        let deadline = Instant::now() + Duration::from_secs(1);
        self.dirs
            .iter()
            .map(|d| loop {
                let c = std::fs::read_to_string(write_stats::path_in(d))
                    .ok()
                    .and_then(|t| write_stats::parse(&t))
                    .unwrap_or_default();
                if c.get("written_at").is_some_and(|s| s.ns >= now) || Instant::now() > deadline {
                    break c;
                }
                std::thread::sleep(Duration::from_millis(20));
            })
            .collect()
    }
}

fn unix_ns() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0)
}

/// Where the metadata writes between two [`WriteProbe::read`]s spent their
/// time, for `ops` operations that took `per_op_ms` each as the caller saw
/// them (JSON, all times in milliseconds).
pub fn breakdown(before: &Reading, after: &Reading, ops: u64, per_op_ms: f64) -> serde_json::Value {
    let fsync = before.fsync.map(|l| l.median_ms).unwrap_or(0.0);
    let (before, after) = (&before.servers, &after.servers);
    let delta = |b: &Counters, a: &Counters, k: &str| {
        let (b, a) = (b.get(k).copied().unwrap_or_default(), a.get(k).copied().unwrap_or_default());
        Sample { count: a.count.saturating_sub(b.count), ns: a.ns.saturating_sub(b.ns) }
    };
    // The leader is the server whose handlers waited on the writes.
    let Some(leader) = (0..after.len().min(before.len())).max_by_key(|&i| delta(&before[i], &after[i], "total").count)
    else {
        return json!({});
    };
    let d = |k: &str| delta(&before[leader], &after[leader], k);
    let mean_ms = |s: Sample| if s.count == 0 { 0.0 } else { s.ns as f64 / s.count as f64 / 1e6 };
    let total = d("total");
    let ops_seen = total.count.max(1) as f64;
    let (queue, replicate, apply) = (mean_ms(d("queue")), mean_ms(d("replicate")), mean_ms(d("apply")));
    let server = mean_ms(total);
    // The followers' figures, summed over them.
    let followers = |k: &str| {
        let all: Vec<Sample> = (0..after.len().min(before.len()))
            .filter(|&i| i != leader)
            .map(|i| delta(&before[i], &after[i], k))
            .collect();
        Sample { count: all.iter().map(|s| s.count).sum(), ns: all.iter().map(|s| s.ns).sum() }
    };
    let (follower_write, follower_wait) = (followers("log_write"), followers("log_sync_wait"));
    let writes = d("log_write");
    json!({
        "ops": ops,
        "per_op_ms": round3(per_op_ms),
        "metadata_requests_per_op": round3(total.count as f64 / ops.max(1) as f64),
        "queue_ms": round3(queue),
        "replicate_ms": round3(replicate),
        "apply_ms": round3(apply),
        "reply_ms": round3((server - queue - replicate - apply).max(0.0)),
        "server_total_ms": round3(server),
        "outside_server_ms": round3((per_op_ms - server * total.count as f64 / ops.max(1) as f64).max(0.0)),
        "leader_log_write_ms": round3(mean_ms(writes)),
        "leader_log_writes_per_request": round3(writes.count as f64 / ops_seen),
        "leader_sync_wait_ms": round3(mean_ms(d("log_sync_wait"))),
        "leader_fsyncs_per_request": round3(d("fsyncs").count as f64 / ops_seen),
        "entries_per_log_write": round3(d("entries").count as f64 / writes.count.max(1) as f64),
        "follower_log_write_ms": round3(mean_ms(follower_write)),
        "follower_sync_wait_ms": round3(mean_ms(follower_wait)),
        "fsync_median_ms_just_before": round3(fsync),
    })
}

/// One line of text for a breakdown made by [`breakdown`].
pub fn describe(b: &serde_json::Value) -> String {
    let g = |k: &str| b.get(k).and_then(|v| v.as_f64()).unwrap_or(0.0);
    format!(
        "{:.3} ms/op (fsync just before: {:.3} ms median) = outside the metadata servers {:.3} + {:.2} request(s) × [queue {:.3} + replicate {:.3} + apply {:.3} + reply {:.3}]; \
         leader log write {:.3} ms after waiting {:.3} ({:.2} per request, {:.2} fsyncs per request, {:.1} entries each), \
         follower log write {:.3} ms after waiting {:.3}",
        g("per_op_ms"),
        g("fsync_median_ms_just_before"),
        g("outside_server_ms"),
        g("metadata_requests_per_op"),
        g("queue_ms"),
        g("replicate_ms"),
        g("apply_ms"),
        g("reply_ms"),
        g("leader_log_write_ms"),
        g("leader_sync_wait_ms"),
        g("leader_log_writes_per_request"),
        g("leader_fsyncs_per_request"),
        g("entries_per_log_write"),
        g("follower_log_write_ms"),
        g("follower_sync_wait_ms"),
    )
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}
