//! `shardline meta` and `shardline data`: run one server in the foreground,
//! with a `pid` file in its folder while it runs.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Args;
use shardline_types::Layout;

/// Who a server is and where it lives (both server kinds).
#[derive(Args)]
pub struct ServerIdentity {
    /// This server's id (1-based, unique per kind, stable across restarts).
    #[arg(long)]
    id: u64,
    /// The server's folder (Raft log and state, or shards).
    #[arg(long)]
    dir: PathBuf,
    /// Address to listen on.
    #[arg(long)]
    listen: String,
    /// Serve Prometheus metrics at http://ADDR/metrics (port 0: any free
    /// port; the address bound is written to DIR/metrics.addr).
    #[arg(long, value_name = "ADDR")]
    metrics_listen: Option<String>,
    #[command(flatten)]
    tls: TlsArgs,
}

/// A server's TLS files: every connection, in and out, is mutual TLS.
#[derive(Args)]
pub struct TlsArgs {
    /// This server's certificate (PEM) from the cluster CA, for its role
    /// (meta or data) and id (`shardline admin certs issue`).
    #[arg(long)]
    tls_cert: PathBuf,
    /// Its private key (PEM, mode 0600).
    #[arg(long)]
    tls_key: PathBuf,
    /// The cluster CA certificate (PEM): peers must hold certificates it issued.
    #[arg(long)]
    tls_ca: PathBuf,
    /// The CA's revocation list (PEM), re-read whenever it changes.
    #[arg(long)]
    tls_crl: Option<PathBuf>,
}

impl TlsArgs {
    /// `integrity_only`: let peers that offer it use the integrity-only transport.
    fn load(&self, integrity_only: bool) -> Result<std::sync::Arc<shardline_rpc::Tls>> {
        let files = shardline_rpc::TlsFiles {
            cert: self.tls_cert.clone(),
            key: self.tls_key.clone(),
            ca: self.tls_ca.clone(),
            crl: self.tls_crl.clone(),
        };
        shardline_rpc::Tls::load_with(&files, integrity_only).context("load the server's TLS certificate")
    }
}

#[derive(Args)]
pub struct MetaArgs {
    #[command(flatten)]
    me: ServerIdentity,
    /// Every metadata server as ID=ADDR, comma-separated (including this one).
    #[arg(long)]
    peers: String,
    /// Erasure code of the root directory's layout.
    #[arg(long, default_value = "4+2")]
    ec: String,
    /// Plaintext bytes per chunk.
    #[arg(long, default_value_t = 4 << 20)]
    chunk_size: u32,
    /// Placement groups.
    #[arg(long, default_value_t = 64)]
    pg_count: u32,
    /// Raft tick in milliseconds (elections take 10–20 ticks).
    #[arg(long, default_value_t = 100)]
    tick_ms: u64,
    /// Report a data server down after this long without a heartbeat.
    #[arg(long, default_value_t = 5000)]
    down_after_ms: u64,
    /// The metadata servers' shared key file (0600; format v1, one key, as
    /// `shardline keygen` makes, or v2, a keyring, as `shardline up` makes
    /// `meta.key`): the Raft log and snapshots, file names included, are
    /// encrypted at rest with it, each value bound to its index, term and
    /// the key's id. Required unless --insecure-plaintext-metadata.
    #[arg(long, env = "SHARDLINE_META_KEY_FILE")]
    key_file: Option<PathBuf>,
    /// Run without a key file, storing the namespace (every file name) in
    /// plaintext on disk. For development only.
    #[arg(long, conflicts_with = "key_file")]
    insecure_plaintext_metadata: bool,
    /// Snapshot the namespace and compact the Raft log every this many entries
    /// (or one per 4 inodes when that is more: a snapshot's cost grows with
    /// the namespace).
    #[arg(long, env = "SHARDLINE_META_SNAPSHOT_EVERY", default_value_t = shardline_meta::server::DEFAULT_SNAPSHOT_EVERY)]
    snapshot_every: u64,
    /// Join a running cluster: start with no members and wait to be added
    /// with `shardline admin meta add` (an empty folder catches up by snapshot).
    #[arg(long)]
    join: bool,
    /// A client holding open files that has not reached the leader for this
    /// long loses its opens (a crashed mount's unlinked files are freed).
    #[arg(long, env = "SHARDLINE_META_CLIENT_LEASE_MS", default_value_t = shardline_meta::server::DEFAULT_CLIENT_LEASE.as_millis() as u64)]
    client_lease_ms: u64,
    /// The metadata cache lease: clients serve lookups and stats from memory
    /// for at most this long without hearing from the leader; a change waits
    /// at most this long for an unreachable client. 0 turns client caching off.
    #[arg(long, env = "SHARDLINE_META_CACHE_LEASE_MS", default_value_t = shardline_meta::server::DEFAULT_CACHE_LEASE.as_millis() as u64)]
    cache_lease_ms: u64,
    /// Send snapshots to peers in parts of at most this many bytes.
    #[arg(long, env = "SHARDLINE_META_SNAPSHOT_PART_BYTES", default_value_t = shardline_meta::snapshot_stream::DEFAULT_PART_BYTES)]
    snapshot_part_bytes: usize,
    #[command(flatten)]
    caps: CapArgs,
    /// How long the shard capabilities this server issues live, in seconds.
    #[arg(long, env = "SHARDLINE_CAP_TTL_S", default_value_t = shardline_meta::server::DEFAULT_CAP_TTL.as_secs())]
    cap_ttl_s: u64,
}

/// The cluster capability key (both server kinds).
#[derive(Args)]
pub struct CapArgs {
    /// The cluster capability key file (0600, made by `shardline keygen`;
    /// `shardline up` makes `cap.key`), shared by the metadata and data
    /// servers: metadata servers issue shard capabilities under it, data
    /// servers check them on every shard request. Required unless
    /// --insecure-no-capabilities.
    #[arg(long, env = "SHARDLINE_CAP_KEY_FILE")]
    cap_key_file: Option<PathBuf>,
    /// Run without shard capabilities: anyone who can reach a data server
    /// may read, write or delete any shard. For development only.
    #[arg(long, conflicts_with = "cap_key_file")]
    insecure_no_capabilities: bool,
}

#[derive(Args)]
pub struct DataArgs {
    #[command(flatten)]
    me: ServerIdentity,
    /// Address clients dial (default: the listen address).
    #[arg(long)]
    advertise: Option<String>,
    /// More disks of this server, each a target of its own: ID:ADDR:DIR
    /// (repeatable). Targets of one server form one failure domain, so no
    /// two shards of a chunk land on the same server.
    #[arg(long = "target", value_name = "ID:ADDR:DIR")]
    targets: Vec<String>,
    /// Metadata servers' addresses, comma-separated.
    #[arg(long)]
    meta: String,
    /// Heartbeat interval in milliseconds.
    #[arg(long, default_value_t = 1000)]
    pub(crate) heartbeat_ms: u64,
    /// Bytes this server may hold (default: the disk's free space).
    #[arg(long)]
    capacity: Option<u64>,
    /// Shard store: segment (shards appended to segment files, one fsync
    /// shared by every shard that arrived meanwhile; migrates a folder of
    /// the per-file stores), segment-direct (the same, written O_DIRECT:
    /// no copy into the page cache), or one file per shard: auto (io_uring with
    /// O_DIRECT when the kernel allows it, else buffered files), uring, or
    /// file.
    #[arg(long, env = "SHARDLINE_DATA_STORE", default_value = "segment")]
    store: shardline_data::StoreKind,
    /// Failure-domain label (rack); shards of a chunk avoid sharing one.
    #[arg(long, default_value = "")]
    pub(crate) rack: String,
    /// Rebuild throttle of this server in MB/s (10^6 bytes/s): one budget
    /// shared by all its rebuild tasks.
    #[arg(long, default_value_t = shardline_data::DEFAULT_REBUILD_RATE / 1_000_000)]
    rebuild_rate_mb: u64,
    /// Background scrub interval in seconds (0: only `admin scrub`).
    #[arg(long, default_value_t = 86_400)]
    scrub_interval_s: u64,
    /// Background garbage-collection interval in seconds (0: only `admin gc`).
    #[arg(long, default_value_t = 600)]
    gc_interval_s: u64,
    /// Let clients and peers that offer it use the integrity-only transport
    /// after the TLS handshake: requests and shards travel authenticated but
    /// unencrypted (shards are sealed end to end already); see
    /// docs/security.md. Off: every byte stays encrypted.
    #[arg(long)]
    integrity_only: bool,
    /// Shards younger than this many seconds are never garbage-collected.
    #[arg(long, default_value_t = 600)]
    gc_grace_s: u64,
    /// The smallest grace, in milliseconds, that `shardline admin gc
    /// --grace-ms` may ask of this server (smaller ones are refused, so the
    /// shards of writes in flight are never collected).
    #[arg(long, env = "SHARDLINE_GC_MIN_GRACE_MS", default_value_t = shardline_data::server::DEFAULT_GC_MIN_GRACE.as_millis() as u64)]
    gc_min_grace_ms: u64,
    #[command(flatten)]
    caps: CapArgs,
}

/// Removes the pid file when the server stops.
struct PidFile(PathBuf);

impl PidFile {
    fn create(dir: &Path) -> Result<PidFile> {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
        if let Some(pid) = crate::local_cluster::running_pid(dir) {
            if pid != std::process::id() as i32 {
                bail!("another server (pid {pid}) is running in {}", dir.display());
            }
        }
        let path = dir.join("pid");
        std::fs::write(&path, format!("{}\n", std::process::id()))
            .with_context(|| format!("write {}", path.display()))?;
        Ok(PidFile(path))
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Resolves when SIGTERM or SIGINT arrives.
pub async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

fn parse_peers(s: &str) -> Result<HashMap<u64, String>> {
    s.split(',')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (id, addr) = p.split_once('=').with_context(|| format!("peer {p:?} is not ID=ADDR"))?;
            Ok((id.parse().with_context(|| format!("peer id {id:?}"))?, addr.to_string()))
        })
        .collect()
}

pub async fn run_meta(a: MetaArgs) -> Result<()> {
    let layout = Layout { chunk_size: a.chunk_size, ..Layout::default() }.with_ec(&a.ec)?;
    let cfg = shardline_meta::MetaConfig {
        id: a.me.id,
        dir: a.me.dir.clone(),
        listen: a.me.listen,
        peers: parse_peers(&a.peers)?,
        layout,
        pg_count: a.pg_count,
        tick: Duration::from_millis(a.tick_ms),
        down_after: Duration::from_millis(a.down_after_ms),
        key_file: a.key_file,
        insecure_plaintext: a.insecure_plaintext_metadata,
        snapshot_every: a.snapshot_every,
        snapshot_part_bytes: a.snapshot_part_bytes,
        client_lease: Duration::from_millis(a.client_lease_ms),
        cache_lease: Duration::from_millis(a.cache_lease_ms),
        join: a.join,
        tls: a.me.tls.load(false)?,
        cap_key_file: a.caps.cap_key_file,
        insecure_no_capabilities: a.caps.insecure_no_capabilities,
        cap_ttl: Duration::from_secs(a.cap_ttl_s),
    };
    let _pid = PidFile::create(&a.me.dir)?;
    let _metrics = crate::metrics_endpoint::start(a.me.metrics_listen.as_deref(), Some(&a.me.dir))?;
    shardline_meta::run(cfg, shutdown_signal()).await.context("metadata server failed")
}

/// Parse `ID:ADDR:DIR` (the address itself contains a colon).
fn parse_target(s: &str) -> Result<(u64, String, PathBuf)> {
    let mut parts = s.splitn(4, ':');
    let (Some(id), Some(host), Some(port), Some(dir)) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        bail!("--target {s:?} is not ID:HOST:PORT:DIR");
    };
    Ok((id.parse().with_context(|| format!("target id {id:?}"))?, format!("{host}:{port}"), PathBuf::from(dir)))
}

pub async fn run_data(a: DataArgs) -> Result<()> {
    let extra = a.targets.iter().map(|t| parse_target(t)).collect::<Result<Vec<_>>>()?;
    // Several disks: their shared failure domain is this server.
    let rack = if extra.is_empty() || !a.rack.is_empty() { a.rack.clone() } else { format!("server-{}", a.me.id) };
    let primary = shardline_data::DataConfig {
        id: a.me.id,
        dir: a.me.dir.clone(),
        advertise: a.advertise.clone().unwrap_or_else(|| a.me.listen.clone()),
        listen: a.me.listen.clone(),
        meta_addrs: a.meta.split(',').filter(|s| !s.is_empty()).map(String::from).collect(),
        heartbeat_interval: Duration::from_millis(a.heartbeat_ms),
        capacity_bytes: a.capacity,
        store: a.store,
        rack,
        rebuild_rate: a.rebuild_rate_mb.saturating_mul(1_000_000),
        scrub_interval: (a.scrub_interval_s > 0).then(|| Duration::from_secs(a.scrub_interval_s)),
        gc_interval: (a.gc_interval_s > 0).then(|| Duration::from_secs(a.gc_interval_s)),
        gc_grace: Duration::from_secs(a.gc_grace_s),
        tls: Some(a.me.tls.load(a.integrity_only)?),
        gc_min_grace: Duration::from_millis(a.gc_min_grace_ms),
        cap_key_file: a.caps.cap_key_file.clone(),
        insecure_no_capabilities: a.caps.insecure_no_capabilities,
    };
    let mut configs = vec![primary.clone()];
    for (id, addr, dir) in extra {
        configs.push(shardline_data::DataConfig { id, advertise: addr.clone(), listen: addr, dir, ..primary.clone() });
    }
    let _pid = PidFile::create(&a.me.dir)?;
    let _metrics = crate::metrics_endpoint::start(a.me.metrics_listen.as_deref(), Some(&a.me.dir))?;
    let mut targets = tokio::task::JoinSet::new();
    for cfg in configs {
        let id = cfg.id;
        targets
            .spawn(async move { shardline_data::run(cfg).await.with_context(|| format!("data target {id} failed")) });
    }
    tokio::select! {
        Some(r) = targets.join_next() => r.context("data target task")?,
        _ = shutdown_signal() => Ok(()),
    }
}
