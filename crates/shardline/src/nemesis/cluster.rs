//! The nemesis' cluster: every server a separate `shardline meta` or
//! `shardline data` process that this process starts, kills, pauses and
//! restarts, with every link between them a proxy (see `topology.rs`).
//!
//! Real servers listen on `127.0.0.<octet>`; proxies on `127.0.0.<octet+1>`.
//! The folder holds `cluster.toml` (the real addresses, for `shardline
//! admin`), `client.toml` and `mount.toml` (the same cluster as the
//! nemesis' clients and the mount reach it: through their proxies), both key
//! files, and one folder with a `log` per server.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::proxy::{Mode, Proxy};
use crate::topology::{Node, Topology};

/// How a server process is doing, as the nemesis left it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunState {
    Running,
    Paused,
    /// Killed by the nemesis (or not started yet).
    Down,
}

struct Proc {
    child: Option<Child>,
    state: RunState,
}

pub struct Cluster {
    pub bin: PathBuf,
    pub dir: PathBuf,
    pub topo: Topology,
    pub ec: String,
    pub chunk_size: u32,
    /// Where each server really listens.
    pub listen: BTreeMap<Node, String>,
    /// One proxy per link, in `topo.links` order.
    pub proxies: Vec<Proxy>,
    procs: BTreeMap<Node, Proc>,
    /// Extra environment per server (disk faults, clock skew).
    pub env: BTreeMap<Node, Vec<(String, String)>>,
}

fn free_addr(host: &str) -> Result<String> {
    let l = TcpListener::bind((host, 0)).with_context(|| format!("bind a free port on {host}"))?;
    Ok(l.local_addr()?.to_string())
}

impl Cluster {
    /// Lay out the folder, keys and proxies; start nothing yet.
    pub fn prepare(bin: &Path, dir: &Path, topo: Topology, octet: u8, ec: &str, chunk_size: u32) -> Result<Cluster> {
        let (host, proxy_host) = (format!("127.0.0.{octet}"), format!("127.0.0.{}", octet + 1));
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
        let dir = dir.canonicalize()?;
        for key in ["kek.key", "meta.key"] {
            let out = Command::new(bin).arg("keygen").arg(dir.join(key)).output().context("run shardline keygen")?;
            if !out.status.success() {
                bail!("keygen: {}", String::from_utf8_lossy(&out.stderr));
            }
        }
        let mut listen = BTreeMap::new();
        for n in topo.servers() {
            listen.insert(n, free_addr(&host)?);
        }
        let mut proxies = Vec::new();
        for l in &topo.links {
            let target = listen.get(&l.to).context("link to a server")?;
            let listener = TcpListener::bind((proxy_host.as_str(), 0)).context("bind a proxy")?;
            proxies.push(Proxy::with_listener(listener, target));
        }
        let procs = topo.servers().into_iter().map(|n| (n, Proc { child: None, state: RunState::Down })).collect();
        let c = Cluster {
            bin: bin.to_path_buf(),
            dir,
            topo,
            ec: ec.to_string(),
            chunk_size,
            listen,
            proxies,
            procs,
            env: BTreeMap::new(),
        };
        c.write_cluster_file("cluster.toml", |n| c.listen[&n].clone())?;
        c.write_cluster_file("client.toml", |n| c.proxy_addr(Node::Client, n))?;
        c.write_cluster_file("mount.toml", |n| c.proxy_addr(Node::Mount, n))?;
        Ok(c)
    }

    /// The address `from` dials to reach `to`.
    pub fn proxy_addr(&self, from: Node, to: Node) -> String {
        let from = if matches!(to, Node::Data(_)) { Node::Anyone } else { from };
        match self.topo.link(from, to) {
            Some(i) => self.proxies[i].addr.clone(),
            None => self.listen[&to].clone(),
        }
    }

    fn write_cluster_file(&self, name: &str, meta_addr: impl Fn(Node) -> String) -> Result<()> {
        let mut text = format!(
            "version = 1\nec = \"{}\"\nchunk_size = {}\npg_count = 32\nkey_file = \"{}\"\n\n",
            self.ec,
            self.chunk_size,
            self.dir.join("kek.key").display()
        );
        for n in self.topo.servers() {
            let (kind, id, addr) = match n {
                Node::Meta(i) => ("meta", i, meta_addr(n)),
                Node::Data(i) => ("data", i, self.proxy_addr(Node::Anyone, n)),
                _ => continue,
            };
            let dir = self.node_dir(n);
            text.push_str(&format!("[[{kind}]]\nid = {id}\naddr = \"{addr}\"\ndir = \"{}\"\n\n", dir.display()));
        }
        std::fs::write(self.dir.join(name), text).with_context(|| format!("write {name}"))
    }

    pub fn node_dir(&self, n: Node) -> PathBuf {
        self.dir.join(n.to_string())
    }

    pub fn cluster_file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn command(&self, n: Node) -> Command {
        let mut cmd = Command::new(&self.bin);
        let dir = self.node_dir(n);
        match n {
            Node::Meta(i) => {
                let peers: Vec<String> = (1..=self.topo.metas)
                    .map(|j| {
                        let addr = if j == i { self.listen[&n].clone() } else { self.proxy_addr(n, Node::Meta(j)) };
                        format!("{j}={addr}")
                    })
                    .collect();
                cmd.args(["meta", "--id", &i.to_string(), "--listen", &self.listen[&n]])
                    .args(["--peers", &peers.join(","), "--ec", &self.ec])
                    .args(["--chunk-size", &self.chunk_size.to_string(), "--pg-count", "32"])
                    .args(["--down-after-ms", "3000"])
                    .arg("--key-file")
                    .arg(self.dir.join("meta.key"));
            }
            Node::Data(i) => {
                let metas: Vec<String> = (1..=self.topo.metas).map(|j| self.proxy_addr(n, Node::Meta(j))).collect();
                cmd.args(["data", "--id", &i.to_string(), "--listen", &self.listen[&n]])
                    .args(["--advertise", &self.proxy_addr(Node::Anyone, n), "--meta", &metas.join(",")])
                    .args(["--heartbeat-ms", "500", "--scrub-interval-s", "60"])
                    .args(["--gc-interval-s", "30", "--gc-grace-s", "120"]);
            }
            _ => {}
        }
        cmd.arg("--dir").arg(&dir).env("SHARDLINE_LOG", "info");
        for (k, v) in self.env.get(&n).into_iter().flatten() {
            cmd.env(k, v);
        }
        cmd
    }

    /// Start (or restart) server `n`, logging to its folder's `log`.
    pub fn start(&mut self, n: Node) -> Result<()> {
        let dir = self.node_dir(n);
        std::fs::create_dir_all(&dir)?;
        let log = std::fs::OpenOptions::new().create(true).append(true).open(dir.join("log"))?;
        let mut cmd = self.command(n);
        cmd.stdin(Stdio::null()).stdout(log.try_clone()?).stderr(log);
        // SAFETY: prctl is async-signal-safe; the kernel SIGKILLs the server
        // if the thread that started it (the nemesis' main thread) dies.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = cmd.spawn().with_context(|| format!("start {n}"))?;
        let p = self.procs.get_mut(&n).context("no such server")?;
        p.child = Some(child);
        p.state = RunState::Running;
        Ok(())
    }

    pub fn state(&self, n: Node) -> RunState {
        self.procs.get(&n).map_or(RunState::Down, |p| p.state)
    }

    fn signal(&self, n: Node, sig: i32) {
        if let Some(c) = self.procs.get(&n).and_then(|p| p.child.as_ref()) {
            // SAFETY: signalling a child this process started and has not reaped.
            unsafe { libc::kill(c.id() as i32, sig) };
        }
    }

    /// SIGKILL server `n` and reap it.
    pub fn kill(&mut self, n: Node) {
        self.signal(n, libc::SIGCONT);
        if let Some(p) = self.procs.get_mut(&n) {
            if let Some(mut c) = p.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
            p.state = RunState::Down;
        }
    }

    pub fn pause(&mut self, n: Node) {
        self.signal(n, libc::SIGSTOP);
        if let Some(p) = self.procs.get_mut(&n) {
            p.state = RunState::Paused;
        }
    }

    pub fn resume(&mut self, n: Node) {
        self.signal(n, libc::SIGCONT);
        if let Some(p) = self.procs.get_mut(&n) {
            if p.child.is_some() {
                p.state = RunState::Running;
            }
        }
    }

    /// Servers that exited without the nemesis killing them: (server, how).
    pub fn unexpected_exits(&mut self) -> Vec<(Node, String)> {
        let mut out = Vec::new();
        for (n, p) in self.procs.iter_mut() {
            if let Some(c) = p.child.as_mut() {
                if let Ok(Some(status)) = c.try_wait() {
                    out.push((*n, status.to_string()));
                    p.child = None;
                    p.state = RunState::Down;
                }
            }
        }
        out
    }

    pub fn set_mode(&self, links: &[usize], mode: Mode) {
        for &i in links {
            if let Some(p) = self.proxies.get(i) {
                p.set_mode(mode);
            }
        }
    }

    /// Every link open again.
    pub fn heal_network(&self) {
        for p in &self.proxies {
            if p.mode() != Mode::Open {
                p.set_mode(Mode::Open);
            }
        }
    }

    /// Run `shardline --cluster cluster.toml ARGS` (a public surface).
    pub fn cli(&self, args: &[&str]) -> std::io::Result<std::process::Output> {
        Command::new(&self.bin)
            .arg("--cluster")
            .arg(self.cluster_file("cluster.toml"))
            .args(args)
            .env("SHARDLINE_LOG", "warn")
            .stdin(Stdio::null())
            .output()
    }

    /// The metadata leader's id, from `admin status --json`.
    pub fn leader(&self) -> Option<u64> {
        let out = self.cli(&["admin", "status", "--json"]).ok()?;
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        v["meta"].as_array()?.iter().find(|m| m["role"] == "leader").and_then(|m| m["id"].as_u64())
    }

    /// Wait (up to `timeout`) until `admin status --wait-healthy` says every
    /// data server is up and every placement group healthy; how long it took.
    pub fn wait_healthy(&self, timeout: Duration) -> Result<Duration> {
        let start = Instant::now();
        let secs = timeout.as_secs().max(1).to_string();
        let out = self.cli(&["admin", "status", "--wait-healthy", "--timeout", &secs, "--json"])?;
        if !out.status.success() {
            bail!("not healthy after {timeout:?}: {}", String::from_utf8_lossy(&out.stderr).trim());
        }
        Ok(start.elapsed())
    }

    /// SIGTERM every server, then SIGKILL what is left.
    pub fn stop_all(&mut self) {
        for n in self.topo.servers() {
            self.signal(n, libc::SIGCONT);
            self.signal(n, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        for p in self.procs.values_mut() {
            if let Some(mut c) = p.child.take() {
                while Instant::now() < deadline && matches!(c.try_wait(), Ok(None)) {
                    std::thread::sleep(Duration::from_millis(20));
                }
                let _ = c.kill();
                let _ = c.wait();
            }
            p.state = RunState::Down;
        }
    }

    /// The last lines of server `n`'s log, for reports.
    pub fn log_tail(&self, n: Node, lines: usize) -> String {
        let text = std::fs::read_to_string(self.node_dir(n).join("log")).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop_all();
    }
}
