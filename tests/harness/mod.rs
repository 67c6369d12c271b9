//! A real local cluster for black-box tests: `shardline up` as a child
//! process (which starts 3 meta + 6 data server processes), on a loopback
//! address of the test's own, in a temporary folder. Everything is stopped
//! when the harness drops, even when the test fails.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_shardline");
/// Small chunks so that "several chunks" stays small and fast.
pub const CHUNK: usize = 64 << 10;
/// A byte offset inside every shard's payload (from its start), for tests
/// that flip bits in stored shards (shards of 64 KiB chunks are ~16 KiB).
pub const PAYLOAD_BYTE: u64 = 100;

/// A shard as a data server stores it, found behind its back (in segment
/// files or in a file of its own, whichever store wrote it).
#[derive(Debug, Clone)]
pub struct ShardOnDisk {
    pub server: u64,
    /// The server's data folder.
    pub dir: PathBuf,
    /// The shard's name: `<file id>-<chunk>-<version>-<shard index>` in hex.
    pub name: String,
    pub key: shardline_types::ShardKey,
    /// The file holding it, and where its payload lies there.
    pub path: PathBuf,
    pub payload_offset: u64,
    pub payload_len: u64,
}

impl ShardOnDisk {
    /// Flip bits (`mask`) of payload byte `at`, in place: the file may be a
    /// segment the server is appending to.
    pub fn flip(&self, at: u64, mask: u8) {
        use std::os::unix::fs::FileExt;
        assert!(at < self.payload_len, "byte {at} is past the payload");
        let f = std::fs::OpenOptions::new().read(true).write(true).open(&self.path).expect("open shard");
        let mut b = [0u8; 1];
        f.read_exact_at(&mut b, self.payload_offset + at).expect("read shard byte");
        f.write_all_at(&[b[0] ^ mask], self.payload_offset + at).expect("write shard byte");
        f.sync_all().expect("sync shard");
    }

    /// The payload, read behind the server's back.
    pub fn payload(&self) -> Vec<u8> {
        use std::os::unix::fs::FileExt;
        let f = std::fs::File::open(&self.path).expect("open shard");
        let mut buf = vec![0u8; self.payload_len as usize];
        f.read_exact_at(&mut buf, self.payload_offset).expect("read shard");
        buf
    }
}

/// Every shard stored in the data folder `dir` of server `server`.
pub fn shards_in(server: u64, dir: &Path) -> Vec<ShardOnDisk> {
    shardline_data::segment_store::inspect::stored_shards(dir)
        .expect("inspect a data folder")
        .into_iter()
        .map(|s| ShardOnDisk {
            server,
            dir: dir.to_path_buf(),
            name: s.key.file_name(),
            key: s.key,
            path: s.path,
            payload_offset: s.payload_offset,
            payload_len: s.payload_len,
        })
        .collect()
}

pub struct TestCluster {
    pub dir: tempfile::TempDir,
    pub host: String,
    /// Extra flags for `shardline up` (e.g. --data 8).
    pub up_args: Vec<String>,
    /// Environment variables for `shardline up` and so for every server it
    /// starts (e.g. SHARDLINE_GC_MIN_GRACE_MS).
    pub up_env: Vec<(String, String)>,
    up: Option<Child>,
    /// Lines `shardline up` has printed on stdout so far.
    up_out: Arc<UpOutput>,
    /// A `shardline up --daemon` this harness started (not its child).
    daemon_pid: Option<i32>,
}

/// `shardline up`'s stdout, line by line, and whether it has closed.
#[derive(Default)]
struct UpOutput {
    lines: Mutex<(Vec<String>, bool)>,
    changed: Condvar,
}

impl TestCluster {
    /// Start a cluster on 127.0.0.`octet` (one octet per test keeps tests apart).
    pub fn start(octet: u8) -> TestCluster {
        Self::start_with(octet, &[])
    }

    /// Start with extra `shardline up` flags.
    pub fn start_with(octet: u8, up_args: &[&str]) -> TestCluster {
        let mut c = Self::unstarted(octet, up_args);
        c.up();
        c
    }

    /// A harness for a cluster on 127.0.0.`octet` with nothing started yet.
    pub fn unstarted(octet: u8, up_args: &[&str]) -> TestCluster {
        let dir = tempfile::Builder::new().prefix("shardline-test-").tempdir().expect("temp dir");
        let up_args = up_args.iter().map(|s| s.to_string()).collect();
        TestCluster {
            dir,
            host: format!("127.0.0.{octet}"),
            up_args,
            up_env: Vec::new(),
            up: None,
            up_out: Arc::default(),
            daemon_pid: None,
        }
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("cluster")
    }

    pub fn cluster_file(&self) -> PathBuf {
        self.data_dir().join("cluster.toml")
    }

    /// (id, listen address) of every server of `kind` (`meta` or `data`),
    /// as cluster.toml lists them.
    pub fn servers(&self, kind: &str) -> Vec<(u64, String)> {
        let text = std::fs::read_to_string(self.cluster_file()).expect("read cluster.toml");
        let file: toml::Value = toml::from_str(&text).expect("parse cluster.toml");
        file[kind]
            .as_array()
            .expect("servers")
            .iter()
            .map(|n| (n["id"].as_integer().expect("id") as u64, n["addr"].as_str().expect("addr").to_string()))
            .collect()
    }

    fn up_command(&self) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.args(["up", "--chunk-size", &CHUNK.to_string(), "--host", &self.host, "--data-dir"])
            .arg(self.data_dir())
            .args(&self.up_args)
            // Tests count on 6 data servers (K+M) unless they ask otherwise.
            .args(if self.up_args.iter().any(|a| a == "--data") { &[][..] } else { &["--data", "6"][..] })
            .envs(self.up_env.iter().map(|(k, v)| (k, v)))
            .env("SHARDLINE_LOG", "warn");
        // SAFETY: prctl is async-signal-safe. If the test process dies
        // without dropping the harness (an abort), `up` gets SIGTERM and
        // stops its servers instead of outliving the test.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            })
        };
        cmd
    }

    /// Start `shardline up` and wait for its "ready" line.
    pub fn up(&mut self) {
        self.spawn_up();
        if self.wait_up_line(|l| l.contains("cluster ready"), Duration::from_secs(90)).is_none() {
            let said = self.up_lines().join("\n");
            self.stop();
            let logs = self.server_log_tails(20);
            panic!("cluster did not become ready within 90 s; `up` said:\n{said}\n{logs}");
        }
    }

    /// The last `lines` lines of every server's log (for a failure message:
    /// the folder is gone once the test ends).
    pub fn server_log_tails(&self, lines: usize) -> String {
        let mut out = String::new();
        let Ok(entries) = std::fs::read_dir(self.data_dir()) else { return out };
        let mut dirs: Vec<PathBuf> = entries.filter_map(|e| e.ok()).map(|e| e.path()).collect();
        dirs.sort();
        for dir in dirs {
            let Ok(text) = std::fs::read_to_string(dir.join("log")) else { continue };
            let tail: Vec<&str> = text.lines().rev().take(lines).collect();
            out.push_str(&format!("--- {} log, last lines:\n", dir.display()));
            for l in tail.into_iter().rev() {
                out.push_str(l);
                out.push('\n');
            }
        }
        out
    }

    /// Start `shardline up` without waiting for anything; its stdout lines
    /// are collected for [`wait_up_line`](Self::wait_up_line).
    pub fn spawn_up(&mut self) {
        assert!(self.up.is_none(), "cluster already running");
        let mut child =
            self.up_command().stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn().expect("spawn shardline up");
        let stdout = child.stdout.take().expect("stdout");
        let out = Arc::new(UpOutput::default());
        self.up_out = out.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                out.lines.lock().unwrap_or_else(|e| e.into_inner()).0.push(line);
                out.changed.notify_all();
            }
            out.lines.lock().unwrap_or_else(|e| e.into_inner()).1 = true;
            out.changed.notify_all();
        });
        self.up = Some(child);
    }

    /// The first line `shardline up` printed that satisfies `want`, waiting
    /// for it up to `timeout`; None if up closed its output (exited) or the
    /// time ran out first.
    pub fn wait_up_line(&self, want: impl Fn(&str) -> bool, timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        let mut guard = self.up_out.lines.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(l) = guard.0.iter().find(|l| want(l)) {
                return Some(l.clone());
            }
            let now = Instant::now();
            if guard.1 || now >= deadline {
                return None;
            }
            guard = self.up_out.changed.wait_timeout(guard, deadline - now).unwrap_or_else(|e| e.into_inner()).0;
        }
    }

    /// Every line `shardline up` has printed so far.
    pub fn up_lines(&self) -> Vec<String> {
        self.up_out.lines.lock().unwrap_or_else(|e| e.into_inner()).0.clone()
    }

    /// Whether the `shardline up` this harness started is still running.
    pub fn up_running(&mut self) -> bool {
        self.up.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Freeze (SIGSTOP) or thaw (SIGCONT) `shardline up` itself; its
    /// servers keep running either way.
    pub fn signal_up(&self, signal: i32) {
        let child = self.up.as_ref().expect("shardline up is running");
        // SAFETY: signalling our own child.
        unsafe { libc::kill(child.id() as i32, signal) };
    }

    /// Run `shardline up --daemon`, which returns once the cluster is
    /// ready; returns its output. Drop stops the background cluster.
    pub fn up_daemon(&mut self) -> Output {
        let out = self.up_command().arg("--daemon").output().expect("run shardline up --daemon");
        let text = String::from_utf8_lossy(&out.stdout);
        self.daemon_pid = text
            .split("(pid ")
            .nth(1)
            .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|pid| pid.parse().ok());
        out
    }

    /// SIGTERM `shardline up` (which stops its servers) and wait for it.
    pub fn stop(&mut self) {
        if let Some(pid) = self.daemon_pid.take() {
            // SAFETY: signalling the background `up` this harness started.
            unsafe { libc::kill(pid, libc::SIGTERM) };
            if !exited_within(pid, Duration::from_secs(20)) {
                // SAFETY: as above.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
        if let Some(mut child) = self.up.take() {
            // SAFETY: signalling our own child; SIGCONT in case it was frozen.
            unsafe {
                libc::kill(child.id() as i32, libc::SIGCONT);
                libc::kill(child.id() as i32, libc::SIGTERM);
            }
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn restart(&mut self) {
        self.stop();
        self.up();
    }

    /// Run the CLI against this cluster.
    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new(BIN)
            .arg("--cluster")
            .arg(self.cluster_file())
            .args(args)
            .env("SHARDLINE_LOG", "warn")
            .output()
            .expect("run shardline")
    }

    /// Run the CLI and require success.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        assert!(out.status.success(), "shardline {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Run the CLI and require success and JSON on stdout.
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let out = self.ok(args);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?} printed no JSON ({e}): {out}"))
    }

    /// Run the CLI expecting failure: its stderr, which must be one line.
    pub fn refused(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
        assert!(!out.status.success(), "{args:?} succeeded: {}", String::from_utf8_lossy(&out.stdout));
        assert_eq!(err.lines().count(), 1, "{args:?} printed more than one line: {err}");
        err
    }

    pub fn put_bytes(&self, path: &str, data: &[u8]) {
        let local = self.dir.path().join(format!("put-{}", rand_suffix()));
        std::fs::write(&local, data).expect("write local file");
        self.ok(&["put", local.to_str().expect("utf-8 path"), path]);
        let _ = std::fs::remove_file(local);
    }

    /// Read a file back through the CLI; Err carries the CLI's stderr.
    pub fn get_bytes(&self, path: &str) -> Result<Vec<u8>, String> {
        let local = self.dir.path().join(format!("get-{}", rand_suffix()));
        let out = self.cli(&["get", path, local.to_str().expect("utf-8 path")]);
        if !out.status.success() {
            assert!(!local.exists(), "a failed get left a file behind");
            return Err(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        let data = std::fs::read(&local).expect("read local copy");
        let _ = std::fs::remove_file(local);
        Ok(data)
    }

    fn node_dir(&self, kind: &str, id: u64) -> PathBuf {
        self.data_dir().join(format!("{kind}-{id}"))
    }

    /// SIGKILL one data server and wait until it is gone.
    pub fn kill_data(&self, id: u64) {
        let dir = self.node_dir("data", id);
        let pid: i32 = std::fs::read_to_string(dir.join("pid")).expect("pid file").trim().parse().expect("pid");
        // SAFETY: killing a server process this test started.
        unsafe { libc::kill(pid, libc::SIGKILL) };
        wait_gone(pid);
    }

    /// SIGSTOP one data server (it keeps its connections but answers
    /// nothing) until the returned guard drops, which sends SIGCONT.
    pub fn pause_data(&self, id: u64) -> Paused {
        let dir = self.node_dir("data", id);
        let pid: i32 = std::fs::read_to_string(dir.join("pid")).expect("pid file").trim().parse().expect("pid");
        // SAFETY: signalling a server process this test started.
        unsafe { libc::kill(pid, libc::SIGSTOP) };
        Paused(pid)
    }

    /// `admin status --json`, parsed.
    pub fn status(&self) -> serde_json::Value {
        serde_json::from_str(&self.ok(&["admin", "status", "--json"])).expect("status JSON")
    }

    /// Poll `admin status` until `done` holds (the cluster reports progress
    /// as it repairs); panics with the last status after `timeout`.
    pub fn wait_status(&self, timeout: Duration, done: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
        let start = Instant::now();
        loop {
            let out = self.cli(&["admin", "status", "--json"]);
            if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&out.stdout) {
                if done(&v) {
                    return v;
                }
                if start.elapsed() > timeout {
                    panic!("cluster did not reach the expected state: {v:#}");
                }
            } else if start.elapsed() > timeout {
                panic!("no status: {}", String::from_utf8_lossy(&out.stderr));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Shards stored by the data servers (dead ones included: pass their
    /// ids to filter them out), found behind their backs.
    pub fn shard_files(&self) -> Vec<ShardOnDisk> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(self.data_dir()).expect("read cluster dir").flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(id) = name.strip_prefix("data-").and_then(|n| n.parse::<u64>().ok()) else { continue };
            out.extend(shards_in(id, &entry.path()));
        }
        out
    }

    /// Every regular file under the data servers' folders.
    pub fn data_files(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(self.data_dir()).expect("read cluster dir").flatten() {
            if entry.file_name().to_string_lossy().starts_with("data-") {
                walk(&entry.path(), &mut out);
            }
        }
        out
    }

    /// Every regular file under the whole cluster folder.
    pub fn all_files(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        walk(&self.data_dir(), &mut out);
        out
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        self.stop();
        // Belt and braces: no server outlives the test.
        for f in self.all_files() {
            if f.file_name().is_some_and(|n| n == "pid") {
                if let Ok(pid) = std::fs::read_to_string(&f).unwrap_or_default().trim().parse::<i32>() {
                    // SAFETY: killing a server process this test started.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                }
            }
        }
    }
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        match e.file_type() {
            Ok(t) if t.is_dir() => walk(&p, out),
            Ok(t) if t.is_file() => out.push(p),
            _ => {}
        }
    }
}

/// Wait until a process has exited (gone, or a zombie awaiting its parent).
/// A paused server, resumed on drop (even when the test fails).
pub struct Paused(i32);

impl Drop for Paused {
    fn drop(&mut self) {
        // SAFETY: signalling a server process this test started.
        unsafe { libc::kill(self.0, libc::SIGCONT) };
    }
}

pub fn wait_gone(pid: i32) {
    assert!(exited_within(pid, Duration::from_secs(10)), "process {pid} did not exit");
}

/// Whether a process exits (is gone, or a zombie) within `timeout`.
pub fn exited_within(pid: i32, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => return true,
            Ok(stat) => {
                let state = stat.rsplit(')').next().and_then(|s| s.split_whitespace().next());
                if state == Some("Z") || state == Some("X") {
                    return true;
                }
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    false
}

fn rand_suffix() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// Deterministic, incompressible test content.
pub fn content(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Metadata-server helpers (tests/meta_*.rs): kill, wipe and restart one
/// `shardline meta` process outside `shardline up`.
impl TestCluster {
    pub fn meta_dir(&self, id: u64) -> PathBuf {
        self.node_dir("meta", id)
    }

    /// SIGKILL one metadata server (from its pid file) and wait until it is gone.
    pub fn kill_meta(&self, id: u64) {
        let dir = self.meta_dir(id);
        let pid: i32 = std::fs::read_to_string(dir.join("pid")).expect("meta pid file").trim().parse().expect("pid");
        // SAFETY: killing a server process this test started.
        unsafe { libc::kill(pid, libc::SIGKILL) };
        wait_gone(pid);
    }

    /// Start `shardline meta --id <id>` with the arguments `shardline up`
    /// gives it (read back from cluster.toml), logging at info level to its
    /// folder's `log`. The environment is inherited (e.g.
    /// SHARDLINE_META_SNAPSHOT_EVERY). Drop kills it through its pid file.
    pub fn start_meta(&self, id: u64, extra: &[&str]) -> Child {
        let peers = self.servers("meta");
        let me = peers.iter().find(|(i, _)| *i == id).expect("meta server in cluster.toml").1.clone();
        self.start_meta_with(id, &me, &peers, extra)
    }

    /// Start `shardline meta --id <id>` listening on `listen` and reaching
    /// its peers (id, address; itself included) at `peers`, with the other
    /// arguments `shardline up` gives it.
    pub fn start_meta_with(&self, id: u64, listen: &str, peers: &[(u64, String)], extra: &[&str]) -> Child {
        let text = std::fs::read_to_string(self.cluster_file()).expect("read cluster.toml");
        let file: toml::Value = toml::from_str(&text).expect("parse cluster.toml");
        let peers: Vec<String> = peers.iter().map(|(i, a)| format!("{i}={a}")).collect();
        let dir = self.meta_dir(id);
        std::fs::create_dir_all(&dir).expect("create meta dir");
        let log = std::fs::OpenOptions::new().create(true).append(true).open(dir.join("log")).expect("open log");
        Command::new(BIN)
            .args(["meta", "--id", &id.to_string(), "--listen", listen])
            .args(["--peers", &peers.join(",")])
            .args(["--ec", file["ec"].as_str().expect("ec")])
            .args(["--chunk-size", &file["chunk_size"].as_integer().expect("chunk_size").to_string()])
            .args(["--pg-count", &file["pg_count"].as_integer().expect("pg_count").to_string()])
            .args(["--down-after-ms", "3000"])
            .arg("--key-file")
            .arg(self.data_dir().join("meta.key"))
            .args(self.server_tls_args("meta", id))
            .arg("--cap-key-file")
            .arg(self.data_dir().join("cap.key"))
            .arg("--dir")
            .arg(&dir)
            .args(extra)
            .env("SHARDLINE_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log"))
            .stderr(log)
            .spawn()
            .expect("spawn shardline meta")
    }

    /// The `--tls-*` flags server `kind`-`id` runs with (its certificate
    /// from cluster.toml, the cluster CA and revocation list).
    pub fn server_tls_args(&self, kind: &str, id: u64) -> Vec<String> {
        let file = self.cluster_toml();
        let node = file[kind]
            .as_array()
            .expect("servers")
            .iter()
            .find(|n| n["id"].as_integer() == Some(id as i64))
            .expect("server in cluster.toml");
        let tls = &file["tls"];
        let mut args = vec![
            "--tls-cert".to_string(),
            node["cert"].as_str().expect("server certificate").to_string(),
            "--tls-key".to_string(),
            node["key"].as_str().expect("server key").to_string(),
            "--tls-ca".to_string(),
            tls["ca"].as_str().expect("CA").to_string(),
        ];
        if let Some(crl) = tls.get("crl").and_then(|c| c.as_str()) {
            args.extend(["--tls-crl".to_string(), crl.to_string()]);
        }
        args
    }

    /// The TLS identity cluster.toml gives a client (`Role::Client`) or an
    /// operator (`Role::Admin`).
    pub fn identity(&self, role: shardline_rpc::Role) -> std::sync::Arc<shardline_rpc::Tls> {
        let file = self.cluster_toml();
        let tls = &file["tls"];
        let path = |k: &str| PathBuf::from(tls[k].as_str().unwrap_or_else(|| panic!("[tls] {k} in cluster.toml")));
        let files = shardline_rpc::TlsFiles {
            cert: path(&format!("{role}_cert")),
            key: path(&format!("{role}_key")),
            ca: path("ca"),
            crl: tls.get("crl").and_then(|c| c.as_str()).map(PathBuf::from),
        };
        shardline_rpc::Tls::load(&files).expect("load a TLS identity")
    }

    /// The TLS identity in `stem`.pem / `stem`.key, trusting this cluster's CA.
    pub fn identity_from(&self, stem: &Path) -> std::sync::Arc<shardline_rpc::Tls> {
        let certs = self.data_dir().join("certs");
        let files = shardline_rpc::TlsFiles {
            cert: stem.with_extension("pem"),
            key: stem.with_extension("key"),
            ca: certs.join("ca.pem"),
            crl: Some(certs.join("crl.pem")),
        };
        shardline_rpc::Tls::load(&files).expect("load a TLS identity")
    }

    /// The TLS identity of server `kind`-`id` (its certificate from cluster.toml).
    pub fn server_identity(&self, kind: &str, id: u64) -> std::sync::Arc<shardline_rpc::Tls> {
        let args = self.server_tls_args(kind, id);
        let files = shardline_rpc::TlsFiles {
            cert: PathBuf::from(&args[1]),
            key: PathBuf::from(&args[3]),
            ca: PathBuf::from(&args[5]),
            crl: args.get(7).map(PathBuf::from),
        };
        shardline_rpc::Tls::load(&files).expect("load a server's TLS identity")
    }

    fn cluster_toml(&self) -> toml::Value {
        let text = std::fs::read_to_string(self.cluster_file()).expect("read cluster.toml");
        toml::from_str(&text).expect("parse cluster.toml")
    }

    /// The metadata servers as `admin status --json` reports them.
    pub fn meta_status(&self) -> Vec<serde_json::Value> {
        let out = self.cli(&["admin", "status", "--json"]);
        serde_json::from_slice::<serde_json::Value>(&out.stdout)
            .ok()
            .and_then(|v| v["meta"].as_array().cloned())
            .unwrap_or_default()
    }

    /// The id of the metadata leader, waiting up to `timeout` for one.
    pub fn meta_leader(&self, timeout: Duration) -> u64 {
        let start = Instant::now();
        loop {
            if let Some(id) = self.meta_status().iter().find(|m| m["role"] == "leader").and_then(|m| m["id"].as_u64()) {
                return id;
            }
            assert!(start.elapsed() < timeout, "no metadata leader: {:?}", self.meta_status());
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}
