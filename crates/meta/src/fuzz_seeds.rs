//! Seeds for the metadata service's fuzz targets: a state machine with a
//! bit of everything, and one valid request of every kind against it, so
//! that mutated inputs get past decoding and reach the handlers.

use shardline_proto::v1 as pb;
use shardline_proto::v1::meta_request::Body;
use shardline_types::{Layout, ROOT_INO};

use crate::state_machine::StateMachine;

pub fn req(client: u64, id: u64, body: Body) -> pb::MetaRequest {
    pb::MetaRequest { client_id: client, request_id: id, body: Some(body), caller: None, cache: false }
}

fn key() -> Option<pb::WrappedKey> {
    Some(pb::WrappedKey { kek_id: "k".into(), kek_version: 1, suite: 1, wrapped: vec![9; 72], format: 0 })
}

fn ino_of(r: &pb::MetaResponse) -> u64 {
    match &r.body {
        Some(pb::meta_response::Body::Attr(a)) => a.ino,
        other => panic!("expected attributes, got {other:?} ({:?})", r.error),
    }
}

/// The inodes the seed requests name.
#[derive(Debug, Clone, Copy)]
pub struct Inos {
    pub dir: u64,
    pub file: u64,
}

/// Data servers 1-6, a directory, files with chunks, a symlink, an xattr.
pub fn seeded_state() -> (StateMachine, Inos) {
    let mut sm = StateMachine::new(Layout::default(), 16);
    let mut id = 0;
    let mut apply = |sm: &mut StateMachine, body: Body| {
        id += 1;
        let r = sm.apply(&req(1, id, body), id as i64 * 1000);
        assert!(r.error.is_none(), "{r:?}");
        r
    };
    for s in 1..=6 {
        let addr = format!("127.0.0.1:{s}");
        let rack = format!("r{}", s % 3);
        apply(&mut sm, Body::Register(pb::RegisterDataServer { id: s, addr, capacity_bytes: 1 << 30, rack }));
    }
    let mkdir = pb::Mkdir { parent: ROOT_INO, name: "d".into(), mode: 0o755, ..Default::default() };
    let dir = ino_of(&apply(&mut sm, Body::Mkdir(mkdir)));
    let mut file = 0;
    for i in 0..4u64 {
        let create = pb::Create {
            parent: dir,
            name: format!("f{i}").into(),
            mode: 0o644,
            key: key(),
            exclusive: true,
            ..Default::default()
        };
        file = ino_of(&apply(&mut sm, Body::Create(create)));
        for c in 0..3 {
            let chunk = pb::Chunk {
                index: c,
                version: 10 + c,
                sealed_len: 100,
                pg: (i + c) as u32 % 16,
                format: 2,
                cap: None,
                data_shards: 0,
            };
            let commit = pb::CommitChunk {
                manifest: None,
                ino: file,
                chunk: Some(chunk),
                new_size: c * u64::from(Layout::default().chunk_size) + 60,
                epoch: 0,
            };
            apply(&mut sm, Body::CommitChunk(commit));
        }
    }
    let link = pb::Symlink { parent: ROOT_INO, name: "ln".into(), target: b"d/f1".to_vec(), ..Default::default() };
    apply(&mut sm, Body::Symlink(link));
    let x = pb::SetXattr { ino: file, name: b"user.a".to_vec(), value: b"v".to_vec(), mode: 0 };
    apply(&mut sm, Body::SetXattr(x));
    (sm, Inos { dir, file })
}

/// One valid request of every kind (Raft batches apart: `fuzz_raft_tests.rs`).
pub fn requests(i: Inos) -> Vec<pb::MetaRequest> {
    let (dir, file) = (i.dir, i.file);
    let chunk =
        |index, version| pb::Chunk { index, version, sealed_len: 100, pg: 1, format: 2, cap: None, data_shards: 0 };
    let cv = |version| pb::ChunkVersion { file_id: file, chunk_index: 0, version };
    let bodies = vec![
        Body::Lookup(pb::Lookup { parent: dir, name: b"f1".to_vec() }),
        Body::Getattr(pb::GetAttr { ino: file }),
        Body::Readdir(pb::ReadDir { ino: dir, after: vec![], limit: 2, with_attrs: true }),
        Body::Create(pb::Create {
            manifest: None,
            parent: dir,
            name: b"new".to_vec(),
            mode: 0o4755,
            uid: 0,
            gid: 0,
            key: key(),
            exclusive: false,
            first_version: 0,
        }),
        // A file that needs a manifest (wrap format 2), and changes carrying one.
        Body::Create(pb::Create {
            manifest: Some(pb::FileManifest { format: 1, seq: 0, mac: vec![7; 32] }),
            parent: dir,
            name: b"m".to_vec(),
            mode: 0o644,
            uid: 0,
            gid: 0,
            key: key().map(|k| pb::WrappedKey { format: 2, ..k }),
            exclusive: true,
            first_version: 5,
        }),
        Body::SetAttr(pb::SetAttr {
            ino: file,
            size: Some(10),
            manifest: Some(pb::FileManifest { format: 1, seq: 1, mac: vec![8; 32] }),
            ..Default::default()
        }),
        Body::Mkdir(pb::Mkdir { parent: ROOT_INO, name: b"e".to_vec(), mode: 0o755, uid: 5, gid: 5 }),
        Body::Unlink(pb::Unlink { parent: dir, name: b"f0".to_vec() }),
        Body::Rmdir(pb::Rmdir { parent: ROOT_INO, name: b"d".to_vec() }),
        Body::GetChunks(pb::GetChunks { ino: file, from_index: 0, limit: 0 }),
        Body::CommitChunk(pb::CommitChunk {
            manifest: None,
            ino: file,
            chunk: Some(chunk(5, 99)),
            new_size: 1 << 30,
            epoch: 1,
        }),
        Body::GetPlacement(pb::GetPlacement {}),
        Body::Register(pb::RegisterDataServer {
            id: 7,
            addr: "127.0.0.1:7".into(),
            capacity_bytes: 1 << 40,
            rack: "r9".into(),
        }),
        Body::Heartbeat(pb::Heartbeat {
            id: 1,
            used_bytes: 5,
            capacity_bytes: 1 << 30,
            shard_count: 3,
            ..Default::default()
        }),
        Body::Status(pb::GetStatus {}),
        Body::Rename(pb::Rename {
            parent: dir,
            name: b"f1".to_vec(),
            new_parent: ROOT_INO,
            new_name: b"moved".to_vec(),
        }),
        Body::ListPgChunks(pb::ListPgChunks { pg: 1, after_file: 0, after_chunk: 0, limit: 0 }),
        Body::RebuildDone(pb::RebuildDone { server: 1, pg: 1, shard_index: 0 }),
        Body::SetServerState(pb::SetServerState { down: vec![2], up: vec![3] }),
        Body::CheckLive(pb::CheckLive { chunks: vec![cv(10), cv(11)] }),
        Body::SetAttr(pb::SetAttr {
            ino: file,
            mode: Some(0o600),
            size: Some(150),
            atime_now: true,
            ..Default::default()
        }),
        Body::Link(pb::Link { ino: file, new_parent: ROOT_INO, new_name: b"hard".to_vec() }),
        Body::Symlink(pb::Symlink {
            parent: dir,
            name: b"s".to_vec(),
            target: b"../x".to_vec(),
            mode: 0o777,
            uid: 1,
            gid: 1,
        }),
        Body::Readlink(pb::Readlink { ino: file }),
        Body::SetXattr(pb::SetXattr { ino: dir, name: b"user.b".to_vec(), value: vec![1; 40], mode: 1 }),
        Body::GetXattr(pb::GetXattr { ino: file, name: b"user.a".to_vec() }),
        Body::ListXattr(pb::ListXattr { ino: file }),
        Body::RemoveXattr(pb::RemoveXattr { ino: file, name: b"user.a".to_vec() }),
        Body::Statfs(pb::Statfs {}),
        Body::Open(pb::Open { ino: file }),
        Body::Release(pb::Release { ino: file }),
        Body::SetLayout(pb::SetLayout {
            ino: dir,
            layout: Some(pb::Layout { chunk_size: 1 << 20, data_shards: 2, parity_shards: 1 }),
        }),
        Body::MetaMembership(pb::MetaMembershipChange { id: 4, addr: "127.0.0.1:9004".into(), remove: false }),
        Body::Mknod(pb::Mknod { parent: dir, name: b"fifo".to_vec(), kind: 4, mode: 0o644, uid: 0, gid: 0, rdev: 0 }),
        Body::ExpireClients(pb::ExpireClients { clients: vec![1] }),
        Body::GrantCaps(pb::GrantCaps { ino: file, ops: 1, chunks: vec![pb::ChunkRef { index: 0, version: 10 }] }),
        Body::GrantAdminCap(pb::GrantAdminCap { ops: 8 }),
        Body::DrainDataServer(pb::DrainDataServer { id: 2, cancel: false }),
        Body::RemoveDataServer(pb::RemoveDataServer { id: 6 }),
        Body::Rebalance(pb::Rebalance { dry_run: false, max_bandwidth: 1 << 20 }),
        Body::ReleaseDone(pb::ReleaseDone { server: 2, pg: 1, shard_index: 1 }),
        Body::SetRepair(pb::SetRepair { paused: true }),
        Body::SetScrub(pb::SetScrub { paused: false }),
    ];
    bodies.into_iter().enumerate().map(|(n, b)| req(9, 100 + n as u64, b)).collect()
}
