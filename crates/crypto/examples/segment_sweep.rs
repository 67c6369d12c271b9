//! Seal and open throughput of 4 MiB chunks per suite and segment size, on
//! one core, and the cost of opening one random 128 KiB sample: the
//! measurement behind `SEGMENT_SIZE`. Each figure is the best of several
//! trials (the machine is shared; the best trial is the least disturbed).
//!
//! `cargo run --release -p shardline-crypto --example segment_sweep`

use std::time::Instant;

use shardline_crypto::{
    open_chunk, open_segments, seal_chunk, seal_segments, ChunkAad, CipherSuite, Dek, SegmentLayout,
};

const CHUNK: usize = 4 << 20;
const TRIALS: usize = 7;
const ROUNDS: usize = 4;

/// Best seconds per call of `f` over the trials.
fn best(mut f: impl FnMut(), calls: usize) -> f64 {
    (0..TRIALS)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..calls {
                f();
            }
            t.elapsed().as_secs_f64() / calls as f64
        })
        .fold(f64::INFINITY, f64::min)
}

fn main() {
    let dek = Dek::generate();
    let pt: Vec<u8> = (0..CHUNK).map(|i| (i * 7) as u8).collect();
    let aad = ChunkAad { file_id: 1, chunk_index: 2, version: 3, key_id: "bench" };
    let mbps = |secs: f64| CHUNK as f64 / secs / 1e6;

    let sealed = seal_chunk(&dek, &aad, &pt);
    let s = best(|| drop(std::hint::black_box(seal_chunk(&dek, &aad, &pt))), ROUNDS);
    let o = best(|| drop(std::hint::black_box(open_chunk(&dek, &aad, &sealed).expect("open"))), ROUNDS);
    println!("v1 XChaCha20-Poly1305 whole chunk: seal {:.0} MB/s, open {:.0} MB/s", mbps(s), mbps(o));

    for suite in [CipherSuite::XChaCha20Poly1305, CipherSuite::Aes256Gcm] {
        for seg in [4 << 10, 16 << 10, 32 << 10, 64 << 10, 128 << 10, 256 << 10, 1 << 20] {
            let layout = SegmentLayout::with_segment_size(CHUNK, seg);
            let mut out = Vec::with_capacity(layout.sealed_len());
            let s = best(
                || {
                    out.clear();
                    seal_segments(&dek, suite, &aad, &layout, &pt, &mut out);
                },
                ROUNDS,
            );
            let n = layout.segment_count();
            let o = best(
                || drop(std::hint::black_box(open_segments(&dek, suite, &aad, &layout, 0..n, &[&out]).expect("open"))),
                ROUNDS,
            );
            // A 128 KiB sample at a 4 KiB-aligned random offset needs
            // 128K/seg + 1 segments on average (2 when seg > 128 KiB...):
            // open exactly what a typical one needs.
            let want = if seg >= 128 << 10 { 2 } else { (128 << 10) / seg + 1 };
            let segs = 1..(1 + want).min(n);
            let r = layout.sealed_range(segs.clone());
            let bytes = layout.plain_range(segs.clone()).len();
            let per = best(
                || {
                    let got = open_segments(&dek, suite, &aad, &layout, segs.clone(), &[&out[r.clone()]]);
                    drop(std::hint::black_box(got.expect("open")));
                },
                200,
            );
            println!(
                "v2 {:<18} segment {:>4} KiB: seal {:>6.0} MB/s, open {:>6.0} MB/s; a 128 KiB sample fetches {:>4} KiB, opens in {:>6.1} us",
                suite.name(),
                seg >> 10,
                mbps(s),
                mbps(o),
                bytes >> 10,
                per * 1e6
            );
        }
    }
}
