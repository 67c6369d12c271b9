//! `shardline._native.Client`: namespace operations, whole-file and range
//! reads, `put`/`get` of local files, readers and prefetch streams. Every
//! call releases the GIL while it waits on the cluster.

use std::ffi::OsString;
use std::io::{Read, Write};
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;
use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};
use shardline_client::{DirEntry, FileKind, FileStat};

use crate::conn::{Session, Spec};
use crate::errors::{client_err, io_err};
use crate::prefetch::{items_from_py, PyPrefetch};
use crate::reader::PyReader;
use crate::writer::PyWriter;

/// Bytes moved per write call in `put` (and read per read from the local file).
const PUT_BLOCK: usize = 8 << 20;

/// A connection to a cluster (see `shardline.connect`).
#[pyclass(name = "Client", module = "shardline._native", frozen)]
pub struct PyClient {
    pub(crate) session: Arc<Session>,
}

pub(crate) fn kind_name(k: FileKind) -> &'static str {
    match k {
        FileKind::File => "file",
        FileKind::Directory => "directory",
        FileKind::Symlink => "symlink",
        FileKind::Fifo => "fifo",
        FileKind::Socket => "socket",
        FileKind::CharDevice => "char_device",
        FileKind::BlockDevice => "block_device",
    }
}

fn stat_dict<'py>(py: Python<'py>, s: &FileStat) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("size", s.size)?;
    d.set_item("type", kind_name(s.kind))?;
    d.set_item("ino", s.ino)?;
    d.set_item("mode", s.mode)?;
    d.set_item("nlink", s.nlink)?;
    d.set_item("mtime_ns", s.mtime_ns)?;
    d.set_item("ec", &s.ec)?;
    d.set_item("chunk_size", s.chunk_size)?;
    d.set_item("encrypted", s.encrypted)?;
    Ok(d)
}

fn entry_dict<'py>(py: Python<'py>, e: &DirEntry) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("name", OsString::from_vec(e.name.clone()))?;
    d.set_item("type", kind_name(e.kind))?;
    d.set_item("ino", e.ino)?;
    if let Some(a) = &e.attr {
        d.set_item("size", a.size)?;
        d.set_item("mode", a.mode)?;
        d.set_item("mtime_ns", a.mtime_ns)?;
    }
    Ok(d)
}

#[pymethods]
impl PyClient {
    /// The cluster file this client was made from.
    #[getter]
    fn cluster_file(&self) -> PathBuf {
        self.session.spec.cluster_file.clone()
    }

    /// A file's or directory's attributes, as a dict.
    fn stat<'py>(&self, py: Python<'py>, path: PathBuf) -> PyResult<Bound<'py, PyDict>> {
        let conn = self.session.conn()?;
        let s = conn.run(py, conn.client().stat(&path)).map_err(|e| client_err(e, Some(&path)))?;
        stat_dict(py, &s)
    }

    /// A directory's entries in name order: names, or with `detail` dicts
    /// with `name`, `type`, `ino`, `size`, `mode`, `mtime_ns` (fetched with
    /// the listing, no request per entry).
    #[pyo3(signature = (path, detail = false))]
    fn list<'py>(&self, py: Python<'py>, path: PathBuf, detail: bool) -> PyResult<Vec<Bound<'py, PyAny>>> {
        let conn = self.session.conn()?;
        let client = conn.client().clone();
        let p = path.clone();
        let entries = conn
            .run(py, async move {
                if !detail {
                    return client.list(&p).await;
                }
                let dir = client.stat(&p).await?;
                if dir.kind != FileKind::Directory {
                    return Err(shardline_client::ClientError::NotADirectory);
                }
                let inodes = client.inodes();
                let mut out = Vec::new();
                let mut after = Vec::new();
                loop {
                    let page = inodes.readdir(dir.ino, &after, 1000, true).await?;
                    if let Some(last) = page.entries.last() {
                        after = last.name.clone();
                    }
                    out.extend(page.entries);
                    if !page.more {
                        return Ok(out);
                    }
                }
            })
            .map_err(|e| client_err(e, Some(&path)))?;
        entries
            .iter()
            .map(|e| {
                if detail {
                    Ok(entry_dict(py, e)?.into_any())
                } else {
                    Ok(OsString::from_vec(e.name.clone()).into_pyobject(py)?.into_any())
                }
            })
            .collect()
    }

    /// `length` bytes from `offset` (fewer at the end of the file).
    fn read_range<'py>(
        &self,
        py: Python<'py>,
        path: PathBuf,
        offset: u64,
        length: u64,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let conn = self.session.conn()?;
        let client = conn.client().clone();
        let p = path.clone();
        let len = usize::try_from(length).map_err(|_| crate::errors::bad_arg("length too large"))?;
        let data = conn
            .run(py, async move { client.open(&p).await?.read_at(offset, len).await })
            .map_err(|e| client_err(e, Some(&path)))?;
        Ok(PyBytes::new(py, &data))
    }

    /// The whole file.
    fn read_bytes<'py>(&self, py: Python<'py>, path: PathBuf) -> PyResult<Bound<'py, PyBytes>> {
        let conn = self.session.conn()?;
        let client = conn.client().clone();
        let p = path.clone();
        let data = conn.run(py, async move { client.read_file(&p).await }).map_err(|e| client_err(e, Some(&path)))?;
        Ok(PyBytes::new(py, &data))
    }

    /// Write `data` as the file at `path` (atomic: readers see the old file
    /// or the whole new one). Returns the bytes written.
    fn write_bytes(&self, py: Python<'_>, path: PathBuf, data: &[u8]) -> PyResult<u64> {
        let conn = self.session.conn()?;
        let client = conn.client().clone();
        let p = path.clone();
        conn.run(py, async move { client.write_file(&p, data).await }).map_err(|e| client_err(e, Some(&path)))
    }

    /// Upload the local file `local` to `path` (atomic, streamed).
    fn put(&self, py: Python<'_>, local: PathBuf, path: PathBuf) -> PyResult<u64> {
        let conn = self.session.conn()?;
        let client = conn.client().clone();
        let (l, p) = (local.clone(), path.clone());
        // Local reads block this (the caller's) thread only: `run` drives
        // the future on it, not on a runtime worker.
        conn.run(py, async move {
            let mut file = std::fs::File::open(&l).map_err(Fail::Local)?;
            let mut w = client.create(&p).await?;
            let mut buf = vec![0u8; PUT_BLOCK];
            loop {
                let n = file.read(&mut buf).map_err(Fail::Local)?;
                if n == 0 {
                    break;
                }
                w.write(&buf[..n]).await?;
            }
            Ok::<u64, Fail>(w.finish().await?)
        })
        .map_err(|e| e.into_py(&path, &local))
    }

    /// Download `path` to the local file `local` (streamed, chunks read
    /// ahead; written to a temporary name and renamed when complete).
    fn get(&self, py: Python<'_>, path: PathBuf, local: PathBuf) -> PyResult<u64> {
        let conn = self.session.conn()?;
        let client = conn.client().clone();
        let (l, p) = (local.clone(), path.clone());
        let parallel = self.session.spec.read_parallelism();
        let mut tmp_name = OsString::from(".");
        tmp_name.push(l.file_name().unwrap_or_default());
        tmp_name.push(".shardline-part");
        let tmp = l.with_file_name(tmp_name);
        conn.run(py, async move {
            let reader = client.open(&p).await?;
            let mut out = std::io::BufWriter::new(std::fs::File::create(&tmp).map_err(Fail::Local)?);
            let mut local_failure = None;
            let read = reader
                .for_each_chunk(parallel, |_, chunk| {
                    out.write_all(&chunk).map_err(|e| {
                        local_failure = Some(e);
                        shardline_client::ClientError::Internal("local write failed".into())
                    })
                })
                .await;
            let done = match (read, local_failure) {
                (_, Some(e)) => Err(Fail::Local(e)),
                (Err(e), None) => Err(Fail::Client(e)),
                (Ok(()), None) => out
                    .into_inner()
                    .map_err(|e| e.into_error())
                    .and_then(|f| f.sync_all())
                    .and_then(|()| std::fs::rename(&tmp, &l))
                    .map_err(Fail::Local),
            };
            if done.is_err() {
                let _ = std::fs::remove_file(&tmp);
            }
            done.map(|()| reader.size())
        })
        .map_err(|e| e.into_py(&path, &local))
    }

    fn mkdir(&self, py: Python<'_>, path: PathBuf) -> PyResult<()> {
        let conn = self.session.conn()?;
        conn.run(py, conn.client().mkdir(&path)).map_err(|e| client_err(e, Some(&path)))?;
        Ok(())
    }

    /// Remove a file or an empty directory.
    fn remove(&self, py: Python<'_>, path: PathBuf) -> PyResult<()> {
        let conn = self.session.conn()?;
        conn.run(py, conn.client().remove(&path)).map_err(|e| client_err(e, Some(&path)))
    }

    /// Atomically rename `src` to `dst` (replacing a file there).
    fn rename(&self, py: Python<'_>, src: PathBuf, dst: PathBuf) -> PyResult<()> {
        let conn = self.session.conn()?;
        conn.run(py, conn.client().rename(&src, &dst)).map_err(|e| client_err(e, Some(&src)))
    }

    /// A reader of the file at `path` (a snapshot of its committed data).
    fn open_reader(&self, py: Python<'_>, path: PathBuf) -> PyResult<PyReader> {
        PyReader::open(py, self.session.clone(), path)
    }

    /// A writer of a new file at `path`, renamed into place on close.
    fn open_writer(&self, py: Python<'_>, path: PathBuf) -> PyResult<PyWriter> {
        PyWriter::create(py, &self.session, path)
    }

    /// Read `items` (paths, or `(path, offset, length)` tuples) with a
    /// bounded window in flight; iterate for `(index, bytes)` in order.
    #[pyo3(signature = (items, window = 16, window_bytes = 64 << 20, raise_errors = true))]
    fn prefetch(
        &self,
        items: &Bound<'_, PyAny>,
        window: usize,
        window_bytes: u64,
        raise_errors: bool,
    ) -> PyResult<PyPrefetch> {
        let items = items_from_py(items)?;
        PyPrefetch::start(self.session.conn()?, items, window, window_bytes, raise_errors)
    }

    /// Pickled as its cluster file: unpickling connects again.
    fn __reduce__<'py>(&self, py: Python<'py>) -> PyResult<(Bound<'py, PyAny>, (PathBuf,))> {
        let connect = py.import("shardline._native")?.getattr("connect")?;
        Ok((connect, (self.session.spec.cluster_file.clone(),)))
    }
}

impl PyClient {
    pub fn new(spec: Spec) -> PyResult<PyClient> {
        Ok(PyClient { session: Arc::new(Session::connect(spec)?) })
    }
}

/// A `put` or `get` failure: on the cluster's side or the local file's.
enum Fail {
    Client(shardline_client::ClientError),
    Local(std::io::Error),
}

impl From<shardline_client::ClientError> for Fail {
    fn from(e: shardline_client::ClientError) -> Self {
        Fail::Client(e)
    }
}

impl Fail {
    fn into_py(self, remote: &std::path::Path, local: &std::path::Path) -> PyErr {
        match self {
            Fail::Client(e) => client_err(e, Some(remote)),
            Fail::Local(e) => io_err(e, local),
        }
    }
}
