//! The nemesis' cluster: every server a separate `shardline meta` or
//! `shardline data` process that this process starts, kills, pauses and
//! restarts, with every link between them a proxy (see `topology.rs`).
//!
//! Real servers listen on `127.0.0.<octet>`; proxies on `127.0.0.<octet+1>`.
//! The folder holds `cluster.toml` (the real addresses, for `shardline
//! admin`), `client.toml` and `mount.toml` (the same cluster as the
//! nemesis' clients and the mount reach it: through their proxies), both key
//! files, one folder per server, `logs/<server>.log` (kept when a server's
//! folder is wiped) and `faults/` (the data servers' disk-fault control
//! files, `fault_store.rs`, and the clock offsets of servers started under
//! libfaketime).

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
    /// Metadata servers to start with `--join` (wiped, not yet added back).
    pub join: std::collections::BTreeSet<Node>,
}

/// libfaketime, where Debian puts it (package faketime).
pub const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

/// The cluster CA and a certificate for every server, the clients and
/// the operator, under `DIR/certs/`, made with `shardline admin certs`.
fn make_certs(bin: &Path, dir: &Path, topo: &Topology) -> Result<()> {
    let certs = dir.join("certs");
    let run = |args: &[&str]| -> Result<()> {
        let out = Command::new(bin).args(["admin", "certs"]).args(args).arg("--dir").arg(&certs).output()?;
        if !out.status.success() {
            bail!("shardline admin certs {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
        }
        Ok(())
    };
    run(&["init"])?;
    let mut issue = vec![("client".to_string(), None), ("admin".to_string(), None)];
    for n in topo.servers() {
        match n {
            Node::Meta(i) => issue.push(("meta".into(), Some(i))),
            Node::Data(i) => issue.push(("data".into(), Some(i))),
            _ => {}
        }
    }
    for (role, id) in issue {
        let stem = id.map_or(role.clone(), |i| format!("{role}-{i}"));
        let out = certs.join(&stem).display().to_string();
        let mut args = vec!["issue", "--role", role.as_str(), "--out", out.as_str()];
        let id = id.map(|i| i.to_string());
        if let Some(id) = &id {
            args.extend(["--id", id.as_str()]);
        }
        run(&args)?;
    }
    Ok(())
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
        for key in ["kek.key", "meta.key", "cap.key"] {
            let out = Command::new(bin).arg("keygen").arg(dir.join(key)).output().context("run shardline keygen")?;
            if !out.status.success() {
                bail!("keygen: {}", String::from_utf8_lossy(&out.stderr));
            }
        }
        make_certs(bin, &dir, &topo)?;
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
        std::fs::create_dir_all(dir.join("logs"))?;
        std::fs::create_dir_all(dir.join("faults"))?;
        let mut env = BTreeMap::new();
        for d in 1..=topo.datas {
            let file = dir.join("faults").join(format!("data-{d}"));
            std::fs::write(&file, "none\n")?;
            let var = (shardline_data::fault_store::FAULT_FILE_ENV.to_string(), file.display().to_string());
            env.insert(Node::Data(d), vec![var]);
        }
        let c = Cluster {
            bin: bin.to_path_buf(),
            dir,
            topo,
            ec: ec.to_string(),
            chunk_size,
            listen,
            proxies,
            procs,
            env,
            join: Default::default(),
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
            let cert = self.cert(&format!("{kind}-{id}"));
            text.push_str(&format!(
                "[[{kind}]]\nid = {id}\naddr = \"{addr}\"\ndir = \"{}\"\ncert = \"{}\"\nkey = \"{}\"\n\n",
                dir.display(),
                cert.with_extension("pem").display(),
                cert.with_extension("key").display()
            ));
        }
        let (client, admin) = (self.cert("client"), self.cert("admin"));
        text.push_str(&format!(
            "[tls]\nca = \"{}\"\ncrl = \"{}\"\nclient_cert = \"{}\"\nclient_key = \"{}\"\n\
             admin_cert = \"{}\"\nadmin_key = \"{}\"\n",
            self.cert("ca").with_extension("pem").display(),
            self.cert("crl").with_extension("pem").display(),
            client.with_extension("pem").display(),
            client.with_extension("key").display(),
            admin.with_extension("pem").display(),
            admin.with_extension("key").display(),
        ));
        std::fs::write(self.dir.join(name), text).with_context(|| format!("write {name}"))
    }

    /// `certs/STEM` (add `.pem` or `.key`).
    pub fn cert(&self, stem: &str) -> PathBuf {
        self.dir.join("certs").join(stem)
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
                if self.join.contains(&n) {
                    cmd.arg("--join");
                }
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
        // Both server kinds share the cluster capability key (metadata
        // servers issue shard capabilities, data servers check them) and
        // the cluster CA; each has its own certificate.
        if let Node::Meta(i) | Node::Data(i) = n {
            let kind = if matches!(n, Node::Meta(_)) { "meta" } else { "data" };
            let cert = self.cert(&format!("{kind}-{i}"));
            cmd.arg("--cap-key-file").arg(self.dir.join("cap.key"));
            cmd.arg("--tls-cert").arg(cert.with_extension("pem"));
            cmd.arg("--tls-key").arg(cert.with_extension("key"));
            cmd.arg("--tls-ca").arg(self.cert("ca").with_extension("pem"));
            cmd.arg("--tls-crl").arg(self.cert("crl").with_extension("pem"));
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
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.log_path(n))?;
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

    pub fn log_path(&self, n: Node) -> PathBuf {
        self.dir.join("logs").join(format!("{n}.log"))
    }

    /// The last lines of server `n`'s log, for reports.
    pub fn log_tail(&self, n: Node, lines: usize) -> String {
        let text = std::fs::read_to_string(self.log_path(n)).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

/// Faults on a server's disk, clock and folder.
impl Cluster {
    /// What data server `n`'s disk does now (`fault_store.rs`).
    pub fn set_disk_fault(&self, n: Node, mode: &str) {
        let _ = std::fs::write(self.dir.join("faults").join(n.to_string()), format!("{mode}\n"));
    }

    /// Start server `n` (from its next start on) under libfaketime, its
    /// wall clock offset by what `set_clock` writes; false without it.
    pub fn enable_clock(&mut self, n: Node) -> bool {
        if !Path::new(LIBFAKETIME).exists() {
            return false;
        }
        let file = self.dir.join("faults").join(format!("clock-{n}"));
        if std::fs::write(&file, "+0\n").is_err() {
            return false;
        }
        let vars = [
            ("LD_PRELOAD", LIBFAKETIME.to_string()),
            ("FAKETIME_TIMESTAMP_FILE", file.display().to_string()),
            ("FAKETIME_CACHE_DURATION", "1".to_string()),
            // Only the wall clock jumps; timers and timeouts run on.
            ("FAKETIME_DONT_FAKE_MONOTONIC", "1".to_string()),
        ];
        self.env.entry(n).or_default().extend(vars.into_iter().map(|(k, v)| (k.to_string(), v)));
        true
    }

    pub fn clock_enabled(&self, n: Node) -> bool {
        self.env.get(&n).is_some_and(|v| v.iter().any(|(k, _)| k == "FAKETIME_TIMESTAMP_FILE"))
    }

    /// Offset server `n`'s wall clock by `secs` from the real one.
    pub fn set_clock(&self, n: Node, secs: i64) {
        let _ = std::fs::write(self.dir.join("faults").join(format!("clock-{n}")), format!("{secs:+}\n"));
    }

    /// Delete server `n`'s folder (it must be down).
    pub fn wipe(&self, n: Node) {
        let _ = std::fs::remove_dir_all(self.node_dir(n));
    }

    /// Flip one bit in `count` of data server `n`'s stored shards (chosen
    /// by `seed`), behind its back; how many were flipped.
    pub fn bit_rot(&self, n: Node, seed: u64, count: usize) -> usize {
        use std::os::unix::fs::FileExt;
        let Ok(shards) = shardline_data::segment_store::inspect::stored_shards(&self.node_dir(n)) else { return 0 };
        let shards: Vec<_> = shards.into_iter().filter(|s| s.payload_len > 0).collect();
        let mut flipped = 0;
        for j in 0..count.min(shards.len()) {
            let mix = shardline_types::placement::mix64(seed.wrapping_add(j as u64));
            let s = &shards[(mix % shards.len() as u64) as usize];
            let at = s.payload_offset + (mix >> 32) % s.payload_len;
            let Ok(f) = std::fs::OpenOptions::new().read(true).write(true).open(&s.path) else { continue };
            let mut b = [0u8; 1];
            if f.read_exact_at(&mut b, at).is_ok() && f.write_all_at(&[b[0] ^ 0x04], at).is_ok() {
                flipped += 1;
            }
        }
        flipped
    }

    /// `shardline admin ARGS`, retried until it succeeds or `timeout`.
    pub fn admin_until_ok(&self, args: &[&str], timeout: Duration) -> Result<()> {
        let start = Instant::now();
        loop {
            let out = self.cli(args)?;
            if out.status.success() {
                return Ok(());
            }
            if start.elapsed() > timeout {
                bail!("shardline {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// Whether `admin status` lists every metadata server as a voter that
    /// is leader or follower.
    pub fn metas_ok(&self) -> bool {
        let Ok(out) = self.cli(&["admin", "status", "--json"]) else { return false };
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(&out.stdout) else { return false };
        let Some(metas) = v["meta"].as_array() else { return false };
        (1..=self.topo.metas).all(|id| {
            metas.iter().any(|m| m["id"].as_u64() == Some(id) && (m["role"] == "leader" || m["role"] == "follower"))
        })
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop_all();
    }
}

/// The TLS identity (`client` or `admin`) the cluster file at `path` names.
pub fn identity_of(path: &Path, role: &str) -> Result<std::sync::Arc<shardline_rpc::Tls>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
    identity(&toml::from_str(&text)?, role)
}

/// The TLS identity (`client` or `admin`) a cluster file's `[tls]` names.
pub fn identity(file: &toml::Value, role: &str) -> Result<std::sync::Arc<shardline_rpc::Tls>> {
    let tls = file.get("tls").context("the cluster file has no [tls] section")?;
    let path =
        |k: &str| -> Result<PathBuf> { Ok(PathBuf::from(tls[k].as_str().with_context(|| format!("[tls] {k}"))?)) };
    let files = shardline_rpc::TlsFiles {
        cert: path(&format!("{role}_cert"))?,
        key: path(&format!("{role}_key"))?,
        ca: path("ca")?,
        crl: Some(path("crl")?),
    };
    Ok(shardline_rpc::Tls::load(&files)?)
}
