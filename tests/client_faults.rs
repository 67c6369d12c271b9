//! Black-box: the native client under faults between it and the metadata
//! service (a real cluster of separate processes on its own 127.0.0.x; the
//! client runs in the test, some behind frame-aware proxies that end TLS).

mod harness;
#[path = "harness/meta_proxy.rs"]
mod meta_proxy;
#[path = "harness/reply_dropper.rs"]
mod reply_dropper;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use harness::{TestCluster, CHUNK};
use reply_dropper::ReplyDropper;
use shardline_client::inode_api::SetAttrRequest;
use shardline_client::{Client, ClientConfig, ClientError, FileHandle};
use shardline_rpc::{Role, Tls};

/// Metadata addresses, key file and client certificate from the cluster's `cluster.toml`.
fn cluster_config(c: &TestCluster) -> (Vec<String>, PathBuf, Arc<Tls>) {
    let text = std::fs::read_to_string(c.cluster_file()).expect("read cluster.toml");
    let v: toml::Value = toml::from_str(&text).expect("parse cluster.toml");
    let meta = v["meta"].as_array().expect("meta servers");
    let addrs = meta.iter().map(|m| m["addr"].as_str().expect("addr").to_string()).collect();
    let key = v["key_file"].as_str().expect("key_file");
    (addrs, c.data_dir().join(key), c.identity(Role::Client))
}

fn pattern(seed: u8, len: usize) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 8) as u8).collect()
}

/// Issue 9 item 5: when a `CommitChunk` applied but its reply was lost, the
/// client must not delete the version's shards: the file now points at them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ambiguous_commit_keeps_the_shards_it_may_have_made_live() {
    let cluster = TestCluster::start(70);
    let (meta_addrs, key_file, tls) = cluster_config(&cluster);
    let cfg = ClientConfig::new(meta_addrs.clone(), key_file.clone(), tls.clone());
    let plain = Client::connect(cfg).await.expect("connect");
    let old = pattern(1, CHUNK);
    plain.write_file("/victim", &old).await.expect("write the first version");

    // A client whose every path to the metadata service loses commit replies.
    let as_meta = cluster.server_identity("meta", 1);
    let droppers: Vec<ReplyDropper> =
        meta_addrs.iter().map(|a| ReplyDropper::start(&cluster.host, a, as_meta.clone(), tls.clone())).collect();
    let mut cfg = ClientConfig::new(droppers.iter().map(|d| d.addr.clone()).collect(), key_file, tls);
    cfg.meta_deadline = Duration::from_secs(3);
    let faulty = Client::connect(cfg).await.expect("connect through proxies");
    let ino = faulty.stat("/victim").await.expect("stat").ino;
    let handle = FileHandle::open(&faulty, ino).await.expect("open");
    for d in &droppers {
        d.drop_commit_replies(true);
    }
    let new = pattern(2, CHUNK);
    handle.write_at(0, &new).await.expect("buffer the overwrite");
    let outcome = handle.flush().await;
    assert!(outcome.is_err(), "the commit's reply never arrived, yet the flush reported success");
    assert!(droppers.iter().map(ReplyDropper::dropped).sum::<usize>() > 0, "no commit reply was dropped");

    // The commit did apply: the file must read back as the new version,
    // whose shards must still be there.
    let read = plain.read_file("/victim").await.expect("the committed version must stay readable");
    assert!(read == new, "the file reads neither as the committed overwrite ({} bytes read)", read.len());
}

/// Issue 9 item 9: reading a huge sparse file whole is a clear error, not an
/// aborted process (the reader used to preallocate the size the metadata
/// service reports).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reading_a_huge_sparse_file_whole_is_an_error_not_an_abort() {
    let cluster = TestCluster::start(71);
    let (meta_addrs, key_file, tls) = cluster_config(&cluster);
    let client = Client::connect(ClientConfig::new(meta_addrs, key_file, tls)).await.expect("connect");
    client.write_file("/sparse", b"head").await.expect("write");
    let ino = client.stat("/sparse").await.expect("stat").ino;
    let huge = 1u64 << 50; // 1 PiB, nearly all hole
    let req = SetAttrRequest { size: Some(huge), ..Default::default() };
    client.inodes().setattr(ino, &req).await.expect("extend to 1 PiB");
    assert_eq!(client.stat("/sparse").await.expect("stat").size, huge);
    match client.read_file("/sparse").await {
        Err(ClientError::TooLarge { size }) => assert_eq!(size, huge),
        Err(e) => panic!("expected a too-large error, got {e}"),
        Ok(v) => panic!("read {} bytes of a 1 PiB file", v.len()),
    }
    // Ranges of it still read: the head, and zeros from the hole.
    let reader = client.open("/sparse").await.expect("open");
    assert_eq!(&reader.read_at(0, 4).await.expect("read head")[..], b"head");
    let far = reader.read_at(huge - 10, 100).await.expect("read the end");
    assert_eq!(&far[..], &[0u8; 10][..]);
}

/// Issue 9 item 13: deleting files used to build a new connection pool for
/// every release, so every unlink dialed k+m fresh connections. Releases now
/// go over the client's own pooled connections.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unlinks_reuse_the_clients_shard_connections() {
    let cluster = TestCluster::start(72);
    let (meta_addrs, key_file, tls) = cluster_config(&cluster);
    let client = Client::connect(ClientConfig::new(meta_addrs, key_file, tls)).await.expect("connect");
    let files = 5;
    for i in 0..files {
        client.write_file(&format!("/f{i}"), &pattern(i as u8, CHUNK)).await.expect("write");
    }
    let shards_before = cluster.shard_files().len();
    assert_eq!(shards_before, files * 6, "each one-chunk file has 4+2 shards");
    let before = client.shard_connection_stats();
    for i in 0..files {
        client.remove(&format!("/f{i}")).await.expect("remove");
        // The deletions run in the background; wait for this file's shards
        // to go before the next removal, so no two releases overlap.
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while cluster.shard_files().len() > (files - 1 - i) * 6 {
            assert!(std::time::Instant::now() < deadline, "shards of a removed file were not deleted");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let after = client.shard_connection_stats();
    assert!(
        after.calls >= before.calls + (files * 6) as u64,
        "the deletions did not go through the client's pool: {before:?} -> {after:?}"
    );
    assert_eq!(after.dials, before.dials, "unlinks dialed new connections: {before:?} -> {after:?}");
}

/// Issue 9 item 7: statfs (`df`) reported free space equal to total space.
/// Free space now comes from the data servers' usage reports.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statfs_reports_used_space_as_not_free() {
    let cluster = TestCluster::start(73);
    let (meta_addrs, key_file, tls) = cluster_config(&cluster);
    let client = Client::connect(ClientConfig::new(meta_addrs, key_file, tls)).await.expect("connect");
    let written = 8 * CHUNK;
    client.write_file("/fill", &pattern(9, written)).await.expect("write");
    // Usage reaches the leader with the next heartbeats.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let s = client.inodes().statfs().await.expect("statfs");
        assert!(s.free_bytes <= s.total_bytes, "more free than total: {s:?}");
        if s.total_bytes - s.free_bytes >= written as u64 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "statfs never counted the written bytes as used: {s:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Issue 9 item 8: chunk lists come in pages; a file spanning many pages
/// opens and reads whole, through both read paths.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_whose_chunk_list_spans_many_pages_reads_back() {
    let cluster = TestCluster::start(74);
    let (meta_addrs, key_file, tls) = cluster_config(&cluster);
    let mut cfg = ClientConfig::new(meta_addrs, key_file, tls);
    cfg.chunk_list_page = 3;
    let client = Client::connect(cfg).await.expect("connect");
    let data = pattern(5, 10 * CHUNK + 123);
    client.write_file("/paged", &data).await.expect("write");
    assert!(client.read_file("/paged").await.expect("read") == data, "the path API read other bytes");
    let ino = client.stat("/paged").await.expect("stat").ino;
    let handle = FileHandle::open(&client, ino).await.expect("open by inode");
    let tail = handle.read_at(9 * CHUNK as u64, 2 * CHUNK).await.expect("read the last pages' chunks");
    assert!(tail[..] == data[9 * CHUNK..], "the inode API read other bytes");
}

/// Found by the nemesis (issue 13): an append spanning chunks committed each
/// chunk with the handle's whole new size, so a chunk committed before the
/// ones below it made the file longer than its committed data, and readers
/// (and, had the writer crashed, everyone forever) saw zeros no write put
/// there. Commits that grow a file must land in order, each growing it only
/// to its own end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_extending_write_in_flight_never_shows_zeros_to_a_reader() {
    let cluster = TestCluster::start(114);
    let (meta_addrs, key_file, tls) = cluster_config(&cluster);
    let writer =
        Client::connect(ClientConfig::new(meta_addrs.clone(), key_file.clone(), tls.clone())).await.expect("connect");
    let reader = Client::connect(ClientConfig::new(meta_addrs, key_file, tls)).await.expect("connect");
    // No zero byte anywhere in what is written.
    let bytes =
        |seed: usize, len: usize| (0..len).map(|i| ((i + seed) as u8).wrapping_mul(31) | 1).collect::<Vec<u8>>();
    writer.write_file("/grow", &bytes(0, 1)).await.expect("write the first byte");
    let ino = writer.stat("/grow").await.expect("stat").ino;
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reads_so_far = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let watch = {
        let (done, reads_so_far) = (done.clone(), reads_so_far.clone());
        tokio::spawn(async move {
            let (mut reads, mut with_zeros) = (0u32, Vec::new());
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                if let Ok(data) = reader.read_file("/grow").await {
                    reads += 1;
                    reads_so_far.store(reads, std::sync::atomic::Ordering::Relaxed);
                    if let Some(at) = data.iter().position(|b| *b == 0) {
                        with_zeros.push((data.len(), at));
                    }
                }
            }
            (reads, with_zeros)
        })
    };
    // At least 12 appends, and on until the reader has read more than 10
    // times among them (however slow the machine).
    let mut round = 0;
    while round < 12 || reads_so_far.load(std::sync::atomic::Ordering::Relaxed) <= 10 {
        assert!(
            round < 400,
            "the reader read only {} times in {round} appends",
            reads_so_far.load(std::sync::atomic::Ordering::Relaxed)
        );
        let handle = FileHandle::open(&writer, ino).await.expect("open");
        let size = handle.size();
        handle.write_at(size, &bytes(round, 2 * CHUNK + CHUNK / 2)).await.expect("append");
        handle.flush().await.expect("flush the append");
        round += 1;
    }
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let (reads, with_zeros) = watch.await.expect("reader task");
    assert!(reads > 10, "the reader read only {reads} times");
    assert!(
        with_zeros.is_empty(),
        "{} of {reads} reads saw zeros (size, first zero): {with_zeros:?}",
        with_zeros.len()
    );
    let all = writer.read_file("/grow").await.expect("read back");
    assert_eq!(all.len(), 1 + round * (2 * CHUNK + CHUNK / 2));
    assert!(!all.contains(&0));
}

/// Found by the nemesis (issue 13): `Client::open` looked the path up, then
/// asked for that inode's chunks; a file renamed over the path in between
/// had freed the inode, and the open failed "not found" although the path
/// never stopped existing. It must find whichever file the path names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opening_a_path_that_files_are_renamed_over_never_says_not_found() {
    let cluster = TestCluster::start(115);
    let (meta_addrs, key_file, tls) = cluster_config(&cluster);
    let writer =
        Client::connect(ClientConfig::new(meta_addrs.clone(), key_file.clone(), tls.clone())).await.expect("connect");
    let reader = Client::connect(ClientConfig::new(meta_addrs, key_file, tls)).await.expect("connect");
    writer.write_file("/hot", b"first").await.expect("write the first version");
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let opener = {
        let done = done.clone();
        tokio::spawn(async move {
            let (mut opens, mut missing) = (0u32, Vec::new());
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                match reader.open("/hot").await {
                    Ok(_) => opens += 1,
                    Err(e) => missing.push(e.to_string()),
                }
            }
            (opens, missing)
        })
    };
    for round in 0..150u32 {
        writer.write_file("/hot", &round.to_le_bytes()).await.expect("replace the file");
    }
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let (opens, missing) = opener.await.expect("opener task");
    assert!(opens > 50, "only {opens} opens");
    assert!(
        missing.is_empty(),
        "{} of {} opens failed: {:?}",
        missing.len(),
        opens as usize + missing.len(),
        &missing[..missing.len().min(3)]
    );
}

/// Found by the nemesis (issue 13): when a write that grew a file failed to
/// commit, the open handle (the mount's, shared by every open of the file)
/// kept the grown size with the bytes gone, so reads through it returned
/// zeros no write put there. The handle must fall back to what is committed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_extending_write_leaves_no_zeros_behind_in_the_handle() {
    let cluster = TestCluster::start(119);
    let (meta_addrs, key_file, tls) = cluster_config(&cluster);
    let mut cfg = ClientConfig::new(meta_addrs, key_file, tls);
    cfg.write_retry_window = Duration::from_secs(3);
    let client = Client::connect(cfg).await.expect("connect");
    client.write_file("/grow-fail", b"abc").await.expect("write the first bytes");
    let ino = client.stat("/grow-fail").await.expect("stat").ino;
    let handle = FileHandle::open(&client, ino).await.expect("open");
    // With EC 4+2 over six servers, no chunk can be stored while one is down.
    cluster.kill_data(1);
    let nonzero: Vec<u8> = pattern(5, 2 * CHUNK).iter().map(|b| b | 1).collect();
    handle.write_at(3, &nonzero).await.expect("buffer the append");
    // Reads through the handle while the commits fail one after another
    // see the new bytes, or the end of the file: never zeros.
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watch = {
        let (h, done) = (handle.clone(), done.clone());
        tokio::spawn(async move {
            let mut zeros = Vec::new();
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                if let Ok(b) = h.read_at(0, 3 * CHUNK).await {
                    if let Some(at) = b.iter().position(|x| *x == 0) {
                        zeros.push((b.len(), at));
                    }
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            zeros
        })
    };
    assert!(handle.flush().await.is_err(), "the append cannot have been stored");
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let zeros = watch.await.expect("reader task");
    assert!(zeros.is_empty(), "reads during the failing flush saw zeros (length, first zero): {zeros:?}");
    let got = handle.read_at(0, 3 * CHUNK).await.expect("read through the handle");
    assert_eq!(&got[..], b"abc", "read {} bytes, {} of them zeros", got.len(), got.iter().filter(|b| **b == 0).count());
    // The handle remembers that bytes above 3 were lost, not a hole: a
    // mount answers a read cut short there with EIO, since the kernel, which
    // saw the grown size, would fill the rest with zeros (nemesis seed
    // 0x1eaf2, `a_short_read_over_a_failed_growth_is_eio_not_kernel_zeros`).
    assert!(handle.lost_growth_above(3), "the failed growth was forgotten");
    assert!(!handle.lost_growth_above(3 + 2 * CHUNK as u64), "lost bytes past the failed write's end");
}

/// Found by the nemesis (issue 13): a reader that had opened a file read
/// "file not found (no inode N)" once another client renamed a new file
/// over the path (the old inode and its shards were freed). A whole-file
/// read by path must return one whole version, reopening the path if the
/// file it opened went away; a reader holding the old snapshot gets its old
/// bytes while they last, then a stale-handle error (ESTALE), never "not
/// found" for a path that exists.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_replaced_while_it_is_read_reads_as_one_version_or_stale_never_not_found() {
    let cluster = TestCluster::start(126);
    let (meta_addrs, key_file, tls) = cluster_config(&cluster);
    let writer =
        Client::connect(ClientConfig::new(meta_addrs.clone(), key_file.clone(), tls.clone())).await.expect("connect");
    let reader = Client::connect(ClientConfig::new(meta_addrs, key_file, tls)).await.expect("connect");
    let len = 2 * CHUNK + 1000;
    let version = |round: u8| vec![round; len];
    writer.write_file("/swap.tmp", &version(1)).await.expect("write the first version");
    writer.rename("/swap.tmp", "/swap").await.expect("publish it");

    // A snapshot of version 1, then version 2 renamed over it.
    let old = reader.open("/swap").await.expect("open version 1");
    writer.write_file("/swap.tmp", &version(2)).await.expect("write version 2");
    writer.rename("/swap.tmp", "/swap").await.expect("rename it over version 1");
    // Version 1's shards are deleted in the background: until then the old
    // snapshot reads version 1 whole; after, it is stale.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let stale = loop {
        match old.read_all().await {
            Ok(bytes) => assert!(bytes == version(1), "the old snapshot read bytes of no single version"),
            Err(e @ ClientError::Stale { .. }) => break e,
            Err(e) => panic!("the old snapshot failed otherwise than stale: {e}"),
        }
        assert!(std::time::Instant::now() < deadline, "version 1's shards were never deleted");
    };
    assert_eq!(stale.code().errno(), 116, "stale reads are ESTALE: {stale}");
    assert_eq!(reader.read_file("/swap").await.expect("read by path"), version(2));

    // Whole reads by path while versions keep being renamed over it.
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reads = {
        let done = done.clone();
        tokio::spawn(async move {
            let (mut reads, mut bad) = (0u32, Vec::new());
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                match reader.read_file("/swap").await {
                    Ok(b) if b.len() == len && b.iter().all(|x| *x == b[0]) => reads += 1,
                    Ok(b) => bad.push(format!("{} bytes, not one version", b.len())),
                    Err(e) => bad.push(e.to_string()),
                }
            }
            (reads, bad)
        })
    };
    for round in 3..40u8 {
        writer.write_file("/swap.tmp", &version(round)).await.expect("write a version");
        writer.rename("/swap.tmp", "/swap").await.expect("rename it over");
    }
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let (reads, bad) = reads.await.expect("reader task");
    assert!(reads > 5, "only {reads} reads");
    assert!(
        bad.is_empty(),
        "{} of {} whole reads failed: {:?}",
        bad.len(),
        reads as usize + bad.len(),
        &bad[..bad.len().min(3)]
    );
}

/// Issue 10 item 7: a data server that stops answering (paused, not dead:
/// its connections stay open) must cost a reader one hedging threshold, not
/// the request timeout: the client asks other shards for the same bytes and
/// the first k to arrive win.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_data_server_is_hedged_around_not_waited_for() {
    let cluster = TestCluster::start(127);
    let (meta_addrs, key_file, tls) = cluster_config(&cluster);
    let mut cfg = ClientConfig::new(meta_addrs, key_file, tls);
    // Without hedging a fetch from the paused server would wait this long.
    cfg.shard_timeout = Duration::from_secs(120);
    let client = Client::connect(cfg).await.expect("connect");
    let data = pattern(9, 6 * CHUNK + 123);
    client.write_file("/hedge", &data).await.expect("write");
    assert_eq!(client.read_file("/hedge").await.expect("warm read"), data);
    assert_eq!(client.hedged_fetches(), 0, "a healthy cluster needs no hedges (threshold: a 500 ms ceiling)");
    // The server holding data shard 0 of the file's first chunk.
    let server = cluster
        .shard_files()
        .into_iter()
        .find(|s| s.key.chunk_index == 0 && s.key.shard_index == 0)
        .expect("shard 0 of chunk 0 on some server")
        .server;
    let paused = cluster.pause_data(server);
    let whole = client.read_file("/hedge").await.expect("read with a server paused");
    let range = client.open("/hedge").await.expect("open").read_at(10, 1000).await.expect("a range of chunk 0");
    drop(paused);
    assert!(whole == data, "the hedged read returned other bytes");
    assert_eq!(&range[..], &data[10..1010]);
    assert!(client.hedged_fetches() > 0, "the paused server's shards were waited for, not hedged");
}
