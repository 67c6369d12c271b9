//! [`DataService`] over real sockets: a `serve` loop and an rpc `Pool`.

use std::time::Duration;

use shardline_proto::v1::{ErrorCode as WireCode, ShardId};
use shardline_rpc::Pool;

use super::*;
use crate::FileStore;

struct Server {
    addr: String,
    pool: Pool,
    _dir: tempfile::TempDir,
}

async fn start(capacity: Option<u64>) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(FileStore::open(dir.path(), capacity).unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(shardline_rpc::serve(listener, Arc::new(DataService::new(store))));
    Server { addr, pool: Pool::new(Duration::from_secs(2), Duration::from_secs(10)), _dir: dir }
}

impl Server {
    async fn call(&self, body: data_request::Body, payload: Bytes) -> (DataResponse, Bytes) {
        let req = DataRequest { body: Some(body) };
        self.raw(Frame::from_message(&req, payload)).await
    }

    async fn raw(&self, frame: Frame) -> (DataResponse, Bytes) {
        let resp = self.pool.call(&self.addr, &frame).await.unwrap();
        (resp.decode().unwrap(), resp.payload)
    }
}

fn id(shard_index: u32) -> Option<ShardId> {
    Some(ShardId { file_id: 42, chunk_index: 3, version: 1, shard_index })
}

fn put(shard_index: u32, crc32c: u32) -> data_request::Body {
    data_request::Body::Put(v1::PutShard { id: id(shard_index), crc32c, epoch: 1, ..Default::default() })
}

fn get(shard_index: u32) -> data_request::Body {
    data_request::Body::Get(v1::GetShard { id: id(shard_index), epoch: 1, ..Default::default() })
}

#[tokio::test]
async fn ranged_gets_return_the_range_with_its_own_checksum() {
    let srv = start(None).await;
    let data = Bytes::from((0..300_000u32).map(|i| (i % 251) as u8).collect::<Vec<_>>());
    srv.call(put(0, crc32c::crc32c(&data)), data.clone()).await;
    for (offset, len, want) in [(1000u64, 5000u64, 1000..6000), (299_000, 5000, 299_000..300_000), (7, 0, 7..300_000)] {
        let got =
            shardline_rpc::shard_client::get_range(&srv.pool, &srv.addr, &key(0), None, 1, offset, len).await.unwrap();
        assert_eq!(got, data.slice(want), "range {offset}+{len}");
    }
    let past = data_request::Body::Get(v1::GetShard { id: id(0), epoch: 1, offset: 300_001, length: 1, cap: None });
    let (resp, _) = srv.call(past, Bytes::new()).await;
    assert_eq!(error_code(&resp), Some(WireCode::InvalidArgument));
}

fn key(shard_index: u32) -> ShardKey {
    ShardKey { file_id: 42, chunk_index: 3, version: 1, shard_index }
}

fn error_code(resp: &DataResponse) -> Option<WireCode> {
    resp.error.as_ref().map(|e| WireCode::try_from(e.code).unwrap())
}

#[tokio::test]
async fn put_get_delete_over_the_wire() {
    let srv = start(None).await;
    let data = Bytes::from((0..300_000u32).map(|i| (i % 251) as u8).collect::<Vec<_>>());
    let crc = crc32c::crc32c(&data);

    let (resp, _) = srv.call(put(0, crc), data.clone()).await;
    assert_eq!(resp.error, None);
    assert!(matches!(resp.body, Some(data_response::Body::Put(_))));

    let (resp, payload) = srv.call(get(0), Bytes::new()).await;
    assert_eq!(resp.error, None);
    assert_eq!(
        resp.body,
        Some(data_response::Body::Get(v1::GetShardOk { crc32c: crc, offset: 0, shard_len: 300_000 }))
    );
    assert_eq!(payload, data);

    let del = data_request::Body::Delete(v1::DeleteShard { id: id(0), cap: None });
    let (resp, _) = srv.call(del.clone(), Bytes::new()).await;
    assert_eq!(resp.body, Some(data_response::Body::Delete(v1::DeleteShardOk { existed: true })));
    let (resp, _) = srv.call(del, Bytes::new()).await;
    assert_eq!(resp.body, Some(data_response::Body::Delete(v1::DeleteShardOk { existed: false })));

    let (resp, payload) = srv.call(get(0), Bytes::new()).await;
    assert_eq!(error_code(&resp), Some(WireCode::NotFound));
    assert!(!resp.error.unwrap().retryable);
    assert!(payload.is_empty());
}

#[tokio::test]
async fn bad_requests_get_error_responses() {
    let srv = start(None).await;
    // Not a protobuf at all.
    let (resp, _) = srv.raw(Frame::new(vec![0xffu8; 17], Bytes::new())).await;
    assert_eq!(error_code(&resp), Some(WireCode::InvalidArgument));
    // No body; no shard id.
    let (resp, _) = srv.raw(Frame::from_message(&DataRequest { body: None }, Bytes::new())).await;
    assert_eq!(error_code(&resp), Some(WireCode::InvalidArgument));
    let (resp, _) = srv
        .call(data_request::Body::Get(v1::GetShard { id: None, epoch: 0, ..Default::default() }), Bytes::new())
        .await;
    assert_eq!(error_code(&resp), Some(WireCode::InvalidArgument));
    // A payload that does not match its checksum is refused and not stored.
    let (resp, _) = srv.call(put(1, 0x1234_5678), Bytes::from_static(b"damaged in transit")).await;
    assert_eq!(error_code(&resp), Some(WireCode::Corrupt));
    assert!(resp.error.unwrap().retryable);
    let (resp, _) = srv.call(get(1), Bytes::new()).await;
    assert_eq!(error_code(&resp), Some(WireCode::NotFound));
    // The connection and server survived all of it.
    let data = Bytes::from_static(b"still serving");
    let (resp, _) = srv.call(put(2, crc32c::crc32c(&data)), data).await;
    assert_eq!(resp.error, None);
}

#[tokio::test]
async fn full_store_answers_no_space() {
    let srv = start(Some(1000)).await;
    let data = Bytes::from(vec![7u8; 2000]);
    let (resp, _) = srv.call(put(0, crc32c::crc32c(&data)), data).await;
    assert_eq!(error_code(&resp), Some(WireCode::NoSpace));
}

#[path = "service_caps_tests.rs"]
mod caps;
