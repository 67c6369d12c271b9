//! Unit tests of `perm.rs` and `perm_scope.rs` over a real namespace.

use shardline_proto::v1 as pb;
use shardline_proto::v1::meta_request::Body;
use shardline_proto::v1::meta_response::Body as RBody;
use shardline_types::{ErrorCode, Ino, Layout, ROOT_INO};

use super::*;
use crate::namespace::{FileKey, NewInode};

fn key() -> Option<FileKey> {
    Some(FileKey { kek_id: "k".into(), kek_version: 1, suite: 1, wrapped: vec![7; 40], format: 0 })
}

fn node(mode: u32, uid: u32, gid: u32) -> NewInode {
    NewInode { manifest: None, mode, uid, gid, key: key() }
}

/// / (0755 root) holding: home (0755 uid 2000) with secret (0600 uid 2000)
/// and shared (0644 uid 2000, group 300); tmp (1777 root) with other (0644
/// uid 2000); a (0777 root) with inner (0755 uid 1000) and f (0666 uid 2000);
/// b (0777 root) with g (0666 uid 1000).
struct Tree {
    ns: Namespace,
    home: Ino,
    secret: Ino,
    shared: Ino,
    tmp: Ino,
    a: Ino,
    inner: Ino,
    f: Ino,
    b: Ino,
    g: Ino,
}

fn tree() -> Tree {
    let mut ns = Namespace::new(Layout::default());
    let home = ns.mkdir(ROOT_INO, b"home", node(0o755, 2000, 2000), 1).unwrap().ino;
    let secret = ns.create(home, b"secret", node(0o600, 2000, 2000), true, 1).unwrap().ino;
    let shared = ns.create(home, b"shared", node(0o640, 2000, 300), true, 1).unwrap().ino;
    let tmp = ns.mkdir(ROOT_INO, b"tmp", node(0o1777, 0, 0), 1).unwrap().ino;
    ns.create(tmp, b"other", node(0o644, 2000, 2000), true, 1).unwrap();
    let a = ns.mkdir(ROOT_INO, b"a", node(0o777, 0, 0), 1).unwrap().ino;
    let inner = ns.mkdir(a, b"inner", node(0o755, 1000, 1000), 1).unwrap().ino;
    let f = ns.create(a, b"f", node(0o666, 2000, 2000), true, 1).unwrap().ino;
    let b = ns.mkdir(ROOT_INO, b"b", node(0o777, 0, 0), 1).unwrap().ino;
    let g = ns.create(b, b"g", node(0o666, 1000, 1000), true, 1).unwrap().ino;
    Tree { ns, home, secret, shared, tmp, a, inner, f, b, g }
}

fn user(uid: u32, gid: u32, groups: &[u32]) -> pb::Caller {
    pb::Caller { uid: Some(uid), gid, groups: groups.to_vec(), subtree: vec![] }
}

fn code(r: OpResult<()>) -> Option<ErrorCode> {
    r.err().map(|e| e.code)
}

const DENIED: Option<ErrorCode> = Some(ErrorCode::PermissionDenied);

fn grant(ino: Ino, ops: u32) -> Body {
    Body::GrantCaps(pb::GrantCaps { ino, ops, chunks: vec![pb::ChunkRef { index: 0, version: 1 }] })
}

#[test]
fn mode_bits_owner_group_other_and_root() {
    let t = tree();
    let alice = user(1000, 1000, &[]);
    let owner = user(2000, 2000, &[]);
    let member = user(1000, 1000, &[300]);
    let root = user(0, 0, &[]);
    let read = |ino| Body::GetChunks(pb::GetChunks { ino, ..Default::default() });
    assert_eq!(code(check(&t.ns, &alice, &read(t.secret))), DENIED, "0600 of another uid");
    assert_eq!(code(check(&t.ns, &owner, &read(t.secret))), None);
    assert_eq!(code(check(&t.ns, &root, &read(t.secret))), None, "root bypasses the mode bits");
    assert_eq!(code(check(&t.ns, &alice, &read(t.shared))), DENIED, "0640, not in the group");
    assert_eq!(code(check(&t.ns, &member, &read(t.shared))), None, "a supplementary group");
    let gid_member = user(1000, 300, &[]);
    assert_eq!(code(check(&t.ns, &gid_member, &read(t.shared))), None, "the primary group");
    // Shard grants and commits: r for get, w for put.
    use shardline_crypto::cap_ops::{GET, PUT};
    assert_eq!(code(check(&t.ns, &member, &grant(t.shared, GET))), None);
    assert_eq!(code(check(&t.ns, &member, &grant(t.shared, PUT))), DENIED);
    assert_eq!(code(check(&t.ns, &owner, &grant(t.shared, PUT))), None);
    let commit = Body::CommitChunk(pb::CommitChunk { ino: t.shared, ..Default::default() });
    assert_eq!(code(check(&t.ns, &member, &commit)), DENIED);
    let e = check(&t.ns, &alice, &read(t.secret)).unwrap_err();
    assert!(e.message.contains("acting as uid 1000") && e.message.contains("r or w"), "{}", e.message);
}

#[test]
fn directories_need_w_and_x_to_change_and_x_to_search() {
    let t = tree();
    let alice = user(1000, 1000, &[]);
    let mk = |parent| Body::Mkdir(pb::Mkdir { parent, name: b"x".to_vec(), mode: 0o755, uid: 1000, gid: 1000 });
    let create = |parent, name: &[u8], exclusive| {
        Body::Create(pb::Create { parent, name: name.to_vec(), mode: 0o644, exclusive, ..Default::default() })
    };
    assert_eq!(code(check(&t.ns, &alice, &mk(t.home))), DENIED, "0755 of another owner");
    assert_eq!(code(check(&t.ns, &alice, &create(t.home, b"new", true))), DENIED);
    assert_eq!(code(check(&t.ns, &alice, &mk(t.inner))), None, "its own directory");
    assert_eq!(code(check(&t.ns, &alice, &create(t.a, b"new", true))), None, "0777");
    // A non-exclusive create of an existing file opens it: r or w on it.
    assert_eq!(code(check(&t.ns, &alice, &create(t.a, b"f", false))), None);
    let mut ns = t.ns.clone();
    ns.create(t.a, b"private", node(0o600, 2000, 2000), true, 1).unwrap();
    assert_eq!(code(check(&ns, &alice, &create(t.a, b"private", false))), DENIED);
    let lookup = |parent| Body::Lookup(pb::Lookup { parent, name: b"x".to_vec() });
    let mut ns = t.ns.clone();
    ns.mkdir(ROOT_INO, b"closed", node(0o700, 2000, 2000), 1).unwrap();
    let closed = ns.lookup(ROOT_INO, b"closed").unwrap().ino;
    assert_eq!(code(check(&ns, &alice, &lookup(closed))), DENIED, "no x");
    assert_eq!(code(check(&ns, &alice, &lookup(t.home))), None);
    let readdir = Body::Readdir(pb::ReadDir { ino: closed, ..Default::default() });
    assert_eq!(code(check(&ns, &alice, &readdir)), DENIED, "no r");
    let unlink = |parent, name: &[u8]| Body::Unlink(pb::Unlink { parent, name: name.to_vec() });
    assert_eq!(code(check(&t.ns, &alice, &unlink(t.home, b"secret"))), DENIED);
    assert_eq!(code(check(&t.ns, &alice, &unlink(t.a, b"f"))), None, "0777, not sticky");
    let device = Body::Mknod(pb::Mknod { parent: t.a, kind: pb::FileKind::CharDevice as i32, ..Default::default() });
    assert_eq!(code(check(&t.ns, &alice, &device)), DENIED, "devices are root's");
    assert_eq!(code(check(&t.ns, &user(0, 0, &[]), &device)), None);
}

#[test]
fn the_sticky_bit_protects_other_owners_entries() {
    let t = tree();
    let alice = user(1000, 1000, &[]);
    let unlink = Body::Unlink(pb::Unlink { parent: t.tmp, name: b"other".to_vec() });
    assert_eq!(code(check(&t.ns, &alice, &unlink)), DENIED);
    assert_eq!(code(check(&t.ns, &user(2000, 2000, &[]), &unlink)), None, "the entry's owner");
    assert_eq!(code(check(&t.ns, &user(0, 0, &[]), &unlink)), None, "the directory's owner (root)");
    let rename = |new_parent, new_name: &[u8]| {
        Body::Rename(pb::Rename { parent: t.tmp, name: b"other".to_vec(), new_parent, new_name: new_name.to_vec() })
    };
    assert_eq!(code(check(&t.ns, &alice, &rename(t.a, b"stolen"))), DENIED);
    // Moving a directory to another parent needs w on it (its "..").
    let mut ns = t.ns.clone();
    ns.mkdir(t.a, b"ro", node(0o555, 1000, 1000), 1).unwrap();
    let mv = Body::Rename(pb::Rename { parent: t.a, name: b"ro".to_vec(), new_parent: t.b, new_name: b"ro".to_vec() });
    assert_eq!(code(check(&ns, &alice, &mv)), DENIED);
}

#[test]
fn setattr_follows_the_owner_rules() {
    let t = tree();
    let alice = user(1000, 1000, &[300]);
    let owner = user(2000, 2000, &[300]);
    let set = |a: pb::SetAttr| Body::SetAttr(pb::SetAttr { ino: t.f, ..a });
    let chmod = set(pb::SetAttr { mode: Some(0o777), ..Default::default() });
    assert_eq!(code(check(&t.ns, &alice, &chmod)), DENIED, "chmod: owner only");
    assert_eq!(code(check(&t.ns, &owner, &chmod)), None);
    let chown_to_self = set(pb::SetAttr { uid: Some(1000), ..Default::default() });
    assert_eq!(code(check(&t.ns, &alice, &chown_to_self)), DENIED, "taking a file is root's");
    assert_eq!(code(check(&t.ns, &user(0, 0, &[]), &chown_to_self)), None);
    let chgrp = set(pb::SetAttr { gid: Some(300), ..Default::default() });
    assert_eq!(code(check(&t.ns, &owner, &chgrp)), None, "the owner, to a group of its own");
    assert_eq!(code(check(&t.ns, &owner, &set(pb::SetAttr { gid: Some(5), ..Default::default() }))), DENIED);
    let setgid = set(pb::SetAttr { mode: Some(0o2755), ..Default::default() });
    assert_eq!(code(check(&t.ns, &user(2000, 1, &[]), &setgid)), DENIED, "setgid outside the file's group");
    let utimes = set(pb::SetAttr { mtime_ns: Some(5), ..Default::default() });
    assert_eq!(code(check(&t.ns, &alice, &utimes)), DENIED, "explicit times: owner only");
    let same = set(pb::SetAttr { mode: Some(0o666), ..Default::default() });
    assert_eq!(code(check(&t.ns, &alice, &same)), None, "no change, for a writer: as harmless as its write");
    assert_eq!(code(check(&t.ns, &alice, &set(pb::SetAttr { mode: Some(0o664), ..Default::default() }))), DENIED);
    assert_eq!(code(check(&t.ns, &owner, &set(pb::SetAttr { mode: Some(0o6666), ..Default::default() }))), None);
    let mut suid = t.ns.clone();
    suid.set_attr(t.f, &crate::namespace::SetAttrs { mode: Some(0o6777), ..Default::default() }, 2).unwrap();
    // A writer without CAP_FSETID: the kernel drops the set-id bits, as the writer.
    let kill = |mode| set(pb::SetAttr { mode: Some(mode), ..Default::default() });
    assert_eq!(code(check(&suid, &alice, &kill(0o777))), None, "a writer clears set-id bits");
    assert_eq!(code(check(&suid, &alice, &kill(0o2777))), None, "a writer clears set-user-id only");
    assert_eq!(code(check(&suid, &alice, &kill(0o775))), DENIED, "and nothing else");
    let mut ro = suid.clone();
    ro.set_attr(t.f, &crate::namespace::SetAttrs { mode: Some(0o6755), ..Default::default() }, 3).unwrap();
    assert_eq!(code(check(&ro, &alice, &kill(0o755))), DENIED, "only someone who may write");
    let touch = set(pb::SetAttr { mtime_now: true, ..Default::default() });
    assert_eq!(code(check(&t.ns, &alice, &touch)), None, "now: w is enough (0666)");
    let truncate = Body::SetAttr(pb::SetAttr { ino: t.secret, size: Some(0), ..Default::default() });
    assert_eq!(code(check(&t.ns, &alice, &truncate)), DENIED, "truncate needs w");
    let xattr = |ino, name: &[u8]| Body::SetXattr(pb::SetXattr { ino, name: name.to_vec(), ..Default::default() });
    assert_eq!(code(check(&t.ns, &alice, &xattr(t.secret, b"user.x"))), DENIED);
    assert_eq!(code(check(&t.ns, &alice, &xattr(t.f, b"user.x"))), None);
    assert_eq!(code(check(&t.ns, &alice, &xattr(t.f, b"trusted.x"))), DENIED);
    let get = Body::GetXattr(pb::GetXattr { ino: t.secret, name: b"user.x".to_vec() });
    assert_eq!(code(check(&t.ns, &alice, &get)), DENIED);
}

#[test]
fn wrapped_keys_go_only_to_readers_and_writers() {
    let t = tree();
    let attr = |ino| crate::wire::attr_to_wire(t.ns.get(ino).unwrap());
    let alice = user(1000, 1000, &[]);
    let getattr = Body::Getattr(pb::GetAttr { ino: t.secret });
    let mut resp = pb::MetaResponse { body: Some(RBody::Attr(attr(t.secret))), ..Default::default() };
    filter_response(Some(&alice), Some(&getattr), &mut resp);
    let Some(RBody::Attr(a)) = &resp.body else { panic!("attr") };
    assert!(a.key.is_none(), "no key for a 0600 file of another uid");
    let mut resp = pb::MetaResponse { body: Some(RBody::Attr(attr(t.secret))), ..Default::default() };
    filter_response(Some(&user(2000, 2000, &[])), Some(&getattr), &mut resp);
    let Some(RBody::Attr(a)) = &resp.body else { panic!("attr") };
    assert!(a.key.is_some(), "the owner keeps it");
    // A chunk list of a file it may not read: no key, no get capabilities.
    let chunk = pb::Chunk { cap: Some(pb::ShardCap::default()), ..Default::default() };
    let list = pb::ChunkList { attr: Some(attr(t.secret)), chunks: vec![chunk], more: false };
    let mut resp = pb::MetaResponse { body: Some(RBody::Chunks(list)), ..Default::default() };
    filter_response(Some(&alice), None, &mut resp);
    let Some(RBody::Chunks(l)) = &resp.body else { panic!("chunks") };
    assert!(l.attr.as_ref().is_some_and(|a| a.key.is_none()) && l.chunks[0].cap.is_none());
    // Listings with attributes; and nothing changes without a caller.
    let entry = pb::DirEntry { attr: Some(attr(t.secret)), ..Default::default() };
    let entries = pb::DirEntries { entries: vec![entry], more: false };
    let mut resp = pb::MetaResponse { body: Some(RBody::Entries(entries)), ..Default::default() };
    let untouched = resp.clone();
    filter_response(None, None, &mut resp);
    assert_eq!(resp, untouched);
    filter_response(Some(&alice), None, &mut resp);
    let Some(RBody::Entries(e)) = &resp.body else { panic!("entries") };
    assert!(e.entries[0].attr.as_ref().is_some_and(|a| a.key.is_none()));
}

#[test]
fn a_subtree_confines_every_request_by_inode() {
    let mut t = tree();
    let in_a = pb::Caller { subtree: vec![b"a".to_vec()], ..Default::default() };
    let getattr = |ino| Body::Getattr(pb::GetAttr { ino });
    let lookup = |parent, name: &[u8]| Body::Lookup(pb::Lookup { parent, name: name.to_vec() });
    // The path down to the subtree, and only that.
    assert_eq!(code(check(&t.ns, &in_a, &lookup(ROOT_INO, b"a"))), None);
    assert_eq!(code(check(&t.ns, &in_a, &getattr(ROOT_INO))), None);
    let e = check(&t.ns, &in_a, &lookup(ROOT_INO, b"b")).unwrap_err();
    assert_eq!(e.code, ErrorCode::PermissionDenied);
    assert!(e.message.contains("outside the subtree"), "{}", e.message);
    assert_eq!(code(check(&t.ns, &in_a, &lookup(ROOT_INO, b"missing"))), DENIED, "no existence test outside");
    let readdir = |ino| Body::Readdir(pb::ReadDir { ino, ..Default::default() });
    assert_eq!(code(check(&t.ns, &in_a, &readdir(ROOT_INO))), DENIED);
    assert_eq!(code(check(&t.ns, &in_a, &readdir(t.inner))), None);
    assert_eq!(code(check(&t.ns, &in_a, &getattr(t.f))), None);
    assert_eq!(code(check(&t.ns, &in_a, &getattr(t.g))), DENIED, "a file in /b, by inode");
    assert_eq!(code(check(&t.ns, &in_a, &getattr(t.b))), DENIED);
    // Links and renames across the boundary are refused.
    let link = Body::Link(pb::Link { ino: t.g, new_parent: t.a, new_name: b"l".to_vec() });
    assert_eq!(code(check(&t.ns, &in_a, &link)), DENIED);
    let out = Body::Rename(pb::Rename { parent: t.a, name: b"f".to_vec(), new_parent: t.b, new_name: b"f".to_vec() });
    assert_eq!(code(check(&t.ns, &in_a, &out)), DENIED);
    // Someone else moves f out: it is outside at once; a hard link from
    // outside brings g in.
    t.ns.rename(t.a, b"f", t.b, b"f", 2).unwrap();
    assert_eq!(code(check(&t.ns, &in_a, &getattr(t.f))), DENIED, "renamed out");
    t.ns.link(t.g, t.inner, b"g", 2).unwrap();
    assert_eq!(code(check(&t.ns, &in_a, &getattr(t.g))), None, "linked in");
    t.ns.unlink(t.inner, b"g", 2).unwrap();
    assert_eq!(code(check(&t.ns, &in_a, &getattr(t.g))), DENIED, "unlinked again");
    // A moved subtree root: the certificate follows the path, not the inode.
    t.ns.rename(ROOT_INO, b"a", ROOT_INO, b"c", 3).unwrap();
    let e = check(&t.ns, &in_a, &getattr(t.inner)).unwrap_err();
    assert!(e.message.contains("does not exist"), "{}", e.message);
    // The file-parents index is derived state: rebuilt from a snapshot.
    let restored = Namespace::from_snapshot(t.ns.to_snapshot()).expect("restore");
    assert!(restored.file_parents_are_consistent());
    t.ns.link(t.g, t.inner, b"g2", 4).unwrap();
    let restored = Namespace::from_snapshot(t.ns.to_snapshot()).expect("restore");
    let in_c = pb::Caller { subtree: vec![b"c".to_vec()], ..Default::default() };
    assert_eq!(code(check(&restored, &in_c, &getattr(t.g))), None, "a hard link inside, after a restore");
    // Combined with a uid: both checks apply.
    let both = pb::Caller { subtree: vec![b"c".to_vec()], ..user(1000, 1000, &[]) };
    assert_eq!(code(check(&t.ns, &both, &readdir(t.inner))), None);
    assert_eq!(code(check(&t.ns, &both, &getattr(t.home))), DENIED);
    let _ = (t.shared, t.secret);
}

#[test]
fn callers_come_from_the_certificate_mapping_or_else_from_the_claim() {
    use shardline_rpc::principal::NOBODY;
    use shardline_rpc::UserMap;
    let claim = user(1000, 100, &[0, 7]);
    let root = user(0, 0, &[0]);
    // A mapping wins over the claim.
    let squashed_root = UserMap { ids: Some((0, 0)), root_squash: true, groups: vec![4], ..Default::default() };
    let c = caller_of(&squashed_root, Some(&claim));
    assert_eq!((c.uid, c.gid, c.groups), (Some(NOBODY), NOBODY, vec![4]));
    let alice = UserMap { ids: Some((1000, 100)), ..Default::default() };
    assert_eq!(caller_of(&alice, Some(&root)).uid, Some(1000));
    // Unmapped: the claim (AUTH_SYS), nobody without one.
    let c = caller_of(&UserMap::default(), Some(&claim));
    assert_eq!((c.uid, c.gid, c.groups), (Some(1000), 100, vec![0, 7]));
    assert_eq!(caller_of(&UserMap::default(), Some(&root)).uid, Some(0), "root, not squashed");
    let c = caller_of(&UserMap::default(), None);
    assert_eq!((c.uid, c.gid, c.groups), (Some(NOBODY), NOBODY, vec![]));
    let no_uid = pb::Caller { uid: None, gid: 0, groups: vec![0], subtree: vec![] };
    assert_eq!(caller_of(&UserMap::default(), Some(&no_uid)).uid, Some(NOBODY));
    // Unmapped and squashed: uid 0, gid 0 and group 0 squashed.
    let squash = UserMap { root_squash: true, ..Default::default() };
    let c = caller_of(&squash, Some(&root));
    assert_eq!((c.uid, c.gid, c.groups), (Some(NOBODY), NOBODY, vec![]));
    let c = caller_of(&squash, Some(&claim));
    assert_eq!((c.uid, c.gid, c.groups), (Some(1000), 100, vec![7]));
    // Groups are capped; a claimed subtree is ignored, the certificate's kept.
    let many = pb::Caller { groups: (0..1000).collect(), subtree: vec![b"x".to_vec()], ..user(5, 5, &[]) };
    let c = caller_of(&UserMap::default(), Some(&many));
    assert_eq!((c.groups.len(), c.subtree.len()), (shardline_rpc::acting::MAX_GROUPS, 0));
    let path_only = UserMap { subtree: Some(vec!["a".into(), "b".into()]), ..Default::default() };
    let c = caller_of(&path_only, Some(&claim));
    assert_eq!((c.uid, c.subtree), (Some(1000), vec![b"a".to_vec(), b"b".to_vec()]));
}

/// An unmapped client certificate claiming uid 1001 is checked as 1001: it
/// gets neither the wrapped key nor get tokens of a 0600 file of uid 1000.
#[test]
fn a_claimed_uid_is_checked_like_a_mapped_one() {
    use shardline_crypto::cap_ops::{GET, PUT};
    use shardline_rpc::UserMap;
    let mut t = tree();
    let private = t.ns.create(t.a, b"private", node(0o600, 1000, 1000), true, 1).unwrap().ino;
    let owner = caller_of(&UserMap::default(), Some(&user(1000, 1000, &[])));
    let other = caller_of(&UserMap::default(), Some(&user(1001, 1001, &[])));
    let grant = |ops| Body::GrantCaps(pb::GrantCaps { ino: private, ops, ..Default::default() });
    for body in [grant(GET), grant(PUT), Body::GetChunks(pb::GetChunks { ino: private, ..Default::default() })] {
        assert_eq!(code(check(&t.ns, &other, &body)), DENIED, "{body:?}");
        assert_eq!(code(check(&t.ns, &owner, &body)), None, "{body:?}");
    }
    let attr = |ino| pb::Attr {
        ino,
        mode: 0o100600,
        uid: 1000,
        gid: 1000,
        key: Some(Default::default()),
        ..Default::default()
    };
    let getattr = Body::Getattr(pb::GetAttr { ino: private });
    let mut resp = pb::MetaResponse { body: Some(RBody::Attr(attr(private))), ..Default::default() };
    filter_response(Some(&other), Some(&getattr), &mut resp);
    assert!(matches!(&resp.body, Some(RBody::Attr(a)) if a.key.is_none()), "no wrapped key for another uid");
    let mut resp = pb::MetaResponse { body: Some(RBody::Attr(attr(private))), ..Default::default() };
    filter_response(Some(&owner), Some(&getattr), &mut resp);
    assert!(matches!(&resp.body, Some(RBody::Attr(a)) if a.key.is_some()), "the owner keeps it");
}

/// POSIX checks w at open: a file its owner created read-only (tar and
/// `cp -p` write through `open(O_CREAT|O_WRONLY, 0444)`) must take its
/// bytes, which reach the server as grants, commits and truncates.
#[test]
fn an_owner_writes_the_data_of_its_read_only_file_others_may_not() {
    use shardline_crypto::cap_ops::PUT;
    let mut t = tree();
    let ro = t.ns.create(t.a, b"ro", node(0o444, 1000, 1000), true, 1).unwrap().ino;
    let (owner, other) = (user(1000, 1000, &[]), user(3000, 3000, &[]));
    let commit = Body::CommitChunk(pb::CommitChunk { ino: ro, ..Default::default() });
    let truncate = Body::SetAttr(pb::SetAttr { ino: ro, size: Some(0), ..Default::default() });
    for body in [grant(ro, PUT), commit, truncate] {
        assert_eq!(code(check(&t.ns, &owner, &body)), None, "the owner: {body:?}");
        assert_eq!(code(check(&t.ns, &other, &body)), DENIED, "another uid: {body:?}");
    }
}

/// pjdfstest's `ftruncate::affected_create_flags_only`: a file created with
/// mode 0 through `open(O_CREAT|O_RDWR, 0)` is still truncated and written
/// through that descriptor, which needs its chunk list and key; the owner
/// gets them whatever the mode (it could grant itself r), nobody else does.
#[test]
fn the_owner_of_a_mode_0_file_still_gets_its_chunk_list_and_key() {
    let mut t = tree();
    let zero = t.ns.create(t.a, b"zero", node(0, 1000, 1000), true, 1).unwrap().ino;
    let (owner, other) = (user(1000, 1000, &[]), user(2000, 2000, &[]));
    let read = Body::GetChunks(pb::GetChunks { ino: zero, ..Default::default() });
    assert_eq!(code(check(&t.ns, &owner, &read)), None);
    assert_eq!(code(check(&t.ns, &other, &read)), DENIED, "mode 0 of another uid");
    let list = |chunk_cap| pb::ChunkList {
        attr: Some(crate::wire::attr_to_wire(t.ns.get(zero).unwrap())),
        chunks: vec![pb::Chunk { cap: chunk_cap, ..Default::default() }],
        more: false,
    };
    let mut resp =
        pb::MetaResponse { body: Some(RBody::Chunks(list(Some(pb::ShardCap::default())))), ..Default::default() };
    filter_response(Some(&owner), Some(&read), &mut resp);
    let Some(RBody::Chunks(l)) = &resp.body else { panic!("chunks") };
    assert!(l.attr.as_ref().is_some_and(|a| a.key.is_some()), "the owner keeps the key");
    assert!(l.chunks[0].cap.is_none(), "but no get capability without r");
    let mut resp =
        pb::MetaResponse { body: Some(RBody::Chunks(list(Some(pb::ShardCap::default())))), ..Default::default() };
    filter_response(Some(&other), Some(&read), &mut resp);
    let Some(RBody::Chunks(l)) = &resp.body else { panic!("chunks") };
    assert!(l.attr.as_ref().is_some_and(|a| a.key.is_none()), "no key for another uid");
}
