//! `shardline up`: a local cluster in the foreground until Ctrl-C/SIGTERM,
//! or in the background with `--daemon` (returning once it is ready).
//!
//! A server that exits before the cluster first answers is a failed start:
//! every server is stopped. Once it answers, a server that exits is reported
//! (its name, pid and exit status) and the others keep running.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use clap::Args;
use shardline_types::Layout;

use crate::cmd_servers::shutdown_signal;
use crate::local_cluster::{LocalCluster, Readiness, Spec};

#[derive(Args)]
pub struct UpArgs {
    /// Folder holding every server's data, the key file and cluster.toml.
    #[arg(long, default_value = "./shardline-data")]
    pub data_dir: PathBuf,
    /// Metadata servers (Raft replicas).
    #[arg(long, default_value_t = 3)]
    pub meta: usize,
    /// Data servers (default: K+M+2, 8 for 4+2, or as many as the folder's
    /// cluster.toml already lists). With exactly K+M, a dead data server
    /// stops writes until it is back: its placement-group slots have no
    /// spare to move to.
    #[arg(long)]
    pub data: Option<usize>,
    /// Erasure code K+M of the root directory.
    #[arg(long, default_value = "4+2")]
    pub ec: String,
    /// Plaintext bytes per chunk.
    #[arg(long, default_value_t = 4 << 20)]
    pub chunk_size: u32,
    /// Loopback address the servers bind.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Bytes each data server may hold (default: the disk's free space).
    #[arg(long)]
    pub data_capacity: Option<u64>,
    /// How long a client holding open files may be silent before it loses
    /// them, in ms (default: the metadata servers' 30 s).
    #[arg(long)]
    pub client_lease_ms: Option<u64>,
    /// Connections to data servers use the integrity-only transport after
    /// the TLS handshake (authenticated, not encrypted; shards are sealed
    /// end to end already). Default: fully encrypted. See docs/security.md.
    #[arg(long)]
    pub data_integrity_only: bool,
    /// Clients of this cluster store a file of at most this many bytes as
    /// M+1 whole copies of its one chunk instead of K+M cells: a cold read
    /// is one shard get instead of K, for twice the raw space under 4+2
    /// (same M lost servers survived). 0: every file erasure-coded. Written
    /// to cluster.toml (`small_file_max`); default: the client's, 128 KiB.
    #[arg(long)]
    pub small_file_max: Option<u64>,
    /// Detach: start the cluster in the background and return once it is
    /// ready (exit 0), or failed or not healthy in time (non-zero). Its
    /// output goes to --log-file.
    #[arg(long)]
    pub daemon: bool,
    /// Where a --daemon cluster's `up` logs (default: DATA_DIR/up.log).
    #[arg(long, requires = "daemon")]
    pub log_file: Option<PathBuf>,
    /// Internal: the pipe on which a --daemon parent waits to hear how
    /// start-up ended.
    #[arg(long, hide = true)]
    pub ready_fd: Option<i32>,
}

/// Data servers a new local cluster has beyond its layout's K+M: a dead
/// server's placement-group slots move to a spare once it is marked down,
/// so writes go on (with exactly K+M they stop until it is back).
pub const SPARE_DATA_SERVERS: usize = 2;

/// How many data servers the cluster file in `dir` lists, if there is one
/// (`up` on an existing folder restarts that cluster as it is).
fn servers_listed(dir: &std::path::Path) -> Option<usize> {
    let path = dir.join("cluster.toml");
    path.exists().then(|| crate::cluster_file::ClusterFile::load(&path).ok()).flatten().map(|f| f.data.len())
}

/// How long `up` waits for the cluster to become ready.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

impl UpArgs {
    pub fn spec(&self) -> Result<Spec> {
        let layout = Layout { chunk_size: self.chunk_size, ..Layout::default() }.with_ec(&self.ec)?;
        let data = match self.data {
            Some(n) => n,
            None => servers_listed(&self.data_dir).unwrap_or(layout.width() + SPARE_DATA_SERVERS),
        };
        if data < layout.width() {
            anyhow::bail!("EC {} needs at least {} data servers, --data is {data}", layout.ec(), layout.width());
        }
        if self.meta == 0 {
            anyhow::bail!("--meta must be at least 1");
        }
        if !self.host.starts_with("127.") {
            anyhow::bail!("a local cluster binds loopback addresses only (127.x.y.z), not {}", self.host);
        }
        Ok(Spec {
            dir: self.data_dir.clone(),
            meta: self.meta,
            data,
            layout,
            pg_count: 64,
            host: self.host.clone(),
            data_capacity: self.data_capacity,
            client_lease_ms: self.client_lease_ms,
            data_integrity_only: self.data_integrity_only,
            small_file_max: self.small_file_max,
        })
    }
}

pub async fn run(args: UpArgs) -> Result<()> {
    let spec = args.spec()?;
    if args.daemon {
        return crate::up_daemon::daemonize(&args);
    }
    let mut notify = args.ready_fd.map(crate::up_daemon::Notifier::adopt).transpose()?;
    let mut cluster = LocalCluster::start(&spec)?;
    let readiness = tokio::select! {
        r = cluster.wait_ready_reporting(READY_TIMEOUT, report_exit) => r,
        _ = shutdown_signal() => { cluster.stop(); return Ok(()); }
    };
    let readiness = match readiness {
        Ok(r) => r,
        Err(e) => {
            if let Some(n) = notify.take() {
                n.send(&format!("failed: {e:#}"));
            }
            return Err(e);
        }
    };
    let f = &cluster.file;
    match &readiness {
        Readiness::Ready => println!(
            "shardline cluster ready: {} metadata + {} data servers, EC {}, {} KiB chunks, encrypted",
            f.meta.len(),
            f.data.len(),
            f.ec,
            f.chunk_size >> 10
        ),
        Readiness::Unhealthy(why) => println!(
            "shardline cluster answering but not healthy after {} s: {why}; the servers keep running",
            READY_TIMEOUT.as_secs()
        ),
    }
    for n in &f.meta {
        println!("  meta-{} {}  {}", n.id, n.addr, n.dir.display());
    }
    for n in &f.data {
        println!("  data-{} {}  {}", n.id, n.addr, n.dir.display());
    }
    println!("cluster file: {}  (export SHARDLINE_CLUSTER={0})", cluster.cluster_path.display());
    println!("Ctrl-C stops the cluster.");
    if let Some(n) = notify.take() {
        n.send(&match &readiness {
            Readiness::Ready => "ready".to_string(),
            Readiness::Unhealthy(why) => format!("unhealthy: {why}"),
        });
    }
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    loop {
        tokio::select! {
            _ = shutdown_signal() => break,
            _ = tick.tick() => {
                for (name, pid, status) in cluster.reap() {
                    report_exit(&name, pid, &status);
                }
            }
        }
    }
    println!("stopping cluster");
    cluster.stop();
    Ok(())
}

/// A server exited while the cluster runs: say which and how; the others
/// keep running.
fn report_exit(name: &str, pid: u32, status: &str) {
    println!("{name} (pid {pid}) exited: {status}; the other servers keep running (see its log file)");
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::UpArgs;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        up: UpArgs,
    }

    fn data_servers(args: &[&str]) -> usize {
        let cli = Cli::try_parse_from(std::iter::once("up").chain(args.iter().copied())).expect("parse");
        cli.up.spec().expect("spec").data
    }

    #[test]
    fn a_new_cluster_has_two_spare_data_servers_unless_told() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path().to_str().expect("utf-8 path");
        assert_eq!(data_servers(&["--data-dir", d]), 8);
        assert_eq!(data_servers(&["--data-dir", d, "--ec", "8+3"]), 13);
        assert_eq!(data_servers(&["--data-dir", d, "--data", "6"]), 6);
        let too_few = Cli::try_parse_from(["up", "--data-dir", d, "--data", "5"]).expect("parse");
        assert!(too_few.up.spec().is_err(), "4+2 on 5 data servers must be refused");
    }

    #[test]
    fn an_existing_cluster_keeps_its_own_count() {
        let dir = tempfile::tempdir().expect("tempdir");
        let head = "version = 1\nec = \"4+2\"\nchunk_size = 65536\npg_count = 64\nkey_file = \"/x/kek.key\"\n\
            [[meta]]\nid = 1\naddr = \"127.0.0.1:7000\"\ndir = \"/x/meta-1\"\n";
        let data: String = (1..=6)
            .map(|i| format!("[[data]]\nid = {i}\naddr = \"127.0.0.1:710{i}\"\ndir = \"/x/data-{i}\"\n"))
            .collect();
        let listed = format!("{head}{data}");
        std::fs::write(dir.path().join("cluster.toml"), listed).expect("write cluster.toml");
        let d = dir.path().to_str().expect("utf-8 path");
        assert_eq!(data_servers(&["--data-dir", d]), 6);
        assert_eq!(data_servers(&["--data-dir", d, "--data", "9"]), 9);
    }
}
