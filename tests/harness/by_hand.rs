//! A cluster started server by server instead of by `shardline up`, for
//! tests that need it in states `up` never leaves it in (say, fewer data
//! servers registered than k+m): the folder `up` would write (cluster.toml,
//! the client key, the metadata servers' key, the capability key, made with
//! `shardline keygen`),
//! then `shardline meta` and `shardline data` processes started one at a
//! time. The harness's drop kills every server through its pid file.

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use crate::harness::{TestCluster, BIN, CHUNK};

/// Write cluster.toml (3 metadata + `data` data servers, EC 4+2, small
/// chunks, on free ports of the harness's host) and the key files (client,
/// metadata servers, cluster capabilities).
pub fn prepare(c: &TestCluster, data: u64) {
    let dir = c.data_dir();
    std::fs::create_dir_all(&dir).expect("create the cluster folder");
    let dir = dir.canonicalize().expect("canonical cluster folder");
    keygen(&dir.join("kek.key"));
    keygen(&dir.join("meta.key"));
    keygen(&dir.join("cap.key"));
    // Hold every port until all are chosen, so no two servers share one.
    let mut held = Vec::new();
    let mut node = |kind: &str, id: u64| {
        let l = TcpListener::bind((c.host.as_str(), 0)).expect("bind a free port");
        let addr = l.local_addr().expect("local address");
        held.push(l);
        format!(
            "[[{kind}]]\nid = {id}\naddr = \"{addr}\"\ndir = \"{}\"\n\n",
            dir.join(format!("{kind}-{id}")).display()
        )
    };
    let mut text = format!(
        "version = 1\nec = \"4+2\"\nchunk_size = {CHUNK}\npg_count = 64\nkey_file = \"{}\"\n\n",
        dir.join("kek.key").display()
    );
    for id in 1..=3 {
        text.push_str(&node("meta", id));
    }
    for id in 1..=data {
        text.push_str(&node("data", id));
    }
    std::fs::write(c.cluster_file(), text).expect("write cluster.toml");
}

fn keygen(path: &Path) {
    let out = Command::new(BIN).arg("keygen").arg(path).output().expect("run shardline keygen");
    assert!(out.status.success(), "keygen: {}", String::from_utf8_lossy(&out.stderr));
}

/// Start the three metadata servers of cluster.toml.
pub fn start_metas(c: &TestCluster) -> Vec<Child> {
    (1..=3).map(|id| c.start_meta(id, &[])).collect()
}

/// Start data server `id` of cluster.toml as `shardline up` would, logging
/// to its folder's `log`.
pub fn start_data(c: &TestCluster, id: u64) -> Child {
    let text = std::fs::read_to_string(c.cluster_file()).expect("read cluster.toml");
    let file: toml::Value = toml::from_str(&text).expect("parse cluster.toml");
    let addr = |kind: &str, id: u64| {
        file[kind]
            .as_array()
            .expect("servers")
            .iter()
            .find(|n| n["id"].as_integer() == Some(id as i64))
            .and_then(|n| n["addr"].as_str())
            .expect("server in cluster.toml")
            .to_string()
    };
    let metas: Vec<String> = (1..=3).map(|m| addr("meta", m)).collect();
    let dir = c.data_dir().join(format!("data-{id}"));
    std::fs::create_dir_all(&dir).expect("create data dir");
    let log = std::fs::OpenOptions::new().create(true).append(true).open(dir.join("log")).expect("open log");
    Command::new(BIN)
        .args(["data", "--id", &id.to_string(), "--listen", &addr("data", id), "--meta", &metas.join(",")])
        .args(["--heartbeat-ms", "500"])
        .arg("--cap-key-file")
        .arg(c.data_dir().join("cap.key"))
        .arg("--dir")
        .arg(&dir)
        .env("SHARDLINE_LOG", "info")
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("clone log"))
        .stderr(log)
        .spawn()
        .expect("spawn shardline data")
}

/// Children of the test that are killed and reaped however it ends.
#[derive(Default)]
pub struct Children(pub Vec<Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
