//! Scrub progress as heartbeats report it: the shards listed when the scrub
//! started and how many it has checked, cleared when it ends.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use shardline_crypto::CapKey;
use shardline_rpc::pki::TestPki;
use shardline_rpc::{MetaClient, Role};
use shardline_types::ShardKey;

use crate::caps::CapPolicy;
use crate::node_state::NodeState;
use crate::store::{Backend, Usage};
use crate::{DataError, FileStore, ShardStore};

/// A store whose third read waits until the test lets it go.
struct Gated {
    inner: FileStore,
    reads: AtomicU64,
    gate: Mutex<mpsc::Receiver<()>>,
}

impl ShardStore for Gated {
    fn put(&self, key: &ShardKey, data: &[u8], crc32c: u32) -> Result<(), DataError> {
        self.inner.put(key, data, crc32c)
    }
    fn get(&self, key: &ShardKey) -> Result<(Vec<u8>, u32), DataError> {
        if self.reads.fetch_add(1, Ordering::SeqCst) == 2 {
            let _ = self.gate.lock().unwrap_or_else(|e| e.into_inner()).recv();
        }
        self.inner.get(key)
    }
    fn delete(&self, key: &ShardKey) -> Result<bool, DataError> {
        self.inner.delete(key)
    }
    fn list(&self) -> Result<Vec<ShardKey>, DataError> {
        self.inner.list()
    }
    fn usage(&self) -> Usage {
        self.inner.usage()
    }
    fn backend(&self) -> Backend {
        self.inner.backend()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_scrub_reports_shards_checked_of_those_listed_and_clears_when_done() {
    let dir = tempfile::tempdir().expect("temporary folder");
    let (release, gate) = mpsc::channel();
    let store = Arc::new(Gated {
        inner: FileStore::open(dir.path(), None).expect("store"),
        reads: AtomicU64::new(0),
        gate: Mutex::new(gate),
    });
    for i in 0..5u32 {
        let key = ShardKey { file_id: 7, chunk_index: u64::from(i), version: 1, shard_index: 0 };
        let data = vec![i as u8; 100];
        store.put(&key, &data, crc32c::crc32c(&data)).expect("put");
    }
    let tls = TestPki::new().expect("test CA").identity(Role::Data, &[1]).expect("identity");
    let meta = MetaClient::new(vec!["127.0.0.1:1".into()], Duration::from_millis(10), tls.clone());
    let key = Arc::new(CapKey::from_bytes("scrub", [3; 32]));
    let node = Arc::new(NodeState::new(1, meta, 1 << 20, tls, CapPolicy::Enforce(key), Duration::from_secs(60)));
    let scrub = {
        let (node, store) = (node.clone(), store.clone());
        tokio::spawn(async move { crate::scrub::scrub(&node, &store).await })
    };
    let progress = &node.scrub_progress;
    let deadline = Instant::now() + Duration::from_secs(30);
    while progress.checked.load(Ordering::SeqCst) < 3 {
        assert!(Instant::now() < deadline, "the scrub never reached its third shard");
        tokio::task::yield_now().await;
    }
    assert_eq!(progress.total.load(Ordering::SeqCst), 5, "the shards listed at the start");
    assert_eq!(progress.checked.load(Ordering::SeqCst), 3, "held at the third shard");
    release.send(()).expect("let the scrub go on");
    let report = scrub.await.expect("scrub task").expect("scrub");
    assert_eq!(report.checked, 5);
    assert_eq!(progress.total.load(Ordering::SeqCst), 0, "no scrub running any more");
}
