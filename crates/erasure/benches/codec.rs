//! Reed–Solomon 4+2 on one 4 MiB chunk, on one core: `encode` (the write
//! path: the padded sealed chunk into 4 data + 2 parity shards), and with
//! data shards 0 and 1 missing, `decode` (a degraded whole-chunk read),
//! `reconstruct_data` (the data cells of a degraded range read, here the
//! whole cells) and `rebuild` (repair: both missing shards recomputed).
//! The chunk is sealed in chunk format v2 (4 MiB plus 32 bytes per 64 KiB
//! segment), padded to four equal cells as the client does; throughput is
//! the padded chunk's bytes per second. Outputs are freed inside the timed
//! loop: `decode`'s 4 MiB result and cell copies can make glibc hand heap
//! back to the kernel and fault it in again on every call, which its figure
//! then includes (docs/performance.md).
//!
//! `cargo bench -p shardline-erasure --bench codec` (results:
//! docs/performance.md, "Micro-benchmarks (criterion)").

use std::hint::black_box;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use shardline_erasure::Codec;

/// A 4 MiB chunk sealed in format v2: 64 segments of 64 KiB, 32 bytes each
/// added (salt and tag). Spelled out: this crate does not depend on crypto.
const SEALED_LEN: usize = (4 << 20) + 64 * 32;

fn codec(c: &mut Criterion) {
    let codec = Codec::new(4, 2).expect("4+2 is valid");
    let cell = codec.cell_size(SEALED_LEN);
    let padded = Bytes::from((0..4 * cell).map(|i| (i * 131 % 251) as u8).collect::<Vec<u8>>());
    let shards = codec.encode(padded.clone()).expect("encode");
    // Data shards 0 and 1 lost: the worst case for 4+2, both parities needed.
    let degraded: Vec<Option<Bytes>> = shards.iter().enumerate().map(|(i, s)| (i >= 2).then(|| s.clone())).collect();

    let mut group = c.benchmark_group("rs_4+2_chunk_4MiB");
    group.throughput(Throughput::Bytes(padded.len() as u64));
    group.bench_function("encode", |b| b.iter(|| codec.encode(black_box(padded.clone())).expect("encode")));
    group.bench_function("decode/2_data_missing", |b| {
        b.iter(|| codec.decode(black_box(degraded.clone()), SEALED_LEN).expect("decode"))
    });
    group.bench_function("reconstruct_data/2_data_missing", |b| {
        b.iter(|| codec.reconstruct_data(black_box(degraded.clone())).expect("reconstruct"))
    });
    group.bench_function("rebuild/2_data_missing", |b| {
        b.iter_batched_ref(
            || degraded.iter().map(|s| s.as_ref().map(|s| s.to_vec())).collect::<Vec<_>>(),
            |work| codec.rebuild(work).expect("rebuild"),
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

criterion_group!(benches, codec);
criterion_main!(benches);
