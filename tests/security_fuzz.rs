//! Black-box: hostile bytes on every port of a real cluster of separate
//! processes (127.0.0.140), and every server still alive and serving
//! afterwards (issue 12 item 6). Metadata and data ports get raw junk, TLS
//! records that stop short or announce too much, and frames without TLS
//! (no certificate); then, inside TLS with the client certificate, a few
//! hundred mutated request frames each (every whole frame must get an
//! answer that decodes) and, with the operator's certificate, garbage,
//! truncated frames and oversized lengths. Metrics ports get malformed and
//! oversized HTTP. While idle connections are held open on every port, the
//! cluster must still write and read a file; at the end every process is
//! alive, `admin status` sees every server, and files written before and
//! after read back whole.

mod harness;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use harness::{content, TestCluster};
use shardline_fuzz::{mutate, Rng};
use shardline_proto::v1 as pb;
use shardline_proto::v1::meta_request::Body;
use shardline_rpc::{read_frame, write_frame, Frame, Role, Tls};
use shardline_types::ROOT_INO;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Mutated request frames sent to each metadata and data server.
const MUTATED_PER_SERVER: usize = 200;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime")
}

/// Listen addresses of every server of `kind` in cluster.toml.
fn addrs(c: &TestCluster, kind: &str) -> Vec<String> {
    c.servers(kind).into_iter().map(|(_, a)| a).collect()
}

/// Every server's metrics address (`<server dir>/metrics.addr`).
fn metrics_addrs(c: &TestCluster) -> Vec<String> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(c.data_dir()).expect("cluster folder").flatten() {
        if let Ok(a) = std::fs::read_to_string(entry.path().join("metrics.addr")) {
            out.push(a.trim().to_string());
        }
    }
    assert!(out.len() >= 9, "metrics addresses: {out:?}");
    out
}

fn preamble(header_len: u32, payload_len: u32) -> Vec<u8> {
    let mut p = b"SHL\x01".to_vec();
    p.extend_from_slice(&header_len.to_le_bytes());
    p.extend_from_slice(&payload_len.to_le_bytes());
    p
}

/// Send `bytes` on a fresh connection, half-close, and wait for the server
/// to close its side (a server that kept it open would hang here).
async fn send_and_expect_close<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    mut s: S,
    bytes: &[u8],
    what: &str,
) {
    let _ = s.write_all(bytes).await;
    let _ = s.flush().await;
    let _ = s.shutdown().await;
    let mut sink = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(30), s.read_to_end(&mut sink)).await;
    assert!(read.is_ok(), "{what}: the server kept the connection open");
}

/// Requests a client may send, against names no other request uses.
fn meta_seeds() -> Vec<Vec<u8>> {
    let r = |body| {
        prost::Message::encode_to_vec(&pb::MetaRequest {
            client_id: 77,
            request_id: 1,
            body: Some(body),
            ..Default::default()
        })
    };
    let key = Some(pb::WrappedKey {
        format: Default::default(),
        kek_id: "k".into(),
        kek_version: 1,
        suite: 1,
        wrapped: vec![9; 72],
    });
    vec![
        r(Body::Status(pb::GetStatus {})),
        r(Body::Getattr(pb::GetAttr { ino: ROOT_INO })),
        r(Body::Readdir(pb::ReadDir { ino: ROOT_INO, after: vec![], limit: 3, with_attrs: true })),
        r(Body::Lookup(pb::Lookup { parent: ROOT_INO, name: b"zz-fuzz".to_vec() })),
        r(Body::Statfs(pb::Statfs {})),
        r(Body::GetPlacement(pb::GetPlacement {})),
        r(Body::GetChunks(pb::GetChunks { ino: ROOT_INO, from_index: 0, limit: 2 })),
        r(Body::Mkdir(pb::Mkdir { parent: ROOT_INO, name: b"zz-dir".to_vec(), mode: 0o755, uid: 0, gid: 0 })),
        r(Body::Create(pb::Create {
            manifest: None,
            parent: ROOT_INO,
            name: b"zz-file".to_vec(),
            mode: 0o644,
            uid: 0,
            gid: 0,
            key,
            exclusive: false,
            first_version: 0,
        })),
        r(Body::GetXattr(pb::GetXattr { ino: ROOT_INO, name: b"user.zz".to_vec() })),
        r(Body::GrantCaps(pb::GrantCaps {
            ino: ROOT_INO,
            ops: 1,
            chunks: vec![pb::ChunkRef { index: 0, version: 1 }],
        })),
    ]
}

fn data_seeds() -> Vec<Vec<u8>> {
    let id = Some(pb::ShardId { file_id: 9_999_999, chunk_index: 1, version: 3, shard_index: 0 });
    let r = |body| prost::Message::encode_to_vec(&pb::DataRequest { body: Some(body) });
    vec![
        r(pb::data_request::Body::Get(pb::GetShard { id, epoch: 1, offset: 0, length: 0, cap: None })),
        r(pb::data_request::Body::Get(pb::GetShard { id, epoch: 1, offset: 10, length: 100, cap: None })),
        r(pb::data_request::Body::Put(pb::PutShard {
            id,
            crc32c: 0,
            epoch: 1,
            cap: None,
            data_shards: 4,
            parity_shards: 2,
        })),
        r(pb::data_request::Body::Delete(pb::DeleteShard { id, cap: None })),
        r(pb::data_request::Body::Scrub(pb::Scrub { cap: None })),
    ]
}

/// `n` mutated request frames to the server at `addr` as `tls`; every whole
/// frame must be answered with a response that decodes (a connection the
/// server ends is dialed again).
async fn mutated_requests(tls: &Arc<Tls>, role: Role, addr: &str, seeds: &[Vec<u8>], rng: &mut Rng, n: usize) {
    let mut conn = None;
    let mut accepted = 0;
    for i in 0..n {
        let a = &seeds[rng.below(seeds.len())];
        let b = &seeds[rng.below(seeds.len())];
        let header = mutate(rng, a, b);
        let len = if rng.one_in(4) { rng.below(3000) } else { 0 };
        let payload = rng.bytes(len);
        let frame = Frame::new(header, payload);
        if conn.is_none() {
            let tcp = TcpStream::connect(addr).await.unwrap_or_else(|e| panic!("{addr}: connect: {e}"));
            conn = Some(tls.connect(tcp, role).await.unwrap_or_else(|e| panic!("{addr}: handshake: {e}")));
        }
        let Some(s) = conn.as_mut() else { continue };
        write_frame(s, &frame).await.unwrap_or_else(|e| panic!("{addr}: send request {i}: {e}"));
        let answer = tokio::time::timeout(Duration::from_secs(30), read_frame(s)).await;
        let answer = match answer {
            Ok(Ok(Some(f))) => f,
            other => panic!("{addr}: mutated request {i} got no answer ({other:?}); header {:02x?}", frame.header),
        };
        let error = match role {
            Role::Meta => answer.decode::<pb::MetaResponse>().map(|r| r.error.is_some()),
            _ => answer.decode::<pb::DataResponse>().map(|r| r.error.is_some()),
        };
        let error = error.unwrap_or_else(|e| panic!("{addr}: the answer to mutated request {i} does not decode: {e}"));
        accepted += usize::from(!error);
    }
    eprintln!("{addr}: {n} mutated requests answered, {accepted} of them without an error");
}

/// Every server process of the cluster is running.
fn assert_all_alive(c: &TestCluster, when: &str) {
    let mut n = 0;
    for entry in std::fs::read_dir(c.data_dir()).expect("cluster folder").flatten() {
        if let Ok(pid) = std::fs::read_to_string(entry.path().join("pid")) {
            n += 1;
            let alive = Path::new(&format!("/proc/{}", pid.trim())).exists();
            assert!(alive, "{} died ({when})", entry.file_name().to_string_lossy());
        }
    }
    assert!(n >= 9, "{n} server pid files");
}

/// GET /metrics answers 200 with metrics.
fn scrape(addr: &str) -> String {
    let mut s = std::net::TcpStream::connect(addr).unwrap_or_else(|e| panic!("{addr}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
    std::io::Write::write_all(&mut s, b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").expect("send");
    let mut out = String::new();
    std::io::Read::read_to_string(&mut s, &mut out).unwrap_or_else(|e| panic!("{addr}: scrape: {e}"));
    out
}

#[test]
fn hostile_bytes_on_every_port_kill_no_server() {
    let c = TestCluster::start(140);
    let before = content(400_000, 11);
    c.ok(&["mkdir", "/keep"]);
    c.put_bytes("/keep/before", &before);
    let client = c.identity(Role::Client);
    let admin = c.identity(Role::Admin);
    let servers: Vec<(Role, String)> = addrs(&c, "meta")
        .into_iter()
        .map(|a| (Role::Meta, a))
        .chain(addrs(&c, "data").into_iter().map(|a| (Role::Data, a)))
        .collect();
    let metrics = metrics_addrs(&c);
    let junk = content(8192, 12);
    let mut undecodable = preamble(64, 0);
    undecodable.extend_from_slice(&junk[..64]);
    let raw: Vec<(&str, Vec<u8>)> = vec![
        ("raw junk", junk.clone()),
        ("a TLS record announcing 64 KiB, then nothing", vec![0x16, 0x03, 0x01, 0xff, 0xff, 0x01]),
        ("a truncated TLS hello", vec![0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc]),
        ("a frame without TLS", undecodable.clone()),
        ("an oversized frame without TLS", preamble(u32::MAX, u32::MAX)),
    ];
    let inside_tls: Vec<(&str, Vec<u8>)> = vec![
        ("junk", junk.clone()),
        ("oversized header length", preamble(u32::MAX, 0)),
        ("oversized payload length", preamble(0, u32::MAX)),
        ("lengths at the limits, then nothing", preamble(16 << 20, 80 << 20)),
        ("truncated frame", [preamble(100, 1 << 20), vec![7; 10]].concat()),
        ("truncated preamble", b"SHL\x01\x05".to_vec()),
        ("a whole frame, then a truncated one", [undecodable.clone(), preamble(10, 0)].concat()),
    ];
    let http: Vec<(&str, Vec<u8>)> = vec![
        ("binary junk", junk.clone()),
        ("a truncated request line", b"GET /metr".to_vec()),
        (
            "a header line of 200 KB",
            [b"GET /metrics HTTP/1.1\r\nX: ".to_vec(), vec![b'a'; 200_000], b"\r\n\r\n".to_vec()].concat(),
        ),
        (
            "a body announced huge",
            b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999\r\n\r\nab".to_vec(),
        ),
        ("a broken chunked body", b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n".to_vec()),
        ("a bad method and version", b"\x00\x01 / HTTP/9.9\r\n\r\n".to_vec()),
    ];
    let rt = runtime();
    rt.block_on(async {
        for (role, addr) in &servers {
            for (case, bytes) in &raw {
                let tcp = TcpStream::connect(addr).await.unwrap_or_else(|e| panic!("{addr}: connect: {e}"));
                send_and_expect_close(tcp, bytes, &format!("{addr}: {case}")).await;
            }
            for (case, bytes) in &inside_tls {
                let tcp = TcpStream::connect(addr).await.unwrap_or_else(|e| panic!("{addr}: connect: {e}"));
                let s = admin.connect(tcp, *role).await.expect("handshake");
                send_and_expect_close(s, bytes, &format!("{addr}: admin: {case}")).await;
            }
        }
        for addr in &metrics {
            for (case, bytes) in &http {
                let tcp = TcpStream::connect(addr).await.unwrap_or_else(|e| panic!("{addr}: connect: {e}"));
                send_and_expect_close(tcp, bytes, &format!("metrics {addr}: {case}")).await;
            }
        }
        let mut rng = Rng::new(0x5ec0_f022);
        let (meta, data) = (meta_seeds(), data_seeds());
        for (role, addr) in &servers {
            let seeds = if *role == Role::Meta { &meta } else { &data };
            mutated_requests(&client, *role, addr, seeds, &mut rng, MUTATED_PER_SERVER).await;
        }
    });
    assert_all_alive(&c, "after the hostile bytes");

    // Idle connections held open on every port while the cluster works.
    let held: Vec<TcpStream> = rt.block_on(async {
        let mut held = Vec::new();
        // Metrics endpoints serve 32 connections at once: a quarter held.
        let ports = servers.iter().map(|(_, a)| (a, 64)).chain(metrics.iter().map(|a| (a, 8)));
        for (addr, n) in ports {
            for _ in 0..n {
                held.push(TcpStream::connect(addr).await.unwrap_or_else(|e| panic!("{addr}: connect: {e}")));
            }
        }
        held
    });
    let during = content(300_000, 13);
    c.put_bytes("/keep/during", &during);
    assert_eq!(c.get_bytes("/keep/during").expect("read while connections are held"), during);
    for addr in &metrics {
        let page = scrape(addr);
        assert!(page.starts_with("HTTP/1.1 200") && page.contains("shardline_"), "{addr}: {page:.200}");
    }
    drop(held);

    assert_all_alive(&c, "at the end");
    let st = c.status();
    let meta_up = st["meta"].as_array().expect("meta").iter().filter(|m| m["role"] != "unreachable").count();
    assert_eq!(meta_up, 3, "{st:#}");
    assert!(st["data"].as_array().expect("data").iter().all(|d| d["state"] == "up"), "{st:#}");
    assert_eq!(c.get_bytes("/keep/before").expect("read the file written before"), before);
    let after = content(250_000, 14);
    c.put_bytes("/keep/after", &after);
    assert_eq!(c.get_bytes("/keep/after").expect("read the file written after"), after);
}
