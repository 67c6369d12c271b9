//! State-machine tests of the POSIX requests: dispatch, retries, statfs.

use shardline_proto::v1 as pb;
use shardline_proto::v1::meta_request::Body;
use shardline_proto::v1::meta_response::Body as RBody;
use shardline_rpc::code_to_wire;
use shardline_types::{ErrorCode, Layout, ROOT_INO};

use super::{is_mutation, ApplyRules, StateMachine};

fn req(client_id: u64, request_id: u64, body: Body) -> pb::MetaRequest {
    pb::MetaRequest { client_id, request_id, caller: None, cache: false, body: Some(body) }
}

fn create(sm: &mut StateMachine, name: &str, id: u64) -> pb::Attr {
    let body = Body::Create(pb::Create {
        parent: ROOT_INO,
        name: name.into(),
        mode: 0o644,
        key: Some(pb::WrappedKey { kek_id: "k".into(), kek_version: 1, suite: 1, wrapped: vec![1], format: 0 }),
        exclusive: true,
        ..Default::default()
    });
    match sm.apply(&req(1, id, body), 1).body {
        Some(RBody::Attr(a)) => a,
        other => panic!("create: {other:?}"),
    }
}

fn code_of(resp: &pb::MetaResponse) -> Option<i32> {
    resp.error.as_ref().map(|e| e.code)
}

fn wire(code: ErrorCode) -> Option<i32> {
    Some(code_to_wire(code) as i32)
}

#[test]
fn retried_link_returns_the_original_outcome() {
    let mut sm = StateMachine::new(Layout::default(), 16);
    let f = create(&mut sm, "f", 1);
    let link = || req(9, 5, Body::Link(pb::Link { ino: f.ino, new_parent: ROOT_INO, new_name: "g".into() }));
    let first = sm.apply(&link(), 2);
    let Some(RBody::Attr(a)) = &first.body else { panic!("link: {first:?}") };
    assert_eq!(a.nlink, 2);
    // The retry is not a second link (no EEXIST, nlink stays 2).
    assert_eq!(sm.apply(&link(), 3), first);
    assert_eq!(sm.ns.get(f.ino).unwrap().nlink, 2);
    // A new request id is a new operation.
    let again = req(9, 6, Body::Link(pb::Link { ino: f.ino, new_parent: ROOT_INO, new_name: "g".into() }));
    assert_eq!(code_of(&sm.apply(&again, 4)), wire(ErrorCode::AlreadyExists));
}

#[test]
fn retried_setattr_returns_the_original_outcome() {
    let mut sm = StateMachine::new(Layout { chunk_size: 4096, data_shards: 4, parity_shards: 2 }, 16);
    let f = create(&mut sm, "f", 1);
    for i in 0..3u64 {
        let commit = Body::CommitChunk(pb::CommitChunk {
            manifest: None,
            ino: f.ino,
            chunk: Some(pb::Chunk {
                index: i,
                version: 7,
                sealed_len: 10,
                pg: 1,
                format: 2,
                cap: None,
                data_shards: 0,
            }),
            new_size: (i + 1) * 4096,
            epoch: 0,
        });
        assert!(sm.apply(&req(1, 10 + i, commit), 2).error.is_none());
    }
    let truncate =
        || req(4, 1, Body::SetAttr(pb::SetAttr { ino: f.ino, size: Some(100), mtime_now: true, ..Default::default() }));
    let first = sm.apply(&truncate(), 50);
    let Some(RBody::AttrReleased(r)) = &first.body else { panic!("setattr: {first:?}") };
    let attr = r.attr.as_ref().unwrap();
    assert_eq!((attr.size, attr.mtime_ns, attr.ctime_ns), (100, 50, 50));
    let released = r.released.as_ref().unwrap();
    assert_eq!(released.file_id, f.ino);
    assert_eq!(released.chunks.iter().map(|c| c.index).collect::<Vec<_>>(), [1, 2]);
    // Meanwhile the file grows again; the retry must not truncate it anew.
    let grow = Body::SetAttr(pb::SetAttr { ino: f.ino, size: Some(9000), ..Default::default() });
    assert!(sm.apply(&req(4, 2, grow), 60).error.is_none());
    assert_eq!(sm.apply(&truncate(), 70), first);
    assert_eq!(sm.ns.get(f.ino).unwrap().size, 9000);
}

#[test]
fn posix_requests_dispatch_and_classify() {
    let mut sm = StateMachine::new(Layout::default(), 16);
    let f = create(&mut sm, "f", 1);
    let mutations = [
        Body::SetAttr(pb::SetAttr { ino: f.ino, mode: Some(0o600), ..Default::default() }),
        Body::Symlink(pb::Symlink { parent: ROOT_INO, name: "s".into(), target: b"f".to_vec(), ..Default::default() }),
        Body::SetXattr(pb::SetXattr {
            ino: f.ino,
            name: "user.k".into(),
            value: b"v".to_vec(),
            mode: pb::XattrMode::Create as i32,
        }),
        Body::Open(pb::Open { ino: f.ino }),
        Body::Release(pb::Release { ino: f.ino }),
        Body::SetLayout(pb::SetLayout {
            ino: ROOT_INO,
            layout: Some(pb::Layout { chunk_size: 1 << 20, data_shards: 4, parity_shards: 2 }),
        }),
        Body::Link(pb::Link { ino: f.ino, new_parent: ROOT_INO, new_name: "g".into() }),
        Body::RemoveXattr(pb::RemoveXattr { ino: f.ino, name: "user.k".into() }),
    ];
    for (i, body) in mutations.into_iter().enumerate() {
        assert!(is_mutation(&body), "{body:?}");
        let resp = sm.apply(&req(2, i as u64, body), 5);
        assert!(resp.error.is_none(), "{resp:?}");
    }
    let s = sm.ns.lookup(ROOT_INO, b"s").unwrap().ino;
    let reads = [
        Body::Readlink(pb::Readlink { ino: s }),
        Body::GetXattr(pb::GetXattr { ino: f.ino, name: "user.k".into() }),
        Body::ListXattr(pb::ListXattr { ino: f.ino }),
        Body::Statfs(pb::Statfs {}),
    ];
    for body in &reads {
        assert!(!is_mutation(body), "{body:?}");
    }
    let read = |sm: &StateMachine, body: &Body| sm.read(&req(3, 0, body.clone()));
    assert_eq!(read(&sm, &reads[0]).body, Some(RBody::LinkTarget(pb::LinkTarget { target: b"f".to_vec() })));
    // The attribute was removed: NotFound, with the distinct message.
    let missing = read(&sm, &reads[1]);
    assert_eq!(code_of(&missing), wire(ErrorCode::NotFound));
    assert_eq!(missing.error.unwrap().message, "no such attribute");
    assert_eq!(read(&sm, &reads[2]).body, Some(RBody::XattrNames(pb::XattrNames { names: vec![] })));
    assert_eq!(sm.ns.get(ROOT_INO).unwrap().layout.chunk_size, 1 << 20);
    // An unknown xattr mode and a missing layout are refused.
    let bad_mode = Body::SetXattr(pb::SetXattr { ino: f.ino, name: "user.k".into(), value: vec![], mode: 9 });
    assert_eq!(code_of(&sm.apply(&req(2, 100, bad_mode), 6)), wire(ErrorCode::InvalidArgument));
    let no_layout = Body::SetLayout(pb::SetLayout { ino: ROOT_INO, layout: None });
    assert_eq!(code_of(&sm.apply(&req(2, 101, no_layout), 6)), wire(ErrorCode::InvalidArgument));
    // A layout wider than the placement groups (4+2 → width 6) is refused.
    let wide = Body::SetLayout(pb::SetLayout {
        ino: ROOT_INO,
        layout: Some(pb::Layout { chunk_size: 1 << 20, data_shards: 6, parity_shards: 2 }),
    });
    assert_eq!(code_of(&sm.apply(&req(2, 102, wide), 6)), wire(ErrorCode::InvalidArgument));
}

#[test]
fn statfs_sums_capacity_of_servers_that_are_up() {
    let mut sm = StateMachine::new(Layout::default(), 16);
    let gib = 1u64 << 30;
    for id in 1..=6 {
        let reg = Body::Register(pb::RegisterDataServer {
            id,
            addr: format!("127.0.0.{id}:1"),
            capacity_bytes: 6 * gib,
            rack: format!("r{id}"),
        });
        assert!(sm.apply(&req(5, id, reg), 1).error.is_none());
    }
    create(&mut sm, "f", 1);
    let down = Body::SetServerState(pb::SetServerState { down: vec![6], up: vec![] });
    assert!(sm.apply(&req(5, 100, down), 2).error.is_none());
    let Some(RBody::FsStats(st)) = sm.read(&req(3, 0, Body::Statfs(pb::Statfs {}))).body else { panic!("statfs") };
    // Five servers up, 30 GiB raw; 4+2 keeps two thirds usable.
    assert_eq!(st.raw_capacity_bytes, 30 * gib);
    assert_eq!(st.total_bytes, 20 * gib);
    assert_eq!(st.free_bytes, st.total_bytes);
    assert_eq!(st.files, 2);
    assert_eq!(st.files + st.files_free, 1 << 32);
    assert_eq!(st.name_max, 255);
}

#[test]
fn mknod_dispatches_keeps_rdev_and_dedups_retries() {
    let mut sm = StateMachine::new(Layout::default(), 16);
    let mknod = |name: &str, kind: pb::FileKind| {
        Body::Mknod(pb::Mknod {
            parent: ROOT_INO,
            name: name.into(),
            kind: kind as i32,
            mode: 0o644,
            uid: 3,
            gid: 4,
            rdev: 0x0805,
        })
    };
    let body = mknod("c", pb::FileKind::CharDevice);
    assert!(is_mutation(&body));
    let first = sm.apply(&req(1, 1, body), 10);
    let Some(RBody::Attr(a)) = &first.body else { panic!("mknod: {first:?}") };
    assert_eq!(
        (a.kind, a.mode, a.uid, a.gid, a.size, a.nlink, a.rdev),
        (pb::FileKind::CharDevice as i32, 0o644, 3, 4, 0, 1, 0x0805)
    );
    assert!(a.key.is_none());
    // A retry is the original outcome, not EEXIST; a new request is EEXIST.
    assert_eq!(sm.apply(&req(1, 1, mknod("c", pb::FileKind::CharDevice)), 11), first);
    assert_eq!(code_of(&sm.apply(&req(1, 2, mknod("c", pb::FileKind::Fifo)), 12)), wire(ErrorCode::AlreadyExists));
    // The kind shows in lookups and listings; fifos drop the device number.
    let fifo = sm.apply(&req(1, 3, mknod("p", pb::FileKind::Fifo)), 13);
    let Some(RBody::Attr(p)) = &fifo.body else { panic!("mknod: {fifo:?}") };
    assert_eq!((p.kind, p.rdev), (pb::FileKind::Fifo as i32, 0));
    let list = sm.read(&req(3, 0, Body::Readdir(pb::ReadDir { ino: ROOT_INO, ..Default::default() })));
    let Some(RBody::Entries(e)) = list.body else { panic!("readdir") };
    let kinds: Vec<_> = e.entries.iter().map(|e| (e.name.as_slice(), e.kind)).collect();
    assert_eq!(kinds, [(&b"c"[..], pb::FileKind::CharDevice as i32), (b"p", pb::FileKind::Fifo as i32)]);
    // Kinds mknod does not make, and unknown kinds, are refused.
    for (i, kind) in [pb::FileKind::Regular as i32, pb::FileKind::Directory as i32, 0, 99].into_iter().enumerate() {
        let body = Body::Mknod(pb::Mknod { parent: ROOT_INO, name: "x".into(), kind, ..Default::default() });
        assert_eq!(code_of(&sm.apply(&req(1, 10 + i as u64, body), 14)), wire(ErrorCode::InvalidArgument), "{kind}");
    }
}

#[test]
fn namespace_changes_return_the_directories_they_changed() {
    let mut sm = StateMachine::new(Layout::default(), 16);
    let mkdir = |sm: &mut StateMachine, parent: u64, name: &str, id: u64, now: i64| {
        let body = Body::Mkdir(pb::Mkdir { parent, name: name.into(), mode: 0o755, ..Default::default() });
        let resp = sm.apply(&req(1, id, body), now);
        match resp.body {
            Some(RBody::Attr(a)) => (a, resp.dirs),
            other => panic!("mkdir: {other:?}"),
        }
    };
    let (a, dirs) = mkdir(&mut sm, ROOT_INO, "a", 1, 10);
    assert_eq!(dirs.len(), 1);
    assert_eq!((dirs[0].ino, dirs[0].mtime_ns, dirs[0].nlink), (ROOT_INO, 10, 3), "the root after the mkdir");
    let (b, _) = mkdir(&mut sm, ROOT_INO, "b", 2, 11);
    let (c, _) = mkdir(&mut sm, a.ino, "c", 3, 12);

    let body = Body::Rename(pb::Rename { parent: a.ino, name: "c".into(), new_parent: b.ino, new_name: "c2".into() });
    let resp = sm.apply(&req(1, 4, body), 20);
    let got: Vec<(u64, i64)> = resp.dirs.iter().map(|d| (d.ino, d.ctime_ns)).collect();
    assert_eq!(got, vec![(a.ino, 20), (b.ino, 20), (c.ino, 20)], "both parents and the moved directory");

    let failed = sm.apply(&req(1, 5, Body::Rmdir(pb::Rmdir { parent: a.ino, name: "missing".into() })), 30);
    assert!(failed.error.is_some() && failed.dirs.is_empty(), "a failed change returns no directories");
    let lookup = sm.read(&req(1, 6, Body::Lookup(pb::Lookup { parent: ROOT_INO, name: "a".into() })));
    assert!(lookup.dirs.is_empty(), "reads return none");
}

/// A rename's answer names the moved inode (with its key, as a lookup
/// answers) so the writer's cache learns the old name gone and the new one;
/// between two links to one inode both names stay, and it names none.
#[test]
fn a_rename_answers_the_moved_inode_unless_both_names_stay() {
    let mut sm = StateMachine::new(Layout::default(), 16);
    let f = create(&mut sm, "f", 1);
    let rename = |from: &str, to: &str| {
        Body::Rename(pb::Rename { parent: ROOT_INO, name: from.into(), new_parent: ROOT_INO, new_name: to.into() })
    };
    let resp = sm.apply(&req(1, 2, rename("f", "g")), 10);
    let Some(RBody::Released(r)) = &resp.body else { panic!("rename: {resp:?}") };
    let moved = r.attr.as_ref().expect("the moved inode");
    assert_eq!((moved.ino, moved.ctime_ns), (f.ino, 10));
    assert!(moved.key.is_some(), "with its key, as a lookup of the new name answers");
    // Two links to one inode: a rename between them changes nothing.
    let link = Body::Link(pb::Link { ino: f.ino, new_parent: ROOT_INO, new_name: "h".into() });
    assert!(sm.apply(&req(1, 3, link), 11).error.is_none());
    let resp = sm.apply(&req(1, 4, rename("g", "h")), 12);
    let Some(RBody::Released(r)) = &resp.body else { panic!("rename: {resp:?}") };
    assert!(r.attr.is_none(), "both names stay: no moved inode");
    assert!(sm.ns.lookup(ROOT_INO, b"g").is_ok() && sm.ns.lookup(ROOT_INO, b"h").is_ok());
}

#[test]
fn opens_are_held_per_client_and_expire_with_their_holder() {
    let mut sm = StateMachine::new(Layout::default(), 16);
    let f = create(&mut sm, "f", 1);
    let open = |ino| Body::Open(pb::Open { ino });
    assert!(sm.apply(&req(10, 1, open(f.ino)), 2).error.is_none());
    assert!(sm.apply(&req(11, 1, open(f.ino)), 2).error.is_none());
    let unlink = Body::Unlink(pb::Unlink { parent: ROOT_INO, name: "f".into() });
    assert!(sm.apply(&req(1, 2, unlink), 3).error.is_none());
    assert_eq!(sm.open_holders(), vec![10, 11]);
    let getattr = |sm: &StateMachine| sm.read(&req(1, 0, Body::Getattr(pb::GetAttr { ino: f.ino }))).error;

    // Only the holder may release its open.
    let r = sm.apply(&req(12, 1, Body::Release(pb::Release { ino: f.ino })), 4);
    assert_eq!(code_of(&r), wire(ErrorCode::InvalidArgument));

    // The holders survive a snapshot.
    let (mut sm, _) = crate::snapshot::decode(&crate::snapshot::encode(&sm, &Default::default())).unwrap();
    assert_eq!(sm.open_holders(), vec![10, 11]);

    let expire = |clients: Vec<u64>| Body::ExpireClients(pb::ExpireClients { clients });
    assert!(is_mutation(&expire(vec![])));
    assert!(sm.apply(&req(u64::MAX, 1, expire(vec![10])), 5).error.is_none());
    assert_eq!(sm.open_holders(), vec![11]);
    assert!(getattr(&sm).is_none(), "client 11 still has it open");
    assert!(sm.apply(&req(u64::MAX, 2, expire(vec![11, 99])), 6).error.is_none());
    assert!(sm.open_holders().is_empty());
    assert_eq!(getattr(&sm).map(|e| e.code), wire(ErrorCode::NotFound), "the orphan went with its last holder");
}

/// Issue 9 item 8: the whole chunk list in one reply stopped fitting a frame
/// header (16 MiB) for files past about 2.5 TiB at 4 MiB chunks, so they
/// could not be opened. Replies are pages that always fit.
#[test]
fn the_chunk_list_of_a_huge_file_comes_in_pages_that_fit_a_frame() {
    let mut sm = StateMachine::new(Layout::default(), 16);
    let f = create(&mut sm, "huge", 1);
    let cs = Layout::default().chunk_size as u64;
    let n: u64 = 800_000; // 3 TiB at 4 MiB chunks
    for i in 0..n {
        // Versions are random 64-bit numbers, as clients pick them.
        let version = shardline_types::placement::mix64(i) | 1 << 63;
        let chunk = pb::Chunk {
            index: i,
            version,
            sealed_len: 4 << 20,
            pg: (i % 64) as u32,
            format: 2,
            cap: None,
            data_shards: 0,
        };
        let body = Body::CommitChunk(pb::CommitChunk {
            manifest: None,
            ino: f.ino,
            chunk: Some(chunk),
            new_size: (i + 1) * cs,
            epoch: 0,
        });
        assert_eq!(code_of(&sm.apply(&req(2, i + 1, body), 2)), None);
    }
    let get = |from_index, limit| {
        let resp = sm.read(&req(3, 0, Body::GetChunks(pb::GetChunks { ino: f.ino, from_index, limit })));
        let len = prost::Message::encoded_len(&resp);
        assert!(len <= shardline_rpc::MAX_HEADER_LEN, "a GetChunks reply of {len} bytes does not fit a frame");
        resp
    };
    // A client from before paging asks for everything: a clear refusal.
    assert_eq!(code_of(&get(0, 0)), wire(ErrorCode::InvalidArgument));
    let mut seen = 0u64;
    let mut from = 0;
    loop {
        let Some(RBody::Chunks(list)) = get(from, u32::MAX).body else { panic!("no chunk list") };
        assert_eq!(list.attr.as_ref().map(|a| a.size), Some(n * cs));
        for c in &list.chunks {
            assert_eq!(c.index, seen, "chunks out of order or missing");
            seen += 1;
        }
        if !list.more {
            break;
        }
        from = seen;
    }
    assert_eq!(seen, n);
}

#[test]
fn capabilities_are_granted_only_for_regular_files_and_never_to_overwrite_a_live_version() {
    let mut sm = StateMachine::new(Layout { chunk_size: 4096, data_shards: 4, parity_shards: 2 }, 16);
    let f = create(&mut sm, "f", 1);
    let commit = Body::CommitChunk(pb::CommitChunk {
        manifest: None,
        ino: f.ino,
        chunk: Some(pb::Chunk { index: 0, version: 7, sealed_len: 10, pg: 1, format: 2, cap: None, data_shards: 0 }),
        new_size: 4096,
        epoch: 0,
    });
    assert!(sm.apply(&req(1, 2, commit), 2).error.is_none());
    let grant = |ino, ops, version| {
        let chunks = vec![pb::ChunkRef { index: 0, version }];
        sm.read(&req(1, 0, Body::GrantCaps(pb::GrantCaps { ino, ops, chunks })))
    };
    let (get, put) = (shardline_crypto::cap_ops::GET, shardline_crypto::cap_ops::PUT);
    assert!(matches!(grant(f.ino, get, 7).body, Some(RBody::Caps(_))));
    assert!(grant(f.ino, put, 8).error.is_none(), "a new version");
    assert_eq!(code_of(&grant(f.ino, put, 7)), wire(ErrorCode::PermissionDenied), "the live version");
    assert_eq!(code_of(&grant(ROOT_INO, get, 7)), wire(ErrorCode::InvalidArgument), "a directory");
    assert_eq!(code_of(&grant(f.ino + 100, get, 7)), wire(ErrorCode::NotFound));
    assert_eq!(code_of(&grant(f.ino, get | put, 8)), wire(ErrorCode::InvalidArgument));
    assert_eq!(code_of(&grant(f.ino, shardline_crypto::cap_ops::DELETE, 8)), wire(ErrorCode::InvalidArgument));
    let none = sm.read(&req(1, 0, Body::GrantCaps(pb::GrantCaps { ino: f.ino, ops: get, chunks: vec![] })));
    assert_eq!(code_of(&none), wire(ErrorCode::InvalidArgument));
}

#[test]
fn the_duplicate_request_cache_forgets_the_oldest_clients_the_same_way_on_every_replica() {
    use super::DEDUP_CLIENTS;
    let mut sm = StateMachine::new(Layout::default(), 16);
    let mkdir = |client: u64| {
        req(
            client,
            1,
            Body::Mkdir(pb::Mkdir { parent: ROOT_INO, name: format!("d{client}").into(), ..Default::default() }),
        )
    };
    let mut restored = None;
    for client in 1..=DEDUP_CLIENTS as u64 + 1 {
        sm.apply(&mkdir(client), client as i64);
        if client == DEDUP_CLIENTS as u64 / 2 {
            // A replica that starts from a snapshot taken here.
            let snap = crate::snapshot::encode(&sm, &Default::default());
            restored = Some(crate::snapshot::decode(&snap).expect("decode").0);
        }
    }
    let mut replica = restored.expect("snapshot taken");
    for client in DEDUP_CLIENTS as u64 / 2 + 1..=DEDUP_CLIENTS as u64 + 1 {
        replica.apply(&mkdir(client), client as i64);
    }
    assert!(sm.dedup_clients() <= DEDUP_CLIENTS * 7 / 8, "{} clients remembered", sm.dedup_clients());
    let snap = |m: &StateMachine| crate::snapshot::encode(m, &Default::default());
    assert_eq!(snap(&sm), snap(&replica), "replicas forgot different clients");
    // The newest client's retry still returns its original outcome; the
    // oldest client's retry is a new request (its name now exists).
    let newest = DEDUP_CLIENTS as u64 + 1;
    assert!(sm.apply(&mkdir(newest), 0).error.is_none(), "a remembered retry");
    assert_eq!(code_of(&sm.apply(&mkdir(1), 0)), wire(ErrorCode::AlreadyExists), "a forgotten client");
}

/// Nemesis (issue 13), CI profile after the capability merge: with two
/// data servers down at once, a chunk was written to its group's targets
/// of one epoch and committed after the group's targets had changed and
/// the new target's rebuild had listed the group: the cluster said healthy
/// with the new target missing its shard (and, in another run, a chunk
/// left with too few shards to rebuild). Such a commit must be refused as
/// stale, so the client sends the shards again to the new targets.
#[test]
fn a_commit_written_for_targets_that_changed_since_is_refused_as_stale() {
    let mut sm = StateMachine::new(Layout { chunk_size: 4096, data_shards: 4, parity_shards: 2 }, 16);
    for id in 1..=7 {
        let reg = Body::Register(pb::RegisterDataServer {
            id,
            addr: format!("127.0.0.{id}:1"),
            capacity_bytes: 1 << 30,
            rack: format!("r{id}"),
        });
        assert!(sm.apply(&req(5, id, reg), 1).error.is_none());
    }
    let f = create(&mut sm, "f", 1);
    let before = sm.epoch();
    // Server 1 goes down: some groups get a new target.
    let down = Body::SetServerState(pb::SetServerState { down: vec![1], up: vec![] });
    assert!(sm.apply(&req(5, 100, down), 2).error.is_none());
    let moved = (0..16u32).find(|pg| sm.registry.pg_epoch(*pg) == Some(sm.epoch())).expect("a group changed");
    let kept = (0..16u32).find(|pg| sm.registry.pg_epoch(*pg) < Some(sm.epoch())).expect("a group kept its targets");
    let commit = |index: u64, pg: u32, epoch: u64| {
        Body::CommitChunk(pb::CommitChunk {
            manifest: None,
            ino: f.ino,
            chunk: Some(pb::Chunk { index, version: 7, sealed_len: 10, pg, format: 2, cap: None, data_shards: 0 }),
            new_size: (index + 1) * 4096,
            epoch,
        })
    };
    assert_eq!(code_of(&sm.apply(&req(1, 10, commit(0, moved, before)), 3)), wire(ErrorCode::StaleEpoch));
    assert!(!sm.ns.is_live(f.ino, 0, 7), "the stale commit applied");
    // The same write sent to the new targets commits; so does one to a
    // group whose targets did not change.
    assert!(sm.apply(&req(1, 11, commit(0, moved, sm.epoch())), 4).error.is_none());
    assert!(sm.apply(&req(1, 12, commit(1, kept, before)), 5).error.is_none());
}

/// Entries written before the stale-commit check and before joins waited
/// for a rebalance (log entry format 1) replay as they first applied: a
/// replica replaying an old log must reach the state the old build reached.
#[test]
fn entries_of_format_one_replay_without_the_stale_check_and_joins_take_slots() {
    let register = |id: u64| {
        Body::Register(pb::RegisterDataServer {
            id,
            addr: format!("127.0.0.{id}:1"),
            capacity_bytes: 1 << 30,
            rack: format!("r{id}"),
        })
    };
    let mut sm = StateMachine::new(Layout { chunk_size: 4096, data_shards: 4, parity_shards: 2 }, 16);
    for id in 1..=7 {
        assert!(sm.apply_with(&req(5, id, register(id)), 1, ApplyRules::V1).error.is_none());
    }
    let f = create(&mut sm, "f", 1);
    let before = sm.epoch();
    let down = Body::SetServerState(pb::SetServerState { down: vec![1], up: vec![] });
    assert!(sm.apply_with(&req(5, 100, down), 2, ApplyRules::V1).error.is_none());
    let moved = (0..16u32).find(|pg| sm.registry.pg_epoch(*pg) == Some(sm.epoch())).expect("a group changed");
    let commit = Body::CommitChunk(pb::CommitChunk {
        manifest: None,
        ino: f.ino,
        chunk: Some(pb::Chunk {
            index: 0,
            version: 7,
            sealed_len: 10,
            pg: moved,
            format: 2,
            cap: None,
            data_shards: 0,
        }),
        new_size: 4096,
        epoch: before,
    });
    let resp = sm.apply_with(&req(1, 10, commit), 3, ApplyRules::V1);
    assert!(resp.error.is_none(), "a format-1 commit is refused on replay: {:?}", resp.error);
    assert!(sm.ns.is_live(f.ino, 0, 7), "the format-1 commit did not apply");
    // The cluster holds data now: a format-1 join still takes slots at once,
    // a format-2 join waits for a rebalance.
    assert!(sm.apply_with(&req(5, 8, register(8)), 4, ApplyRules::V1).error.is_none());
    assert!(sm.registry.slots_of(8) > 0, "a format-1 join took no slots");
    assert!(sm.apply_with(&req(5, 9, register(9)), 5, ApplyRules::V2).error.is_none());
    assert_eq!(sm.registry.slots_of(9), 0, "a format-2 join took slots before a rebalance");
}
