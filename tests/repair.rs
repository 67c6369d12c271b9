//! Failure, repair, scrub, capacity and garbage collection on a real
//! cluster of separate processes.

mod harness;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use harness::{content, TestCluster, CHUNK};

/// (file, chunk, version) → shard indexes present on live servers, and the
/// servers holding them.
fn shard_census(c: &TestCluster, dead: &[u64]) -> BTreeMap<String, (BTreeSet<u32>, BTreeSet<u64>)> {
    let mut census: BTreeMap<String, (BTreeSet<u32>, BTreeSet<u64>)> = BTreeMap::new();
    for s in c.shard_files() {
        let (server, name) = (s.server, s.name);
        if dead.contains(&server) {
            continue;
        }
        let (chunk, shard) = name.rsplit_once('-').unwrap();
        let entry = census.entry(chunk.to_string()).or_default();
        entry.0.insert(u32::from_str_radix(shard, 16).unwrap());
        entry.1.insert(server);
    }
    census
}

fn healthy(v: &serde_json::Value) -> bool {
    let pgs = &v["placement_groups"];
    pgs["total"].as_u64().unwrap_or(0) > 0 && pgs["healthy"] == pgs["total"] && pgs["rebuilds_pending"] == 0
}

#[test]
fn repair_restores_every_shard_and_survives_two_more_failures() {
    let c = TestCluster::start_with(21, &["--data", "8"]);
    let files: Vec<(String, Vec<u8>)> =
        (0..6).map(|i| (format!("/r{i}"), content(7 * CHUNK / 2 + i * 333, 300 + i as u64))).collect();
    for (p, d) in &files {
        c.put_bytes(p, d);
    }
    let chunks_written = shard_census(&c, &[]).len();
    assert_eq!(chunks_written, 6 * 4, "6 files x 4 chunks");

    c.kill_data(1);
    c.kill_data(2);
    for (p, d) in &files {
        assert_eq!(&c.get_bytes(p).unwrap(), d, "{p} right after two failures");
    }
    let start = std::time::Instant::now();
    let rebuilt_bytes = |v: &serde_json::Value| -> u64 {
        v["data"].as_array().unwrap().iter().map(|d| d["rebuild_bytes"].as_u64().unwrap_or(0)).sum()
    };
    // Rebuild progress reaches the leader with the next heartbeat.
    let v = c.wait_status(Duration::from_secs(90), |v| {
        healthy(v)
            && v["data"].as_array().unwrap().iter().filter(|d| d["state"] == "down").count() == 2
            && rebuilt_bytes(v) > 0
    });
    let rebuilt = rebuilt_bytes(&v);
    eprintln!(
        "repair: {rebuilt} bytes rebuilt, cluster healthy {:.1} s after the failures (includes the 3 s failure timeout)",
        start.elapsed().as_secs_f64()
    );
    assert!(rebuilt > 0);

    // Shard by shard: every chunk has all 6 shards on 6 distinct live servers.
    let census = shard_census(&c, &[1, 2]);
    assert_eq!(census.len(), chunks_written);
    for (chunk, (shards, servers)) in &census {
        assert_eq!(shards.len(), 6, "chunk {chunk} has shards {shards:?}");
        assert_eq!(servers.len(), 6, "chunk {chunk} on servers {servers:?}");
    }

    c.kill_data(3);
    c.kill_data(4);
    for (p, d) in &files {
        assert_eq!(&c.get_bytes(p).unwrap(), d, "{p} after four failures with repair in between");
    }
}

#[test]
fn small_files_are_stored_as_copies_that_survive_two_failures_and_are_rebuilt() {
    let c = TestCluster::start_with(147, &["--data", "8"]);
    // Files ending inside their first chunk, at most 128 KiB (the default):
    // one chunk each, stored as 3 whole copies (shards 0, 1, 2) instead of
    // 4+2 cells. The large file's chunks stay 4+2.
    let small: Vec<(String, Vec<u8>)> = [1, 4000, 30_000, CHUNK - 1]
        .iter()
        .enumerate()
        .map(|(i, &n)| (format!("/s{i}"), content(n, 40 + i as u64)))
        .collect();
    let large = ("/large".to_string(), content(3 * CHUNK + 100, 50));
    for (p, d) in small.iter().chain([&large]) {
        c.put_bytes(p, d);
    }
    let copies = |census: &BTreeMap<String, (BTreeSet<u32>, BTreeSet<u64>)>| {
        census.values().filter(|(shards, servers)| shards == &BTreeSet::from([0, 1, 2]) && servers.len() == 3).count()
    };
    let full = |census: &BTreeMap<String, (BTreeSet<u32>, BTreeSet<u64>)>| {
        census.values().filter(|(shards, servers)| shards.len() == 6 && servers.len() == 6).count()
    };
    let census = shard_census(&c, &[]);
    assert_eq!((copies(&census), full(&census), census.len()), (4, 4, 8), "{census:?}");

    // `small_file_max = 0` in the cluster file: its clients erasure-code every file.
    let toml = std::fs::read_to_string(c.cluster_file()).unwrap();
    std::fs::write(c.cluster_file(), format!("small_file_max = 0\n{toml}")).unwrap();
    c.put_bytes("/coded", &content(4000, 60));
    std::fs::write(c.cluster_file(), &toml).unwrap();
    let census = shard_census(&c, &[]);
    assert_eq!((copies(&census), full(&census), census.len()), (4, 5, 9), "{census:?}");

    // Two of one small file's three holders die: every file still reads.
    let holders: Vec<u64> = census.values().find(|(shards, _)| shards.len() == 3).unwrap().1.iter().copied().collect();
    let dead = [holders[0], holders[1]];
    c.kill_data(dead[0]);
    c.kill_data(dead[1]);
    for (p, d) in small.iter().chain([&large]) {
        assert_eq!(&c.get_bytes(p).unwrap(), d, "{p} with servers {dead:?} down");
    }
    // Repair brings every chunk back to full strength on live servers:
    // copies are rebuilt as copies, and slots past a chunk's 3 shards are
    // done without anything to rebuild.
    c.wait_status(Duration::from_secs(90), |v| {
        healthy(v) && v["data"].as_array().unwrap().iter().filter(|d| d["state"] == "down").count() == 2
    });
    let census = shard_census(&c, &dead);
    assert_eq!((copies(&census), full(&census), census.len()), (4, 5, 9), "after repair: {census:?}");
    let more: Vec<u64> = census.values().find(|(shards, _)| shards.len() == 3).unwrap().1.iter().copied().collect();
    c.kill_data(more[0]);
    c.kill_data(more[1]);
    for (p, d) in small.iter().chain([&large]) {
        assert_eq!(&c.get_bytes(p).unwrap(), d, "{p} after four failures with repair in between");
    }
}

#[test]
fn scrub_finds_and_repairs_bit_rot_and_reads_stay_correct() {
    let c = TestCluster::start(22);
    let data = content(6 * CHUNK, 9);
    c.put_bytes("/rot", &data);
    // Rot two shards of every chunk (a data and a parity shard): as many as
    // RS 4+2 can lose, so reads must still be right.
    let mut flipped = 0;
    for (i, s) in c.shard_files().into_iter().enumerate() {
        if s.key.shard_index == 1 || s.key.shard_index == 4 {
            s.flip(harness::PAYLOAD_BYTE + (i as u64 * 37) % 1000, 0x08);
            flipped += 1;
        }
    }
    assert_eq!(flipped, 6 * 2);
    assert_eq!(c.get_bytes("/rot").unwrap(), data, "reads are right while shards are rotten");
    let report: serde_json::Value = serde_json::from_str(&c.ok(&["admin", "scrub", "--json"])).unwrap();
    assert_eq!(report["corrupt"], flipped, "{report}");
    assert_eq!(report["repaired"], flipped, "{report}");
    let again: serde_json::Value = serde_json::from_str(&c.ok(&["admin", "scrub", "--json"])).unwrap();
    assert_eq!(again["corrupt"], 0, "{again}");
    assert_eq!(again["checked"], 6 * 6);
    assert_eq!(c.get_bytes("/rot").unwrap(), data);
}

#[test]
fn a_data_server_killed_mid_write_never_exposes_a_torn_file() {
    let c = TestCluster::start_with(23, &["--data", "7"]);
    let data = content(400 * CHUNK, 77);
    let local = c.dir.path().join("big");
    std::fs::write(&local, &data).unwrap();
    let mut put = std::process::Command::new(harness::BIN)
        .arg("--cluster")
        .arg(c.cluster_file())
        .args(["put", local.to_str().unwrap(), "/big"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Kill a server once the write has started committing chunks.
    c.wait_status(Duration::from_secs(30), |v| {
        v["data"].as_array().unwrap().iter().map(|d| d["shards"].as_u64().unwrap_or(0)).sum::<u64>() > 60
    });
    c.kill_data(2);
    let status = put.wait().unwrap();
    match c.get_bytes("/big") {
        Ok(read) => {
            assert!(status.success(), "the file is visible, so the put must have succeeded");
            assert_eq!(read, data, "a completed write reads back exactly");
        }
        Err(e) => {
            assert!(!status.success(), "put reported success but the file does not read: {e}");
            assert!(e.contains("not found") || e.contains("No such") || e.contains("no such"), "{e}");
        }
    }
}

#[test]
fn a_full_disk_is_enospc_and_files_already_written_still_read() {
    let c = TestCluster::start_with(24, &["--data-capacity", "400000"]);
    let small = content(CHUNK, 1);
    c.put_bytes("/small", &small);
    let local = c.dir.path().join("huge");
    std::fs::write(&local, content(40 * CHUNK, 2)).unwrap();
    let out = c.cli(&["put", local.to_str().unwrap(), "/huge"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no space"), "ENOSPC expected: {err}");
    assert!(c.get_bytes("/huge").is_err(), "a failed write is not visible");
    assert_eq!(c.get_bytes("/small").unwrap(), small);
}

#[test]
fn garbage_collection_deletes_orphan_shards_and_keeps_live_ones() {
    // This cluster's operator lowers the grace floor (default 60 s) so that
    // orphans made a moment ago can be collected now.
    let mut c = TestCluster::unstarted(25, &[]);
    c.up_env.push(("SHARDLINE_GC_MIN_GRACE_MS".into(), "0".into()));
    c.up();
    let data = content(2 * CHUNK, 5);
    c.put_bytes("/keep", &data);
    let live = c.shard_files();
    assert_eq!(live.len(), 12);
    // Forge orphans: copies of live shards under a version no file refers
    // to, as shard files of the per-file store (format version 1) beside
    // the server's store; the segment store migrates them at its next start.
    for s in live.iter().take(3) {
        let key = shardline_types::ShardKey { version: 0xdead_beef, ..s.key };
        let payload = s.payload();
        let header = shardline_data::shard_format::ShardHeader {
            key,
            payload_len: payload.len() as u64,
            payload_crc: crc32c::crc32c(&payload),
        };
        // Shard files live in the subdirectory named by their name's CRC32C.
        let forged = key.file_name();
        let subdir = s.dir.join("shards").join(format!("{:02x}", crc32c::crc32c(forged.as_bytes()) & 0xff));
        std::fs::create_dir_all(&subdir).unwrap();
        std::fs::write(subdir.join(forged), [&header.encode()[..], &payload].concat()).unwrap();
    }
    assert_eq!(c.shard_files().len(), 15);
    // Data servers read shard files of the per-file stores when they start,
    // as they would after switching stores.
    c.restart();
    let report: serde_json::Value = serde_json::from_str(&c.ok(&["admin", "gc", "--grace-ms", "0", "--json"])).unwrap();
    assert_eq!(report["deleted"], 3, "{report}");
    assert_eq!(c.shard_files().len(), 12);
    assert_eq!(c.get_bytes("/keep").unwrap(), data);
    // Overwriting a file releases the old version's shards.
    c.put_bytes("/keep", b"new");
    c.ok(&["admin", "gc", "--grace-ms", "0"]);
    assert_eq!(c.shard_files().len(), 3, "3 bytes are stored as 3 copies (a small file)");
}

/// Kills a child process when dropped.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_server_with_two_disks_never_holds_two_shards_of_one_chunk() {
    let c = TestCluster::start(26);
    let cluster: toml::Value = toml::from_str(&std::fs::read_to_string(c.cluster_file()).unwrap()).unwrap();
    let metas: Vec<String> =
        cluster["meta"].as_array().unwrap().iter().map(|m| m["addr"].as_str().unwrap().to_string()).collect();
    let port = || std::net::TcpListener::bind("127.0.0.26:0").unwrap().local_addr().unwrap().port();
    let (p7, p8) = (port(), port());
    let (d7, d8) = (c.dir.path().join("disk-a"), c.dir.path().join("disk-b"));
    // One certificate names both of the server's targets.
    let certs = c.data_dir().join("certs");
    let out = certs.join("data-7-8");
    let issued = c.cli(&[
        "admin",
        "certs",
        "issue",
        "--dir",
        certs.to_str().unwrap(),
        "--role",
        "data",
        "--id",
        "7",
        "--id",
        "8",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(issued.status.success(), "{}", String::from_utf8_lossy(&issued.stderr));
    let mut tls = c.server_tls_args("data", 1);
    tls[1] = out.with_extension("pem").display().to_string();
    tls[3] = out.with_extension("key").display().to_string();
    let _server = KillOnDrop(
        std::process::Command::new(harness::BIN)
            .args(["data", "--id", "7", "--listen", &format!("127.0.0.26:{p7}"), "--heartbeat-ms", "500"])
            .args(&tls)
            .arg("--dir")
            .arg(&d7)
            .arg("--target")
            .arg(format!("8:127.0.0.26:{p8}:{}", d8.display()))
            .args(["--meta", &metas.join(",")])
            .arg("--cap-key-file")
            .arg(c.data_dir().join("cap.key"))
            .env("SHARDLINE_LOG", "warn")
            .spawn()
            .unwrap(),
    );
    c.wait_status(Duration::from_secs(60), |v| {
        v["data"].as_array().unwrap().iter().filter(|d| d["state"] == "up").count() == 8 && healthy(v)
    });
    let files: Vec<(String, Vec<u8>)> = (0..8).map(|i| (format!("/m{i}"), content(3 * CHUNK, 900 + i))).collect();
    for (p, d) in &files {
        c.put_bytes(p, d);
    }
    let mut per_chunk: BTreeMap<String, BTreeSet<&str>> = BTreeMap::new();
    let mut on_new_disks = 0;
    for dir in [&d7, &d8] {
        for s in harness::shards_in(7, dir) {
            let (chunk, _) = s.name.rsplit_once('-').unwrap();
            let disk = if dir == &d7 { "a" } else { "b" };
            per_chunk.entry(chunk.to_string()).or_default().insert(disk);
            on_new_disks += 1;
        }
    }
    assert!(on_new_disks > 0, "the two-disk server holds no shards");
    for (chunk, disks) in per_chunk {
        assert_eq!(disks.len(), 1, "chunk {chunk} has shards on both disks of one server");
    }
    for (p, d) in &files {
        assert_eq!(&c.get_bytes(p).unwrap(), d);
    }
}
