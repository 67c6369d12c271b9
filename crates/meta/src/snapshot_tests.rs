use super::*;
use shardline_proto::v1 as pb;
use shardline_proto::v1::meta_request::Body;
use shardline_types::{Layout, ROOT_INO};

pub(crate) fn req(client: u64, id: u64, body: Body) -> pb::MetaRequest {
    pb::MetaRequest { client_id: client, request_id: id, caller: None, cache: false, body: Some(body) }
}

pub(crate) fn create(parent: u64, name: &str) -> Body {
    Body::Create(pb::Create {
        parent,
        name: name.into(),
        mode: 0o644,
        key: Some(pb::WrappedKey { kek_id: "k".into(), kek_version: 1, suite: 1, wrapped: vec![9; 72], format: 0 }),
        exclusive: true,
        ..Default::default()
    })
}

/// A state machine with a bit of everything: files, directories, chunks,
/// xattrs, symlinks, an open-unlinked file, data servers and a PG map.
fn busy_state() -> StateMachine {
    let mut sm = StateMachine::new(Layout::default(), 8);
    let mut id = 0;
    let mut apply = |sm: &mut StateMachine, body: Body| {
        id += 1;
        let r = sm.apply(&req(1, id, body), id as i64 * 1000);
        assert!(r.error.is_none(), "{r:?}");
        r
    };
    for s in 1..=6 {
        apply(
            &mut sm,
            Body::Register(pb::RegisterDataServer {
                id: s,
                addr: format!("127.0.0.1:{s}"),
                capacity_bytes: 1 << 30,
                rack: String::new(),
            }),
        );
    }
    let dir = apply(
        &mut sm,
        Body::Mkdir(pb::Mkdir { parent: ROOT_INO, name: "d".into(), mode: 0o755, ..Default::default() }),
    );
    let Some(pb::meta_response::Body::Attr(dir)) = dir.body else { panic!("mkdir") };
    for i in 0..50 {
        let f = apply(&mut sm, create(dir.ino, &format!("f{i}")));
        let Some(pb::meta_response::Body::Attr(f)) = f.body else { panic!("create") };
        apply(
            &mut sm,
            Body::CommitChunk(pb::CommitChunk {
                manifest: None,
                ino: f.ino,
                chunk: Some(pb::Chunk {
                    index: 0,
                    version: 7 + i,
                    sealed_len: 100,
                    pg: 3,
                    format: (i % 3) as u32,
                    cap: None,
                    // Odd files: a small file's copies.
                    data_shards: (i % 2) as u32,
                }),
                new_size: 60,
                epoch: 0,
            }),
        );
    }
    apply(
        &mut sm,
        Body::Symlink(pb::Symlink {
            parent: ROOT_INO,
            name: "ln".into(),
            target: b"d/f1".to_vec(),
            ..Default::default()
        }),
    );
    apply(
        &mut sm,
        Body::SetXattr(pb::SetXattr {
            ino: dir.ino,
            name: "user.x".into(),
            value: b"v".to_vec(),
            ..Default::default()
        }),
    );
    sm.apply(&req(2, 1, Body::SetServerState(pb::SetServerState { down: vec![2], up: vec![] })), 5);
    sm
}

fn members() -> BTreeMap<u64, String> {
    [(1, "127.0.0.1:1".to_string()), (2, "127.0.0.1:2".to_string())].into_iter().collect()
}

#[test]
fn round_trip_preserves_everything() {
    let sm = busy_state();
    let data = encode(&sm, &members());
    let (back, m) = decode(&data).unwrap();
    assert_eq!(m, members());
    // Deterministic encoding: the decoded state encodes to the same bytes.
    assert_eq!(encode(&back, &m), data);
    assert_eq!(back.placement_map(), sm.placement_map());
    let lookup = req(3, 1, Body::Lookup(pb::Lookup { parent: ROOT_INO, name: "d".into() }));
    assert_eq!(back.read(&lookup), sm.read(&lookup));
    // How each chunk is stored survives: copies (1) and the file's layout (0).
    let Some(pb::meta_response::Body::Attr(d)) = back.read(&lookup).body else { panic!("lookup d") };
    for (name, data_shards) in [("f1", 1), ("f2", 0)] {
        let f = req(4, 1, Body::Lookup(pb::Lookup { parent: d.ino, name: name.into() }));
        let Some(pb::meta_response::Body::Attr(f)) = back.read(&f).body else { panic!("lookup {name}") };
        let chunks = req(5, 1, Body::GetChunks(pb::GetChunks { ino: f.ino, from_index: 0, limit: 10 }));
        let Some(pb::meta_response::Body::Chunks(list)) = back.read(&chunks).body else { panic!("chunks of {name}") };
        assert_eq!(list.chunks.iter().map(|c| c.data_shards).collect::<Vec<_>>(), [data_shards], "{name}");
    }
}

#[test]
fn dedup_survives_a_snapshot() {
    let mut sm = StateMachine::new(Layout::default(), 8);
    let first = sm.apply(&req(7, 1, create(ROOT_INO, "a")), 1);
    let (mut back, _) = decode(&encode(&sm, &BTreeMap::new())).unwrap();
    assert_eq!(back.apply(&req(7, 1, create(ROOT_INO, "a")), 2), first, "retry after snapshot keeps its outcome");
    assert!(back.apply(&req(7, 2, create(ROOT_INO, "a")), 3).error.is_some());
}

#[test]
fn corrupt_snapshots_are_errors_not_panics() {
    let data = encode(&busy_state(), &members());
    assert!(decode(&[]).is_err());
    assert!(decode(&[9, 1, 2]).is_err(), "unknown format version");
    for len in [1, 2, 10, data.len() / 2, data.len() - 1] {
        let _ = decode(&data[..len]); // must not panic
    }
    let mut x = 0x1234_5678_u64;
    for _ in 0..200 {
        let mut bad = data.clone();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let at = 1 + (x as usize) % (bad.len() - 1);
        bad[at] ^= (x >> 32) as u8 | 1;
        let _ = decode(&bad); // must not panic
    }
}

#[test]
fn large_namespace_round_trips_quickly() {
    let mut sm = StateMachine::new(Layout::default(), 8);
    for i in 0..100_000u64 {
        let r = sm.apply(&req(1, i, create(ROOT_INO, &format!("file-{i:06}"))), i as i64);
        assert!(r.error.is_none());
    }
    let t = std::time::Instant::now();
    let data = encode(&sm, &BTreeMap::new());
    let enc = t.elapsed();
    let t = std::time::Instant::now();
    let (back, _) = decode(&data).unwrap();
    let dec = t.elapsed();
    eprintln!("100k inodes: {} bytes, encode {enc:?}, decode {dec:?}", data.len());
    assert_eq!(back.ns.inode_count(), 100_001);
    assert!(enc + dec < std::time::Duration::from_secs(10));
}

#[test]
fn special_files_round_trip_and_older_inodes_decode() {
    let mut sm = busy_state();
    for (i, kind) in [pb::FileKind::Fifo, pb::FileKind::Socket, pb::FileKind::CharDevice, pb::FileKind::BlockDevice]
        .into_iter()
        .enumerate()
    {
        let body = Body::Mknod(pb::Mknod {
            parent: ROOT_INO,
            name: format!("special{i}").into_bytes(),
            kind: kind as i32,
            mode: 0o600,
            rdev: 0x0801 + i as u64,
            ..Default::default()
        });
        let r = sm.apply(&req(5, i as u64, body), 99);
        assert!(r.error.is_none(), "{r:?}");
    }
    let data = encode(&sm, &members());
    let (back, _) = decode(&data).unwrap();
    assert_eq!(encode(&back, &members()), data);
    for i in 0..4 {
        let name = format!("special{i}").into_bytes();
        let (a, b) = (sm.ns.lookup(ROOT_INO, &name).unwrap(), back.ns.lookup(ROOT_INO, &name).unwrap());
        assert_eq!(a, b);
    }
    assert_eq!(back.ns.lookup(ROOT_INO, b"special3").unwrap().rdev, 0x0804);

    /// An inode as snapshots wrote it before special files (no tag 16).
    #[derive(Clone, PartialEq, prost::Message)]
    struct OldInode {
        #[prost(uint64, tag = "1")]
        ino: u64,
        #[prost(uint32, tag = "2")]
        kind: u32,
        #[prost(uint32, tag = "7")]
        nlink: u32,
        #[prost(message, optional, tag = "11")]
        layout: Option<v1::Layout>,
    }
    let layout = Some(v1::Layout { chunk_size: 4096, data_shards: 4, parity_shards: 2 });
    let old = OldInode { ino: 9, kind: 0, nlink: 1, layout };
    let new = v1::Inode::decode(old.encode_to_vec().as_slice()).unwrap();
    assert_eq!((new.ino, new.kind, new.nlink, new.rdev), (9, 0, 1, 0));
    // An unknown kind is a corrupt snapshot, not a panic.
    let mut snap = sm.to_snapshot();
    snap.namespace.as_mut().unwrap().inodes.last_mut().unwrap().kind = 7;
    let mut blob = vec![SNAPSHOT_FORMAT_V1];
    blob.extend(snap.encode_to_vec());
    assert!(decode(&blob).is_err());
}

/// Names were `string` in the wire protocol and in snapshot v1 before they
/// became `bytes`: the same wire type, so what older versions wrote (Raft log
/// entries holding requests, snapshots holding names and dedup responses)
/// decodes unchanged. These are the old declarations, as they were.
mod string_era {
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Snapshot {
        #[prost(message, optional, tag = "1")]
        pub namespace: Option<Namespace>,
        #[prost(message, optional, tag = "2")]
        pub registry: Option<super::v1::Registry>,
        #[prost(message, repeated, tag = "3")]
        pub recent: Vec<ClientRecent>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Namespace {
        #[prost(message, repeated, tag = "1")]
        pub inodes: Vec<Inode>,
        #[prost(message, repeated, tag = "2")]
        pub dirs: Vec<Dir>,
        #[prost(uint64, tag = "5")]
        pub next_ino: u64,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Dir {
        #[prost(uint64, tag = "1")]
        pub ino: u64,
        #[prost(string, repeated, tag = "2")]
        pub names: Vec<String>,
        #[prost(uint64, repeated, tag = "3")]
        pub inos: Vec<u64>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Xattr {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(bytes = "vec", tag = "2")]
        pub value: Vec<u8>,
    }
    /// The fields of a v1 inode this test needs (others default).
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Inode {
        #[prost(uint64, tag = "1")]
        pub ino: u64,
        #[prost(uint32, tag = "2")]
        pub kind: u32,
        #[prost(uint32, tag = "7")]
        pub nlink: u32,
        #[prost(message, optional, tag = "11")]
        pub layout: Option<super::v1::Layout>,
        #[prost(message, repeated, tag = "15")]
        pub xattrs: Vec<Xattr>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ClientRecent {
        #[prost(uint64, tag = "1")]
        pub client_id: u64,
        #[prost(message, repeated, tag = "2")]
        pub responses: Vec<Recent>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Recent {
        #[prost(uint64, tag = "1")]
        pub request_id: u64,
        #[prost(message, optional, tag = "2")]
        pub response: Option<MetaResponse>,
    }
    /// A response carrying `XattrNames { repeated string names = 1; }`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct MetaResponse {
        #[prost(message, optional, tag = "43")]
        pub xattr_names: Option<XattrNames>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct XattrNames {
        #[prost(string, repeated, tag = "1")]
        pub names: Vec<String>,
    }
    /// `MetaRequest` with its `Create` and `Rename` bodies (oneof members
    /// are plain fields on the wire).
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct MetaRequest {
        #[prost(uint64, tag = "1")]
        pub client_id: u64,
        #[prost(uint64, tag = "2")]
        pub request_id: u64,
        #[prost(message, optional, tag = "13")]
        pub create: Option<Create>,
        #[prost(message, optional, tag = "24")]
        pub rename: Option<Rename>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Create {
        #[prost(uint64, tag = "1")]
        pub parent: u64,
        #[prost(string, tag = "2")]
        pub name: String,
        #[prost(uint32, tag = "3")]
        pub mode: u32,
        #[prost(message, optional, tag = "6")]
        pub key: Option<shardline_proto::v1::WrappedKey>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Rename {
        #[prost(uint64, tag = "1")]
        pub parent: u64,
        #[prost(string, tag = "2")]
        pub name: String,
        #[prost(uint64, tag = "3")]
        pub new_parent: u64,
        #[prost(string, tag = "4")]
        pub new_name: String,
    }
}

#[test]
fn a_snapshot_written_with_string_names_decodes_with_byte_names() {
    let layout = Some(v1::Layout { chunk_size: 4096, data_shards: 4, parity_shards: 2 });
    let xattr = string_era::Xattr { name: "user.é".into(), value: b"v".to_vec() };
    let old = string_era::Snapshot {
        namespace: Some(string_era::Namespace {
            inodes: vec![
                string_era::Inode { ino: ROOT_INO, kind: 1, nlink: 2, layout: layout.clone(), xattrs: vec![] },
                string_era::Inode { ino: 2, kind: 1, nlink: 2, layout, xattrs: vec![xattr] },
            ],
            dirs: vec![
                string_era::Dir { ino: ROOT_INO, names: vec!["café".into()], inos: vec![2] },
                string_era::Dir { ino: 2, names: vec![], inos: vec![] },
            ],
            next_ino: 3,
        }),
        registry: StateMachine::new(Layout::default(), 8).to_snapshot().registry,
        recent: vec![string_era::ClientRecent {
            client_id: 4,
            responses: vec![string_era::Recent {
                request_id: 1,
                response: Some(string_era::MetaResponse {
                    xattr_names: Some(string_era::XattrNames { names: vec!["user.é".into()] }),
                }),
            }],
        }],
    };
    let mut blob = vec![SNAPSHOT_FORMAT_V1];
    blob.extend(old.encode_to_vec());
    let (mut sm, _) = decode(&blob).unwrap();
    let dir = sm.ns.lookup(ROOT_INO, "café".as_bytes()).unwrap().ino;
    assert_eq!(dir, 2);
    assert_eq!(sm.ns.get_xattr(dir, "user.é".as_bytes()).unwrap(), b"v");
    // The remembered response of client 4's request 1 is returned to its retry.
    let retry = sm.apply(&req(4, 1, Body::ListXattr(pb::ListXattr { ino: dir })), 9);
    let Some(pb::meta_response::Body::XattrNames(n)) = retry.body else { panic!("dedup lost: {retry:?}") };
    assert_eq!(n.names, vec!["user.é".as_bytes().to_vec()]);
    // A non-UTF-8 name survives a snapshot round trip (the old string
    // declaration could not carry it).
    let r = sm.apply(&req(5, 1, create(dir, "x")), 10);
    let Some(pb::meta_response::Body::Attr(f)) = r.body else { panic!("create: {r:?}") };
    let r = sm.apply(
        &req(
            5,
            2,
            Body::Rename(pb::Rename { parent: dir, name: b"x".to_vec(), new_parent: dir, new_name: vec![0xff] }),
        ),
        11,
    );
    assert!(r.error.is_none(), "{r:?}");
    let (back, _) = decode(&encode(&sm, &members())).unwrap();
    assert_eq!(back.ns.lookup(dir, b"\xff").unwrap().ino, f.ino);
    assert!(string_era::Dir::decode(
        v1::Dir { ino: 1, names: vec![vec![0xff]], inos: vec![3] }.encode_to_vec().as_slice()
    )
    .is_err());
}

#[test]
fn raft_log_requests_written_with_string_names_decode_with_byte_names() {
    let key = Some(pb::WrappedKey { kek_id: "k".into(), kek_version: 1, suite: 1, wrapped: vec![9; 72], format: 0 });
    let create = string_era::MetaRequest {
        client_id: 1,
        request_id: 1,
        create: Some(string_era::Create { parent: ROOT_INO, name: "naïve".into(), mode: 0o644, key }),
        rename: None,
    };
    let rename = string_era::MetaRequest {
        client_id: 1,
        request_id: 2,
        create: None,
        rename: Some(string_era::Rename {
            parent: ROOT_INO,
            name: "naïve".into(),
            new_parent: ROOT_INO,
            new_name: "ünïcode".into(),
        }),
    };
    let mut sm = StateMachine::new(Layout::default(), 8);
    for old in [create, rename] {
        let new = pb::MetaRequest::decode(old.encode_to_vec().as_slice()).unwrap();
        // Byte for byte the same message: entries in the log replay as written.
        assert_eq!(new.encode_to_vec(), old.encode_to_vec());
        let r = sm.apply(&new, 1);
        assert!(r.error.is_none(), "{r:?}");
    }
    assert!(sm.ns.lookup(ROOT_INO, "naïve".as_bytes()).is_err());
    assert_eq!(sm.ns.lookup(ROOT_INO, "ünïcode".as_bytes()).unwrap().kind, crate::namespace::Kind::Regular);
}

/// Chunk format v2 (issue 10): the format a client commits is what
/// `GetChunks` returns, before and after a snapshot, so readers pick the
/// right decoder.
#[test]
fn chunk_formats_survive_commit_and_snapshot() {
    let sm = busy_state();
    let d = sm.ns.lookup(ROOT_INO, b"d").unwrap().ino;
    let formats = |sm: &StateMachine| -> Vec<u32> {
        (0..50)
            .map(|i| {
                let ino = sm.ns.lookup(d, format!("f{i}").as_bytes()).unwrap().ino;
                let r = sm.read(&req(3, 1, Body::GetChunks(pb::GetChunks { ino, ..Default::default() })));
                let Some(pb::meta_response::Body::Chunks(list)) = r.body else { panic!("chunks: {r:?}") };
                list.chunks[0].format
            })
            .collect()
    };
    let want: Vec<u32> = (0..50).map(|i| i % 3).collect();
    assert_eq!(formats(&sm), want);
    let (back, _) = decode(&encode(&sm, &members())).unwrap();
    assert_eq!(formats(&back), want);
}

/// A chunk as written before `data_shards` (Raft log entries' `Chunk`,
/// snapshots' `Chunk`): tags 1–5 only.
#[derive(Clone, PartialEq, prost::Message)]
struct ChunkBeforeCopies {
    #[prost(uint64, tag = "1")]
    index: u64,
    #[prost(uint64, tag = "2")]
    version: u64,
    #[prost(uint32, tag = "3")]
    sealed_len: u32,
    #[prost(uint32, tag = "4")]
    pg: u32,
    #[prost(uint32, tag = "5")]
    format: u32,
}

#[test]
fn chunks_written_before_copies_read_as_their_files_layout() {
    use prost::Message;
    let old = ChunkBeforeCopies { index: 2, version: 9, sealed_len: 300, pg: 5, format: 2 }.encode_to_vec();
    let layout = Layout::default();
    // In a Raft log entry (CommitChunk) and in a snapshot.
    let logged = crate::wire::chunk_from_wire(&pb::Chunk::decode(&old[..]).unwrap());
    let snap = v1::Chunk::decode(&old[..]).unwrap();
    assert_eq!((logged.index, logged.version, logged.sealed_len, logged.pg), (2, 9, 300, 5));
    assert_eq!((logged.data_shards, logged.k(&layout)), (0, layout.data_shards));
    assert_eq!((snap.index, snap.data_shards), (2, 0));
    // A chunk of the file's layout is written exactly as before.
    let now = crate::wire::chunk_to_wire(&logged);
    assert_eq!(pb::Chunk { cap: None, ..now }.encode_to_vec(), old);
}
