//! [`run_with_listener`] against a fake metadata service.

use std::sync::Mutex;

use bytes::Bytes;
use shardline_proto::v1::{self, meta_request, meta_response, MetaRequest, MetaResponse};
use shardline_rpc::{code_to_wire, Frame, Handler};
use shardline_types::ErrorCode;

use super::*;

/// Records registrations and heartbeats; forgets the server once, by
/// answering its second heartbeat `NOT_FOUND`.
#[derive(Default)]
struct FakeMeta {
    seen: Mutex<Vec<&'static str>>,
}

impl Handler for FakeMeta {
    async fn handle(&self, request: Frame) -> Frame {
        let req: MetaRequest = match request.decode() {
            Ok(r) => r,
            Err(_) => return Frame::default(),
        };
        let mut seen = self.seen.lock().unwrap();
        let resp = match req.body {
            Some(meta_request::Body::Register(r)) => {
                assert_eq!((r.id, r.addr.as_str(), r.capacity_bytes), (7, "127.0.0.7:7100", 1 << 30));
                seen.push("register");
                MetaResponse {
                    body: Some(meta_response::Body::Registered(v1::Registered { epoch: 3 })),
                    ..Default::default()
                }
            }
            Some(meta_request::Body::Heartbeat(h)) => {
                assert_eq!((h.id, h.capacity_bytes, h.shard_count), (7, 1 << 30, 0));
                seen.push("heartbeat");
                let error = (seen.iter().filter(|s| **s == "heartbeat").count() == 2).then(|| v1::Error {
                    code: code_to_wire(ErrorCode::NotFound) as i32,
                    message: "unknown data server".into(),
                    retryable: false,
                    leader_hint: String::new(),
                });
                MetaResponse { error, body: Some(meta_response::Body::Empty(v1::Empty {})), ..Default::default() }
            }
            _ => panic!("unexpected request"),
        };
        Frame::from_message(&resp, Bytes::new())
    }
}

#[tokio::test]
async fn registers_heartbeats_and_re_registers_when_forgotten() {
    let meta_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let meta_addr = meta_listener.local_addr().unwrap().to_string();
    let fake = Arc::new(FakeMeta::default());
    tokio::spawn(shardline_rpc::serve(meta_listener, fake.clone()));

    let dir = tempfile::tempdir().unwrap();
    let cfg = DataConfig {
        id: 7,
        dir: dir.path().join("data"),
        listen: String::new(),
        advertise: "127.0.0.7:7100".into(),
        meta_addrs: vec![meta_addr],
        heartbeat_interval: Duration::from_millis(20),
        capacity_bytes: Some(1 << 30),
        store: StoreKind::Auto,
        insecure_no_capabilities: true,
        ..DataConfig::default()
    };
    assert!(cfg.validate().is_err(), "empty listen address accepted");
    let cfg = DataConfig { listen: "127.0.0.1:0".into(), ..cfg };
    let listener = TcpListener::bind(&cfg.listen).await.unwrap();
    tokio::spawn(run_with_listener(cfg, listener));

    let want = ["register", "heartbeat", "heartbeat", "register", "heartbeat"];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let seen = fake.seen.lock().unwrap().clone();
        if seen.len() >= want.len() {
            assert_eq!(&seen[..want.len()], &want);
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "saw only {seen:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(dir.path().join("data/shards").is_dir());
}

#[test]
fn a_config_needs_a_capability_key_or_the_insecure_flag() {
    let err = DataConfig::default().validate().expect_err("no key accepted");
    assert!(err.to_string().contains("--cap-key-file"), "{err}");
    let keyed = DataConfig { cap_key_file: Some("cap.key".into()), ..DataConfig::default() };
    keyed.validate().unwrap();
    DataConfig { insecure_no_capabilities: true, ..DataConfig::default() }.validate().unwrap();
    let both = DataConfig { insecure_no_capabilities: true, ..keyed.clone() };
    assert!(both.validate().is_err());
    let below_floor = DataConfig { gc_grace: Duration::from_secs(1), ..keyed };
    assert!(below_floor.validate().is_err(), "background grace below the floor accepted");
}
