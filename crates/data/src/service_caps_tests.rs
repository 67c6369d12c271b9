//! Capability checks in [`DataService`]: with a cluster key, every shard
//! request needs a token for exactly its chunk version and operation, the
//! token's epoch is checked, and refusals change nothing.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use shardline_crypto::{cap_ops, issue_cap, now_ms, CapKey, Capability};
use shardline_proto::v1::{self, data_request, data_response, ErrorCode as WireCode, ShardId};
use shardline_rpc::{Frame, Handler, MetaClient};

use crate::caps::CapPolicy;
use crate::node_state::NodeState;
use crate::{DataService, FileStore, ShardStore};

const FILE: u64 = 42;

fn key() -> Arc<CapKey> {
    Arc::new(CapKey::from_bytes("cap-test", [9; 32]))
}

struct Setup {
    service: DataService<FileStore>,
    node: Arc<NodeState>,
    _dir: tempfile::TempDir,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(FileStore::open(dir.path(), None).unwrap());
    // Never called: scrub and GC are refused before they reach it.
    let meta = MetaClient::new(vec!["127.0.0.1:1".into()], Duration::from_millis(10));
    let node = Arc::new(NodeState::new(1, meta, 1 << 20, CapPolicy::Enforce(key()), Duration::from_secs(60)));
    Setup { service: DataService::with_node(store, node.clone()), node, _dir: dir }
}

fn token(chunk: u64, ops: u32, epoch: u64, expires_ms: u64) -> v1::ShardCap {
    issue_cap(&key(), &Capability { file_id: FILE, chunk_index: chunk, version: 1, ops, epoch, expires_ms })
}

fn good(ops: u32) -> v1::ShardCap {
    token(3, ops, 5, now_ms() + 60_000)
}

fn id() -> Option<ShardId> {
    Some(ShardId { file_id: FILE, chunk_index: 3, version: 1, shard_index: 0 })
}

fn put(cap: Option<v1::ShardCap>, data: &Bytes) -> Frame {
    let body =
        data_request::Body::Put(v1::PutShard { id: id(), crc32c: crc32c::crc32c(data), cap, ..Default::default() });
    Frame::from_message(&v1::DataRequest { body: Some(body) }, data.clone())
}

fn get(cap: Option<v1::ShardCap>) -> Frame {
    let body = data_request::Body::Get(v1::GetShard { id: id(), cap, ..Default::default() });
    Frame::from_message(&v1::DataRequest { body: Some(body) }, Bytes::new())
}

fn delete(cap: Option<v1::ShardCap>) -> Frame {
    let body = data_request::Body::Delete(v1::DeleteShard { id: id(), cap });
    Frame::from_message(&v1::DataRequest { body: Some(body) }, Bytes::new())
}

async fn call(s: &Setup, f: Frame) -> (v1::DataResponse, Bytes) {
    let resp = s.service.handle(f).await;
    (resp.decode().unwrap(), resp.payload)
}

/// The refusal's code and message.
fn refusal(resp: &v1::DataResponse) -> (WireCode, String) {
    let e = resp.error.as_ref().expect("refused");
    (WireCode::try_from(e.code).unwrap(), e.message.clone())
}

fn stored(s: &Setup) -> usize {
    s.service.store().list().unwrap().len()
}

#[tokio::test]
async fn puts_gets_and_deletes_need_a_token_for_their_chunk_and_operation() {
    let s = setup();
    let data = Bytes::from_static(b"sealed shard bytes");
    let (resp, _) = call(&s, put(Some(good(cap_ops::GET)), &data)).await;
    assert!(refusal(&resp).1.contains("does not allow put"), "{:?}", resp.error);
    for (cap, why) in bad_tokens(cap_ops::PUT) {
        let (resp, _) = call(&s, put(cap, &data)).await;
        let (code, msg) = refusal(&resp);
        assert_eq!(code, WireCode::PermissionDenied, "{msg}");
        assert!(msg.contains(why), "{why}: {msg}");
        assert_eq!(stored(&s), 0, "a refused put stored something ({why})");
    }
    let (resp, _) = call(&s, put(Some(good(cap_ops::PUT)), &data)).await;
    assert_eq!(resp.error, None);
    for (cap, why) in bad_tokens(cap_ops::GET).into_iter().chain([(Some(good(cap_ops::PUT)), "does not allow get")]) {
        let (resp, payload) = call(&s, get(cap)).await;
        let (code, msg) = refusal(&resp);
        assert_eq!(code, WireCode::PermissionDenied, "{msg}");
        assert!(msg.contains(why), "{why}: {msg}");
        assert!(payload.is_empty(), "a refused get sent bytes");
    }
    let (resp, payload) = call(&s, get(Some(good(cap_ops::GET)))).await;
    assert_eq!((resp.error, payload), (None, data.clone()));
    // A read token does not delete; nothing is deleted by a refusal.
    for cap in [None, Some(good(cap_ops::GET)), Some(token(4, cap_ops::DELETE, 5, now_ms() + 60_000))] {
        let (resp, _) = call(&s, delete(cap)).await;
        assert_eq!(refusal(&resp).0, WireCode::PermissionDenied);
        assert_eq!(stored(&s), 1);
    }
    let (resp, _) = call(&s, delete(Some(good(cap_ops::DELETE)))).await;
    assert_eq!(resp.body, Some(data_response::Body::Delete(v1::DeleteShardOk { existed: true })));
}

#[tokio::test]
async fn the_tokens_epoch_is_checked_and_epoch_0_is_no_way_around_it() {
    let s = setup();
    s.node.observe_epoch(5);
    let data = Bytes::from_static(b"x");
    for stale in [0, 4] {
        let (resp, _) = call(&s, put(Some(token(3, cap_ops::PUT, stale, now_ms() + 60_000)), &data)).await;
        assert_eq!(refusal(&resp).0, WireCode::StaleEpoch, "epoch {stale}");
    }
    // The request's own epoch field is not what counts.
    let mut frame_epoch_0 = v1::PutShard {
        id: id(),
        crc32c: crc32c::crc32c(&data),
        cap: Some(good(cap_ops::PUT)),
        epoch: 0,
        ..Default::default()
    };
    let f = Frame::from_message(
        &v1::DataRequest { body: Some(data_request::Body::Put(frame_epoch_0.clone())) },
        data.clone(),
    );
    assert_eq!(call(&s, f).await.0.error, None);
    frame_epoch_0.cap = Some(token(3, cap_ops::PUT, 4, now_ms() + 60_000));
    frame_epoch_0.epoch = 99;
    let f = Frame::from_message(&v1::DataRequest { body: Some(data_request::Body::Put(frame_epoch_0)) }, data);
    assert_eq!(refusal(&call(&s, f).await.0).0, WireCode::StaleEpoch);
}

#[tokio::test]
async fn scrub_and_gc_need_a_cluster_token_and_gc_grace_has_a_floor() {
    let s = setup();
    let admin = |ops| issue_cap(&key(), &Capability { ops, epoch: 5, expires_ms: now_ms() + 60_000, ..cluster() });
    let gc = |grace_ms, cap| {
        let body = data_request::Body::Gc(v1::CollectGarbage { grace_ms, cap });
        Frame::from_message(&v1::DataRequest { body: Some(body) }, Bytes::new())
    };
    let scrub = |cap| {
        Frame::from_message(&v1::DataRequest { body: Some(data_request::Body::Scrub(v1::Scrub { cap })) }, Bytes::new())
    };
    assert_eq!(refusal(&call(&s, gc(600_000, None)).await.0).0, WireCode::PermissionDenied);
    assert_eq!(refusal(&call(&s, gc(600_000, Some(admin(cap_ops::SCRUB)))).await.0).0, WireCode::PermissionDenied);
    assert_eq!(refusal(&call(&s, gc(600_000, Some(good(cap_ops::GC)))).await.0).0, WireCode::PermissionDenied);
    let (code, msg) = refusal(&call(&s, gc(0, Some(admin(cap_ops::GC)))).await.0);
    assert_eq!(code, WireCode::InvalidArgument);
    assert!(msg.contains("floor of 60000 ms"), "{msg}");
    assert_eq!(refusal(&call(&s, scrub(None)).await.0).0, WireCode::PermissionDenied);
    assert_eq!(refusal(&call(&s, scrub(Some(admin(cap_ops::GC)))).await.0).0, WireCode::PermissionDenied);
}

/// Tokens for `ops` that must be refused, and what the refusal says.
fn bad_tokens(ops: u32) -> Vec<(Option<v1::ShardCap>, &'static str)> {
    let mut forged = good(ops);
    forged.mac[0] ^= 1;
    let mut widened = good(cap_ops::GET);
    widened.ops = cap_ops::ALL;
    vec![
        (None, "no capability token"),
        (Some(forged), "forged or altered"),
        (Some(widened), "forged or altered"),
        (Some(token(3, ops, 5, now_ms() - 3_600_000)), "expired"),
        (Some(token(4, ops, 5, now_ms() + 60_000)), "not chunk 3"),
    ]
}

fn cluster() -> Capability {
    Capability { file_id: 0, chunk_index: 0, version: 0, ops: 0, epoch: 0, expires_ms: 0 }
}
