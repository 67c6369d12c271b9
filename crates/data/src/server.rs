//! A data server: configuration and the top-level run function.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use shardline_rpc::{MetaClient, Role, Tls};
use shardline_types::NodeId;
use tokio::net::TcpListener;

use shardline_crypto::CapKey;

use crate::caps::CapPolicy;
use crate::heartbeat::{heartbeat_loop, Identity};
use crate::node_state::NodeState;
use crate::throttle::DEFAULT_REBUILD_RATE;
use crate::{open_store, DataError, DataService, ShardStore, StoreKind};

/// The default floor of garbage-collection grace periods.
pub const DEFAULT_GC_MIN_GRACE: Duration = Duration::from_secs(60);

/// How long one metadata call may keep retrying before the loop tries again.
const META_CALL_DEADLINE: Duration = Duration::from_secs(5);

/// Everything a data server needs to run.
#[derive(Debug, Clone)]
pub struct DataConfig {
    /// This data server's id, unique among data servers and stable across
    /// restarts (placement groups name servers by id).
    pub id: NodeId,
    /// Directory holding the shards (created if missing).
    pub dir: PathBuf,
    /// Address to listen on for shard requests, e.g. `0.0.0.0:7100`.
    pub listen: String,
    /// Address clients should dial, as registered with the metadata service.
    pub advertise: String,
    /// Every metadata server's address; the leader is found automatically.
    pub meta_addrs: Vec<String>,
    /// How often to report usage to the metadata service.
    pub heartbeat_interval: Duration,
    /// Bytes this server may store; `None` means the file system's free space.
    pub capacity_bytes: Option<u64>,
    /// Failure domain (rack) label: placement never puts two shards of a
    /// chunk in one rack while enough racks exist. Empty for none.
    pub rack: String,
    /// Rebuild throttle in bytes per second: one budget for this server,
    /// shared by all its rebuild tasks (default [`DEFAULT_REBUILD_RATE`]).
    pub rebuild_rate: u64,
    /// How often to scrub every shard in the background (`None`: only on
    /// request, `shardline admin scrub`).
    pub scrub_interval: Option<Duration>,
    /// How often to collect garbage in the background (`None`: only on request).
    pub gc_interval: Option<Duration>,
    /// Shards younger than this are never garbage-collected (writes in flight).
    pub gc_grace: Duration,
    /// The smallest grace a garbage-collection request (`shardline admin
    /// gc --grace-ms`) may ask for; smaller ones are refused, so nobody can
    /// delete the shards of writes in flight. Default [`DEFAULT_GC_MIN_GRACE`]
    /// (above the client's 20 s write window).
    pub gc_min_grace: Duration,
    /// The cluster capability key file (shared with the metadata servers;
    /// `shardline up` makes `cap.key`). Every shard request must then carry
    /// a token issued under it.
    pub cap_key_file: Option<PathBuf>,
    /// Serve shard requests without checking capabilities (development
    /// only: anyone who can reach the port may read, write or delete any
    /// shard). Without it, a server with no `cap_key_file` refuses to start.
    pub insecure_no_capabilities: bool,
    /// Shard store backend: `Segment` (the default) appends shards to
    /// segment files with group commit, and migrates a folder written by the
    /// per-file stores; `Auto` picks the per-file io_uring store with
    /// `O_DIRECT` when the kernel allows it and the portable file store
    /// otherwise; `Uring` or `File` force one (`Uring` fails to start without
    /// io_uring). The two per-file stores read each other's folders.
    pub store: StoreKind,
    /// This server's TLS identity: a `data` certificate naming this id
    /// (and the ids of the server's other targets). Required.
    pub tls: Option<Arc<Tls>>,
}

impl Default for DataConfig {
    /// One data server on this machine, next to a local metadata server.
    fn default() -> Self {
        DataConfig {
            id: 1,
            dir: PathBuf::from("shardline-data"),
            listen: "127.0.0.1:7100".into(),
            advertise: "127.0.0.1:7100".into(),
            meta_addrs: vec!["127.0.0.1:7000".into()],
            heartbeat_interval: Duration::from_secs(1),
            capacity_bytes: None,
            rack: String::new(),
            rebuild_rate: DEFAULT_REBUILD_RATE,
            scrub_interval: Some(Duration::from_secs(24 * 3600)),
            gc_interval: Some(Duration::from_secs(600)),
            gc_grace: Duration::from_secs(600),
            gc_min_grace: DEFAULT_GC_MIN_GRACE,
            cap_key_file: None,
            insecure_no_capabilities: false,
            store: StoreKind::Segment,
            tls: None,
        }
    }
}

impl DataConfig {
    /// Check the configuration before anything is opened.
    pub fn validate(&self) -> Result<(), DataError> {
        let bad = |msg: &str| Err(DataError::Config(msg.into()));
        if self.listen.is_empty() {
            return bad("listen address is empty");
        }
        if self.advertise.is_empty() {
            return bad("advertise address is empty");
        }
        if self.meta_addrs.is_empty() || self.meta_addrs.iter().any(String::is_empty) {
            return bad("at least one metadata server address is required, none empty");
        }
        if self.heartbeat_interval.is_zero() {
            return bad("heartbeat interval must be positive");
        }
        if self.capacity_bytes == Some(0) {
            return bad("capacity must be positive");
        }
        if self.gc_grace < self.gc_min_grace {
            return bad("the background garbage-collection grace is below the grace floor");
        }
        match (&self.cap_key_file, self.insecure_no_capabilities) {
            (None, false) => {
                return bad("no capability key file: pass --cap-key-file (the cluster capability key the metadata \
                     servers share), or --insecure-no-capabilities for development")
            }
            (Some(_), true) => return bad("--cap-key-file and --insecure-no-capabilities exclude each other"),
            _ => {}
        }
        self.identity()?;
        Ok(())
    }

    /// The TLS identity, which must be a data server's naming this id.
    pub fn identity(&self) -> Result<Arc<Tls>, DataError> {
        let tls = self.tls.clone().ok_or_else(|| DataError::Config("no TLS certificate".into()))?;
        match tls.principal() {
            Some(p) if p.role == Role::Data && p.holds_id(self.id) => Ok(tls),
            Some(p) => {
                Err(DataError::Config(format!("the TLS certificate is for {p}, not for data server {}", self.id)))
            }
            None => Err(DataError::Config("no TLS certificate".into())),
        }
    }
}

/// Run a data server until the process ends: open the store, bind
/// `cfg.listen`, register and heartbeat, serve.
pub async fn run(cfg: DataConfig) -> Result<(), DataError> {
    cfg.validate()?;
    let listener = TcpListener::bind(&cfg.listen).await.map_err(|e| DataError::io("bind the listen address", e))?;
    run_with_listener(cfg, listener).await
}

/// As [`run`], on a listener the caller bound (tests bind port 0).
/// `cfg.listen` is ignored.
pub async fn run_with_listener(cfg: DataConfig, listener: TcpListener) -> Result<(), DataError> {
    cfg.validate()?;
    let (kind, dir, capacity) = (cfg.store, cfg.dir.clone(), cfg.capacity_bytes);
    let (store, fs_type) = tokio::task::spawn_blocking(move || {
        open_store(kind, &dir, capacity)
            .map(|store| (crate::fault_store::wrap_from_env(store), crate::fs_type::fs_type(&dir)))
    })
    .await
    .map_err(|e| DataError::Internal(format!("open task failed: {e}")))??;
    let usage = store.usage();
    let backend = store.backend();
    tracing::info!(
        node = cfg.id,
        shards = usage.shard_count,
        used_bytes = usage.used_bytes,
        capacity_bytes = usage.capacity_bytes,
        backend = backend.name,
        direct_io = backend.direct_io,
        fs = %fs_type,
        "data server listening"
    );
    let tls = cfg.identity()?;
    let caps = match &cfg.cap_key_file {
        Some(path) => {
            let path = path.clone();
            let key = tokio::task::spawn_blocking(move || CapKey::load(&path))
                .await
                .map_err(|e| DataError::Internal(format!("key task failed: {e}")))?
                .map_err(|e| DataError::Config(format!("load the capability key: {e}")))?;
            CapPolicy::Enforce(Arc::new(key))
        }
        None => {
            tracing::warn!("capabilities are off: anyone who can reach this server may read, write or delete shards");
            CapPolicy::Off
        }
    };
    let meta = MetaClient::new(cfg.meta_addrs.clone(), META_CALL_DEADLINE, tls.clone());
    let node = Arc::new(NodeState::new(cfg.id, meta, cfg.rebuild_rate, tls.clone(), caps, cfg.gc_min_grace));
    let me = Identity { id: cfg.id, advertise: cfg.advertise.clone(), rack: cfg.rack.clone(), fs_type };
    tokio::spawn(heartbeat_loop(node.clone(), me, store.clone(), cfg.heartbeat_interval));
    if let Some(every) = cfg.scrub_interval {
        tokio::spawn(background(every, node.clone(), store.clone(), |node, store| async move {
            crate::scrub::scrub(&node, &store).await.map(|r| format!("{r:?}"))
        }));
    }
    if let Some(every) = cfg.gc_interval {
        let grace = cfg.gc_grace;
        tokio::spawn(background(every, node.clone(), store.clone(), move |node, store| async move {
            crate::gc::collect(&node, &store, grace).await.map(|r| format!("{r:?}"))
        }));
    }
    shardline_rpc::serve(listener, Arc::new(DataService::with_node(store, node)), tls).await;
    Ok(())
}

/// Run `job` every `every`, logging failures (they are retried next time).
async fn background<F, Fut>(every: Duration, node: Arc<NodeState>, store: Arc<dyn ShardStore>, job: F)
where
    F: Fn(Arc<NodeState>, Arc<dyn ShardStore>) -> Fut,
    Fut: std::future::Future<Output = Result<String, DataError>>,
{
    let mut tick = tokio::time::interval(every);
    tick.tick().await; // the first tick is immediate; skip it
    loop {
        tick.tick().await;
        match job(node.clone(), store.clone()).await {
            Ok(summary) => tracing::debug!(%summary, "background pass done"),
            Err(e) => tracing::warn!(error = %e, "background pass failed"),
        }
    }
}

#[cfg(test)]
#[path = "server_tests.rs"]
mod tests;
