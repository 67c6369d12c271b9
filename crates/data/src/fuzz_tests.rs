//! Fuzz target for the data server's request handler: request frames from
//! any certificate role, decoded, authorized by role, checked for their
//! capability and handled by the real [`DataService`] — one that enforces
//! capabilities (valid tokens in the seeds, so mutations reach the store),
//! and bare ones over the segment store and the file store, where every
//! request reaches the store (arbitrary ids, ranges, lengths, checksums).
//! Every frame gets an answer that decodes; nothing panics.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use shardline_crypto::{cap_ops, issue_cap, now_ms, CapKey, Capability};
use shardline_fuzz::{run, Target};
use shardline_proto::v1::{self, data_request, DataRequest, DataResponse, ShardId};
use shardline_rpc::pki::TestPki;
use shardline_rpc::{read_frame, write_frame, Frame, Handler, MetaClient, Principal, Role};

use crate::caps::CapPolicy;
use crate::node_state::NodeState;
use crate::{DataService, FileStore, SegmentConfig, SegmentStore};

fn key() -> Arc<CapKey> {
    Arc::new(CapKey::from_bytes("fuzz", [5; 32]))
}

/// The three services and the folder under them (tmpfs when there is one:
/// the stores fsync every write).
struct Services {
    capped: DataService<FileStore>,
    segment: DataService<SegmentStore>,
    file: DataService<FileStore>,
    _dir: tempfile::TempDir,
}

fn services(tls: &Arc<shardline_rpc::Tls>) -> Services {
    let dir = tempfile::tempdir_in("/dev/shm").or_else(|_| tempfile::tempdir()).expect("temporary folder");
    let sub = |name: &str| {
        let p = dir.path().join(name);
        std::fs::create_dir_all(&p).expect("store folder");
        p
    };
    // Never reached: scrub and GC ask the metadata service, which is not there.
    let meta = MetaClient::new(vec!["127.0.0.1:1".into()], Duration::from_millis(10), tls.clone());
    let node =
        Arc::new(NodeState::new(1, meta, 1 << 20, tls.clone(), CapPolicy::Enforce(key()), Duration::from_secs(60)));
    let cfg = SegmentConfig { segment_bytes: 4 << 20, ..SegmentConfig::default() };
    let segment = SegmentStore::open_with(&sub("segment"), Some(1 << 30), cfg, Arc::new(crate::segment_store::OsIo));
    Services {
        capped: DataService::with_node(Arc::new(FileStore::open(&sub("capped"), None).expect("store")), node),
        segment: DataService::new(Arc::new(segment.expect("segment store"))),
        file: DataService::new(Arc::new(FileStore::open(&sub("file"), Some(1 << 30)).expect("store"))),
        _dir: dir,
    }
}

fn principals() -> Vec<Principal> {
    let p = |role, ids: Vec<u64>| Principal { role, ids, name: "fuzz".into(), user: Default::default() };
    vec![p(Role::Client, vec![]), p(Role::Admin, vec![]), p(Role::Data, vec![2]), p(Role::Meta, vec![1])]
}

fn seeds(rt: &tokio::runtime::Runtime) -> Vec<Vec<u8>> {
    let id = |shard_index| Some(ShardId { file_id: 42, chunk_index: 3, version: 7, shard_index });
    let cap = |ops| {
        let c = Capability { file_id: 42, chunk_index: 3, version: 7, ops, epoch: 0, expires_ms: now_ms() + 3_600_000 };
        Some(issue_cap(&key(), &c))
    };
    let admin = |ops| {
        let c = Capability { file_id: 0, chunk_index: 0, version: 0, ops, epoch: 0, expires_ms: now_ms() + 3_600_000 };
        Some(issue_cap(&key(), &c))
    };
    let data = Bytes::from((0..5000u32).map(|i| (i % 251) as u8).collect::<Vec<_>>());
    let crc = crc32c::crc32c(&data);
    let requests: Vec<(data_request::Body, Bytes)> = vec![
        (
            data_request::Body::Put(v1::PutShard {
                id: id(0),
                crc32c: crc,
                epoch: 0,
                cap: cap(cap_ops::PUT),
                data_shards: 4,
                parity_shards: 2,
            }),
            data.clone(),
        ),
        (
            data_request::Body::Get(v1::GetShard { id: id(0), epoch: 0, offset: 0, length: 0, cap: cap(cap_ops::GET) }),
            Bytes::new(),
        ),
        (
            data_request::Body::Get(v1::GetShard {
                id: id(0),
                epoch: 0,
                offset: 100,
                length: 4000,
                cap: cap(cap_ops::GET),
            }),
            Bytes::new(),
        ),
        (data_request::Body::Delete(v1::DeleteShard { id: id(0), cap: cap(cap_ops::DELETE) }), Bytes::new()),
        (data_request::Body::Scrub(v1::Scrub { cap: admin(cap_ops::SCRUB) }), Bytes::new()),
        (data_request::Body::Gc(v1::CollectGarbage { grace_ms: 1, cap: admin(cap_ops::GC) }), Bytes::new()),
        (data_request::Body::Gc(v1::CollectGarbage { grace_ms: 120_000, cap: admin(cap_ops::GC) }), Bytes::new()),
    ];
    let mut out = Vec::new();
    for (body, payload) in requests {
        let frame = Frame::from_message(&DataRequest { body: Some(body) }, payload);
        // Sent to each service, by a client and by an operator.
        for which in [0u8, 1, 2, 4, 5, 6] {
            let mut seed = vec![which];
            rt.block_on(write_frame(&mut seed, &frame)).expect("encode a seed");
            out.push(seed);
        }
    }
    out
}

/// The first byte picks the service (÷ 4) and the sender's role (mod 4);
/// the rest is a frame.
#[test]
fn fuzz_data_requests() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let tls = TestPki::new().expect("test CA").identity(Role::Data, &[1]).expect("identity");
    let who = principals();
    let mut s = services(&tls);
    let mut n = 0u64;
    let t = Target { name: "data_requests", default_inputs: 1500 };
    run(t, seeds(&rt), |input| {
        // Fresh stores now and then, so they do not grow without end.
        n += 1;
        if n.is_multiple_of(5000) {
            s = services(&tls);
        }
        let Some((&first, mut rest)) = input.split_first() else { return false };
        let Ok(Some(frame)) = rt.block_on(read_frame(&mut rest)) else { return false };
        let peer = &who[first as usize % 4];
        let answer = rt.block_on(async {
            match (first / 4) % 3 {
                0 => s.capped.handle(peer, frame).await,
                1 => s.segment.handle(peer, frame).await,
                _ => s.file.handle(peer, frame).await,
            }
        });
        let resp: DataResponse = answer.decode().expect("the answer decodes");
        resp.error.is_none()
    });
}
