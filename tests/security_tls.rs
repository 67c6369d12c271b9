//! Black-box: mutual TLS and authorization by certificate role on a real
//! cluster of separate processes (127.0.0.100-104). Connections without a
//! certificate, with a self-signed one or with a revoked one are refused
//! with a clear error; a client certificate cannot send Raft messages,
//! register as a data server or run operator commands, and nothing changes
//! when it tries; garbage, truncated frames and oversized lengths on every
//! port kill no server.

mod harness;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use harness::{content, TestCluster};
use protobuf::Message as _;
use shardline_crypto::cap_ops;
use shardline_proto::v1 as pb;
use shardline_proto::v1::meta_request::Body;
use shardline_rpc::{Frame, MetaCallError, MetaClient, Pool, Role, RpcError, Tls};
use shardline_types::{ErrorCode, ROOT_INO};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime")
}

fn ca_pem(c: &TestCluster) -> String {
    std::fs::read_to_string(c.data_dir().join("certs/ca.pem")).expect("read the CA certificate")
}

/// One request to a server of `role` at `addr` as `tls`: Ok with any
/// answer (an error answer included), Err with the transport's refusal.
async fn probe(tls: Arc<Tls>, role: Role, addr: &str) -> Result<(), RpcError> {
    let pool = Pool::new(tls, role, Duration::from_secs(5), Duration::from_secs(10));
    let frame = match role {
        Role::Meta => Frame::from_message(
            &pb::MetaRequest {
                client_id: 1,
                request_id: 1,
                caller: None,
                cache: false,
                body: Some(Body::Status(pb::GetStatus {})),
            },
            Bytes::new(),
        ),
        _ => {
            let id = pb::ShardId { file_id: 1, chunk_index: 0, version: 1, shard_index: 0 };
            let get = pb::GetShard { id: Some(id), epoch: 0, offset: 0, length: 0, cap: None };
            Frame::from_message(&pb::DataRequest { body: Some(pb::data_request::Body::Get(get)) }, Bytes::new())
        }
    };
    pool.call(addr, &frame).await.map(|_| ())
}

/// A refusal whose message names `what` (the TLS alert the server sent).
fn assert_refused(r: Result<(), RpcError>, what: &str, case: &str) {
    match r {
        Err(e @ RpcError::Refused { .. }) => assert!(e.to_string().contains(what), "{case}: {e}"),
        other => panic!("{case}: expected a refusal naming {what}, got {other:?}"),
    }
}

/// Write a copy of cluster.toml whose `role` certificate is `stem`.pem/.key.
fn cluster_file_with(c: &TestCluster, role: &str, stem: &Path) -> std::path::PathBuf {
    let text = std::fs::read_to_string(c.cluster_file()).expect("read cluster.toml");
    let certs = c.data_dir().join("certs");
    let text = text
        .replace(
            &certs.join(format!("{role}.pem")).display().to_string(),
            &stem.with_extension("pem").display().to_string(),
        )
        .replace(
            &certs.join(format!("{role}.key")).display().to_string(),
            &stem.with_extension("key").display().to_string(),
        );
    let path = c.dir.path().join(format!("cluster-{role}-{}.toml", stem.file_name().unwrap().to_string_lossy()));
    std::fs::write(&path, text).expect("write the cluster file copy");
    path
}

fn run_with(cluster_file: &Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(harness::BIN)
        .arg("--cluster")
        .arg(cluster_file)
        .args(args)
        .env("SHARDLINE_LOG", "warn")
        .output()
        .expect("run shardline")
}

#[test]
fn connections_without_a_valid_certificate_are_refused() {
    let c = TestCluster::start(100);
    let data = content(100_000, 1);
    c.put_bytes("/kept", &data);
    let (meta, store) = (c.servers("meta")[0].1.clone(), c.servers("data")[0].1.clone());
    let ca = ca_pem(&c);
    let certs = c.data_dir().join("certs");
    let rt = runtime();

    // No certificate at all.
    let anonymous = Tls::from_pem(None, &ca, None).unwrap();
    for (role, addr) in [(Role::Meta, &meta), (Role::Data, &store)] {
        assert_refused(rt.block_on(probe(anonymous.clone(), role, addr)), "CertificateRequired", "no certificate");
    }

    // A self-signed certificate claiming the client role.
    let own = shardline_rpc::pki::self_signed(Role::Client).unwrap();
    let self_signed = Tls::from_pem(Some((&own.cert_pem, &own.key_pem)), &ca, None).unwrap();
    for (role, addr) in [(Role::Meta, &meta), (Role::Data, &store)] {
        assert_refused(rt.block_on(probe(self_signed.clone(), role, addr)), "UnknownCA", "self-signed");
    }

    // A certificate of the cluster CA: accepted, then revoked while the
    // servers run (they re-read the revocation list) and refused.
    let bob = certs.join("bob");
    c.ok(&["admin", "certs", "issue", "--role", "client", "--out", bob.to_str().unwrap()]);
    let bob_tls = c.identity_from(&bob);
    for (role, addr) in [(Role::Meta, &meta), (Role::Data, &store)] {
        rt.block_on(probe(bob_tls.clone(), role, addr)).expect("a valid certificate is accepted");
    }
    let bob_file = cluster_file_with(&c, "client", &bob);
    assert!(run_with(&bob_file, &["ls", "/"]).status.success());
    c.ok(&["admin", "certs", "revoke", "--cert", bob.with_extension("pem").to_str().unwrap()]);
    for (role, addr) in [(Role::Meta, &meta), (Role::Data, &store)] {
        assert_refused(rt.block_on(probe(bob_tls.clone(), role, addr)), "CertificateRevoked", "revoked");
    }
    // What a person sees.
    let out = run_with(&bob_file, &["get", "/kept", "-"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && out.stdout.is_empty(), "a revoked client read a file");
    assert!(err.contains("refused this connection") && err.contains("CertificateRevoked"), "{err}");

    // Nothing changed for the holders of valid certificates.
    assert_eq!(c.get_bytes("/kept").unwrap(), data);
    rt.block_on(probe(c.identity(Role::Client), Role::Meta, &meta)).expect("the cluster's client still connects");
}

/// The error a refused metadata request came back with.
fn denied(r: Result<pb::MetaResponse, MetaCallError>, case: &str) -> String {
    match r {
        Err(MetaCallError::Service { code: ErrorCode::PermissionDenied, message }) => message,
        other => panic!("{case}: expected PERMISSION_DENIED, got {other:?}"),
    }
}

#[test]
fn a_client_certificate_cannot_speak_for_servers_or_operators() {
    let c = TestCluster::start(101);
    let data = content(200_000, 2);
    c.put_bytes("/kept", &data);
    let metas = c.servers("meta");
    let stores = c.servers("data");
    let before = c.status();
    let leader = c.meta_leader(Duration::from_secs(30));
    let (follower, follower_addr) = metas.iter().find(|(id, _)| *id != leader).cloned().expect("a follower");
    let bystander = metas.iter().find(|(id, _)| *id != leader && *id != follower).expect("a third server").0;
    let term = before["meta"].as_array().unwrap().iter().map(|m| m["term"].as_u64().unwrap()).max().unwrap();
    let rt = runtime();
    let meta =
        |tls: Arc<Tls>| MetaClient::new(metas.iter().map(|(_, a)| a.clone()).collect(), Duration::from_secs(5), tls);
    let client = meta(c.identity(Role::Client));

    // A forged heartbeat from the leader with a far higher term: accepted,
    // it would make the follower adopt that term.
    let mut forged = raft::prelude::Message::default();
    forged.set_msg_type(raft::prelude::MessageType::MsgHeartbeat);
    (forged.from, forged.to, forged.term) = (leader, follower, term + 100);
    let batch = || {
        Body::Raft(pb::RaftBatch {
            from: leader,
            messages: vec![forged.write_to_bytes().expect("encode")],
            snapshot_part: None,
        })
    };
    let msg = denied(rt.block_on(client.call_one(&follower_addr, batch())), "raft from a client");
    assert!(msg.contains("only from metadata servers") && msg.contains("client"), "{msg}");
    let as_data = meta(c.server_identity("data", 1));
    let msg = denied(rt.block_on(as_data.call_one(&follower_addr, batch())), "raft from a data server");
    assert!(msg.contains("only from metadata servers"), "{msg}");
    // A metadata server's certificate, but not the sender's: `from` must match it.
    let as_other_meta = meta(c.server_identity("meta", bystander));
    let msg = denied(rt.block_on(as_other_meta.call_one(&follower_addr, batch())), "raft as another server");
    assert!(msg.contains(&format!("raft messages from {leader}")), "{msg}");

    // Registering and heartbeating as a data server.
    let register = |id| {
        Body::Register(pb::RegisterDataServer {
            id,
            addr: "127.0.0.101:9".into(),
            capacity_bytes: 1 << 40,
            rack: String::new(),
        })
    };
    let msg = denied(rt.block_on(client.call(register(99))), "registration from a client");
    assert!(msg.contains("only from data servers"), "{msg}");
    let msg =
        denied(rt.block_on(client.call(Body::Heartbeat(pb::Heartbeat { id: 1, ..Default::default() }))), "heartbeat");
    assert!(msg.contains("only from data servers"), "{msg}");
    let msg = denied(rt.block_on(as_data.call(register(2))), "data-1 registering as data-2");
    assert!(msg.contains("for data server 2") && msg.contains("[1]"), "{msg}");

    // Operator commands: membership, server states, scrub, GC.
    let remove = Body::MetaMembership(pb::MetaMembershipChange { id: bystander, addr: String::new(), remove: true });
    let msg = denied(rt.block_on(client.call(remove)), "membership change");
    assert!(msg.contains("admin role"), "{msg}");
    let down = Body::SetServerState(pb::SetServerState { down: vec![1, 2, 3], up: vec![] });
    assert!(denied(rt.block_on(client.call(down)), "server states").contains("admin role"));
    let pool = Pool::new(c.identity(Role::Client), Role::Data, Duration::from_secs(5), Duration::from_secs(30));
    for body in [
        pb::data_request::Body::Gc(pb::CollectGarbage { grace_ms: 0, cap: None }),
        pb::data_request::Body::Scrub(pb::Scrub { cap: None }),
    ] {
        let frame = Frame::from_message(&pb::DataRequest { body: Some(body) }, Bytes::new());
        let resp: pb::DataResponse = rt.block_on(pool.call(&stores[0].1, &frame)).expect("an answer").decode().unwrap();
        let e = resp.error.expect("refused");
        assert_eq!(e.code, pb::ErrorCode::PermissionDenied as i32, "{}", e.message);
        assert!(e.message.contains("admin role"), "{}", e.message);
    }
    // Every other operator request of the metadata service (the table in
    // meta/src/authz.rs): cluster-wide scrub/GC tokens, client-lease
    // expiry, layout policies, scrub/GC bits in a shard grant.
    let lookup = Body::Lookup(pb::Lookup { parent: ROOT_INO, name: b"kept".to_vec() });
    let Some(pb::meta_response::Body::Attr(attr)) = rt.block_on(client.call(lookup)).expect("lookup").body else {
        panic!("lookup answer")
    };
    let ino = attr.ino;
    for (body, what) in [
        (Body::GrantAdminCap(pb::GrantAdminCap { ops: cap_ops::GC }), "GC capability"),
        (Body::GrantAdminCap(pb::GrantAdminCap { ops: cap_ops::SCRUB }), "scrub capability"),
        (Body::ExpireClients(pb::ExpireClients { clients: vec![1] }), "lease expiry"),
        (Body::SetLayout(pb::SetLayout { ino: 1, layout: None }), "layout policy"),
        (Body::GrantCaps(pb::GrantCaps { ino, ops: cap_ops::GC, chunks: vec![] }), "GC bits in a shard grant"),
        (Body::DrainDataServer(pb::DrainDataServer { id: 1, cancel: false }), "a drain"),
        (Body::RemoveDataServer(pb::RemoveDataServer { id: 1 }), "a data server's removal"),
        (Body::Rebalance(pb::Rebalance { dry_run: false, max_bandwidth: 0 }), "a rebalance"),
        (Body::SetRepair(pb::SetRepair { paused: true }), "stopping repair"),
        (Body::SetScrub(pb::SetScrub { paused: true }), "stopping scrub"),
    ] {
        let msg = denied(rt.block_on(client.call(body)), what);
        assert!(msg.contains("needs the admin role") && msg.contains("client"), "{what}: {msg}");
    }
    // Shard grants are for clients and operators, not for servers.
    let grant = Body::GrantCaps(pb::GrantCaps { ino, ops: cap_ops::GET, chunks: vec![] });
    let msg = denied(rt.block_on(as_data.call(grant)), "a shard grant to a data server");
    assert!(msg.contains("client or admin"), "{msg}");
    // The same through the CLI, with the client's certificate in the admin's place.
    c.ok(&["mkdir", "/policy"]);
    let layout_before = c.ok(&["admin", "layout", "get", "/policy"]);
    let as_client = cluster_file_with(&c, "admin", &c.data_dir().join("certs/client"));
    for args in [
        &["admin", "gc", "--grace-ms", "0"][..],
        &["admin", "scrub"],
        &["admin", "meta", "remove", "--id", &bystander.to_string()],
        &["admin", "layout", "set", "/policy", "--ec", "2+1"],
        &["layout", "/policy", "--chunk-size", "32768"],
        &["admin", "drain", "1", "--no-wait"],
        &["admin", "rebalance"],
        &["admin", "repair", "stop"],
    ] {
        let out = run_with(&as_client, args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains("admin role"), "{args:?}: {err}");
    }
    assert_eq!(c.ok(&["admin", "layout", "get", "/policy"]), layout_before, "a refused layout change changed it");

    // Nothing changed: same metadata servers and term, same data servers, all up, the file whole.
    let after = c.status();
    let ids = |v: &serde_json::Value, k: &str| {
        let mut ids: Vec<u64> = v[k].as_array().unwrap().iter().map(|s| s["id"].as_u64().unwrap()).collect();
        ids.sort_unstable();
        ids
    };
    assert_eq!(ids(&after, "meta"), vec![1, 2, 3]);
    assert_eq!(ids(&after, "data"), ids(&before, "data"));
    assert!(after["data"].as_array().unwrap().iter().all(|d| d["state"] == "up"), "{after:#}");
    assert_eq!(
        after["placement_groups"]["repair_paused"].as_bool(),
        Some(false),
        "a refused repair stop paused repair"
    );
    for m in after["meta"].as_array().unwrap() {
        assert_eq!(m["term"].as_u64(), Some(term), "a forged raft message moved the term: {after:#}");
    }
    assert_eq!(c.get_bytes("/kept").unwrap(), data);

    squashed_and_mapped_client_certificates(&c, &rt);
}

/// A native client (this process) with the client certificate `stem`.
fn client_with(c: &TestCluster, rt: &tokio::runtime::Runtime, stem: &Path) -> shardline_client::Client {
    let text = std::fs::read_to_string(c.cluster_file()).expect("read cluster.toml");
    let v: toml::Value = toml::from_str(&text).expect("parse cluster.toml");
    let addrs = v["meta"].as_array().expect("meta").iter().map(|m| m["addr"].as_str().unwrap().to_string()).collect();
    let key = c.data_dir().join(v["key_file"].as_str().expect("key_file"));
    let cfg = shardline_client::ClientConfig::new(addrs, key, c.identity_from(stem));
    rt.block_on(shardline_client::Client::connect(cfg)).expect("connect")
}

/// Issue 12 item 3 (in part): a root-squashed client certificate is
/// checked as nobody (no create in root's 0755 directory); creating a
/// setuid file as root where nobody may, it gets a file owned by nobody
/// without the setuid bit, and may not chown; a certificate bound to uid 1000 creates as 1000
/// whatever it claims. The metadata service decides, not the client.
fn squashed_and_mapped_client_certificates(c: &TestCluster, rt: &tokio::runtime::Runtime) {
    use shardline_client::inode_api::{NewFile, SetAttrRequest};
    let certs = c.data_dir().join("certs");
    let issue = |stem: &str, extra: &[&str]| {
        let out = certs.join(stem);
        let mut args = vec!["issue", "--dir", certs.to_str().unwrap(), "--role", "client", "--out"];
        args.push(out.to_str().unwrap());
        args.extend(extra);
        let out_cmd = std::process::Command::new(harness::BIN).args(["admin", "certs"]).args(&args).output().unwrap();
        assert!(out_cmd.status.success(), "certs issue: {}", String::from_utf8_lossy(&out_cmd.stderr));
        out
    };
    // The unrestricted client certificate of `shardline up` (this process
    // acts as root) makes a directory anyone may write: the root is root's,
    // 0755, and the metadata service checks every client certificate's
    // permissions, a squashed root's as nobody.
    let root = ROOT_INO;
    let plain = client_with(c, rt, &certs.join("client"));
    let open = rt.block_on(plain.inodes().mkdir(root, "open", 0o777, 0, 0)).expect("mkdir");
    let squashed = client_with(c, rt, &issue("squashed", &["--root-squash"]));
    let err = rt
        .block_on(squashed.inodes().create(NewFile { mode: 0o4755, ..NewFile::new(root, "suid") }))
        .expect_err("a squashed root created a file in root's 0755 directory");
    assert!(err.to_string().contains("acting as uid 65534"), "{err}");
    let attr = rt
        .block_on(squashed.inodes().create(NewFile { mode: 0o4755, ..NewFile::new(open.ino, "suid") }))
        .expect("a squashed root may create a file where nobody may");
    assert_eq!((attr.uid, attr.gid), (65_534, 65_534), "root squashed to nobody");
    assert_eq!(attr.mode & 0o7777, 0o755, "the setuid bit is stripped: {:o}", attr.mode);
    let chmod = SetAttrRequest { mode: Some(0o6755), ..Default::default() };
    let after = rt.block_on(squashed.inodes().setattr(attr.ino, &chmod)).expect("chmod");
    assert_eq!(after.mode & 0o7777, 0o755, "chmod u+s stripped too: {:o}", after.mode);
    let chown = SetAttrRequest { uid: Some(0), ..Default::default() };
    let err = rt.block_on(squashed.inodes().setattr(attr.ino, &chown)).expect_err("a squashed root may not chown");
    assert_eq!(err.code(), ErrorCode::PermissionDenied, "{err}");
    assert!(err.to_string().contains("may not set a file's owner"), "{err}");
    let seen = rt.block_on(squashed.inodes().getattr(attr.ino)).expect("getattr");
    assert_eq!((seen.uid, seen.mode & 0o7777), (65_534, 0o755), "nothing changed");

    // A certificate mapped to uid 1000 creates as 1000 whatever it claims;
    // the unmapped one, acting as root, keeps the ids it asks for.
    let alice = client_with(c, rt, &issue("alice", &["--uid", "1000", "--gid", "100"]));
    let attr = rt
        .block_on(alice.inodes().create(NewFile { mode: 0o4755, uid: 0, gid: 0, ..NewFile::new(open.ino, "alice") }))
        .expect("create");
    assert_eq!((attr.uid, attr.gid), (1000, 100), "the certificate's ids, not the request's");
    let attr = rt.block_on(plain.inodes().create(NewFile { uid: 7, gid: 8, ..NewFile::new(root, "plain") })).unwrap();
    assert_eq!((attr.uid, attr.gid), (7, 8));
}

/// Bytes that are not a frame, sent inside TLS by a valid client, or to
/// the raw port; each must end only its own connection.
#[test]
fn garbage_truncated_frames_and_oversized_lengths_kill_no_server() {
    let c = TestCluster::start(102);
    let data = content(300_000, 3);
    c.put_bytes("/before", &data);
    let client = c.identity(Role::Client);
    let rt = runtime();
    let all: Vec<(Role, String)> = c
        .servers("meta")
        .into_iter()
        .map(|(_, a)| (Role::Meta, a))
        .chain(c.servers("data").into_iter().map(|(_, a)| (Role::Data, a)))
        .collect();
    let preamble = |header_len: u32, payload_len: u32| {
        let mut p = b"SHL\x01".to_vec();
        p.extend_from_slice(&header_len.to_le_bytes());
        p.extend_from_slice(&payload_len.to_le_bytes());
        p
    };
    let junk = content(4096, 4);
    let mut inside_tls: Vec<(&str, Vec<u8>)> = vec![
        ("bad magic", junk.clone()),
        ("oversized header length", preamble(u32::MAX, 0)),
        ("oversized payload length", preamble(0, u32::MAX)),
        ("truncated frame", [preamble(100, 80 << 20), vec![7; 10]].concat()),
        ("truncated preamble", b"SHL".to_vec()),
    ];
    let mut undecodable = preamble(64, 0);
    undecodable.extend_from_slice(&junk[..64]);
    inside_tls.push(("undecodable header", undecodable.clone()));
    let raw: Vec<(&str, Vec<u8>)> = vec![
        ("raw junk", junk.clone()),
        ("truncated TLS record", vec![0x16, 0x03, 0x01, 0x02, 0x00, 0x01]),
        ("a frame without TLS", undecodable),
        ("nothing", vec![]),
    ];
    rt.block_on(async {
        for (role, addr) in &all {
            for (case, bytes) in &raw {
                let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
                let _ = s.write_all(bytes).await;
                let _ = s.shutdown().await;
                let mut sink = Vec::new();
                let read = tokio::time::timeout(Duration::from_secs(30), s.read_to_end(&mut sink)).await;
                assert!(read.is_ok(), "{addr}: {case}: the server kept the connection open");
            }
            for (case, bytes) in &inside_tls {
                let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
                let mut s = client.connect(tcp, *role).await.expect("handshake");
                s.write_all(bytes).await.expect("send");
                let _ = s.flush().await;
                if *case == "undecodable header" {
                    // A whole frame that is not a request: an error answer, and the connection stays usable.
                    let reply = shardline_rpc::read_frame(&mut s).await.expect("an answer").expect("a frame");
                    let code = match role {
                        Role::Meta => reply.decode::<pb::MetaResponse>().unwrap().error.map(|e| e.code),
                        _ => reply.decode::<pb::DataResponse>().unwrap().error.map(|e| e.code),
                    };
                    assert_eq!(code, Some(pb::ErrorCode::InvalidArgument as i32), "{addr}: {case}");
                    continue;
                }
                let _ = s.shutdown().await;
                let mut sink = Vec::new();
                let read = tokio::time::timeout(Duration::from_secs(30), s.read_to_end(&mut sink)).await;
                assert!(read.is_ok(), "{addr}: {case}: the server kept the connection open");
            }
            // The same server still serves a valid request.
            probe(client.clone(), *role, addr).await.unwrap_or_else(|e| panic!("{addr} stopped serving: {e}"));
        }
    });
    // Every server process is alive, every server answers, data flows.
    for entry in std::fs::read_dir(c.data_dir()).unwrap().flatten() {
        if let Ok(pid) = std::fs::read_to_string(entry.path().join("pid")) {
            let alive = Path::new(&format!("/proc/{}", pid.trim())).exists();
            assert!(alive, "{} died", entry.file_name().to_string_lossy());
        }
    }
    let st = c.status();
    assert_eq!(st["meta"].as_array().unwrap().iter().filter(|m| m["role"] != "unreachable").count(), 3, "{st:#}");
    assert!(st["data"].as_array().unwrap().iter().all(|d| d["state"] == "up"), "{st:#}");
    assert_eq!(c.get_bytes("/before").unwrap(), data);
    let more = content(200_000, 5);
    c.put_bytes("/after", &more);
    assert_eq!(c.get_bytes("/after").unwrap(), more);
}

/// The opt-in integrity-only transport: data servers started with it give
/// clients that offer it authenticated records instead of TLS after the
/// handshake; metadata servers never do; files read back whole.
#[test]
fn integrity_only_data_connections_are_opt_in_and_carry_files_whole() {
    let c = TestCluster::start_with(103, &["--data-integrity-only"]);
    let text = std::fs::read_to_string(c.cluster_file()).expect("read cluster.toml");
    assert!(text.contains("data_integrity_only = true"), "{text}");
    let data = content(3 * harness::CHUNK + 77, 6);
    c.put_bytes("/f", &data);
    assert_eq!(c.get_bytes("/f").unwrap(), data);
    let client = c.identity(Role::Client);
    let rt = runtime();
    rt.block_on(async {
        let (_, store) = &c.servers("data")[0];
        let (_, meta) = &c.servers("meta")[0];
        for (addr, role, offer, expect) in
            [(store, Role::Data, true, true), (store, Role::Data, false, false), (meta, Role::Meta, true, false)]
        {
            let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
            let s = client.connect_with(tcp, role, offer).await.expect("handshake");
            assert_eq!(s.is_integrity_only(), expect, "{role} server, offered: {offer}");
        }
        // Without a valid certificate there is no integrity-only either.
        let anonymous = Tls::from_pem(None, &ca_pem(&c), None).unwrap();
        let pool =
            Pool::new(anonymous, Role::Data, Duration::from_secs(5), Duration::from_secs(10)).integrity_only(true);
        let frame = Frame::from_message(
            &pb::DataRequest { body: Some(pb::data_request::Body::Scrub(pb::Scrub { cap: None })) },
            Bytes::new(),
        );
        let err = pool.call(store, &frame).await.expect_err("no certificate");
        assert!(err.to_string().contains("CertificateRequired"), "{err}");
    });
}
