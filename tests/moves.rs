//! Moving shards between data servers, black-box (127.0.0.124-125):
//! `admin drain` while a reader streams files (no read fails; the drained
//! server ends with no shards and `admin remove` then succeeds, while
//! removing a server that holds needed shards is refused); growing a
//! 6-server cluster to 9 and `admin rebalance` (the spread of used bytes
//! narrows, bytes moved against the minimum, every file byte-exact); and
//! the commands' error cases: one line, non-zero exit. `admin repair
//! stop|start|status` holds a drain, which `admin drain` then follows again.

#[path = "harness/by_hand.rs"]
mod by_hand;
mod harness;

use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use harness::{content, shards_in, TestCluster, BIN, CHUNK};

const WAIT: Duration = Duration::from_secs(120);

fn server(st: &serde_json::Value, id: u64) -> Option<&serde_json::Value> {
    st["data"].as_array()?.iter().find(|d| d["id"] == id)
}

fn shards_total(st: &serde_json::Value) -> u64 {
    st["data"].as_array().map(|d| d.iter().map(|s| s["shards"].as_u64().unwrap_or(0)).sum()).unwrap_or(0)
}

#[test]
fn drain_under_reads_then_remove() {
    let c = TestCluster::start_with(124, &["--data", "7"]);
    let files: Vec<(String, Vec<u8>)> =
        (0..6).map(|i| (format!("/f{i}"), content(3 * CHUNK + 1000 * i, 1240 + i as u64))).collect();
    for (p, d) in &files {
        c.put_bytes(p, d);
    }
    let chunks: u64 = files.iter().map(|(_, d)| d.len().div_ceil(CHUNK) as u64).sum();
    c.wait_status(WAIT, |v| shards_total(v) == chunks * 6);

    // Error cases: one line, non-zero exit.
    let err = c.refused(&["admin", "remove", "3"]);
    assert!(err.contains("drain it first"), "{err}");
    assert!(c.refused(&["admin", "remove", "42"]).contains("no data server 42"));
    assert!(c.refused(&["admin", "drain", "42"]).contains("no data server 42"));
    assert!(c.refused(&["admin", "rebalance", "--max-bandwidth", "fast"]).contains("bad rate"));
    let out = Command::new(BIN).args(["--cluster", "/nonexistent/cluster.toml", "admin", "drain", "3"]).output();
    let out = out.expect("run shardline");
    assert!(!out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stderr).trim().lines().count(), 1);

    // A reader streams every file over and over while server 3 drains.
    let stop = AtomicBool::new(false);
    let reads = AtomicU64::new(0);
    let (first_tx, first_rx) = mpsc::channel();
    let drained = std::thread::scope(|s| {
        let reader = s.spawn(|| {
            let mut errors = Vec::new();
            while !stop.load(Ordering::Acquire) {
                for (p, d) in &files {
                    match c.get_bytes(p) {
                        Ok(got) if got == *d => {}
                        Ok(_) => errors.push(format!("{p}: wrong bytes")),
                        Err(e) => errors.push(format!("{p}: {e}")),
                    }
                    reads.fetch_add(1, Ordering::Relaxed);
                    let _ = first_tx.send(());
                }
            }
            errors
        });
        first_rx.recv().expect("the reader read once");
        // With repair stopped the drain is recorded but nothing moves yet;
        // following it again later (as after a crash of the CLI) resumes.
        c.ok(&["admin", "repair", "stop"]);
        let started = c.json(&["admin", "drain", "3", "--no-wait", "--json"]);
        let st = c.status();
        let d3 = server(&st, 3).expect("server 3 listed");
        assert_eq!(d3["state"], "draining", "{st:#}");
        assert_eq!(d3["moving_out_bytes"], started["plan"]["bytes"], "{st:#}");
        let repair = c.json(&["admin", "repair", "status", "--json"]);
        assert_eq!(repair["paused"], true);
        assert!(repair["slots_pending"].as_u64().unwrap() > 0, "{repair}");
        c.ok(&["admin", "repair", "start"]);
        c.ok(&["admin", "scrub", "stop"]);
        assert_eq!(c.json(&["admin", "scrub", "status", "--json"])["paused"], true);
        assert!(c.refused(&["admin", "scrub"]).contains("scrubbing is stopped"));
        c.ok(&["admin", "scrub", "start"]);
        assert_eq!(c.json(&["admin", "scrub", "status", "--json"])["paused"], false);
        let out = c.cli(&["admin", "drain", "3", "--json"]);
        stop.store(true, Ordering::Release);
        let errors = reader.join().expect("reader thread");
        assert!(errors.is_empty(), "reads failed during the drain: {errors:?}");
        assert!(out.status.success(), "drain failed: {}", String::from_utf8_lossy(&out.stderr));
        let mut v = serde_json::from_slice::<serde_json::Value>(&out.stdout).expect("drain JSON");
        v["started"] = started;
        v
    });
    assert!(reads.load(Ordering::Relaxed) > 0);
    assert_eq!(drained["state"], "drained");
    let plan = &drained["started"]["plan"];
    assert!(plan["moves"].as_u64().unwrap() > 0, "{drained}");
    assert_eq!(plan["bytes"], plan["minimum_bytes"], "a drain moves exactly what the server held: {drained}");
    assert_eq!(drained["bytes_moved"], plan["bytes"], "{drained}");
    assert_eq!(drained["plan"]["moves"], 0, "following again starts nothing new: {drained}");

    // New writes avoid the drained server.
    let late = content(2 * CHUNK, 1249);
    c.put_bytes("/late", &late);
    let st = c.wait_status(WAIT, |v| server(v, 3).is_some_and(|d| d["shards"] == 0 && d["state"] == "drained"));
    assert_eq!(server(&st, 3).unwrap()["slots"], 0);
    let on_disk = shards_in(3, &c.data_dir().join("data-3"));
    assert!(on_disk.is_empty(), "the drained server still stores {} shards", on_disk.len());
    let text = c.ok(&["admin", "status"]);
    assert!(text.contains("drained"), "{text}");

    c.ok(&["admin", "remove", "3"]);
    let st = c.status();
    assert!(server(&st, 3).is_none(), "removed server still listed");
    c.kill_data(3);
    for (p, d) in files.iter().chain([&("/late".to_string(), late)]) {
        assert_eq!(&c.get_bytes(p).expect("read after the drain"), d, "{p}");
    }
}

#[test]
fn grow_six_to_nine_and_rebalance() {
    let c = TestCluster::unstarted(125, &[]);
    by_hand::prepare(&c, 9);
    let mut children = by_hand::Children(by_hand::start_metas(&c));
    for id in 1..=6 {
        children.0.push(by_hand::start_data(&c, id));
    }
    c.wait_status(WAIT, |v| {
        v["placement_groups"]["healthy"].as_u64().is_some_and(|h| h > 0)
            && v["placement_groups"]["healthy"] == v["placement_groups"]["total"]
    });
    let files: Vec<(String, Vec<u8>)> =
        (0..8).map(|i| (format!("/g{i}"), content(4 * CHUNK + 77 * i, 1250 + i as u64))).collect();
    for (p, d) in &files {
        c.put_bytes(p, d);
    }
    let chunks: u64 = files.iter().map(|(_, d)| d.len().div_ceil(CHUNK) as u64).sum();
    c.wait_status(WAIT, |v| shards_total(v) == chunks * 6);
    // Six servers, six shards per chunk: none may drain.
    assert!(c.refused(&["admin", "drain", "2"]).contains("would leave 5"));

    let text = std::fs::read_to_string(c.cluster_file()).expect("cluster.toml");
    let file: toml::Value = toml::from_str(&text).expect("parse cluster.toml");
    for id in 7..=9 {
        children.0.push(by_hand::start_data(&c, id));
        let addr = file["data"].as_array().unwrap().iter().find(|n| n["id"].as_integer() == Some(id as i64)).unwrap()
            ["addr"]
            .as_str()
            .unwrap()
            .to_string();
        let joined = c.json(&["admin", "data", "add", &addr, "--json"]);
        assert_eq!(joined["node"], id);
        assert_eq!(joined["slots"], 0, "a server joining a cluster with data waits for a rebalance");
    }
    // Shard bytes each server holds by the metadata service's own count
    // (heartbeats' disk usage lags, and a segment store frees space only
    // when it compacts).
    let used = |st: &serde_json::Value| -> Vec<u64> {
        (1..=9).map(|id| server(st, id).map_or(0, |d| d["held_bytes"].as_u64().unwrap_or(0))).collect()
    };
    let spread = |u: &[u64]| u.iter().max().unwrap() - u.iter().min().unwrap();
    let before = c.wait_status(WAIT, |v| (7..=9).all(|id| server(v, id).is_some_and(|d| d["state"] == "up")));
    let spread_before = spread(&used(&before));

    let dry = c.json(&["admin", "rebalance", "--dry-run", "--json"]);
    assert!(dry["moves"].as_u64().unwrap() > 0 && !dry["applied"].as_bool().unwrap(), "{dry}");
    assert_eq!(server(&c.status(), 7).unwrap()["slots"], 0, "a dry run moves nothing");

    let out = c.cli(&["admin", "rebalance", "--max-bandwidth", "200M", "--timeout", "100", "--json"]);
    if !out.status.success() {
        let logs: String = (1..=9)
            .map(|id| std::fs::read_to_string(c.data_dir().join(format!("data-{id}/log"))).unwrap_or_default())
            .map(|l| l.lines().rev().take(8).collect::<Vec<_>>().join("\n"))
            .collect::<Vec<_>>()
            .join("\n---\n");
        panic!("rebalance failed: {}\n{:#}\n{logs}", String::from_utf8_lossy(&out.stderr), c.status());
    }
    let done: serde_json::Value = serde_json::from_slice(&out.stdout).expect("rebalance JSON");
    let plan = &done["plan"];
    assert_eq!(plan["moves"], dry["moves"], "the run does what the dry run said: {done}");
    assert_eq!(plan["bytes"], dry["bytes"]);
    let (moved, minimum) = (plan["bytes"].as_u64().unwrap(), plan["minimum_bytes"].as_u64().unwrap());
    assert!(moved >= minimum && minimum > 0, "{done}");
    // Every slot that moved went to a new server: what they hold now is
    // exactly what moved, nothing was shuffled among the old six.
    let after = c.wait_status(WAIT, |v| shards_total(v) == chunks * 6 && v["placement_groups"]["moves_pending"] == 0);
    let new_held: u64 = (7..=9).map(|id| server(&after, id).unwrap()["held_bytes"].as_u64().unwrap()).sum();
    assert_eq!(new_held, moved, "{after:#}");
    let spread_after = spread(&used(&after));
    eprintln!(
        "rebalance 6 -> 9: spread of held shard bytes {spread_before} -> {spread_after}; moved {moved} shard bytes, minimum {minimum} ({:.2}x)",
        moved as f64 / minimum as f64
    );
    assert!(spread_after < spread_before, "spread did not narrow: {spread_before} -> {spread_after}");
    for (p, d) in &files {
        assert_eq!(&c.get_bytes(p).expect("read after the rebalance"), d, "{p}");
    }
}
