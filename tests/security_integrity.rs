//! File integrity (issue 12, item 5) against a real cluster of separate
//! processes on 127.0.0.132 (a proxy playing a compromised metadata server
//! listens on 127.0.0.133), one cluster for every case.
//!
//! An attacker with a valid client certificate (but not the key file) can
//! write metadata the service cannot check: it (a) rolls a chunk back to an
//! older version whose shards it saved and put back, (b) drops chunks (cut
//! and grown back: they would read as a hole), (c) shrinks the size, each
//! with a made-up manifest, and (d) cannot commit or resize without one; a
//! compromised metadata server answering without the manifest, or as an
//! empty file (with the key's wrap format downgraded, too), is (d)'s other
//! half. Every read — path API, inode handle (the mount's), prefetch —
//! — and a mount fails with an integrity error (EIO), never old bytes or a
//! hole. Two
//! writers of one file still merge, and a file made without a manifest
//! (wrap format 1, as before) reads and writes as it did. A shard that
//! passes its CRC but fails authentication is read around (another set of
//! k shards), whole and by range.

mod harness;
#[path = "harness/meta_proxy.rs"]
mod meta_proxy;
#[path = "harness/meta_tamper.rs"]
mod meta_tamper;
#[path = "harness/mount.rs"]
mod mount;

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use harness::{content, TestCluster, CHUNK};
use meta_tamper::{MetaTamper, Tamper};
use mount::Mount;
use shardline_client::inode_api::SetAttrRequest;
use shardline_client::{Client, ClientConfig, ClientError, FileHandle, PrefetchConfig, PrefetchItem, WrapFormat};
use shardline_crypto::{cap_ops, issue_cap, now_ms, CapKey, Capability};
use shardline_proto::v1 as pb;
use shardline_proto::v1::meta_request::Body;
use shardline_proto::v1::meta_response::Body as RBody;
use shardline_rpc::shard_client;
use shardline_rpc::{MetaCallError, MetaClient, Pool, Role};
use shardline_types::{ErrorCode, ROOT_INO};

/// The servers' addresses by kind and id, from `cluster.toml`.
fn addrs(c: &TestCluster, kind: &str) -> HashMap<u64, String> {
    c.servers(kind).into_iter().collect()
}

fn key_file(c: &TestCluster) -> PathBuf {
    let text = std::fs::read_to_string(c.cluster_file()).expect("read cluster.toml");
    let v: toml::Value = toml::from_str(&text).expect("parse cluster.toml");
    c.data_dir().join(v["key_file"].as_str().expect("key_file"))
}

async fn client(c: &TestCluster, meta: Vec<String>, wrap: WrapFormat) -> Client {
    let mut cfg = ClientConfig::new(meta, key_file(c), c.identity(Role::Client));
    cfg.wrap_format = wrap;
    Client::connect(cfg).await.expect("connect")
}

/// An integrity error, reported as EIO.
fn assert_integrity<T>(what: &str, r: Result<T, ClientError>) {
    match r {
        Err(e @ ClientError::Integrity { .. }) => assert_eq!(e.code().errno(), libc_eio(), "{what}: {e}"),
        Err(e) => panic!("{what}: expected an integrity error, got {e}"),
        Ok(_) => panic!("{what}: read despite tampered metadata"),
    }
}

fn libc_eio() -> i32 {
    libc::EIO
}

/// A manifest the attacker makes up: the next sequence number, any MAC.
fn forged(seq: u64) -> Option<pb::FileManifest> {
    Some(pb::FileManifest { format: 1, seq, mac: rand::random::<[u8; 32]>().to_vec() })
}

async fn attr(meta: &MetaClient, name: &str) -> pb::Attr {
    let lookup = pb::Lookup { parent: ROOT_INO, name: name.as_bytes().to_vec() };
    match meta.call(Body::Lookup(lookup)).await.expect("lookup").body {
        Some(RBody::Attr(a)) => a,
        other => panic!("lookup answer: {other:?}"),
    }
}

async fn chunks(meta: &MetaClient, ino: u64) -> Vec<pb::Chunk> {
    let get = pb::GetChunks { ino, from_index: 0, limit: 1000 };
    match meta.call(Body::GetChunks(get)).await.expect("chunk list").body {
        Some(RBody::Chunks(list)) => list.chunks,
        other => panic!("chunk list answer: {other:?}"),
    }
}

fn seq(a: &pb::Attr) -> u64 {
    a.manifest.as_ref().expect("files made now have a manifest").seq
}

/// Every read path refuses `/name`.
async fn assert_unreadable(cl: &Client, name: &str, ino: u64, what: &str) {
    assert_integrity(&format!("{what}: path read"), cl.read_file(format!("/{name}")).await);
    assert_integrity(&format!("{what}: inode open (the mount's)"), FileHandle::open(cl, ino).await);
    let mut stream = cl.prefetch(vec![PrefetchItem::File(format!("/{name}").into())], PrefetchConfig::default());
    let item = stream.next().await.expect("a prefetch item");
    assert_integrity(&format!("{what}: prefetch"), item.data);
}

#[test]
fn tampered_chunk_lists_and_sizes_fail_to_read_and_writers_still_merge() {
    let c = TestCluster::start(132);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let metas: Vec<String> = addrs(&c, "meta").into_values().collect();
    rt.block_on(async {
        let honest = client(&c, metas.clone(), WrapFormat::V2).await;
        let attacker = MetaClient::new(metas.clone(), Duration::from_secs(10), c.identity(Role::Client));
        let files: Vec<(&str, Vec<u8>)> =
            ["a", "b", "c", "d", "e"].iter().enumerate().map(|(i, n)| (*n, content(3 * CHUNK, i as u64))).collect();
        for (name, data) in &files {
            honest.write_file(format!("/{name}"), data).await.expect("write");
        }

        // (a) Roll chunk 1 of /a back to its first version. The attacker
        // saves that version's shards, lets the owner overwrite the chunk
        // (whose client deletes them), puts them back and commits them.
        let a = attr(&attacker, "a").await;
        let old = chunks(&attacker, a.ino).await.into_iter().find(|ch| ch.index == 1).expect("chunk 1");
        let is_old =
            |s: &harness::ShardOnDisk| s.key.file_id == a.ino && s.key.chunk_index == 1 && s.key.version == old.version;
        let saved: Vec<_> =
            c.shard_files().into_iter().filter(is_old).map(|s| (s.key, s.server, s.payload())).collect();
        assert_eq!(saved.len(), 6, "every shard of the old version was saved");
        let h = FileHandle::open(&honest, a.ino).await.expect("open /a");
        h.write_at(CHUNK as u64, &content(CHUNK, 99)).await.expect("overwrite chunk 1");
        h.flush().await.expect("commit the overwrite");
        let deadline = Instant::now() + Duration::from_secs(20);
        while c.shard_files().iter().any(is_old) {
            assert!(Instant::now() < deadline, "the replaced version's shards were never deleted");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let grant = pb::GrantCaps {
            ino: a.ino,
            ops: cap_ops::PUT,
            chunks: vec![pb::ChunkRef { index: 1, version: old.version }],
        };
        let cap = match attacker.call(Body::GrantCaps(grant)).await.expect("put capability").body {
            Some(RBody::Caps(caps)) => caps.caps.into_iter().next().expect("a token"),
            other => panic!("caps answer: {other:?}"),
        };
        let pool = Pool::new(c.identity(Role::Client), Role::Data, Duration::from_secs(2), Duration::from_secs(10));
        let data_addrs = addrs(&c, "data");
        for (key, server, bytes) in &saved {
            shard_client::put(&pool, &data_addrs[server], key, bytes.clone().into(), Some(&cap), cap.epoch, (4, 2))
                .await
                .expect("the old version's shards go back");
        }
        assert_eq!(c.shard_files().iter().filter(|s| is_old(s)).count(), 6, "the old version is whole again");
        let now = attr(&attacker, "a").await;
        let rollback = pb::CommitChunk {
            ino: a.ino,
            chunk: Some(pb::Chunk { cap: None, ..old.clone() }),
            new_size: now.size,
            epoch: 0,
            manifest: forged(seq(&now) + 1),
        };
        attacker.call(Body::CommitChunk(rollback)).await.expect("the service cannot tell a made-up manifest");
        assert_unreadable(&honest, "a", a.ino, "(a) a chunk rolled back").await;

        // (b) Drop chunks 1 and 2 of /b: cut to one chunk, grown back.
        let b = attr(&attacker, "b").await;
        for (i, size) in [CHUNK as u64, 3 * CHUNK as u64].into_iter().enumerate() {
            let set = pb::SetAttr {
                ino: b.ino,
                size: Some(size),
                manifest: forged(seq(&b) + 1 + i as u64),
                ..Default::default()
            };
            attacker.call(Body::SetAttr(set)).await.expect("resize");
        }
        assert_eq!(chunks(&attacker, b.ino).await.len(), 1, "chunks 1 and 2 are gone (a hole without the manifest)");
        assert_unreadable(&honest, "b", b.ino, "(b) chunks dropped").await;

        // (c) Shrink /c.
        let cf = attr(&attacker, "c").await;
        let set = pb::SetAttr {
            ino: cf.ino,
            size: Some(CHUNK as u64 + 10),
            manifest: forged(seq(&cf) + 1),
            ..Default::default()
        };
        attacker.call(Body::SetAttr(set)).await.expect("shrink");
        assert_unreadable(&honest, "c", cf.ino, "(c) size shrunk").await;

        // Through a mount: EIO, for reads and for opens that refresh.
        let m = Mount::start(&c, &[]);
        for name in ["a", "b", "c"] {
            let got = tokio::task::block_in_place(|| std::fs::read(m.path.join(name)));
            assert_eq!(
                got.map(|b| b.len()).map_err(|e| e.raw_os_error()),
                Err(Some(libc::EIO)),
                "/{name} through the mount"
            );
        }
        let untouched = tokio::task::block_in_place(|| std::fs::read(m.path.join("d")));
        assert!(untouched.expect("/d through the mount") == files[3].1);
        drop(m);

        // (d) Without a manifest the service refuses every change of the
        // chunk list or size, and nothing changes.
        let d = attr(&attacker, "d").await;
        let d_chunks = chunks(&attacker, d.ino).await;
        let no_manifest = [
            Body::CommitChunk(pb::CommitChunk {
                ino: d.ino,
                chunk: Some(pb::Chunk { cap: None, ..d_chunks[0].clone() }),
                new_size: d.size,
                epoch: 0,
                manifest: None,
            }),
            Body::SetAttr(pb::SetAttr { ino: d.ino, size: Some(0), ..Default::default() }),
        ];
        for body in no_manifest {
            match attacker.call(body).await {
                Err(MetaCallError::Service { code: ErrorCode::InvalidArgument, message }) => {
                    assert!(message.contains("manifest"), "{message}")
                }
                other => panic!("a change without a manifest: {other:?}"),
            }
        }
        assert_eq!(honest.read_file("/d").await.expect("/d is untouched"), files[3].1);

        // (d) A compromised metadata server (a proxy on .133 in front of
        // the leader) answers without the manifest, or as an empty file.
        let leader = c.meta_leader(Duration::from_secs(30));
        let proxy = MetaTamper::start(
            "127.0.0.133",
            &addrs(&c, "meta")[&leader],
            c.server_identity("meta", leader),
            c.identity(Role::Client),
        );
        // Without the metadata cache: each read asks the proxy again. (A
        // cached chunk list from the honest answer would be served until
        // the file changes — authentic, but it would not exercise the
        // tampering.)
        let fooled = {
            let mut cfg = ClientConfig::new(vec![proxy.addr.clone()], key_file(&c), c.identity(Role::Client));
            cfg.wrap_format = WrapFormat::V2;
            cfg.metadata_cache = false;
            Client::connect(cfg).await.expect("connect through the proxy")
        };
        assert_eq!(fooled.read_file("/d").await.expect("through the honest proxy"), files[3].1);
        proxy.set(d.ino, Tamper::DropManifest);
        assert_unreadable(&fooled, "d", d.ino, "(d) manifest dropped").await;
        proxy.set(d.ino, Tamper::Empty);
        assert_unreadable(&fooled, "d", d.ino, "(d) chunk list and size dropped").await;
        proxy.set(d.ino, Tamper::EmptyDowngraded);
        match fooled.read_file("/d").await {
            Err(e @ ClientError::Crypto(_)) => assert_eq!(e.code().errno(), libc_eio(), "{e}"),
            other => panic!("(d) wrap format downgraded: expected the key to fail to unwrap, got {other:?}"),
        }
        proxy.set(d.ino, Tamper::None);
        assert_eq!(fooled.read_file("/d").await.expect("honest again"), files[3].1);

        // Two writers of /e, each with its own client (its own manifest
        // state), both opened before either commits: the second commit is
        // made on a stale manifest, re-based on the first, and both land.
        let other = client(&c, metas.clone(), WrapFormat::V2).await;
        let e = attr(&attacker, "e").await;
        let (h1, h2) = (
            FileHandle::open(&honest, e.ino).await.expect("open"),
            FileHandle::open(&other, e.ino).await.expect("open"),
        );
        let mut want = files[4].1.clone();
        let (w0, w2) = (content(100, 7), content(CHUNK, 8));
        h1.write_at(10, &w0).await.expect("write");
        h1.flush().await.expect("first writer commits");
        h2.write_at(2 * CHUNK as u64, &w2).await.expect("write");
        h2.flush().await.expect("second writer commits on top of the first");
        want[10..110].copy_from_slice(&w0);
        want[2 * CHUNK..3 * CHUNK].copy_from_slice(&w2);
        // And concurrently, rounds of each writing its own chunk.
        for round in 0..4u64 {
            let (x, y) = (content(CHUNK, 20 + round), content(CHUNK, 40 + round));
            let (r1, r2) = tokio::join!(
                async {
                    h1.write_at(0, &x).await?;
                    h1.flush().await
                },
                async {
                    h2.write_at(CHUNK as u64, &y).await?;
                    h2.flush().await
                },
            );
            r1.expect("writer 1");
            r2.expect("writer 2");
            want[..CHUNK].copy_from_slice(&x);
            want[CHUNK..2 * CHUNK].copy_from_slice(&y);
        }
        assert!(honest.read_file("/e").await.expect("read merged") == want, "the writers' chunks did not all land");
        assert!(seq(&attr(&attacker, "e").await) >= 10, "every commit advanced the manifest");

        // A file made as before manifests (wrap format 1) reads and writes as before.
        let legacy = client(&c, metas.clone(), WrapFormat::V1).await;
        let mut old_data = content(2 * CHUNK + 5, 50);
        legacy.write_file("/legacy", &old_data).await.expect("write a format-1 file");
        let l = attr(&attacker, "legacy").await;
        assert_eq!((l.manifest.as_ref(), l.key.as_ref().map(|k| k.format)), (None, Some(1)));
        assert_eq!(honest.read_file("/legacy").await.expect("a new client reads it"), old_data);
        let h = FileHandle::open(&honest, l.ino).await.expect("open");
        h.write_at(3, b"new bytes").await.expect("write");
        h.set_attr(&honest.inodes(), &SetAttrRequest { size: Some(CHUNK as u64 + 9), ..Default::default() })
            .await
            .expect("truncate");
        old_data[3..12].copy_from_slice(b"new bytes");
        old_data.truncate(CHUNK + 9);
        assert_eq!(honest.read_file("/legacy").await.expect("read back"), old_data);
        assert_eq!(attr(&attacker, "legacy").await.manifest, None, "still no manifest");

        // Key rotation re-wraps every key in its own wrap format: files
        // with a manifest still need it, those without still read.
        let rotated = tokio::task::block_in_place(|| c.json(&["admin", "keys", "rotate", "--json"]));
        assert_eq!(rotated["new_version"], 2, "{rotated:#}");
        let (e2, l2) = (attr(&attacker, "e").await, attr(&attacker, "legacy").await);
        let version_format = |a: &pb::Attr| a.key.as_ref().map(|k| (k.kek_version, k.format));
        assert_eq!(version_format(&e2), Some((2, 2)), "rotation keeps wrap format 2");
        assert_eq!(version_format(&l2), Some((2, 1)), "and format 1");
        let after = client(&c, metas.clone(), WrapFormat::V2).await;
        assert!(after.read_file("/e").await.expect("read /e after rotation") == want);
        assert_eq!(after.read_file("/legacy").await.expect("read /legacy after rotation"), old_data);
        assert_unreadable(&after, "a", a.ino, "(a) after rotation").await;

        // A shard that passes its CRC but fails authentication (shard 0 of
        // chunk 0 replaced by shard 0 of chunk 1, as a hostile data server
        // could; the test mints the put token with the cluster key): the
        // reader tries another set of k and reads the right bytes.
        let s_data = content(2 * CHUNK, 60);
        honest.write_file("/s", &s_data).await.expect("write /s");
        let s = attr(&attacker, "s").await;
        let s_chunks = chunks(&attacker, s.ino).await;
        let shard_of = |index: u64| {
            c.shard_files()
                .into_iter()
                .find(|sh| sh.key.file_id == s.ino && sh.key.chunk_index == index && sh.key.shard_index == 0)
                .expect("shard 0")
        };
        let (victim, donor) = (shard_of(0), shard_of(1));
        assert_eq!(victim.payload_len, donor.payload_len);
        let cap_key = CapKey::load(&c.data_dir().join("cap.key")).expect("cluster capability key");
        let epoch = s_chunks[0].cap.as_ref().expect("a get token").epoch;
        let claim = Capability {
            file_id: s.ino,
            chunk_index: 0,
            version: victim.key.version,
            ops: cap_ops::PUT,
            epoch,
            expires_ms: now_ms() + 60_000,
        };
        let token = issue_cap(&cap_key, &claim);
        shard_client::put(
            &pool,
            &data_addrs[&victim.server],
            &victim.key,
            donor.payload().into(),
            Some(&token),
            epoch,
            (4, 2),
        )
        .await
        .expect("swap the shard");
        assert_eq!(shard_of(0).payload(), donor.payload(), "the swapped shard is what the server holds");
        let fresh = client(&c, metas.clone(), WrapFormat::V2).await;
        assert!(fresh.read_file("/s").await.expect("read around the bad shard") == s_data, "wrong bytes");
        let h = FileHandle::open(&fresh, s.ino).await.expect("open /s");
        let part = h.read_at(1000, 3000).await.expect("a range read around the bad shard");
        assert_eq!(&part[..], &s_data[1000..4000]);

        // The other shard tamperings, each stored with a valid CRC and a
        // valid put token in place of shard 0 of chunk 0: another file's
        // shard, the shard with one tag byte flipped (the last 16 bytes of
        // a cell are the tag of its last segment), the shard cut short.
        // Each is read around; then with three of the four data shards
        // tampered, fewer than k authenticate and the read fails: never
        // wrong bytes.
        honest.write_file("/t", &content(2 * CHUNK, 61)).await.expect("write /t");
        let t = attr(&attacker, "t").await;
        let other_file = c
            .shard_files()
            .into_iter()
            .find(|sh| sh.key.file_id == t.ino && sh.key.chunk_index == 0 && sh.key.shard_index == 0)
            .expect("shard 0 of /t")
            .payload();
        let good = victim.payload();
        let mut flipped_tag = good.clone();
        let last = flipped_tag.len() - 1;
        flipped_tag[last] ^= 0x01;
        let truncated = good[..good.len() - 4096].to_vec();
        let put_as = |index: u32, bytes: Vec<u8>| {
            let (pool, data_addrs, cap_key) = (&pool, &data_addrs, &cap_key);
            let sh = c
                .shard_files()
                .into_iter()
                .find(|sh| sh.key.file_id == s.ino && sh.key.chunk_index == 0 && sh.key.shard_index == index)
                .expect("the shard");
            async move {
                let claim = Capability { version: sh.key.version, ..claim };
                shard_client::put(
                    pool,
                    &data_addrs[&sh.server],
                    &sh.key,
                    bytes.into(),
                    Some(&issue_cap(cap_key, &claim)),
                    epoch,
                    (4, 2),
                )
                .await
                .expect("put a tampered shard");
            }
        };
        for (what, bytes) in [
            ("another file's shard", other_file),
            ("a flipped tag byte", flipped_tag),
            ("a truncated shard", truncated),
        ] {
            put_as(0, bytes).await;
            let fresh = client(&c, metas.clone(), WrapFormat::V2).await;
            let whole = fresh.read_file("/s").await.unwrap_or_else(|e| panic!("read around {what}: {e}"));
            assert!(whole == s_data, "wrong bytes read around {what}");
            let h = FileHandle::open(&fresh, s.ino).await.expect("open /s");
            let part = h.read_at(1000, 3000).await.unwrap_or_else(|e| panic!("range read around {what}: {e}"));
            assert_eq!(&part[..], &s_data[1000..4000], "range read around {what}");
        }
        for index in 1..3 {
            let sh = c
                .shard_files()
                .into_iter()
                .find(|sh| sh.key.file_id == s.ino && sh.key.chunk_index == 0 && sh.key.shard_index == index)
                .expect("the shard");
            let mut bad = sh.payload();
            bad[0] ^= 0x80;
            put_as(index, bad).await;
        }
        let fresh = client(&c, metas.clone(), WrapFormat::V2).await;
        match fresh.read_file("/s").await {
            Ok(bytes) => panic!("three tampered data shards read as {} bytes, equal: {}", bytes.len(), bytes == s_data),
            Err(e) => assert!(!e.to_string().is_empty()),
        }
    });
}
