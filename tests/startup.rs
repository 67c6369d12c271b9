//! Black-box tests of starting servers and clusters: what a script that
//! starts a cluster and uses it at once sees, servers dying while `up` is
//! still waiting for health, and servers that must refuse to start.

#[path = "harness/by_hand.rs"]
mod by_hand;
mod harness;

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use harness::{content, TestCluster, BIN, CHUNK};

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

/// Issue 9 item 1: a client that writes while the cluster has no placement
/// map yet (fewer data servers registered than k+m, as in the moments after
/// `admin status` first answers) waits for it within its write window
/// instead of failing with "no placement map yet".
#[test]
fn a_write_right_after_startup_waits_for_the_placement_map() {
    let c = TestCluster::unstarted(62, &[]);
    by_hand::prepare(&c, 6);
    let mut servers = by_hand::Children(by_hand::start_metas(&c));
    for id in 1..=5 {
        servers.0.push(by_hand::start_data(&c, id));
    }
    // The cluster answers, five of the six data servers are up: no map yet.
    let st = c.wait_status(Duration::from_secs(60), |v| {
        v["data"].as_array().is_some_and(|d| d.len() == 5 && d.iter().all(|s| s["state"] == "up"))
    });
    assert_eq!(st["placement_groups"]["total"], 0, "no placement map with 5 of 4+2's 6 servers: {st:#}");

    let data = content(3 * CHUNK + 5, 62);
    let local = c.dir.path().join("x.bin");
    std::fs::write(&local, &data).expect("write local file");
    let mut put = Command::new(BIN)
        .arg("--cluster")
        .arg(c.cluster_file())
        .args(["put", local.to_str().expect("utf-8 path"), "/x"])
        .env("SHARDLINE_LOG", "warn,shardline_client=info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn shardline put");
    let mut stderr = BufReader::new(put.stderr.take().expect("stderr"));
    let put = by_hand::Children(vec![put]);
    // Wait until the write says it is waiting for the map (or it ends).
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        if stderr.read_line(&mut line).expect("read put's stderr") == 0 {
            panic!("the put ended without waiting for the placement map: {seen}");
        }
        seen.push_str(&line);
        if line.contains("no placement map yet: waiting for data servers to register") {
            break;
        }
    }
    // The sixth data server registers; the map appears; the write completes.
    servers.0.push(by_hand::start_data(&c, 6));
    let mut put = put;
    let status = put.0[0].wait().expect("wait for put");
    let mut rest = String::new();
    stderr.read_to_string(&mut rest).expect("read put's stderr");
    assert!(status.success(), "the waiting put failed: {seen}{rest}");
    assert_eq!(c.get_bytes("/x").expect("read back"), data);
}

/// Issue 9 item 1: `up --daemon` returns once the cluster is ready, so a
/// script can write at once; `admin status --wait-healthy` exits 0 on a
/// healthy cluster and non-zero, naming what is missing, on timeout.
#[test]
fn up_daemon_returns_once_ready_and_admin_status_waits_for_health() {
    let mut c = TestCluster::unstarted(63, &[]);
    let out = c.up_daemon();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "up --daemon failed: {text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("shardline cluster ready (pid "), "{text}");
    // At once, with no waiting of our own.
    c.put_bytes("/right-away", b"written the moment up returned");
    assert_eq!(c.get_bytes("/right-away").unwrap(), b"written the moment up returned");
    let healthy = c.cli(&["admin", "status", "--wait-healthy", "--timeout", "30", "--json"]);
    assert!(healthy.status.success(), "{}", String::from_utf8_lossy(&healthy.stderr));

    c.kill_data(4);
    c.wait_status(Duration::from_secs(30), |v| {
        v["data"].as_array().is_some_and(|d| d.iter().any(|s| s["id"] == 4 && s["state"] != "up"))
    });
    let unhealthy = c.cli(&["admin", "status", "--wait-healthy", "--timeout", "1"]);
    let err = String::from_utf8_lossy(&unhealthy.stderr);
    assert!(!unhealthy.status.success(), "a cluster with a dead data server is not healthy");
    assert!(err.contains("not healthy after 1 s") && err.contains("data-4"), "clear message expected: {err}");
}

/// Start `shardline up` and freeze it (SIGSTOP) as soon as it has started
/// its servers, long before they can elect a leader: whatever the test does
/// next happens, for `up`, before it could say "cluster ready".
fn up_frozen_before_ready(octet: u8, up_args: &[&str], servers: usize) -> TestCluster {
    let mut c = TestCluster::unstarted(octet, up_args);
    c.spawn_up();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let pids = c.all_files().iter().filter(|f| f.file_name().is_some_and(|n| n == "pid")).count();
        if pids == servers {
            break;
        }
        assert!(Instant::now() < deadline && c.up_running(), "up did not start its {servers} servers");
        std::thread::sleep(Duration::from_millis(5));
    }
    c.signal_up(libc::SIGSTOP);
    assert!(
        !c.up_lines().iter().any(|l| l.contains("cluster ready")),
        "test precondition: up was frozen before it was ready"
    );
    c
}

/// `up`'s report of a server's death: its name, pid and exit status.
fn death_report(c: &TestCluster, name: &str) -> Option<String> {
    let prefix = format!("{name} (pid ");
    c.wait_up_line(|l| l.starts_with(&prefix) && l.contains("exited: signal: 9"), Duration::from_secs(30))
}

/// Issue 9 item 2: two data servers killed after the cluster answers
/// (a put has succeeded) but before `up` says it is ready: `up` reports
/// them and the others keep running and serving.
#[test]
fn data_servers_dying_before_up_says_ready_leave_the_others_running() {
    let mut c = up_frozen_before_ready(64, &["--data", "8"], 11);
    c.wait_status(Duration::from_secs(60), |v| {
        v["data"].as_array().is_some_and(|d| d.len() == 8 && d.iter().all(|s| s["state"] == "up"))
            && v["placement_groups"]["total"].as_u64() > Some(0)
    });
    let before = content(5 * CHUNK / 2, 64);
    c.put_bytes("/before", &before);
    c.kill_data(1);
    c.kill_data(2);
    // Let the cluster notice: from here `up` cannot mistake it for healthy.
    c.wait_status(Duration::from_secs(30), |v| {
        v["data"].as_array().is_some_and(|d| d.iter().filter(|s| s["state"] != "up").count() == 2)
    });
    c.signal_up(libc::SIGCONT);

    for name in ["data-1", "data-2"] {
        assert!(death_report(&c, name).is_some(), "no report of {name}'s death; up printed: {:?}", c.up_lines());
    }
    assert!(c.up_running(), "up stopped: {:?}", c.up_lines());
    assert_eq!(c.get_bytes("/before").expect("read with 6 of 8 servers"), before);
    let after = content(3 * CHUNK, 65);
    c.put_bytes("/after", &after);
    assert_eq!(c.get_bytes("/after").expect("read back"), after);
    // Six servers remain, enough for 4+2: once rebuilt, up says it is ready.
    let ready = c.wait_up_line(|l| l.contains("cluster ready"), Duration::from_secs(60));
    assert!(ready.is_some(), "up never became ready: {:?}", c.up_lines());
    assert!(c.up_running());
}

/// Issue 9 item 2: the metadata leader killed after the cluster answers
/// but before `up` says it is ready: `up` reports it, the other two elect a
/// leader and the cluster keeps serving.
#[test]
fn the_metadata_leader_dying_before_up_says_ready_leaves_the_others_running() {
    let mut c = up_frozen_before_ready(65, &[], 9);
    c.wait_status(Duration::from_secs(60), |v| {
        v["data"].as_array().is_some_and(|d| d.len() == 6 && d.iter().all(|s| s["state"] == "up"))
            && v["placement_groups"]["total"].as_u64() > Some(0)
    });
    let before = content(2 * CHUNK + 9, 66);
    c.put_bytes("/before", &before);
    let leader = c.meta_leader(Duration::from_secs(30));
    c.kill_meta(leader);
    c.signal_up(libc::SIGCONT);

    let name = format!("meta-{leader}");
    assert!(death_report(&c, &name).is_some(), "no report of {name}'s death; up printed: {:?}", c.up_lines());
    assert!(c.up_running(), "up stopped: {:?}", c.up_lines());
    assert_eq!(c.get_bytes("/before").expect("read after the leader died"), before);
    let after = content(CHUNK + 1, 67);
    c.put_bytes("/after", &after);
    assert_eq!(c.get_bytes("/after").expect("read back"), after);
    let ready = c.wait_up_line(|l| l.contains("cluster ready"), Duration::from_secs(60));
    assert!(ready.is_some(), "up never became ready: {:?}", c.up_lines());
}

/// Issue 14 items 3 and 4: a server takes its settings from `--config`
/// (flags override it) and writes JSON log lines when asked.
#[test]
fn a_metadata_server_runs_from_a_config_file_and_logs_json() {
    let dir = tempfile::tempdir().expect("temp dir");
    let key = dir.path().join("meta.key");
    let cap_key = dir.path().join("cap.key");
    for k in [&key, &cap_key] {
        let kg = Command::new(BIN).arg("keygen").arg(k).output().expect("keygen");
        assert!(kg.status.success());
    }
    let port = std::net::TcpListener::bind("127.0.0.64:0").expect("port").local_addr().expect("addr").port();
    let meta_dir = dir.path().join("meta-1");
    let config = dir.path().join("shardline.toml");
    std::fs::write(
        &config,
        format!(
            "[meta]\nid = 1\ndir = \"{}\"\nlisten = \"127.0.0.64:{port}\"\npeers = \"1=127.0.0.64:{port}\"\n\
             key_file = \"{}\"\ncap_key_file = \"{}\"\nmetrics_listen = \"127.0.0.64:0\"\ntick_ms = 5000\n",
            meta_dir.display(),
            key.display(),
            cap_key.display()
        ),
    )
    .expect("write the config");
    let child = Command::new(BIN)
        .arg("--config")
        .arg(&config)
        .args(["--log-format", "json", "--log-level", "info", "meta", "--tick-ms", "20"])
        .env_remove("SHARDLINE_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run shardline meta");
    let mut child = by_hand::Children(vec![child]);
    let mut stderr = BufReader::new(child.0[0].stderr.take().expect("stderr"));
    let mut line = String::new();
    let listening = loop {
        line.clear();
        assert!(stderr.read_line(&mut line).expect("read stderr") > 0, "the server exited before listening");
        let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        if v["fields"]["message"] == "metadata server listening" {
            break v;
        }
    };
    assert_eq!(listening["level"], "INFO", "{listening}");
    assert_eq!(listening["fields"]["addr"], format!("127.0.0.64:{port}"), "the config's listen address");
    assert!(meta_dir.join("metrics.addr").exists(), "the config's metrics_listen was applied");
    // The command line's --tick-ms overrode the file's 5000: a single
    // server elects itself within a few ticks and answers status.
    let cluster = dir.path().join("cluster.toml");
    std::fs::write(
        &cluster,
        format!(
            "version = 1\nec = \"4+2\"\nchunk_size = 65536\npg_count = 64\ndata = []\nkey_file = \"{}\"\n\n\
             [[meta]]\nid = 1\naddr = \"127.0.0.64:{port}\"\ndir = \"{}\"\n",
            key.display(),
            meta_dir.display()
        ),
    )
    .expect("cluster file");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = Command::new(BIN).arg("--cluster").arg(&cluster).args(["admin", "status", "--json"]).output();
        let text = out.map(|o| String::from_utf8_lossy(&o.stdout).to_string()).unwrap_or_default();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        if v["meta"][0]["role"] == "leader" {
            break;
        }
        assert!(Instant::now() < deadline, "no leader with --tick-ms 20 (the file said 5000): {text}");
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(child);
}

#[test]
fn a_config_file_with_an_unknown_key_is_refused_by_name() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("bad.toml");
    std::fs::write(&config, "[data]\nheartbeat_msec = 500\n").expect("write");
    let out = Command::new(BIN).arg("--config").arg(&config).arg("data").output().expect("run shardline data");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("[data] heartbeat_msec: unknown key"), "{err}");
    assert_eq!(err.lines().count(), 1, "one clear line: {err}");
}
