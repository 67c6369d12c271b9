//! Metadata-service helpers for tests/meta_linearizable.rs and
//! tests/meta_partition.rs: the metadata servers of a [`TestCluster`] as
//! cluster.toml lists them, native clients of the cluster, and starting a
//! metadata server on addresses of the test's choosing.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Child;
use std::time::Duration;

use shardline_client::{Client, ClientConfig};

use crate::harness::TestCluster;

fn cluster_toml(c: &TestCluster) -> toml::Value {
    let text = std::fs::read_to_string(c.cluster_file()).expect("read cluster.toml");
    toml::from_str(&text).expect("parse cluster.toml")
}

/// (id, address) of every metadata server in cluster.toml.
pub fn meta_servers(c: &TestCluster) -> Vec<(u64, String)> {
    cluster_toml(c)["meta"]
        .as_array()
        .expect("meta servers")
        .iter()
        .map(|m| (m["id"].as_integer().expect("id") as u64, m["addr"].as_str().expect("addr").to_string()))
        .collect()
}

pub fn key_file(c: &TestCluster) -> PathBuf {
    PathBuf::from(cluster_toml(c)["key_file"].as_str().expect("key_file"))
}

/// A native client of the cluster (every metadata server; requests keep
/// retrying through leader changes for `meta_deadline`).
pub async fn connect(c: &TestCluster, meta_deadline: Duration) -> Client {
    let addrs = meta_servers(c).into_iter().map(|(_, a)| a).collect();
    let mut cfg = ClientConfig::new(addrs, key_file(c), c.identity(shardline_rpc::Role::Client));
    cfg.meta_deadline = meta_deadline;
    Client::connect(cfg).await.expect("connect a client")
}

/// Start `shardline meta --id <id>` like [`TestCluster::start_meta`], but
/// listening on `listen` and reaching its peers at `peers` (id, address),
/// which must include itself. Logs go to the server folder's `log`.
pub fn start_meta_at(c: &TestCluster, id: u64, listen: &str, peers: &[(u64, String)]) -> Child {
    c.start_meta_with(id, listen, peers, &[])
}

/// The applied index of metadata server `id` in `admin status --json`.
pub fn applied_index(status: &[serde_json::Value], id: u64) -> Option<u64> {
    status.iter().find(|m| m["id"].as_u64() == Some(id)).and_then(|m| m["applied_index"].as_u64())
}

/// Reap a child server that was killed through its pid file (or kill it).
pub fn reap(mut child: Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// SIGKILL metadata server `id` and wait until its process is reaped — by
/// `shardline up`, or here when it is one of `children` (servers the test
/// restarted) — so that restarting it does not find its pid file naming a
/// zombie, which `shardline meta` takes for a running server.
pub fn kill_meta_reaped(c: &TestCluster, id: u64, children: &mut [Child]) {
    let pid = std::fs::read_to_string(c.meta_dir(id).join("pid")).expect("meta pid file");
    let proc_dir = PathBuf::from(format!("/proc/{}", pid.trim()));
    c.kill_meta(id);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while proc_dir.exists() {
        for child in children.iter_mut() {
            let _ = child.try_wait();
        }
        assert!(std::time::Instant::now() < deadline, "meta-{id} was not reaped");
        std::thread::sleep(Duration::from_millis(20));
    }
}
