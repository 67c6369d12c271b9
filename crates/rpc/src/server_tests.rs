//! The accept loop's limits, over real sockets and real TLS.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;
use crate::pki::TestPki;
use crate::principal::Role;
use crate::{read_frame, write_frame, Pool};

/// Answers with the caller's role name, so tests see who the server saw.
struct WhoAmI;
impl Handler for WhoAmI {
    async fn handle(&self, peer: &Principal, _request: Frame) -> Frame {
        Frame::new(Bytes::from(peer.role.as_str()), Bytes::new())
    }
}

struct Server {
    addr: String,
    pki: TestPki,
}

async fn start(limits: ServerLimits) -> Server {
    let pki = TestPki::new().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(serve_with(listener, Arc::new(WhoAmI), pki.identity(Role::Meta, &[1]).unwrap(), limits));
    Server { addr, pki }
}

impl Server {
    async fn dial(&self, role: Role) -> crate::tls::ClientStream {
        let tcp = tokio::net::TcpStream::connect(&self.addr).await.unwrap();
        self.pki.identity(role, &[]).unwrap().connect(tcp, Role::Meta).await.unwrap()
    }
}

/// Reads until the server closes the connection (Ok: it did).
async fn closed_by_server(s: &mut crate::tls::ClientStream) -> bool {
    let mut sink = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut sink)).await.is_ok()
}

#[tokio::test]
async fn the_handler_sees_the_role_in_the_peers_certificate() {
    let server = start(ServerLimits::default()).await;
    for role in [Role::Client, Role::Admin] {
        let pool = Pool::new(
            server.pki.identity(role, &[]).unwrap(),
            Role::Meta,
            Duration::from_secs(2),
            Duration::from_secs(5),
        );
        let resp = pool.call(&server.addr, &Frame::default()).await.unwrap();
        assert_eq!(&resp.header[..], role.as_str().as_bytes());
    }
    // A pool for data servers refuses a metadata server's certificate.
    let pool = Pool::new(
        server.pki.identity(Role::Client, &[]).unwrap(),
        Role::Data,
        Duration::from_secs(2),
        Duration::from_secs(5),
    );
    let err = pool.call(&server.addr, &Frame::default()).await.unwrap_err();
    assert!(matches!(err, crate::RpcError::Refused { .. }), "{err}");
}

#[tokio::test]
async fn connections_past_the_limit_are_closed_and_the_rest_served() {
    let server = start(ServerLimits { max_connections: 1, ..ServerLimits::default() }).await;
    let mut first = server.dial(Role::Client).await;
    write_frame(&mut first, &Frame::default()).await.unwrap();
    assert!(read_frame(&mut first).await.unwrap().is_some(), "the first connection is served");
    // The second is closed at once (its handshake, or its first read, fails).
    let tcp = tokio::net::TcpStream::connect(&server.addr).await.unwrap();
    let second = server.pki.identity(Role::Client, &[]).unwrap().connect(tcp, Role::Meta).await;
    if let Ok(mut s) = second {
        let _ = write_frame(&mut s, &Frame::default()).await;
        assert!(!matches!(read_frame(&mut s).await, Ok(Some(_))), "a connection past the limit was served");
    }
    // When the first goes, its place is free again.
    drop(first);
    let pool = Pool::new(
        server.pki.identity(Role::Client, &[]).unwrap(),
        Role::Meta,
        Duration::from_secs(2),
        Duration::from_secs(5),
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while pool.call(&server.addr, &Frame::default()).await.is_err() {
        assert!(tokio::time::Instant::now() < deadline, "the freed place was never reused");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn idle_and_stalled_connections_are_closed() {
    let limits = ServerLimits {
        idle_timeout: Duration::from_millis(200),
        frame_timeout: Duration::from_millis(200),
        ..ServerLimits::default()
    };
    let server = start(limits).await;
    let mut idle = server.dial(Role::Client).await;
    assert!(closed_by_server(&mut idle).await, "an idle connection stayed open");
    // A frame that starts and never finishes.
    let mut stalled = server.dial(Role::Client).await;
    stalled.write_all(b"SHL\x01\x10\x00\x00\x00\x00\x00\x00\x00abc").await.unwrap();
    stalled.flush().await.unwrap();
    assert!(closed_by_server(&mut stalled).await, "a stalled frame kept its connection");
}

#[tokio::test]
async fn oversized_and_garbage_frames_end_only_their_connection() {
    let server = start(ServerLimits { large_budget: 1 << 20, ..ServerLimits::default() }).await;
    let mut huge = server.dial(Role::Client).await;
    huge.write_all(b"SHL\x01\xff\xff\xff\xff\x00\x00\x00\x00").await.unwrap();
    huge.flush().await.unwrap();
    assert!(closed_by_server(&mut huge).await);
    let mut junk = server.dial(Role::Client).await;
    junk.write_all(&[0x42; 100]).await.unwrap();
    junk.flush().await.unwrap();
    assert!(closed_by_server(&mut junk).await);
    // A large frame bigger than the whole budget is still served (it takes all of it).
    let pool = Pool::new(
        server.pki.identity(Role::Client, &[]).unwrap(),
        Role::Meta,
        Duration::from_secs(2),
        Duration::from_secs(10),
    );
    let resp = pool.call(&server.addr, &Frame::new(Bytes::new(), vec![1u8; 3 << 20])).await.unwrap();
    assert_eq!(&resp.header[..], b"client");
}

#[tokio::test]
async fn integrity_only_is_used_only_when_both_sides_opt_in() {
    let pki = TestPki::new().unwrap();
    let issued = pki
        .ca
        .issue(&crate::pki::CertSpec {
            role: Role::Data,
            ids: vec![1],
            name: "d".into(),
            valid_for: Duration::from_secs(600),
            user: Default::default(),
        })
        .unwrap();
    let cert = Some((issued.cert_pem.as_str(), issued.key_pem.as_str()));
    for accept in [true, false] {
        let tls = crate::Tls::from_pem_with(cert, pki.ca.cert_pem(), None, accept).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        tokio::spawn(serve(listener, Arc::new(WhoAmI), tls));
        let client = pki.identity(Role::Client, &[]).unwrap();
        for offer in [true, false] {
            let tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
            let mut s = client.connect_with(tcp, Role::Data, offer).await.unwrap();
            assert_eq!(s.is_integrity_only(), accept && offer, "accept {accept}, offer {offer}");
            // Requests work either way, large ones included.
            for payload in [vec![], vec![9u8; 3 << 20]] {
                write_frame(&mut s, &Frame::new(Bytes::new(), payload)).await.unwrap();
                let resp = read_frame(&mut s).await.unwrap().unwrap();
                assert_eq!(&resp.header[..], b"client");
            }
        }
        let pool = Pool::new(client, Role::Data, Duration::from_secs(2), Duration::from_secs(5)).integrity_only(true);
        assert_eq!(&pool.call(&addr, &Frame::default()).await.unwrap().header[..], b"client");
    }
}

/// Not a check: prints what TLS and the integrity-only transport move over
/// loopback in this process (`cargo test -p shardline-rpc --release --
/// --ignored --nocapture throughput`). `shardline bench` has the same rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn throughput_of_tls_and_integrity_only() {
    let pki = TestPki::new().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(serve(listener, Arc::new(WhoAmI), pki.identity_with(Role::Data, &[1], true).unwrap()));
    let client = pki.identity(Role::Client, &[]).unwrap();
    for round in 0..3 {
        for offer in [false, true] {
            let tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
            let mut s = client.connect_with(tcp, Role::Data, offer).await.unwrap();
            let frame = Frame::new(Bytes::new(), vec![7u8; 1 << 20]);
            let start = std::time::Instant::now();
            for _ in 0..256 {
                write_frame(&mut s, &frame).await.unwrap();
                read_frame(&mut s).await.unwrap().unwrap();
            }
            let mbps = 256.0 * (1 << 20) as f64 / start.elapsed().as_secs_f64() / 1e6;
            println!("round {round}: {} {mbps:.0} MB/s", if offer { "integrity-only" } else { "TLS" });
        }
    }
}
