//! The shard store: `put` and `get` of one shard of 16 KiB and of 1 MiB on
//! the default backend, the segment store (`SegmentStore`, default
//! configuration: page cache, group commit), with one caller. A put returns
//! once its record is durable, so each one includes a group commit with its
//! `fdatasync` (one caller: a commit per put); a get reads and verifies one
//! shard written just before the measurement, which the page cache still
//! holds, as a shard read soon after it was written is. Throughput is shard
//! bytes per second.
//!
//! The store lives in a fresh folder under `std::env::temp_dir()` (`TMPDIR`,
//! else `/tmp`), removed at the end: point `TMPDIR` at the disk to measure,
//! and not at a tmpfs, whose fsync is free. The file system is printed
//! first. Each bench runs for a few seconds only (20 samples).
//!
//! `cargo bench -p shardline-data --bench store` (results:
//! docs/performance.md, "Micro-benchmarks (criterion)").

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use shardline_data::{SegmentStore, ShardStore};
use shardline_types::ShardKey;

/// Shards the get bench reads in turn.
const GET_SHARDS: u64 = 16;

fn key(file_id: u64, n: u64) -> ShardKey {
    ShardKey { file_id, chunk_index: n, version: 1, shard_index: 0 }
}

fn store(c: &mut Criterion) {
    let tmp = tempfile::Builder::new()
        .prefix("shardline-store-bench-")
        .tempdir_in(std::env::temp_dir())
        .expect("create a folder under the temp dir");
    eprintln!("store bench in {} ({})", tmp.path().display(), shardline_data::fs_type::fs_type(tmp.path()));
    for (name, size) in [("16KiB", 16usize << 10), ("1MiB", 1 << 20)] {
        let dir = tmp.path().join(name);
        let store = SegmentStore::open(&dir, None).expect("open the segment store");
        let data: Vec<u8> = (0..size).map(|i| (i * 131 % 251) as u8).collect();
        let crc = crc32c::crc32c(&data);
        for n in 0..GET_SHARDS {
            store.put(&key(1, n), &data, crc).expect("put");
        }

        let mut group = c.benchmark_group(format!("segment_store/{name}"));
        group.throughput(Throughput::Bytes(size as u64));
        group.sample_size(20).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(4));
        let mut next = 0u64;
        group.bench_function("put", |b| {
            b.iter(|| {
                next += 1;
                store.put(&key(2, next), black_box(&data), crc).expect("put");
            })
        });
        let mut at = 0u64;
        group.bench_function("get", |b| {
            b.iter(|| {
                at = (at + 1) % GET_SHARDS;
                store.get(&key(1, at)).expect("get")
            })
        });
        group.finish();
    }
}

criterion_group!(benches, store);
criterion_main!(benches);
