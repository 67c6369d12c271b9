//! Black-box tests of starting servers and clusters: what a script that
//! starts a cluster and uses it at once sees, servers dying while `up` is
//! still waiting for health, and servers that must refuse to start.

mod harness;

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use harness::BIN;

#[test]
fn a_metadata_server_without_a_key_file_refuses_to_start() {
    let dir = tempfile::tempdir().expect("temp dir");
    let meta_dir = dir.path().join("meta-1");
    let mut child = Command::new(BIN)
        .args(["meta", "--id", "1", "--listen", "127.0.0.61:0", "--peers", "1=127.0.0.61:0", "--dir"])
        .arg(&meta_dir)
        .env_remove("SHARDLINE_META_KEY_FILE")
        .env("SHARDLINE_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run shardline meta");
    // Either it exits, or it opens its store: the event that says it started.
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for shardline meta") {
            break status;
        }
        if meta_dir.join("raft.redb").exists() || Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("a metadata server without a key file started");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let mut err = String::new();
    child.stderr.take().expect("stderr").read_to_string(&mut err).expect("read stderr");
    assert!(!status.success(), "a metadata server without a key must exit non-zero");
    assert!(
        err.contains("no key file") && err.contains("--insecure-plaintext-metadata"),
        "clear message expected: {err}"
    );
    assert!(!meta_dir.join("raft.redb").exists(), "nothing was stored");
}

#[test]
fn the_shipped_metadata_unit_passes_a_key_file() {
    let unit =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/systemd/shardline-meta@.service"))
            .expect("read the unit");
    let exec = unit.lines().find(|l| l.starts_with("ExecStart=")).expect("ExecStart line");
    assert!(exec.contains(" meta ") && exec.contains("--key-file "), "{exec}");
    assert!(!exec.contains("--insecure-plaintext-metadata"), "{exec}");
}
