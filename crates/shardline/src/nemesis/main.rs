//! `shardline-nemesis`: a fault-injection run against a real multi-process
//! cluster (3 metadata + 6 data servers, every link through a proxy), with
//! native and FUSE workloads recorded and checked, driven by a printed seed.
//!
//! Code map: `topology.rs` (nodes and links), `cluster.rs` (processes and
//! proxies), `mount.rs` (the FUSE mount process), `schedule.rs` (the seeded
//! fault schedule), `nemesis.rs` (carrying it out), `content.rs` (what each
//! byte may be, and the read checker), `data_load.rs` / `fuse_load.rs`
//! (data workloads), `ns_model.rs` / `ns_load.rs` (namespace workload and
//! its sequential model for the linearizability checker shared with the
//! black-box tests, `tests/harness/linearizability.rs`), `verify.rs` (the
//! final read-back), `redundancy.rs` (every shard back in place after the
//! heal), `summary.rs` (the report), `run.rs` (one run, start to
//! end).

mod cluster;
mod content;
mod data_load;
mod fuse_load;
#[path = "../../../../tests/harness/linearizability.rs"]
mod linearizability;
mod mount;
mod nemesis;
mod ns_load;
mod ns_model;
#[path = "../../../../tests/harness/proxy.rs"]
mod proxy;
mod redundancy;
mod run;
mod schedule;
mod summary;
mod topology;
mod verify;

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

/// Fault injection against a real local cluster; see tools/nemesis.
#[derive(Parser, Debug, Clone)]
#[command(name = "shardline-nemesis")]
pub struct Args {
    /// The schedule's seed (decimal or 0x-hex); random when absent. The
    /// same seed gives the same faults at the same times.
    #[arg(long)]
    pub seed: Option<String>,
    /// ci (about 2 minutes in all) or long.
    #[arg(long, default_value = "ci")]
    pub profile: String,
    /// Length of the fault phase (e.g. 90s, 30m); default from the profile.
    #[arg(long)]
    pub duration: Option<String>,
    /// The `shardline` binary (default: next to this one).
    #[arg(long)]
    pub bin: Option<PathBuf>,
    /// Folder for the cluster (default: a temporary one, removed after a
    /// passing run).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Servers listen on 127.0.0.OCTET, proxies on OCTET+1.
    #[arg(long, default_value_t = 110)]
    pub octet: u8,
    /// Erasure code of the cluster (3+2 over 6 data servers leaves a spare,
    /// so a dead server's groups are remapped and rebuilt).
    #[arg(long, default_value = "3+2")]
    pub ec: String,
    /// Run without the FUSE mount (and its workload).
    #[arg(long)]
    pub no_mount: bool,
    /// Print the schedule and exit.
    #[arg(long)]
    pub print_schedule: bool,
    /// Print every fault as it starts.
    #[arg(long)]
    pub verbose: bool,
    /// End with the summary as one JSON line.
    #[arg(long)]
    pub json: bool,
    /// Keep the cluster folder even after a passing run.
    #[arg(long)]
    pub keep: bool,
}

/// Parse "90", "90s", "30m", "1h".
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let (num, mult) = match s.char_indices().last()? {
        (i, 's') => (&s[..i], 1),
        (i, 'm') => (&s[..i], 60),
        (i, 'h') => (&s[..i], 3600),
        _ => (s, 1),
    };
    num.parse::<u64>().ok().map(|n| Duration::from_secs(n * mult))
}

pub fn parse_seed(s: &str) -> Option<u64> {
    match s.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    }
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    match run::run(args) {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => std::process::ExitCode::from(1),
        Err(e) => {
            eprintln!("nemesis: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_seeds_parse() {
        assert_eq!(parse_duration("90"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("30m"), Some(Duration::from_secs(1800)));
        assert_eq!(parse_duration("2h"), Some(Duration::from_secs(7200)));
        assert_eq!(parse_duration("x"), None);
        assert_eq!(parse_seed("0x1f"), Some(31));
        assert_eq!(parse_seed("31"), Some(31));
        assert_eq!(parse_seed("0xzz"), None);
    }
}
