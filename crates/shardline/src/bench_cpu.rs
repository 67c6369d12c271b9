//! CPU seconds of the whole local cluster per GB moved, for `shardline
//! bench`: user + system time of every server process (from
//! `/proc/<pid>/stat`, in clock ticks), of the bench process itself (the
//! client: `getrusage(RUSAGE_SELF)`, every thread) and, for phases through
//! FUSE, of the `shardline mount` process, sampled before and after a
//! phase. Background work that runs meanwhile (heartbeats, Raft ticks)
//! counts too: it is part of what the cluster costs. A process that exits
//! between two samples is left out of that phase.

use std::collections::HashMap;

/// The processes to account for, besides this one.
#[derive(Debug, Clone, Default)]
pub struct CpuMeter {
    pids: Vec<u32>,
}

/// CPU seconds used so far: this process, and each other process by pid.
#[derive(Debug, Clone, Default)]
pub struct CpuSample {
    own: f64,
    others: HashMap<u32, f64>,
}

impl CpuMeter {
    pub fn new(pids: Vec<u32>) -> CpuMeter {
        CpuMeter { pids }
    }

    /// The same processes and `pid` (a mount).
    pub fn with(&self, pid: u32) -> CpuMeter {
        let mut pids = self.pids.clone();
        pids.push(pid);
        CpuMeter { pids }
    }

    /// Processes measured: this one and the others.
    pub fn processes(&self) -> usize {
        self.pids.len() + 1
    }

    pub fn sample(&self) -> CpuSample {
        let others = self.pids.iter().filter_map(|&pid| Some((pid, proc_cpu_secs(pid)?))).collect();
        CpuSample { own: own_cpu_secs(), others }
    }
}

impl CpuSample {
    /// CPU seconds every process present in both samples used between them.
    pub fn secs_since(&self, before: &CpuSample) -> f64 {
        let others: f64 =
            self.others.iter().filter_map(|(pid, after)| Some(after - before.others.get(pid)?)).sum::<f64>();
        (self.own - before.own) + others
    }

    /// CPU seconds per GB (10^9 bytes) moved between `before` and now.
    pub fn per_gb_since(&self, before: &CpuSample, bytes: u64) -> f64 {
        self.secs_since(before) / (bytes.max(1) as f64 / 1e9)
    }
}

/// utime + stime of `pid` (every thread), in seconds.
fn proc_cpu_secs(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces), from field 3.
    let rest: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let utime: u64 = rest.get(11)?.parse().ok()?;
    let stime: u64 = rest.get(12)?.parse().ok()?;
    // SAFETY: sysconf only reads a configuration value.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    (ticks > 0).then(|| (utime + stime) as f64 / ticks as f64)
}

/// This process's user + system time, every thread, in seconds.
fn own_cpu_secs() -> f64 {
    // SAFETY: rusage is plain data; all zeroes is a valid value.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage fills the struct we own and pass by pointer.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } != 0 {
        return 0.0;
    }
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(ru.ru_utime) + secs(ru.ru_stime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_cpu_burnt_by_this_process() {
        let meter = CpuMeter::new(vec![std::process::id()]);
        let before = meter.sample();
        let start = std::time::Instant::now();
        let mut x = 0u64;
        while start.elapsed() < std::time::Duration::from_millis(200) {
            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
        let after = meter.sample();
        // Counted twice: once as this process, once by its pid in /proc.
        assert!(after.others.contains_key(&std::process::id()), "read /proc/self/stat");
        assert!(after.secs_since(&before) > 0.0);
        assert!(after.per_gb_since(&before, 2_000_000_000) < after.secs_since(&before));
    }
}
