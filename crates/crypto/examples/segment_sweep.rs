//! Seal and open throughput of 4 MiB chunks per suite and segment size, on
//! one core: the measurement behind `SEGMENT_SIZE`.
//!
//! `cargo run --release -p shardline-crypto --example segment_sweep`

use std::time::Instant;

use shardline_crypto::{
    open_chunk, open_segments, seal_chunk, seal_segments, ChunkAad, CipherSuite, Dek, SegmentLayout,
};

const CHUNK: usize = 4 << 20;
const ROUNDS: usize = 24;

fn main() {
    let dek = Dek::generate();
    let pt: Vec<u8> = (0..CHUNK).map(|i| (i * 7) as u8).collect();
    let aad = ChunkAad { file_id: 1, chunk_index: 2, version: 3, key_id: "bench" };
    let mbps = |bytes: usize, t: Instant| bytes as f64 / t.elapsed().as_secs_f64() / 1e6;

    let sealed = seal_chunk(&dek, &aad, &pt);
    let t = Instant::now();
    for _ in 0..ROUNDS {
        std::hint::black_box(seal_chunk(&dek, &aad, &pt));
    }
    let s = mbps(ROUNDS * CHUNK, t);
    let t = Instant::now();
    for _ in 0..ROUNDS {
        std::hint::black_box(open_chunk(&dek, &aad, &sealed).expect("open"));
    }
    println!("v1 XChaCha20-Poly1305 whole chunk: seal {s:.0} MB/s, open {:.0} MB/s", mbps(ROUNDS * CHUNK, t));

    for suite in [CipherSuite::XChaCha20Poly1305, CipherSuite::Aes256Gcm] {
        for seg in [4 << 10, 16 << 10, 32 << 10, 64 << 10, 128 << 10, 256 << 10, 1 << 20] {
            let layout = SegmentLayout::with_segment_size(CHUNK, seg);
            let mut out = Vec::with_capacity(layout.sealed_len());
            let t = Instant::now();
            for _ in 0..ROUNDS {
                out.clear();
                seal_segments(&dek, suite, &aad, &layout, &pt, &mut out);
            }
            let s = mbps(ROUNDS * CHUNK, t);
            let n = layout.segment_count();
            let t = Instant::now();
            for _ in 0..ROUNDS {
                std::hint::black_box(open_segments(&dek, suite, &aad, &layout, 0..n, &[&out]).expect("open"));
            }
            let o = mbps(ROUNDS * CHUNK, t);
            // One 128 KiB-sample's worth: open the two segments it needs.
            let want = (128usize << 10).div_ceil(seg) + 1;
            let segs = 1..(1 + want).min(n);
            let bytes = layout.plain_range(segs.clone()).len();
            let t = Instant::now();
            let reps = 2000;
            for _ in 0..reps {
                let r = layout.sealed_range(segs.clone());
                std::hint::black_box(
                    open_segments(&dek, suite, &aad, &layout, segs.clone(), &[&out[r]]).expect("open"),
                );
            }
            let per = t.elapsed().as_secs_f64() / reps as f64 * 1e6;
            println!(
                "v2 {:<18} segment {:>4} KiB: seal {s:>6.0} MB/s, open {o:>6.0} MB/s; random 128 KiB sample opens {} KiB in {per:.1} us",
                suite.name(),
                seg >> 10,
                bytes >> 10
            );
        }
    }
}
