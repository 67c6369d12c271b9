//! Black-box: the metadata service enforces POSIX permissions and subtree
//! restrictions itself, as the identity a client certificate binds, on a
//! real cluster of separate processes (127.0.0.150). A certificate for uid
//! 1000 cannot read a 0600 file of uid 2000, get its wrapped key or shard
//! capabilities, nor create in a 0755 directory of another owner; a
//! certificate restricted to `/a` is refused `/b` with a clear error and
//! nothing changes; the owners do all of it. Requests are sent by this
//! process's native client and raw metadata client (a client that skips
//! every check of its own), and through the `shardline` CLI.
//!
//! A client certificate without a uid mapping is checked as the uid its
//! requests claim (the AUTH_SYS model; 127.0.0.134): claiming uid 1001, it
//! is refused a 0600 file of uid 1000 and nothing changes, while uid 1000
//! reads and writes it.

mod harness;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use harness::{content, TestCluster};
use shardline_client::inode_api::SetAttrRequest;
use shardline_client::ClientError;
use shardline_crypto::cap_ops;
use shardline_proto::v1 as pb;
use shardline_proto::v1::meta_request::Body;
use shardline_proto::v1::meta_response::Body as RBody;
use shardline_rpc::{MetaCallError, MetaClient, Tls};
use shardline_types::{ErrorCode, ROOT_INO};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime")
}

fn meta_addrs(c: &TestCluster) -> Vec<String> {
    c.servers("meta").into_iter().map(|(_, a)| a).collect()
}

/// Issue a client certificate with `extra` flags through the CLI.
fn issue(c: &TestCluster, stem: &str, extra: &[&str]) -> PathBuf {
    let certs = c.data_dir().join("certs");
    let out = certs.join(stem);
    let mut args = vec!["admin", "certs", "issue", "--dir", certs.to_str().unwrap(), "--role", "client", "--out"];
    args.push(out.to_str().unwrap());
    args.extend(extra);
    let done = std::process::Command::new(harness::BIN).args(&args).output().expect("run shardline");
    assert!(done.status.success(), "certs issue: {}", String::from_utf8_lossy(&done.stderr));
    out
}

/// A native client (this process) with the client certificate `stem`.
fn client_with(c: &TestCluster, rt: &tokio::runtime::Runtime, stem: &Path) -> shardline_client::Client {
    let text = std::fs::read_to_string(c.cluster_file()).expect("read cluster.toml");
    let v: toml::Value = toml::from_str(&text).expect("parse cluster.toml");
    let key = c.data_dir().join(v["key_file"].as_str().expect("key_file"));
    let cfg = shardline_client::ClientConfig::new(meta_addrs(c), key, c.identity_from(stem));
    rt.block_on(shardline_client::Client::connect(cfg)).expect("connect")
}

/// A raw metadata client: requests exactly as written, no client-side checks.
fn raw(c: &TestCluster, tls: Arc<Tls>) -> MetaClient {
    MetaClient::new(meta_addrs(c), Duration::from_secs(10), tls)
}

/// A copy of cluster.toml whose client certificate is `stem`.pem/.key.
fn cluster_file_as(c: &TestCluster, stem: &Path) -> PathBuf {
    let certs = c.data_dir().join("certs");
    let text = std::fs::read_to_string(c.cluster_file()).expect("read cluster.toml");
    let text = text
        .replace(&certs.join("client.pem").display().to_string(), &stem.with_extension("pem").display().to_string())
        .replace(&certs.join("client.key").display().to_string(), &stem.with_extension("key").display().to_string());
    let path = c.dir.path().join(format!("cluster-{}.toml", stem.file_name().unwrap().to_string_lossy()));
    std::fs::write(&path, text).expect("write the cluster file copy");
    path
}

fn run_as(file: &Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(harness::BIN)
        .arg("--cluster")
        .arg(file)
        .args(args)
        .env("SHARDLINE_LOG", "warn")
        .output()
        .expect("run shardline")
}

fn refused_cli(file: &Path, args: &[&str], want: &str) {
    let out = run_as(file, args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{args:?} succeeded");
    assert!(err.contains(want), "{args:?}: {err}");
}

fn denied_client<T: std::fmt::Debug>(r: Result<T, ClientError>, case: &str) -> String {
    match r {
        Err(e) if e.code() == ErrorCode::PermissionDenied => e.to_string(),
        other => panic!("{case}: expected PERMISSION_DENIED, got {other:?}"),
    }
}

fn denied_raw(r: Result<pb::MetaResponse, MetaCallError>, case: &str) -> String {
    match r {
        Err(MetaCallError::Service { code: ErrorCode::PermissionDenied, message }) => message,
        other => panic!("{case}: expected PERMISSION_DENIED, got {other:?}"),
    }
}

fn attr_of(resp: pb::MetaResponse) -> pb::Attr {
    match resp.body {
        Some(RBody::Attr(a)) => a,
        other => panic!("expected attributes, got {other:?}"),
    }
}

#[test]
fn permissions_keys_and_subtrees_are_enforced_by_the_metadata_service() {
    let c = TestCluster::start(150);
    let rt = runtime();
    let certs = c.data_dir().join("certs");
    // The cluster's own client certificate (no mapping) sets the scene:
    // /home owned by 2000 (0755), /a and /b open to all.
    let admin = client_with(&c, &rt, &certs.join("client"));
    let fs = admin.inodes();
    let home = rt.block_on(fs.mkdir(ROOT_INO, "home", 0o755, 2000, 2000)).expect("mkdir /home");
    rt.block_on(fs.mkdir(ROOT_INO, "a", 0o777, 0, 0)).expect("mkdir /a");
    rt.block_on(fs.mkdir(ROOT_INO, "b", 0o777, 0, 0)).expect("mkdir /b");
    let in_b = content(50_000, 7);
    c.put_bytes("/b/data", &in_b);

    let owner_stem = issue(&c, "owner", &["--uid", "2000", "--gid", "2000"]);
    let alice_stem = issue(&c, "alice", &["--uid", "1000", "--gid", "1000"]);
    let owner = client_with(&c, &rt, &owner_stem);
    let alice = client_with(&c, &rt, &alice_stem);

    // The owner writes a private file and reads it back.
    let secret = content(300_000, 8);
    rt.block_on(owner.write_file("/home/private", &secret)).expect("the owner writes in its directory");
    let private = rt.block_on(owner.inodes().lookup(home.ino, "private")).expect("lookup");
    let chmod = SetAttrRequest { mode: Some(0o600), ..Default::default() };
    rt.block_on(owner.inodes().setattr(private.ino, &chmod)).expect("the owner chmods");
    assert_eq!(rt.block_on(owner.read_file("/home/private")).expect("the owner reads"), secret);

    // uid 1000 cannot read it, through the client or with raw requests.
    let msg = denied_client(rt.block_on(alice.read_file("/home/private")), "reading a 0600 file of uid 2000");
    assert!(msg.contains("permission denied") && msg.contains("uid 1000"), "{msg}");
    let alice_raw = raw(&c, c.identity_from(&alice_stem));
    let seen = attr_of(
        rt.block_on(alice_raw.call(Body::Lookup(pb::Lookup { parent: home.ino, name: b"private".to_vec() })))
            .expect("lookup is allowed (x on /home)"),
    );
    assert!(seen.key.is_none(), "the wrapped key went to a principal that may not read the file");
    let seen = attr_of(rt.block_on(alice_raw.call(Body::Getattr(pb::GetAttr { ino: private.ino }))).expect("getattr"));
    assert!(seen.key.is_none(), "getattr handed out the wrapped key");
    let listing = rt
        .block_on(alice_raw.call(Body::Readdir(pb::ReadDir { ino: home.ino, with_attrs: true, ..Default::default() })))
        .expect("readdir of a 0755 directory");
    let Some(RBody::Entries(entries)) = listing.body else { panic!("entries") };
    assert!(entries.entries.iter().all(|e| e.attr.as_ref().is_some_and(|a| a.key.is_none())), "a listing leaked a key");
    let get_chunks = Body::GetChunks(pb::GetChunks { ino: private.ino, from_index: 0, limit: 100 });
    denied_raw(rt.block_on(alice_raw.call(get_chunks)), "the chunk list");
    let grant = |ops| {
        Body::GrantCaps(pb::GrantCaps { ino: private.ino, ops, chunks: vec![pb::ChunkRef { index: 0, version: 1 }] })
    };
    denied_raw(rt.block_on(alice_raw.call(grant(cap_ops::GET))), "get capabilities");
    denied_raw(rt.block_on(alice_raw.call(grant(cap_ops::PUT))), "put capabilities");
    let truncate = Body::SetAttr(pb::SetAttr { ino: private.ino, size: Some(0), ..Default::default() });
    denied_raw(rt.block_on(alice_raw.call(truncate)), "truncate");
    let chmod_other = Body::SetAttr(pb::SetAttr { ino: private.ino, mode: Some(0o666), ..Default::default() });
    denied_raw(rt.block_on(alice_raw.call(chmod_other)), "chmod of another's file");
    let take = Body::SetAttr(pb::SetAttr { ino: private.ino, uid: Some(1000), ..Default::default() });
    denied_raw(rt.block_on(alice_raw.call(take)), "chown to itself");

    // Nor create, mkdir, unlink or rename in /home (0755, uid 2000).
    denied_client(rt.block_on(alice.write_file("/home/intruder", b"x")), "create in another's 0755 directory");
    denied_client(rt.block_on(alice.mkdir("/home/d")), "mkdir");
    denied_client(rt.block_on(alice.remove("/home/private")), "unlink");
    denied_client(rt.block_on(alice.rename("/home/private", "/a/stolen")), "rename out");
    // Through the CLI too, with a clear error.
    let alice_file = cluster_file_as(&c, &alice_stem);
    refused_cli(&alice_file, &["get", "/home/private", "-"], "permission denied");
    refused_cli(&alice_file, &["mkdir", "/home/d2"], "permission denied");

    // Nothing changed: the owner still sees one entry and the same bytes.
    let names: Vec<String> = rt
        .block_on(owner.list("/home"))
        .expect("list")
        .into_iter()
        .map(|e| String::from_utf8_lossy(&e.name).into_owned())
        .collect();
    assert_eq!(names, vec!["private".to_string()], "a refused request changed /home");
    assert_eq!(rt.block_on(owner.read_file("/home/private")).expect("read"), secret);
    let after = attr_of(rt.block_on(alice_raw.call(Body::Getattr(pb::GetAttr { ino: private.ino }))).expect("getattr"));
    assert_eq!((after.uid, after.mode & 0o7777, after.size), (2000, 0o600, secret.len() as u64));

    // In a directory it may write, uid 1000 works as usual, and its own
    // file's key comes back to it.
    let mine = content(120_000, 9);
    rt.block_on(alice.write_file("/a/mine", &mine)).expect("write in /a");
    assert_eq!(rt.block_on(alice.read_file("/a/mine")).expect("read back"), mine);
    let a_ino = rt.block_on(alice.inodes().lookup(ROOT_INO, "a")).expect("lookup /a").ino;
    let own = attr_of(
        rt.block_on(alice_raw.call(Body::Lookup(pb::Lookup { parent: a_ino, name: b"mine".to_vec() })))
            .expect("lookup"),
    );
    assert!(own.key.is_some() && own.uid == 1000, "the owner gets its key");

    subtree_restriction(&c, &rt, &in_b, &mine);
}

/// A certificate restricted to `/a` (no uid mapping) reading or writing
/// `/b` is refused with a clear error and nothing changes; inside `/a` it works.
fn subtree_restriction(c: &TestCluster, rt: &tokio::runtime::Runtime, in_b: &[u8], in_a: &[u8]) {
    let stem = issue(c, "confined", &["--path", "/a"]);
    let file = cluster_file_as(c, &stem);
    refused_cli(&file, &["get", "/b/data", "-"], "outside the subtree this client certificate is restricted to");
    let local = c.dir.path().join("upload");
    std::fs::write(&local, b"should not land").expect("write local file");
    refused_cli(&file, &["put", local.to_str().unwrap(), "/b/new"], "outside the subtree");
    refused_cli(&file, &["rm", "/b/data"], "outside the subtree");
    refused_cli(&file, &["ls", "/"], "outside the subtree");
    // Inside, everything works, by path and by inode.
    let out = run_as(&file, &["get", "/a/mine", "-"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.stdout, in_a);
    let out = run_as(&file, &["put", local.to_str().unwrap(), "/a/new"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // By inode, with a raw client: a file in /b is refused whatever the path.
    let confined = raw(c, c.identity_from(&stem));
    let b_data = attr_of(
        rt.block_on(
            raw(c, c.identity(shardline_rpc::Role::Client)).call(Body::Lookup(pb::Lookup {
                parent: rt
                    .block_on(client_with(c, rt, &c.data_dir().join("certs/client")).inodes().lookup(ROOT_INO, "b"))
                    .expect("lookup /b")
                    .ino,
                name: b"data".to_vec(),
            })),
        )
        .expect("lookup /b/data"),
    );
    let msg =
        denied_raw(rt.block_on(confined.call(Body::Getattr(pb::GetAttr { ino: b_data.ino }))), "getattr by inode");
    assert!(msg.contains("outside the subtree"), "{msg}");
    denied_raw(
        rt.block_on(confined.call(Body::GetChunks(pb::GetChunks { ino: b_data.ino, from_index: 0, limit: 10 }))),
        "chunk list by inode",
    );
    // Nothing changed in /b.
    assert_eq!(c.get_bytes("/b/data").expect("read /b/data"), in_b);
    let listing = c.ok(&["ls", "/b"]);
    assert!(listing.contains("data") && !listing.contains("new"), "{listing}");
}

/// A native client with the cluster's unmapped client certificate whose
/// requests claim `uid` (gid the same).
fn client_acting(c: &TestCluster, rt: &tokio::runtime::Runtime, uid: u32) -> shardline_client::Client {
    let text = std::fs::read_to_string(c.cluster_file()).expect("read cluster.toml");
    let v: toml::Value = toml::from_str(&text).expect("parse cluster.toml");
    let key = c.data_dir().join(v["key_file"].as_str().expect("key_file"));
    let mut cfg = shardline_client::ClientConfig::new(meta_addrs(c), key, c.identity(shardline_rpc::Role::Client));
    cfg.acting = Some(shardline_rpc::acting::caller(uid, uid, vec![]));
    rt.block_on(shardline_client::Client::connect(cfg)).expect("connect")
}

#[test]
fn an_unmapped_client_certificate_is_checked_as_the_uid_it_claims() {
    let mut c = TestCluster::start(134);
    // `shardline up` made the metadata servers' key a keyring with an id
    // (bound into every sealed log entry and snapshot).
    let meta_key = std::fs::read_to_string(c.data_dir().join("meta.key")).expect("read meta.key");
    assert!(meta_key.starts_with("shardline-kek v2\nid = meta-"), "meta.key is not a keyring with an id");
    drop(meta_key);
    let rt = runtime();
    // This process runs as root: unchecked as in POSIX. It gives /u to uid 1000.
    let root = client_with(&c, &rt, &c.data_dir().join("certs/client"));
    let u = rt.block_on(root.inodes().mkdir(ROOT_INO, "u", 0o755, 1000, 1000)).expect("mkdir /u");
    let (owner, other) = (client_acting(&c, &rt, 1000), client_acting(&c, &rt, 1001));

    let secret = content(200_000, 11);
    rt.block_on(owner.write_file("/u/private", &secret)).expect("uid 1000 writes in its directory");
    let private = rt.block_on(owner.inodes().lookup(u.ino, "private")).expect("lookup");
    assert_eq!(private.uid, 1000, "a new file belongs to the uid its creator acts as");
    let chmod = SetAttrRequest { mode: Some(0o600), ..Default::default() };
    rt.block_on(owner.inodes().setattr(private.ino, &chmod)).expect("the owner chmods");
    assert_eq!(rt.block_on(owner.read_file("/u/private")).expect("the owner reads"), secret);

    // Claiming uid 1001: no data, no wrapped key, no tokens, no change.
    let msg = denied_client(rt.block_on(other.read_file("/u/private")), "reading a 0600 file of uid 1000");
    assert!(msg.contains("permission denied") && msg.contains("uid 1001"), "{msg}");
    let mut other_raw = raw(&c, c.identity(shardline_rpc::Role::Client));
    other_raw.set_acting(shardline_rpc::acting::caller(1001, 1001, vec![]));
    let seen = attr_of(
        rt.block_on(other_raw.call(Body::Lookup(pb::Lookup { parent: u.ino, name: b"private".to_vec() })))
            .expect("lookup is allowed (x on /u)"),
    );
    assert!(seen.key.is_none(), "the wrapped key went to a uid that may not read the file");
    let seen = attr_of(rt.block_on(other_raw.call(Body::Getattr(pb::GetAttr { ino: private.ino }))).expect("getattr"));
    assert!(seen.key.is_none(), "getattr handed out the wrapped key");
    let get_chunks = Body::GetChunks(pb::GetChunks { ino: private.ino, from_index: 0, limit: 100 });
    denied_raw(rt.block_on(other_raw.call(get_chunks)), "the chunk list");
    let grant = |ops| {
        Body::GrantCaps(pb::GrantCaps { ino: private.ino, ops, chunks: vec![pb::ChunkRef { index: 0, version: 1 }] })
    };
    denied_raw(rt.block_on(other_raw.call(grant(cap_ops::GET))), "get capabilities");
    denied_raw(rt.block_on(other_raw.call(grant(cap_ops::PUT))), "put capabilities");
    let truncate = Body::SetAttr(pb::SetAttr { ino: private.ino, size: Some(0), ..Default::default() });
    denied_raw(rt.block_on(other_raw.call(truncate)), "truncate");
    let chmod_other = Body::SetAttr(pb::SetAttr { ino: private.ino, mode: Some(0o666), ..Default::default() });
    denied_raw(rt.block_on(other_raw.call(chmod_other)), "chmod of another's file");
    denied_client(rt.block_on(other.write_file("/u/private", b"overwritten")), "overwrite in another's directory");
    denied_client(rt.block_on(other.remove("/u/private")), "unlink in another's directory");

    let names: Vec<String> = rt
        .block_on(owner.list("/u"))
        .expect("list")
        .into_iter()
        .map(|e| String::from_utf8_lossy(&e.name).into_owned())
        .collect();
    assert_eq!(names, vec!["private".to_string()], "a refused request changed /u");
    let after = attr_of(rt.block_on(other_raw.call(Body::Getattr(pb::GetAttr { ino: private.ino }))).expect("getattr"));
    assert_eq!((after.uid, after.mode & 0o7777, after.size), (1000, 0o600, secret.len() as u64));
    assert_eq!(rt.block_on(owner.read_file("/u/private")).expect("the owner reads"), secret);

    // The owner still writes it; root (this process, the CLI) reads it.
    let newer = content(90_000, 12);
    rt.block_on(owner.write_file("/u/private", &newer)).expect("the owner rewrites its file");
    assert_eq!(rt.block_on(owner.read_file("/u/private")).expect("the owner reads"), newer);
    assert_eq!(rt.block_on(root.read_file("/u/private")).expect("root reads"), newer);
    drop((owner, other, other_raw, root));

    // The log and snapshots written in the bound format replay after a restart.
    c.restart();
    assert_eq!(c.get_bytes("/u/private").expect("read after a restart"), newer);
}
