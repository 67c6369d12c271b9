//! A data server: configuration and the top-level run function.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use shardline_rpc::MetaClient;
use shardline_types::NodeId;
use tokio::net::TcpListener;

use crate::heartbeat::{heartbeat_loop, Identity};
use crate::{DataError, DataService, FileStore, ShardStore};

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
        Ok(())
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
    let (dir, capacity) = (cfg.dir.clone(), cfg.capacity_bytes);
    let store = tokio::task::spawn_blocking(move || FileStore::open(&dir, capacity))
        .await
        .map_err(|e| DataError::Internal(format!("open task failed: {e}")))??;
    let store = Arc::new(store);
    let usage = store.usage();
    tracing::info!(
        node = cfg.id,
        shards = usage.shard_count,
        used_bytes = usage.used_bytes,
        capacity_bytes = usage.capacity_bytes,
        "data server listening"
    );
    let meta = MetaClient::new(cfg.meta_addrs.clone(), META_CALL_DEADLINE);
    let me = Identity { id: cfg.id, advertise: cfg.advertise.clone() };
    tokio::spawn(heartbeat_loop(meta, me, store.clone(), cfg.heartbeat_interval));
    shardline_rpc::serve(listener, Arc::new(DataService::new(store))).await;
    Ok(())
}

#[cfg(test)]
#[path = "server_tests.rs"]
mod tests;
