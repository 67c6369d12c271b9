//! Chunk format v2 and the cipher suites end to end, on a real cluster:
//! files written by older clients (format v1) still read, whole, by range
//! (into the caller's buffer too) and degraded; both suites read back; a small read inside a large file
//! asks one shard for its bytes instead of k shards for the whole chunk.

mod harness;
#[path = "harness/meta_cluster.rs"]
mod meta_cluster;

use std::time::Duration;

use harness::{content, TestCluster};
use shardline_client::{ChunkFormat, CipherSuite, Client, ClientConfig, FileHandle};

/// Chunk size of the test directory: 16 segments of 64 KiB per chunk.
const BIG: usize = 1 << 20;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime")
}

/// A cluster with `/big` holding 1 MiB chunks.
fn cluster(octet: u8) -> TestCluster {
    let c = TestCluster::start(octet);
    c.ok(&["mkdir", "/big"]);
    c.ok(&["layout", "/big", "--chunk-size", &BIG.to_string()]);
    c
}

async fn client_with(c: &TestCluster, tweak: impl FnOnce(&mut ClientConfig)) -> Client {
    let addrs = meta_cluster::meta_servers(c).into_iter().map(|(_, a)| a).collect();
    let mut cfg = ClientConfig::new(addrs, meta_cluster::key_file(c), c.identity(shardline_rpc::Role::Client));
    cfg.meta_deadline = Duration::from_secs(30);
    tweak(&mut cfg);
    Client::connect(cfg).await.expect("connect a client")
}

/// (offset, length) pairs: inside one segment, across segments, across
/// cells and chunks, up to and past the end.
fn ranges(len: usize) -> Vec<(u64, usize)> {
    let seg: u64 = 64 << 10;
    let big = BIG as u64;
    let mut out: Vec<(u64, usize)> = vec![
        (0, 1),
        (1, 4096),
        (seg - 1, 2),
        (seg, seg as usize),
        (100_000, 128 << 10),
        (big / 4 - 10, 20),
        (big - 10, 20),
        (big + 3 * seg + 5, 300_000),
        (2 * big - 1, BIG + 2),
    ];
    out.extend([(len as u64 - 7, 100), (len as u64, 10), (len as u64 + 5, 10)]);
    out
}

/// Every way of reading `path` returns `data`'s bytes.
async fn check_reads(client: &Client, path: &str, data: &[u8]) {
    assert_eq!(client.read_file(path).await.expect("read whole"), data, "{path}: whole file");
    let reader = client.open(path).await.expect("open");
    let handle = FileHandle::open(client, reader.ino()).await.expect("open by inode");
    for (off, len) in ranges(data.len()) {
        let from = (off as usize).min(data.len());
        let want = &data[from..(from + len).min(data.len())];
        let got = reader.read_at(off, len).await.unwrap_or_else(|e| panic!("{path}: read_at({off}, {len}): {e}"));
        assert!(got == want, "{path}: read_at({off}, {len}) returned wrong bytes");
        let got =
            handle.read_at(off, len).await.unwrap_or_else(|e| panic!("{path}: handle read_at({off}, {len}): {e}"));
        assert!(got == want, "{path}: handle read_at({off}, {len}) returned wrong bytes");
        let mut buf = vec![0xEE; len];
        let n =
            reader.read_into(off, &mut buf).await.unwrap_or_else(|e| panic!("{path}: read_into({off}, {len}): {e}"));
        assert!(n == want.len() && buf[..n] == *want, "{path}: read_into({off}, {len}) returned wrong bytes");
    }
}

#[test]
fn files_written_in_chunk_format_v1_still_read_whole_by_range_and_degraded() {
    let c = cluster(80);
    let rt = runtime();
    let mut old_data = content(2 * BIG + BIG / 2 + 17, 80);
    let new_data = content(2 * BIG + 3, 81);
    rt.block_on(async {
        // An older client: whole-chunk XChaCha20-Poly1305 sealing.
        let old = client_with(&c, |cfg| {
            cfg.chunk_format = ChunkFormat::V1;
            cfg.cipher_suite = Some(CipherSuite::XChaCha20Poly1305);
        })
        .await;
        old.write_file("/big/old", &old_data).await.expect("write v1");
        let client = client_with(&c, |_| {}).await;
        client.write_file("/big/new", &new_data).await.expect("write v2");
        let r = client.open("/big/old").await.expect("open");
        assert!((0..3).all(|i| r.chunk_format(i) == Some(ChunkFormat::V1)), "written in v1");
        let r = client.open("/big/new").await.expect("open");
        assert!((0..3).all(|i| r.chunk_format(i) == Some(ChunkFormat::V2)), "written in v2");
        check_reads(&client, "/big/old", &old_data).await;
        check_reads(&client, "/big/new", &new_data).await;
        // A write into an old file (read-modify-write of a v1 chunk) makes
        // that chunk v2; the others stay v1 and the file reads as one.
        let h = FileHandle::open(&client, client.stat("/big/old").await.expect("stat").ino).await.expect("open");
        h.write_at(BIG as u64 + 5, b"patched").await.expect("write");
        h.flush().await.expect("flush");
        old_data[BIG + 5..BIG + 12].copy_from_slice(b"patched");
        let r = client.open("/big/old").await.expect("open");
        let formats: Vec<_> = (0..3).map(|i| r.chunk_format(i)).collect();
        assert_eq!(formats, [Some(ChunkFormat::V1), Some(ChunkFormat::V2), Some(ChunkFormat::V1)]);
        check_reads(&client, "/big/old", &old_data).await;
    });
    // Two of six servers gone: every range comes from parity too.
    c.kill_data(1);
    c.kill_data(2);
    rt.block_on(async {
        let client = client_with(&c, |_| {}).await;
        check_reads(&client, "/big/old", &old_data).await;
        check_reads(&client, "/big/new", &new_data).await;
    });
}

#[test]
fn both_cipher_suites_read_back_whole_by_range_and_degraded() {
    let c = cluster(81);
    let rt = runtime();
    let suites = [CipherSuite::XChaCha20Poly1305, CipherSuite::Aes256Gcm];
    let files: Vec<(String, Vec<u8>)> =
        (0..2).map(|i| (format!("/big/suite-{i}"), content(2 * BIG + 1000 * (i + 1), 90 + i as u64))).collect();
    rt.block_on(async {
        for (suite, (path, data)) in suites.iter().zip(&files) {
            let w = client_with(&c, |cfg| cfg.cipher_suite = Some(*suite)).await;
            w.write_file(path, data).await.expect("write");
        }
        // A reader configured for the other suite reads each file with its own.
        let client = client_with(&c, |cfg| cfg.cipher_suite = Some(CipherSuite::XChaCha20Poly1305)).await;
        for (suite, (path, data)) in suites.iter().zip(&files) {
            assert_eq!(client.open(path).await.expect("open").cipher_suite(), *suite);
            check_reads(&client, path, data).await;
        }
        // New files get the CPU's preferred suite by default.
        let default = client_with(&c, |_| {}).await;
        default.write_file("/big/default", b"x").await.expect("write");
        assert_eq!(default.open("/big/default").await.expect("open").cipher_suite(), CipherSuite::preferred());
    });
    c.kill_data(3);
    c.kill_data(4);
    rt.block_on(async {
        let client = client_with(&c, |_| {}).await;
        for (path, data) in &files {
            check_reads(&client, path, data).await;
        }
    });
}

#[test]
fn a_small_read_inside_a_large_file_asks_one_shard_for_its_bytes() {
    let c = cluster(82);
    let rt = runtime();
    let data = content(3 * BIG, 82);
    rt.block_on(async {
        let client = client_with(&c, |_| {}).await;
        client.write_file("/big/f", &data).await.expect("write");
        let reader = client.open("/big/f").await.expect("open");
        let handle = FileHandle::open(&client, reader.ino()).await.expect("open by inode");
        let calls = || client.shard_connection_stats().calls;
        // Native reader, then the mount's handle (a read not at the start
        // of a stream: random).
        for (i, off) in [300_000u64, BIG as u64 + 700_000].into_iter().enumerate() {
            let before = calls();
            let got = if i == 0 { reader.read_at(off, 4096).await } else { handle.read_at(off, 4096).await };
            assert_eq!(&got.expect("read")[..], &data[off as usize..off as usize + 4096]);
            assert_eq!(calls() - before, 1, "a 4 KiB read inside one segment needs one shard request");
        }
        // Reading from the start is sequential: whole chunks, read ahead.
        let before = calls();
        assert_eq!(&handle.read_at(0, 4096).await.expect("read")[..], &data[..4096]);
        assert!(calls() - before >= 4, "a sequential read fetches whole chunks (k shards each)");
    });
}

#[test]
fn a_range_read_over_rotten_bytes_is_served_from_other_shards() {
    let c = cluster(83);
    let rt = runtime();
    let data = content(2 * BIG, 83);
    let ino = rt.block_on(async {
        let client = client_with(&c, |_| {}).await;
        client.write_file("/big/rot", &data).await.expect("write");
        client.stat("/big/rot").await.expect("stat").ino
    });
    // Flip a payload byte of data shard 0 of both chunks: the first bytes of
    // each chunk's sealed form.
    let mut flipped = 0;
    for s in c.shard_files() {
        if s.key.file_id != ino || s.key.shard_index != 0 {
            continue;
        }
        s.flip(harness::PAYLOAD_BYTE, 0x40);
        flipped += 1;
    }
    assert_eq!(flipped, 2, "2 chunks x data shard 0");
    rt.block_on(async {
        let client = client_with(&c, |_| {}).await;
        let reader = client.open("/big/rot").await.expect("open");
        let handle = FileHandle::open(&client, reader.ino()).await.expect("open by inode");
        for off in [10u64, 3000, BIG as u64 + 1] {
            let want = &data[off as usize..off as usize + 4096];
            assert!(reader.read_at(off, 4096).await.expect("read") == want, "read_at({off})");
            assert!(handle.read_at(off, 4096).await.expect("read") == want, "handle read_at({off})");
            let mut buf = vec![0; 4096];
            assert_eq!(reader.read_into(off, &mut buf).await.expect("read"), 4096);
            assert!(buf == want, "read_into({off})");
        }
    });
}
