//! `shardline`: the one binary — servers (`meta`, `data`), a local cluster
//! (`up`), the main job (`demo`), file commands and `admin`.

mod bench_bigdir;
mod bench_cpu;
mod bench_degraded;
mod bench_fuse;
mod bench_latency;
mod bench_list;
mod bench_meta;
mod bench_random;
mod bench_report;
mod bench_seal;
mod bench_small;
mod bench_store;
mod capacity;
mod certs;
mod cluster_file;
mod cmd_admin;
mod cmd_bench;
mod cmd_demo;
mod cmd_files;
mod cmd_keys;
mod cmd_mount;
mod cmd_moves;
mod cmd_servers;
mod cmd_up;
mod config_file;
mod config_reference;
mod health;
mod local_cluster;
mod logging;
mod loopback;
mod metrics_endpoint;
mod progress;
mod storage_report;
mod synthetic;
mod up_daemon;
mod workload;

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{CommandFactory, Parser, Subcommand};
use shardline_client::Client;

#[derive(Parser)]
#[command(name = "shardline", version, about = "Encrypted, erasure-coded distributed file system for AI training data")]
// A later flag overrides an earlier one: a config file's settings come first.
#[command(args_override_self = true)]
struct Cli {
    /// Cluster file written by `shardline up` (default: ./shardline-data/cluster.toml).
    #[arg(long, global = true, env = "SHARDLINE_CLUSTER")]
    cluster: Option<PathBuf>,
    /// Config file (TOML) for `meta`, `data` and `mount`: see docs/config.md.
    /// Flags on the command line override it.
    #[arg(long, global = true, env = "SHARDLINE_CONFIG")]
    config: Option<PathBuf>,
    /// Log level or filter (error, warn, info, debug, trace, or an
    /// env-filter such as `shardline_meta=debug,warn`); default: SHARDLINE_LOG,
    /// else the command's own.
    #[arg(long, global = true, value_name = "LEVEL")]
    log_level: Option<String>,
    /// Log lines as text or as one JSON object per line.
    #[arg(long, global = true, env = "SHARDLINE_LOG_FORMAT", value_enum, default_value_t = logging::LogFormat::Text)]
    log_format: logging::LogFormat,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Print the config-file reference (docs/config.md) generated from the
    /// commands' flags.
    #[command(hide = true)]
    ConfigReference,
    /// Start a local cluster (separate processes on loopback) in the
    /// foreground, or with --daemon in the background once it is ready.
    Up(cmd_up::UpArgs),
    /// The main job: start a fresh local cluster, write and read back synthetic
    /// training shards, verify every byte, report throughput beside loopback.
    Demo(cmd_demo::DemoArgs),
    /// Measure throughput and metadata rates beside this machine's own
    /// limits (loopback TCP, memcpy, cipher, erasure code, the raw disk with
    /// O_DIRECT), in one run: sequential, random and small-file I/O native
    /// and through a mount, listing, degraded read, rebuild, and the whole
    /// cluster's CPU seconds per GB.
    Bench(cmd_bench::BenchArgs),
    /// Run a metadata server.
    Meta(cmd_servers::MetaArgs),
    /// Create a key file (mode 0600; never overwrites): the metadata
    /// servers' shared key, or a key-encryption key for clients.
    Keygen { file: PathBuf },
    /// Run a data server.
    Data(cmd_servers::DataArgs),
    /// Mount the cluster as a POSIX file system (foreground; Ctrl-C unmounts).
    Mount(cmd_mount::MountArgs),
    // Paths in the cluster are bytes, like local ones: PathBuf, not String.
    /// Copy a local file into the cluster.
    Put { local: PathBuf, path: PathBuf },
    /// Copy a file out of the cluster ("-" writes to stdout).
    Get { path: PathBuf, local: PathBuf },
    /// List a directory.
    Ls {
        path: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Show a file's attributes.
    Stat {
        path: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Remove a file or an empty directory.
    Rm { path: PathBuf },
    /// Create a directory.
    Mkdir { path: PathBuf },
    /// Show or set a directory's layout policy (chunk size, erasure code),
    /// which files and directories created in it inherit. Setting one is an
    /// operator request: it presents the cluster file's admin certificate.
    Layout {
        path: PathBuf,
        /// Erasure code K+M for new files.
        #[arg(long)]
        ec: Option<String>,
        /// Plaintext bytes per chunk for new files.
        #[arg(long)]
        chunk_size: Option<u32>,
    },
    /// Operate the cluster.
    Admin {
        #[command(subcommand)]
        command: cmd_admin::AdminCmd,
    },
}

fn cluster_path(cli: &Option<PathBuf>) -> PathBuf {
    cli.clone().unwrap_or_else(|| PathBuf::from("shardline-data/cluster.toml"))
}

/// A client for one command (`put`, `get`, `ls`…): without a metadata
/// cache session, which a process that exits at once would not use, and
/// whose holdings would hold up other clients' changes for up to a lease
/// after it is gone.
async fn connect(cluster: &Option<PathBuf>) -> Result<Client> {
    connect_as(cluster, shardline_rpc::Role::Client).await
}

/// A client presenting the `role` certificate of the cluster file (the
/// client's, or the operator's for operator requests such as layout
/// policies), for one command.
async fn connect_as(cluster: &Option<PathBuf>, role: shardline_rpc::Role) -> Result<Client> {
    connect_with(cluster, role, false).await
}

/// A client that lives on (a mount), caching metadata under the coherent
/// cache's leases (docs/metadata-cache.md).
async fn connect_long_lived(cluster: &Option<PathBuf>) -> Result<Client> {
    connect_with(cluster, shardline_rpc::Role::Client, true).await
}

async fn connect_with(cluster: &Option<PathBuf>, role: shardline_rpc::Role, cache: bool) -> Result<Client> {
    let path = cluster_path(cluster);
    let file = cluster_file::ClusterFile::load(&path)
        .context("no cluster to talk to (start one with `shardline up`, or pass --cluster)")?;
    let mut cfg = file.client_config(role)?;
    cfg.metadata_cache = cache;
    let client = Client::connect(cfg).await.with_context(|| format!("connect to the cluster in {}", path.display()))?;
    Ok(client)
}

fn keygen(file: &std::path::Path) -> Result<()> {
    if file.exists() {
        anyhow::bail!("{} already exists; a key file is never overwritten", file.display());
    }
    let kek = shardline_crypto::Kek::load_or_create(file).context("create the key file")?;
    println!("created {} (key id {}, mode 0600)", file.display(), kek.id());
    Ok(())
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let argv = match config_file::apply(std::env::args_os().collect(), &Cli::command()) {
        Ok(argv) => argv,
        Err(e) => {
            eprintln!("error: {e:#}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let cli = Cli::parse_from(argv);
    let log = logging::LogOptions { level: cli.log_level.clone(), format: cli.log_format };
    let init_logging = |default: &str| logging::init(&log, default, &[]);
    let result = match cli.command {
        Cmd::ConfigReference => {
            print!("{}", config_reference::markdown(&Cli::command()));
            Ok(())
        }
        Cmd::Up(args) => {
            init_logging("info");
            cmd_up::run(args).await
        }
        Cmd::Demo(args) => {
            init_logging("warn");
            cmd_demo::run(args).await
        }
        Cmd::Bench(args) => {
            init_logging("warn");
            cmd_bench::run(args).await
        }
        Cmd::Meta(args) => {
            init_logging("info");
            cmd_servers::run_meta(args).await
        }
        Cmd::Data(args) => {
            init_logging("info");
            cmd_servers::run_data(args).await
        }
        Cmd::Mount(args) => {
            logging::init(&log, "warn", &["fuser=warn"]);
            cmd_mount::run(args, &cli.cluster).await
        }
        Cmd::Keygen { file } => {
            init_logging("warn");
            keygen(&file)
        }
        Cmd::Admin { command } => {
            init_logging("warn");
            cmd_admin::run(command, &cli.cluster).await
        }
        other => {
            init_logging("warn");
            cmd_files::run(other, &cli.cluster).await
        }
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
