//! Black-box tests of a real local cluster: separate `shardline` processes
//! talking TCP on loopback, files written and read through the CLI.

mod harness;
#[path = "harness/meta_cluster.rs"]
mod meta_cluster;

use harness::{content, TestCluster, CHUNK};

/// File sizes that trip chunking and padding code.
fn awkward_sizes() -> Vec<(String, usize)> {
    [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 17].iter().map(|&n| (format!("/awkward/f-{n}"), n)).collect()
}

#[test]
fn awkward_sizes_read_back_exactly_before_and_after_a_full_restart() {
    let mut c = TestCluster::start(11);
    c.ok(&["mkdir", "/awkward"]);
    for (i, (path, len)) in awkward_sizes().iter().enumerate() {
        c.put_bytes(path, &content(*len, i as u64));
    }
    for (i, (path, len)) in awkward_sizes().iter().enumerate() {
        assert_eq!(c.get_bytes(path).unwrap(), content(*len, i as u64), "{path} before restart");
    }
    let listing = c.ok(&["ls", "/awkward"]);
    assert_eq!(listing.lines().count(), awkward_sizes().len(), "no temporary files left: {listing}");

    c.restart();
    for (i, (path, len)) in awkward_sizes().iter().enumerate() {
        assert_eq!(c.get_bytes(path).unwrap(), content(*len, i as u64), "{path} after restart");
        let stat: serde_json::Value = serde_json::from_str(&c.ok(&["stat", "--json", path])).unwrap();
        assert_eq!(stat["size"], *len as u64);
        assert_eq!(stat["encrypted"], true);
        assert_eq!(stat["ec"], "4+2");
    }
    // The namespace survived too: new writes land beside the old files.
    c.put_bytes("/awkward/after", b"after restart");
    assert_eq!(c.get_bytes("/awkward/after").unwrap(), b"after restart");
}

#[test]
fn two_dead_data_servers_still_read_exactly_and_a_third_fails_cleanly() {
    let c = TestCluster::start(12);
    let files: Vec<(String, Vec<u8>)> =
        (0..4).map(|i| (format!("/f{i}"), content(5 * CHUNK / 2 + i * 1000, 100 + i as u64))).collect();
    for (p, d) in &files {
        c.put_bytes(p, d);
    }
    c.kill_data(1);
    c.kill_data(2);
    for (p, d) in &files {
        assert_eq!(&c.get_bytes(p).unwrap(), d, "{p} with 2 of 6 servers down");
    }
    c.kill_data(3);
    for (p, _) in &files {
        let err = c.get_bytes(p).expect_err("only 3 of 6 shards remain; the read must fail");
        assert!(err.contains("only 3 of the 4 shards needed"), "clear error expected, got: {err}");
    }
}

#[test]
fn flipped_bytes_in_shard_files_are_caught_and_served_from_parity() {
    let c = TestCluster::start(13);
    let data = content(4 * CHUNK, 7);
    c.put_bytes("/rot", &data);
    // Flip a byte in the payload of two shard files of every chunk's data
    // shards 0 and 1 (the ones a healthy read uses).
    let mut flipped = 0;
    for s in c.shard_files() {
        if s.key.shard_index > 1 {
            continue;
        }
        s.flip(harness::PAYLOAD_BYTE, 0x40);
        flipped += 1;
    }
    assert_eq!(flipped, 8, "4 chunks x shards 0 and 1");
    assert_eq!(c.get_bytes("/rot").unwrap(), data);
}

#[test]
fn no_plaintext_reaches_any_disk() {
    let c = TestCluster::start(14);
    let canary = b"SHARDLINE-CANARY-PLAINTEXT-7f3a9c ".repeat(3 * CHUNK / 34);
    c.put_bytes("/canary.txt", &canary);
    assert_eq!(c.get_bytes("/canary.txt").unwrap(), canary);
    let needle = b"CANARY-PLAINTEXT";
    let files = c.all_files();
    assert!(files.len() > 10, "expected shard and log files, found {}", files.len());
    for f in files {
        let bytes = std::fs::read(&f).unwrap_or_default();
        assert!(!bytes.windows(needle.len()).any(|w| w == needle), "plaintext found in {}", f.display());
    }
    // The key file exists, is private, and is not a data-server file.
    let key = c.data_dir().join("kek.key");
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&key).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn admin_status_reports_a_leader_and_every_data_server() {
    let c = TestCluster::start(15);
    let v: serde_json::Value = serde_json::from_str(&c.ok(&["admin", "status", "--json"])).unwrap();
    let metas = v["meta"].as_array().unwrap();
    assert_eq!(metas.len(), 3);
    assert_eq!(metas.iter().filter(|m| m["role"] == "leader").count(), 1, "{v}");
    let data = v["data"].as_array().unwrap();
    assert_eq!(data.len(), 6);
    assert!(data.iter().all(|d| d["state"] == "up" && d["capacity_bytes"].as_u64().unwrap() > 0), "{v}");
    assert_eq!(v["placement_groups"]["healthy"], v["placement_groups"]["total"]);
    // File commands: mkdir, ls, rm.
    c.ok(&["mkdir", "/d"]);
    c.put_bytes("/d/x", b"x");
    assert_eq!(c.ok(&["ls", "/"]).trim(), "d/");
    assert!(!c.cli(&["rm", "/d"]).status.success(), "rm of a non-empty directory must fail");
    c.ok(&["rm", "/d/x"]);
    c.ok(&["rm", "/d"]);
    assert_eq!(c.ok(&["ls", "/"]).trim(), "");
    let missing = c.cli(&["get", "/nope", "/dev/null"]);
    assert!(!missing.status.success());
}

#[test]
fn demo_runs_end_to_end_and_reports_json() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path().join("demo");
    let out = std::process::Command::new(harness::BIN)
        .args(["demo", "--size", &(48u64 << 20).to_string(), "--files", "3", "--json", "--data-dir"])
        .arg(&dir)
        .output()
        .expect("run demo");
    assert!(out.status.success(), "demo failed: {}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert_eq!(v["bytes"], 48u64 << 20);
    assert_eq!(v["files"], 3);
    assert_eq!(v["verified"], true);
    assert_eq!(v["first_bad"], serde_json::Value::Null);
    assert_eq!(v["encrypted"], true);
    assert_eq!(v["ec"], "4+2");
    // The suite the files record: AES-256-GCM where the CPU has AES instructions.
    let suite = if shardline_crypto::aes_instructions() { "aes-256-gcm" } else { "xchacha20-poly1305" };
    assert_eq!(v["cipher"], suite, "{v}");
    for k in ["write_mbps", "read_mbps", "loopback_mbps"] {
        assert!(v[k].as_f64().unwrap() > 0.0, "{k}: {v}");
    }
    demo_json_says_what_stored_the_data(&v, &dir);
}

/// Issue 9 item 14: the data servers' own report of their store backend,
/// O_DIRECT or buffered I/O, and the file system under their folders.
fn demo_json_says_what_stored_the_data(v: &serde_json::Value, dir: &std::path::Path) {
    let each = v["data_server_storage"].as_array().expect("data_server_storage");
    // K+M+2 for 4+2: two spares, so a dead server's slots can move.
    assert_eq!(v["data_servers"], 8, "{v}");
    assert_eq!(each.len(), 8, "every data server reported: {v}");
    let backend = v["store_backend"].as_str().expect("store_backend");
    assert!(backend == "segment" || backend == "io_uring" || backend == "file", "{v}");
    assert!(v["direct_io"].is_boolean(), "{v}");
    if backend == "file" {
        assert_eq!(v["direct_io"], false, "the file store is buffered: {v}");
    }
    assert_eq!(v["data_fs"].as_str(), Some(mount_type_of(dir).as_str()), "{v}");
}

/// The type of the mount holding `path`, by the longest mount point that
/// is a prefix of it (independent of how the data servers find it).
fn mount_type_of(path: &std::path::Path) -> String {
    let path = path.canonicalize().expect("canonical path");
    let table = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    let mut best: Option<(usize, String)> = None;
    for line in table.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let Some((_, after)) = line.split_once(" - ") else { continue };
        let mount = fields[4].replace("\\040", " ");
        let fs = after.split(' ').next().unwrap_or("").to_string();
        if path.starts_with(&mount) && best.as_ref().is_none_or(|(len, _)| mount.len() >= *len) {
            best = Some((mount.len(), fs));
        }
    }
    best.expect("a mount holds every path").1
}

#[test]
fn a_directory_layout_policy_is_inherited_by_new_files() {
    let c = TestCluster::start(16);
    c.ok(&["mkdir", "/narrow"]);
    let shown = c.ok(&["layout", "/narrow", "--ec", "2+2", "--chunk-size", "32768"]);
    assert!(shown.contains("RS 2+2, 32 KiB chunks"), "{shown}");
    c.ok(&["mkdir", "/narrow/sub"]);
    let data = content(5 * CHUNK + 3, 16);
    c.put_bytes("/narrow/sub/f", &data);
    let stat: serde_json::Value = serde_json::from_str(&c.ok(&["stat", "--json", "/narrow/sub/f"])).unwrap();
    assert_eq!(stat["ec"], "2+2");
    assert_eq!(stat["chunk_size"], 32768);
    assert_eq!(c.get_bytes("/narrow/sub/f").unwrap(), data);
    // 2+2 over 32 KiB chunks: 4 shards for each of the 11 chunks.
    assert_eq!(c.shard_files().len(), 4 * 11);
    // Files elsewhere keep the cluster default.
    c.put_bytes("/plain", b"x");
    let stat: serde_json::Value = serde_json::from_str(&c.ok(&["stat", "--json", "/plain"])).unwrap();
    assert_eq!(stat["ec"], "4+2");
    assert!(!c.cli(&["layout", "/plain", "--ec", "2+1"]).status.success(), "files carry no policy");
    assert!(!c.cli(&["layout", "/narrow", "--ec", "9+9"]).status.success(), "wider than the placement groups");
}

/// Linux names are bytes, and so are the native client's paths: a Latin-1
/// or 0xFF name goes through the client API and the CLI exactly, survives a
/// restart (the Raft log replayed), and only human output shows it lossily.
#[test]
fn names_that_are_not_utf8_work_through_the_native_client_and_the_cli() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    use std::path::{Path, PathBuf};
    use std::time::Duration;
    let p = |b: &[u8]| PathBuf::from(OsStr::from_bytes(b));
    let mut c = TestCluster::start(17);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let client = rt.block_on(meta_cluster::connect(&c, Duration::from_secs(30)));
    let data = content(2 * CHUNK + 5, 17);
    rt.block_on(async {
        client.mkdir(p(b"/caf\xe9")).await.unwrap();
        client.write_file(p(b"/caf\xe9/\xff"), &data).await.unwrap();
        let list = client.list(p(b"/caf\xe9")).await.unwrap();
        assert_eq!(list.iter().map(|e| e.name.clone()).collect::<Vec<_>>(), vec![b"\xff".to_vec()]);
        assert_eq!(list[0].file_name(), OsStr::from_bytes(b"\xff"));
        assert_eq!(client.stat(p(b"/caf\xe9/\xff")).await.unwrap().size, data.len() as u64);
        client.rename(p(b"/caf\xe9/\xff"), p(b"/na\xefve")).await.unwrap();
        assert!(client.stat(p(b"/caf\xe9/\xff")).await.is_err());
        assert_eq!(client.read_file(p(b"/na\xefve")).await.unwrap(), data);
        // The inode API: names and xattr names as bytes.
        let inodes = client.inodes();
        let f = inodes.lookup(shardline_types::ROOT_INO, b"na\xefve").await.unwrap();
        inodes.setxattr(f.ino, b"user.\xff", b"v", Default::default()).await.unwrap();
        assert_eq!(inodes.listxattr(f.ino).await.unwrap(), vec![b"user.\xff".to_vec()]);
        assert_eq!(inodes.getxattr(f.ino, b"user.\xff").await.unwrap(), b"v");
        // Paths are still checked: NUL, "..", not absolute.
        assert!(client.stat(p(b"/a\0b")).await.is_err());
        assert!(client.mkdir(p(b"/caf\xe9/..")).await.is_err());
    });
    drop(client);
    // The CLI takes such paths as arguments and shows them lossily.
    let local = c.dir.path().join("local");
    std::fs::write(&local, b"from the cli").unwrap();
    let cli = |args: &[&OsStr]| {
        let out = std::process::Command::new(harness::BIN)
            .arg("--cluster")
            .arg(c.cluster_file())
            .args(args)
            .env("SHARDLINE_LOG", "warn")
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        out.stdout
    };
    cli(&[OsStr::new("put"), local.as_os_str(), OsStr::from_bytes(b"/caf\xe9/\xe9t\xe9")]);
    let back = c.dir.path().join("back");
    cli(&[OsStr::new("get"), OsStr::from_bytes(b"/caf\xe9/\xe9t\xe9"), back.as_os_str()]);
    assert_eq!(std::fs::read(&back).unwrap(), b"from the cli");
    assert_eq!(c.ok(&["ls", "/"]), "caf\u{FFFD}/\nna\u{FFFD}ve\n");
    let json: serde_json::Value =
        serde_json::from_slice(&cli(&[OsStr::new("ls"), OsStr::new("--json"), OsStr::new("/")])).unwrap();
    assert_eq!(json[0]["name_bytes"], serde_json::json!(b"caf\xe9"));
    // After a restart (the log replayed), the names are still exact.
    c.restart();
    let client = rt.block_on(meta_cluster::connect(&c, Duration::from_secs(30)));
    rt.block_on(async {
        assert_eq!(client.read_file(p(b"/na\xefve")).await.unwrap(), data);
        assert_eq!(
            client.read_file(Path::new(OsStr::from_bytes(b"/caf\xe9/\xe9t\xe9"))).await.unwrap(),
            b"from the cli"
        );
        client.remove(p(b"/caf\xe9/\xe9t\xe9")).await.unwrap();
        client.remove(p(b"/caf\xe9")).await.unwrap();
        client.remove(p(b"/na\xefve")).await.unwrap();
        assert!(client.list("/").await.unwrap().is_empty());
    });
}
