//! Key rotation, black-box (127.0.0.130-131): `shardline admin keys rotate`
//! while a long-lived client keeps reading every file (each read byte-exact,
//! none failing) and creating new ones; `admin keys status --json` then shows
//! every file under the new version and none under the old; `rotate
//! --retire` drops the old version from the keyring file and every file
//! still reads. A rotation cut short (the new version saved, half the files
//! re-wrapped) is finished by running `rotate` again, without a third
//! version. A client taking its keyring from a key command reads the same
//! files; a failing command is one clear line. The commands' error cases
//! print one line and exit non-zero.

mod harness;

use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[path = "harness/meta_cluster.rs"]
mod meta_cluster;

use harness::{content, TestCluster, BIN, CHUNK};
use shardline_crypto::Keyring;
use shardline_proto::v1 as pb;
use shardline_proto::v1::meta_request::Body;
use shardline_proto::v1::meta_response::Body as RBody;
use shardline_rpc::{MetaCallError, MetaClient, Role};
use shardline_types::ErrorCode;

/// Files per version of the key, from `admin keys status --json`.
fn files_per_version(status: &serde_json::Value) -> Vec<(u64, u64)> {
    status["versions"]
        .as_array()
        .expect("versions")
        .iter()
        .map(|v| (v["version"].as_u64().expect("version"), v["files"].as_u64().expect("files")))
        .collect()
}

fn files(seed: u64, n: usize) -> Vec<(String, Vec<u8>)> {
    (0..n)
        .map(|i| {
            let len = match i % 3 {
                0 => 0,
                1 => 1000 + i,
                _ => 2 * CHUNK + 77 * i,
            };
            (format!("/f{i}"), content(len, seed + i as u64))
        })
        .collect()
}

/// Every `key = ...` line of a key file.
fn key_lines(path: &std::path::Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).expect("read key file");
    text.lines().filter(|l| l.starts_with("key = ")).map(str::to_owned).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotate_under_reads_then_retire() {
    let c = TestCluster::start(130);
    let files = files(1300, 9);
    for (p, d) in &files {
        c.put_bytes(p, d);
    }
    let key_file = meta_cluster::key_file(&c);
    let old_keys = key_lines(&key_file);
    assert_eq!(old_keys.len(), 1);
    let before = c.json(&["admin", "keys", "status", "--json"]);
    assert_eq!(files_per_version(&before), vec![(1, files.len() as u64)], "{before:#}");
    assert_eq!(before["current"], 1);

    // Error cases: one line, non-zero exit, nothing changed.
    let err = c.refused(&["admin", "keys", "rotate", "--key-file", "/nonexistent/kek.key"]);
    assert!(err.contains("does not exist"), "{err}");
    let err = c.refused(&["admin", "keys", "status", "--key-file", "/nonexistent/kek.key"]);
    assert!(err.contains("does not exist"), "{err}");
    let out = Command::new(BIN)
        .args(["--cluster", "/nonexistent/cluster.toml", "admin", "keys", "rotate"])
        .output()
        .expect("run shardline");
    assert!(!out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stderr).trim().lines().count(), 1);
    assert_eq!(key_lines(&key_file), old_keys, "a refused rotation changed the key file");

    // A client that keeps reading every file and creating new ones.
    let client = meta_cluster::connect(&c, Duration::from_secs(30)).await;
    client.mkdir("/new").await.expect("mkdir");
    let stop = Arc::new(AtomicBool::new(false));
    let reads = Arc::new(AtomicU64::new(0));
    let reader = {
        let (client, files, stop, reads) = (client.clone(), files.clone(), stop.clone(), reads.clone());
        tokio::spawn(async move {
            let mut errors = Vec::new();
            let mut written = Vec::new();
            while !stop.load(Ordering::Acquire) {
                for (p, d) in &files {
                    match client.read_file(p).await {
                        Ok(got) if got == *d => {}
                        Ok(_) => errors.push(format!("{p}: wrong bytes")),
                        Err(e) => errors.push(format!("{p}: {e}")),
                    }
                    reads.fetch_add(1, Ordering::AcqRel);
                }
                let (p, d) = (format!("/new/n{}", written.len()), content(3000 + written.len(), 1390));
                match client.write_file(&p, &d).await {
                    Ok(_) => written.push((p, d)),
                    Err(e) => errors.push(format!("{p}: write: {e}")),
                }
            }
            (errors, written)
        })
    };
    let wait_reads = |at_least: u64| {
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        while reads.load(Ordering::Acquire) < at_least {
            assert!(std::time::Instant::now() < deadline, "the reader stopped reading");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    tokio::task::block_in_place(|| wait_reads(files.len() as u64));

    let rotated = tokio::task::block_in_place(|| c.json(&["admin", "keys", "rotate", "--json"]));
    assert_eq!(rotated["new_version"], 2, "{rotated:#}");
    assert_eq!(rotated["resumed"], false, "{rotated:#}");
    assert!(rotated["rewrapped"].as_u64().unwrap() >= files.len() as u64, "{rotated:#}");
    // Every file re-wrapped is read again by the running client.
    let after_rotation = reads.load(Ordering::Acquire);
    tokio::task::block_in_place(|| wait_reads(after_rotation + 2 * files.len() as u64));
    stop.store(true, Ordering::Release);
    let (errors, written) = reader.await.expect("reader task");
    assert!(errors.is_empty(), "reads or writes failed during the rotation: {errors:?}");
    assert!(!written.is_empty());

    let status = c.json(&["admin", "keys", "status", "--json"]);
    let total = (files.len() + written.len()) as u64;
    assert_eq!(status["current"], 2, "{status:#}");
    assert_eq!(status["files"], total, "{status:#}");
    assert_eq!(files_per_version(&status), vec![(1, 0), (2, total)], "{status:#}");
    let keys_now = key_lines(&key_file);
    assert_eq!(keys_now.len(), 2);
    assert!(keys_now.contains(&old_keys[0]), "the old version is kept until retired");
    let table = c.ok(&["admin", "keys", "status"]);
    assert!(table.contains("VERSION") && table.contains("held, current"), "{table}");

    // Retire: the old key leaves the keyring file; every file still reads.
    let retired = c.json(&["admin", "keys", "rotate", "--retire", "--json"]);
    assert_eq!(retired["retired"], serde_json::json!([1]), "{retired:#}");
    assert_eq!(retired["new_version"], serde_json::Value::Null, "{retired:#}");
    let ring = Keyring::load(&key_file).expect("load the keyring");
    assert_eq!((ring.versions(), ring.current_version()), (vec![2], 2));
    let keys_left = key_lines(&key_file);
    assert_eq!(keys_left.len(), 1);
    assert!(!keys_left.contains(&old_keys[0]), "the retired key is still in the key file");
    let status = c.json(&["admin", "keys", "status", "--json"]);
    assert_eq!(files_per_version(&status), vec![(2, total)], "{status:#}");
    for (p, d) in files.iter().chain(&written) {
        assert_eq!(&c.get_bytes(p).expect("read after retirement"), d, "{p}");
        assert_eq!(&client.read_file(p).await.expect("running client reads after retirement"), d, "{p}");
    }
    // Nothing left to retire.
    let again = c.ok(&["admin", "keys", "rotate", "--retire"]);
    assert!(again.contains("no version to retire"), "{again}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_rotation_is_finished_by_running_rotate_again() {
    let c = TestCluster::start(131);
    let files = files(1310, 6);
    for (p, d) in &files {
        c.put_bytes(p, d);
    }
    let key_file = meta_cluster::key_file(&c);
    let addrs = meta_cluster::meta_servers(&c).into_iter().map(|(_, a)| a).collect::<Vec<_>>();

    // Only operators list or re-wrap keys.
    let as_client = MetaClient::new(addrs.clone(), Duration::from_secs(10), c.identity(Role::Client));
    match as_client.call(Body::ListFileKeys(pb::ListFileKeys { after_ino: 0, limit: 0 })).await {
        Err(MetaCallError::Service { code: ErrorCode::PermissionDenied, .. }) => {}
        other => panic!("a client listed wrapped keys: {other:?}"),
    }

    // What a rotation does until it is cut short: the new version saved,
    // then half the files re-wrapped.
    let mut ring = Keyring::load(&key_file).expect("load");
    assert_eq!(ring.add_version().expect("add"), 2);
    ring.save(&key_file).expect("save");
    let admin = MetaClient::new(addrs, Duration::from_secs(10), c.identity(Role::Admin));
    let resp = admin.call(Body::ListFileKeys(pb::ListFileKeys { after_ino: 0, limit: 0 })).await.expect("list");
    let Some(RBody::FileKeys(page)) = resp.body else { panic!("no keys: {resp:?}") };
    assert_eq!(page.files.len(), files.len());
    for entry in page.files.iter().take(3) {
        let old = entry.key.clone().expect("key");
        let format = shardline_crypto::WrapFormat::from_wire(old.format).expect("wrap format");
        let dek = ring.unwrap(&old.kek_id, old.kek_version, &old.wrapped, format).expect("unwrap");
        let (kek_version, wrapped) = ring.wrap(&dek, format);
        let key = pb::WrappedKey { kek_version, wrapped, ..old.clone() };
        let rewrap =
            || Body::RewrapKey(pb::RewrapKey { ino: entry.ino, expected: Some(old.clone()), key: Some(key.clone()) });
        admin.call(rewrap()).await.expect("rewrap");
        // The same compare-and-set again is refused: the key changed.
        match admin.call(rewrap()).await {
            Err(MetaCallError::Service { code: ErrorCode::StaleEpoch, .. }) => {}
            other => panic!("a stale re-wrap was accepted: {other:?}"),
        }
    }
    let status = c.json(&["admin", "keys", "status", "--json"]);
    assert_eq!(files_per_version(&status), vec![(1, 3), (2, 3)], "{status:#}");
    for (p, d) in &files {
        assert_eq!(&c.get_bytes(p).expect("read mid-rotation"), d, "{p}");
    }

    let resumed = c.json(&["admin", "keys", "rotate", "--json"]);
    assert_eq!(resumed["resumed"], true, "{resumed:#}");
    assert_eq!(resumed["new_version"], serde_json::Value::Null, "{resumed:#}");
    assert_eq!(resumed["rewrapped"], 3, "{resumed:#}");
    assert_eq!(Keyring::load(&key_file).expect("load").versions(), vec![1, 2], "no third version");
    let status = c.json(&["admin", "keys", "status", "--json"]);
    assert_eq!(files_per_version(&status), vec![(1, 0), (2, files.len() as u64)], "{status:#}");
    for (p, d) in &files {
        assert_eq!(&c.get_bytes(p).expect("read after the rotation"), d, "{p}");
    }

    // A client may take its keyring from a command (a KMS helper) instead.
    let original = std::fs::read_to_string(c.cluster_file()).expect("read cluster.toml");
    let with_command = |argv: &str| std::fs::write(c.cluster_file(), format!("key_command = {argv}\n{original}"));
    with_command(&format!("[\"cat\", {:?}]", key_file.display().to_string())).expect("write cluster.toml");
    assert_eq!(&c.get_bytes(&files[2].0).expect("read with a key command"), &files[2].1);
    with_command("[\"false\"]").expect("write cluster.toml");
    let err = c.refused(&["get", &files[2].0, "-"]);
    assert!(err.contains("key command `false`"), "{err}");
    std::fs::write(c.cluster_file(), original).expect("restore cluster.toml");
}
