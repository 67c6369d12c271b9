//! Black-box: the native client's prefetch (data-loader) API against a real
//! cluster of separate processes on 127.0.0.91-93: items come back in the
//! order given, every one exactly once with the right bytes, errors per
//! item, and the window bounds (items and bytes) hold.

mod harness;

use std::path::PathBuf;

use harness::{TestCluster, CHUNK};
use shardline_client::{Client, ClientConfig, PrefetchConfig, PrefetchItem};
use shardline_types::ErrorCode;

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
