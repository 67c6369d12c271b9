//! Files' manifests through the state machine: kept by create, commit and
//! truncate, carried by snapshots, and old Raft log entries and snapshots
//! (from before manifests and wrap formats) replaying as they first applied.

use prost::Message as _;
use shardline_proto::v1 as pb;
use shardline_proto::v1::meta_request::Body;
use shardline_proto::v1::meta_response::Body as RBody;
use shardline_types::{Layout, ROOT_INO};

use super::StateMachine;
use crate::snapshot::{decode, encode, v1};

fn req(id: u64, body: Body) -> pb::MetaRequest {
    pb::MetaRequest { client_id: 1, request_id: id, caller: None, cache: false, body: Some(body) }
}

fn key(format: u32) -> pb::WrappedKey {
    pb::WrappedKey { kek_id: "k".into(), kek_version: 1, suite: 1, wrapped: vec![9; 72], format }
}

fn manifest(seq: u64) -> pb::FileManifest {
    pb::FileManifest { format: 1, seq, mac: vec![seq as u8 + 1; 32] }
}

fn create(name: &str, format: u32, m: Option<pb::FileManifest>) -> Body {
    Body::Create(pb::Create {
        parent: ROOT_INO,
        name: name.into(),
        mode: 0o644,
        key: Some(key(format)),
        exclusive: true,
        manifest: m,
        ..Default::default()
    })
}

fn commit(ino: u64, index: u64, version: u64, m: Option<pb::FileManifest>) -> Body {
    let chunk = pb::Chunk { index, version, sealed_len: 100, pg: 1, format: 2, cap: None, data_shards: 0 };
    Body::CommitChunk(pb::CommitChunk { ino, chunk: Some(chunk), new_size: index * 4096 + 10, epoch: 0, manifest: m })
}

fn attr(r: &pb::MetaResponse) -> pb::Attr {
    match &r.body {
        Some(RBody::Attr(a)) => a.clone(),
        other => panic!("not an attr: {other:?} ({:?})", r.error),
    }
}

fn code(r: &pb::MetaResponse) -> Option<i32> {
    r.error.as_ref().map(|e| e.code)
}

#[test]
fn manifests_and_wrap_formats_survive_a_snapshot_and_reach_readers() {
    let mut sm = StateMachine::new(Layout::default(), 8);
    let f = attr(&sm.apply(&req(1, create("f", 2, Some(manifest(0)))), 1));
    assert_eq!(f.manifest, Some(manifest(0)));
    assert_eq!(f.key.as_ref().map(|k| k.format), Some(2));
    assert_eq!(code(&sm.apply(&req(2, commit(f.ino, 0, 5, Some(manifest(1)))), 2)), None);
    let stale = sm.apply(&req(3, commit(f.ino, 0, 6, Some(manifest(1)))), 3);
    assert_eq!(code(&stale), Some(pb::ErrorCode::StaleEpoch as i32), "a stale sequence is refused as STALE_EPOCH");

    let (back, _) = decode(&encode(&sm, &Default::default())).expect("decode");
    let get = req(9, Body::GetChunks(pb::GetChunks { ino: f.ino, from_index: 0, limit: 0 }));
    let Some(RBody::Chunks(list)) = back.read(&get).body else { panic!("chunk list") };
    let a = list.attr.expect("attr");
    assert_eq!(a.manifest, Some(manifest(1)), "the snapshot carries the manifest, the chunk list's attr shows it");
    assert_eq!(a.key.map(|k| k.format), Some(2), "and the wrap format");
    assert_eq!(back.ns.get(f.ino).expect("inode"), sm.ns.get(f.ino).expect("inode"));
}

#[test]
fn a_snapshot_from_before_manifests_decodes_with_none() {
    /// `FileKey` and `Inode` as snapshots wrote them before wrap formats and
    /// manifests (no `FileKey` tag 5, no `Inode` tag 17).
    #[derive(Clone, PartialEq, prost::Message)]
    struct OldKey {
        #[prost(string, tag = "1")]
        kek_id: String,
        #[prost(uint32, tag = "2")]
        kek_version: u32,
        #[prost(int32, tag = "3")]
        suite: i32,
        #[prost(bytes = "vec", tag = "4")]
        wrapped: Vec<u8>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    struct OldInode {
        #[prost(uint64, tag = "1")]
        ino: u64,
        #[prost(uint64, tag = "6")]
        size: u64,
        #[prost(message, optional, tag = "12")]
        key: Option<OldKey>,
    }
    let old = OldInode {
        ino: 5,
        size: 10,
        key: Some(OldKey { kek_id: "k".into(), kek_version: 3, suite: 1, wrapped: vec![1; 72] }),
    };
    let new = v1::Inode::decode(old.encode_to_vec().as_slice()).expect("decode");
    assert_eq!(new.manifest, None);
    let k = new.key.expect("key");
    assert_eq!((k.kek_version, k.format), (3, 0), "wrap format 0: no manifest needed");
}

#[test]
fn log_entries_from_before_manifests_replay_as_they_applied() {
    /// `Create` and `CommitChunk` as clients sent them before manifests (no
    /// `Create` tag 8, no `CommitChunk` tag 5, no `WrappedKey` tag 5): the
    /// bytes a Raft log written then holds.
    #[derive(Clone, PartialEq, prost::Message)]
    struct OldCommit {
        #[prost(uint64, tag = "1")]
        ino: u64,
        #[prost(message, optional, tag = "2")]
        chunk: Option<pb::Chunk>,
        #[prost(uint64, tag = "3")]
        new_size: u64,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    struct OldRequest {
        #[prost(uint64, tag = "1")]
        client_id: u64,
        #[prost(uint64, tag = "2")]
        request_id: u64,
        #[prost(message, optional, tag = "18")]
        commit_chunk: Option<OldCommit>,
    }
    let mut sm = StateMachine::new(Layout::default(), 8);
    let legacy = attr(&sm.apply(&req(1, create("legacy", 0, None)), 1));
    let modern = attr(&sm.apply(&req(2, create("modern", 2, Some(manifest(0)))), 2));
    let entry = |ino, id| {
        let chunk = pb::Chunk { index: 0, version: 7, sealed_len: 100, pg: 1, format: 2, cap: None, data_shards: 0 };
        let bytes = OldRequest {
            client_id: 1,
            request_id: id,
            commit_chunk: Some(OldCommit { ino, chunk: Some(chunk), new_size: 10 }),
        }
        .encode_to_vec();
        pb::MetaRequest::decode(bytes.as_slice()).expect("an old entry decodes")
    };
    let r = sm.apply(&entry(legacy.ino, 3), 3);
    assert_eq!(code(&r), None, "an old commit of an old file applies as before: {r:?}");
    assert_eq!(sm.ns.get(legacy.ino).expect("inode").size, 10);
    // The same bytes against a file that needs a manifest are refused, on every replica alike.
    let r = sm.apply(&entry(modern.ino, 4), 4);
    assert_eq!(code(&r), Some(pb::ErrorCode::InvalidArgument as i32));
    assert!(sm.ns.get(modern.ino).expect("inode").chunks.is_empty());
}

#[test]
fn rewrap_keeps_the_wrap_format_and_the_manifest() {
    let mut sm = StateMachine::new(Layout::default(), 8);
    let f = attr(&sm.apply(&req(1, create("f", 2, Some(manifest(0)))), 1));
    let rewrap = |id, format| {
        let new = pb::WrappedKey { kek_version: 2, wrapped: vec![8; 72], format, ..key(2) };
        req(id, Body::RewrapKey(pb::RewrapKey { ino: f.ino, expected: Some(key(2)), key: Some(new) }))
    };
    let dropped = sm.apply(&rewrap(2, 1), 2);
    assert_eq!(code(&dropped), Some(pb::ErrorCode::InvalidArgument as i32), "a re-wrap may not drop the format");
    assert_eq!(code(&sm.apply(&rewrap(3, 2), 3)), None);
    let inode = sm.ns.get(f.ino).expect("inode");
    assert_eq!(inode.key.as_ref().map(|k| (k.kek_version, k.format)), Some((2, 2)));
    assert_eq!(inode.manifest.as_ref().map(|m| m.seq), Some(0));
}
