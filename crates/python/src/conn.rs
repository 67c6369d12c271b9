//! A connection to a cluster: the native client and the Tokio runtime that
//! drives it, made for one process.
//!
//! Fork safety: a forked child has none of its parent's threads, so the
//! parent's runtime is dead there and its sockets are shared with the
//! parent. A [`Conn`] remembers the pid that made it; [`Session::conn`]
//! makes a fresh one when called in another process (each DataLoader worker
//! thus gets its own connection), and a `Conn` inherited through fork is
//! leaked rather than dropped (dropping a runtime joins threads that do not
//! exist in the child).

use std::mem::ManuallyDrop;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use shardline_client::{Client, ClientConfig};
use shardline_rpc::{Tls, TlsFiles};

use crate::errors::{client_err, io_err};

/// What `cluster.toml` says a client needs (the file `shardline up` writes).
#[derive(serde::Deserialize)]
struct ClusterFile {
    version: u32,
    key_file: PathBuf,
    meta: Vec<MetaNode>,
    /// The TLS files (every connection is mutual TLS).
    tls: Option<TlsSection>,
    /// Files of at most this many bytes are stored as copies (absent: the
    /// client's default).
    small_file_max: Option<u64>,
}

/// The `[tls]` section: the cluster CA and the client certificate.
#[derive(serde::Deserialize)]
struct TlsSection {
    ca: PathBuf,
    crl: Option<PathBuf>,
    client_cert: Option<PathBuf>,
    client_key: Option<PathBuf>,
    #[serde(default)]
    data_integrity_only: bool,
}

#[derive(serde::Deserialize)]
struct MetaNode {
    addr: String,
}

/// The cluster.toml versions this package reads.
const CLUSTER_FILE_VERSION: u32 = 1;

/// How to (re)connect: the cluster file's contents and the options given.
#[derive(Clone)]
pub struct Spec {
    pub cluster_file: PathBuf,
    meta_addrs: Vec<String>,
    key_file: PathBuf,
    tls: TlsFiles,
    data_integrity_only: bool,
    read_parallelism: Option<usize>,
    threads: usize,
    small_file_max: Option<u64>,
}

impl Spec {
    /// Chunks a whole-file read keeps in flight.
    pub fn read_parallelism(&self) -> usize {
        self.read_parallelism.unwrap_or(6).max(1)
    }

    pub fn load(cluster_file: &Path, read_parallelism: Option<usize>, threads: Option<usize>) -> PyResult<Spec> {
        let text = std::fs::read_to_string(cluster_file).map_err(|e| io_err(e, cluster_file))?;
        let file: ClusterFile = toml::from_str(&text)
            .map_err(|e| PyValueError::new_err(format!("{}: not a cluster file: {e}", cluster_file.display())))?;
        if file.version != CLUSTER_FILE_VERSION {
            return Err(PyValueError::new_err(format!(
                "{}: cluster file version {} (this package reads {CLUSTER_FILE_VERSION})",
                cluster_file.display(),
                file.version
            )));
        }
        if file.meta.is_empty() {
            return Err(PyValueError::new_err(format!("{}: no metadata servers listed", cluster_file.display())));
        }
        let base = cluster_file.parent().unwrap_or(Path::new("."));
        let no_cert = || {
            PyValueError::new_err(format!(
                "{}: no client certificate ([tls] ca, client_cert and client_key; `shardline up` writes them)",
                cluster_file.display()
            ))
        };
        let tls = file.tls.ok_or_else(no_cert)?;
        let (Some(cert), Some(key)) = (tls.client_cert, tls.client_key) else { return Err(no_cert()) };
        let files = TlsFiles {
            cert: base.join(cert),
            key: base.join(key),
            ca: base.join(tls.ca),
            crl: tls.crl.map(|c| base.join(c)),
        };
        let threads =
            threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()).clamp(2, 8)).max(1);
        Ok(Spec {
            cluster_file: cluster_file.to_path_buf(),
            meta_addrs: file.meta.into_iter().map(|m| m.addr).collect(),
            key_file: base.join(file.key_file),
            tls: files,
            data_integrity_only: tls.data_integrity_only,
            read_parallelism,
            threads,
            small_file_max: file.small_file_max,
        })
    }
}

/// The runtime and client of one process.
pub struct Conn {
    pid: u32,
    rt: ManuallyDrop<tokio::runtime::Runtime>,
    client: ManuallyDrop<Client>,
}

impl Conn {
    fn open(spec: &Spec) -> PyResult<Conn> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(spec.threads)
            .thread_name("shardline-py")
            .enable_all()
            .build()
            .map_err(|e| io_err(e, &spec.cluster_file))?;
        let tls: std::sync::Arc<Tls> = Tls::load(&spec.tls).map_err(|e| {
            PyValueError::new_err(format!("{}: load the client certificate: {e}", spec.cluster_file.display()))
        })?;
        let mut cfg = ClientConfig::new(spec.meta_addrs.clone(), spec.key_file.clone(), tls);
        cfg.data_integrity_only = spec.data_integrity_only;
        if let Some(max) = spec.small_file_max {
            cfg.small_file_max = max;
        }
        if let Some(n) = spec.read_parallelism {
            cfg.read_parallelism = n.max(1);
        }
        let client = rt.block_on(Client::connect(cfg)).map_err(|e| client_err(e, None))?;
        Ok(Conn { pid: std::process::id(), rt: ManuallyDrop::new(rt), client: ManuallyDrop::new(client) })
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Run `fut` to completion on this connection's runtime with the GIL
    /// released.
    pub fn run<F>(&self, py: Python<'_>, fut: F) -> F::Output
    where
        F: std::future::Future + Send,
        F::Output: Send,
    {
        py.detach(|| self.rt.block_on(fut))
    }

    /// Drop `v` inside this connection's runtime (so clean-up it spawns,
    /// such as an abandoned writer removing its temporary file, can run).
    pub fn drop_inside<T>(&self, v: T) {
        let _guard = self.rt.enter();
        drop(v);
    }

    /// Whether this connection was made by the calling process.
    pub fn is_current(&self) -> bool {
        self.pid == std::process::id()
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        if self.is_current() {
            // SAFETY: dropped once, here, and never used again.
            unsafe {
                ManuallyDrop::drop(&mut self.client);
                ManuallyDrop::drop(&mut self.rt);
            }
        }
        // Inherited through fork: the runtime's threads live only in the
        // parent, so dropping it here would wait for them forever. Leak it.
    }
}

/// A connection that follows the process across fork.
pub struct Session {
    pub spec: Spec,
    conn: Mutex<Arc<Conn>>,
}

impl Session {
    pub fn connect(spec: Spec) -> PyResult<Session> {
        let conn = Conn::open(&spec)?;
        Ok(Session { spec, conn: Mutex::new(Arc::new(conn)) })
    }

    /// This process's connection, made afresh in a forked child.
    pub fn conn(&self) -> PyResult<Arc<Conn>> {
        let mut guard = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        if !guard.is_current() {
            *guard = Arc::new(Conn::open(&self.spec)?);
        }
        Ok(guard.clone())
    }
}
