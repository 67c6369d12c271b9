//! Black-box: the native client's prefetch (data-loader) API against a real
//! cluster of separate processes on 127.0.0.91-95: items come back in the
//! order given, every one exactly once with the right bytes, errors per
//! item, and the window bounds (items and bytes) hold; items read into
//! buffers the caller recycles; `FileReader::read_into` fills a caller's
//! buffer with what `read_at` returns.

mod harness;

use std::path::PathBuf;

use harness::{content, TestCluster, CHUNK};
use shardline_client::{Client, ClientConfig, FileHandle, PrefetchConfig, PrefetchItem};
use shardline_types::ErrorCode;

/// Chunk size of `/big` in the read_into test: 16 segments of 64 KiB.
const BIG: usize = 1 << 20;

async fn connect(c: &TestCluster) -> Client {
    let text = std::fs::read_to_string(c.cluster_file()).expect("read cluster.toml");
    let v: toml::Value = toml::from_str(&text).expect("parse cluster.toml");
    let meta = v["meta"].as_array().expect("meta servers");
    let addrs = meta.iter().map(|m| m["addr"].as_str().expect("addr").to_string()).collect();
    let key = c.data_dir().join(v["key_file"].as_str().expect("key_file"));
    Client::connect(ClientConfig::new(addrs, key, c.identity(shardline_rpc::Role::Client))).await.expect("connect")
}

fn pattern(seed: u64, len: usize) -> Vec<u8> {
    (0..len as u64).map(|i| (i.wrapping_mul(31) ^ seed.wrapping_mul(0x9e37) ^ (i >> 9)) as u8).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefetch_yields_every_item_in_order_within_its_window() {
    let cluster = TestCluster::start(91);
    let client = connect(&cluster).await;
    client.mkdir("/ds").await.expect("mkdir");
    client.mkdir("/ds/sub").await.expect("mkdir");

    // Files from empty to several chunks, at two depths.
    let mut files = Vec::new();
    for i in 0..12u64 {
        let len = match i % 4 {
            0 => 0,
            1 => 5_000 + i as usize,
            2 => CHUNK + 777,
            _ => 3 * CHUNK + 12_345,
        };
        let path = if i % 2 == 0 { format!("/ds/f{i}") } else { format!("/ds/sub/f{i}") };
        let data = pattern(i, len);
        client.write_file(&path, &data).await.expect("write");
        files.push((path, data));
    }

    // The epoch's order: whole files, ranges (inside a chunk, across chunk
    // boundaries, running past the end, wholly past it), a missing file and
    // a directory, interleaved.
    let mut items = Vec::new();
    let mut expect: Vec<Result<Vec<u8>, ErrorCode>> = Vec::new();
    for (n, (path, data)) in files.iter().enumerate().rev() {
        items.push(PrefetchItem::File(PathBuf::from(path)));
        expect.push(Ok(data.clone()));
        let (off, len) = match n % 3 {
            0 => (100, 4096),
            1 => (CHUNK as u64 - 50, 200),
            _ => (CHUNK as u64 / 2, 2 * CHUNK as u64),
        };
        items.push(PrefetchItem::Range { path: PathBuf::from(path), offset: off, len });
        let from = (off as usize).min(data.len());
        let to = (off as usize + len as usize).min(data.len());
        expect.push(Ok(data[from..to].to_vec()));
        if n == 7 {
            items.push(PrefetchItem::File(PathBuf::from("/ds/missing")));
            expect.push(Err(ErrorCode::NotFound));
            items.push(PrefetchItem::Range { path: PathBuf::from("/ds/sub"), offset: 0, len: 10 });
            expect.push(Err(ErrorCode::IsADirectory));
        }
    }

    let window_items = 4;
    let window_bytes = 2 * CHUNK as u64;
    let cfg = PrefetchConfig { window_items, window_bytes, open_files: 8 };
    let mut stream = client.prefetch(items.clone(), cfg);
    let mut seen = 0;
    while let Some(got) = stream.next().await {
        assert_eq!(got.index, seen, "items must come back in the order given");
        assert_eq!(got.item, items[seen]);
        match (&got.data, &expect[seen]) {
            (Ok(bytes), Ok(want)) => {
                assert!(
                    bytes[..] == want[..],
                    "item {seen}: {} bytes differ from the {} written",
                    bytes.len(),
                    want.len()
                )
            }
            (Err(e), Err(code)) => assert_eq!(e.code(), *code, "item {seen}: {e}"),
            (got, want) => panic!(
                "item {seen}: got {:?}, want {:?}",
                got.as_ref().map(|b| b.len()),
                want.as_ref().map(|b| b.len())
            ),
        }
        seen += 1;
    }
    assert_eq!(seen, items.len(), "every item exactly once");
    let stats = stream.stats();
    assert!(stats.max_items <= window_items, "{} items held at once, window {window_items}", stats.max_items);
    assert_eq!(stats.max_items, window_items, "the window was never filled: no prefetching happened");
    // The largest file (3 chunks and a bit) exceeds the byte window: it is
    // granted the whole window alone, never more.
    assert!(stats.max_bytes <= window_bytes, "{} bytes granted at once, window {window_bytes}", stats.max_bytes);
    assert!(stats.max_bytes > CHUNK as u64, "bytes were granted one small item at a time: {}", stats.max_bytes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prefetch_stream_dropped_half_way_cancels_cleanly() {
    let cluster = TestCluster::start(92);
    let client = connect(&cluster).await;
    let data = pattern(9, 2 * CHUNK);
    client.write_file("/big", &data).await.expect("write");
    let items: Vec<_> =
        (0..64u64).map(|i| PrefetchItem::Range { path: "/big".into(), offset: i * 1000, len: 3000 }).collect();
    let mut stream = client.prefetch(items, PrefetchConfig::default());
    let first = stream.next().await.expect("an item");
    assert!(first.data.expect("read")[..] == data[..3000]);
    assert_eq!(stream.remaining(), 63);
    drop(stream);
    // The client is still usable after the stream's tasks were cancelled.
    let mut again = client.prefetch(vec![PrefetchItem::File("/big".into())], PrefetchConfig::default());
    let whole = again.next().await.expect("an item").data.expect("read");
    assert!(whole[..] == data[..]);
    assert!(again.next().await.is_none());
}

/// Issue 11 item 5: many files written and stat'ed in one call each,
/// pipelined; results in the order asked, a bad item failing alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_files_are_written_and_stated_in_one_call_each_in_order() {
    let cluster = TestCluster::start(93);
    let client = connect(&cluster).await;
    client.mkdir("/many").await.expect("mkdir");
    client.mkdir("/many/deep").await.expect("mkdir");
    let files: Vec<(String, Vec<u8>)> = (0..300u64)
        .map(|i| {
            let dir = if i % 2 == 0 { "/many" } else { "/many/deep" };
            (format!("{dir}/f{i:03}"), pattern(i, (i as usize * 37) % 5000))
        })
        .collect();
    let written = client.write_files(&files).await;
    assert_eq!(written.len(), files.len());
    for ((path, data), w) in files.iter().zip(&written) {
        assert_eq!(*w.as_ref().unwrap_or_else(|e| panic!("write {path}: {e}")), data.len() as u64);
    }

    let mut asked: Vec<String> = files.iter().rev().map(|(p, _)| p.clone()).collect();
    asked.insert(7, "/many/missing".into());
    asked.insert(11, "relative/path".into());
    asked.insert(13, "/".into());
    let stats = client.stat_many(&asked).await;
    assert_eq!(stats.len(), asked.len());
    for (path, st) in asked.iter().zip(&stats) {
        match path.as_str() {
            "/many/missing" => {
                assert_eq!(st.as_ref().err().map(|e| e.code()), Some(ErrorCode::NotFound), "{path}")
            }
            "relative/path" => assert_eq!(st.as_ref().err().map(|e| e.code()), Some(ErrorCode::InvalidArgument)),
            "/" => assert_eq!(st.as_ref().expect("stat /").ino, 1),
            _ => {
                let want = files.iter().find(|(p, _)| p == path).expect("a written file").1.len() as u64;
                assert_eq!(st.as_ref().unwrap_or_else(|e| panic!("stat {path}: {e}")).size, want, "{path}");
            }
        }
    }
    // Each read back whole matches what was written for that path.
    for (path, data) in files.iter().step_by(37) {
        assert_eq!(&client.read_file(path).await.expect("read"), data, "{path}");
    }
}

/// `(offset, buffer length)` pairs for a file of `len` bytes in `/big`:
/// inside a segment, across segments and chunks, whole segments and chunks,
/// several chunks, the whole file, buffers larger than the rest of the file
/// or the whole of it, at and past the end, and an empty buffer.
fn ranges(len: usize) -> Vec<(u64, usize)> {
    let (seg, big) = (64usize << 10, BIG as u64);
    let l = len as u64;
    vec![
        (0, len),
        (0, len + 1000),
        (1, 4096),
        (seg as u64 - 10, 20),
        (seg as u64, seg),
        (100_000, 128 << 10),
        (big - 100, 300),
        (big, BIG),
        (big / 2, 2 * BIG),
        (l.saturating_sub(7), 100),
        (l, 10),
        (l + 5, 10),
        (3, 0),
    ]
}

/// `read_into` of every range writes exactly the file's bytes there, says
/// how many, leaves the rest of the buffer alone, and matches `read_at`.
async fn check_read_into(client: &Client, path: &str, data: &[u8], ranges: &[(u64, usize)]) {
    let reader = client.open(path).await.expect("open");
    for &(off, len) in ranges {
        let from = (off as usize).min(data.len());
        let want = &data[from..(from + len).min(data.len())];
        let mut buf = vec![0xEE; len];
        let n =
            reader.read_into(off, &mut buf).await.unwrap_or_else(|e| panic!("{path}: read_into({off}, {len}): {e}"));
        assert_eq!(n, want.len(), "{path}: read_into({off}, {len}) wrote {n} bytes");
        assert!(buf[..n] == *want, "{path}: read_into({off}, {len}) wrote wrong bytes");
        assert!(buf[n..].iter().all(|&b| b == 0xEE), "{path}: read_into({off}, {len}) wrote past its count");
        let at = reader.read_at(off, len).await.unwrap_or_else(|e| panic!("{path}: read_at({off}, {len}): {e}"));
        assert!(at[..] == buf[..n], "{path}: read_at({off}, {len}) differs from read_into");
    }
}

#[test]
fn read_into_fills_the_callers_buffer_with_what_read_at_returns() {
    let c = TestCluster::start(94);
    c.ok(&["mkdir", "/big"]);
    c.ok(&["layout", "/big", "--chunk-size", &BIG.to_string()]);
    // 1 MiB chunks of 16 segments, the last chunk partial; 64 KiB chunks of
    // one segment; a sparse file (two holes, then 4 bytes); an empty file.
    let big = content(2 * BIG + 100_003, 94);
    let small = content(3 * CHUNK + 12_345, 95);
    let mut sparse = vec![0u8; 2 * BIG + 5];
    sparse.extend_from_slice(b"tail");
    let multi = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    multi.block_on(async {
        let client = connect(&c).await;
        client.write_file("/big/f", &big).await.expect("write");
        client.write_file("/small", &small).await.expect("write");
        client.write_file("/empty", b"").await.expect("write");
        client.write_file("/big/sparse", b"").await.expect("write");
        let ino = client.stat("/big/sparse").await.expect("stat").ino;
        let h = FileHandle::open(&client, ino).await.expect("open by inode");
        h.write_at(2 * BIG as u64 + 5, b"tail").await.expect("write");
        h.flush().await.expect("flush");
    });
    let small_ranges = [(0, small.len()), (CHUNK as u64 - 50, 200), (CHUNK as u64 / 2, 2 * CHUNK), (5, 3 * CHUNK)];
    let sparse_ranges = [(0, sparse.len()), (BIG as u64 - 3, 10), (2 * BIG as u64, 20), (10, 2 * BIG)];
    let check = |client: Client| {
        let (big, small, sparse) = (&big, &small, &sparse);
        async move {
            check_read_into(&client, "/big/f", big, &ranges(big.len())).await;
            check_read_into(&client, "/small", small, &small_ranges).await;
            check_read_into(&client, "/big/sparse", sparse, &sparse_ranges).await;
            check_read_into(&client, "/empty", b"", &[(0, 10), (0, 0), (7, 3)]).await;
        }
    };
    // Decrypting into a borrowed buffer runs on the polling thread: under
    // `block_in_place` on a multi-threaded runtime, inline on a
    // current-thread one (where `block_in_place` would panic).
    multi.block_on(async { check(connect(&c).await).await });
    let single = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    single.block_on(async { check(connect(&c).await).await });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefetch_reads_into_recycled_buffers_and_hands_them_back() {
    let cluster = TestCluster::start(95);
    let client = connect(&cluster).await;
    let mut items = Vec::new();
    let mut expect: Vec<Result<Vec<u8>, ErrorCode>> = Vec::new();
    for (i, len) in [0, 1000, CHUNK, CHUNK + 1, 3 * CHUNK + 5, 70_000].into_iter().enumerate() {
        let (path, data) = (format!("/f{i}"), pattern(100 + i as u64, len));
        client.write_file(&path, &data).await.expect("write");
        items.push(PrefetchItem::File(PathBuf::from(&path)));
        expect.push(Ok(data.clone()));
        items.push(PrefetchItem::Range { path: PathBuf::from(&path), offset: 100, len: CHUNK as u64 });
        expect.push(Ok(data[100.min(len)..(100 + CHUNK).min(len)].to_vec()));
        if i == 2 {
            items.push(PrefetchItem::File(PathBuf::from("/missing")));
            expect.push(Err(ErrorCode::NotFound));
        }
    }
    let check = |i: usize, got: &Result<&[u8], &shardline_client::ClientError>| match (got, &expect[i]) {
        (Ok(bytes), Ok(want)) => assert!(bytes == want, "item {i}: wrong bytes"),
        (Err(e), Err(code)) => assert_eq!(e.code(), *code, "item {i}: {e}"),
        (got, _) => panic!("item {i}: got {:?}", got.as_ref().map(|b| b.len())),
    };

    // Two buffers of an unusual capacity, larger than any item, handed to a
    // stream of one item in flight: the one in flight and the one the caller
    // holds. Every item comes back in one of them; none is allocated afresh.
    const CAP: usize = 4 * CHUNK + 4321;
    let cfg = PrefetchConfig { window_items: 1, window_bytes: 64 << 20, open_files: 8 };
    let mut stream = client.prefetch(items.clone(), cfg);
    let given: Vec<Vec<u8>> = (0..2).map(|_| Vec::with_capacity(CAP)).collect();
    let ptrs: Vec<*const u8> = given.iter().map(|b| b.as_ptr()).collect();
    for b in given {
        stream.recycle(b);
    }
    let mut seen = 0;
    while let Some(got) = stream.next_buf().await {
        assert_eq!(got.index, seen, "items must come back in the order given");
        check(got.index, &got.data.as_ref().map(|b| &b[..]));
        if let Ok(buf) = got.data {
            assert!(
                ptrs.contains(&buf.as_ptr()) && buf.capacity() == CAP,
                "item {seen} came in a fresh buffer (capacity {}), not a recycled one",
                buf.capacity()
            );
            stream.recycle(buf);
        }
        seen += 1;
    }
    assert_eq!(seen, items.len());

    // A wider window, recycling as it goes, and the `Bytes` stream: the same
    // bytes.
    let cfg = PrefetchConfig { window_items: 4, window_bytes: 2 * CHUNK as u64, open_files: 8 };
    let mut stream = client.prefetch(items.clone(), cfg.clone());
    while let Some(got) = stream.next_buf().await {
        check(got.index, &got.data.as_ref().map(|b| &b[..]));
        if let Ok(buf) = got.data {
            stream.recycle(buf);
        }
    }
    let mut stream = client.prefetch(items.clone(), cfg);
    while let Some(got) = stream.next().await {
        check(got.index, &got.data.as_ref().map(|b| &b[..]));
    }
}
