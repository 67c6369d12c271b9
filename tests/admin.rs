//! Black-box tests of the operator's CLI (`shardline admin`): capacity and
//! node views checked against a real cluster (127.0.0.122-123), the layout
//! commands, and one clear line with a non-zero exit for each error case.

mod harness;

use std::process::Command;

use harness::{content, TestCluster, BIN, CHUNK};

#[test]
fn nodes_and_capacity_report_what_the_servers_hold() {
    let c = TestCluster::start(122);
    let data = content(5 * CHUNK, 122);
    c.put_bytes("/cap.bin", &data);
    // Usage reaches the leader with the next heartbeats: wait for it.
    let shards = 5 * 6;
    c.wait_status(std::time::Duration::from_secs(30), |v| {
        v["data"].as_array().is_some_and(|d| d.iter().map(|s| s["shards"].as_u64().unwrap_or(0)).sum::<u64>() == shards)
    });
    let nodes = c.json(&["admin", "nodes", "--json"]);
    let nodes = nodes.as_array().expect("a list of nodes");
    assert_eq!(nodes.len(), 6);
    assert_eq!(nodes.iter().map(|n| n["shards"].as_u64().unwrap()).sum::<u64>(), shards);
    for n in nodes {
        let (cap, used, free) = (
            n["capacity_bytes"].as_u64().unwrap(),
            n["used_bytes"].as_u64().unwrap(),
            n["free_bytes"].as_u64().unwrap(),
        );
        assert_eq!(cap, used + free, "{n}");
        assert_eq!(n["state"], "up");
        assert_eq!(n["domain"], format!("server-{}", n["id"]));
    }
    let cap = c.json(&["admin", "capacity", "--json"]);
    let raw_free = cap["raw_free_bytes"].as_u64().unwrap();
    // Free space moves with the shared disk between two calls: compare
    // within one report.
    let free_sum: u64 = cap["nodes"].as_array().unwrap().iter().map(|n| n["free_bytes"].as_u64().unwrap()).sum();
    assert_eq!(raw_free, free_sum);
    assert_eq!(cap["usable_free_bytes"].as_u64().unwrap(), raw_free * 4 / 6, "4+2 keeps 4 of every 6 bytes");
    assert_eq!(cap["domains"].as_array().unwrap().len(), 6);
    assert!(cap["largest_file_bytes"].as_u64().unwrap() > 0);
    // Six domains for a 4+2 code: losing any one cannot be re-protected.
    assert_eq!(cap["warnings"].as_array().unwrap().len(), 6, "{cap:#}");
    let cap33 = c.json(&["admin", "capacity", "--ec", "3+3", "--json"]);
    assert_eq!(cap33["usable_free_bytes"].as_u64().unwrap(), cap33["raw_free_bytes"].as_u64().unwrap() / 2);
    let table = c.ok(&["admin", "capacity"]);
    assert!(table.contains("usable for new files (EC 4+2)") && table.contains("largest file"), "{table}");
}

#[test]
fn admin_layout_get_and_set_and_the_old_alias_agree() {
    let c = TestCluster::start(123);
    c.ok(&["mkdir", "/d"]);
    let set = c.ok(&["admin", "layout", "set", "/d", "--ec", "3+2", "--chunk-size", "131072"]);
    assert!(set.contains("RS 3+2, 128 KiB chunks"), "{set}");
    assert_eq!(c.ok(&["admin", "layout", "get", "/d"]), set);
    assert_eq!(c.ok(&["layout", "/d"]), set, "`shardline layout` stays an alias");

    // Error cases: one line on stderr, non-zero exit.
    let one_line_failure = |args: &[&str], want: &str| {
        let out = c.cli(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(err.contains(want), "{args:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: one line expected: {err}");
    };
    one_line_failure(&["admin", "layout", "set", "/d"], "give --ec K+M and/or --chunk-size");
    one_line_failure(&["admin", "capacity", "--ec", "0+2"], "error:");
    let missing = Command::new(BIN)
        .args(["--cluster", "/nonexistent/cluster.toml", "admin", "nodes"])
        .output()
        .expect("run admin");
    let err = String::from_utf8_lossy(&missing.stderr);
    assert!(!missing.status.success() && err.trim_end().lines().count() == 1, "{err}");
    assert!(err.contains("/nonexistent/cluster.toml"), "{err}");

    // Progress bars are for terminals: piped, a large put and get print
    // exactly their one result line and nothing on stderr.
    let big = content(17 << 20, 123);
    let local = c.dir.path().join("big.bin");
    std::fs::write(&local, &big).expect("write local file");
    let put = c.cli(&["put", local.to_str().expect("utf-8"), "/big"]);
    assert!(put.status.success());
    assert_eq!(String::from_utf8_lossy(&put.stdout), format!("/big: {} bytes\n", big.len()));
    assert!(put.stderr.is_empty(), "put wrote to a pipe: {}", String::from_utf8_lossy(&put.stderr));
    let back = c.dir.path().join("back.bin");
    let get = c.cli(&["get", "/big", back.to_str().expect("utf-8")]);
    assert!(get.status.success() && get.stderr.is_empty(), "{}", String::from_utf8_lossy(&get.stderr));
    assert!(std::fs::read(&back).expect("read back") == big);
}
