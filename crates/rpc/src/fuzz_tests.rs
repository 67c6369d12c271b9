//! Fuzz targets over raw bytes from the network (`shardline-fuzz` driver;
//! `tools/fuzz` runs them for a fixed time): the frame decoder, a server
//! connection's request loop, and the integrity-only record layer.

use std::sync::Arc;

use bytes::Bytes;
use shardline_fuzz::{run, Target};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufStream};
use tokio::sync::Semaphore;

use crate::frame::{read_frame, write_frame, Frame, MAX_HEADER_LEN, MAX_PAYLOAD_LEN};
use crate::integrity::{Keys, MacStream};
use crate::principal::{Principal, Role, UserMap};
use crate::server::{connection, Handler, ServerLimits};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime")
}

/// Encoded frames, one after another.
fn frames(list: &[(&[u8], &[u8])]) -> Vec<u8> {
    let rt = rt();
    let mut out = Vec::new();
    for (h, p) in list {
        let f = Frame::new(Bytes::copy_from_slice(h), Bytes::copy_from_slice(p));
        rt.block_on(write_frame(&mut out, &f)).expect("encode a seed frame");
    }
    out
}

fn frame_seeds() -> Vec<Vec<u8>> {
    vec![
        frames(&[(b"", b"")]),
        frames(&[(b"\x08\x01\x10\x02", b"payload")]),
        frames(&[(b"hdr", &[7u8; 300]), (b"", b"x")]),
        frames(&[(&[1u8; 70_000], b"")]),
    ]
}

/// Frames decoded from any bytes stay within the limits and encode back to
/// exactly the bytes they were read from.
#[test]
fn fuzz_frame_decoder() {
    let rt = rt();
    let t = Target { name: "rpc_frame_decoder", default_inputs: 4000 };
    run(t, frame_seeds(), |input| {
        rt.block_on(async {
            let mut rest = input;
            let mut decoded = 0;
            loop {
                let before = rest;
                match read_frame(&mut rest).await {
                    Ok(Some(f)) => {
                        assert!(f.header.len() <= MAX_HEADER_LEN && f.payload.len() <= MAX_PAYLOAD_LEN);
                        let mut again = Vec::new();
                        write_frame(&mut again, &f).await.expect("a decoded frame encodes");
                        assert_eq!(&before[..before.len() - rest.len()], &again[..], "re-encoding differs");
                        decoded += 1;
                    }
                    Ok(None) => return decoded > 0,
                    Err(_) => return false,
                }
            }
        })
    });
}

/// Answers every request with its own header (and no payload).
struct Echo;
impl Handler for Echo {
    async fn handle(&self, _peer: &Principal, request: Frame) -> Frame {
        Frame::new(request.header, Bytes::new())
    }
}

/// A connection's request loop (preamble, large-frame budget, body,
/// handler, response) ends cleanly or with an error on any bytes, and
/// answers every whole frame before a bad one.
#[test]
fn fuzz_server_connection() {
    let rt = rt();
    let peer = Principal { role: Role::Client, ids: vec![], name: "fuzz".into(), user: UserMap::default() };
    // Small limits, so the large-frame budget is reached too.
    let limits = ServerLimits { large_frame: 64, large_budget: 64 << 10, ..ServerLimits::default() };
    let t = Target { name: "rpc_server_connection", default_inputs: 3000 };
    run(t, frame_seeds(), |input| {
        rt.block_on(async {
            let budget = Arc::new(Semaphore::new(limits.large_budget / 1024));
            let mut out = Vec::new();
            let result = {
                let mut conn = BufStream::new(tokio::io::join(input, &mut out));
                let r = connection(&mut conn, &peer, &Echo, &limits, &budget).await;
                let _ = conn.flush().await;
                r
            };
            // Every answer is a whole frame.
            let mut answers = &out[..];
            while let Some(f) = read_frame(&mut answers).await.expect("answers are whole frames") {
                assert!(f.payload.is_empty());
            }
            // The budget is whole again once the connection ended.
            assert_eq!(budget.available_permits(), limits.large_budget / 1024, "large-frame budget leaked");
            result.is_ok() && !out.is_empty()
        })
    });
}

/// The integrity-only record reader refuses anything but authentic records,
/// in order, and never panics.
#[test]
fn fuzz_integrity_records() {
    let rt = rt();
    let keys = Keys { client_to_server: [3; 32], server_to_client: [4; 32] };
    let sealed = |msgs: &[&[u8]]| -> Vec<u8> {
        rt.block_on(async {
            let (a, mut raw) = tokio::io::duplex(1 << 20);
            let mut c = MacStream::new(a, &keys, true).expect("sender");
            for m in msgs {
                c.write_all(m).await.expect("write");
                c.flush().await.expect("flush");
            }
            drop(c);
            let mut wire = Vec::new();
            raw.read_to_end(&mut wire).await.expect("read the records");
            wire
        })
    };
    let seeds = vec![sealed(&[b"one record"]), sealed(&[b"two", b"records"]), sealed(&[&[9u8; 5000]])];
    let t = Target { name: "rpc_integrity_records", default_inputs: 3000 };
    run(t, seeds, |input| {
        rt.block_on(async {
            let mut s = MacStream::new(input, &keys, false).expect("receiver");
            let mut out = Vec::new();
            s.read_to_end(&mut out).await.is_ok() && !out.is_empty()
        })
    });
}
