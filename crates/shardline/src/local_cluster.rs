//! A local cluster of real processes: `shardline meta` and `shardline data`
//! children of this process, on loopback ports, all under one folder.
//! Used by `shardline up` and `shardline demo`.

use std::collections::{HashMap, HashSet};
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use shardline_crypto::{Kek, Keyring};
use shardline_proto::v1 as pb;
use shardline_rpc::{Role, Tls};
use shardline_types::Layout;

use crate::cluster_file::{ClusterFile, Node, CLUSTER_FILE_VERSION};

/// The metadata servers' key file, next to `cluster.toml`.
pub const META_KEY_FILE: &str = "meta.key";
/// The cluster capability key file (metadata and data servers), next to
/// `cluster.toml`.
pub const CAP_KEY_FILE: &str = "cap.key";

/// What to start.
#[derive(Debug, Clone)]
pub struct Spec {
    pub dir: PathBuf,
    pub meta: usize,
    pub data: usize,
    pub layout: Layout,
    pub pg_count: u32,
    /// Loopback address the servers bind (127.0.0.x).
    pub host: String,
    /// Bytes each data server may hold (None: the disk's free space).
    pub data_capacity: Option<u64>,
    /// Metadata servers' client lease in ms (None: their default).
    pub client_lease_ms: Option<u64>,
    /// Data servers accept, and clients offer, the integrity-only transport.
    pub data_integrity_only: bool,
    /// Clients store files of at most this many bytes as copies (None: the
    /// client's default; written to cluster.toml).
    pub small_file_max: Option<u64>,
}

/// How waiting for a started cluster ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    /// Every running data server up, every placement group healthy.
    Ready,
    /// The cluster answers but was not healthy in time: what is missing.
    Unhealthy(String),
}

/// Running children; stopped on drop.
pub struct LocalCluster {
    pub file: ClusterFile,
    pub cluster_path: PathBuf,
    /// The operator's identity (status and health checks).
    pub admin: Arc<Tls>,
    children: Vec<(String, Child)>,
}

/// A free port, held (by the returned listener) until the caller has picked
/// every port it needs, so no two nodes are handed the same one.
fn free_port(host: &str) -> Result<(u16, TcpListener)> {
    let l = TcpListener::bind((host, 0)).with_context(|| format!("bind a free port on {host}"))?;
    Ok((l.local_addr()?.port(), l))
}

/// Create the cluster file, key file and certificates on first start;
/// reuse them after (a cluster file from before TLS gets its certificates).
fn prepare(spec: &Spec) -> Result<ClusterFile> {
    std::fs::create_dir_all(&spec.dir).with_context(|| format!("create {}", spec.dir.display()))?;
    let dir = spec.dir.canonicalize()?;
    let path = dir.join("cluster.toml");
    if path.exists() {
        let mut file = ClusterFile::load(&path)?;
        if crate::certs::ensure_local(&mut file, &dir, spec.data_integrity_only)? {
            file.save(&path)?;
        }
        if file.meta.len() != spec.meta || file.data.len() != spec.data || file.ec != spec.layout.ec() {
            tracing::warn!(
                "{} already describes {} meta / {} data servers with EC {}; using it as it is",
                path.display(),
                file.meta.len(),
                file.data.len(),
                file.ec
            );
        }
        shardline_crypto::Keyring::load(&file.key_file).context("load the cluster's key file")?;
        return Ok(file);
    }
    let key_file = dir.join("kek.key");
    Kek::load_or_create(&key_file).context("create the key-encryption key file")?;
    let held = std::cell::RefCell::new(Vec::new());
    let node = |kind: &str, id: u64| -> Result<Node> {
        let (port, listener) = free_port(&spec.host)?;
        held.borrow_mut().push(listener);
        Ok(Node {
            id,
            addr: format!("{}:{}", spec.host, port),
            dir: dir.join(format!("{kind}-{id}")),
            cert: None,
            key: None,
        })
    };
    let meta = (1..=spec.meta as u64).map(|i| node("meta", i)).collect::<Result<Vec<_>>>()?;
    let data = (1..=spec.data as u64).map(|i| node("data", i)).collect::<Result<Vec<_>>>()?;
    drop(held);
    let mut file = ClusterFile {
        version: CLUSTER_FILE_VERSION,
        ec: spec.layout.ec(),
        chunk_size: spec.layout.chunk_size,
        pg_count: spec.pg_count,
        key_file,
        key_command: None,
        key_command_timeout_s: None,
        meta,
        data,
        tls: None,
        small_file_max: spec.small_file_max,
    };
    crate::certs::ensure_local(&mut file, &dir, spec.data_integrity_only)?;
    file.validate()?;
    file.save(&path)?;
    Ok(file)
}

/// Each local server's metrics endpoint, by listen address: its own host
/// and a port picked here, apart from every server's listen port (the
/// server writes the address to `DIR/metrics.addr`). Picked up front rather
/// than left to the servers as port 0: a metadata server binding port 0 at
/// start could be handed a data server's listen port, free until that data
/// server starts ("Address already in use").
fn metrics_listens(file: &ClusterFile) -> Result<HashMap<String, String>> {
    let taken: HashSet<&str> = file.meta.iter().chain(&file.data).map(|n| n.addr.as_str()).collect();
    let mut held = Vec::new();
    let mut out = HashMap::new();
    for n in file.meta.iter().chain(&file.data) {
        let host = n.addr.rsplit_once(':').map_or(n.addr.as_str(), |(h, _)| h);
        let addr = loop {
            let (port, listener) = free_port(host)?;
            held.push(listener);
            let addr = format!("{host}:{port}");
            if !taken.contains(addr.as_str()) {
                break addr;
            }
        };
        out.insert(n.addr.clone(), addr);
    }
    Ok(out)
}

/// The pid recorded in `dir/pid`, if that process is still alive.
pub fn running_pid(dir: &Path) -> Option<i32> {
    let pid: i32 = std::fs::read_to_string(dir.join("pid")).ok()?.trim().parse().ok()?;
    // SAFETY: kill with signal 0 only checks that the process exists.
    let exists = unsafe { libc::kill(pid, 0) } == 0;
    // A killed server not yet reaped by its parent is a zombie: not running.
    let zombie = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit(')').next().and_then(|rest| rest.split_whitespace().next()).map(|st| st == "Z" || st == "X")
        })
        .unwrap_or(false);
    (exists && !zombie).then_some(pid)
}

impl LocalCluster {
    /// Prepare the folder and start every server. Call from the main thread:
    /// children are bound to the spawning thread's life (PR_SET_PDEATHSIG).
    pub fn start(spec: &Spec) -> Result<LocalCluster> {
        let file = prepare(spec)?;
        for n in file.meta.iter().chain(&file.data) {
            if let Some(pid) = running_pid(&n.dir) {
                bail!("a server is already running in {} (pid {pid}); stop that cluster first", n.dir.display());
            }
        }
        let exe = std::env::current_exe().context("find the shardline executable")?;
        let admin = file.identity(Role::Admin)?;
        let tls = file.tls.clone().context("the cluster file names no TLS files")?;
        let mut cluster = LocalCluster {
            cluster_path: file.key_file.with_file_name("cluster.toml"),
            file,
            admin,
            children: Vec::new(),
        };
        let layout = cluster.file.layout()?;
        // The metadata servers' shared key (their storage is sealed with it).
        let meta_key = cluster.cluster_path.with_file_name(META_KEY_FILE);
        // A keyring file (format v2) with an id bound into every sealed
        // value; an existing v1 file is kept and still loads.
        Keyring::load_or_create_v2(&meta_key, "meta").context("create the metadata servers' key file")?;
        // The cluster capability key (shard tokens), 0600 like the others.
        // SHARDLINE_INSECURE_NO_CAPABILITIES=1 starts every server without
        // capabilities instead (development, and to measure their cost).
        let cap_key = cluster.cluster_path.with_file_name(CAP_KEY_FILE);
        Kek::load_or_create(&cap_key).context("create the cluster capability key file")?;
        let caps_off = std::env::var_os("SHARDLINE_INSECURE_NO_CAPABILITIES").is_some_and(|v| v == "1");
        let cap_args: Vec<std::ffi::OsString> = if caps_off {
            vec!["--insecure-no-capabilities".into()]
        } else {
            vec!["--cap-key-file".into(), cap_key.clone().into()]
        };
        let metrics = metrics_listens(&cluster.file)?;
        let metrics_listen = |addr: &str| {
            let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
            metrics.get(addr).cloned().unwrap_or_else(|| format!("{host}:0"))
        };
        for n in cluster.file.meta.clone() {
            let mut cmd = Command::new(&exe);
            cmd.arg("meta")
                .args(["--id", &n.id.to_string(), "--listen", &n.addr, "--peers", &cluster.file.peers_arg()])
                .args(["--ec", &layout.ec(), "--chunk-size", &layout.chunk_size.to_string()])
                .args(["--pg-count", &cluster.file.pg_count.to_string(), "--down-after-ms", "3000"])
                .args(["--metrics-listen", &metrics_listen(&n.addr)])
                .arg("--key-file")
                .arg(&meta_key)
                .args(n.tls_args(&tls)?)
                .args(&cap_args)
                .arg("--dir")
                .arg(&n.dir);
            if let Some(ms) = spec.client_lease_ms {
                cmd.args(["--client-lease-ms", &ms.to_string()]);
            }
            cluster.spawn(format!("meta-{}", n.id), cmd, &n.dir)?;
        }
        for n in cluster.file.data.clone() {
            let mut cmd = Command::new(&exe);
            cmd.arg("data")
                .args(["--id", &n.id.to_string(), "--listen", &n.addr, "--meta", &cluster.file.meta_addrs().join(",")])
                .args(["--heartbeat-ms", "500"])
                .args(n.tls_args(&tls)?)
                .args(["--metrics-listen", &metrics_listen(&n.addr)])
                .args(&cap_args)
                .arg("--dir")
                .arg(&n.dir);
            if let Some(c) = spec.data_capacity {
                cmd.args(["--capacity", &c.to_string()]);
            }
            if spec.data_integrity_only {
                cmd.arg("--integrity-only");
            }
            cluster.spawn(format!("data-{}", n.id), cmd, &n.dir)?;
        }
        Ok(cluster)
    }

    fn spawn(&mut self, name: String, mut cmd: Command, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir)?;
        let log = std::fs::OpenOptions::new().create(true).append(true).open(dir.join("log"))?;
        cmd.stdin(Stdio::null()).stdout(log.try_clone()?).stderr(log);
        // SAFETY: prctl is async-signal-safe; it only asks the kernel to
        // SIGKILL this child when the spawning thread exits, so no server
        // outlives a crashed `up`, `demo` or test.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().with_context(|| format!("start {name}"))?;
        self.children.push((name, child));
        Ok(())
    }

    /// Wait until a leader is elected, every data server heartbeats and the
    /// placement map exists with every group healthy; any server that exits
    /// meanwhile is an error (for `demo` and `bench`, which need them all).
    pub async fn wait_ready(&mut self, timeout: Duration) -> Result<()> {
        let mut died = Vec::new();
        let r = self
            .wait_ready_reporting(timeout, |name, pid, status| {
                died.push(format!("{name} (pid {pid}) exited: {status}"))
            })
            .await?;
        if !died.is_empty() {
            bail!("{}; see its log file", died.join("; "));
        }
        match r {
            Readiness::Ready => Ok(()),
            Readiness::Unhealthy(last) => bail!("cluster not healthy after {timeout:?}: {last}"),
        }
    }

    /// Wait until the cluster is ready: a leader answers and says every data
    /// server still running is up and every placement group healthy. A server
    /// that exits before the cluster has answered requests (no leader elected
    /// and committed yet) is a failed start (an error); once it has, a server
    /// that exits is only reported through
    /// `exited(name, pid, status)` and no longer waited for: the others keep
    /// running. After `timeout`, a cluster that answers but is not healthy is
    /// `Unhealthy` (still running); one that never answered is an error.
    pub async fn wait_ready_reporting(
        &mut self,
        timeout: Duration,
        mut exited: impl FnMut(&str, u32, &str),
    ) -> Result<Readiness> {
        let start = Instant::now();
        let mut answered = false;
        let mut last = String::from("no metadata leader yet");
        loop {
            let gone = self.reap();
            if !gone.is_empty() && !answered {
                // Whether it answered before we asked (`up` may be slower
                // to ask than a script, or than the death).
                answered = crate::health::has_served(&self.file.meta_addrs(), &self.admin).await;
            }
            for (name, pid, status) in gone {
                if !answered {
                    bail!("{name} (pid {pid}) exited during start-up ({status}); see its log file");
                }
                exited(&name, pid, &status);
            }
            if let Some(st) = crate::health::leader_status(&self.file.meta_addrs(), &self.admin).await {
                answered = true;
                let h = crate::health::health(&st, &self.running_data_ids());
                if h.healthy {
                    return Ok(Readiness::Ready);
                }
                last = h.summary;
            }
            if start.elapsed() >= timeout {
                if answered {
                    return Ok(Readiness::Unhealthy(last));
                }
                bail!("cluster not ready after {timeout:?}: {last}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Ids of the data servers whose processes are running.
    fn running_data_ids(&self) -> Vec<u64> {
        self.children.iter().filter_map(|(name, _)| name.strip_prefix("data-")?.parse().ok()).collect()
    }

    /// Process ids of the running servers (for `bench`'s CPU accounting).
    pub fn pids(&self) -> Vec<u32> {
        self.children.iter().map(|(_, child)| child.id()).collect()
    }

    /// The metadata leader's status, if a leader answers.
    pub async fn leader_status(&self) -> Option<pb::ClusterStatus> {
        crate::health::leader_status(&self.file.meta_addrs(), &self.admin).await
    }

    /// Children that exited since the last call: (name, pid, how it ended).
    pub fn reap(&mut self) -> Vec<(String, u32, String)> {
        let mut gone = Vec::new();
        self.children.retain_mut(|(name, child)| match child.try_wait() {
            Ok(Some(status)) => {
                gone.push((name.clone(), child.id(), status.to_string()));
                false
            }
            _ => true,
        });
        gone
    }

    /// SIGKILL one child (e.g. "data-3") and reap it, as a crash would.
    pub fn kill(&mut self, name: &str) -> Result<()> {
        let Some(pos) = self.children.iter().position(|(n, _)| n == name) else { bail!("no running server {name}") };
        let (_, mut child) = self.children.remove(pos);
        child.kill().with_context(|| format!("kill {name}"))?;
        child.wait().with_context(|| format!("reap {name}"))?;
        Ok(())
    }

    /// SIGTERM every child, wait for them, SIGKILL stragglers.
    pub fn stop(&mut self) {
        for (_, child) in &self.children {
            // SAFETY: signalling our own child by pid.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        for (_, child) in &mut self.children {
            loop {
                match child.try_wait() {
                    Ok(Some(_)) | Err(_) => break,
                    Ok(None) if Instant::now() > deadline => {
                        let _ = child.kill();
                        let _ = child.wait();
                        break;
                    }
                    Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        }
        self.children.clear();
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        self.stop();
    }
}
