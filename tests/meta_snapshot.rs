//! Black-box: a metadata server whose folder is wiped rejoins and catches up
//! by snapshot, then serves as one of the two survivors when the leader dies.
//!
//! A server that lost its disk must not come back under its old identity (it
//! would forget its votes and the entries it acknowledged), so it rejoins
//! through membership changes: `admin meta remove`, then `shardline meta
//! --join` with the empty folder and `admin meta add`.

mod harness;

use std::time::{Duration, Instant};

use harness::{content, TestCluster, CHUNK};

/// Snapshot every 20 entries so a handful of files compacts the log, and
/// send snapshots in 4 KiB parts so the transfer takes many frames.
fn small_snapshots() {
    std::env::set_var("SHARDLINE_META_SNAPSHOT_EVERY", "20");
    std::env::set_var("SHARDLINE_META_SNAPSHOT_PART_BYTES", "4096");
}

fn applied(status: &[serde_json::Value], id: u64) -> Option<u64> {
    status.iter().find(|m| m["id"].as_u64() == Some(id)).and_then(|m| m["applied_index"].as_u64())
}

#[test]
fn wiped_meta_server_catches_up_by_snapshot_and_survives_leader_loss() {
    small_snapshots();
    let c = TestCluster::start(50);
    c.ok(&["mkdir", "/snap"]);
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    for i in 0..8 {
        let (p, d) = (format!("/snap/before-{i}"), content(CHUNK + 100 * i, i as u64));
        c.put_bytes(&p, &d);
        files.push((p, d));
    }
    let leader = c.meta_leader(Duration::from_secs(10));
    let wiped = (1..=3).find(|&id| id != leader).expect("a follower");
    let addr = c.meta_status().iter().find(|m| m["id"].as_u64() == Some(wiped)).expect("status")["address"]
        .as_str()
        .expect("address")
        .to_string();
    c.kill_meta(wiped);
    std::fs::remove_dir_all(c.meta_dir(wiped)).expect("wipe the follower's folder");
    let out = c.ok(&["admin", "meta", "remove", "--id", &wiped.to_string()]);
    assert!(!out.contains(&format!("  {wiped} ")), "removed: {out}");
    // More writes while it is gone: the leader snapshots and compacts past them.
    for i in 0..8 {
        let (p, d) = (format!("/snap/during-{i}"), content(CHUNK / 2 + i, 100 + i as u64));
        c.put_bytes(&p, &d);
        files.push((p, d));
    }
    let leader_applied = applied(&c.meta_status(), leader).expect("leader status");
    assert!(leader_applied > 60, "enough entries to have compacted the log: {leader_applied}");

    let mut child = c.start_meta(wiped, &["--join"]);
    let out = c.ok(&["admin", "meta", "add", "--id", &wiped.to_string(), "--addr", &addr]);
    assert!(out.contains(&format!("  {wiped} {addr}")), "added back: {out}");
    let start = Instant::now();
    loop {
        let st = c.meta_status();
        if applied(&st, wiped).is_some_and(|a| a >= leader_applied) {
            break;
        }
        if start.elapsed() > Duration::from_secs(30) {
            let log = std::fs::read_to_string(c.meta_dir(wiped).join("log")).unwrap_or_default();
            panic!("wiped server did not catch up: {st:?}\nits log:\n{log}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let log = std::fs::read_to_string(c.meta_dir(wiped).join("log")).unwrap_or_default();
    assert!(log.contains("installed snapshot from the leader"), "caught up by snapshot, not by log: {log}");
    // It came in 4 KiB parts: more than one.
    let bytes = log
        .lines()
        .filter(|l| l.contains("snapshot received in parts"))
        .filter_map(|l| l.split("bytes=").nth(1)?.split_whitespace().next()?.parse::<u64>().ok())
        .max();
    assert!(bytes.is_some_and(|b| b > 4096), "snapshot not sent in several parts ({bytes:?}): {log}");

    // Lose the leader: the wiped server and the other follower must carry on.
    c.kill_meta(leader);
    let new_leader = c.meta_leader(Duration::from_secs(30));
    assert_ne!(new_leader, leader);
    for (p, d) in &files {
        assert_eq!(&c.get_bytes(p).expect("read after leader loss"), d, "{p}");
    }
    c.put_bytes("/snap/after", b"written with two of three metadata servers");
    assert_eq!(c.get_bytes("/snap/after").unwrap(), b"written with two of three metadata servers");
    let _ = child.kill();
    let _ = child.wait();
}
