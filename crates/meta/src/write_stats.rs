//! Where a metadata write's time goes: counters the Ready loop, the log
//! writer and the request handlers add to, and a small text file
//! (`<dir>/write-stats`) they are copied into a few times a second, which
//! `shardline bench` reads to print a per-operation latency breakdown.
//!
//! Per operation (on the leader, one sample per mutation):
//! - `queue`: from the request handler handing the proposal to the Ready loop
//!   until the loop takes it;
//! - `replicate`: from then until the loop sees the entry committed (the
//!   leader's own log write and the round trip to a quorum of followers,
//!   each writing theirs, overlap inside it);
//! - `apply`: applying the entry to the state machine;
//! - `total`: the request handler's whole wait, so what is left after the
//!   three above is the hand-off of the reply back to the handler.
//!
//! Per durable log write (on every server, one sample per batch): `log_write`
//! (time to write and fsync one batch; `entries` counts what it held) and
//! `log_sync_wait` (how long a batch waited for the disk before its write
//! started, while an earlier fsync ran).
//!
//! File format, version 1: a first line `shardline-write-stats 1`, then one
//! line per counter, `name count total_ns`. Readers skip names they do not
//! know.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// What one sample measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Queue,
    Replicate,
    Apply,
    Total,
    LogWrite,
    LogSyncWait,
}

const STAGES: [Stage; 6] =
    [Stage::Queue, Stage::Replicate, Stage::Apply, Stage::Total, Stage::LogWrite, Stage::LogSyncWait];

impl Stage {
    pub fn name(self) -> &'static str {
        match self {
            Stage::Queue => "queue",
            Stage::Replicate => "replicate",
            Stage::Apply => "apply",
            Stage::Total => "total",
            Stage::LogWrite => "log_write",
            Stage::LogSyncWait => "log_sync_wait",
        }
    }
}

#[derive(Default)]
struct Counter {
    count: AtomicU64,
    ns: AtomicU64,
}

/// Counters shared by the Ready loop, the log writer and the handlers.
#[derive(Default)]
pub struct WriteStats {
    stages: [Counter; STAGES.len()],
    /// Entries made durable (the log writes' batch sizes add up to this).
    entries: AtomicU64,
    /// fsyncs of the log (and of the stores beside it).
    fsyncs: AtomicU64,
    /// Bumped on every change, so the file is rewritten only when needed.
    changes: AtomicU64,
}

impl WriteStats {
    pub fn record(&self, stage: Stage, took: Duration) {
        let c = &self.stages[STAGES.iter().position(|s| *s == stage).unwrap_or(0)];
        c.count.fetch_add(1, Ordering::Relaxed);
        c.ns.fetch_add(took.as_nanos().min(u64::MAX as u128) as u64, Ordering::Relaxed);
        self.changes.fetch_add(1, Ordering::Relaxed);
    }

    /// A durable log write of `entries` entries that took `took`.
    pub fn log_write(&self, entries: usize, took: Duration, fsyncs: u64) {
        self.entries.fetch_add(entries as u64, Ordering::Relaxed);
        self.fsyncs.fetch_add(fsyncs, Ordering::Relaxed);
        self.record(Stage::LogWrite, took);
    }

    /// An fsync outside a log write (a store beside the log).
    pub fn fsync(&self) {
        self.fsyncs.fetch_add(1, Ordering::Relaxed);
        self.changes.fetch_add(1, Ordering::Relaxed);
    }

    /// The version-1 text form.
    pub fn render(&self) -> String {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0);
        let mut out = format!("shardline-write-stats 1\nwritten_at 1 {now}\n");
        for (s, c) in STAGES.iter().zip(&self.stages) {
            let (n, ns) = (c.count.load(Ordering::Relaxed), c.ns.load(Ordering::Relaxed));
            out.push_str(&format!("{} {n} {ns}\n", s.name()));
        }
        out.push_str(&format!("entries {} 0\n", self.entries.load(Ordering::Relaxed)));
        out.push_str(&format!("fsyncs {} 0\n", self.fsyncs.load(Ordering::Relaxed)));
        out
    }

    fn changes(&self) -> u64 {
        self.changes.load(Ordering::Relaxed)
    }
}

/// Where [`WriteStats`] are written inside a metadata server's folder.
pub fn path_in(dir: &Path) -> PathBuf {
    dir.join("write-stats")
}

/// Copy `stats` to [`path_in`]`(dir)` every `every` while they change (write
/// to a temporary name, then rename: a reader never sees half a file). Not
/// fsynced: these are figures for a benchmark, not state.
pub async fn publish(stats: std::sync::Arc<WriteStats>, dir: PathBuf, every: Duration) {
    let (path, tmp) = (path_in(&dir), dir.join("write-stats.tmp"));
    let mut seen = u64::MAX;
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        let now = stats.changes();
        if now == seen {
            continue;
        }
        seen = now;
        let text = stats.render();
        if let Err(e) = std::fs::write(&tmp, text).and_then(|()| std::fs::rename(&tmp, &path)) {
            tracing::debug!(error = %e, "could not write the write statistics");
        }
    }
}

/// One counter as read back from the file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sample {
    pub count: u64,
    pub ns: u64,
}

/// Parse the version-1 text form: counter name → sample.
pub fn parse(text: &str) -> Option<std::collections::BTreeMap<String, Sample>> {
    let mut lines = text.lines();
    if lines.next()? != "shardline-write-stats 1" {
        return None;
    }
    let mut out = std::collections::BTreeMap::new();
    for line in lines {
        let mut f = line.split_ascii_whitespace();
        let (Some(name), Some(count), Some(ns)) = (f.next(), f.next(), f.next()) else { continue };
        let (Ok(count), Ok(ns)) = (count.parse(), ns.parse()) else { continue };
        out.insert(name.to_string(), Sample { count, ns });
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rendered_stats_parse_back() {
        let s = WriteStats::default();
        s.record(Stage::Queue, Duration::from_micros(5));
        s.record(Stage::Queue, Duration::from_micros(7));
        s.log_write(3, Duration::from_micros(400), 1);
        let m = parse(&s.render()).unwrap();
        assert_eq!(m["queue"], Sample { count: 2, ns: 12_000 });
        assert_eq!(m["log_write"], Sample { count: 1, ns: 400_000 });
        assert_eq!(m["entries"].count, 3);
        assert_eq!(m["fsyncs"].count, 1);
        assert_eq!(m["apply"].count, 0);
        assert!(parse("something else\nqueue 1 2\n").is_none());
    }
}
