//! Configuration and start-up of one metadata server.

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use shardline_rpc::{Role, Tls};
use shardline_types::Layout;

use crate::at_rest::AtRest;
use crate::caps::CapIssuer;
use crate::node::{Input, Node, Shared};
use crate::raft_store::RaftStore;
use crate::service::{MetaService, ServiceConfig};
use crate::state_machine::StateMachine;
use crate::transport::{Peers, SnapshotFailed};
use crate::write_stats;
use crate::MetaError;

/// One metadata server's configuration.
#[derive(Debug, Clone)]
pub struct MetaConfig {
    /// This server's Raft id (1-based, unique among metadata servers).
    pub id: u64,
    /// Folder holding the Raft log (`raft-log/`) and state (`raft.redb`).
    pub dir: PathBuf,
    /// Address to listen on for clients, data servers and peers.
    pub listen: String,
    /// Every metadata server (including this one): id → address.
    pub peers: HashMap<u64, String>,
    /// The root directory's layout policy (all servers must agree).
    pub layout: Layout,
    /// Placement groups in the map.
    pub pg_count: u32,
    /// Raft tick; elections time out after 10–20 ticks.
    pub tick: Duration,
    /// A data server silent for this long is reported down.
    pub down_after: Duration,
    /// The metadata servers' shared key file (`shardline-kek v1` format,
    /// mode 0600): log entries and snapshots are sealed under it at rest.
    /// None is refused unless [`insecure_plaintext`](Self::insecure_plaintext).
    pub key_file: Option<PathBuf>,
    /// Store the Raft log and snapshots, every file name among them, in the
    /// clear when there is no key file (development only; never the default).
    pub insecure_plaintext: bool,
    /// Snapshot the state machine and compact the log every this many
    /// applied entries, or more in a large namespace
    /// ([`crate::snapshot_job::interval`]).
    pub snapshot_every: u64,
    /// Join a running cluster: a new store starts with no members (so this
    /// server never campaigns) and waits to be added with
    /// `shardline admin meta add`.
    pub join: bool,
    /// Snapshots are sent to peers in parts of at most this many bytes.
    pub snapshot_part_bytes: usize,
    /// A client holding opens that has not reached the leader for this long
    /// loses them (clients with opens renew every second).
    pub client_lease: Duration,
    /// This server's TLS identity (a `meta` certificate naming `id`): it
    /// serves clients, data servers and peers, and dials peers, with it.
    pub tls: Arc<Tls>,
    /// The cluster capability key file (KEK file format, mode 0600), shared
    /// with the data servers: chunk lists, released chunks and grants carry
    /// shard capabilities made under it. None is refused unless
    /// [`insecure_no_capabilities`](Self::insecure_no_capabilities).
    pub cap_key_file: Option<PathBuf>,
    /// Issue no capabilities (development only: data servers must then run
    /// with `--insecure-no-capabilities` too).
    pub insecure_no_capabilities: bool,
    /// How long the capabilities issued here live.
    pub cap_ttl: Duration,
    /// The metadata cache lease (docs/metadata-cache.md): how long a client
    /// may serve what it cached without hearing from the leader, the longest
    /// a change waits for an unreachable client, and what a new leader adds
    /// to failover. Zero turns client caching off.
    pub cache_lease: Duration,
}

/// Default for [`MetaConfig::cap_ttl`].
pub const DEFAULT_CAP_TTL: Duration = Duration::from_secs(300);
/// The range allowed for [`MetaConfig::cap_ttl`]: long enough to outlast
/// a request and the clock skew data servers allow, short enough that a
/// leaked token soon stops working.
pub const CAP_TTL_RANGE: std::ops::RangeInclusive<Duration> = Duration::from_secs(10)..=Duration::from_secs(86_400);

/// Default for [`MetaConfig::cache_lease`].
pub const DEFAULT_CACHE_LEASE: Duration = Duration::from_millis(500);
/// The longest cache lease allowed: failover must stay under 3 s.
pub const MAX_CACHE_LEASE: Duration = Duration::from_secs(2);

/// Default for [`MetaConfig::client_lease`].
pub const DEFAULT_CLIENT_LEASE: Duration = Duration::from_secs(30);
/// The shortest client lease allowed: well above the clients' renewal.
pub const MIN_CLIENT_LEASE: Duration = Duration::from_secs(3);

/// How often the write statistics file is refreshed (when they changed).
const STATS_EVERY: Duration = Duration::from_millis(100);

/// Default for [`MetaConfig::snapshot_every`].
pub const DEFAULT_SNAPSHOT_EVERY: u64 = 10_000;

impl MetaConfig {
    pub fn validate(&self) -> Result<(), MetaError> {
        if self.key_file.is_none() && !self.insecure_plaintext {
            return Err(MetaError::Config(
                "no key file: the metadata servers' key (--key-file or SHARDLINE_META_KEY_FILE, \
                 created by `shardline keygen`) encrypts every file name at rest; \
                 pass --insecure-plaintext-metadata to store metadata in plaintext anyway"
                    .into(),
            ));
        }
        self.layout.validate().map_err(|e| MetaError::Config(e.to_string()))?;
        if !self.peers.contains_key(&self.id) {
            return Err(MetaError::Config(format!("peer list does not include this server's id {}", self.id)));
        }
        if self.snapshot_every == 0 {
            return Err(MetaError::Config("snapshot_every must be at least 1".into()));
        }
        if self.snapshot_part_bytes == 0 || self.snapshot_part_bytes > shardline_rpc::MAX_PAYLOAD_LEN {
            return Err(MetaError::Config(format!(
                "snapshot_part_bytes must be between 1 and {}",
                shardline_rpc::MAX_PAYLOAD_LEN
            )));
        }
        if self.client_lease < MIN_CLIENT_LEASE {
            return Err(MetaError::Config(format!("the client lease must be at least {MIN_CLIENT_LEASE:?}")));
        }
        if self.cache_lease > MAX_CACHE_LEASE
            || (!self.cache_lease.is_zero() && self.cache_lease < Duration::from_millis(100))
        {
            return Err(MetaError::Config(format!(
                "the cache lease must be 0 (off) or between 100 ms and {MAX_CACHE_LEASE:?}"
            )));
        }
        if self.pg_count == 0 {
            return Err(MetaError::Config("pg_count must be at least 1".into()));
        }
        match self.tls.principal() {
            Some(p) if p.role == Role::Meta && p.holds_id(self.id) => {}
            Some(p) => {
                return Err(MetaError::Config(format!(
                    "the TLS certificate is for {p}, not for metadata server {}",
                    self.id
                )))
            }
            None => return Err(MetaError::Config("no TLS certificate".into())),
        }
        match (&self.cap_key_file, self.insecure_no_capabilities) {
            (None, false) => {
                return Err(MetaError::Config(
                    "no capability key file: pass --cap-key-file (the cluster capability key shared with \
                     the data servers, made by `shardline keygen`), or --insecure-no-capabilities for development"
                        .into(),
                ))
            }
            (Some(_), true) => {
                return Err(MetaError::Config(
                    "--cap-key-file and --insecure-no-capabilities exclude each other".into(),
                ))
            }
            _ => {}
        }
        if !CAP_TTL_RANGE.contains(&self.cap_ttl) {
            return Err(MetaError::Config(format!(
                "the capability lifetime must be between {:?} and {:?}",
                CAP_TTL_RANGE.start(),
                CAP_TTL_RANGE.end()
            )));
        }
        Ok(())
    }
}

/// Run a metadata server until `shutdown` resolves (then stop the Ready
/// loop after its current round) or its storage fails.
pub async fn run(cfg: MetaConfig, shutdown: impl Future<Output = ()>) -> Result<(), MetaError> {
    cfg.validate()?;
    std::fs::create_dir_all(&cfg.dir)?;
    let mut voters: Vec<u64> = if cfg.join { Vec::new() } else { cfg.peers.keys().copied().collect() };
    voters.sort_unstable();
    let at_rest = AtRest::load(cfg.key_file.as_deref())?;
    if let Some(key_id) = at_rest.key_id() {
        tracing::info!(id = cfg.id, key_id, "metadata at rest sealed under the server key");
    }
    if !at_rest.is_sealed() {
        tracing::warn!(
            id = cfg.id,
            "--insecure-plaintext-metadata: metadata, file names included, is stored unencrypted"
        );
    }
    let caps = CapIssuer::load(cfg.cap_key_file.as_deref(), cfg.cap_ttl)?;
    if !caps.enabled() {
        tracing::warn!(id = cfg.id, "--insecure-no-capabilities: shard requests need no capability");
    }
    let mut store = RaftStore::open(&cfg.dir, &voters, at_rest)?;
    let listener = tokio::net::TcpListener::bind(&cfg.listen).await?;
    let (tx, rx) = std::sync::mpsc::channel();
    let failed_tx = Mutex::new(tx.clone());
    let on_snapshot_failed: SnapshotFailed = Arc::new(move |peer, delivered| {
        let _ = failed_tx.lock().unwrap_or_else(|e| e.into_inner()).send(Input::SnapshotSent { peer, delivered });
    });
    let mut addrs = cfg.peers.clone();
    addrs.extend(store.members()?);
    let peers = Peers::start(
        cfg.id,
        addrs,
        &tokio::runtime::Handle::current(),
        on_snapshot_failed,
        cfg.snapshot_part_bytes,
        cfg.tls.clone(),
    );
    let shared = Arc::new(Shared::default());
    store.start_writer(peers.outbox(), tx.clone(), shared.stats.clone())?;
    tokio::spawn(write_stats::publish(shared.stats.clone(), cfg.dir.clone(), STATS_EVERY));
    let sm = StateMachine::new(cfg.layout, cfg.pg_count);
    let node = Node::new(cfg.id, store, sm, peers, shared.clone(), cfg.snapshot_every, cfg.tick)?;
    let view = node.read_view();
    let tick = cfg.tick;
    let raft_thread = std::thread::Builder::new().name("raft".into()).spawn(move || node.run(rx, tick))?;
    let service_cfg = ServiceConfig {
        id: cfg.id,
        down_after: cfg.down_after,
        data_shards: cfg.layout.data_shards as usize,
        self_addr: cfg.listen.clone(),
        client_lease: cfg.client_lease,
        caps,
        cache_lease: cfg.cache_lease,
    };
    let stop = shared.clone();
    let service = Arc::new(MetaService::new(service_cfg, tx, shared, view));
    tokio::spawn(service.clone().monitor());
    tracing::info!(id = cfg.id, addr = %cfg.listen, "metadata server listening");
    let serve = tokio::spawn(shardline_rpc::serve(listener, service, cfg.tls.clone()));
    // The Raft thread ends on a storage failure, which ends the server, or
    // when asked to.
    let mut joined = tokio::task::spawn_blocking(move || raft_thread.join());
    let result = tokio::select! {
        r = &mut joined => r,
        _ = shutdown => {
            tracing::info!(id = cfg.id, "stopping");
            stop.stop.store(true, std::sync::atomic::Ordering::Relaxed);
            joined.await
        }
    };
    serve.abort();
    match result {
        Ok(Ok(r)) => r,
        _ => Err(MetaError::Store("raft thread panicked".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(key_file: Option<PathBuf>, insecure_plaintext: bool) -> MetaConfig {
        let pki = shardline_rpc::pki::TestPki::new().unwrap();
        MetaConfig {
            tls: pki.identity(Role::Meta, &[1]).unwrap(),
            id: 1,
            dir: PathBuf::from("unused"),
            listen: "127.0.0.1:0".into(),
            peers: HashMap::from([(1, "127.0.0.1:0".to_string())]),
            layout: Layout::default(),
            pg_count: 8,
            tick: Duration::from_millis(100),
            down_after: Duration::from_secs(5),
            key_file,
            insecure_plaintext,
            snapshot_every: DEFAULT_SNAPSHOT_EVERY,
            join: false,
            snapshot_part_bytes: 1 << 20,
            client_lease: DEFAULT_CLIENT_LEASE,
            cap_key_file: Some(PathBuf::from("cap.key")),
            insecure_no_capabilities: false,
            cap_ttl: DEFAULT_CAP_TTL,
            cache_lease: DEFAULT_CACHE_LEASE,
        }
    }

    #[test]
    fn a_metadata_server_without_a_capability_key_refuses_to_start_unless_told() {
        let no_key = MetaConfig { cap_key_file: None, ..config(Some(PathBuf::from("meta.key")), false) };
        let msg = no_key.validate().expect_err("no capability key").to_string();
        assert!(msg.contains("--cap-key-file") && msg.contains("--insecure-no-capabilities"), "{msg}");
        MetaConfig { insecure_no_capabilities: true, ..no_key.clone() }.validate().expect("explicit opt-out");
        let zero_ttl = MetaConfig { cap_ttl: Duration::ZERO, ..config(Some(PathBuf::from("meta.key")), false) };
        assert!(zero_ttl.validate().is_err(), "tokens that expire at once");
    }

    #[test]
    fn a_metadata_server_without_a_key_refuses_to_start_unless_told_plaintext_is_fine() {
        let err = config(None, false).validate().expect_err("no key, no explicit opt-out");
        let msg = err.to_string();
        assert!(msg.contains("no key file") && msg.contains("--insecure-plaintext-metadata"), "{msg}");
        config(None, true).validate().expect("explicit opt-out");
        config(Some(PathBuf::from("meta.key")), false).validate().expect("with a key");
    }

    #[test]
    fn a_metadata_server_refuses_a_certificate_that_is_not_its_own() {
        let pki = shardline_rpc::pki::TestPki::new().unwrap();
        for tls in [pki.identity(Role::Meta, &[2]).unwrap(), pki.identity(Role::Data, &[1]).unwrap()] {
            let cfg = MetaConfig { tls, ..config(None, true) };
            let msg = cfg.validate().expect_err("someone else's certificate").to_string();
            assert!(msg.contains("not for metadata server 1"), "{msg}");
        }
    }
}
