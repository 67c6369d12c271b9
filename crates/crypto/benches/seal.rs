//! Sealing and opening one 4 MiB chunk on one core: chunk format v2 (64 KiB
//! segments, `seal_segments` / `open_segments`) for each cipher suite,
//! AES-256-GCM and XChaCha20-Poly1305, beside format v1's whole-chunk open
//! (`open_chunk`, XChaCha20-Poly1305 over the whole chunk). The same calls as
//! `shardline bench`'s cipher-suite rows (`crates/shardline/src/bench_seal.rs`),
//! with Criterion's statistics; throughput is plaintext bytes per second.
//!
//! `cargo bench -p shardline-crypto --bench seal` (results:
//! docs/performance.md, "Micro-benchmarks (criterion)").

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use shardline_crypto::{
    open_chunk, open_segments, seal_chunk, seal_segments, ChunkAad, CipherSuite, Dek, SegmentLayout,
};

const CHUNK: usize = 4 << 20;

fn suites(c: &mut Criterion) {
    let dek = Dek::generate();
    let plain: Vec<u8> = (0..CHUNK).map(|i| (i * 131) as u8).collect();
    let aad = ChunkAad { file_id: 1, chunk_index: 2, version: 3, key_id: "bench" };
    let layout = SegmentLayout::for_plaintext(CHUNK);

    let mut group = c.benchmark_group("chunk_4MiB");
    group.throughput(Throughput::Bytes(CHUNK as u64));
    for (name, suite) in [("aes256gcm", CipherSuite::Aes256Gcm), ("xchacha20poly1305", CipherSuite::XChaCha20Poly1305)]
    {
        // Sealed here too, so that `open_v2` also runs when a filter skips `seal_v2`.
        let mut sealed = Vec::with_capacity(layout.sealed_len());
        seal_segments(&dek, suite, &aad, &layout, &plain, &mut sealed);
        group.bench_function(format!("seal_v2/{name}"), |b| {
            b.iter(|| {
                sealed.clear();
                seal_segments(&dek, suite, &aad, &layout, black_box(&plain), &mut sealed);
            })
        });
        group.bench_function(format!("open_v2/{name}"), |b| {
            b.iter(|| {
                let opened =
                    open_segments(&dek, suite, &aad, &layout, 0..layout.segment_count(), &[black_box(&sealed)]);
                opened.expect("a chunk sealed just now opens")
            })
        });
    }
    let sealed_v1 = seal_chunk(&dek, &aad, &plain);
    group.bench_function("open_v1/xchacha20poly1305", |b| {
        b.iter(|| open_chunk(&dek, &aad, black_box(&sealed_v1)).expect("a chunk sealed just now opens"))
    });
    group.finish();
}

criterion_group!(benches, suites);
criterion_main!(benches);
