//! Framing on one core, without sockets: encoding a request frame (the
//! prost header message encoded, then `write_frame`: preamble, header and
//! payload written into a reused in-memory buffer) and decoding it
//! (`read_frame` from the encoded bytes into fresh buffers, then the header
//! message decoded), for a shard put carrying a 1 MiB payload and for a
//! tiny request (a shard get: header only, no payload). Both carry a
//! capability, as requests to data servers that check them do. Throughput
//! is the encoded frame's bytes per second.
//!
//! The frame functions are async over tokio's I/O traits; an in-memory
//! `Vec<u8>` / `&[u8]` never waits, so each call is polled once to
//! completion with a no-op waker (no runtime, no scheduling in the figures).
//!
//! `cargo bench -p shardline-rpc --bench frame` (results:
//! docs/performance.md, "Micro-benchmarks (criterion)").

use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use shardline_proto::v1 as pb;
use shardline_proto::v1::data_request::Body;
use shardline_rpc::{read_frame, write_frame, Frame};

/// Run a future that never waits (in-memory I/O) to completion.
fn ready<F: Future>(f: F) -> F::Output {
    match pin!(f).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(out) => out,
        Poll::Pending => panic!("in-memory frame I/O does not wait"),
    }
}

fn cap() -> pb::ShardCap {
    pb::ShardCap {
        format: 1,
        file_id: 1 << 40,
        chunk_index: 17,
        version: 3,
        ops: 2,
        epoch: 9,
        expires_ms: 1_800_000_000_000,
        key_id: "cap-2026-12".into(),
        mac: vec![0xa5; 32],
    }
}

fn id() -> pb::ShardId {
    pb::ShardId { file_id: 1 << 40, chunk_index: 17, version: 3, shard_index: 2 }
}

fn framing(c: &mut Criterion) {
    let payload = Bytes::from((0..1usize << 20).map(|i| (i * 131 % 251) as u8).collect::<Vec<u8>>());
    let put = pb::DataRequest {
        body: Some(Body::Put(pb::PutShard {
            id: Some(id()),
            crc32c: crc32c::crc32c(&payload),
            epoch: 9,
            data_shards: 4,
            parity_shards: 2,
            cap: Some(cap()),
        })),
    };
    let get = pb::DataRequest {
        body: Some(Body::Get(pb::GetShard { id: Some(id()), epoch: 9, offset: 0, length: 0, cap: Some(cap()) })),
    };

    for (name, req, payload) in [("put_1MiB", put, payload), ("get_request", get, Bytes::new())] {
        let mut wire = Vec::new();
        ready(write_frame(&mut wire, &Frame::from_message(&req, payload.clone()))).expect("encode");
        let mut group = c.benchmark_group(format!("frame/{name}"));
        group.throughput(Throughput::Bytes(wire.len() as u64));
        let mut out = Vec::with_capacity(wire.len());
        group.bench_function("encode", |b| {
            b.iter(|| {
                out.clear();
                let frame = Frame::from_message(black_box(&req), payload.clone());
                ready(write_frame(&mut out, &frame)).expect("encode");
            })
        });
        group.bench_function("decode", |b| {
            b.iter(|| {
                let mut r: &[u8] = black_box(&wire);
                let frame = ready(read_frame(&mut r)).expect("decode").expect("one frame");
                let msg: pb::DataRequest = frame.decode().expect("header");
                (msg, frame.payload)
            })
        });
        group.finish();
    }
}

criterion_group!(benches, framing);
criterion_main!(benches);
