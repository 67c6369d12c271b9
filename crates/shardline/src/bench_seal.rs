//! `shardline bench` row for the cipher suites: sealing and opening 4 MiB
//! chunks in chunk format v2 on one core, per suite, beside format v1's
//! whole-chunk open (what every read paid before segments); what a data
//! server's capability check costs per shard request; and the memcpy,
//! seal and RS 4+2 encode baselines of the summary.

use std::time::Instant;

use bytes::Bytes;
use shardline_crypto::{
    cap_ops, check_cap, issue_cap, now_ms, open_chunk, open_segments, seal_chunk, seal_chunk_padded, seal_segments,
    CapKey, CapTarget, Capability, ChunkAad, CipherSuite, Dek, SegmentLayout, SEAL_OVERHEAD,
};
use shardline_erasure::Codec;

const CHUNK: usize = 4 << 20;
const ROUNDS: usize = 32;

/// (report key, MB/s) for each suite's seal and open, and v1's open.
pub fn suites_mbps() -> Vec<(String, f64)> {
    let dek = Dek::generate();
    let plain: Vec<u8> = (0..CHUNK).map(|i| (i * 131) as u8).collect();
    let aad = ChunkAad { file_id: 1, chunk_index: 2, version: 3, key_id: "bench" };
    let layout = SegmentLayout::for_plaintext(CHUNK);
    let mbps = |t: Instant| (ROUNDS * CHUNK) as f64 / t.elapsed().as_secs_f64() / 1e6;
    let mut out = Vec::new();
    for (name, suite) in [("aes", CipherSuite::Aes256Gcm), ("xchacha", CipherSuite::XChaCha20Poly1305)] {
        let mut sealed = Vec::with_capacity(layout.sealed_len());
        let t = Instant::now();
        for _ in 0..ROUNDS {
            sealed.clear();
            seal_segments(&dek, suite, &aad, &layout, &plain, &mut sealed);
        }
        out.push((format!("seal_v2_{name}_mbps_1core"), mbps(t)));
        let t = Instant::now();
        for _ in 0..ROUNDS {
            let opened = open_segments(&dek, suite, &aad, &layout, 0..layout.segment_count(), &[&sealed]);
            std::hint::black_box(opened.expect("a chunk sealed just now opens"));
        }
        out.push((format!("open_v2_{name}_mbps_1core"), mbps(t)));
    }
    let sealed = seal_chunk(&dek, &aad, &plain);
    let t = Instant::now();
    for _ in 0..ROUNDS {
        std::hint::black_box(open_chunk(&dek, &aad, &sealed).expect("a chunk sealed just now opens"));
    }
    out.push(("open_v1_mbps_1core".into(), mbps(t)));
    out
}

/// Microseconds one capability check takes on one core (what a data server
/// adds to every shard request: decode aside, an HMAC-SHA256 verification).
pub fn cap_check_us() -> f64 {
    const CHECKS: u32 = 100_000;
    let key = CapKey::from_bytes("bench", rand::random());
    let cap = Capability { file_id: 1, chunk_index: 2, version: 3, ops: cap_ops::GET, epoch: 4, expires_ms: u64::MAX };
    let token = issue_cap(&key, &cap);
    let target = CapTarget { file_id: 1, chunk_index: 2, version: 3 };
    let t = Instant::now();
    for _ in 0..CHECKS {
        let ok = check_cap(&key, Some(std::hint::black_box(&token)), target, cap_ops::GET, now_ms());
        std::hint::black_box(ok.expect("a token made just now checks"));
    }
    t.elapsed().as_secs_f64() * 1e6 / f64::from(CHECKS)
}

/// memcpy of 256 MiB, 4 times (page faults of the fresh buffers included).
pub fn memcpy_mbps() -> f64 {
    let src = vec![7u8; 256 << 20];
    let mut dst = vec![0u8; 256 << 20];
    let start = Instant::now();
    for _ in 0..4 {
        dst.copy_from_slice(&src);
        std::hint::black_box(&mut dst);
    }
    (4 * src.len()) as f64 / start.elapsed().as_secs_f64() / 1e6
}

/// Single-core seal and RS 4+2 encode throughput over 4 MiB chunks.
pub fn codec_mbps() -> (f64, f64) {
    let dek = Dek::generate();
    let codec = Codec::new(4, 2).expect("4+2 is valid");
    let chunk = vec![3u8; 4 << 20];
    let cell = codec.cell_size(chunk.len() + SEAL_OVERHEAD);
    let rounds = 32;
    let start = Instant::now();
    let mut sealed = Vec::new();
    for i in 0..rounds {
        let aad = ChunkAad { file_id: 1, chunk_index: i, version: 1, key_id: "bench" };
        sealed = seal_chunk_padded(&dek, &aad, &chunk, cell * 4);
    }
    let seal = (rounds as usize * chunk.len()) as f64 / start.elapsed().as_secs_f64() / 1e6;
    let sealed = Bytes::from(sealed);
    let start = Instant::now();
    for _ in 0..rounds {
        std::hint::black_box(codec.encode(sealed.clone()).expect("encode"));
    }
    let encode = (rounds as usize * sealed.len()) as f64 / start.elapsed().as_secs_f64() / 1e6;
    (seal, encode)
}
